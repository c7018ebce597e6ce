//! A receiver's inbox: a bounded queue of stamped payloads from the dispatcher, plus the flags
//! both ends use to close it and to sleep on it.
//!
//! # Reading: clock first, then the queue
//!
//! [`InboxReader::poll`] loads the close marker and the shared [`Clock`] *before* it pops. Every
//! payload stamped `<= c` was pushed before `c` was published (and everything for a closed
//! inbox before the close), so if the pop finds nothing, no such payload will ever arrive, and
//! the reader may report the watermark `c`. It reports a watermark only when it is higher than
//! anything it has returned, so the stamps a receiver returns strictly increase, and a data
//! stamp never falls below a returned watermark (DESIGN.md invariants 1 and 2).
//!
//! # Closing
//!
//! The dispatcher closes an inbox after pushing its last payload: it stores the final clock in
//! `closed_at` (as `final + 1`, so that 0 means open) and drops its writer. The reader drains
//! what is queued, reports `(None, final)` if it has not yet seen that stamp, then
//! `Disconnected` for good, whatever the rest of the dispatcher does later (4.0.2's disconnect
//! was not sticky).
//!
//! # Spilling
//!
//! With spill on, the queue above is the memory part of the inbox and a
//! [`SpillWriter`]/[`SpillReader`] pair holds the rest on disk; the writer never reports
//! `Full`. `poll` loads the spill's committed count after the clock and before the pop, which
//! keeps the argument above intact: see [`crate::spill::queue`].
//!
//! # Lagging behind a journal
//!
//! A journaled inbox never makes the dispatcher wait: when its queue is full, messages stay in
//! the journal only and the reader reads them back from there once memory is drained
//! ([`lagging`]). `poll` loads the journal-only stretch's end after the clock and before the
//! pop, for the same reason as the spill's committed count.
//!
//! # Replaying a journal
//!
//! A receiver of a journaled dispatcher created under a name the journal knows first reads its
//! backlog from the journal ([`crate::journal::replay`]): every look goes to the replay before
//! the queue (whose payloads are all newer) until it is done, and never reports a watermark
//! meanwhile. Until the dispatcher has fixed the plan, a look finds nothing.
//!
//! # Sleeping
//!
//! See [`crate::clock`]: the reader registers with the clock before its last re-check; the
//! dispatcher, after publishing, unparks the registered sleepers. A close unparks its own
//! reader directly (an unpark of a reader that is not parked leaves a token its next park
//! consumes at once: harmless).

use std::cell::{Cell, RefCell};

mod lagging;
mod replaying;
mod sleep;
mod status_row;

pub(crate) use lagging::LagShared;

use replaying::ReplayState;

use crate::clock::Clock;
use crate::ring::{self, Popped, Refused, RingReader, RingWriter};
use crate::spill::reader::{SpillReader, Took};
use crate::spill::shared::SpillShared;
use crate::spill::writer::{Flushed, SpillWriter};
use crate::spill::SpillFault;
use crate::status::Gauges;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, Parker, Unparker};
use crate::waiter::Waiter;

/// A payload and its stamp.
pub(crate) type Stamped<T> = (T, usize);

/// The flags both ends of one inbox share.
pub(crate) struct InboxFlags {
    /// 0 while open; `final_clock + 1` once the dispatcher has closed the inbox.
    closed_at: AtomicUsize,
    /// Cleared when the `ClockedReceiver` is dropped; senders check it to fail fast.
    receiver_alive: AtomicBool,
    /// Set while the reader (or a `Select` or task watching it) is registered as asleep, so
    /// that the dispatcher can wake it for data without waking every sleeper (see
    /// [`InboxFlags::wake_for_data`]).
    asleep: AtomicBool,
    unparker: Unparker,
    /// A [`Select`](crate::Select) or a task waiting on this inbox: woken on close.
    selector: Mutex<Option<Waiter>>,
    /// The spill state, for senders' disk-full gate and status queries.
    spill: Option<std::sync::Arc<SpillShared>>,
    /// For status queries: see [`crate::status`]. Shared with the spill, if any, whose
    /// memory count it is.
    gauges: std::sync::Arc<Gauges>,
    /// Journaled: the journal-only stretch, for status queries.
    lag: Option<std::sync::Arc<LagShared>>,
}

