//! Throughput and latency of clocked-dispatch against its peers, measured in one process and
//! one run, so the ratios hold on a shared, noisy machine.
//!
//! ```text
//! cargo bench --bench dispatch             # everything
//! cargo bench --bench dispatch -- pair/    # one scenario
//! ```
//!
//! Scenarios (see BENCHMARKS.md for the figures):
//! * `pair`      one sender, one receiver, bound 1024; peers: crossbeam `bounded(1024)`, 4.0.2
//! * `fanout`    the same pair plus 63 receivers that never read, or 63 parked in `recv`
//! * `pairs16`   16 independent pairs at once
//! * `forward`   two forwarders interleaving stamps into one receiver
//! * `broadcast` one broadcaster, 8 receivers; peers: 4.0.2, crossbeam fan-out by hand
//! * `latency`   one-way latency through an idle dispatcher (p50, p99), vs one crossbeam hop
//!
//! Every throughput figure is in messages per second (criterion's "elements").

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/timed.rs"]
mod support;

use support::timed;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BOUND: usize = 1024;

/// The 64-byte payload (its bytes are only ever read through `black_box`).
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Payload([u64; 8]);

trait Make: Clone + Send + 'static {
    fn make(i: u64) -> Self;
}

impl Make for u64 {
    fn make(i: u64) -> Self {
        i
    }
}

impl Make for Payload {
    fn make(i: u64) -> Self {
        Payload([i; 8])
    }
}

/// The read both crates share: `recv() -> Result<(Option<T>, usize), RecvError>`.
trait StampedRecv<T> {
    fn recv_stamped(&self) -> Result<(Option<T>, usize), std::sync::mpsc::RecvError>;
}

impl<T> StampedRecv<T> for clocked_dispatch::ClockedReceiver<T> {
    fn recv_stamped(&self) -> Result<(Option<T>, usize), std::sync::mpsc::RecvError> {
        self.recv()
    }
}

impl<T: Send + 'static> StampedRecv<T> for original::ClockedReceiver<T> {
    fn recv_stamped(&self) -> Result<(Option<T>, usize), std::sync::mpsc::RecvError> {
        self.recv()
    }
}

/// Reads until `n` data messages have arrived, skipping watermarks.
fn read_data<T>(rx: &impl StampedRecv<T>, n: u64) {
    let mut got = 0;
    while got < n {
        if let (Some(v), _) = rx.recv_stamped().expect("open") {
            black_box(v);
            got += 1;
        }
    }
}

/// `iters` messages from a fresh producer thread to the bench thread.
fn ours_pair<T: Make>(
    tx: &clocked_dispatch::ClockedSender<T>,
    rx: &clocked_dispatch::ClockedReceiver<T>,
    iters: u64,
) -> Duration {
    let tx = tx.clone("producer");
    timed(
        move || (0..iters).for_each(|i| tx.send(T::make(i)).expect("receiver alive")),
        || read_data(rx, iters),
    )
}

/// As [`ours_pair`], through the batch paths: `send_all` and `recv_many`.
fn ours_pair_batched<T: Make>(
    tx: &clocked_dispatch::ClockedSender<T>,
    rx: &clocked_dispatch::ClockedReceiver<T>,
    iters: u64,
) -> Duration {
    let tx = tx.clone("producer");
    let produce = move || {
        let sent = tx
            .send_all((0..iters).map(T::make))
            .expect("receiver alive");
        assert_eq!(sent as u64, iters);
    };
    let consume = || {
        let mut got = 0;
        let mut buf = Vec::with_capacity(BOUND);
        while got < iters {
            buf.clear();
            rx.recv_many(&mut buf, BOUND).expect("open");
            for (value, _) in buf.drain(..) {
                if let Some(v) = value {
                    black_box(v);
                    got += 1;
                }
            }
        }
    };
    timed(produce, consume)
}

