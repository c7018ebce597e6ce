//! A runnable tour of clocked-dispatch: pairs, watermarks, forwarding, broadcast, closing, and
//! a throughput line.
//!
//! ```text
//! cargo run --release --example demo
//! ```

use std::thread;
use std::time::Instant;

fn main() {
    pairs_and_watermarks();
    forwarding();
    broadcast();
    throughput();
}

fn pairs_and_watermarks() {
    println!("== pairs and watermarks");
    let d = clocked_dispatch::new(16);
    let (tx_a, rx_a) = d.new("tx_a", "rx_a");
    let (tx_b, rx_b) = d.new("tx_b", "rx_b");

    tx_a.send("for a").expect("rx_a is alive");
    tx_a.send("for a, again").expect("rx_a is alive");
    tx_b.send("for b").expect("rx_b is alive");

    for _ in 0..2 {
        println!("rx_a got {:?}", rx_a.recv().expect("tx_a is alive"));
    }
    println!(
        "rx_a got {:?}   <- b's message moved the clock",
        rx_a.recv()
    );
    println!(
        "rx_b got {:?}   <- stamps 1 and 2 (a's) pass b by silently: its data comes first",
        rx_b.recv()
    );
    tx_a.send("a third for a").expect("rx_a is alive");
    println!(
        "rx_b got {:?}   <- a's third message, as a watermark",
        rx_b.recv()
    );
    println!("rx_a got {:?}", rx_a.recv());

    drop(tx_a);
    println!("after dropping tx_a, rx_a: {:?}", rx_a.recv());
    drop(tx_b);
}

fn forwarding() {
    println!("\n== forwarding: stamps arrive out of order, leave in order");
    let d = clocked_dispatch::new(16);
    let (left, rx) = d.new("left", "rx");
    let right = left.clone("right");
    right.forward(Some("third"), 3).expect("in window");
    left.forward(Some("second"), 2).expect("in window");
    println!(
        "after stamps 3 and 2: {:?} (stamp 1 is missing)",
        rx.try_recv()
    );
    left.forward(None, 1).expect("in window"); // stamp 1 was filtered out upstream
    println!("after forward(None, 1):");
    drop((left, right));
    for item in rx {
        println!("  {item:?}");
    }
}

fn broadcast() {
    println!("\n== broadcast");
    let d = clocked_dispatch::new(16);
    let (tx, rx_1) = d.new("tx", "rx_1");
    let (tx_2, rx_2) = d.new("tx_2", "rx_2");
    let all = tx.into_broadcaster();
    all.broadcast("hello, everyone").expect("serializing");
    tx_2.send("just for 2").expect("rx_2 is alive");
    println!("rx_1: {:?} then {:?}", rx_1.recv(), rx_1.recv());
    println!("rx_2: {:?} then {:?}", rx_2.recv(), rx_2.recv());
}

fn throughput() {
    println!("\n== throughput");
    const N: u64 = 2_000_000;
    let d = clocked_dispatch::new(1024);
    let (tx, rx) = d.new("tx", "rx");
    // 15 more receivers that never read: they only accumulate watermarks.
    let idle: Vec<_> = (0..15)
        .map(|i| d.new(format!("idle_tx{i}"), format!("idle_rx{i}")))
        .collect();
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..N {
            tx.send(i).expect("rx is alive");
        }
    });
    let mut sum = 0u64;
    let mut count = 0u64;
    while let Ok((value, _stamp)) = rx.recv() {
        if let Some(v) = value {
            sum += v;
            count += 1;
            if count == N {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    producer.join().expect("producer thread");
    assert_eq!(sum, N * (N - 1) / 2, "every message arrived once");
    let (_, idle_rx) = &idle[0];
    println!(
        "{N} messages through one pair (+15 idle receivers) in {:.3?}: {:.2} M msgs/s; \
         an idle receiver's next read: {:?}",
        elapsed,
        N as f64 / elapsed.as_secs_f64() / 1e6,
        idle_rx.try_recv()
    );
}
