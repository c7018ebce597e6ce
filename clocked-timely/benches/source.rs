//! u64 throughput from a sender thread into a timely `count` on one worker, in one run:
//!
//! * `source`: the sender `send`s into a dispatcher; the `Source` operator reads its
//!   receiver, each value at its stamp (one timely time per message);
//! * `input_handle_per_record`: the same sender thread `send`s into a crossbeam
//!   `bounded(1024)`; the worker drains it (up to 1024 per step) into timely's own
//!   `InputHandle`, advancing the time for every record, so timely gets what the source
//!   gives it: each record at its own time, and progress after each;
//! * `input_handle_batched`: the same, advancing the time once per drained batch (records
//!   share times: less for timely to track, and less information than stamps give);
//! * `source_batched`: `Source::build_batched`: `(value, stamp)` pairs, each activation's
//!   records in one message at their least stamp (the frontier still moves stamp by stamp).
//!
//! Goal (issue 16): `source` at least 0.8× of `input_handle_per_record`, the like-for-like
//! pair (one time per record in both).
//!
//! ```text
//! cargo bench -p clocked-timely --bench source
//! ```

#[path = "support/workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use workloads::{input_handle, source};

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("timely_count");
    group.throughput(Throughput::Elements(1));
    group.bench_function("input_handle_per_record", |b| {
        b.iter_custom(|n| input_handle(n, true))
    });
    group.bench_function("input_handle_batched", |b| {
        b.iter_custom(|n| input_handle(n, false))
    });
    group.bench_function("source", |b| b.iter_custom(|n| source(n, false)));
    group.bench_function("source_batched", |b| b.iter_custom(|n| source(n, true)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = throughput
}
criterion_main!(benches);
