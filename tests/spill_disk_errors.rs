//! A disk that refuses writes. `RLIMIT_FSIZE` makes every write past 64 KiB in a file fail
//! (`EFBIG`), a real write error from the kernel, in this test binary only (it is its own
//! process). The dispatcher must cut the torn write back, retry in a fresh segment, count the
//! error, and lose nothing.

#![cfg(target_os = "linux")]

mod support;

use support::rlimit::limit_file_size;

use clocked_dispatch::Builder;

#[test]
fn failing_writes_are_retried_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    limit_file_size(64 * 1024);
    let d = Builder::new()
        .bound(64)
        .spill_to(tmp.path())
        .memory_capacity(4)
        .segment_size(1 << 20) // larger than any file may grow: writes will fail
        .build_spilling::<Vec<u8>>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let n = 20_000u32;
    for i in 0..n {
        tx.send(i.to_le_bytes().repeat(16)).unwrap();
    }
    drop(tx);
    let mut got = Vec::new();
    while let Ok((value, stamp)) = rx.recv() {
        if let Some(value) = value {
            got.push((value, stamp));
        }
    }
    let stats = rx.spill_stats().unwrap();
    assert!(
        stats.write_errors > 0,
        "the limit must have bitten: {stats:?}"
    );
    assert_eq!(
        stats.corrupted, 0,
        "a torn write was left in a segment: {stats:?}"
    );
    assert_eq!(got.len() as u32, n);
    for (i, (value, stamp)) in got.iter().enumerate() {
        assert_eq!(*value, (i as u32).to_le_bytes().repeat(16));
        assert_eq!(*stamp, i + 1);
    }
}
