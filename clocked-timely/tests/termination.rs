//! Computations over sources end when the senders are gone, and not before.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clocked_dispatch::fuse;
use clocked_timely::{per_worker, SourceHandle, TakeError, WorkerSlots, Workers};
use timely::dataflow::operators::Inspect;

use support::within;

/// Runs a two-worker computation reading `readers`; returns each worker's source handle
/// once the computation has ended.
fn count_on_two_workers(
    readers: WorkerSlots<clocked_dispatch::ClockedReceiver<u64>>,
) -> Vec<SourceHandle> {
    let guards = timely::execute(timely::Config::process(2), move |worker| {
        worker.dataflow::<u64, _, _>(|scope| {
            let (numbers, handle) = readers.source(scope).expect("each worker takes its reader");
            numbers.inspect(|n| assert!(*n < 1_000_000));
            handle
        })
    })
    .expect("timely starts");
    guards
        .join()
        .into_iter()
        .map(|r| r.expect("a worker finished"))
        .collect()
}

#[test]
fn the_computation_ends_when_the_senders_drop() {
    let handles = within(Duration::from_secs(60), || {
        let d = clocked_dispatch::new::<u64>(64);
        let (senders, readers) = per_worker(&d, Workers::local(2), "n").unwrap();
        let producer = thread::spawn(move || {
            for n in 0..10_000u64 {
                senders.for_key(n / 7).send(n).unwrap();
            }
            // `senders` drops here: both receivers close
        });
        let handles = count_on_two_workers(readers);
        producer.join().unwrap();
        handles
    });
    assert!(handles.iter().all(SourceHandle::is_closed));
    assert_eq!(handles.iter().map(SourceHandle::data).sum::<u64>(), 10_000);
    // every stamp reached every worker, as data or as a watermark
    assert!(handles.iter().all(|h| h.last_stamp() == 10_000));
}

#[test]
fn a_source_without_data_ends_too() {
    let handles = within(Duration::from_secs(30), || {
        let d = clocked_dispatch::new::<u64>(64);
        let (senders, readers) = per_worker(&d, Workers::local(2), "n").unwrap();
        let (elsewhere, _rx) = d.new("elsewhere-tx", "elsewhere");
        for n in 0..20 {
            elsewhere.send(n).unwrap(); // watermarks only, for both workers (20 fit the inbox)
        }
        drop(senders);
        count_on_two_workers(readers)
    });
    assert!(handles.iter().all(|h| h.is_closed() && h.data() == 0));
}

#[test]
fn a_live_idle_sender_keeps_the_computation_open_until_it_drops() {
    let d = clocked_dispatch::new::<u64>(64);
    let (senders, readers) = per_worker(&d, Workers::local(2), "n").unwrap();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(count_on_two_workers(readers));
    });
    senders.for_key(0).send(1).unwrap();
    assert_eq!(
        done.recv_timeout(Duration::from_millis(300)).err(),
        Some(mpsc::RecvTimeoutError::Timeout),
        "the computation ended while a sender was alive"
    );
    drop(senders);
    let handles = done
        .recv_timeout(Duration::from_secs(30))
        .expect("the computation ends once the senders drop");
    assert_eq!(handles.iter().map(SourceHandle::data).sum::<u64>(), 1);
}

#[test]
fn a_fused_stream_on_one_worker_and_an_absent_source_on_the_other() {
    let (handles, data) = within(Duration::from_secs(30), || {
        let d = clocked_dispatch::new::<u64>(64);
        let (tx_a, rx_a) = d.new("a-tx", "a");
        let (tx_b, rx_b) = d.new("b-tx", "b");
        let fused = fuse(vec![rx_a, rx_b]).expect("one dispatcher");
        let readers = WorkerSlots::on_worker(0, fused);
        let (seen_tx, seen) = mpsc::channel();
        let seen_tx = std::sync::Mutex::new(seen_tx);
        let producer = thread::spawn(move || {
            for n in 0..500u64 {
                let tx = if n % 3 == 0 { &tx_a } else { &tx_b };
                tx.send(n).unwrap();
            }
        });
        let guards = timely::execute(timely::Config::process(2), move |worker| {
            let seen_tx = seen_tx.lock().unwrap().clone();
            worker.dataflow::<u64, _, _>(|scope| {
                let (numbers, handle) = readers.source(scope).unwrap();
                numbers.inspect_core(move |event| {
                    if let Ok((stamp, data)) = event {
                        let time = *stamp.least().expect("a record has a time");
                        data.iter().for_each(|n| seen_tx.send((time, *n)).unwrap());
                    }
                });
                handle
            })
        })
        .unwrap();
        let handles: Vec<SourceHandle> = guards.join().into_iter().map(Result::unwrap).collect();
        producer.join().unwrap();
        let mut data: Vec<(u64, u64)> = seen.try_iter().collect();
        data.sort();
        (handles, data)
    });
    assert!(handles.iter().all(SourceHandle::is_closed));
    assert_eq!(
        handles.iter().map(SourceHandle::data).collect::<Vec<_>>(),
        vec![500, 0]
    );
    // the n-th message sent has stamp n + 1
    assert_eq!(data, (0..500).map(|n| (n + 1, n)).collect::<Vec<_>>());
}

#[test]
fn a_reader_is_taken_once() {
    let d = clocked_dispatch::new::<u64>(4);
    let (_senders, readers) = per_worker(&d, Workers::local(2), "n").unwrap();
    assert!(readers.take(1).unwrap().is_some());
    assert_eq!(
        readers.take(1).err(),
        Some(TakeError::AlreadyTaken { worker: 1 })
    );
    assert!(
        readers.take(7).unwrap().is_none(),
        "no reader for a worker of another process"
    );
}
