//! Receivers created and dropped by the million (a broker's connections) must not make the
//! dispatcher slower for the pairs that remain.
//!
//! One pair's throughput on a fresh dispatcher, and on one through which a million receivers
//! were created and dropped first (half of them sent one message before going), in the same
//! run; the ratio between the two lines is the figure (goal: within 1.2×). The pair is driven
//! from one thread in windows of `WINDOW` messages (send them all, then read them all), so no
//! producer thread's scheduling adds noise to a comparison between two dispatchers.
//!
//! ```text
//! cargo bench --bench churn
//! ```

use std::hint::black_box;
use std::time::Instant;

use clocked_dispatch::{ClockedReceiver, ClockedSender, Dispatcher};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const WINDOW: u64 = 512;
const CYCLES: usize = 1_000_000;

/// A dispatcher with one live pair, after `cycles` receivers were created and dropped.
fn dispatcher_after(cycles: usize) -> (Dispatcher<u64>, ClockedSender<u64>, ClockedReceiver<u64>) {
    let d = clocked_dispatch::new::<u64>(WINDOW as usize);
    let (tx, rx) = d.new("tx", "live");
    for i in 0..cycles {
        let (ctx, crx) = d.new("churn-tx", format!("churn-{i}"));
        if i % 2 == 0 {
            ctx.send(0).expect("alive");
        }
        drop((ctx, crx));
    }
    (d, tx, rx)
}

/// Sends `WINDOW` messages, then reads them back, until `iters` have gone through.
fn through(tx: &ClockedSender<u64>, rx: &ClockedReceiver<u64>, iters: u64) {
    let mut done = 0;
    while done < iters {
        let window = WINDOW.min(iters - done);
        for i in 0..window {
            tx.send(i).expect("alive");
        }
        let mut got = 0;
        while got < window {
            if let (Some(value), _) = rx.recv().expect("open") {
                black_box(value);
                got += 1;
            }
        }
        done += window;
    }
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    group.throughput(Throughput::Elements(1));
    let fresh = dispatcher_after(0);
    let started = Instant::now();
    let churned = dispatcher_after(CYCLES);
    eprintln!(
        "churn: {CYCLES} create/drop cycles took {:?}; receiver slots after: {}",
        started.elapsed(),
        churned.0.stats().receiver_slots
    );
    for (name, (_, tx, rx)) in [
        ("pair/fresh", &fresh),
        ("pair/after_1M_receivers", &churned),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                through(tx, rx, iters);
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, churn);
criterion_main!(benches);
