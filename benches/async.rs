//! One pair through tokio's multi-threaded runtime: ours (`send_async` → `recv_async`)
//! against tokio's own `mpsc::channel(1024)` and flume's `bounded(1024)` with its
//! `send_async`/`recv_async`, in the same run. Needs the `async` feature:
//!
//! ```text
//! cargo bench --features async --bench async
//! ```

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BOUND: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

fn ours(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let d = clocked_dispatch::new::<u64>(BOUND);
        let (tx, mut rx) = d.new("tx", "rx");
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..iters {
                tx.send_async(i).await.expect("alive");
            }
        });
        let mut got = 0;
        while got < iters {
            if let (Some(value), _) = rx.recv_async().await.expect("open") {
                std::hint::black_box(value);
                got += 1;
            }
        }
        let elapsed = start.elapsed();
        producer.await.expect("producer");
        elapsed
    })
}

fn tokio_mpsc(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(BOUND);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..iters {
                tx.send(i).await.expect("alive");
            }
        });
        for _ in 0..iters {
            std::hint::black_box(rx.recv().await.expect("open"));
        }
        let elapsed = start.elapsed();
        producer.await.expect("producer");
        elapsed
    })
}

fn flume_pair(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let (tx, rx) = flume::bounded::<u64>(BOUND);
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for i in 0..iters {
                tx.send_async(i).await.expect("alive");
            }
        });
        for _ in 0..iters {
            std::hint::black_box(rx.recv_async().await.expect("open"));
        }
        let elapsed = start.elapsed();
        producer.await.expect("producer");
        elapsed
    })
}

fn pair(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("async_pair");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tokio_mpsc", |b| b.iter_custom(|n| tokio_mpsc(&rt, n)));
    group.bench_function("flume", |b| b.iter_custom(|n| flume_pair(&rt, n)));
    group.bench_function("ours", |b| b.iter_custom(|n| ours(&rt, n)));
    group.finish();
}

criterion_group!(benches, pair);
criterion_main!(benches);
