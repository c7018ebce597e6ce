//! The ordered parallel map against what a user writes without us: crossbeam channels, a
//! sequence number per message, and a hand-written reorder buffer in the sink. Same function,
//! same inputs, same number of workers, in the same run.
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use clocked_dispatch::pipeline::ordered_map;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const MESSAGES: u64 = 200_000;
const WORKERS: usize = 4;
const BOUND: usize = 1024;

/// The per-message work: a little arithmetic, and a filter that drops one value in five.
fn work(x: u64) -> Option<u64> {
    let y = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    (!y.is_multiple_of(5)).then_some(y)
}

fn ours(n: u64) -> Duration {
    let start = Instant::now();
    let (input, output, workers) = ordered_map(WORKERS, BOUND, work).unwrap();
    let source = thread::spawn(move || {
        for x in 0..n {
            input.send(x).unwrap();
        }
    });
    let mut checksum = 0u64;
    for (value, _stamp) in output {
        checksum = checksum.wrapping_add(value.flatten().unwrap_or(0));
    }
    source.join().unwrap();
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    std::hint::black_box(checksum);
    start.elapsed()
}

fn by_hand(n: u64) -> Duration {
    let start = Instant::now();
    let (out_tx, out_rx) = crossbeam_channel::bounded::<(u64, Option<u64>)>(BOUND);
    let mut inputs = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, u64)>(BOUND);
        inputs.push(tx);
        let out = out_tx.clone();
        workers.push(thread::spawn(move || {
            for (seq, x) in rx {
                out.send((seq, work(x))).unwrap();
            }
        }));
    }
    drop(out_tx);
    let source = thread::spawn(move || {
        for x in 0..n {
            inputs[x as usize % WORKERS].send((x, x)).unwrap();
        }
    });
    // The sink's reorder buffer: hold results until every smaller sequence number is in.
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut checksum = 0u64;
    for (seq, result) in out_rx {
        pending.insert(seq, result);
        while let Some(result) = pending.remove(&next) {
            checksum = checksum.wrapping_add(result.unwrap_or(0));
            next += 1;
        }
    }
    assert_eq!(next, n);
    source.join().unwrap();
    workers.into_iter().for_each(|w| w.join().unwrap());
    std::hint::black_box(checksum);
    start.elapsed()
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("ordered-map");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(MESSAGES));
    type Run = fn(u64) -> Duration;
    let peers: [(&str, Run); 2] = [
        ("crossbeam+reorder-by-hand", by_hand),
        ("clocked-dispatch", ours),
    ];
    for (name, run) in peers {
        group.bench_function(BenchmarkId::new(name, WORKERS), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(MESSAGES)).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
