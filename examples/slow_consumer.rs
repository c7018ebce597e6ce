//! A slow consumer does not slow anyone else down: its backlog spills to disk.
//!
//! One fast pair and one receiver that sleeps while 300 MiB are sent to it. The fast pair
//! keeps its pace; the sleeper's backlog goes to segment files; memory stays at
//! `memory_capacity` messages plus buffers. Then the sleeper wakes, drains its backlog from
//! disk, and checks that it arrived complete and in order.
//!
//! ```text
//! cargo run --release --example slow_consumer
//! ```

use std::thread;
use std::time::Instant;

use clocked_dispatch::{Builder, DiskFull};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Reading {
    seq: u64,
    payload: Vec<u8>,
}

const MESSAGES: u64 = 300_000; // per pair
const PAYLOAD: usize = 1024;

/// Peak resident set size of this process (Linux; 0 elsewhere).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("slow-consumer-{}", std::process::id()));
    let d = Builder::new()
        .bound(1024)
        .spill_to(&dir)
        .memory_capacity(4096)
        .disk_limit(4 << 30)
        .when_disk_full(DiskFull::Block)
        .build_spilling::<Reading>()?;
    let (fast_tx, fast_rx) = d.new("fast-tx", "fast");
    let (slow_tx, slow_rx) = d.new("slow-tx", "slow");

    let fast_reader = thread::spawn(move || {
        let start = Instant::now();
        let mut got = 0u64;
        while let Ok((reading, _stamp)) = fast_rx.recv() {
            got += reading.is_some() as u64;
        }
        (got, start.elapsed())
    });

    let start = Instant::now();
    let payload = vec![0xab; PAYLOAD];
    for seq in 0..MESSAGES {
        let reading = Reading {
            seq,
            payload: payload.clone(),
        };
        slow_tx.send(reading.clone())?;
        fast_tx.send(reading)?;
    }
    drop(fast_tx);
    let (fast_got, fast_time) = fast_reader.join().expect("fast reader panicked");
    let sent_time = start.elapsed();
    let status = slow_rx.spill_stats().expect("a spilling receiver");
    println!(
        "fast pair: {fast_got} messages in {fast_time:.2?} ({:.2} M msgs/s, {:.0} MB/s) while \
         'slow' read nothing",
        fast_got as f64 / fast_time.as_secs_f64() / 1e6,
        (fast_got as usize * PAYLOAD) as f64 / fast_time.as_secs_f64() / 1e6,
    );
    println!(
        "slow backlog after {sent_time:.2?}: {} in memory, {} on disk in {} segments, {:.0} MiB \
         spilled",
        status.in_memory,
        status.on_disk,
        status.segments,
        status.disk_bytes as f64 / (1 << 20) as f64
    );
    println!("peak RSS while spilling: {} MiB", peak_rss_mib());

    drop(slow_tx);
    let start = Instant::now();
    let mut expected = 0u64;
    let mut last_stamp = 0;
    while let Ok((reading, stamp)) = slow_rx.recv() {
        assert!(stamp > last_stamp, "stamps must increase");
        last_stamp = stamp;
        if let Some(reading) = reading {
            assert_eq!(reading.seq, expected, "out of order or lost");
            assert_eq!(reading.payload.len(), PAYLOAD);
            expected += 1;
        }
    }
    let drain_time = start.elapsed();
    assert_eq!(expected, MESSAGES);
    println!(
        "slow drained {expected} messages from memory and disk in {drain_time:.2?} ({:.2} M \
         msgs/s, {:.0} MB/s): complete and in order",
        expected as f64 / drain_time.as_secs_f64() / 1e6,
        (expected as usize * PAYLOAD) as f64 / drain_time.as_secs_f64() / 1e6,
    );
    println!("peak RSS overall: {} MiB", peak_rss_mib());
    drop(slow_rx);
    d.join();
    println!("spill directory removed: {}", !dir.exists());
    Ok(())
}
