//! The sink operator: a timely stream into a dispatcher in forwarding mode, so a clocked
//! pipeline downstream gets timely's records under their times and timely's progress as
//! watermarks.
//!
//! # What the downstream dispatcher sees
//!
//! * For each time `t` that carried records: one message `forward(Some(records), t)` (a
//!   forwarding dispatcher takes one message per stamp, so the records of one time travel
//!   together, in no particular order);
//! * for every other stamp, `forward(None, t)` once timely's frontier at the sink has passed
//!   `t`, so the dispatcher's clock (and every receiver's watermark) follows timely's
//!   frontier: a downstream reader that sees `(None, w)` knows timely will produce nothing
//!   more at or below `w`.
//!
//! Stamps are dense, so the sink forwards one message per stamp from its first (the
//! downstream dispatcher's seed plus one) up to timely's frontier, data or not: a time jump
//! of a million costs a million `forward(None, _)` (about as much as a million sends). It
//! suits streams whose times are stamps (from a [`Source`](crate::Source)) or otherwise
//! dense. The accounting (which stamp goes out when) is a small pure state machine, the
//! `plan`; the forwarding runs as a task that never blocks the worker, the `driver` (both
//! documented in their files).
//!
//! # One worker forwards
//!
//! Each stamp may be forwarded once across all senders, so the whole stream is exchanged to
//! one worker, the *sink worker*, which alone holds the sender. Every worker builds the same
//! sink with the same sink worker index; only that worker passes the sender (in a cluster it
//! lives in the process that runs that worker, and only that process has the downstream
//! dispatcher). A dispatcher must have no other forwarder: the sink accounts for every stamp.
//!
//! The sink never blocks its worker while the downstream intake is full: it forwards with
//! `forward_async` and is woken when there is room, keeping what timely produced meanwhile.
//! Give the downstream dispatcher a bound of at least 1: with bound 0 (a rendezvous) the
//! library's `forward_async` blocks the thread, and so the worker, until a reader takes each
//! message.
//!
//! When the input is finished (its frontier is empty) and everything is forwarded, the sink
//! drops its sender, so the downstream receiver closes once its other senders are gone. Until
//! then the operator reports itself incomplete, so timely keeps the dataflow alive.

mod driver;
mod plan;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Context;

use clocked_dispatch::ClockedSender;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::Stream;
use timely::progress::frontier::MutableAntichain;
use timely::ExchangeData;

pub use driver::SinkStats;

use crate::error::SinkError;
use crate::time::StampTime;
use crate::wake::operator_waker;
use driver::{update, Driver, Queue, SharedStats};
use plan::{Complete, Plan};

/// Reports what a sink has done; cheap to clone, readable from any thread. On workers other
/// than the sink worker it stays at its default (nothing forwarded, not finished).
#[derive(Clone, Debug, Default)]
pub struct SinkHandle {
    stats: SharedStats,
}

