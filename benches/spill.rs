//! Spill throughput: records written to disk by a spilling receiver's backlog and read back,
//! against the same records through a plain length-prefixed `BufWriter`/`BufReader` file (the
//! physical limit here) and through hopper 0.4.2, in the same run.
//!
//! Each iteration sends `n` records to a receiver that does not read (so all but
//! `MEMORY` of them spill), then drains it: one write and one read per record. Throughput is
//! per record; compare the lines of one group, not runs.
//!
//! Records are measured as three types with the same bytes: `serde_bytes::ByteBuf` (serialized
//! as one byte string), `Vec<u8>` (which serde hands to a codec one byte at a time; ours
//! recognises it and copies it whole) and `String`.
//!
//! ```text
//! cargo bench --bench spill
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use clocked_dispatch::Builder;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

/// A record type: built from the payload bytes, as a user's message would be.
trait Record: Serialize + DeserializeOwned + Send + 'static {
    fn from_bytes(bytes: &[u8]) -> Self;
}

/// Serde sees a `Vec<u8>` as a sequence of `u8`: the codec handles it byte by byte.
impl Record for Vec<u8> {
    fn from_bytes(bytes: &[u8]) -> Self {
        bytes.to_vec()
    }
}

/// Serde sees a `String` as one string.
impl Record for String {
    fn from_bytes(bytes: &[u8]) -> Self {
        // Not `from_utf8_lossy`: it checks byte by byte (about 1 µs per KiB, more than our
        // whole spill of one record).
        String::from_utf8(bytes.to_vec()).expect("the bench's records are ASCII")
    }
}

/// `serde_bytes::ByteBuf` is serialized as one byte string: what a user who spills blobs
/// would write.
impl Record for ByteBuf {
    fn from_bytes(bytes: &[u8]) -> Self {
        ByteBuf::from(bytes.to_vec())
    }
}

/// Messages kept in memory by the spilling receivers (ours and hopper's).
const MEMORY: usize = 64;

/// Records per iteration for us and the plain file; hopper gets fewer (it is ~1000× slower).
const RECORDS: u64 = 20_000;
const HOPPER_RECORDS: u64 = 500;

fn plain_file(n: u64, record: &[u8]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    let start = Instant::now();
    let mut out = BufWriter::new(File::create(&path).unwrap());
    for _ in 0..n {
        out.write_all(&(record.len() as u32).to_le_bytes()).unwrap();
        out.write_all(record).unwrap();
    }
    out.into_inner().unwrap();
    let mut input = BufReader::new(File::open(&path).unwrap());
    let mut back = vec![0u8; record.len()];
    let mut len = [0u8; 4];
    for _ in 0..n {
        input.read_exact(&mut len).unwrap();
        back.resize(u32::from_le_bytes(len) as usize, 0);
        input.read_exact(&mut back).unwrap();
        std::hint::black_box(&back);
    }
    start.elapsed()
}

fn ours<R: Record>(n: u64, record: &[u8]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(1024)
        .spill_to(dir.path())
        .memory_capacity(MEMORY)
        .build_spilling::<R>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let start = Instant::now();
    for _ in 0..n {
        tx.send(R::from_bytes(record)).unwrap();
    }
    drop(tx);
    let mut got = 0;
    while let Ok((value, _)) = rx.recv() {
        got += value.is_some() as u64;
    }
    let elapsed = start.elapsed();
    assert_eq!(got, n);
    elapsed
}

fn hopper<R: Record>(n: u64, record: &[u8]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (mut tx, mut rx) = hopper::channel_with_explicit_capacity::<R>(
        "bench",
        dir.path(),
        MEMORY * std::mem::size_of::<R>(),
        1 << 30,
        usize::MAX,
    )
    .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        if tx.send(R::from_bytes(record)).is_err() {
            panic!("hopper refused a record");
        }
    }
    // hopper makes spilled records visible with a marker in its memory queue, which fails
    // (`NoFlush`) while that queue is full: the reader must drain memory first, and the
    // sender retry the flush; until then the reader waits forever.
    let reader = std::thread::spawn(move || {
        let mut records = rx.iter();
        for _ in 0..n {
            std::hint::black_box(records.next().unwrap());
        }
    });
    while tx.flush().is_err() {
        std::thread::sleep(Duration::from_micros(20));
    }
    reader.join().unwrap();
    start.elapsed()
}

fn spill(c: &mut Criterion) {
    for size in [1024usize, 64] {
        let record = vec![0x5a; size]; // ASCII, so the `String` lines carry the same bytes
        let mut group = c.benchmark_group(format!("spill/{size}B"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(4));
        group.warm_up_time(Duration::from_millis(500));
        type Peer = fn(u64, &[u8]) -> Duration;
        let peers: [(&str, Peer, u64); 7] = [
            ("plain-bufwriter-file", plain_file, RECORDS),
            ("clocked-dispatch/bytebuf", ours::<ByteBuf>, RECORDS),
            ("clocked-dispatch/vec-u8", ours::<Vec<u8>>, RECORDS),
            ("clocked-dispatch/string", ours::<String>, RECORDS),
            ("hopper-0.4.2/bytebuf", hopper::<ByteBuf>, HOPPER_RECORDS),
            ("hopper-0.4.2/vec-u8", hopper::<Vec<u8>>, HOPPER_RECORDS),
            ("hopper-0.4.2/string", hopper::<String>, HOPPER_RECORDS),
        ];
        for (name, run, n) in peers {
            group.throughput(Throughput::Elements(n));
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(n, &record)).sum())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, spill);
criterion_main!(benches);
