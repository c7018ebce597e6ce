//! A journaled receiver that falls behind reads its backlog back from the journal: the memory
//! queue and the journal hand over to each other without a gap or a duplicate.
//!
//! Without a journal a full inbox stalls the dispatcher (or spills, writing each message a
//! second time). With one, every message is already on disk before it is delivered, so the
//! dispatcher simply stops copying a lagging receiver's messages into memory and tells it how
//! far the journal-only stretch goes; the receiver reads that stretch from the journal
//! ([`crate::journal::tail`]) once it has drained memory.
//!
//! # Shared state
//!
//! * `through`: the highest stamp of this receiver's that is only in the journal. Stored by
//!   the dispatcher (`Release`) after the batch holding it was written and before the clock
//!   covering it is published.
//! * `read`: the reader has returned every journal-only message stamped `<= read`. Stored by
//!   the reader (`Release`) when its tail reports the stretch read.
//! * `handoff` (a mutex): where a stretch begins (the open segment, the batch's offset), left
//!   by the dispatcher when the stretch starts and taken by the reader when it starts reading
//!   it; and `end`, where the journal ended after the latest journal-only message's batch, so
//!   that the reader never reads a record that is not whole (see [`crate::journal::tail`]).
//!   Both are stored before `through`; the reader takes them after loading it.
//!
//! # Dispatcher (`push_or_lag`, for a message already in the journal)
//!
//! ```text
//! if lagging and read == through: lagging = false       (the stretch is all read)
//! if lagging: through = stamp                            (drop the copy: it is on disk)
//! else push to memory; if full: lagging = true, start = (segment, batch offset), through = stamp
//! ```
//!
//! So memory receives a message only when nothing older is journal-only and unread, exactly as
//! the spill writer goes back to memory only once the disk is read ([`crate::spill::queue`]).
//! A message that is *not* in the journal (its encoding failed) cannot be dropped: its push
//! waits until the stretch is read, then goes to memory (`wait_caught_up`).
//!
//! # Reader (inside [`InboxReader::poll`](super::InboxReader::poll))
//!
//! ```text
//! c = clock;  t = through;  pop memory
//! if popped: deliver it                    (older than every unread journal-only message)
//! else if t > read: the tail's next message stamped in (last returned, t]; when none is
//!                   left: read = t
//! else: nothing below c is anywhere: watermark c
//! ```
//!
//! Loading `through` after the clock and before the pop is what makes a watermark safe: a
//! stamp `<= c` that is journal-only was stored in `through` before `c` was published. Memory
//! is always older than unread journal-only messages: a stretch starts when memory is full,
//! and memory gets nothing new until the stretch is read, so the pop-first fast paths
//! ([`pop_memory`](super::InboxReader::pop_memory)) stay correct without looking at any of
//! this.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::{InboxReader, InboxWriter, Polled, PushError, Pushed, Stamped};
use crate::journal::frame::JournalId;
use crate::journal::log::{Journal, Position, Written};
use crate::journal::tail::{Tail, TailStart, Tailed};
use crate::ring::Refused;
use crate::spill::codec::DecodeFn;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::Mutex;

/// How long the dispatcher sleeps between looks while an unjournaled message waits for a
/// lagging reader to catch up (a rare path: only a message whose encoding failed).
const CATCH_UP_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// The state a journaled inbox's two ends share about its journal-only stretch.
///
/// What the dispatcher writes for every journal-only message (`through`, `lagged`) and what
/// the reader writes for every message it reads back (`read`, `read_back`) sit on separate
/// cache lines, so that neither side's stores evict the line the other keeps loading.
pub(crate) struct LagShared {
    through: CachePadded<AtomicUsize>,
    read: CachePadded<AtomicUsize>,
    handoff: Mutex<Handoff>,
    journal: Arc<Journal>,
    id: JournalId,
    /// Messages left only in the journal, and read back from it, so far (for status).
    lagged: CachePadded<AtomicU64>,
    read_back: CachePadded<AtomicU64>,
}

