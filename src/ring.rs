//! A bounded single-producer, single-consumer ring: the memory part of a receiver's inbox.
//!
//! An inbox has exactly one writer (the dispatcher thread) and one reader (its
//! `ClockedReceiver`, which is `!Sync`), so it does not need a general multi-producer queue:
//! crossbeam's array channel, which it replaces, spends about 200 instructions per message on
//! slot stamps, a CAS per side and waker bookkeeping (callgrind, BENCHMARKS.md). This ring is
//! Lamport's queue with cached indices:
//!
//! ```text
//! head: next index the reader takes    (stored by the reader only, Release)
//! tail: next index the writer fills    (stored by the writer only, Release)
//! slot of index i: i & mask             (the buffer has a power-of-two length >= capacity)
//! empty: head == tail;   full: tail - head == capacity   (wrapping arithmetic)
//! ```
//!
//! # Invariants
//!
//! 1. `head <= tail <= head + capacity` (as wrapping distances). Only the writer moves `tail`
//!    and only the reader moves `head`, each by one (or, for a run, by a count it checked).
//! 2. A slot whose index is in `[head, tail)` holds an initialised value owned by the ring; every
//!    other slot is uninitialised. The writer writes slot `tail` *before* its Release store of
//!    `tail + 1`; the reader reads `tail` with Acquire before reading the slot, so it sees the
//!    value. Symmetrically the reader moves the value out before its Release store of
//!    `head + 1`, and the writer loads `head` with Acquire before it reuses that slot.
//! 3. Each side caches the other's index (`head_seen`, `tail_seen`): the cached value is one
//!    the index really had, and indices only grow, so a check against the cache is
//!    conservative (the ring may have more room, or more values, than the cache says) and the
//!    shared index is reloaded only when the cache says "full" or "empty". On the hot path a
//!    side touches the other's cache line once per lap instead of once per message.
//!
//! # Blocking the writer
//!
//! The writer may wait for room ([`RingWriter::push_blocking`]); the reader never waits here
//! (it waits on the dispatcher's clock, see `crate::clock`). The writer first spins, then
//! yields, for a moment (crossbeam's `Backoff`, as crossbeam's channels do): a reader draining
//! a full ring frees a slot at a time, and parking at once cost a park and an unpark per message
//! (BENCHMARKS.md, "Where wall-clock time went"). Then it parks. The handshake is a Dekker pair:
//! the writer stores `writer_waiting`, fences, re-loads `head`; the reader stores `head`,
//! fences, loads `writer_waiting`. The two `fence(SeqCst)` are totally ordered, so either the
//! writer sees the room or the reader sees the flag and unparks it (a parker keeps the token,
//! so an unpark before the park is not lost). The reader pays one fence per pop (per run, for
//! [`RingReader::pop_run`]).
//!
//! # Ends
//!
//! Dropping the reader sets `reader_gone` and unparks the writer: pushes then fail with
//! [`Refused::Gone`]. Dropping the writer sets `writer_gone`: the reader takes what is left,
//! then gets [`Popped::Disconnected`]. Values still in the ring when both ends are gone are
//! dropped with it.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::deadline::park_time;
use crate::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::{Arc, Backoff, Parker, Unparker};

/// The state both ends share.
struct Ring<T> {
    /// Next index the reader takes. Stored only by the reader.
    head: CachePadded<AtomicUsize>,
    /// Next index the writer fills. Stored only by the writer.
    tail: CachePadded<AtomicUsize>,
    /// `slots.len()` is a power of two; index `i` lives in `slots[i & mask]`.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// How many values the ring holds at most (`<= slots.len()`).
    capacity: usize,
    /// Set by a writer about to park for room (see the module doc).
    writer_waiting: AtomicBool,
    writer_unparker: Unparker,
    reader_gone: AtomicBool,
    writer_gone: AtomicBool,
}

// SAFETY: a value of `T` is moved in by the writer and out by the reader, never shared, so
// `T: Send` is enough. Each slot is accessed by one side at a time: invariant 2 of the module
// doc hands it over through `head` and `tail` with Release/Acquire pairs.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; the only `&Ring` accesses are atomics and slots owned per invariant 2.
unsafe impl<T: Send> Sync for Ring<T> {}

/// Why a push did not go through; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// The ring holds `capacity` values.
    Full(T),
    /// The reader is gone.
    Gone(T),
}