impl InboxFlags {
    /// Whether the receiver is still there to read what is sent to it.
    pub(crate) fn receiver_alive(&self) -> bool {
        self.receiver_alive.load(Ordering::Acquire)
    }

    /// The spill state, if this inbox spills.
    pub(crate) fn spill(&self) -> Option<&std::sync::Arc<SpillShared>> {
        self.spill.as_ref()
    }

    /// Dispatcher: data was pushed to this inbox; wakes whoever sleeps on it. The caller
    /// issues `fence(SeqCst)` between its pushes and this call: the sleeper sets `asleep`,
    /// fences (in its clock registration) and re-checks the queue, so either it sees the data
    /// or this sees the flag (the clock's handshake, per inbox).
    pub(crate) fn wake_for_data(&self) {
        if self.asleep.load(Ordering::Relaxed) {
            self.unparker.unpark();
            if let Some(waiter) = self.selector.lock().as_ref() {
                waiter.wake();
            }
        }
    }
}

impl InboxFlags {
    /// Dispatcher: wakes the reader whether or not it sleeps (a token for its next park).
    pub(crate) fn wake_reader(&self) {
        self.unparker.unpark();
        if let Some(waiter) = self.selector.lock().as_ref() {
            waiter.wake();
        }
    }
}

/// The dispatcher's end.
pub(crate) struct InboxWriter<T> {
    queue: RingWriter<Stamped<T>>,
    flags: Arc<InboxFlags>,
    spill: Option<SpillWriter<T>>,
    lag: Option<lagging::LagWriter>,
    /// Payloads pushed into the memory queue so far.
    pushed: u64,
}

/// The receiver's end.
pub(crate) struct InboxReader<T> {
    queue: RingReader<Stamped<T>>,
    flags: Arc<InboxFlags>,
    parker: Parker,
    /// The highest stamp returned so far (data or watermark).
    last_seen: Cell<usize>,
    spill: Option<RefCell<SpillReader<T>>>,
    /// Payloads taken from the memory queue so far.
    taken: Cell<u64>,
    /// Whether a journal backlog is still to be read before the queue.
    replaying: Cell<bool>,
    replay: RefCell<ReplayState<T>>,
    lag: Option<lagging::LagReader<T>>,
}

/// What one look at the inbox found.
pub(crate) enum Polled<T> {
    /// A payload.
    Data(T, usize),
    /// No payload, but the clock has moved past everything returned so far.
    Watermark(usize),
    /// Nothing new.
    Empty,
    /// Closed, drained, and the final watermark already returned.
    Closed,
    /// Spilled messages were lost to damage on disk (never delivered as data).
    Fault(SpillFault),
}

/// What one look found.
enum Looked<T> {
    Ready(Polled<T>),
    /// The queue was disconnected, but no close marker had been read before it.
    DisconnectedUnmarked,
}

/// Where a push went.
pub(crate) enum Pushed {
    /// Into the memory queue: the reader can take it now.
    Memory,
    /// Into a spill write buffer: [`InboxWriter::flush`] must run before the clock is
    /// published.
    Buffered,
    /// Nowhere: the reader reads it back from the journal (see [`lagging`]).
    Journal,
}

/// Why a push did not go through; the payload comes back.
pub(crate) enum PushError<T> {
    /// The queue is full (the caller may block with [`InboxWriter::push_blocking`]).
    Full(Stamped<T>),
    /// The receiver is gone.
    Gone(Stamped<T>),
}

impl<T> From<Refused<Stamped<T>>> for PushError<T> {
    fn from(refused: Refused<Stamped<T>>) -> Self {
        match refused {
            Refused::Full(item) => PushError::Full(item),
            Refused::Gone(item) => PushError::Gone(item),
        }
    }
}

