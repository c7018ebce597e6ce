//! The receiving handle: [`ClockedReceiver`].
//!
//! Every read is one [`InboxReader::poll`] (clock first, then inbox: see [`crate::inbox`]).
//! A blocking read that finds nothing spins briefly (`Backoff`), then registers as a sleeper,
//! polls once more, and parks until the dispatcher publishes a new clock, delivers, or closes.
//! It skips the spin when its last answer was a watermark: it then waits for the clock, which
//! the dispatcher wakes it for (paced while busy: see `Builder::watermark_wake_interval`).

use std::cell::Cell;
use std::fmt;
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

mod commit;

use crate::deadline::park_time;
use crate::error::RecvCheckedError;
use crate::inbox::{InboxReader, Polled};
use crate::link::Shared;
use crate::read::ClockedRead;
use crate::selectable::{Readiness, Selectable};
use crate::spill::{SpillFault, SpillStats};
use crate::sync::{Arc, Backoff};

/// The receiving half of a clocked channel.
///
/// Each read returns `(Some(value), stamp)` for a message sent to this receiver, or
/// `(None, stamp)` when no message is waiting but the dispatcher's clock has moved to `stamp`
/// (messages to other receivers, or forwarded stamps without data). Watermarks coalesce: a
/// receiver that has not read for a thousand stamps sees one `(None, latest)`.
///
/// Guarantees, for the stamps one receiver returns:
///
/// * they strictly increase;
/// * after `(None, c)`, no message stamped `<= c` will ever be delivered to it;
/// * once every sender of this receiver is gone (and no broadcaster exists), it returns what is
///   buffered, the final watermark if not yet seen, and then `Err(RecvError)` for good.
///
/// Dropping the receiver unblocks a dispatcher waiting on its full inbox; later sends to it
/// fail with [`SendErrorKind::ReceiverGone`](crate::SendErrorKind::ReceiverGone).
///
/// A receiver is `Send` but not `Sync` (like `std::sync::mpsc::Receiver`): one thread reads it
/// at a time.
///
/// ```
/// let m = clocked_dispatch::new(10);
/// let (tx_a, rx_a) = m.new("atx1", "a");
/// let (_tx_b, rx_b) = m.new("btx1", "b"); // keep tx_b alive, or rx_b closes
///
/// tx_a.send("a1").unwrap();
/// let x = rx_a.recv().unwrap();
/// assert_eq!(x.0, Some("a1"));
/// assert_eq!(rx_b.recv(), Ok((None, x.1))); // b learns that time moved
///
/// tx_a.send("a2").unwrap();
/// tx_a.send("a3").unwrap();
/// let a2 = rx_a.recv().unwrap();
/// let a3 = rx_a.recv().unwrap();
/// assert_eq!((a2.0, a3.0), (Some("a2"), Some("a3")));
///
/// // b sees a2's stamp or, coalesced, a3's
/// let b = rx_b.recv().unwrap();
/// assert_eq!(b.0, None);
/// assert!(b.1 == a2.1 || b.1 == a3.1);
/// ```
pub struct ClockedReceiver<T> {
    name: String,
    inbox: InboxReader<T>,
    shared: Arc<Shared>,
    /// What a [`Select`](crate::Select) read to learn the receiver was ready: the next read
    /// returns it. `stashed` says whether `stash` holds something, so a read that finds it
    /// empty pays one load.
    stash: Cell<Option<Ended<T>>>,
    stashed: Cell<bool>,
    /// Whether the stashed item is a data message (for `Select`'s data-first scan).
    stash_is_data: Cell<bool>,
    /// The stamp of the last watermark a blocking read returned: while it is still the last
    /// answer, the next blocking read parks without spinning (see [`wait`](Self::wait)).
    watermark_returned: Cell<Option<usize>>,
    /// Its key in the dispatcher's list of live receivers (for status queries).
    listed: u64,
    /// Whether a task's waker is registered for it (`async` feature).
    #[cfg(feature = "async")]
    task_registered: Cell<bool>,
    /// Its name's id in the dispatcher's journal, if there is one.
    pub(crate) journal_id: Option<crate::journal::frame::JournalId>,
}

