//! The source's frontier is the receiver's clock: quickcheck properties over random
//! sequences of sends (to the source's receiver: data; to another: a watermark for it),
//! forwards in random order (with data, to either receiver, or without), and points where
//! the test waits for timely to catch up.
//!
//! At each such point: timely's frontier after the source is exactly one above the last
//! stamp the receiver returned, which is the dispatcher's clock; every frontier seen on the
//! way sat one above a stamp the receiver returned (or at a data stamp still in flight); every
//! record arrived at its own stamp (batched: carrying it, at a time at or below it) and none
//! at a time the frontier had passed.

mod support;

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, ClockedReceiver, StampedStream};
use clocked_timely::{ClockedSource, Source, SourceHandle};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use timely::worker::Worker;

use support::{check_frontier, FrontierLog};

/// A receiver's stream that records what it returns: `(is data, stamp)`.
struct Recording {
    inner: StampedStream<ClockedReceiver<u32>>,
    returned: Rc<RefCell<Vec<(bool, usize)>>>,
    start: usize,
}

impl futures_core::Stream for Recording {
    type Item = (Option<u32>, usize);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some((value, stamp))) = &polled {
            self.returned.borrow_mut().push((value.is_some(), *stamp));
        }
        polled
    }
}

impl ClockedSource<u32> for Recording {
    type Stream = Self;

    fn start(&self) -> usize {
        self.start
    }

    fn source_name(&self) -> String {
        "Recording".to_owned()
    }

    fn into_stamped_stream(self) -> Self {
        self
    }
}

/// One step of a case.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A message to the source's receiver (in forwarding mode: under the next stamp of the
    /// case's permutation).
    Mine,
    /// A message to the other receiver: a watermark for the source's.
    Other,
    /// Forwarding mode only: the stamp without data.
    Empty,
    /// Wait until timely has caught up with the dispatcher, then check.
    Sync,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        *g.choose(&[
            Op::Mine,
            Op::Mine,
            Op::Other,
            Op::Other,
            Op::Empty,
            Op::Sync,
        ])
        .expect("a non-empty choice")
    }
}

/// What the worker observed; shared between the dataflow and the checks. `D` is what the
/// stream carries: a value, or (batched) a value with its stamp.
struct Observed<D> {
    returned: Rc<RefCell<Vec<(bool, usize)>>>,
    log: Arc<Mutex<FrontierLog<u64, D>>>,
    handle: SourceHandle,
    /// A record at a message time as `(stamp, value)`, or why it is wrong.
    unpack: Unpack<D>,
}

/// Reads a record at a message time as `(stamp, value)`, or says why it is wrong.
type Unpack<D> = fn(u64, &D) -> Result<(u64, u32), String>;

fn exact(time: u64, value: &u32) -> Result<(u64, u32), String> {
    Ok((time, *value))
}

fn batched(time: u64, &(value, stamp): &(u32, usize)) -> Result<(u64, u32), String> {
    if time > stamp as u64 {
        return Err(format!(
            "record stamped {stamp} travels at the later time {time}"
        ));
    }
    Ok((stamp as u64, value))
}

impl<D> Observed<D> {
    fn frontier(&self) -> Option<Option<u64>> {
        self.log.lock().unwrap().frontiers.last().copied()
    }

