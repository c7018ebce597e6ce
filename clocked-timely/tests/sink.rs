//! The sink: records reach the downstream dispatcher under their times, one message per
//! time, every other stamp is accounted for as timely's frontier passes it, and the
//! downstream receiver closes when the computation ends.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver, SendErrorKind};
use clocked_timely::{per_worker, Sink, SinkError, SinkHandle, SinkStats, WorkerSlots, Workers};
use quickcheck::{QuickCheck, TestResult};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;

use support::within;

type Input = InputHandle<u64, CapacityContainerBuilder<Vec<u32>>>;

/// What a downstream receiver got: messages of records, and watermarks.
type Got = Vec<(Option<Vec<u32>>, usize)>;

/// Two workers; worker `w` sends the records of `records` whose index is `w` modulo 2, each
/// at its time (times must not decrease). Returns the sink's stats once it has ended, and
/// everything the downstream receiver got until it closed.
fn through_sink(records: Vec<(u64, u32)>, downstream: Builder, seed: usize) -> (SinkStats, Got) {
    let d = downstream.seed(seed).build::<Vec<u32>>();
    let (tx, rx) = d.new("sink", "rx");
    let reader = thread::spawn(move || rx.collect::<Vec<_>>());
    let sender = WorkerSlots::on_worker(0, tx);
    let guards = timely::execute(timely::Config::process(2), move |worker| {
        let mut input = Input::new();
        let sink = worker.dataflow(|scope| {
            let sender = sender.take(scope.index()).unwrap();
            Sink::new(0, sender)
                .seed(seed)
                .build(input.to_stream(scope))
                .unwrap()
        });
        let index = worker.index();
        for (i, &(time, value)) in records.iter().enumerate() {
            input.advance_to(time);
            if i % 2 == index {
                input.send(value);
            }
        }
        sink
    })
    .unwrap();
    let handles: Vec<SinkHandle> = guards.join().into_iter().map(Result::unwrap).collect();
    assert_eq!(
        handles[1].stats(),
        SinkStats::default(),
        "worker 1 forwards nothing"
    );
    (handles[0].stats(), reader.join().unwrap())
}

/// The data messages of what a receiver got (which watermarks it sees depends on timing).
fn data(got: Got) -> Vec<(Vec<u32>, usize)> {
    got.into_iter().filter_map(|(v, s)| Some((v?, s))).collect()
}

fn records_per_time(records: &[(u64, u32)]) -> BTreeMap<usize, Vec<u32>> {
    let mut per_time: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for &(time, value) in records {
        per_time.entry(time as usize).or_default().push(value);
    }
    per_time
}

