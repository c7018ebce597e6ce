//! Spill to disk: behaviour a user can observe. Each test names the failure it rules out;
//! several are the flaws found in hopper 0.4.2 (see the spill issue), which must not recur.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;
use std::thread;
use std::time::{Duration, Instant};

use clocked_dispatch::{
    Builder, ClockedReceiver, DiskFull, FaultKind, RecvCheckedError, SendErrorKind, SpillSetupError,
};

/// A spilling dispatcher of `u64` under `dir` keeping `memory` messages per receiver.
fn spilling(dir: &Path, memory: usize) -> Builder {
    Builder::new()
        .bound(64)
        .spill_to(dir)
        .memory_capacity(memory)
        .segment_size(4096)
}

/// Reads until closed; returns the data items with their stamps.
fn drain<T>(rx: &ClockedReceiver<T>) -> Vec<(T, usize)> {
    let mut got = Vec::new();
    while let Ok((value, stamp)) = rx.recv() {
        if let Some(value) = value {
            got.push((value, stamp));
        }
    }
    got
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for rx_dir in fs::read_dir(dir).unwrap().flatten() {
        if rx_dir.path().is_dir() {
            for file in fs::read_dir(rx_dir.path()).unwrap().flatten() {
                if file.file_name().to_string_lossy().ends_with(".spill") {
                    files.push(file.path());
                }
            }
        }
    }
    files.sort();
    files
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_backlog_spills_and_comes_back_complete_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spill");
    let d = spilling(&dir, 8).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..10_000u64 {
        tx.send(i).unwrap();
    }
    wait_until("the backlog is on disk", || {
        rx.spill_stats().unwrap().on_disk == 10_000 - 8
    });
    let stats = rx.spill_stats().unwrap();
    assert_eq!(stats.in_memory, 8);
    assert!(
        stats.segments > 1,
        "segment_size 4096 must rotate: {stats:?}"
    );
    assert!(!segment_files(&dir).is_empty());
    drop(tx);
    let got = drain(&rx);
    let want: Vec<(u64, usize)> = (0..10_000).map(|i| (i, i as usize + 1)).collect();
    assert_eq!(got, want);
    let stats = rx.spill_stats().unwrap();
    assert_eq!((stats.on_disk, stats.in_memory, stats.segments), (0, 0, 0));
    assert_eq!(stats.spilled, 10_000 - 8);
    assert!(segment_files(&dir).is_empty(), "read segments are deleted");
    drop(rx);
    d.join();
    assert!(!dir.exists(), "a clean shutdown leaves nothing behind");
}

#[test]
fn one_receiver_that_never_reads_does_not_slow_another_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 4).build_spilling::<u64>().unwrap();
    let (slow_tx, slow_rx) = d.new("slow_tx", "slow");
    let (fast_tx, fast_rx) = d.new("fast_tx", "fast");
    let n = 50_000u64;
    let reader = thread::spawn(move || {
        let mut got = 0;
        while let Ok((value, _)) = fast_rx.recv() {
            got += value.is_some() as u64;
        }
        got
    });
    for i in 0..n {
        slow_tx.send(i).unwrap();
        fast_tx.send(i).unwrap();
    }
    drop(fast_tx);
    // With 4.0.2 (or without spill) this join never returns: the dispatcher would wait for
    // `slow`, which reads nothing until the fast pair is done.
    assert_eq!(reader.join().unwrap(), n);
    let stats = slow_rx.spill_stats().unwrap();
    assert_eq!(
        stats.in_memory + stats.on_disk,
        n,
        "{stats:?} {:?}",
        d.stats()
    );
    drop(slow_tx);
    let got = drain(&slow_rx);
    assert_eq!(got.len() as u64, n);
    assert!(got
        .windows(2)
        .all(|w| w[0].1 < w[1].1 && w[0].0 + 1 == w[1].0));
}

