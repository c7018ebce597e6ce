//! Composed pipelines: stages of parallel workers joined by forwarding dispatchers must give
//! exactly the sequential result, in the same order, and shut down cleanly.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clocked_dispatch::pipeline::{ordered_map, spawn_stage, windows, StageError};
use clocked_dispatch::{Builder, ClockedSender, SendErrorKind};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// One stage: `x -> x * mul + add`, dropping results divisible by `filter` (if not 0).
#[derive(Clone, Copy, Debug)]
struct Spec {
    workers: usize,
    mul: u64,
    add: u64,
    filter: u64,
}

impl Spec {
    fn apply(self, x: u64) -> Option<u64> {
        let y = x.wrapping_mul(self.mul).wrapping_add(self.add);
        (self.filter == 0 || !y.is_multiple_of(self.filter)).then_some(y)
    }
}

/// What a source does besides sending: it may drop its sender to one worker part-way, after
/// which that worker's share goes to the others.
#[derive(Clone, Copy, Debug)]
struct EarlyDrop {
    worker: usize,
    after: usize,
}

/// Runs `inputs` through `stages` (each a set of workers between two dispatchers) and returns
/// what the sink receives, in order.
fn run(inputs: &[u64], stages: &[Spec], early_drop: Option<EarlyDrop>) -> Vec<u64> {
    let bound = 256;
    // Dispatcher k feeds stage k; the last one feeds the sink.
    let mut feeders = Vec::new();
    let mut receivers_of = Vec::new();
    for (k, _) in stages.iter().enumerate() {
        let d = Builder::new().bound(bound).build::<Option<u64>>();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for w in 0..stages[k].workers {
            let (tx, rx) = d.new(format!("to-{k}-{w}"), format!("stage-{k}-{w}"));
            senders.push(tx);
            receivers.push(rx);
        }
        feeders.push(senders);
        receivers_of.push(receivers);
    }
    let sink_dispatcher = Builder::new().bound(bound).build::<Option<u64>>();
    let (sink_tx, sink) = sink_dispatcher.new("to-sink", "sink");

    let source_senders = feeders.remove(0);
    let mut handles = Vec::new();
    for (k, spec) in stages.iter().enumerate() {
        let receivers = std::mem::take(&mut receivers_of[k]);
        for (w, rx) in receivers.into_iter().enumerate() {
            // Outputs: every receiver of the next stage (re-keyed by value), or the sink.
            let outputs: Vec<ClockedSender<Option<u64>>> = match feeders.get(k) {
                Some(next) => next.iter().map(|tx| tx.clone(format!("{k}-{w}"))).collect(),
                None => vec![sink_tx.clone(format!("{k}-{w}"))],
            };
            let spec = *spec;
            handles.push(
                spawn_stage(rx, outputs, move |x| {
                    spec.apply(x).map(|y| ((y % 7) as usize, y))
                })
                .unwrap(),
            );
        }
    }
    // The stages hold their own clones now.
    drop((feeders, sink_tx));

    let inputs = inputs.to_vec();
    let source = thread::spawn(move || {
        let mut senders: Vec<Option<ClockedSender<Option<u64>>>> =
            source_senders.into_iter().map(Some).collect();
        let workers = senders.len();
        for (i, x) in inputs.into_iter().enumerate() {
            if let Some(drop) = early_drop {
                if i == drop.after && workers > 1 {
                    senders[drop.worker % workers] = None;
                }
            }
            let first = x as usize % workers;
            let target = (0..workers)
                .map(|o| (first + o) % workers)
                .find(|&w| senders[w].is_some())
                .unwrap();
            senders[target].as_ref().unwrap().send(Some(x)).unwrap();
        }
    });
    let got: Vec<u64> = sink.filter_map(|(value, _)| value.flatten()).collect();
    source.join().unwrap();
    for handle in handles {
        handle.join().unwrap();
    }
    got
}

fn sequential(inputs: &[u64], stages: &[Spec]) -> Vec<u64> {
    inputs
        .iter()
        .filter_map(|&x| stages.iter().try_fold(x, |x, spec| spec.apply(x)))
        .collect()
}