/// What a wait ended with.
enum Ended<T> {
    Got((Option<T>, usize)),
    Closed,
    TimedOut,
    Fault(SpillFault),
}

/// Whether a read reports spilled messages lost to damage, or skips past them.
#[derive(Clone, Copy)]
enum Faults {
    Skip,
    Report,
}

impl<T> ClockedReceiver<T> {
    pub(crate) fn new(
        name: String,
        inbox: InboxReader<T>,
        shared: Arc<Shared>,
        listed: u64,
    ) -> Self {
        ClockedReceiver {
            name,
            inbox,
            shared,
            stash: Cell::new(None),
            stashed: Cell::new(false),
            stash_is_data: Cell::new(false),
            watermark_returned: Cell::new(None),
            listed,
            #[cfg(feature = "async")]
            task_registered: Cell::new(false),
            journal_id: None,
        }
    }

    /// Identifies its dispatcher: equal for receivers of one dispatcher.
    pub(crate) fn dispatcher_key(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// This receiver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The highest stamp this receiver has returned, data or watermark; for a receiver that has
    /// returned nothing yet, the dispatcher's clock when it was created. No message stamped at
    /// or below it will be delivered here.
    pub fn last_stamp(&self) -> usize {
        self.inbox.last_seen()
    }

    /// How many stamps the dispatcher has published past the last one this receiver returned:
    /// 0 when it has caught up. (Stamps of other receivers count: they are watermarks this
    /// receiver has not yet seen.)
    ///
    /// ```
    /// let d = clocked_dispatch::new(16);
    /// let (tx, rx) = d.new("tx", "rx");
    /// let (_other_tx, other) = d.new("other_tx", "other");
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.recv(), Ok((Some(1), 1)));
    /// while d.stats().clock < 2 {} // both are published
    /// assert_eq!(rx.lag(), 1);
    /// assert_eq!(other.lag(), 2);
    /// ```
    pub fn lag(&self) -> usize {
        self.shared
            .clock
            .read()
            .saturating_sub(self.inbox.last_seen())
    }

    /// How many messages wait for this receiver: in memory, and on disk for a spilling one.
    /// (A message the dispatcher is still handling is not counted yet.)
    pub fn backlog(&self) -> u64 {
        // An item a `Select` read to learn this receiver was ready is waiting too.
        let stashed_data = self.stashed.get() && self.stash_is_data.get();
        self.inbox.flags().backlog() + u64::from(stashed_data)
    }

    /// Waits for a message or a new watermark.
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` once the receiver is closed (every sender of it gone, no broadcaster)
    /// and everything buffered has been returned.
    pub fn recv(&self) -> Result<(Option<T>, usize), RecvError> {
        if let Some((value, stamp)) = self.take_fast() {
            return Ok((Some(value), stamp));
        }
        match self.wait(None, Faults::Skip) {
            Ended::Got(item) => Ok(item),
            Ended::Closed | Ended::TimedOut | Ended::Fault(_) => Err(RecvError),
        }
    }

    /// Like [`recv`](Self::recv), but also reports spilled messages that were lost because
    /// their records on disk were damaged (see [`SpillFault`]). `recv` skips such losses; they
    /// are counted in [`SpillStats::corrupted`] either way. For a receiver that does not spill
    /// this is `recv` with a different error type.
    ///
    /// # Errors
    ///
    /// [`RecvCheckedError::Spill`] once per damaged stretch (reading may go on), and
    /// [`RecvCheckedError::Disconnected`] once the receiver is closed and drained.
    pub fn recv_checked(&self) -> Result<(Option<T>, usize), RecvCheckedError> {
        match self.wait(None, Faults::Report) {
            Ended::Got(item) => Ok(item),
            Ended::Fault(fault) => Err(RecvCheckedError::Spill(fault)),
            Ended::Closed | Ended::TimedOut => Err(RecvCheckedError::Disconnected),
        }
    }

    /// The state of this receiver's spill, or `None` if its dispatcher does not spill.
    pub fn spill_stats(&self) -> Option<SpillStats> {
        self.inbox.spill_stats()
    }

    /// Returns a message or a new watermark if one is ready, without blocking.
    ///
    /// # Errors
    ///
    /// `Empty` if nothing new is ready; `Disconnected` once the receiver is closed and
    /// drained.
    pub fn try_recv(&self) -> Result<(Option<T>, usize), TryRecvError> {
        if let Some((value, stamp)) = self.take_fast() {
            return Ok((Some(value), stamp));
        }
        match self.poll(Faults::Skip) {
            Some(Ended::Got(item)) => Ok(item),
            None => Err(TryRecvError::Empty),
            Some(Ended::Closed | Ended::TimedOut | Ended::Fault(_)) => {
                Err(TryRecvError::Disconnected)
            }
        }
    }

    /// Waits at most `timeout` for a message or a new watermark.
    ///
    /// # Errors
    ///
    /// `Timeout` if nothing arrived in time; `Disconnected` once closed and drained.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(Option<T>, usize), RecvTimeoutError> {
        match self.wait(Instant::now().checked_add(timeout), Faults::Skip) {
            Ended::Got(item) => Ok(item),
            Ended::Closed | Ended::Fault(_) => Err(RecvTimeoutError::Disconnected),
            Ended::TimedOut => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Appends up to `max` items to `out`: waits like [`recv`](Self::recv) for the first, then
    /// takes what is ready without blocking, exactly as one `recv` followed by `try_recv`s
    /// would. Returns how many were appended (0 only if `max` is 0).
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` if the receiver is closed and drained before the first item.
    pub fn recv_many(
        &self,
        out: &mut Vec<(Option<T>, usize)>,
        max: usize,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        // What one `recv` and then `try_recv`s would return, with the payloads already in
        // memory taken as one run.
        out.push(self.recv()?);
        let mut taken = 1;
        taken += self
            .inbox
            .pop_memory_run(max - taken, |(value, stamp)| out.push((Some(value), stamp)));
        Ok(crate::read::fill_ready(self, out, taken, max))
    }

