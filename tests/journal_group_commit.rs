//! Group commit: under `Durability::Always` concurrent senders share the journal's writes (and
//! their syncs).

use clocked_dispatch::{journal, Builder, Durability};

mod support;
use support::journal::stats_after;

#[test]
fn concurrent_always_senders_share_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .inbox_capacity(4096)
        .journal(dir.path())
        .durability(Durability::Always)
        .build_journaled::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (senders, each) = (8u64, 40u64);
    let threads: Vec<_> = (0..senders)
        .map(|t| {
            let tx = tx.clone(format!("tx{t}"));
            std::thread::spawn(move || {
                for v in 0..each {
                    // Returns once this message is stored and synced.
                    tx.send(t * 1000 + v).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut got = 0;
    while got < senders * each {
        if let (Some(_), _) = rx.recv().unwrap() {
            got += 1;
        }
    }
    let stats = stats_after(&d, senders * each);
    assert_eq!(stats.handled, senders * each);
    assert!(
        stats.journal_writes * 2 <= stats.handled,
        "{} writes for {} messages: the senders did not share syncs",
        stats.journal_writes,
        stats.handled
    );
}

#[test]
fn a_broadcaster_flush_waits_for_its_broadcasts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .journal(dir.path())
        .durability(Durability::Batch)
        .build_journaled::<u64>()
        .unwrap();
    let (tx, _rx) = d.new("tx", "rx");
    let everyone = tx.into_broadcaster();
    for v in 0..1000 {
        everyone.broadcast(v).unwrap();
    }
    everyone.flush().unwrap();
    // Every broadcast is in the journal's files by now (`broadcast` alone returns once the
    // message is in the intake, long before the dispatcher has written 1000 of them).
    let records = journal::inspect::records(dir.path()).unwrap();
    let mut stamps = Vec::new();
    for item in records {
        if let journal::inspect::Item::Record(record) = item {
            if let journal::inspect::RecordKind::Broadcast { stamp, .. } = record.kind {
                stamps.push(stamp);
            }
        }
    }
    assert_eq!(stamps, (1..=1000).collect::<Vec<_>>());
}
