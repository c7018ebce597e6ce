//! Journal retention: size and age limits delete whole oldest segments; what a receiver name
//! had not committed is counted and reported as `FaultKind::Expired` before its replay.

use std::path::Path;
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, Durability, FaultKind, JournalError};

mod support;

use support::journal::{read_through, segment_files};

/// The segments' bytes and count (a segment deleted meanwhile counts 0 bytes).
fn journal_bytes(dir: &Path) -> (u64, usize) {
    let files = segment_files(dir);
    let bytes = files
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.len()))
        .sum();
    (bytes, files.len())
}

/// Reopens without retention and reads name "slow": (messages reported expired, values
/// replayed). Sends a sentinel to know where the replay ends.
fn replay_slow(dir: &Path) -> (u64, Vec<u64>) {
    let d = Builder::new()
        .bound(64)
        .inbox_capacity(1 << 16)
        .journal(dir)
        .build_journaled::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "slow");
    let read = read_through(&tx, &rx, u64::MAX);
    let mut expired = 0;
    for (before, fault) in &read.faults {
        assert_eq!(fault.kind, FaultKind::Expired, "{fault}");
        assert_eq!(*before, 0, "the loss is reported before the replay");
        expired += fault.messages_lost;
    }
    (expired, read.values)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_size_limit_deletes_oldest_segments_and_counts_what_was_unread() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 8 << 10;
    {
        let d = Builder::new()
            .bound(64)
            .inbox_capacity(1 << 16)
            .journal(dir.path())
            .durability(Durability::None)
            .journal_segment_size(2 << 10)
            .journal_retention_bytes(limit)
            .build_journaled::<u64>()
            .unwrap();
        let (tx, slow) = d.new("tx", "slow");
        let (tx_fast, fast) = d.new("tx_fast", "fast");
        for v in 0..2000 {
            tx.send(v).unwrap();
            tx_fast.send(v).unwrap();
        }
        tx.flush().unwrap();
        tx_fast.flush().unwrap();
        // "fast" reads and commits everything: nothing of it expires.
        let mut last = 0;
        while let Ok((Some(_), stamp)) = fast.recv_timeout(Duration::from_secs(5)) {
            last = stamp;
            if stamp == 4000 {
                break;
            }
        }
        fast.commit(last).unwrap();
        // The retention thread runs after each new segment; the last one can be over.
        wait_until("the journal is within its limit", || {
            journal_bytes(dir.path()).0 <= limit + (2 << 10) + 256
        });
        drop((tx, slow, tx_fast, fast));
        d.join();
    }
    let (expired, values) = replay_slow(dir.path());
    assert!(expired > 0, "something must have been deleted");
    let first = values[0];
    assert_eq!(
        first, expired,
        "exactly the first {expired} messages were lost, counted"
    );
    assert_eq!(values, (first..2000).collect::<Vec<_>>());
    // A rewind into what is gone names the oldest stamp held.
    match clocked_dispatch::journal::rewind(dir.path(), "slow", 1) {
        Err(JournalError::RewindTooOld { stamp: 1, oldest }) => {
            assert!(oldest > 1 && oldest <= 2 * first as usize + 2, "{oldest}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_age_limit_deletes_segments_whose_last_write_is_older() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = Builder::new()
            .bound(64)
            .inbox_capacity(1 << 16)
            .journal(dir.path())
            .journal_segment_size(1 << 10)
            .journal_retention_age(Duration::from_millis(200))
            .build_journaled::<u64>()
            .unwrap();
        let (tx, slow) = d.new("tx", "slow");
        for v in 0..300 {
            tx.send(v).unwrap();
        }
        tx.flush().unwrap();
        // (No count of segments here: on a loaded machine the oldest may already be gone.)
        // Once they are old, every segment but the one being written goes.
        wait_until("old segments are deleted", || {
            journal_bytes(dir.path()).1 == 1
        });
        for v in 300..310 {
            tx.send(v).unwrap();
        }
        tx.flush().unwrap();
        drop((tx, slow));
        d.join();
    }
    let (expired, values) = replay_slow(dir.path());
    assert!(expired >= 250, "{expired}");
    assert_eq!(expired + values.len() as u64, 310, "lost + replayed = sent");
    assert_eq!(*values.last().unwrap(), 309);
}
