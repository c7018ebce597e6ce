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
//! # Sleeping
//!
//! See [`crate::clock`]: the reader registers with the clock before its last re-check; the
//! dispatcher, after publishing, unparks the registered sleepers. A close unparks its own
//! reader directly (an unpark of a reader that is not parked leaves a token its next park
//! consumes at once: harmless).

use std::cell::Cell;

use crate::clock::Clock;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::channel::{self, TryRecvError, TrySendError};
use crate::sync::{Arc, Parker, Unparker};

/// A payload and its stamp.
pub(crate) type Stamped<T> = (T, usize);

/// The flags both ends of one inbox share.
pub(crate) struct InboxFlags {
    /// 0 while open; `final_clock + 1` once the dispatcher has closed the inbox.
    closed_at: AtomicUsize,
    /// Cleared when the `ClockedReceiver` is dropped; senders check it to fail fast.
    receiver_alive: AtomicBool,
    unparker: Unparker,
}

impl InboxFlags {
    /// Whether the receiver is still there to read what is sent to it.
    pub(crate) fn receiver_alive(&self) -> bool {
        self.receiver_alive.load(Ordering::Acquire)
    }
}

/// The dispatcher's end.
pub(crate) struct InboxWriter<T> {
    queue: channel::Sender<Stamped<T>>,
    flags: Arc<InboxFlags>,
}

/// The receiver's end.
pub(crate) struct InboxReader<T> {
    queue: channel::Receiver<Stamped<T>>,
    flags: Arc<InboxFlags>,
    parker: Parker,
    /// The highest stamp returned so far (data or watermark).
    last_seen: Cell<usize>,
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
}

/// Why a push did not go through; the payload comes back.
pub(crate) enum PushError<T> {
    /// The queue is full (the caller may block with [`InboxWriter::push_blocking`]).
    Full(Stamped<T>),
    /// The receiver is gone.
    Gone(Stamped<T>),
}

/// A new inbox holding at most `capacity` payloads (at least 1), whose reader has seen
/// everything up to `seen`.
pub(crate) fn inbox<T>(capacity: usize, seen: usize) -> (InboxWriter<T>, InboxReader<T>) {
    let (tx, rx) = channel::bounded(capacity.max(1));
    let parker = Parker::new();
    let flags = Arc::new(InboxFlags {
        closed_at: AtomicUsize::new(0),
        receiver_alive: AtomicBool::new(true),
        unparker: parker.unparker().clone(),
    });
    let writer = InboxWriter {
        queue: tx,
        flags: flags.clone(),
    };
    let reader = InboxReader {
        queue: rx,
        flags,
        parker,
        last_seen: Cell::new(seen),
    };
    (writer, reader)
}

impl<T> InboxWriter<T> {
    /// Pushes without blocking.
    pub(crate) fn try_push(&self, item: Stamped<T>) -> Result<(), PushError<T>> {
        self.queue.try_send(item).map_err(|e| match e {
            TrySendError::Full(item) => PushError::Full(item),
            TrySendError::Disconnected(item) => PushError::Gone(item),
        })
    }

    /// Pushes, waiting for room; gives the payload back if the receiver goes away meanwhile.
    pub(crate) fn push_blocking(&self, item: Stamped<T>) -> Result<(), Stamped<T>> {
        self.queue.send(item).map_err(|e| e.0)
    }

    /// Closes the inbox at watermark `final_clock` and wakes the reader.
    pub(crate) fn close(self, final_clock: usize) {
        // Release: a reader that sees the marker sees every payload pushed before it. The
        // unpark comes after the store, so a reader woken by it sees the marker; one that was
        // not parked finds the marker on its re-check, or consumes the token at once.
        self.flags
            .closed_at
            .store(final_clock + 1, Ordering::Release);
        self.flags.unparker.unpark();
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

    /// One non-blocking look: clock (and close marker) first, then the queue.
    pub(crate) fn poll(&self, clock: &Clock) -> Polled<T> {
        let closed_at = self.flags.closed_at.load(Ordering::Acquire);
        let now = clock.read();
        let disconnected = match self.queue.try_recv() {
            Ok((value, stamp)) => {
                self.last_seen.set(stamp);
                return Polled::Data(value, stamp);
            }
            Err(TryRecvError::Empty) => false,
            // Without a close marker this is a dispatcher thread that died: report it closed
            // (at the clock we read) rather than hang.
            Err(TryRecvError::Disconnected) => true,
        };
        let (horizon, closed) = match closed_at {
            0 => (now, disconnected),
            closed_at => (closed_at - 1, true),
        };
        if horizon > self.last_seen.get() {
            self.last_seen.set(horizon);
            Polled::Watermark(horizon)
        } else if closed {
            Polled::Closed
        } else {
            Polled::Empty
        }
    }

    /// Parks until woken, having registered as a sleeper; `recheck` runs after registering and
    /// before parking, and its answer, if any, is returned without parking.
    pub(crate) fn sleep<R>(
        &self,
        clock: &Clock,
        timeout: Option<std::time::Duration>,
        recheck: impl FnOnce() -> Option<R>,
    ) -> Option<R> {
        // The flags' address is a key unique among live receivers.
        let key = Arc::as_ptr(&self.flags) as usize;
        clock.sleep(key, self.parker.unparker());
        let ready = recheck();
        if ready.is_none() {
            match timeout {
                Some(timeout) => self.parker.park_timeout(timeout),
                None => self.parker.park(),
            }
        }
        clock.wake(key);
        ready
    }
}

impl<T> Drop for InboxReader<T> {
    fn drop(&mut self) {
        self.flags.receiver_alive.store(false, Ordering::Release);
    }
}