#[test]
fn the_first_overflowing_message_is_readable_at_once() {
    // hopper: the first item past memory stays invisible until the next send.
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 1).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    wait_until("both are stamped", || d.stats().clock == 2);
    assert_eq!(rx.try_recv(), Ok((Some(1), 1)));
    assert_eq!(rx.try_recv(), Ok((Some(2), 2)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn the_receiver_ends_once_every_sender_is_gone() {
    // hopper: its receiver never ends after every sender is gone.
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 2).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    drop(d);
    let reader = thread::spawn(move || drain(&rx).len());
    assert_eq!(reader.join().unwrap(), 1000);
}

#[test]
fn watermarks_and_broadcasts_are_unchanged_by_spill() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 2).build_spilling::<u64>().unwrap();
    let (tx_a, rx_a) = d.new("atx", "a");
    let (tx_b, rx_b) = d.new("btx", "b");
    for i in 0..100 {
        tx_a.send(i).unwrap();
    }
    let bcast = tx_b.into_broadcaster();
    bcast.broadcast(1000).unwrap();
    for i in 0..50 {
        tx_a.send(2000 + i).unwrap();
    }
    drop((tx_a, bcast));
    let mut a = Vec::new();
    while let Ok(item) = rx_a.recv() {
        a.push(item);
    }
    let data: Vec<usize> = a.iter().filter(|i| i.0.is_some()).map(|i| i.1).collect();
    assert_eq!(data, (1..=151).collect::<Vec<_>>());
    assert_eq!(a[100], (Some(1000), 101), "the broadcast sits at its stamp");
    let b: Vec<_> = rx_b.collect();
    // b saw the broadcast at 101, watermarks around it, and the final clock.
    assert!(b.contains(&(Some(1000), 101)));
    assert!(b.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(b.last().map(|i| i.1), Some(151));
}

/// Spills 64-byte values to a receiver that does not read, then damages its files with
/// `damage` and reads back. Returns the values read, the faults reported, and the stats.
/// What a read after damage returned: the values with their stamps, the faults, the total lost.
type AfterDamage = (
    Vec<(Vec<u8>, usize)>,
    Vec<clocked_dispatch::SpillFault>,
    u64,
);

fn read_after_damage(damage: impl FnOnce(&[PathBuf])) -> AfterDamage {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 1).build_spilling::<Vec<u8>>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let value = |i: u64| vec![i as u8; 64];
    for i in 0..1000 {
        tx.send(value(i)).unwrap();
    }
    drop(tx);
    wait_until("everything is on disk", || {
        rx.spill_stats().unwrap().on_disk == 999
    });
    let files = segment_files(tmp.path());
    assert!(files.len() > 3);
    damage(&files);
    let mut got = Vec::new();
    let mut faults = Vec::new();
    loop {
        match rx.recv_checked() {
            Ok((Some(v), stamp)) => got.push((v, stamp)),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => faults.push(fault),
            Err(RecvCheckedError::Disconnected) => break,
        }
    }
    for (v, stamp) in &got {
        assert_eq!(
            *v,
            value(*stamp as u64 - 1),
            "a damaged record was delivered"
        );
    }
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    let lost: u64 = faults.iter().map(|f| f.messages_lost).sum();
    assert_eq!(
        got.len() as u64 + lost,
        1000,
        "every message delivered or reported"
    );
    let stats = rx.spill_stats().unwrap();
    assert_eq!(stats.corrupted, lost);
    (got, faults, lost)
}

#[test]
fn a_flipped_byte_is_reported_never_delivered() {
    // hopper: a flipped byte is delivered as a wrong value most of the time.
    let (_, faults, lost) = read_after_damage(|files| {
        let mut bytes = fs::read(&files[1]).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        fs::write(&files[1], bytes).unwrap();
    });
    assert_eq!(faults.len(), 1);
    assert!(matches!(
        faults[0].kind,
        FaultKind::Checksum | FaultKind::BadLength(_) | FaultKind::Truncated
    ));
    assert!(
        (1..100).contains(&lost),
        "only the rest of one segment: {lost}"
    );
}

#[test]
fn a_torn_tail_is_reported_as_truncated() {
    let (_, faults, _) = read_after_damage(|files| {
        let last = files.last().unwrap();
        let len = fs::metadata(last).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
    });
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].kind, FaultKind::Truncated);
    assert_eq!(faults[0].messages_lost, 1);
}

