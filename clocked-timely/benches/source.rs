//! u64 throughput from a sender thread into a timely `count` on one worker, in one run:
//!
//! * `source`: the sender `send`s into a dispatcher; the [`Source`] operator reads its
//!   receiver, each value at its stamp (one timely time per message);
//! * `input_handle_per_record`: the same sender thread `send`s into a crossbeam
//!   `bounded(1024)`; the worker drains it (up to 1024 per step) into timely's own
//!   `InputHandle`, advancing the time for every record, so timely gets what the source
//!   gives it: each record at its own time, and progress after each;
//! * `input_handle_batched`: the same, advancing the time once per drained batch (records
//!   share times: less for timely to track, and less information than stamps give);
//! * `source_batched`: [`Source::build_batched`]: `(value, stamp)` pairs, each activation's
//!   records in one message at their least stamp (the frontier still moves stamp by stamp).
//!
//! Goal (issue 16): `source` at least 0.8× of `input_handle_per_record`, the like-for-like
//! pair (one time per record in both).
//!
//! ```text
//! cargo bench -p clocked-timely --bench source
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use clocked_timely::Source;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{InputHandle, Stream};

const BOUND: usize = 1024;

/// Counts the records of `stream` into `count`.
fn count<D: 'static>(stream: Stream<'_, u64, Vec<D>>, count: Rc<Cell<u64>>) {
    stream.sink(Pipeline, "Count", move |(input, _frontier)| {
        input.for_each(|_time, records| count.set(count.get() + records.len() as u64));
    });
}

fn produce(iters: u64, mut send: impl FnMut(u64) + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || (0..iters).for_each(&mut send))
}

fn source(iters: u64, batched: bool) -> Duration {
    let d = clocked_dispatch::new::<u64>(BOUND);
    let (tx, rx) = d.new("tx", "rx");
    let rx = Mutex::new(Some(rx));
    timely::execute_directly(move |worker| {
        let counted = Rc::new(Cell::new(0));
        worker.dataflow::<u64, _, _>(|scope| {
            let rx = rx.lock().expect("unpoisoned").take().expect("one worker");
            if batched {
                count(Source::new(rx).build_batched(scope).0, Rc::clone(&counted));
            } else {
                count(Source::new(rx).build(scope).0, Rc::clone(&counted));
            }
        });
        let start = Instant::now();
        let producer = produce(iters, move |i| tx.send(i).expect("receiver alive"));
        while worker.has_dataflows() {
            worker.step_or_park(None);
        }
        let elapsed = start.elapsed();
        producer.join().expect("producer");
        assert_eq!(counted.get(), iters);
        elapsed
    })
}

fn input_handle(iters: u64, per_record: bool) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(BOUND);
    timely::execute_directly(move |worker| {
        let counted = Rc::new(Cell::new(0));
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<u64>>>::new();
        worker.dataflow(|scope| count(input.to_stream(scope), Rc::clone(&counted)));
        let start = Instant::now();
        let producer = produce(iters, move |i| tx.send(i).expect("receiver alive"));
        let mut time = 0;
        while let Ok(first) = rx.recv() {
            for value in std::iter::once(first).chain(rx.try_iter().take(BOUND - 1)) {
                if per_record {
                    time += 1;
                    input.advance_to(time);
                }
                input.send(value);
            }
            if !per_record {
                time += 1;
                input.advance_to(time);
            }
            worker.step();
        }
        input.close();
        while worker.has_dataflows() {
            worker.step_or_park(None);
        }
        let elapsed = start.elapsed();
        producer.join().expect("producer");
        assert_eq!(counted.get(), iters);
        elapsed
    })
}

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
