//! [`Select`]: wait until one of several receivers has something to return.
//!
//! The API is crossbeam-channel's: register receivers with [`Select::recv`] (each gets an
//! index), then [`select`](Select::select) (or [`try_select`](Select::try_select),
//! [`select_timeout`](Select::select_timeout)) returns a [`SelectedOperation`] that you
//! complete with [`SelectedOperation::recv`] on the receiver of its index; or
//! [`ready`](Select::ready) returns the index alone and you call the receiver's own `try_recv`.
//! The receivers may belong to different dispatchers and carry different payload types.
//!
//! # What "ready" means
//!
//! A receiver is ready when a read would return at once: data, a new watermark, a spill fault
//! report, or disconnection. Watermarks count: time moving is news for a dataflow operator. To
//! know that without a spurious answer, the selector *reads* the receiver: the item it got is
//! kept in the receiver (a one-item stash) and is the next thing any read of it returns, so
//! nothing is lost if the operation is never completed, and completing it never blocks.
//!
//! # Sleeping without a lost wake-up
//!
//! A receiver is woken by two events: its dispatcher publishing the clock (which covers every
//! delivery, since a delivery moves the clock), and its inbox being closed. A selector that
//! found nothing ready registers its own unparker for both, for every receiver: in each
//! receiver's clock sleeper list (the event-count handshake of [`crate::clock`]), and in each
//! inbox's selector slot, which a close reads under its lock after storing the close marker.
//! Then it looks at every receiver once more and only parks if none is ready. Either the
//! re-check sees the event, or the event's wake-up sees the registration. Afterwards every
//! registration is removed, so no wake-up target outlives the call. The loom models in
//! `tests/loom.rs` check both races (a delivery, and a close, against the registration).
//!
//! # Fairness, and data first
//!
//! Each scan starts one past the index selected last time, so a receiver that always has data
//! cannot starve the others: with several ready, they take turns. Data comes first: a
//! receiver that has only a watermark (or its close) to return is chosen when no receiver has
//! data, or once data elsewhere has been chosen over it 16 times in a row. Without that, a
//! selector over receivers of one dispatcher would spend most selections on watermarks (each
//! message is one for every other receiver), and a watermark only gets better by waiting: the
//! one returned later covers the stamps of the one skipped.

use std::fmt;
use std::sync::mpsc::RecvError;
use std::time::{Duration, Instant};

use crate::deadline::park_time;
use crate::receiver::ClockedReceiver;
use crate::selectable::{Readiness, Selectable};
use crate::sync::{Backoff, Parker};

/// Waits on several receivers at once.
///
/// ```
/// use clocked_dispatch::Select;
///
/// let d = clocked_dispatch::new(16);
/// let (tx_a, rx_a) = d.new("tx_a", "a");
/// let (tx_b, rx_b) = d.new("tx_b", "b");
/// std::thread::spawn(move || tx_b.send("hello b").unwrap());
///
/// let mut sel = Select::new();
/// let a = sel.recv(&rx_a);
/// let b = sel.recv(&rx_b);
/// // Wait for data for b (a sees the same stamp as a watermark, and may be picked first).
/// loop {
///     let op = sel.select();
///     match op.index() {
///         i if i == a => {
///             let (value, _stamp) = op.recv(&rx_a).unwrap();
///             assert_eq!(value, None); // only time moving: nobody sends to a
///         }
///         i if i == b => {
///             assert_eq!(op.recv(&rx_b).unwrap(), (Some("hello b"), 1));
///             break;
///         }
///         _ => unreachable!(),
///     }
/// }
/// # drop(tx_a);
/// ```
pub struct Select<'a> {
    receivers: Vec<(&'a dyn Selectable, *const ())>,
    /// Where the next scan starts.
    next: usize,
    /// Per receiver: how many selections in a row chose data elsewhere while it had only a
    /// watermark (or a close) to return.
    passed_over: Vec<u32>,
}

/// How many selections in a row may choose data over a receiver that has only a watermark or
/// a close to return; the next one chooses it.
const PASS_LIMIT: u32 = 16;

/// A receiver chosen by [`Select`]: complete it with [`recv`](SelectedOperation::recv) on the
/// same receiver. Dropping it instead loses nothing: the item stays in the receiver.
#[must_use = "the selected receiver's item is read with `recv`"]
pub struct SelectedOperation<'a> {
    index: usize,
    receiver: *const (),
    _select: std::marker::PhantomData<&'a ()>,
}

impl<'a> Select<'a> {
    /// An empty selection.
    pub fn new() -> Self {
        Select {
            receivers: Vec::new(),
            next: 0,
            passed_over: Vec::new(),
        }
    }

    /// Adds `receiver`; returns its index (0, 1, 2, … in the order of calls).
    pub fn recv<T>(&mut self, receiver: &'a ClockedReceiver<T>) -> usize {
        let identity = receiver as *const ClockedReceiver<T> as *const ();
        self.receivers.push((receiver, identity));
        self.passed_over.push(0);
        self.receivers.len() - 1
    }

    /// Removes the receiver at `index` (indexes of the others do not change).
    ///
    /// # Panics
    ///
    /// If `index` was not returned by [`recv`](Self::recv) or was removed already.
    pub fn remove(&mut self, index: usize) {
        let slot = self.receivers.get_mut(index);
        match slot {
            Some(entry) if !entry.1.is_null() => *entry = (&Removed, std::ptr::null()),
            _ => panic!("Select::remove: no receiver at index {index}"),
        }
    }

