//! The workloads of `benches/source.rs`, shared with `examples/profile_source.rs` (which
//! runs one under callgrind, see `benches/instructions.sh`): u64s from a sender thread into a
//! timely `count` on one worker, through the source or through timely's own `InputHandle`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use clocked_timely::Source;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{InputHandle, Stream};

/// The channels' bound, and the most records the `InputHandle` loop drains per step.
pub const BOUND: usize = 1024;

/// Counts the records of `stream` into `count`.
fn count<D: 'static>(stream: Stream<'_, u64, Vec<D>>, count: Rc<Cell<u64>>) {
    stream.sink(Pipeline, "Count", move |(input, _frontier)| {
        input.for_each(|_time, records| count.set(count.get() + records.len() as u64));
    });
}

fn produce(iters: u64, mut send: impl FnMut(u64) + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || (0..iters).for_each(&mut send))
}

/// `iters` values through a dispatcher and the source (`batched`: `build_batched`); the time
/// from the first send to the end of the computation.
pub fn source(iters: u64, batched: bool) -> Duration {
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

/// `iters` values through a crossbeam channel into an `InputHandle`, advancing the time for
/// each record (`per_record`) or once per drained batch.
pub fn input_handle(iters: u64, per_record: bool) -> Duration {
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