impl<T> Refused<T> {
    /// The same refusal, carrying `f` of its value.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Refused<U> {
        match self {
            Refused::Full(value) => Refused::Full(f(value)),
            Refused::Gone(value) => Refused::Gone(f(value)),
        }
    }
}

/// What a pop found, when it found no value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Popped {
    /// Nothing now; the writer is still there.
    Empty,
    /// Nothing, and the writer is gone: nothing ever will be.
    Disconnected,
}

/// The writing end (the dispatcher's).
pub(crate) struct RingWriter<T> {
    ring: Arc<Ring<T>>,
    /// Equal to `ring.tail`: only this end stores it.
    tail: usize,
    /// A value `ring.head` had (invariant 3).
    head_seen: usize,
    parker: Parker,
}

/// The reading end (the receiver's). `Cell`s: the inbox reads through `&self`, and the type is
/// `!Sync`, so one thread at a time.
pub(crate) struct RingReader<T> {
    ring: Arc<Ring<T>>,
    /// Equal to `ring.head`: only this end stores it.
    head: Cell<usize>,
    /// A value `ring.tail` had (invariant 3).
    tail_seen: Cell<usize>,
}

/// A ring holding at most `capacity` values (at least 1). Its buffer has the next power of two
/// slots.
pub(crate) fn ring<T>(capacity: usize) -> (RingWriter<T>, RingReader<T>) {
    let capacity = capacity.max(1);
    let len = capacity.next_power_of_two();
    let slots = (0..len)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let parker = Parker::new();
    let ring = Arc::new(Ring {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: len - 1,
        capacity,
        writer_waiting: AtomicBool::new(false),
        writer_unparker: parker.unparker().clone(),
        reader_gone: AtomicBool::new(false),
        writer_gone: AtomicBool::new(false),
    });
    let writer = RingWriter {
        ring: ring.clone(),
        tail: 0,
        head_seen: 0,
        parker,
    };
    let reader = RingReader {
        ring,
        head: Cell::new(0),
        tail_seen: Cell::new(0),
    };
    (writer, reader)
}

impl<T> RingWriter<T> {
    /// Appends `value` if there is room and the reader is still there.
    #[inline]
    pub(crate) fn try_push(&mut self, value: T) -> Result<(), Refused<T>> {
        let ring = &*self.ring;
        // Relaxed: only advisory. A value pushed just as the reader leaves is dropped with the
        // ring, as one pushed just before it left would be.
        if ring.reader_gone.load(Ordering::Relaxed) {
            return Err(Refused::Gone(value));
        }
        if self.tail.wrapping_sub(self.head_seen) == ring.capacity {
            // Acquire: the reader moved the value out of the slot we are about to reuse
            // before it stored `head` (invariant 2).
            self.head_seen = ring.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_seen) == ring.capacity {
                return Err(Refused::Full(value));
            }
        }
        let slot = &ring.slots[self.tail & ring.mask];
        // SAFETY: index `tail` is outside `[head, tail)`, so the slot is uninitialised and
        // the reader does not touch it until the store below publishes it (invariant 2).
        slot.with_mut(|slot| unsafe { slot.write(MaybeUninit::new(value)) });
        self.tail = self.tail.wrapping_add(1);
        ring.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Appends `value`, parking while the ring is full; gives it back if the reader goes
    /// away first ([`Refused::Gone`]), or if `deadline` passes while the ring is still full
    /// ([`Refused::Full`]).
    pub(crate) fn push_blocking(
        &mut self,
        mut value: T,
        deadline: Option<Instant>,
    ) -> Result<(), Refused<T>> {
        let backoff = Backoff::new();
        loop {
            match self.try_push(value) {
                Err(Refused::Full(back)) => value = back,
                done => return done,
            }
            // Spin (then yield) before parking: see "Blocking the writer" in the module doc.
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let Ok(timeout) = park_time(deadline) else {
                return Err(Refused::Full(value));
            };
            let ring = &*self.ring;
            ring.writer_waiting.store(true, Ordering::Relaxed);
            // Pairs with the reader's fence after its `head` store (module doc).
            fence(Ordering::SeqCst);
            let head = ring.head.load(Ordering::Acquire);
            let full = self.tail.wrapping_sub(head) == ring.capacity;
            if full && !ring.reader_gone.load(Ordering::Acquire) {
                match timeout {
                    Some(timeout) => self.parker.park_timeout(timeout),
                    None => self.parker.park(),
                }
            }
            ring.writer_waiting.store(false, Ordering::Relaxed);
        }
    }
}

