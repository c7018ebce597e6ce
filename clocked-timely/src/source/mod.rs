//! The source operator: a dispatcher's receiver as a timely stream whose timestamps are the
//! stamps.
//!
//! Two shapes of output, the same progress:
//!
//! * [`Source::build`]: each value at its own stamp, a `Stream<T, Vec<D>>`. Exact, and what
//!   timely operators expect; but every record is its own timely message (one time each),
//!   which costs timely about as much as `InputHandle::advance_to` before every record;
//! * [`Source::build_batched`]: `(value, stamp)` pairs, each activation's records in one
//!   message at the least stamp among them, a `Stream<T, Vec<(D, usize)>>` (the pattern
//!   differential dataflow uses: a batch travels at its lower bound, each record carries its
//!   own time). An operator reads the record's stamp, not the message's time; the frontier
//!   keeps its meaning: once it has passed `s`, every record stamped `s` or below has
//!   arrived. Several times faster (BENCHMARKS.md, section "timely").
//!
//! # Design
//!
//! The operator holds one capability. Before the first read it sits at `start + 1`, where
//! `start` is the reader's [`last_stamp`](ClockedSource::start): nothing at or below it will
//! ever be delivered. Each activation reads up to `batch` items:
//!
//! * `(Some(value), stamp)`: the capability is downgraded to `stamp` and `value` is given at
//!   `stamp` (batched: to the first data stamp of the activation, where all its records go);
//! * `(None, watermark)`: nothing is given; the watermark is remembered;
//! * the reader closes: the capability is dropped, so the frontier becomes empty and the
//!   computation can finish.
//!
//! At the end of the activation the capability is downgraded to `last + 1`, `last` being the
//! highest stamp read (data or watermark). So the source's capability is always *exactly* one
//! above the last stamp the receiver returned, and the frontier downstream is that, or the
//! stamp of a record the source gave that is still on its way:
//!
//! * a record never arrives at a time the frontier has passed (the receiver's stamps
//!   strictly increase, and after `(None, c)` nothing at or below `c` is delivered);
//! * timely never waits for a stamp the dispatcher has passed (a watermark moves the
//!   capability at once).
//!
//! # Waking
//!
//! The reader is polled as a `futures_core::Stream` (the library's `async` feature) with a
//! [`Waker`](std::task::Waker) that activates this operator through timely's
//! `SyncActivator` (see the crate documentation). When a poll returns `Pending`, the library
//! has registered that waker, and the operator returns without asking to run again: the worker
//! may park (`step_or_park`), and the dispatcher's next publish (or the inbox closing)
//! activates the operator and unparks the worker. An idle source costs nothing. When the
//! batch is used up with items still coming, the operator activates itself, so other
//! operators of the worker run between batches (fairness).

use std::task::Context;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::OutputBuilderSession;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

mod handle;
mod read;
mod reader;

pub use handle::SourceHandle;
pub use reader::ClockedSource;

use crate::time::StampTime;
use crate::wake::operator_waker;
use handle::Activation;
use read::{Ended, Reading};

/// How many items a source reads per activation by default, before it lets the worker's
/// other operators run.
pub const DEFAULT_BATCH: usize = 1024;

/// Builds a source operator; see the [module documentation](self).
///
/// ```
/// use timely::dataflow::operators::{Capture, capture::Extract};
/// use clocked_timely::Source;
///
/// let d = clocked_dispatch::new(16);
/// let (tx, rx) = d.new("tx", "rx");
/// std::thread::spawn(move || {
///     for word in ["a", "b", "c"] {
///         tx.send(word).unwrap();
///     }
/// });
/// // timely wants a `Sync` closure; a receiver waits in a slot for the worker to take it.
/// let rx = std::sync::Mutex::new(Some(rx));
/// let captured = timely::example(move |scope| {
///     let rx = rx.lock().unwrap().take().unwrap();
///     Source::new(rx).build(scope).0.capture()
/// });
/// // each word at its stamp
/// assert_eq!(captured.extract(), vec![(1, vec!["a"]), (2, vec!["b"]), (3, vec!["c"])]);
/// ```
#[derive(Debug)]
pub struct Source<R> {
    reader: Option<R>,
    name: Option<String>,
    batch: usize,
}

impl<R> Source<R> {
    /// A source reading `reader`.
    pub fn new(reader: R) -> Self {
        Source {
            reader: Some(reader),
            name: None,
            batch: DEFAULT_BATCH,
        }
    }

    /// A source with nothing to read, for the workers that do not hold the reader: it drops
    /// its capability at once, so it never holds the computation back. (Every worker must
    /// build the same dataflow; only one reads a given receiver.)
    pub fn absent() -> Self {
        Source {
            reader: None,
            name: None,
            batch: DEFAULT_BATCH,
        }
    }

    /// Names the operator (default: `ClockedSource(<receiver name>)`).
    #[must_use]
    pub fn name<S: Into<String>>(mut self, name: S) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads at most `items` per activation (at least 1; default [`DEFAULT_BATCH`]) before
    /// letting the worker's other operators run.
    #[must_use]
    pub fn batch(mut self, items: usize) -> Self {
        self.batch = items.max(1);
        self
    }

