//! Bounded memory (DESIGN.md invariant 7): a receiver that reads nothing while 256 MiB are
//! sent to it keeps at most `memory_capacity` messages plus constant buffers in memory. Its own
//! test binary, so that no other test's allocations move the resident set measured here.

#![cfg(target_os = "linux")]

use clocked_dispatch::Builder;

/// Resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn memory_stays_bounded_whatever_the_backlog() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(256)
        .spill_to(tmp.path())
        .memory_capacity(1024)
        .build_spilling::<Vec<u8>>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let record = vec![7u8; 1024];
    // Warm up: fill memory and start spilling, so the baseline includes the constant buffers.
    for _ in 0..4096 {
        tx.send(record.clone()).unwrap();
    }
    let baseline = rss_bytes();
    let total = 256 * 1024; // 256 MiB of 1 KiB payloads
    for _ in 4096..total {
        tx.send(record.clone()).unwrap();
    }
    let stats = loop {
        let stats = rx.spill_stats().unwrap();
        if stats.in_memory + stats.on_disk == total as u64 {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(stats.disk_bytes > 256 << 20, "{stats:?}");
    assert!(
        grown < 32 << 20,
        "RSS grew {} MiB while {} MiB went to disk",
        grown >> 20,
        stats.disk_bytes >> 20
    );
    // And it all comes back.
    drop(tx);
    let mut count = 0;
    while let Ok((value, _)) = rx.recv() {
        if let Some(value) = value {
            assert_eq!(value, record);
            count += 1;
        }
    }
    assert_eq!(count, total);
}