impl<T> Drop for RingWriter<T> {
    fn drop(&mut self) {
        // Release: a reader that sees the flag sees every value pushed before it.
        self.ring.writer_gone.store(true, Ordering::Release);
    }
}

impl<T> RingReader<T> {
    /// Takes the oldest value, if any.
    #[inline]
    pub(crate) fn try_pop(&self) -> Result<T, Popped> {
        let head = self.head.get();
        if head == self.tail_seen.get() && head == self.refresh_tail()? {
            return Err(Popped::Empty);
        }
        // SAFETY: `head` is in `[head, tail)` (checked against a tail loaded with Acquire, now
        // or earlier), so the slot holds a value the writer published and will not touch
        // until `head` moves past it (invariant 2). It is moved out exactly once: `head`
        // advances right after.
        let value = self.ring.slots[head & self.ring.mask]
            .with_mut(|slot| unsafe { slot.read().assume_init() });
        self.advance(head.wrapping_add(1));
        Ok(value)
    }

    /// Takes up to `max` values, oldest first, handing each to `each`; returns how many.
    /// One load of `tail`, one store of `head` and one fence for the whole run.
    pub(crate) fn pop_run(&self, max: usize, mut each: impl FnMut(T)) -> Result<usize, Popped> {
        let head = self.head.get();
        let mut tail = self.tail_seen.get();
        if head == tail {
            tail = self.refresh_tail()?;
            if head == tail {
                return Err(Popped::Empty);
            }
        }
        let count = tail.wrapping_sub(head).min(max);
        let end = head.wrapping_add(count);
        let mut index = head;
        // Advance `head` even if `each` panics, so no value is read twice.
        struct Advance<'a, T> {
            reader: &'a RingReader<T>,
            index: &'a mut usize,
        }
        impl<T> Drop for Advance<'_, T> {
            fn drop(&mut self) {
                self.reader.advance(*self.index);
            }
        }
        let guard = Advance {
            reader: self,
            index: &mut index,
        };
        while *guard.index != end {
            let at = *guard.index;
            // SAFETY: as in `try_pop`: every index in `[head, end)` is below a tail loaded
            // with Acquire. `index` moves past `at` before `each` runs, so the value is
            // moved out once even if `each` panics.
            let value = self.ring.slots[at & self.ring.mask]
                .with_mut(|slot| unsafe { slot.read().assume_init() });
            *guard.index = at.wrapping_add(1);
            each(value);
        }
        drop(guard);
        Ok(count)
    }

    /// Loads `tail` (Acquire) into the cache. `Err(Disconnected)` if the ring is empty for
    /// good: the writer is gone and left nothing.
    fn refresh_tail(&self) -> Result<usize, Popped> {
        let ring = &*self.ring;
        let mut tail = ring.tail.load(Ordering::Acquire);
        if tail == self.head.get() && ring.writer_gone.load(Ordering::Acquire) {
            // The writer's last pushes happened before its flag: one more look sees them.
            tail = ring.tail.load(Ordering::Acquire);
            if tail == self.head.get() {
                return Err(Popped::Disconnected);
            }
        }
        self.tail_seen.set(tail);
        Ok(tail)
    }

    /// Publishes `head` and wakes the writer if it waits for room.
    #[inline]
    fn advance(&self, head: usize) {
        self.head.set(head);
        let ring = &*self.ring;
        // Release: the values moved out happen-before the writer reuses their slots.
        ring.head.store(head, Ordering::Release);
        // Pairs with the fence in `push_blocking` (module doc).
        fence(Ordering::SeqCst);
        if ring.writer_waiting.load(Ordering::Relaxed) {
            ring.writer_unparker.unpark();
        }
    }
}

impl<T> Drop for RingReader<T> {
    fn drop(&mut self) {
        let ring = &*self.ring;
        ring.reader_gone.store(true, Ordering::Release);
        // A writer parked for room must learn there will be none. An unpark it does not need
        // leaves a token that costs it one extra look.
        ring.writer_unparker.unpark();
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both ends are gone (this is the last `Arc`): `[head, tail)` holds the values left.
        let mut index = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        while index != tail {
            // SAFETY: invariant 2: indices in `[head, tail)` hold initialised values, and
            // nobody else can reach them any more.
            self.slots[index & self.mask].with_mut(|slot| unsafe { slot.read().assume_init() });
            index = index.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
