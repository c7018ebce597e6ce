//! Journal throughput, against what the same disk does with no dispatcher, in the same run:
//!
//! * `journal/none/*`: a journaled dispatcher with `Durability::None` (send -> written ->
//!   delivered -> received; with `send`/`recv`, and with `send_all`/`recv_many`) against a
//!   plain `BufWriter` file of the same framed records (goal: at least 0.5x), and the same
//!   dispatcher without a journal. The plain file comes twice: each record framed as it is
//!   written (stamp, length, crc32: what a writer of such a log does), and one record framed
//!   once and copied `n` times (a `memcpy` bound, the peer of the first sessions);
//! * `journal/batch/*`: `Durability::Batch` against a loop writing the same records in batches
//!   of 256 with one `fdatasync` each, and against the same loop with the batch size the
//!   dispatcher made (measured: `DispatcherStats::journal_writes`) (goal: at least 0.8x);
//! * `journal/always/*`: `Durability::Always` with 16 concurrent senders against 1 sender: each
//!   `send` waits for its sync, so 16 senders go faster only if they share syncs (group commit;
//!   goal: at least 8x).
//!
//! Payloads are `u64` and 1 KiB `Vec<u8>`. Throughput is per message; compare the lines of one
//! group, not runs (this machine is shared).
//!
//! ```text
//! cargo bench --bench journal
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, Dispatcher, Durability};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A payload type, made from a message number.
trait Payload: Serialize + DeserializeOwned + Send + Sync + Clone + 'static {
    const NAME: &'static str;
    fn make(n: u64) -> Self;
    /// Appends the payload's postcard encoding, as a hand-written log writer would.
    fn encode(&self, out: Vec<u8>) -> Vec<u8> {
        postcard::to_extend(self, out).unwrap()
    }
}

impl Payload for u64 {
    const NAME: &'static str = "u64";
    fn make(n: u64) -> Self {
        n
    }
}

impl Payload for Vec<u8> {
    const NAME: &'static str = "1KiB";
    fn make(n: u64) -> Self {
        let mut bytes = vec![0x5a; 1024];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes
    }
    /// A byte string is its length (a varint) and its bytes, copied at once.
    fn encode(&self, out: Vec<u8>) -> Vec<u8> {
        let mut out = postcard::to_extend(&(self.len() as u64), out).unwrap();
        out.extend_from_slice(self);
        out
    }
}

/// Appends record `n` as the journal frames it (length, checksum, kind, stamp, receiver,
/// payload) to `out`, using `body` as scratch: what any writer of a checksummed record log
/// does per record.
fn frame_into<P: Payload>(out: &mut Vec<u8>, scratch: &mut Vec<u8>, n: u64, value: &P) {
    let mut body = std::mem::take(scratch);
    body.clear();
    body.push(1u8);
    body.extend_from_slice(&(n + 1).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    let body = value.encode(body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    *scratch = body;
}

/// How a plain file's records are made.
#[derive(Clone, Copy)]
enum Records {
    /// One record, framed once and copied `n` times (the peer of the first two sessions).
    Copied,
    /// Each record framed as it is written (its own stamp and checksum).
    Framed,
}

/// The plain file: `n` framed records through a `BufWriter`, synced every `sync_every` records
/// (never if `None`).
fn plain_file<P: Payload>(n: u64, sync_every: Option<u64>, records: Records) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let value = P::make(7);
    let mut copied = Vec::new();
    let mut body = Vec::new();
    frame_into(&mut copied, &mut body, 7, &value);
    let mut record = Vec::with_capacity(copied.len());
    let start = Instant::now();
    let file = File::create(dir.path().join("plain")).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for i in 1..=n {
        match records {
            Records::Copied => out.write_all(&copied).unwrap(),
            Records::Framed => {
                record.clear();
                frame_into(&mut record, &mut body, i, &value);
                out.write_all(&record).unwrap();
            }
        }
        if sync_every.is_some_and(|every| i % every == 0) {
            out.flush().unwrap();
            out.get_ref().sync_data().unwrap();
        }
    }
    out.flush().unwrap();
    if sync_every.is_some() {
        out.get_ref().sync_data().unwrap();
    }
    start.elapsed()
}

/// A dispatcher (bound and inbox 1024) with a journal in `dir`, or without one if
/// `durability` is `None`.
fn dispatcher<P: Payload>(dir: &std::path::Path, durability: Option<Durability>) -> Dispatcher<P> {
    let builder = Builder::new().bound(1024).inbox_capacity(1024);
    match durability {
        Some(durability) => builder
            .journal(dir)
            .durability(durability)
            .build_journaled::<P>()
            .unwrap(),
        None => builder.build::<P>(),
    }
}

/// A journaled dispatcher: `senders` threads send `n` messages in all to one receiver, which
/// reads them; the time until it has read the last. `None` durability: no journal at all.
fn journaled<P: Payload>(n: u64, durability: Option<Durability>, senders: u64) -> Duration {
    journaled_with_writes::<P>(n, durability, senders).0
}

/// One sender, one receiver, with the batch API: `send_all` in chunks of 256 and
/// `recv_many`.
fn journaled_batched<P: Payload>(n: u64, durability: Option<Durability>) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let d = dispatcher::<P>(dir.path(), durability);
    let (tx, rx) = d.new("tx", "rx");
    let value = P::make(7);
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(256);
            tx.send_all((0..chunk).map(|_| value.clone())).unwrap();
            left -= chunk;
        }
    });
    let mut got = 0;
    let mut out = Vec::with_capacity(1024);
    while got < n {
        out.clear();
        rx.recv_many(&mut out, 1024).unwrap();
        got += out.iter().filter(|(value, _)| value.is_some()).count() as u64;
    }
    let elapsed = start.elapsed();
    sender.join().unwrap();
    elapsed
}

