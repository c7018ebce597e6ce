//! Select over 4 receivers against crossbeam-channel's `Select` over 4 bounded channels, in
//! the same run: one producer thread sends round robin to the four, the bench thread selects
//! and reads until it has every message.
//!
//! ```text
//! cargo bench --bench select
//! ```

use std::hint::black_box;
use std::time::Duration;

#[path = "support/timed.rs"]
mod support;

use support::timed;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BOUND: usize = 1024;
const INPUTS: usize = 4;

/// Sends `0..iters` round robin over `senders` with `send`.
fn round_robin<S>(senders: Vec<S>, iters: u64, send: fn(&S, u64)) -> impl FnOnce() + Send
where
    S: Send + 'static,
{
    move || {
        for i in 0..iters {
            send(&senders[i as usize % senders.len()], i);
        }
    }
}

fn ours(iters: u64) -> Duration {
    let d = clocked_dispatch::new::<u64>(BOUND);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..INPUTS)
        .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
        .unzip();
    let produce = round_robin(senders, iters, |tx, i| tx.send(i).expect("alive"));
    timed(produce, || {
        let mut sel = clocked_dispatch::Select::new();
        for rx in &receivers {
            sel.recv(rx);
        }
        let mut got = 0;
        while got < iters {
            let op = sel.select();
            let index = op.index();
            match op.recv(&receivers[index]) {
                Ok((Some(value), _)) => {
                    black_box(value);
                    got += 1;
                }
                Ok((None, _)) => {}
                Err(_) => sel.remove(index),
            }
        }
    })
}

fn crossbeam(iters: u64) -> Duration {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..INPUTS)
        .map(|_| crossbeam_channel::bounded::<u64>(BOUND))
        .unzip();
    let produce = round_robin(senders, iters, |tx, i| tx.send(i).expect("alive"));
    timed(produce, || {
        let mut sel = crossbeam_channel::Select::new();
        for rx in &receivers {
            sel.recv(rx);
        }
        let mut got = 0;
        while got < iters {
            let op = sel.select();
            let index = op.index();
            match op.recv(&receivers[index]) {
                Ok(value) => {
                    black_box(value);
                    got += 1;
                }
                // Its sender is gone (the producer finished): the others still hold data.
                Err(_) => sel.remove(index),
            }
        }
    })
}

fn select(c: &mut Criterion) {
    let mut group = c.benchmark_group("select4");
    group.throughput(Throughput::Elements(1));
    group.bench_function("crossbeam", |b| b.iter_custom(crossbeam));
    group.bench_function("ours", |b| b.iter_custom(ours));
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