    /// An iterator over what is ready now; it ends at the first `try_recv` error.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    #[inline]
    fn poll(&self, faults: Faults) -> Option<Ended<T>> {
        if self.stashed.get() {
            return self.unstash();
        }
        loop {
            return match self.inbox.poll(&self.shared.clock) {
                Polled::Data(value, stamp) => Some(Ended::Got((Some(value), stamp))),
                Polled::Watermark(stamp) => Some(Ended::Got((None, stamp))),
                Polled::Closed => Some(Ended::Closed),
                Polled::Empty => None,
                Polled::Fault(fault) => match faults {
                    Faults::Report => Some(Ended::Fault(fault)),
                    // Counted in the spill statistics; read on past the damage.
                    Faults::Skip => continue,
                },
            };
        }
    }

    /// One read that does not wait, as `recv` would report it; `None` if nothing is ready.
    #[cfg(feature = "async")]
    pub(crate) fn read_now(&self) -> Option<Result<(Option<T>, usize), RecvError>> {
        self.poll(Faults::Skip).map(|ended| match ended {
            Ended::Got(item) => Ok(item),
            Ended::Closed | Ended::TimedOut | Ended::Fault(_) => Err(RecvError),
        })
    }

    /// Registers a task to be woken when this receiver may have something (the clock moves
    /// or the inbox closes); see [`crate::waiter`].
    #[cfg(feature = "async")]
    pub(crate) fn watch_task(&self, waker: &std::task::Waker) {
        self.inbox.watch_task(&self.shared.clock, waker);
        self.task_registered.set(true);
    }

    /// Removes a task registration, if there is one.
    #[cfg(feature = "async")]
    pub(crate) fn unwatch_task(&self) {
        if self.task_registered.replace(false) {
            self.inbox.unwatch_task(&self.shared.clock);
        }
    }

    /// The hot path of every read: a payload from memory, unless a `Select` stashed an item
    /// (which is older, and must come first).
    #[inline]
    fn take_fast(&self) -> Option<(T, usize)> {
        if self.stashed.get() {
            return None;
        }
        self.inbox.pop_memory()
    }

    /// The item a `Select` read; out of line, so the common read pays one load and a branch.
    #[cold]
    #[inline(never)]
    fn unstash(&self) -> Option<Ended<T>> {
        self.stashed.set(false);
        self.stash.take()
    }

