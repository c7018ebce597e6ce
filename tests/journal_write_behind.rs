//! Write-behind under `Durability::Batch`: the dispatcher gathers the next batch while the
//! previous one is written and synced on the journal's writer thread; a batch is delivered,
//! and the clock published past it, only once its write returned.

use std::time::Duration;

use clocked_dispatch::{Builder, ClockedSender, Dispatcher, Durability};

mod support;
use support::journal::stats_after;

fn batch_journal(dir: &std::path::Path, bound: usize) -> Dispatcher<u64> {
    Builder::new()
        .bound(bound)
        .inbox_capacity(64)
        .journal(dir)
        .durability(Durability::Batch)
        .build_journaled::<u64>()
        .unwrap()
}

/// Sends 20,000 messages through a `Batch` journal with an intake bound of 32, by `send`
/// (on a thread of its own), reads them in order, and checks that the journal's writes took
/// batches larger than the intake: a sender blocked on a full intake of 32 would make batches
/// of at most about 32, unless the dispatcher keeps taking from the intake (and waking the
/// sender) while a sync is in flight.
fn batches_grow_past_the_bound(send: impl FnOnce(ClockedSender<u64>, u64) + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let bound = 32;
    let d = batch_journal(dir.path(), bound);
    let (tx, rx) = d.new("tx", "rx");
    let n = 20_000u64;
    let sender = std::thread::spawn(move || send(tx, n));
    let mut last_stamp = 0;
    let mut next = 0;
    while next < n {
        match rx.recv().unwrap() {
            (Some(v), stamp) => {
                assert_eq!(v, next, "out of order");
                assert!(stamp > last_stamp);
                last_stamp = stamp;
                next += 1;
            }
            (None, stamp) => assert!(stamp >= last_stamp),
        }
    }
    sender.join().unwrap();
    let stats = stats_after(&d, n);
    assert_eq!(stats.handled, n);
    let per_write = stats.handled / stats.journal_writes.max(1);
    assert!(
        per_write > 2 * bound as u64,
        "{} writes for {} messages ({per_write} per write): batches did not grow during writes",
        stats.journal_writes,
        stats.handled
    );
}

#[test]
fn batches_grow_past_the_intake_bound_while_a_write_is_in_flight() {
    batches_grow_past_the_bound(|tx, n| {
        for v in 0..n {
            tx.send(v).unwrap();
        }
    });
}

#[test]
fn the_clock_never_runs_ahead_of_a_batch_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = batch_journal(dir.path(), 256);
    let n = 10_000u64;
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for name in ["a", "b"] {
        let (tx, rx) = d.new(format!("tx-{name}"), name);
        senders.push(std::thread::spawn(move || {
            for v in 0..n {
                tx.send(v).unwrap();
            }
        }));
        readers.push(std::thread::spawn(move || {
            // Seeing stamp `ts` (data or watermark) promises nothing at or below it follows.
            let (mut seen, mut next, mut watermarks) = (0, 0, 0u64);
            while next < n {
                match rx.recv().unwrap() {
                    (Some(v), stamp) => {
                        assert_eq!(v, next);
                        assert!(stamp > seen, "message {stamp} after stamp {seen} was seen");
                        seen = stamp;
                        next += 1;
                    }
                    (None, stamp) => {
                        assert!(stamp >= seen, "watermark {stamp} after {seen}");
                        seen = stamp;
                        watermarks += 1;
                    }
                }
            }
            watermarks
        }));
    }
    for sender in senders {
        sender.join().unwrap();
    }
    let watermarks: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    // The two streams interleave, so each reader learned of the other's stamps.
    assert!(watermarks > 0);
    let stats = stats_after(&d, 2 * n);
    assert_eq!(stats.handled, 2 * n);
    assert_eq!(stats.unjournaled, 0);
}

#[test]
fn a_restart_after_write_behind_resumes_with_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000u64;
    {
        let d = batch_journal(dir.path(), 16);
        let (tx, _rx) = d.new("tx", "rx");
        for v in 0..n {
            tx.send(v).unwrap();
        }
        // Waits for the batch in flight too.
        tx.flush().unwrap();
    }
    let d = batch_journal(dir.path(), 16);
    let (_tx, rx) = d.new("tx", "rx");
    let mut next = 0;
    let mut last = 0;
    while next < n {
        if let (Some(v), stamp) = rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            assert_eq!(v, next);
            assert!(stamp > last);
            last = stamp;
            next += 1;
        }
    }
}

/// As above for a task sending with `send_async`: a task waiting for room in the intake is
/// woken while the batch gathers, not only at its end.
#[cfg(feature = "async")]
#[test]
fn async_senders_are_woken_while_a_write_is_in_flight() {
    batches_grow_past_the_bound(|tx, n| {
        futures::executor::block_on(async {
            for v in 0..n {
                tx.send_async(v).await.unwrap();
            }
        })
    });
}
