//! A replay starts at the segment that holds the first message after the commit: older
//! segments are not read at all (so a long journal does not make every restart read it all).

use std::path::PathBuf;

use clocked_dispatch::{Builder, Dispatcher, RecvCheckedError};

fn open(dir: &std::path::Path) -> Dispatcher<u64> {
    Builder::new()
        .bound(16)
        .inbox_capacity(1024)
        .journal(dir)
        .journal_segment_size(1 << 10)
        .build_journaled::<u64>()
        .unwrap()
}

fn segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cdj"))
        .collect();
    found.sort();
    found
}

#[test]
fn segments_wholly_below_the_commit_are_not_read_by_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path());
        let (tx, rx) = d.new("tx", "rx");
        for v in 1..=2000 {
            tx.send(v).unwrap();
        }
        let mut last = 0;
        while last < 1900 {
            if let (Some(v), stamp) = rx.recv().unwrap() {
                assert_eq!(v as usize, stamp);
                last = stamp;
            }
        }
        rx.commit(1900).unwrap();
        drop((tx, rx));
        d.join();
    }
    let files = segments(dir.path());
    // A segment rolls after a batch fills it: however the 2000 were batched (at most 256 per
    // batch), the oldest segment holds stamps far below the commit.
    assert!(files.len() >= 3, "{} segments", files.len());
    // Damage the middle of the oldest segment: a replay that read it would report it.
    let oldest = &files[0];
    let mut bytes = std::fs::read(oldest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(oldest, &bytes).unwrap();

    let d = open(dir.path());
    assert!(
        !d.recovery().unwrap().gaps.is_empty(),
        "recovery itself reads everything"
    );
    let (tx, rx) = d.new("tx", "rx");
    drop(tx);
    let mut values = Vec::new();
    loop {
        match rx.recv_checked() {
            Ok((Some(v), _)) => values.push(v),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => {
                panic!("the replay read the old segment: {fault}")
            }
            Err(RecvCheckedError::Disconnected) => break,
        }
    }
    assert_eq!(values, (1901..=2000).collect::<Vec<_>>());
}