/// Random records at non-decreasing times from 1: the downstream receiver gets exactly one
/// message per time that had records, with those records, in time order; every stamp up to
/// the last time is accounted for once.
fn property(steps: Vec<(u8, u32)>) -> TestResult {
    let mut time = 1;
    let records: Vec<(u64, u32)> = steps
        .into_iter()
        .map(|(step, value)| {
            time += u64::from(step % 4); // often the same time, sometimes a gap
            (time, value)
        })
        .collect();
    let (stats, got) = within(Duration::from_secs(30), {
        let records = records.clone();
        move || through_sink(records, Builder::new().bound(8), 0)
    });
    let expected = records_per_time(&records);
    let mut data: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (value, stamp) in &got {
        if let Some(values) = value {
            let mut values = values.clone();
            values.sort_unstable();
            data.insert(*stamp, values);
        }
    }
    let expected: BTreeMap<usize, Vec<u32>> = expected
        .into_iter()
        .map(|(t, mut v)| {
            v.sort_unstable();
            (t, v)
        })
        .collect();
    let last = expected.keys().last().copied().unwrap_or(0);
    let checks = [
        (data == expected, "the data per time"),
        (got.windows(2).all(|w| w[0].1 < w[1].1), "stamps increase"),
        (
            got.iter().all(|(_, stamp)| *stamp <= last),
            "nothing past the last time",
        ),
        (
            stats.messages == expected.len() as u64,
            "one message per time",
        ),
        (stats.records == records.len() as u64, "every record"),
        (
            stats.gaps as usize == last - expected.len(),
            "every other stamp, once",
        ),
        (stats.accounted == last, "accounted up to the last time"),
        (stats.finished && stats.error.is_none(), "finished cleanly"),
        (
            stats.refused + stats.undeliverable + stats.stale == 0,
            "nothing lost",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        None => TestResult::passed(),
        Some((_, what)) => TestResult::error(format!("{what}: {stats:?}\ngot {got:?}")),
    }
}

#[test]
fn records_arrive_per_time_and_every_stamp_is_accounted_for() {
    QuickCheck::new()
        .tests(100)
        .quickcheck(property as fn(Vec<(u8, u32)>) -> TestResult);
}

#[test]
fn a_round_trip_keeps_stamps_and_fills_the_gaps() {
    // Stamps 1..=4000 from one dispatcher; every fourth goes to a receiver outside timely, so
    // timely sees it only as a watermark and the sink must forward it without data.
    let (stats, got) = within(Duration::from_secs(60), || {
        let upstream = clocked_dispatch::new::<u32>(64);
        let (senders, readers) = per_worker(&upstream, Workers::local(2), "up").unwrap();
        let (outside_tx, outside) = upstream.new("outside-tx", "outside");
        let outside = thread::spawn(move || outside.filter(|(v, _)| v.is_some()).count());
        let producer = thread::spawn(move || {
            for n in 1..=4000u32 {
                match n % 4 {
                    2 => outside_tx.send(n).unwrap(),
                    _ => senders.for_key(u64::from(n)).send(n).unwrap(),
                }
            }
        });
        let downstream = clocked_dispatch::new::<Vec<u32>>(64);
        let (tx, rx) = downstream.new("sink", "rx");
        let reader = thread::spawn(move || rx.collect::<Vec<_>>());
        let sender = WorkerSlots::on_worker(1, tx); // the sink worker need not be 0
        let guards = timely::execute(timely::Config::process(2), move |worker| {
            worker.dataflow::<u64, _, _>(|scope| {
                let (numbers, _) = readers.source(scope).unwrap();
                let sender = sender.take(scope.index()).unwrap();
                Sink::new(1, sender).build(numbers).unwrap()
            })
        })
        .unwrap();
        let handles: Vec<SinkHandle> = guards.join().into_iter().map(Result::unwrap).collect();
        producer.join().unwrap();
        assert_eq!(outside.join().unwrap(), 1000);
        (handles[1].stats(), reader.join().unwrap())
    });
    let data: Vec<(Option<Vec<u32>>, usize)> =
        got.iter().filter(|(v, _)| v.is_some()).cloned().collect();
    let expected: Vec<(Option<Vec<u32>>, usize)> = (1..=4000u32)
        .filter(|n| n % 4 != 2)
        .map(|n| (Some(vec![n]), n as usize))
        .collect();
    assert_eq!(
        data, expected,
        "each value under the stamp the first dispatcher gave it"
    );
    assert_eq!(
        (stats.messages, stats.records, stats.gaps),
        (3000, 3000, 1000)
    );
    assert_eq!(stats.accounted, 4000);
    assert!(stats.finished);
}

#[test]
fn records_below_the_first_stamp_are_refused_and_counted() {
    let (stats, got) = within(Duration::from_secs(30), || {
        through_sink(vec![(0, 7), (0, 8), (3, 9)], Builder::new().bound(4), 0)
    });
    assert_eq!(stats.refused, 2, "time 0 has no stamp after the seed 0");
    assert_eq!(data(got), vec![(vec![9], 3)]);
    let (stats, got) = within(Duration::from_secs(30), || {
        through_sink(vec![(5, 1), (6, 2)], Builder::new().bound(4), 5)
    });
    assert_eq!(stats.refused, 1, "with seed 5 the first stamp is 6");
    assert_eq!(data(got), vec![(vec![2], 6)]);
}

#[test]
fn a_slow_reader_behind_a_small_intake_gets_everything() {
    let records: Vec<(u64, u32)> = (1..=300u32).map(|n| (u64::from(n), n)).collect();
    let (stats, got) = within(Duration::from_secs(60), move || {
        let d = Builder::new()
            .bound(1)
            .inbox_capacity(1)
            .build::<Vec<u32>>();
        let (tx, rx) = d.new("sink", "rx");
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(item) = rx.recv() {
                thread::sleep(Duration::from_micros(200));
                got.push(item);
            }
            got
        });
        let sender = Mutex::new(Some(tx));
        let stats = timely::execute_directly(move |worker| {
            let mut input = Input::new();
            let sink = worker.dataflow(|scope| {
                Sink::new(0, sender.lock().unwrap().take())
                    .build(input.to_stream(scope))
                    .unwrap()
            });
            for &(time, value) in &records {
                input.advance_to(time);
                input.send(value);
            }
            sink
        });
        (stats.stats(), reader.join().unwrap())
    });
    assert_eq!(
        got,
        (1..=300u32)
            .map(|n| (Some(vec![n]), n as usize))
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.records, 300);
}

