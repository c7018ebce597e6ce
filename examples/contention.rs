//! The workloads behind `benches/contention.sh`: many threads on few cores, where what costs is
//! waking and parking, not the instructions of a hop. Each run moves `n` u64 messages and prints
//! one line, `<workload> <messages> <seconds>`; the script runs it under `perf stat` for the
//! CPU time and context switches it cost.
//!
//! ```text
//! cargo run --release --example contention -- pair 2000000
//! cargo run --release --example contention -- fanout-parked 2000000   # + 63 receivers in recv
//! cargo run --release --example contention -- fanout-idle 2000000     # + 63 that never read
//! cargo run --release --example contention -- pairs16 4000000         # 16 pairs at once
//! cargo run --release --example contention -- forward 2000000         # 2 forwarders, 1 reader
//! ```
//!
//! It uses only API the crate has had since before the hot-path work of issue 17 (`new`,
//! `Builder`, `Dispatcher::new`, `send`, `forward`, `recv`), so the script can build it in a
//! checkout of an older commit and compare.

use std::thread;
use std::time::Instant;

/// Reads from `rx` until `n` data messages came (watermarks are skipped).
fn read_data(rx: &clocked_dispatch::ClockedReceiver<u64>, n: u64) {
    let mut got = 0;
    while got < n {
        if let (Some(_), _) = rx.recv().expect("its senders alive") {
            got += 1;
        }
    }
}

/// One sender, one receiver (the measured pair), plus `extra` receivers with a sender each
/// that never sends: `parked` ones wait in `recv` (and so are woken as the clock moves),
/// others are never read.
fn pair_with(extra: usize, parked: bool, n: u64) {
    let d = clocked_dispatch::new::<u64>(1024);
    let (tx, rx) = d.new("tx", "rx");
    let mut senders = Vec::new();
    let mut idle = Vec::new();
    let mut readers = Vec::new();
    for i in 0..extra {
        let (etx, erx) = d.new(format!("etx{i}"), format!("erx{i}"));
        senders.push(etx);
        if parked {
            readers.push(thread::spawn(move || while erx.recv().is_ok() {}));
        } else {
            idle.push(erx);
        }
    }
    let sender = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).expect("receiver alive");
        }
    });
    read_data(&rx, n);
    sender.join().expect("sender panicked");
    drop(senders);
    for reader in readers {
        reader.join().expect("reader panicked");
    }
}

/// `pairs` pairs at once, each with its own sender and receiver thread: `n` messages in all.
fn pairs(pairs: u64, n: u64) {
    let d = clocked_dispatch::new::<u64>(1024);
    let per = n / pairs;
    thread::scope(|s| {
        for i in 0..pairs {
            let (tx, rx) = d.new(format!("tx{i}"), format!("rx{i}"));
            s.spawn(move || (0..per).for_each(|i| tx.send(i).expect("receiver alive")));
            s.spawn(move || read_data(&rx, per));
        }
    });
}

/// Two forwarders, one with the odd stamps and one with the even, into one receiver: the
/// reorder window puts them back in order. The window is wide enough for the two threads to
/// drift apart freely, as in `benches/dispatch.rs`.
fn forward(n: u64) {
    let d = clocked_dispatch::Builder::new()
        .bound(1024)
        .reorder_window(usize::MAX / 2)
        .build::<u64>();
    let (tx, rx) = d.new("even", "rx");
    let last = n as usize + 1; // stamps 1..=n
    thread::scope(|s| {
        for parity in 0..2 {
            let tx = tx.clone("forwarder");
            s.spawn(move || {
                for stamp in (1..last).filter(|stamp| stamp % 2 == parity) {
                    tx.forward(Some(stamp as u64), stamp)
                        .expect("in the window");
                }
            });
        }
        read_data(&rx, n);
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "pair".into());
    let n: u64 = args
        .next()
        .map_or(2_000_000, |s| s.parse().expect("n: a number of messages"));
    let start = Instant::now();
    match workload.as_str() {
        "pair" => pair_with(0, false, n),
        "fanout-parked" => pair_with(63, true, n),
        "fanout-idle" => pair_with(63, false, n),
        "pairs16" => pairs(16, n),
        "forward" => forward(n),
        other => {
            eprintln!(
                "unknown workload {other}: pair, fanout-parked, fanout-idle, pairs16 or forward"
            );
            std::process::exit(2);
        }
    }
    println!("{workload} {n} {:.6}", start.elapsed().as_secs_f64());
}
