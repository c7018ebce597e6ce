//! A device that refuses every write (here `RLIMIT_FSIZE` below a segment header, so even
//! creating a segment fails with `EFBIG`: a real error from the kernel, in this test binary
//! only) is a failing disk: `Block` senders wait a bounded time and then get `DiskFailed`,
//! every other pair keeps running, and once writes work again everything accepted is
//! delivered, in order, with nothing lost.

#![cfg(target_os = "linux")]

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::rlimit::limit_file_size;

use clocked_dispatch::{Builder, DiskFull, SendErrorKind, FAILING_DISK_WAIT};

const HANG: Duration = Duration::from_secs(60);

#[test]
fn a_device_that_refuses_writes_fails_sends_then_recovers_losing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .spill_to(tmp.path())
        .memory_capacity(4)
        .when_disk_full(DiskFull::Block)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (tx2, rx2) = d.new("tx2", "rx2");
    limit_file_size(8);

    let started = Instant::now();
    let mut accepted = 0u64;
    loop {
        let sent_at = Instant::now();
        match tx.send(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(
                    matches!(e.kind(), SendErrorKind::DiskFailed { .. }),
                    "{:?}",
                    e.kind()
                );
                // Block waits for the disk, but not forever.
                assert!(sent_at.elapsed() >= FAILING_DISK_WAIT / 2);
                break;
            }
        }
        assert!(started.elapsed() < HANG, "sends never failed");
    }
    let stats = rx.spill_stats().unwrap();
    assert!(stats.disk_failing && stats.write_errors > 0, "{stats:?}");

    // The other pair, and its watermarks, go on meanwhile.
    for i in 0..100 {
        tx2.send(i).unwrap();
        let value = loop {
            if let (Some(value), _) = rx2.recv_timeout(HANG).unwrap() {
                break value;
            }
        };
        assert_eq!(value, i);
    }

    limit_file_size(libc::RLIM_INFINITY);
    let deadline = Instant::now() + HANG;
    while rx.spill_stats().unwrap().disk_failing {
        assert!(Instant::now() < deadline, "never recovered");
        thread::sleep(Duration::from_millis(5));
    }
    drop(tx);
    let mut values = Vec::new();
    let mut last = 0;
    while let Ok((value, stamp)) = rx.recv_timeout(HANG) {
        assert!(stamp > last, "stamps went backwards");
        last = stamp;
        values.extend(value);
    }
    assert_eq!(values, (0..accepted).collect::<Vec<_>>());
    let stats = rx.spill_stats().unwrap();
    assert_eq!((stats.corrupted, stats.lost), (0, 0), "{stats:?}");
}
