//! The source operator: a dispatcher's receiver as a timely stream whose timestamps are the
//! stamps.
//!
//! # Design
//!
//! The operator holds one capability. Before the first read it sits at `start + 1`, where
//! `start` is the reader's [`last_stamp`](ClockedSource::start): nothing at or below it will
//! ever be delivered. Each activation reads up to `batch` items:
//!
//! * `(Some(value), stamp)`: the capability is downgraded to `stamp` and `value` is given at
//!   `stamp`;
//! * `(None, watermark)`: nothing is given; the watermark is remembered;
//! * the reader closes: the capability is dropped, so the frontier becomes empty and the
//!   computation can finish.
//!
//! At the end of the activation the capability is downgraded to `last + 1`, `last` being the
//! highest stamp read (data or watermark). So the frontier downstream of the source is
//! always *exactly* one above the last stamp the receiver returned:
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
//! `SyncActivator` (see [`crate::wake`]). When a poll returns `Pending`, the library has
//! registered that waker, and the operator returns without asking to run again: the worker
//! may park (`step_or_park`), and the dispatcher's next publish (or the inbox closing)
//! activates the operator and unparks the worker. An idle source costs nothing. When the
//! batch is used up with items still coming, the operator activates itself, so other
//! operators of the worker run between batches (fairness).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use clocked_dispatch::{ClockedReceiver, Fused, StampedStream};
use futures_core::Stream as FuturesStream;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use crate::time::StampTime;
use crate::wake::operator_waker;

/// How many items a source reads per activation by default, before it lets the worker's
/// other operators run.
pub const DEFAULT_BATCH: usize = 1024;

/// A stamped stream the source operator can read without a thread: it is polled with a
/// waker, and wakes the operator when it may have something.
///
/// Implemented for [`ClockedReceiver`] and [`Fused`]; other readers (a remote one, a test's
/// recording wrapper) can implement it too. An
/// implementation must keep the library's contract: the stamps it yields strictly increase,
/// all above [`start`](Self::start), and after it yields `(None, c)` it yields nothing stamped
/// at or below `c`. Items that break it are dropped and counted in
/// [`SourceHandle::out_of_order`], never given to timely.
pub trait ClockedSource<T> {
    /// The stream the operator polls.
    type Stream: FuturesStream<Item = (Option<T>, usize)> + 'static;

    /// The highest stamp already returned, or where the stream starts: the source's frontier
    /// begins one above it.
    fn start(&self) -> usize;

    /// A name for the operator.
    fn source_name(&self) -> String;

    /// The stream to poll.
    fn into_stamped_stream(self) -> Self::Stream;
}

impl<T: 'static> ClockedSource<T> for ClockedReceiver<T> {
    type Stream = StampedStream<ClockedReceiver<T>>;

    fn start(&self) -> usize {
        self.last_stamp()
    }

    fn source_name(&self) -> String {
        format!("ClockedSource({})", self.name())
    }

    fn into_stamped_stream(self) -> Self::Stream {
        self.into_stream()
    }
}

impl<T: 'static> ClockedSource<T> for Fused<T> {
    type Stream = StampedStream<Fused<T>>;

    fn start(&self) -> usize {
        self.last_stamp()
    }

    fn source_name(&self) -> String {
        format!("ClockedSource({})", self.name())
    }

    fn into_stamped_stream(self) -> Self::Stream {
        self.into_stream()
    }
}

/// What a source reports while it runs; cheap to clone and to read from any thread (for
/// monitoring, or to wait until a source has caught up).
#[derive(Clone, Debug, Default)]
pub struct SourceHandle {
    shared: Arc<SourceShared>,
}

#[derive(Debug, Default)]
struct SourceShared {
    last_stamp: AtomicUsize,
    data: AtomicU64,
    watermarks: AtomicU64,
    out_of_order: AtomicU64,
    closed: AtomicBool,
}

impl SourceHandle {
    /// The highest stamp the source has read (data or watermark), or its start before the
    /// first read: its capability is one above it until the reader closes.
    pub fn last_stamp(&self) -> usize {
        self.shared.last_stamp.load(Relaxed)
    }

    /// Data messages given to timely so far.
    pub fn data(&self) -> u64 {
        self.shared.data.load(Relaxed)
    }

    /// Watermarks read so far.
    pub fn watermarks(&self) -> u64 {
        self.shared.watermarks.load(Relaxed)
    }

    /// Items dropped because their stamp was not above the last one read (a
    /// [`ClockedSource`] implementation breaking its contract; never for the library's
    /// readers).
    pub fn out_of_order(&self) -> u64 {
        self.shared.out_of_order.load(Relaxed)
    }