#[test]
fn a_foreign_header_or_missing_file_loses_only_that_segment() {
    let (_, faults, _) = read_after_damage(|files| {
        fs::write(
            &files[0],
            b"not ours at all, but long enough to have a header",
        )
        .unwrap();
        fs::remove_file(&files[2]).unwrap();
    });
    assert!(
        faults
            .iter()
            .all(|f| f.segment.extension().is_some_and(|e| e == "spill")),
        "a fault names its segment file: {faults:?}"
    );
    let kinds: Vec<FaultKind> = faults.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FaultKind::BadHeader,
            FaultKind::Io(std::io::ErrorKind::NotFound)
        ]
    );
}

#[test]
fn plain_recv_skips_damage_and_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 1).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..2000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    wait_until("on disk", || rx.spill_stats().unwrap().on_disk == 1999);
    let files = segment_files(tmp.path());
    let mut bytes = fs::read(&files[0]).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    fs::write(&files[0], bytes).unwrap();
    let got = drain(&rx);
    let corrupted = rx.spill_stats().unwrap().corrupted;
    assert!(corrupted >= 1);
    assert_eq!(got.len() as u64 + corrupted, 2000);
    assert!(got.iter().all(|&(v, stamp)| v + 1 == stamp as u64));
}

#[test]
fn drop_oldest_keeps_to_the_limit_and_counts_what_it_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 64 * 1024;
    let d = spilling(tmp.path(), 4)
        .disk_limit(limit)
        .when_disk_full(DiskFull::DropOldest)
        .build_spilling::<Vec<u8>>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let n = 5000u64;
    let mut peak = 0;
    for i in 0..n {
        tx.send(vec![i as u8; 100]).unwrap();
        if i % 64 == 0 {
            peak = peak.max(rx.spill_stats().unwrap().disk_bytes);
        }
    }
    drop(tx);
    let got = drain(&rx);
    let stats = rx.spill_stats().unwrap();
    assert!(stats.dropped > 0);
    assert_eq!(got.len() as u64 + stats.dropped, n, "{stats:?}");
    assert!(peak <= limit, "disk held {peak} bytes, limit {limit}");
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
    // What survives is the oldest in memory, then the newest from disk.
    assert_eq!(got.last().map(|g| g.1 as u64), Some(n));
    assert!(got
        .iter()
        .all(|(v, stamp)| v[0] == (*stamp as u64 - 1) as u8));
}

#[test]
fn block_holds_only_sends_to_the_full_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 4)
        .disk_limit(16 * 1024)
        .when_disk_full(DiskFull::Block)
        .build_spilling::<Vec<u8>>()
        .unwrap();
    let (slow_tx, slow_rx) = d.new("slow_tx", "slow");
    let (fast_tx, fast_rx) = d.new("fast_tx", "fast");
    let n = 2000u64;
    let writer = thread::spawn(move || {
        for i in 0..n {
            slow_tx.send(vec![i as u8; 100]).unwrap();
        }
    });
    wait_until("sends to slow are held", || {
        slow_rx.spill_stats().unwrap().sends_held
    });
    assert!(!writer.is_finished(), "the writer must be waiting");
    // The other pair is not held.
    for i in 0..1000 {
        fast_tx.send(vec![i as u8]).unwrap();
        // Skip watermarks: slow's messages move fast's clock too.
        let got = loop {
            if let (Some(v), _) = fast_rx.recv().unwrap() {
                break v;
            }
        };
        assert_eq!(got, vec![i as u8]);
    }
    let stats = slow_rx.spill_stats().unwrap();
    // The overshoot is bounded by what was already in the intake (bound 64) plus a batch.
    assert!(stats.disk_bytes < 16 * 1024 + 400 * 120, "{stats:?}");
    let mut got = Vec::new();
    while (got.len() as u64) < n {
        if let (Some(v), stamp) = slow_rx.recv().unwrap() {
            got.push((v, stamp));
        }
    }
    writer.join().unwrap();
    assert!(got.iter().enumerate().all(|(i, (v, _))| v[0] == i as u8));
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
}