    /// Steps `worker` until the frontier after the source is `clock + 1`; then checks the
    /// properties against `sent` (the data sent to the source's receiver, with stamps).
    fn sync(&self, worker: &mut Worker, clock: usize, sent: &[(u64, u32)]) -> Result<(), String> {
        let want = Some(Some(clock as u64 + 1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.frontier() != want {
            if Instant::now() > deadline {
                return Err(format!(
                    "the frontier is {:?}, the clock {clock}: timely waits for a stamp the \
                     dispatcher has passed",
                    self.frontier()
                ));
            }
            worker.step_or_park(Some(Duration::from_millis(10)));
        }
        self.check(clock, sent)
    }

    fn check(&self, clock: usize, sent: &[(u64, u32)]) -> Result<(), String> {
        let returned = self.returned.borrow();
        let log = self.log.lock().unwrap();
        if !log.violations.is_empty() {
            return Err(format!("late records: {:?}", log.violations));
        }
        if returned.windows(2).any(|w| w[0].1 >= w[1].1) {
            return Err(format!("stamps not increasing: {returned:?}"));
        }
        let last = returned.last().map_or(0, |&(_, stamp)| stamp);
        if last != clock || self.handle.last_stamp() != clock {
            return Err(format!(
                "the receiver returned up to {last}, the clock is {clock}"
            ));
        }
        for frontier in log.frontiers.iter().flatten() {
            let f = *frontier as usize;
            // 0: timely's initial frontier, before the source's first activation moved its
            // capability to the start (0) plus one.
            let above_returned = f <= 1 || returned.iter().any(|&(_, s)| s + 1 == f);
            let at_data = returned.iter().any(|&(data, s)| data && s == f);
            if !(above_returned || at_data) {
                return Err(format!(
                    "frontier {f} matches nothing returned: {returned:?}"
                ));
            }
        }
        // What was sent and released (forwarded stamps wait for the smaller ones).
        let released: Vec<(u64, u32)> = sent
            .iter()
            .copied()
            .filter(|&(stamp, _)| stamp <= clock as u64)
            .collect();
        let records = log
            .records
            .iter()
            .map(|(time, record)| (self.unpack)(*time, record))
            .collect::<Result<Vec<_>, _>>()?;
        if records != released {
            return Err(format!(
                "timely got {records:?}, the dispatcher released {released:?}"
            ));
        }
        Ok(())
    }
}

/// Runs `ops` against a dispatcher in serializing (`forwarding == false`) or forwarding
/// mode, read by an exact or a batched source.
fn run(ops: Vec<Op>, forwarding: bool, batches: bool) -> Result<(), String> {
    if batches {
        run_with(ops, forwarding, |source, scope, log| {
            let (stream, handle) = source.build_batched(scope);
            check_frontier(stream, log);
            (handle, batched as fn(u64, &(u32, usize)) -> _)
        })
    } else {
        run_with(ops, forwarding, |source, scope, log| {
            let (stream, handle) = source.build(scope);
            check_frontier(stream, log);
            (handle, exact as fn(u64, &u32) -> _)
        })
    }
}

fn run_with<D: 'static>(
    ops: Vec<Op>,
    forwarding: bool,
    build: impl FnOnce(
            Source<Recording>,
            timely::dataflow::Scope<'_, u64>,
            Arc<Mutex<FrontierLog<u64, D>>>,
        ) -> (SourceHandle, Unpack<D>)
        + Send
        + Sync
        + 'static,
) -> Result<(), String> {
    timely::execute_directly(move |worker| {
        let d = Builder::new().bound(256).inbox_capacity(256).build::<u32>();
        let (mine, rx) = d.new("mine-tx", "mine");
        let (other, _other_rx) = d.new("other-tx", "other"); // kept: sends to it succeed
        let observed = worker.dataflow::<u64, _, _>(|scope| {
            let returned = Rc::new(RefCell::new(Vec::new()));
            let log = Arc::new(Mutex::new(FrontierLog::default()));
            let recording = Recording {
                start: rx.last_stamp(),
                inner: rx.into_stream(),
                returned: Rc::clone(&returned),
            };
            let (handle, unpack) = build(Source::new(recording).batch(3), scope, Arc::clone(&log));
            Observed {
                returned,
                log,
                handle,
                unpack,
            }
        });

        // In forwarding mode the case's data ops take stamps in a shuffled order.
        let data_ops = ops.iter().filter(|op| !matches!(op, Op::Sync)).count();
        let mut stamps: Vec<usize> = (1..=data_ops).collect();
        if forwarding {
            let mut g = Gen::new(data_ops.max(1));
            for i in (1..stamps.len()).rev() {
                stamps.swap(i, usize::arbitrary(&mut g) % (i + 1));
            }
        }
        let mut stamps = stamps.into_iter();
        let mut accounted = vec![false; data_ops + 1];
        let (mut clock, mut sent) = (0, Vec::new());
        for (value, op) in ops.into_iter().enumerate() {
            let value = value as u32;
            if let Op::Sync = op {
                observed.sync(worker, clock, &sent)?;
                continue;
            }
            let stamp = stamps.next().expect("one stamp per data op");
            let outcome = match (forwarding, op) {
                (false, Op::Mine | Op::Empty) => mine.send(value).map_err(|e| e.to_string()),
                (false, _) => other.send(value).map_err(|e| e.to_string()),
                (true, Op::Mine) => mine.forward(Some(value), stamp).map_err(|e| e.to_string()),
                (true, Op::Other) => other.forward(Some(value), stamp).map_err(|e| e.to_string()),
                (true, _) => mine.forward(None, stamp).map_err(|e| e.to_string()),
            };
            outcome?;
            if matches!(op, Op::Mine) || (!forwarding && matches!(op, Op::Empty)) {
                sent.push((stamp as u64, value));
                sent.sort();
            }
            accounted[stamp] = true;
            // the released clock: the dense prefix of accounted stamps
            while clock < data_ops && accounted[clock + 1] {
                clock += 1;
            }
        }
        observed.sync(worker, clock, &sent)?;
        drop((mine, other));
        let deadline = Instant::now() + Duration::from_secs(10);
        while observed.frontier() != Some(None) {
            if Instant::now() > deadline {
                return Err("the source did not close when its senders were gone".to_owned());
            }
            worker.step_or_park(Some(Duration::from_millis(10)));
        }
        if !observed.handle.is_closed() {
            return Err("the source handle does not report the close".to_owned());
        }
        Ok(())
    })
}

fn verdict(outcome: Result<(), String>) -> TestResult {
    match outcome {
        Ok(()) => TestResult::passed(),
        Err(message) => TestResult::error(message),
    }
}

fn serializing(ops: Vec<Op>) -> TestResult {
    verdict(run(ops, false, false))
}

fn forwarding(ops: Vec<Op>) -> TestResult {
    verdict(run(ops, true, false))
}

fn serializing_batched(ops: Vec<Op>) -> TestResult {
    verdict(run(ops, false, true))
}

fn forwarding_batched(ops: Vec<Op>) -> TestResult {
    verdict(run(ops, true, true))
}

#[test]
fn frontier_follows_the_receivers_clock_serializing() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(serializing as fn(Vec<Op>) -> TestResult);
}

#[test]
fn frontier_follows_the_receivers_clock_forwarding() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(forwarding as fn(Vec<Op>) -> TestResult);
}

#[test]
fn batched_frontier_follows_the_receivers_clock_serializing() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(serializing_batched as fn(Vec<Op>) -> TestResult);
}

#[test]
fn batched_frontier_follows_the_receivers_clock_forwarding() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(forwarding_batched as fn(Vec<Op>) -> TestResult);
}
