//! `inspect::verify` against the least any verification must do: read the same files and
//! crc32 them in 1 MiB chunks. Both over a 64 MiB journal, in the page cache (warm), for small
//! (16-byte) and larger (1 KiB) payloads: verify's extra cost is per record (framing, parsing,
//! a crc per record), so it shows most with small records.
//!
//! ```sh
//! cargo bench -p clockd --bench verify
//! ```

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use clocked_dispatch::journal::inspect;
use clocked_dispatch::Builder;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const JOURNAL_BYTES: u64 = 64 << 20;

/// Fills `dir` with a journal of about [`JOURNAL_BYTES`] of `payload`-byte messages.
fn make_journal(dir: &Path, payload: usize) -> u64 {
    let d = Builder::new()
        .bound(1024)
        .inbox_capacity(1 << 16)
        .journal(dir)
        .build_journaled::<Vec<u8>>()
        .expect("a journal in a fresh directory");
    let (tx, rx) = d.new("tx", "rx");
    let reader = std::thread::spawn(move || while rx.recv().is_ok() {});
    let record = (8 + 13 + 2 + payload) as u64;
    for i in 0..JOURNAL_BYTES / record {
        let mut value = vec![0u8; payload];
        value[..8].copy_from_slice(&i.to_le_bytes());
        tx.send(value).expect("the dispatcher runs");
    }
    drop(tx);
    reader.join().expect("the reader ends");
    d.join();
    inspect::segments(dir)
        .expect("the journal lists")
        .iter()
        .map(|s| s.len)
        .sum()
}

/// The baseline: every byte of every segment read and crc32'd, 1 MiB at a time.
fn read_and_crc(dir: &Path, buf: &mut [u8]) -> u32 {
    let mut crc = 0;
    for segment in inspect::segments(dir).expect("the journal lists") {
        let mut file = File::open(&segment.path).expect("a segment opens");
        let mut hasher = crc32fast::Hasher::new();
        loop {
            let n = file.read(buf).expect("a segment reads");
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        crc ^= hasher.finalize();
    }
    crc
}

fn bench(c: &mut Criterion) {
    for payload in [16, 1024] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bytes = make_journal(dir.path(), payload);
        let mut group = c.benchmark_group(format!("verify_64MiB_{payload}B_payloads"));
        group.throughput(Throughput::Bytes(bytes));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.bench_function("inspect::verify", |b| {
            b.iter(|| {
                let report = inspect::verify(dir.path()).expect("verify runs");
                assert!(report.is_clean());
                black_box(report.records)
            })
        });
        let mut buf = vec![0u8; 1 << 20];
        group.bench_function("read+crc32 1MiB chunks", |b| {
            b.iter(|| black_box(read_and_crc(dir.path(), &mut buf)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