#[test]
fn reject_hands_the_value_back_and_loses_nothing_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 4)
        .disk_limit(8 * 1024)
        .when_disk_full(DiskFull::Reject)
        .build_spilling::<Vec<u8>>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for i in 0..3000u32 {
        let value = i.to_le_bytes().repeat(25);
        match tx.send(value.clone()) {
            Ok(()) => accepted.push(value),
            Err(e) => {
                assert_eq!(e.kind(), SendErrorKind::DiskFull { limit: 8 * 1024 });
                assert_eq!(e.into_inner(), value);
                rejected += 1;
            }
        }
    }
    assert!(rejected > 0);
    drop(tx);
    let got: Vec<Vec<u8>> = drain(&rx).into_iter().map(|(v, _)| v).collect();
    assert_eq!(got, accepted);
}

#[test]
fn two_dispatchers_cannot_share_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let first = spilling(tmp.path(), 4).build_spilling::<u64>().unwrap();
    match spilling(tmp.path(), 4).build_spilling::<u64>() {
        Err(SpillSetupError::InUse { path }) => assert_eq!(path, tmp.path()),
        other => panic!("expected InUse, got {:?}", other.map(|_| ())),
    }
    first.join();
    let second = spilling(tmp.path(), 4).build_spilling::<u64>();
    assert!(second.is_ok(), "the lock is released with the dispatcher");
}

#[test]
fn an_unusable_directory_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    match spilling(&file, 4).build_spilling::<u64>() {
        Err(SpillSetupError::Io { path, .. }) => assert_eq!(path, file),
        other => panic!("expected Io, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn strangers_in_the_directory_are_left_alone_and_stale_segments_swept() {
    // hopper: any non-numeric file name in its directory makes it panic.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    fs::create_dir(dir.join("1234")).unwrap();
    let stale = dir.join("rx-0-rx");
    fs::create_dir(&stale).unwrap();
    fs::write(
        stale.join("seg-00000000000000000000.spill"),
        b"CDSPILL\0junk",
    )
    .unwrap();
    fs::write(stale.join("keep.me"), b"not a segment").unwrap();

    let d = spilling(dir, 1).build_spilling::<u64>().unwrap();
    assert!(!stale.join("seg-00000000000000000000.spill").exists());
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..500 {
        tx.send(i).unwrap();
    }
    drop(tx);
    assert_eq!(drain(&rx).len(), 500);
    drop(rx);
    d.join();
    let mut left: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["1234", "notes.txt", "rx-0-rx"]);
    assert!(stale.join("keep.me").exists());
}

#[test]
fn dropping_a_receiver_removes_its_files_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 1).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "gone");
    let (_keep_tx, _keep_rx) = d.new("ktx", "kept");
    for i in 0..5000 {
        tx.send(i).unwrap();
    }
    wait_until("spilled", || rx.spill_stats().unwrap().on_disk > 0);
    drop(rx);
    assert_eq!(
        tx.send(1).map_err(|e| e.kind()),
        Err(SendErrorKind::ReceiverGone)
    );
    wait_until("its directory is gone", || {
        !fs::read_dir(tmp.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with("-gone"))
    });
    assert_eq!(d.spill_status().len(), 1);
    assert_eq!(d.spill_status()[0].receiver, "kept");
}

#[test]
fn forwarding_through_a_spilling_dispatcher_keeps_stamp_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), 2).build_spilling::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let tx2 = tx.clone("tx2");
    let odd = thread::spawn(move || {
        for stamp in (1..=4000).step_by(2) {
            tx.forward(Some(stamp as u64), stamp).unwrap();
        }
    });
    for stamp in (2..=4000).step_by(2) {
        tx2.forward(
            if stamp % 4 == 0 {
                None
            } else {
                Some(stamp as u64)
            },
            stamp,
        )
        .unwrap();
    }
    drop(tx2);
    odd.join().unwrap();
    let got = drain(&rx);
    assert_eq!(got.len(), 3000);
    assert!(got.iter().all(|&(v, stamp)| v == stamp as u64));
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
}
