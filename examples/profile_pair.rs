//! The workload behind the profile in BENCHMARKS.md ("Where the time goes"): one pair moving
//! `n` u64 messages, through this crate (one `send`/`recv` per message, or `send_all` and
//! `recv_many` in runs of 256) or through one crossbeam `bounded(1024)` queue.
//!
//! ```text
//! cargo build --release --example profile_pair
//! valgrind --tool=callgrind target/release/examples/profile_pair ours 200000
//! valgrind --tool=callgrind target/release/examples/profile_pair batched 200000
//! valgrind --tool=callgrind target/release/examples/profile_pair crossbeam 200000
//! ```
//!
//! Run each with two values of `n` and divide the difference in instructions by the
//! difference in `n`: that is the cost per message, with start-up cancelled out.
//! `benches/instructions.sh` does exactly that and prints the ratios.

use std::thread;

fn ours(n: u64) -> u64 {
    let d = clocked_dispatch::new(1024);
    let (tx, rx) = d.new("tx", "rx");
    let sender = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).expect("receiver alive");
        }
    });
    let mut sum = 0;
    while let Ok((value, _)) = rx.recv() {
        sum += value.unwrap_or(0);
    }
    sender.join().expect("sender panicked");
    sum
}

/// Messages per `send_all` call and per `recv_many` call in the batched run.
const RUN: u64 = 256;

fn batched(n: u64) -> u64 {
    let d = clocked_dispatch::new(1024);
    let (tx, rx) = d.new("tx", "rx");
    let sender = thread::spawn(move || {
        let mut next = 0;
        while next < n {
            let end = (next + RUN).min(n);
            tx.send_all(next..end).expect("receiver alive");
            next = end;
        }
    });
    let mut sum = 0;
    let mut out = Vec::with_capacity(RUN as usize);
    while rx.recv_many(&mut out, RUN as usize).is_ok() {
        sum += out
            .drain(..)
            .map(|(value, _)| value.unwrap_or(0))
            .sum::<u64>();
    }
    sender.join().expect("sender panicked");
    sum
}

fn crossbeam(n: u64) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let sender = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).expect("receiver alive");
        }
    });
    let sum = rx.iter().sum();
    sender.join().expect("sender panicked");
    sum
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "ours".to_string());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let sum = match which.as_str() {
        "crossbeam" => crossbeam(n),
        "batched" => batched(n),
        _ => ours(n),
    };
    assert_eq!(sum, n * (n - 1) / 2);
    println!("{which}: {n} messages");
}