/// A new inbox holding at most `capacity` payloads (at least 1), whose reader has seen
/// everything up to `seen`.
pub(crate) fn inbox<T>(
    gauges: std::sync::Arc<Gauges>,
    capacity: usize,
    seen: usize,
) -> (InboxWriter<T>, InboxReader<T>) {
    build(gauges, capacity, seen, None, None)
}

/// A new inbox of a journaled dispatcher, holding at most `capacity` payloads in memory; past
/// that, its reader reads its backlog back from the journal (see [`lagging`]).
pub(crate) fn journaled_inbox<T>(
    gauges: std::sync::Arc<Gauges>,
    capacity: usize,
    seen: usize,
    lag: std::sync::Arc<LagShared>,
    decode: crate::spill::codec::DecodeFn<T>,
) -> (InboxWriter<T>, InboxReader<T>) {
    build(gauges, capacity, seen, None, Some((lag, decode)))
}

/// A new inbox that keeps at most `capacity` payloads in memory and spills the rest through
/// `spill`.
pub(crate) fn spilling_inbox<T>(
    gauges: std::sync::Arc<Gauges>,
    capacity: usize,
    seen: usize,
    spill: (SpillWriter<T>, SpillReader<T>, std::sync::Arc<SpillShared>),
) -> (InboxWriter<T>, InboxReader<T>) {
    build(gauges, capacity, seen, Some(spill), None)
}

fn build<T>(
    gauges: std::sync::Arc<Gauges>,
    capacity: usize,
    seen: usize,
    spill: Option<(SpillWriter<T>, SpillReader<T>, std::sync::Arc<SpillShared>)>,
    lag: Option<(std::sync::Arc<LagShared>, crate::spill::codec::DecodeFn<T>)>,
) -> (InboxWriter<T>, InboxReader<T>) {
    let (tx, rx) = ring::ring(capacity.max(1));
    let lag_shared = lag.as_ref().map(|(shared, _)| shared.clone());
    let (lag_writer, lag_reader) = match lag {
        Some((shared, decode)) => {
            let (writer, reader) = lagging::lag_pair(shared, decode);
            (Some(writer), Some(reader))
        }
        None => (None, None),
    };
    let parker = Parker::new();
    let (spill_writer, spill_reader, spill_shared) = match spill {
        Some((writer, reader, shared)) => (Some(writer), Some(RefCell::new(reader)), Some(shared)),
        None => (None, None, None),
    };
    let flags = Arc::new(InboxFlags {
        closed_at: AtomicUsize::new(0),
        receiver_alive: AtomicBool::new(true),
        asleep: AtomicBool::new(false),
        unparker: parker.unparker().clone(),
        selector: Mutex::new(None),
        spill: spill_shared,
        gauges,
        lag: lag_shared,
    });
    let writer = InboxWriter {
        queue: tx,
        flags: flags.clone(),
        spill: spill_writer,
        lag: lag_writer,
        pushed: 0,
    };
    let reader = InboxReader {
        queue: rx,
        flags,
        parker,
        last_seen: Cell::new(seen),
        spill: spill_reader,
        taken: Cell::new(0),
        replaying: Cell::new(false),
        replay: RefCell::new(ReplayState::Done),
        lag: lag_reader,
    };
    (writer, reader)
}

impl<T> InboxWriter<T> {
    /// The flags shared with the reader.
    pub(crate) fn flags(&self) -> &InboxFlags {
        &self.flags
    }

    /// Pushes without blocking. A spilling inbox is never `Full`; a journaled one is while
    /// its reader has not read what it was left in the journal.
    pub(crate) fn try_push(&mut self, item: Stamped<T>) -> Result<Pushed, PushError<T>> {
        // Journaled only (one load of a field otherwise): a stretch not yet read keeps memory
        // closed.
        if self.lag.is_some() && self.lagging() {
            return Err(PushError::Full(item));
        }
        if let Some(spill) = self.spill.as_mut() {
            return match spill.push(&mut self.queue, item) {
                Ok(true) => Ok(Pushed::Buffered),
                Ok(false) => {
                    self.count_pushed();
                    Ok(Pushed::Memory)
                }
                Err(item) => Err(PushError::Gone(item)),
            };
        }
        self.queue.try_push(item)?;
        self.count_pushed();
        Ok(Pushed::Memory)
    }