impl SinkHandle {
    /// A snapshot of the sink's counters.
    pub fn stats(&self) -> SinkStats {
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Builds a sink operator; see the [module documentation](self).
///
/// ```
/// use timely::container::CapacityContainerBuilder;
/// use timely::dataflow::InputHandle;
/// use clocked_timely::Sink;
///
/// let d = clocked_dispatch::new(16);
/// let (tx, rx) = d.new("from-timely", "rx");
/// let tx = std::sync::Mutex::new(Some(tx)); // timely wants a `Sync` closure
/// let sink = timely::execute_directly(move |worker| {
///     let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<char>>>::new();
///     let sink = worker.dataflow(|scope| {
///         let sender = tx.lock().unwrap().take();
///         Sink::new(0, sender).build(input.to_stream(scope)).unwrap()
///     });
///     for (time, letter) in [(1, 'a'), (2, 'b'), (4, 'c'), (4, 'd')] {
///         input.advance_to(time);
///         input.send(letter);
///     }
///     sink // `execute_directly` runs the dataflow to completion when `input` drops
/// });
/// assert!(sink.stats().finished);
/// assert_eq!(sink.stats().gaps, 1); // stamp 3 was forwarded without data
/// // (a reader that finds data waiting is not told about stamp 3 on its own: watermarks
/// // coalesce)
/// let got: Vec<_> = rx.filter(|(records, _)| records.is_some()).collect();
/// assert_eq!(got, vec![(Some(vec!['a']), 1), (Some(vec!['b']), 2), (Some(vec!['c', 'd']), 4)]);
/// ```
#[derive(Debug)]
pub struct Sink<D> {
    worker: usize,
    sender: Option<ClockedSender<Vec<D>>>,
    first: usize,
    name: String,
}

impl<D: ExchangeData> Sink<D> {
    /// A sink whose forwarding runs on worker `worker` (a global index, the same on every
    /// worker), which must pass `Some(sender)`; every other worker passes `None`.
    pub fn new(worker: usize, sender: Option<ClockedSender<Vec<D>>>) -> Self {
        Sink {
            worker,
            sender,
            first: 1,
            name: "ClockedSink".to_owned(),
        }
    }

    /// The downstream dispatcher's seed (default 0, as [`clocked_dispatch::new`] makes): the
    /// sink accounts for stamps from `seed + 1` on. Records at times at or below the seed
    /// cannot be forwarded, and are counted in [`SinkStats::refused`].
    #[must_use]
    pub fn seed(mut self, seed: usize) -> Self {
        self.first = seed.saturating_add(1);
        self
    }

    /// Names the operator.
    #[must_use]
    pub fn name<S: Into<String>>(mut self, name: S) -> Self {
        self.name = name.into();
        self
    }

    /// Adds the operator to `stream`'s scope.
    ///
    /// # Errors
    ///
    /// If the sink worker does not exist, if it has no sender, or if another worker was given
    /// one (see [`SinkError`]). In the last two cases the operator is built all the same,
    /// without a sender (a misplaced one is dropped), so that the other workers, which
    /// build theirs, are not left waiting for this one's; it forwards nothing.
    pub fn build<T: StampTime>(
        self,
        stream: Stream<'_, T, Vec<D>>,
    ) -> Result<SinkHandle, SinkError> {
        let scope = stream.scope();
        let (this, peers) = (scope.index(), scope.peers());
        let sink_worker = self.worker;
        if sink_worker >= peers {
            return Err(SinkError::NoSuchWorker {
                worker: sink_worker,
                peers,
            });
        }
        // A misplaced sender still builds the operator (without it): every worker must build
        // the same dataflow, or the others would wait for this one's part forever.
        let (sender, refused) = match (this == sink_worker, self.sender) {
            (true, None) => (
                None,
                Some(SinkError::MissingSender {
                    worker: sink_worker,
                }),
            ),
            (false, Some(_)) => (
                None,
                Some(SinkError::SenderOnOtherWorker {
                    sink_worker,
                    this_worker: this,
                }),
            ),
            (_, sender) => (sender, None),
        };
        let handle = SinkHandle::default();
        let stats = Arc::clone(&handle.stats);
        let mut builder = OperatorBuilder::new(self.name, scope);
        let info = builder.operator_info();
        let to_sink_worker = Exchange::new(move |_: &D| sink_worker as u64);
        let mut input = builder.new_input(stream, to_sink_worker);
        let waker = operator_waker(scope.worker().sync_activator_for(info.address.to_vec()));
        let queue = Rc::new(RefCell::new(Queue::new()));
        let mut driver = sender.map(|tx| Driver::new(tx, Rc::clone(&queue), Arc::clone(&stats)));
        let mut plan = Plan::new(self.first);
        builder.build_reschedule(move |_no_outputs| {
            move |frontiers| {
                let abandoned = queue.borrow().is_abandoned();
                let (mut refused, mut dropped) = (0, 0);
                input.for_each(|capability, records| {
                    if abandoned {
                        dropped += std::mem::take(records).len();
                        return;
                    }
                    match capability.least().and_then(|time| time.to_stamp()) {
                        Some(stamp) => refused += plan.accept(stamp, records),
                        None => refused += std::mem::take(records).len(),
                    }
                });
                let Some(driver) = driver.as_mut() else {
                    return false; // not the sink worker: nothing arrives here
                };
                if !abandoned {
                    let complete = completed(&frontiers[0]);
                    let mut queue = queue.borrow_mut();
                    plan.release(complete, queue.items());
                    if complete == Complete::Finished {
                        queue.finish();
                    }
                }
                let finished = driver.poll(&mut Context::from_waker(&waker));
                if queue.borrow().is_abandoned() {
                    dropped += plan.discard();
                }
                if refused + dropped != 0 {
                    update(&stats, |s| {
                        s.refused += refused as u64;
                        s.undeliverable += dropped as u64;
                    });
                }
                !finished
            }
        });
        match refused {
            None => Ok(handle),
            Some(error) => Err(error),
        }
    }
}

/// How far the sink's input is complete, from its frontier.
fn completed<T: StampTime>(frontier: &MutableAntichain<T>) -> Complete {
    match frontier.frontier().first() {
        None => Complete::Finished,
        Some(time) => match time.to_stamp() {
            Some(stamp) => Complete::Below(stamp),
            None => Complete::AllStamps,
        },
    }
}