    /// Whether the reader has closed and the capability is dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Relaxed)
    }
}

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

    /// Adds the operator to `scope`: the stream of the reader's data, each value at its
    /// stamp, and a handle reporting the source's progress.
    pub fn build<'scope, T, D>(self, scope: Scope<'scope, T>) -> (Stream<'scope, T, Vec<D>>, SourceHandle)
    where
        R: ClockedSource<D>,
        T: StampTime,
        D: 'static,
    {
        let handle = SourceHandle::default();
        let shared = Arc::clone(&handle.shared);
        let name = match (&self.name, &self.reader) {
            (Some(name), _) => name.clone(),
            (None, Some(reader)) => reader.source_name(),
            (None, None) => "ClockedSource(absent)".to_owned(),
        };
        let batch = self.batch;
        let reader = self.reader;
        let stream = source::<T, CapacityContainerBuilder<Vec<D>>, _, _>(
            scope,
            &name,
            move |capability, info| {
                let waker = operator_waker(scope.worker().sync_activator_for(info.address.to_vec()));
                let again = scope.activator_for(info.address);
                let mut reading = reader.map(|reader| {
                    let start = reader.start();
                    shared.last_stamp.store(start, Relaxed);
                    Reading {
                        capability: above(capability, start),
                        stream: Box::pin(reader.into_stamped_stream()),
                        last: start,
                    }
                });
                if reading.is_none() {
                    shared.closed.store(true, Relaxed);
                }
                move |output| {
                    let Some(state) = reading.as_mut() else {
                        return;
                    };
                    let mut cx = Context::from_waker(&waker);
                    let (mut data, mut watermarks, mut out_of_order) = (0, 0, 0);
                    let mut ended = Ended::BatchFull;
                    for _ in 0..batch {
                        let Some(capability) = state.capability.as_mut() else {
                            ended = Ended::Closed;
                            break;
                        };
                        match state.stream.as_mut().poll_next(&mut cx) {
                            Poll::Pending => {
                                ended = Ended::Pending;
                                break;
                            }
                            Poll::Ready(None) => {
                                ended = Ended::Closed;
                                break;
                            }
                            Poll::Ready(Some((value, stamp))) => {
                                if stamp <= state.last {
                                    out_of_order += 1;
                                    continue;
                                }
                                state.last = stamp;
                                match value {
                                    Some(value) => {
                                        // The capability is at `previous last + 1 <= stamp`.
                                        let downgraded = T::from_stamp(stamp)
                                            .is_some_and(|time| capability.try_downgrade(&time).is_ok());
                                        if !downgraded {
                                            out_of_order += 1;
                                            continue;
                                        }
                                        output.session(&*capability).give(value);
                                        data += 1;
                                    }
                                    None => watermarks += 1,
                                }
                            }
                        }
                    }
                    match ended {
                        Ended::Closed => state.capability = None,
                        Ended::Pending | Ended::BatchFull => {
                            state.capability = state.capability.take().and_then(|c| above(c, state.last));
                        }
                    }
                    if data != 0 {
                        shared.data.fetch_add(data, Relaxed);
                    }
                    if watermarks != 0 {
                        shared.watermarks.fetch_add(watermarks, Relaxed);
                    }
                    if out_of_order != 0 {
                        shared.out_of_order.fetch_add(out_of_order, Relaxed);
                    }
                    shared.last_stamp.store(state.last, Relaxed);
                    match ended {
                        Ended::BatchFull => again.activate(),
                        Ended::Closed => {
                            shared.closed.store(true, Relaxed);
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

/// The state of a source that has a reader.
struct Reading<T: StampTime, S> {
    /// `None` once the reader has closed (or the clock reached the largest time).
    capability: Option<Capability<T>>,
    stream: Pin<Box<S>>,
    /// The highest stamp read so far, or the start.
    last: usize,
}

/// Why an activation stopped reading.
enum Ended {
    Pending,
    BatchFull,
    Closed,
}

/// `capability` moved to `stamp + 1`: the frontier of a reader that has returned `stamp`.
/// `None` (the capability dropped) if `stamp + 1` is not a time, after which nothing can
/// come.
fn above<T: StampTime>(mut capability: Capability<T>, stamp: usize) -> Option<Capability<T>> {
    let next = T::from_stamp(stamp.checked_add(1)?)?;
    if *capability.time() < next {
        // `next` is above the capability's time: the downgrade cannot fail.
        capability.try_downgrade(&next).ok()?;
    }
    Some(capability)
}