/// What the dispatcher leaves the reader with each journal-only message, under a mutex: the
/// reader takes it after loading `through`, so it is at least as new as that `through`.
struct Handoff {
    /// A new stretch's start, until the reader takes it.
    start: Option<TailStart>,
    /// Where the journal ended after the batch of the latest journal-only message: the tail
    /// never reads past it (every record before it is whole).
    end: Position,
    /// That message's stamp, and how many messages had been left in the journal with it: a
    /// stretch read through `stamp` has taken (read or been told lost) `lagged` in all.
    stamp: usize,
    lagged: u64,
}

impl LagShared {
    /// The lag state of receiver `id` of `journal`.
    pub(crate) fn new(journal: Arc<Journal>, id: JournalId) -> Arc<Self> {
        Arc::new(LagShared {
            through: CachePadded::new(AtomicUsize::new(0)),
            read: CachePadded::new(AtomicUsize::new(0)),
            handoff: Mutex::new(Handoff {
                start: None,
                end: Position {
                    segment: 0,
                    offset: 0,
                },
                stamp: 0,
                lagged: 0,
            }),
            journal,
            id,
            lagged: CachePadded::new(AtomicU64::new(0)),
            read_back: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// Messages waiting in the journal for this receiver.
    pub(crate) fn backlog(&self) -> u64 {
        let read_back = self.read_back.load(Ordering::Relaxed);
        self.lagged
            .load(Ordering::Relaxed)
            .saturating_sub(read_back)
    }
}

/// The dispatcher's side.
pub(super) struct LagWriter {
    shared: Arc<LagShared>,
    lagging: bool,
    through: usize,
}

/// The receiver's side.
pub(super) struct LagReader<T> {
    shared: Arc<LagShared>,
    decode: DecodeFn<T>,
    tail: RefCell<Option<Tail<T>>>,
    /// The reader's copy of `read`.
    read: Cell<usize>,
    /// Whether the tail read everything it was asked for, so that the dispatcher may have
    /// started a new stretch (with a new start) since.
    between: Cell<bool>,
    /// What the handoff said for the `through` loaded last (`through`, `end`, settled count):
    /// while `through` stays the same the dispatcher has left nothing newer, so the reader
    /// reads on without taking the mutex for every message.
    seen: Cell<Option<(usize, Position, Option<u64>)>>,
}

/// The two ends' parts for a new journaled inbox.
pub(super) fn lag_pair<T>(
    shared: Arc<LagShared>,
    decode: DecodeFn<T>,
) -> (LagWriter, LagReader<T>) {
    let writer = LagWriter {
        shared: shared.clone(),
        lagging: false,
        through: 0,
    };
    let reader = LagReader {
        shared,
        decode,
        tail: RefCell::new(None),
        read: Cell::new(0),
        between: Cell::new(true),
        seen: Cell::new(None),
    };
    (writer, reader)
}

impl LagWriter {
    /// Whether a stretch is open and not yet all read; closes it if it is read.
    fn still_lagging(&mut self) -> bool {
        if self.lagging && self.shared.read.load(Ordering::Acquire) == self.through {
            self.lagging = false;
        }
        self.lagging
    }

    /// Leaves the message stamped `stamp`, written before `end`, in the journal only.
    fn extend(&mut self, stamp: usize, end: Position) {
        let lagged = self.shared.lagged.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut handoff = self.shared.handoff.lock();
            handoff.end = end;
            handoff.stamp = stamp;
            handoff.lagged = lagged;
        }
        self.through = stamp;
        self.shared.through.store(stamp, Ordering::Release);
    }
}

impl<T> InboxWriter<T> {
    /// Pushes a message that is already in the journal, in the batch written at `at`: into
    /// memory if it has room and nothing older waits in the journal, else nowhere (the reader
    /// reads it back from the journal). Falls back to [`try_push`](Self::try_push) for an
    /// inbox without a journal part.
    pub(crate) fn push_or_lag(
        &mut self,
        item: Stamped<T>,
        at: Written,
    ) -> Result<Pushed, PushError<T>> {
        let Some(lag) = self.lag.as_mut() else {
            return self.try_push(item);
        };
        if lag.still_lagging() {
            if !self.flags.receiver_alive() {
                return Err(PushError::Gone(item));
            }
            lag.extend(item.1, at.end);
            return Ok(Pushed::Journal);
        }
        let item = match self.try_push(item) {
            Err(PushError::Full(item)) => item,
            other => return other,
        };
        let Some(lag) = self.lag.as_mut() else {
            return Err(PushError::Full(item));
        };
        match TailStart::open(lag.shared.journal.dir(), at.start) {
            Ok(start) => {
                lag.shared.handoff.lock().start = Some(start);
                lag.lagging = true;
                lag.extend(item.1, at.end);
                Ok(Pushed::Journal)
            }
            // The segment cannot be opened: wait for room, as without a journal.
            Err(_) => Err(PushError::Full(item)),
        }
    }

    /// Whether a journal-only stretch is open and not yet read.
    #[cold]
    pub(super) fn lagging(&mut self) -> bool {
        self.lag.as_mut().is_some_and(LagWriter::still_lagging)
    }

    /// Waits until the reader has read the journal-only stretch (`Ok`); `Err(Refused::Gone)`
    /// if it is gone, `Err(Refused::Full)` if `deadline` passes first.
    pub(super) fn wait_caught_up(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), Refused<()>> {
        while self.lagging() {
            if !self.flags.receiver_alive() {
                return Err(Refused::Gone(()));
            }
            match crate::deadline::park_time(deadline) {
                Ok(left) => {
                    std::thread::sleep(left.map_or(CATCH_UP_POLL, |l| l.min(CATCH_UP_POLL)))
                }
                Err(_) => return Err(Refused::Full(())),
            }
        }
        Ok(())
    }
}

impl<T> InboxReader<T> {
    /// The journal-only stretch's end; load it after the clock and before the pop.
    pub(super) fn lag_through(&self) -> usize {
        self.lag
            .as_ref()
            .map_or(0, |lag| lag.shared.through.load(Ordering::Acquire))
    }

    /// With memory empty: the next message of the journal-only stretch up to `through`, if
    /// one is unread; `None` when there is nothing to read there.
    pub(super) fn look_lag(&self, through: usize) -> Option<Polled<T>> {
        let lag = self.lag.as_ref()?;
        if through <= lag.read.get() {
            return None;
        }
        let shared = &lag.shared;
        let signals = &shared.journal.tail;
        let mut tail = lag.tail.borrow_mut();
        let cached = match lag.seen.get() {
            Some((seen, end, settled)) if seen == through && !lag.between.get() => {
                Some((end, settled))
            }
            _ => None,
        };
        let (end, settled) = cached.unwrap_or_else(|| {
            let mut handoff = shared.handoff.lock();
            if lag.between.replace(false) {
                // Either the stretch read last goes on (no new start) or a new one began,
                // whose start was left before the `through` we loaded was stored.
                if let Some(start) = handoff.start.take() {
                    *tail = Some(Tail::new(
                        shared.journal.dir(),
                        shared.id,
                        lag.decode,
                        start,
                        signals,
                    ));
                }
            }
            // What the backlog count comes back to once this stretch is read (if `through`
            // is still the latest journal-only stamp).
            let settled = (handoff.stamp == through).then_some(handoff.lagged);
            lag.seen.set(Some((through, handoff.end, settled)));
            (handoff.end, settled)
        });
        let Some(reading) = tail.as_mut() else {
            // Unreachable by the protocol above; nothing is safer than a watermark.
            return Some(Polled::Empty);
        };
        let after = self.last_seen.get() as u64;
        match reading.next(after, through as u64, end, signals) {
            Tailed::Data(value, stamp) => {
                shared.read_back.fetch_add(1, Ordering::Relaxed);
                self.saw(stamp);
                Some(Polled::Data(value, stamp))
            }
            Tailed::Fault(fault) => {
                shared
                    .read_back
                    .fetch_add(fault.messages_lost, Ordering::Relaxed);
                Some(Polled::Fault(fault))
            }
            Tailed::Through => {
                // The tail stays (its file released): if the dispatcher is still lagging,
                // `through` moves on and the same tail reads on; a new stretch hands a new
                // start. Damage and deleted segments can leave losses uncounted: the backlog
                // count is set right here.
                reading.release();
                if let Some(lagged) = settled {
                    shared.read_back.fetch_max(lagged, Ordering::Relaxed);
                }
                lag.between.set(true);
                lag.read.set(through);
                shared.read.store(through, Ordering::Release);
                None
            }
        }
    }
}