#[test]
fn four_stages_of_eight_workers_match_the_sequential_result_over_a_million_messages() {
    let stages = [
        Spec {
            workers: 8,
            mul: 3,
            add: 1,
            filter: 0,
        },
        Spec {
            workers: 8,
            mul: 1,
            add: 0,
            filter: 5,
        },
        Spec {
            workers: 8,
            mul: 7,
            add: 0x55,
            filter: 0,
        },
        Spec {
            workers: 8,
            mul: 1,
            add: 3,
            filter: 11,
        },
    ];
    let inputs: Vec<u64> = (1..=1_000_000).collect();
    let got = run(&inputs, &stages, None);
    let want = sequential(&inputs, &stages);
    assert!(want.len() > 700_000);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "same values, same order");
}

#[derive(Clone, Debug)]
struct Topology {
    stages: Vec<Spec>,
    inputs: u16,
    early_drop: Option<EarlyDrop>,
}

impl Arbitrary for Topology {
    fn arbitrary(g: &mut Gen) -> Self {
        let stages = (0..1 + usize::arbitrary(g) % 3)
            .map(|_| Spec {
                workers: 1 + usize::arbitrary(g) % 4,
                mul: 1 + u64::arbitrary(g) % 5,
                add: u64::arbitrary(g) % 10,
                filter: [0, 2, 3, 5][usize::arbitrary(g) % 4],
            })
            .collect();
        let early_drop = bool::arbitrary(g).then(|| EarlyDrop {
            worker: usize::arbitrary(g),
            after: usize::arbitrary(g) % 500,
        });
        Topology {
            stages,
            inputs: u16::arbitrary(g) % 2000,
            early_drop,
        }
    }
}

#[test]
fn random_topologies_agree_with_a_sequential_reference() {
    fn prop(topology: Topology) -> bool {
        let inputs: Vec<u64> = (0..topology.inputs as u64).collect();
        run(&inputs, &topology.stages, topology.early_drop) == sequential(&inputs, &topology.stages)
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(Topology) -> bool);
}

#[test]
fn a_dropped_downstream_receiver_shuts_the_pipeline_down_without_a_hang() {
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let (input, output, workers) = ordered_map(4, 16, |x: u64| Some(x + 1)).unwrap();
        let producer = thread::spawn(move || {
            for x in 0.. {
                if let Err(e) = input.send(x) {
                    return (x, e.kind());
                }
            }
            unreachable!("the input never fails");
        });
        // Read a little, then go away.
        for _ in 0..100 {
            output.recv().unwrap();
        }
        drop(output);
        let (sent, why) = producer.join().unwrap();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done_tx.send((sent, why, results)).unwrap();
    });
    let (sent, why, results) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the pipeline hung after its sink was dropped");
    assert!(sent >= 100);
    assert_eq!(why, SendErrorKind::ReceiverGone);
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(StageError::Downstream(SendErrorKind::ReceiverGone)))));
}

#[test]
fn a_window_closes_on_a_watermark_when_its_last_messages_went_elsewhere() {
    // Stamps alternate between two receivers; the sink for `a` closes each window of 10 when
    // it learns the clock passed it, though stamps 10, 20, ... went to `b`.
    let d = clocked_dispatch::new(64);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let mut sink = windows(rx_a, 10, Vec::new, |mut seen: Vec<u64>, x| {
        seen.push(x);
        seen
    });
    for x in 1..=10u64 {
        if x % 2 == 1 {
            tx_a.send(x).unwrap();
        } else {
            tx_b.send(x).unwrap();
        }
    }
    // Stamp 10 went to b; a's window 1..=10 must still close before anything else is sent.
    let (closer_tx, closer_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let first = sink.next();
        closer_tx.send(()).unwrap();
        (first, sink)
    });
    closer_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("window 1..=10 did not close on the watermark");
    let (first, sink) = reader.join().unwrap();
    let first = first.unwrap();
    assert_eq!((first.first, first.last, first.complete), (1, 10, true));
    assert_eq!(first.value, vec![1, 3, 5, 7, 9]);
    drop((tx_a, tx_b, rx_b));
    assert_eq!(sink.count(), 0, "nothing after stamp 10");
}