/// As [`journaled`], and how many journal writes (so syncs, with `Batch`) it took.
fn journaled_with_writes<P: Payload>(
    n: u64,
    durability: Option<Durability>,
    senders: u64,
) -> (Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dispatcher::<P>(dir.path(), durability);
    let (tx, rx) = d.new("tx", "rx");
    let value = P::make(7);
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|t| {
            let tx = tx.clone(format!("tx{t}"));
            let value = value.clone();
            let count = n / senders;
            std::thread::spawn(move || {
                for _ in 0..count {
                    tx.send(value.clone()).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut got = 0;
    while got < n / senders * senders {
        if let (Some(_), _) = rx.recv().unwrap() {
            got += 1;
        }
    }
    let elapsed = start.elapsed();
    for thread in threads {
        thread.join().unwrap();
    }
    (elapsed, d.stats().journal_writes)
}

fn group<P: Payload>(c: &mut Criterion) {
    let mut none = c.benchmark_group(format!("journal/none/{}", P::NAME));
    none.sample_size(10);
    none.measurement_time(Duration::from_secs(3));
    none.warm_up_time(Duration::from_millis(500));
    let n = 50_000;
    none.throughput(Throughput::Elements(n));
    none.bench_function(BenchmarkId::new("plain-bufwriter-file-copied", n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| plain_file::<P>(n, None, Records::Copied))
                .sum()
        })
    });
    none.bench_function(BenchmarkId::new("plain-bufwriter-file-framed", n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| plain_file::<P>(n, None, Records::Framed))
                .sum()
        })
    });
    none.bench_function(BenchmarkId::new("clocked-dispatch/no-journal", n), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| journaled::<P>(n, None, 1)).sum())
    });
    none.bench_function(BenchmarkId::new("clocked-dispatch/journal-none", n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| journaled::<P>(n, Some(Durability::None), 1))
                .sum()
        })
    });
    none.bench_function(
        BenchmarkId::new("clocked-dispatch/journal-none-batched", n),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| journaled_batched::<P>(n, Some(Durability::None)))
                    .sum()
            })
        },
    );
    none.finish();

    let mut batch = c.benchmark_group(format!("journal/batch/{}", P::NAME));
    batch.sample_size(10);
    batch.measurement_time(Duration::from_secs(3));
    batch.warm_up_time(Duration::from_millis(500));
    let n = 20_000;
    batch.throughput(Throughput::Elements(n));
    batch.bench_function(BenchmarkId::new("fdatasync-per-256-records", n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| plain_file::<P>(n, Some(256), Records::Framed))
                .sum()
        })
    });
    // The dispatcher takes everything waiting in its intake into one synced write; the peer
    // that writes the very same batch sizes: measured from a few runs of it.
    let writes: u64 = (0..3)
        .map(|_| journaled_with_writes::<P>(n, Some(Durability::Batch), 1).1)
        .sum();
    let per_sync = (3 * n / writes.max(1)).max(1);
    println!(
        "journal/batch/{}: the dispatcher wrote {per_sync} records per sync",
        P::NAME
    );
    batch.bench_function(
        BenchmarkId::new(
            format!("fdatasync-per-{per_sync}-records-as-the-dispatcher"),
            n,
        ),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| plain_file::<P>(n, Some(per_sync), Records::Framed))
                    .sum()
            })
        },
    );
    batch.bench_function(BenchmarkId::new("clocked-dispatch/journal-batch", n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| journaled::<P>(n, Some(Durability::Batch), 1))
                .sum()
        })
    });
    batch.finish();

    let mut always = c.benchmark_group(format!("journal/always/{}", P::NAME));
    always.sample_size(10);
    always.measurement_time(Duration::from_secs(3));
    always.warm_up_time(Duration::from_millis(500));
    for (senders, n) in [(1u64, 200u64), (16, 1600)] {
        let (_, writes) = journaled_with_writes::<P>(n, Some(Durability::Always), senders);
        println!(
            "journal/always/{}: {senders} senders, {:.1} messages per sync",
            P::NAME,
            n as f64 / writes.max(1) as f64
        );
        always.throughput(Throughput::Elements(n));
        always.bench_function(
            BenchmarkId::new(format!("clocked-dispatch/always-{senders}-senders"), n),
            |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| journaled::<P>(n, Some(Durability::Always), senders))
                        .sum()
                })
            },
        );
    }
    always.finish();
}

fn journal(c: &mut Criterion) {
    group::<u64>(c);
    group::<Vec<u8>>(c);
}

criterion_group!(benches, journal);
criterion_main!(benches);
