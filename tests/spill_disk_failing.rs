//! A spill directory that fails for good (deleted by a `/tmp` cleaner, replaced by something
//! that is not a directory) must not hang anyone: the dispatcher recreates what it can, keeps
//! every other pair running, tells senders with a typed error, tells the receiver through
//! `recv_checked`, and delivers what it accepted once the disk works again.
//!
//! Every wait is bounded: a sender or reader that hangs fails the test through a watchdog
//! instead of hanging it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clocked_dispatch::{
    Builder, ClockedReceiver, ClockedSender, DiskFull, FaultKind, RecvCheckedError, SendErrorKind,
    SpillFault,
};

const HANG: Duration = Duration::from_secs(60);

fn spilling(dir: &Path, when_full: DiskFull) -> Builder {
    Builder::new()
        .bound(64)
        .spill_to(dir)
        .memory_capacity(4)
        .segment_size(4096)
        .when_disk_full(when_full)
}

/// Runs `work` on a thread and returns its result, failing the test if it takes longer than
/// [`HANG`].
fn within<R: Send + 'static>(what: &str, work: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(work());
    });
    result
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
}

/// Another pair of the same dispatcher still works: `n` round trips.
fn other_pair_runs(tx: &ClockedSender<u64>, rx: &ClockedReceiver<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).unwrap();
        loop {
            match rx.recv_timeout(HANG) {
                Ok((Some(v), _)) => {
                    assert_eq!(v, i);
                    break;
                }
                Ok((None, _)) => {}
                Err(e) => panic!("the other pair stalled: {e:?}"),
            }
        }
    }
}

/// Everything a receiver returns until it closes.
#[derive(Default)]
struct Read {
    values: Vec<u64>,
    stamps: Vec<usize>,
    faults: Vec<SpillFault>,
}

fn read_all(rx: ClockedReceiver<u64>) -> Read {
    within("reading the failing receiver", move || {
        let mut read = Read::default();
        loop {
            match rx.recv_checked() {
                Ok((value, stamp)) => {
                    read.values.extend(value);
                    read.stamps.push(stamp);
                }
                Err(RecvCheckedError::Spill(fault)) => read.faults.push(fault),
                Err(RecvCheckedError::Disconnected) => return read,
            }
        }
    })
}

fn assert_sound(read: &Read) {
    assert!(
        read.stamps.windows(2).all(|w| w[0] < w[1]),
        "stamps went backwards"
    );
    assert!(
        !read
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::BadStamp(_))),
        "a record below a returned watermark: {:?}",
        read.faults
    );
}

/// Deletes `dir` as a `/tmp` cleaner would, again while the dispatcher writes new files into
/// it, until it is gone.
fn delete(dir: &Path) {
    let started = Instant::now();
    while let Err(e) = std::fs::remove_dir_all(dir) {
        assert!(
            started.elapsed() < HANG,
            "cannot delete {}: {e}",
            dir.display()
        );
    }
}

/// Puts a regular file where the receiver's directory `dir` is (deleting it first, again if
/// the dispatcher recreates it in between).
fn replace_with_a_file(dir: &Path) {
    let started = Instant::now();
    loop {
        delete(dir);
        if std::fs::write(dir, b"not a directory").is_ok() {
            return;
        }
        assert!(started.elapsed() < HANG, "cannot replace {}", dir.display());
    }
}