    /// Writes a spilling inbox's buffered records to disk (nothing for other inboxes).
    /// Returns false if records are left for a later flush (its disk is failing).
    pub(crate) fn flush(&mut self) -> bool {
        match self.spill.as_mut() {
            Some(spill) => spill.flush() == Flushed::Done,
            None => true,
        }
    }

    /// Pushes, waiting for room; gives the payload back if the receiver goes away meanwhile
    /// ([`PushError::Gone`]) or `deadline` passes while it is full ([`PushError::Full`]).
    pub(crate) fn push_blocking(
        &mut self,
        item: Stamped<T>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), PushError<T>> {
        if let Err(refused) = self.wait_caught_up(deadline) {
            // Same outcome, with the payload given back.
            return Err(refused.map(|()| item).into());
        }
        self.queue.push_blocking(item, deadline)?;
        self.count_pushed();
        Ok(())
    }

    fn count_pushed(&mut self) {
        self.pushed += 1;
        self.flags.gauges.pushed(self.pushed);
    }

    /// Closes the inbox at watermark `final_clock` and wakes the reader.
    pub(crate) fn close(mut self, final_clock: usize) {
        if let Some(spill) = self.spill.as_mut() {
            spill.finish();
        }
        // Release: a reader that sees the marker sees every payload pushed before it. The
        // unpark comes after the store, so a reader woken by it sees the marker; one that was
        // not parked finds the marker on its re-check, or consumes the token at once.
        self.flags
            .closed_at
            .store(final_clock + 1, Ordering::Release);
        self.flags.unparker.unpark();
        // A selector registers under this lock before its last look: either it sees the
        // marker stored above, or this sees its registration.
        if let Some(waiter) = self.flags.selector.lock().as_ref() {
            waiter.wake();
        }
        // Dropping `self.queue` disconnects it; the reader still drains what is queued.
    }
}

impl<T> InboxReader<T> {
    /// The flags shared with senders (for their liveness check).
    pub(crate) fn flags(&self) -> &Arc<InboxFlags> {
        &self.flags
    }

    /// The highest stamp returned so far.
    pub(crate) fn last_seen(&self) -> usize {
        self.last_seen.get()
    }

    /// The hot path: the oldest payload in memory, if there is one, without looking at the
    /// clock, the close marker or the spill. That is enough for data: payloads in memory are
    /// older than any on disk (the spill writer goes back to memory only once the disk part is
    /// read, see [`crate::spill::queue`]), and the clock-first order matters only for a look
    /// that finds nothing and reports a watermark, which [`poll`](Self::poll) does.
    #[inline]
    pub(crate) fn pop_memory(&self) -> Option<Stamped<T>> {
        if self.replaying.get() {
            return None;
        }
        let (value, stamp) = self.queue.try_pop().ok()?;
        self.took(1, stamp);
        Some((value, stamp))
    }

    /// Like [`pop_memory`](Self::pop_memory) for up to `max` payloads, each handed to `each`:
    /// one look at the ring for the whole run. Returns how many.
    pub(crate) fn pop_memory_run(&self, max: usize, mut each: impl FnMut(Stamped<T>)) -> usize {
        if self.replaying.get() {
            return 0;
        }
        let mut last = None;
        let count = self
            .queue
            .pop_run(max, |(value, stamp)| {
                last = Some(stamp);
                each((value, stamp));
            })
            .unwrap_or(0);
        if let Some(stamp) = last {
            self.took(count as u64, stamp);
        }
        count
    }