fn original_pair<T: Make>(
    tx: &original::ClockedSender<T>,
    rx: &original::ClockedReceiver<T>,
    iters: u64,
    name: &mut u64,
) -> Duration {
    *name += 1;
    let tx = tx.clone(format!("producer{name}"));
    timed(
        move || (0..iters).for_each(|i| tx.send(T::make(i))),
        || read_data(rx, iters),
    )
}

fn crossbeam_pair<T: Make>(iters: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<T>(BOUND);
    timed(
        move || (0..iters).for_each(|i| tx.send(T::make(i)).expect("receiver alive")),
        || {
            for _ in 0..iters {
                black_box(rx.recv().expect("open"));
            }
        },
    )
}

fn pair_for<T: Make>(c: &mut Criterion, payload: &str) {
    let mut group = c.benchmark_group("pair");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("crossbeam", payload), |b| {
        b.iter_custom(crossbeam_pair::<T>)
    });
    {
        let d = clocked_dispatch::new::<T>(BOUND);
        let (tx, rx) = d.new("tx", "rx");
        group.bench_function(BenchmarkId::new("ours", payload), |b| {
            b.iter_custom(|iters| ours_pair(&tx, &rx, iters))
        });
        group.bench_function(BenchmarkId::new("ours-batch", payload), |b| {
            b.iter_custom(|iters| ours_pair_batched(&tx, &rx, iters))
        });
    }
    {
        let d = original::new::<T>(BOUND);
        let (tx, rx) = d.new("tx", "rx");
        let mut name = 0;
        group.bench_function(BenchmarkId::new("4.0.2", payload), |b| {
            b.iter_custom(|iters| original_pair(&tx, &rx, iters, &mut name))
        });
    }
    group.finish();
}

fn pair(c: &mut Criterion) {
    pair_for::<u64>(c, "u64");
    pair_for::<Payload>(c, "64B");
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(1));
    {
        let d = clocked_dispatch::new::<u64>(BOUND);
        let (tx, rx) = d.new("tx", "rx");
        group.bench_function("ours/0-extra", |b| {
            b.iter_custom(|iters| ours_pair(&tx, &rx, iters))
        });
        let idle: Vec<_> = (0..63)
            .map(|i| d.new(format!("itx{i}"), format!("irx{i}")))
            .collect();
        group.bench_function("ours/63-idle", |b| {
            b.iter_custom(|iters| ours_pair(&tx, &rx, iters))
        });
        drop(idle);
    }
    {
        let d = clocked_dispatch::new::<u64>(BOUND);
        let (tx, rx) = d.new("tx", "rx");
        let mut keep = Vec::new();
        let parked: Vec<_> = (0..63)
            .map(|i| {
                let (ptx, prx) = d.new(format!("ptx{i}"), format!("prx{i}"));
                keep.push(ptx);
                thread::spawn(move || while prx.recv().is_ok() {})
            })
            .collect();
        group.bench_function("ours/63-parked", |b| {
            b.iter_custom(|iters| ours_pair(&tx, &rx, iters))
        });
        drop(keep);
        for t in parked {
            t.join().expect("parked reader");
        }
    }
    {
        let d = original::new::<u64>(BOUND);
        let (tx, rx) = d.new("tx", "rx");
        let mut name = 0;
        group.bench_function("4.0.2/0-extra", |b| {
            b.iter_custom(|iters| original_pair(&tx, &rx, iters, &mut name))
        });
        let idle: Vec<_> = (0..63)
            .map(|i| d.new(format!("itx{i}"), format!("irx{i}")))
            .collect();
        group.bench_function("4.0.2/63-idle", |b| {
            b.iter_custom(|iters| original_pair(&tx, &rx, iters, &mut name))
        });
        // 4.0.2's receiver drop blocks until the dispatcher has processed it; leak instead so
        // the bench does not stall on the messages the idle receivers never read.
        std::mem::forget(idle);
    }
    group.finish();
}