    /// Adds the operator to `scope`: the reader's data, each value at its stamp, and a handle
    /// reporting the source's progress.
    pub fn build<'scope, T, D>(
        self,
        scope: Scope<'scope, T>,
    ) -> (Stream<'scope, T, Vec<D>>, SourceHandle)
    where
        R: ClockedSource<D>,
        T: StampTime,
        D: 'static,
    {
        self.build_with(scope, |capability, data, output| {
            for (value, stamp) in data.drain(..) {
                // `read` checked that the stamp is a time above the capability's.
                let moved = T::from_stamp(stamp)
                    .is_some_and(|time| capability.try_downgrade(&time).is_ok());
                if moved {
                    // One record per time: a container of one, not a builder's buffer sized
                    // for many.
                    output
                        .session(&*capability)
                        .give_container(&mut vec![value]);
                }
            }
        })
    }

    /// Adds the operator to `scope`: the reader's data as `(value, stamp)` pairs, the records
    /// of one activation in one message at the least of their stamps (see the [module
    /// documentation](self)), and a handle reporting the source's progress.
    ///
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract};
    /// use clocked_timely::Source;
    ///
    /// let d = clocked_dispatch::new(16);
    /// let (tx, rx) = d.new("tx", "rx");
    /// for word in ["a", "b", "c"] {
    ///     tx.send(word).unwrap();
    /// }
    /// drop(tx);
    /// let rx = std::sync::Mutex::new(Some(rx));
    /// let captured = timely::example(move |scope| {
    ///     let rx = rx.lock().unwrap().take().unwrap();
    ///     Source::new(rx).build_batched(scope).0.capture()
    /// });
    /// // Often one message `(1, [("a", 1), ("b", 2), ("c", 3)])`; how the records split into
    /// // messages depends on what each activation found ready. Always: each record carries
    /// // its stamp, and travels at a time at or below it.
    /// let messages = captured.extract();
    /// assert!(messages.iter().all(|(time, records)| records.iter().all(|(_, s)| *time as usize <= *s)));
    /// let records: Vec<_> = messages.into_iter().flat_map(|(_, records)| records).collect();
    /// assert_eq!(records, vec![("a", 1), ("b", 2), ("c", 3)]);
    /// ```
    pub fn build_batched<'scope, T, D>(
        self,
        scope: Scope<'scope, T>,
    ) -> (Stream<'scope, T, Vec<(D, usize)>>, SourceHandle)
    where
        R: ClockedSource<D>,
        T: StampTime,
        D: 'static,
    {
        self.build_with(scope, |capability, data, output| {
            let Some(&(_, least)) = data.first() else {
                return;
            };
            let moved =
                T::from_stamp(least).is_some_and(|time| capability.try_downgrade(&time).is_ok());
            if moved {
                output.session(&*capability).give_container(data);
            }
            data.clear();
        })
    }

    /// The operator, with `emit` giving each activation's data (the capability sits one above
    /// the previous activation's last stamp, at or below every stamp in `data`).
    fn build_with<'scope, T, D, C, E>(
        self,
        scope: Scope<'scope, T>,
        mut emit: E,
    ) -> (Stream<'scope, T, C>, SourceHandle)
    where
        R: ClockedSource<D>,
        T: StampTime,
        D: 'static,
        C: timely::Container,
        E: FnMut(
                &mut Capability<T>,
                &mut Vec<(D, usize)>,
                &mut OutputBuilderSession<'_, T, CapacityContainerBuilder<C>>,
            ) + 'static,
    {
        let handle = SourceHandle::default();
        let counters = handle.counters();
        let name = match (&self.name, &self.reader) {
            (Some(name), _) => name.clone(),
            (None, Some(reader)) => reader.source_name(),
            (None, None) => "ClockedSource(absent)".to_owned(),
        };
        let (batch, reader) = (self.batch, self.reader);
        let stream = source::<T, CapacityContainerBuilder<C>, _, _>(
            scope,
            &name,
            move |capability, info| {
                let waker =
                    operator_waker(scope.worker().sync_activator_for(info.address.to_vec()));
                let again = scope.activator_for(info.address);
                let mut reading = reader.map(|reader| {
                    let start = reader.start();
                    counters.publish(start, &Activation::default());
                    Reading::new(capability, reader.into_stamped_stream(), start)
                });
                if reading.is_none() {
                    counters.close();
                }
                let mut data = Vec::new();
                move |output| {
                    let Some(state) = reading.as_mut() else {
                        return;
                    };
                    let mut counts = Activation::default();
                    let ended = state.read(
                        &mut Context::from_waker(&waker),
                        batch,
                        &mut data,
                        &mut counts,
                    );
                    if let Some(capability) = state.capability.as_mut() {
                        emit(capability, &mut data, output);
                    }
                    data.clear();
                    state.settle(ended);
                    counters.publish(state.last, &counts);
                    match ended {
                        Ended::BatchFull => again.activate(),
                        Ended::Closed => {
                            counters.close();
                            reading = None; // drops the reader: its inbox is released at once
                        }
                        Ended::Pending => {} // the dispatcher's wake-up activates us
                    }
                }
            },
        );
        (stream, handle)
    }
}