/// Builds a one-worker sink with `downstream`'s sender; returns its stats after the run.
fn one_worker_sink(
    receiver_gone: bool,
    serializing: bool,
) -> (SinkStats, Option<ClockedReceiver<Vec<u32>>>) {
    let d = clocked_dispatch::new::<Vec<u32>>(16);
    let (tx, rx) = d.new("sink", "rx");
    if serializing {
        let (other, _other_rx) = d.new("other", "other-rx");
        other.send(vec![0]).unwrap(); // the dispatcher is serializing now
    }
    let rx = if receiver_gone {
        drop(rx);
        None
    } else {
        Some(rx)
    };
    let sender = Mutex::new(Some(tx));
    let stats = within(Duration::from_secs(30), move || {
        timely::execute_directly(move |worker| {
            let mut input = Input::new();
            let sink = worker.dataflow(|scope| {
                Sink::new(0, sender.lock().unwrap().take())
                    .build(input.to_stream(scope))
                    .unwrap()
            });
            for time in 1..=10 {
                input.advance_to(time);
                input.send(time as u32);
            }
            sink
        })
    });
    (stats.stats(), rx)
}

#[test]
fn a_dropped_downstream_receiver_is_counted_and_the_clock_still_moves() {
    let (stats, _) = one_worker_sink(true, false);
    assert_eq!(stats.undeliverable, 10);
    assert_eq!((stats.records, stats.gaps, stats.accounted), (0, 10, 10));
    assert!(stats.finished && stats.error.is_none());
}

#[test]
fn a_serializing_downstream_dispatcher_stops_the_sink_with_an_error() {
    let (stats, rx) = one_worker_sink(false, true);
    assert!(
        matches!(stats.error, Some(SendErrorKind::WrongMode { .. })),
        "{stats:?}"
    );
    assert_eq!(
        stats.undeliverable, 10,
        "every record counted, none forwarded"
    );
    assert!(stats.finished);
    // the other pair's stamp 1 as a watermark, then the close: the sink dropped its sender
    let rest: Vec<_> = rx.unwrap().collect();
    assert!(rest.iter().all(|(value, _)| value.is_none()), "{rest:?}");
}

#[test]
fn the_sink_worker_and_its_sender_must_agree() {
    let errors = within(Duration::from_secs(30), || {
        let d = clocked_dispatch::new::<Vec<u32>>(4);
        let (tx, _rx) = d.new("sink", "rx");
        let sender = Mutex::new(Some(tx));
        timely::execute_directly(move |worker| {
            worker.dataflow::<u64, _, _>(|scope| {
                let input = || Input::new().to_stream(scope);
                vec![
                    Sink::<u32>::new(0, None).build(input()).err(),
                    Sink::<u32>::new(3, None).build(input()).err(),
                    Sink::new(0, sender.lock().unwrap().take())
                        .seed(0)
                        .build(input())
                        .err(),
                ]
            })
        })
    });
    assert_eq!(
        errors,
        vec![
            Some(SinkError::MissingSender { worker: 0 }),
            Some(SinkError::NoSuchWorker {
                worker: 3,
                peers: 1
            }),
            None,
        ]
    );
}

#[test]
fn a_sender_on_another_worker_is_refused_and_the_computation_still_ends() {
    let outcomes = within(Duration::from_secs(30), || {
        let d = clocked_dispatch::new::<Vec<u32>>(4);
        let (tx0, _rx0) = d.new("sink0", "rx0");
        let (tx1, _rx1) = d.new("sink1", "rx1");
        let senders = WorkerSlots::new([(0, tx0), (1, tx1)]);
        let guards = timely::execute(timely::Config::process(2), move |worker| {
            worker.dataflow::<u64, _, _>(|scope| {
                let sender = senders.take(scope.index()).unwrap();
                Sink::new(0, sender)
                    .build(Input::new().to_stream(scope))
                    .err()
            })
        })
        .unwrap();
        guards
            .join()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    assert_eq!(
        outcomes,
        vec![
            None,
            Some(SinkError::SenderOnOtherWorker {
                sink_worker: 0,
                this_worker: 1
            })
        ]
    );
}