    /// Waits until a receiver is ready and returns it.
    ///
    /// # Panics
    ///
    /// If no receiver was added (it would wait forever).
    pub fn select(&mut self) -> SelectedOperation<'a> {
        let index = self.ready();
        self.operation(index)
    }

    /// Returns a ready receiver, if one is ready now.
    ///
    /// # Errors
    ///
    /// [`TrySelectError`] if none is.
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.try_ready()
            .map(|index| self.operation(index))
            .map_err(|_| TrySelectError)
    }

    /// Waits at most `timeout` for a ready receiver.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none was ready in time.
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.ready_timeout(timeout)
            .map(|index| self.operation(index))
    }

    /// Waits until a receiver is ready and returns its index; read it with its own
    /// `try_recv` (or `recv`), which then returns at once.
    ///
    /// # Panics
    ///
    /// If no receiver was added.
    pub fn ready(&mut self) -> usize {
        assert!(
            self.receivers.iter().any(|entry| !entry.1.is_null()),
            "Select::ready with no receivers would wait forever"
        );
        match self.wait(None) {
            Some(index) => index,
            None => unreachable!("a wait without deadline only ends ready"),
        }
    }

    /// The index of a receiver that is ready now.
    ///
    /// # Errors
    ///
    /// [`TryReadyError`] if none is.
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.scan().ok_or(TryReadyError)
    }

    /// Waits at most `timeout` for a ready receiver; returns its index.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] if none was ready in time.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, SelectTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        // A timeout too large to add is as good as none.
        self.wait(Some(deadline.unwrap_or_else(far_future)))
            .ok_or(SelectTimeoutError)
    }

    fn operation(&self, index: usize) -> SelectedOperation<'a> {
        SelectedOperation {
            index,
            receiver: self.receivers[index].1,
            _select: std::marker::PhantomData,
        }
    }

    /// One look at every receiver, starting after the last one chosen: the first with data
    /// wins; a receiver with only a watermark or a close wins if none has data, or if data
    /// elsewhere has been chosen over it [`PASS_LIMIT`] times in a row.
    fn scan(&mut self) -> Option<usize> {
        let count = self.receivers.len();
        let mut first_other = None;
        let mut chosen = None;
        for offset in 0..count {
            let index = (self.next + offset) % count;
            match self.receivers[index].0.readiness() {
                Readiness::NotReady => {}
                Readiness::Data => {
                    chosen = Some(index);
                    break;
                }
                Readiness::Other if self.passed_over[index] >= PASS_LIMIT => {
                    chosen = Some(index);
                    break;
                }
                Readiness::Other => {
                    // It waits once more if something else is chosen (reset below if not).
                    self.passed_over[index] = self.passed_over[index].saturating_add(1);
                    first_other.get_or_insert(index);
                }
            }
        }
        let chosen = chosen.or(first_other)?;
        self.passed_over[chosen] = 0;
        self.next = chosen + 1;
        Some(chosen)
    }

    /// Spins briefly, then parks until a receiver is ready or `deadline` passes.
    fn wait(&mut self, deadline: Option<Instant>) -> Option<usize> {
        let backoff = Backoff::new();
        let parker = Parker::new();
        // The parker's address: unique among live sleepers while this call runs.
        let key = &parker as *const Parker as usize;
        loop {
            if let Some(index) = self.scan() {
                return Some(index);
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let Ok(timeout) = park_time(deadline) else {
                return None;
            };
            for (receiver, _) in &self.receivers {
                receiver.watch(key, parker.unparker());
            }
            let ready = self.scan();
            if ready.is_none() {
                match timeout {
                    Some(timeout) => parker.park_timeout(timeout),
                    None => parker.park(),
                }
            }
            for (receiver, _) in &self.receivers {
                receiver.unwatch(key);
            }
            if ready.is_some() {
                return ready;
            }
        }
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("receivers", &self.receivers.len())
            .finish_non_exhaustive()
    }
}

impl SelectedOperation<'_> {
    /// The index of the chosen receiver.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Reads the chosen receiver; never blocks.
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` if the receiver is closed and drained.
    ///
    /// # Panics
    ///
    /// If `receiver` is not the one registered at [`index`](Self::index) (as crossbeam's
    /// `SelectedOperation::recv` does).
    pub fn recv<T>(self, receiver: &ClockedReceiver<T>) -> Result<(Option<T>, usize), RecvError> {
        assert!(
            std::ptr::eq(
                receiver as *const ClockedReceiver<T> as *const (),
                self.receiver
            ),
            "SelectedOperation::recv: not the receiver selected at index {}",
            self.index
        );
        receiver.recv()
    }
}

impl fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedOperation")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A removed entry: never ready, nothing to watch.
struct Removed;

impl Selectable for Removed {
    fn readiness(&self) -> Readiness {
        Readiness::NotReady
    }
    fn watch(&self, _: usize, _: &crate::sync::Unparker) {}
    fn unwatch(&self, _: usize) {}
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365 * 30)
}

/// [`Select::try_select`] found no receiver ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrySelectError;

/// [`Select::try_ready`] found no receiver ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TryReadyError;

/// No receiver became ready before the timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectTimeoutError;

impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no receiver is ready")
    }
}

impl fmt::Display for TryReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no receiver is ready")
    }
}

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no receiver became ready before the timeout")
    }
}

impl std::error::Error for TrySelectError {}
impl std::error::Error for TryReadyError {}
impl std::error::Error for SelectTimeoutError {}