fn pairs16(c: &mut Criterion) {
    const PAIRS: u64 = 16;
    let mut group = c.benchmark_group("pairs16");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ours", |b| {
        let d = clocked_dispatch::new::<u64>(BOUND);
        let mut pairs: Vec<_> = (0..PAIRS)
            .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
            .collect();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(PAIRS);
            let start = Instant::now();
            thread::scope(|s| {
                // Receivers are Send but not Sync: each thread gets one by `&mut`.
                for (tx, rx) in pairs.iter_mut() {
                    let tx = tx.clone("producer");
                    s.spawn(move || (0..per).for_each(|i| tx.send(i).expect("alive")));
                    s.spawn(move || {
                        read_data(rx, per);
                    });
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("4.0.2", |b| {
        let d = original::new::<u64>(BOUND);
        let pairs: Vec<_> = (0..PAIRS)
            .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
            .collect();
        let mut round = 0u64;
        b.iter_custom(|iters| {
            round += 1;
            let per = iters.div_ceil(PAIRS);
            let start = Instant::now();
            thread::scope(|s| {
                for (tx, rx) in &pairs {
                    let tx = tx.clone(format!("producer{round}"));
                    s.spawn(move || (0..per).for_each(|i| tx.send(i)));
                    s.spawn(move || {
                        read_data(rx, per);
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ours", |b| {
        // Two free-running forwarders on two cores can drift millions of stamps apart, and
        // nothing pushes back on the one ahead (the window is unbounded up to its limit, as
        // 4.0.2's heap is unbounded): give the window room for the drift.
        let d = clocked_dispatch::Builder::new()
            .bound(BOUND)
            .reorder_window(usize::MAX / 2)
            .build::<u64>();
        let (tx, rx) = d.new("even", "rx");
        let mut next = 1usize;
        b.iter_custom(|iters| {
            let first = next;
            let last = first + iters as usize; // exclusive
            next = last;
            let start = Instant::now();
            thread::scope(|s| {
                for parity in 0..2 {
                    let tx = tx.clone("fwd");
                    s.spawn(move || {
                        for ts in (first..last).filter(|ts| ts % 2 == parity) {
                            tx.forward(Some(ts as u64), ts).expect("in order");
                        }
                    });
                }
                read_data(&rx, iters);
            });
            start.elapsed()
        })
    });
    group.bench_function("4.0.2", |b| {
        let d = original::new::<u64>(BOUND);
        let (tx, rx) = d.new("even", "rx");
        let mut next = 1usize;
        let mut round = 0;
        b.iter_custom(|iters| {
            round += 1;
            let first = next;
            let last = first + iters as usize;
            next = last;
            let start = Instant::now();
            thread::scope(|s| {
                for parity in 0..2 {
                    let tx = tx.clone(format!("fwd{round}-{parity}"));
                    s.spawn(move || {
                        for ts in (first..last).filter(|ts| ts % 2 == parity) {
                            tx.forward(Some(ts as u64), ts);
                        }
                    });
                }
                read_data(&rx, iters);
            });
            start.elapsed()
        })
    });
    group.finish();
}

fn broadcast(c: &mut Criterion) {
    const READERS: usize = 8;
    let mut group = c.benchmark_group("broadcast");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ours", |b| {
        let d = clocked_dispatch::new::<u64>(BOUND);
        // Every receiver keeps its sender: a receiver with neither sender nor broadcaster
        // closes, and the broadcaster below joins only after the pairs exist.
        let (mut txs, mut rxs): (Vec<_>, Vec<_>) = (0..READERS)
            .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
            .unzip();
        let all = txs.pop().expect("one pair").into_broadcaster();
        b.iter_custom(|iters| {
            let start = Instant::now();
            thread::scope(|s| {
                // Receivers are Send but not Sync: each thread gets one by `&mut`.
                for rx in rxs.iter_mut() {
                    s.spawn(move || {
                        read_data(rx, iters);
                    });
                }
                (0..iters).for_each(|i| all.broadcast(i).expect("serializing"));
            });
            start.elapsed()
        })
    });
    group.bench_function("4.0.2", |b| {
        let d = original::new::<u64>(BOUND);
        // Every receiver keeps its sender: a receiver with neither sender nor broadcaster
        // closes, and the broadcaster below joins only after the pairs exist.
        let (mut txs, rxs): (Vec<_>, Vec<_>) = (0..READERS)
            .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
            .unzip();
        let all = txs.pop().expect("one pair").into_broadcaster();
        b.iter_custom(|iters| {
            let start = Instant::now();
            thread::scope(|s| {
                for rx in &rxs {
                    s.spawn(move || {
                        read_data(rx, iters);
                    });
                }
                (0..iters).for_each(|i| all.broadcast(i));
            });
            start.elapsed()
        })
    });
    group.bench_function("crossbeam-by-hand", |b| {
        let chans: Vec<_> = (0..READERS)
            .map(|_| crossbeam_channel::bounded::<u64>(BOUND))
            .collect();
        b.iter_custom(|iters| {
            let start = Instant::now();
            thread::scope(|s| {
                for (_, rx) in &chans {
                    s.spawn(move || {
                        (0..iters).for_each(|_| {
                            black_box(rx.recv().expect("open"));
                        })
                    });
                }
                for i in 0..iters {
                    for (tx, _) in &chans {
                        tx.send(i).expect("open");
                    }
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

/// Pings spaced by this much, so every thread involved parks in between: the latency of an
/// *idle* dispatcher, including its wake-ups.
const PING_GAP: Duration = Duration::from_micros(200);
const PINGS: usize = 2_000;

/// One-way latencies of `PINGS` pings: the sender stamps each with `Instant::now()`, the
/// receiving thread takes the difference.
fn one_way_latencies(
    send: impl Fn(Instant) + Send + 'static,
    recv: impl FnOnce(usize) -> Vec<Duration> + Send + 'static,
) -> Vec<Duration> {
    let receiver = thread::spawn(move || recv(PINGS));
    for _ in 0..PINGS {
        thread::sleep(PING_GAP);
        send(Instant::now());
    }
    let mut latencies = receiver.join().expect("receiver");
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ours_latencies() -> Vec<Duration> {
    let d = clocked_dispatch::new::<Instant>(BOUND);
    let (tx, rx) = d.new("ping", "pong");
    one_way_latencies(
        move |now| tx.send(now).expect("alive"),
        move |n| {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                if let (Some(sent), _) = rx.recv().expect("open") {
                    out.push(sent.elapsed());
                }
            }
            out
        },
    )
}

fn crossbeam_latencies() -> Vec<Duration> {
    let (tx, rx) = crossbeam_channel::bounded::<Instant>(BOUND);
    one_way_latencies(
        move |now| tx.send(now).expect("alive"),
        move |n| (0..n).map(|_| rx.recv().expect("open").elapsed()).collect(),
    )
}

/// One-way latency through an idle dispatcher against one idle crossbeam hop: p50 and p99 of
/// `PINGS` pings each, printed. (Not a criterion measurement: the pings' pauses are wall time
/// criterion would have to plan around. It runs whatever filter is given, in about 1 s.)
fn latency(_: &mut Criterion) {
    let ours = ours_latencies();
    let theirs = crossbeam_latencies();
    println!(
        "latency (one-way, idle, {PINGS} pings {PING_GAP:?} apart): \
         ours p50 {:?} p99 {:?}; crossbeam p50 {:?} p99 {:?}; p50 ratio {:.2}",
        percentile(&ours, 0.5),
        percentile(&ours, 0.99),
        percentile(&theirs, 0.5),
        percentile(&theirs, 0.99),
        percentile(&ours, 0.5).as_secs_f64() / percentile(&theirs, 0.5).as_secs_f64(),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = pair, fanout, pairs16, forward, broadcast, latency
}
criterion_main!(benches);