/// Sends `from`, `from + 1`, … until a send fails with `DiskFailed`; returns how many values
/// in all (counting from 0) were accepted, and the error's kind. The failed value comes back.
fn send_until_failed(tx: &ClockedSender<u64>, from: u64) -> (u64, std::io::ErrorKind) {
    let started = Instant::now();
    let mut accepted = from;
    loop {
        match tx.send(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => match e.kind() {
                SendErrorKind::DiskFailed { kind } => {
                    assert_eq!(e.into_inner(), accepted, "the value comes back");
                    return (accepted, kind);
                }
                other => panic!("expected DiskFailed, got {other:?}"),
            },
        }
        assert!(started.elapsed() < HANG, "sends never failed");
        if accepted.is_multiple_of(64) {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Checks that every accepted value was delivered or reported lost, and returns the lost.
fn delivered_or_reported(read: &Read, accepted: u64) -> u64 {
    assert_sound(read);
    let lost: u64 = read.faults.iter().map(|f| f.messages_lost).sum();
    assert_eq!(
        read.values.len() as u64 + lost,
        accepted,
        "{:?}",
        read.faults
    );
    assert!(read.values.windows(2).all(|w| w[0] < w[1]));
    lost
}

fn receiver_dir(root: &Path) -> PathBuf {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.is_dir())
        .expect("the receiver's directory")
}

#[test]
fn a_deleted_directory_is_recreated_and_no_send_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spill");
    let d = spilling(&root, DiskFull::Block)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (tx2, rx2) = d.new("tx2", "rx2");
    for i in 0..10_000 {
        tx.send(i).unwrap();
    }
    // As a /tmp cleaner would.
    delete(&root);
    let tx = within("sending after the directory was deleted", move || {
        for i in 10_000..20_000 {
            tx.send(i).unwrap();
        }
        tx
    });
    other_pair_runs(&tx2, &rx2, 100);
    drop(tx);
    let read = read_all(rx);
    // What was on disk when the directory went is lost, reported, and counted; nothing
    // else. Everything sent after is delivered, in order.
    delivered_or_reported(&read, 20_000);
    let after: Vec<u64> = read
        .values
        .iter()
        .copied()
        .filter(|&v| v >= 10_000)
        .collect();
    assert_eq!(after, (10_000..20_000).collect::<Vec<_>>());
    assert!(
        read.faults
            .iter()
            .any(|f| f.kind == FaultKind::Io(std::io::ErrorKind::NotFound)),
        "{:?}",
        read.faults
    );
}

#[test]
fn an_unusable_directory_fails_sends_keeps_others_running_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), DiskFull::Reject)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (tx2, rx2) = d.new("tx2", "rx2");
    for i in 0..1_000 {
        tx.send(i).unwrap();
    }
    // Something that is not a directory where the receiver's directory was: every write and
    // every attempt to recreate it fails (as root, too, unlike a chmod).
    let dir = receiver_dir(tmp.path());
    replace_with_a_file(&dir);

    // Senders learn it with a typed error; what they sent before is kept.
    let (mut accepted, kind) = send_until_failed(&tx, 1_000);
    let stats = rx.spill_stats().unwrap();
    assert!(stats.disk_failing, "{stats:?}");
    assert!(
        stats
            .disk_error
            .as_deref()
            .is_some_and(|text| text.contains(&*dir.to_string_lossy())),
        "{stats:?}"
    );
    // Every other pair goes on while the disk fails.
    other_pair_runs(&tx2, &rx2, 200);

    // The disk comes back: the dispatcher retries on its own and delivers what it kept.
    std::fs::remove_file(&dir).unwrap();
    let deadline = Instant::now() + HANG;
    while rx.spill_stats().unwrap().disk_failing {
        assert!(Instant::now() < deadline, "never recovered");
        thread::sleep(Duration::from_millis(5));
    }
    tx.send(accepted).unwrap();
    accepted += 1;
    drop(tx);
    let read = read_all(rx);
    let lost = delivered_or_reported(&read, accepted);
    // The failure itself was reported once, with nothing lost by it.
    assert!(
        read.faults
            .iter()
            .any(|f| f.kind == FaultKind::Io(kind) && f.messages_lost == 0),
        "{:?}",
        read.faults
    );
    // Only what sat in files of the deleted directory was lost: nothing sent after it.
    assert!(lost <= 1_000, "lost {lost}");
}

#[test]
fn a_receiver_closed_on_a_failing_disk_reports_what_it_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let d = spilling(tmp.path(), DiskFull::Reject)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..100 {
        tx.send(i).unwrap();
    }
    let dir = receiver_dir(tmp.path());
    replace_with_a_file(&dir);
    let (accepted, kind) = send_until_failed(&tx, 100);
    drop(tx);
    let read = read_all(rx);
    delivered_or_reported(&read, accepted);
    // What was still waiting for the disk when the receiver closed is reported as lost.
    assert!(
        read.faults
            .iter()
            .any(|f| f.kind == FaultKind::Io(kind) && f.segment == dir && f.messages_lost > 0),
        "{:?}",
        read.faults
    );
    assert!(d.spill_status().is_empty(), "the receiver is gone");
}