    /// Spin, then park, until something is ready or `deadline` (if any) passes.
    fn wait(&self, deadline: Option<Instant>, faults: Faults) -> Ended<T> {
        let backoff = Backoff::new();
        loop {
            if let Some(ended) = self.poll(faults) {
                return self.returning(ended);
            }
            if !backoff.is_completed() && !self.waiting_for_the_clock() {
                backoff.snooze();
                continue;
            }
            let Ok(timeout) = park_time(deadline) else {
                return Ended::TimedOut;
            };
            if let Some(ended) = self
                .inbox
                .sleep(&self.shared.clock, timeout, || self.poll(faults))
            {
                return self.returning(ended);
            }
        }
    }

    /// Whether the last answer was a watermark a blocking read returned: the reader then
    /// waits for the clock, which other receivers' traffic moves, and spinning for it would
    /// only keep this thread runnable. With many receivers blocked in `recv` on a busy
    /// dispatcher, their spinning (and yielding) took half of two cores from the traffic
    /// (BENCHMARKS.md, "Where wall-clock time went"). A reader that last got data spins, as
    /// more data is likely close behind.
    fn waiting_for_the_clock(&self) -> bool {
        self.watermark_returned.get() == Some(self.inbox.last_seen())
    }

    /// Notes a watermark answer for [`waiting_for_the_clock`](Self::waiting_for_the_clock).
    fn returning(&self, ended: Ended<T>) -> Ended<T> {
        if let Ended::Got((None, stamp)) = ended {
            self.watermark_returned.set(Some(stamp));
        }
        ended
    }
}

impl<T> ClockedRead<T> for ClockedReceiver<T> {
    fn recv(&self) -> Result<(Option<T>, usize), RecvError> {
        ClockedReceiver::recv(self)
    }

    fn try_recv(&self) -> Result<(Option<T>, usize), TryRecvError> {
        ClockedReceiver::try_recv(self)
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<(Option<T>, usize), RecvTimeoutError> {
        ClockedReceiver::recv_timeout(self, timeout)
    }

    fn recv_many(&self, out: &mut Vec<(Option<T>, usize)>, max: usize) -> Result<usize, RecvError> {
        ClockedReceiver::recv_many(self, out, max)
    }

    fn last_stamp(&self) -> usize {
        ClockedReceiver::last_stamp(self)
    }

    fn name(&self) -> &str {
        ClockedReceiver::name(self)
    }
}

impl<T> Selectable for ClockedReceiver<T> {
    fn readiness(&self) -> Readiness {
        if !self.stashed.get() {
            match self.poll(Faults::Skip) {
                Some(ended) => {
                    self.stash_is_data
                        .set(matches!(ended, Ended::Got((Some(_), _))));
                    self.stash.set(Some(ended));
                    self.stashed.set(true);
                }
                None => return Readiness::NotReady,
            }
        }
        if self.stash_is_data.get() {
            Readiness::Data
        } else {
            Readiness::Other
        }
    }

    fn watch(&self, key: usize, unparker: &crate::sync::Unparker) {
        self.inbox.watch(&self.shared.clock, key, unparker);
    }

    fn unwatch(&self, key: usize) {
        self.inbox.unwatch(&self.shared.clock, key);
    }
}

impl<T> Iterator for ClockedReceiver<T> {
    type Item = (Option<T>, usize);

    /// Blocks like [`recv`](ClockedReceiver::recv); ends when the receiver is closed.
    fn next(&mut self) -> Option<Self::Item> {
        self.recv().ok()
    }
}

impl<T> Drop for ClockedReceiver<T> {
    fn drop(&mut self) {
        // The inbox reader's own drop marks the receiver gone and disconnects its queue, which
        // wakes a dispatcher blocked on it.
        self.shared.registry.lock().remove_receiver(&self.name);
        self.shared.live.lock().remove(&self.listed);
        #[cfg(feature = "async")]
        self.unwatch_task();
    }
}

impl<T> fmt::Debug for ClockedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockedReceiver")
            .field("name", &self.name)
            .field("last_stamp", &self.last_stamp())
            .finish_non_exhaustive()
    }
}

/// Iterator returned by [`ClockedReceiver::try_iter`].
pub struct TryIter<'a, T> {
    receiver: &'a ClockedReceiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = (Option<T>, usize);

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").finish_non_exhaustive()
    }
}