    /// Counts `count` payloads taken from memory, the last stamped `stamp`.
    #[inline]
    fn took(&self, count: u64, stamp: usize) {
        self.taken.set(self.taken.get() + count);
        self.flags.gauges.taken(self.taken.get());
        self.saw(stamp);
    }

    /// One non-blocking look: clock (and close marker) first, then the queue.
    pub(crate) fn poll(&self, clock: &Clock) -> Polled<T> {
        match self.look(clock) {
            // The queue disconnected after we read the marker and the clock: the close (and,
            // with spill, its last flush) happened in between, so one more look sees both.
            // Without this, the final watermark and any records flushed by the close could
            // be missed.
            Looked::DisconnectedUnmarked => match self.look(clock) {
                Looked::Ready(polled) => polled,
                Looked::DisconnectedUnmarked => self.conclude(clock.read(), true),
            },
            Looked::Ready(polled) => polled,
        }
    }

    /// One look: close marker, clock, spill's committed count, queue, disk, in that order.
    fn look(&self, clock: &Clock) -> Looked<T> {
        if self.replaying.get() {
            if let Some(polled) = self.look_replay() {
                return Looked::Ready(polled);
            }
        }
        let closed_at = self.flags.closed_at.load(Ordering::Acquire);
        let mut now = clock.read();
        // After the clock, before `committed`: see `crate::spill::failure`.
        if let Some(cap) = self.flags.spill.as_ref().and_then(|s| s.failure.cap()) {
            now = now.min(cap);
        }
        // After the clock, before the pop: see `crate::spill::queue` and `lagging`.
        let on_disk = self.spill.as_ref().is_some_and(|s| s.borrow().on_disk());
        let lag_through = self.lag_through();
        let disconnected = match self.queue.try_pop() {
            Ok((value, stamp)) => {
                self.took(1, stamp);
                return Looked::Ready(Polled::Data(value, stamp));
            }
            Err(Popped::Empty) => false,
            Err(Popped::Disconnected) => true,
        };
        if on_disk {
            if let Some(spill) = &self.spill {
                let took = spill.borrow_mut().take(self.last_seen.get());
                match took {
                    Some(Took::Data(value, stamp)) => {
                        self.saw(stamp);
                        return Looked::Ready(Polled::Data(value, stamp));
                    }
                    Some(Took::Fault(fault)) => return Looked::Ready(Polled::Fault(fault)),
                    None => {}
                }
            }
        }
        if let Some(polled) = self.look_lag(lag_through) {
            return Looked::Ready(polled);
        }
        // Nothing to deliver: a failing disk's notice comes before any watermark.
        if let Some(notice) = self
            .flags
            .spill
            .as_ref()
            .and_then(|s| s.failure.next_notice())
        {
            return Looked::Ready(Polled::Fault(notice));
        }
        match closed_at {
            0 if disconnected => Looked::DisconnectedUnmarked,
            0 => Looked::Ready(self.conclude(now, false)),
            closed_at => Looked::Ready(self.conclude(closed_at - 1, true)),
        }
    }

    /// Nothing to deliver: a watermark if `horizon` is new, else closed or empty. A queue
    /// disconnected without a close marker even on a second look is a dispatcher thread that
    /// died: reported closed, at the clock read, rather than hang.
    fn conclude(&self, horizon: usize, closed: bool) -> Polled<T> {
        if horizon > self.last_seen.get() {
            self.saw(horizon);
            Polled::Watermark(horizon)
        } else if closed {
            Polled::Closed
        } else {
            Polled::Empty
        }
    }

    /// Records `stamp` as the highest returned.
    fn saw(&self, stamp: usize) {
        self.last_seen.set(stamp);
        self.flags.gauges.returned(stamp);
    }

    /// The spill state, if this inbox spills.
    pub(crate) fn spill_stats(&self) -> Option<crate::spill::SpillStats> {
        self.flags.spill.as_ref().map(|spill| spill.stats())
    }
}

impl<T> Drop for InboxReader<T> {
    fn drop(&mut self) {
        self.flags.receiver_alive.store(false, Ordering::Release);
    }
}
