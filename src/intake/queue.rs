//! The intake's data queue: bounded, many producers (senders), one consumer (the dispatcher).
//!
//! It replaces a crossbeam array channel plus a `select!` over it and the control channel,
//! which cost about 260 instructions per message between them (callgrind, BENCHMARKS.md). The
//! queue is Vyukov's bounded array queue, simplified by having one consumer:
//!
//! ```text
//! tail: next position to claim      producers: compare_exchange(pos, pos + 1)
//! head: next position to take       consumer only: Release store after each take
//! slot of pos: slots[pos & mask]    (a power-of-two buffer, at least `capacity` long)
//! slot.ready == pos + 1             the value of `pos` is written (Release by its producer)
//! room: tail - head < capacity      (checked against a head loaded with Acquire)
//! ```
//!
//! # Invariants
//!
//! 1. A producer owns position `pos` from its successful claim until its Release store of
//!    `ready = pos + 1`; the consumer owns it from its Acquire load of that `ready` until its
//!    Release store of `head = pos + 1`. No one else touches the slot in between.
//! 2. A claim of `pos` is made only after a load of `head` with `pos - head < capacity`, so
//!    the slot's previous position (`pos - slots.len()` or earlier) was taken: its value moved
//!    out before `head` passed it, and the Acquire load of `head` orders that move before the
//!    new write.
//! 3. Positions are taken in order; a claimed position whose value is not yet written holds the
//!    consumer back ("empty") until its producer finishes, which it does without waiting.
//!
//! # Sleeping and waking (no spinning)
//!
//! Every wait is a Dekker handshake: the waiter stores its flag (or registers), issues
//! `fence(SeqCst)`, re-checks its condition, and parks; the other side changes the condition,
//! issues `fence(SeqCst)`, and reads the flag. The fences are totally ordered, so one of the
//! two sees the other. Parkers keep a token, so an unpark before the park is not lost.
//!
//! * The **consumer** sleeps when the queue and the control channel are empty
//!   ([`IntakeReceiver::sleep`]). A producer rings after every push ([`IntakeSender::ring`]),
//!   and so does every control message: one fence and one load when the dispatcher is awake.
//! * **Producers** wait for room (or, at bound 0, for the dispatcher to take their message) in
//!   a waiter list. The consumer wakes them once per batch ([`IntakeReceiver::wake_producers`])
//!   and before it blocks anywhere else (on a full inbox), so a producer is never left asleep
//!   while the room it waits for exists and the dispatcher waits for it in turn.
//!
//! # Bound 0
//!
//! A rendezvous: the buffer has one slot, and a producer returns from `send` only once the
//! dispatcher has taken its message. A send with a deadline waits for the slot until the
//! deadline, but once its message is in, it returns `Ok` at the deadline even if the dispatcher
//! has not taken it yet: the message was accepted and will be stamped, so reporting a timeout
//! (which hands the value back as unsent) would be false.
//!
//! # Ends
//!
//! The consumer learns that every producer is gone from a count of live [`IntakeSender`]s; it
//! then takes what is left and gets [`Taken::Disconnected`]. When the consumer goes (the
//! dispatcher thread ends, even by a panic), producers get their value back; a rendezvous
//! producer whose message was not taken takes it back.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

pub(crate) use super::{Refused, Taken};
use crate::deadline::park_time;
use crate::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::{Arc, Mutex, Parker, Unparker};

struct Slot<T> {
    /// `pos + 1` once the value of position `pos` is written.
    ready: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

struct Queue<T> {
    tail: CachePadded<AtomicUsize>,
    head: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    mask: usize,
    /// Messages queued at most (at least 1).
    capacity: usize,
    /// Bound 0: a send waits until its message is taken.
    rendezvous: bool,
    /// Live `IntakeSender`s.
    producers: AtomicUsize,
    consumer_gone: AtomicBool,
    consumer_sleeping: AtomicBool,
    consumer_unparker: Unparker,
    /// Control messages announced and not yet taken: lets the dispatcher check the control
    /// channel with one load per data message (see `crate::intake` for why it must check).
    /// Incremented before the message is sent, so it never undercounts.
    control_pending: CachePadded<AtomicUsize>,
    /// `waiters.len()`, readable without the lock.
    waiting: AtomicUsize,
    /// Producers parked for room or for their message to be taken: (key, whom to wake).
    waiters: Mutex<Vec<(usize, Unparker)>>,
}

// SAFETY: values of `T` move from one producer to the consumer, never shared: `T: Send` is
// enough. Slots are accessed under the ownership rules of invariant 1.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Queue<T> {}

/// A producer's handle: cloneable, shareable.
pub(crate) struct IntakeSender<T> {
    queue: Arc<Queue<T>>,
}

/// The consumer's handle (the dispatcher's).
pub(crate) struct IntakeReceiver<T> {
    queue: Arc<Queue<T>>,
    /// Equal to `queue.head`: only this handle stores it.
    head: usize,
    parker: Parker,
}

/// A queue for the intake of a dispatcher with `bound` (0: rendezvous).
pub(crate) fn intake_queue<T>(bound: usize) -> (IntakeSender<T>, IntakeReceiver<T>) {
    let capacity = bound.max(1);
    let len = capacity.next_power_of_two();
    let slots = (0..len)
        .map(|_| Slot {
            ready: AtomicUsize::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        })
        .collect();
    let parker = Parker::new();
    let queue = Arc::new(Queue {
        tail: CachePadded::new(AtomicUsize::new(0)),
        head: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: len - 1,
        capacity,
        rendezvous: bound == 0,
        producers: AtomicUsize::new(1),
        consumer_gone: AtomicBool::new(false),
        consumer_sleeping: AtomicBool::new(false),
        consumer_unparker: parker.unparker().clone(),
        control_pending: CachePadded::new(AtomicUsize::new(0)),
        waiting: AtomicUsize::new(0),
        waiters: Mutex::new(Vec::new()),
    });
    (
        IntakeSender {
            queue: queue.clone(),
        },
        IntakeReceiver {
            queue,
            head: 0,
            parker,
        },
    )
}

impl<T> Queue<T> {
    /// Whether position `pos` has been taken by the consumer.
    fn taken(&self, pos: usize) -> bool {
        // Wrapping: positions are compared by their distance, as everywhere here.
        (self.head.load(Ordering::Acquire).wrapping_sub(pos) as isize) > 0
    }

    fn has_room(&self) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        tail.wrapping_sub(self.head.load(Ordering::Acquire)) < self.capacity
    }

    /// Parks a producer until `ready()` holds or `timeout` passes (or spuriously): registers,
    /// fences, re-checks, parks, unregisters. The caller loops.
    fn park_producer(&self, timeout: Option<Duration>, ready: impl Fn() -> bool) {
        let parker = Parker::new();
        // The parker lives in this frame until its entry is removed: its address is unique
        // among the registered.
        let key = &parker as *const Parker as usize;
        {
            let mut waiters = self.waiters.lock();
            waiters.push((key, parker.unparker().clone()));
            self.waiting.store(waiters.len(), Ordering::Relaxed);
        }
        // Pairs with the fence in `wake_producers` (module doc).
        fence(Ordering::SeqCst);
        if !ready() && !self.consumer_gone.load(Ordering::Acquire) {
            match timeout {
                Some(timeout) => parker.park_timeout(timeout),
                None => parker.park(),
            }
        }
        let mut waiters = self.waiters.lock();
        if let Some(at) = waiters.iter().position(|&(k, _)| k == key) {
            waiters.swap_remove(at);
        }
        self.waiting.store(waiters.len(), Ordering::Relaxed);
    }

    /// Wakes the consumer if it sleeps (the producer's half of the handshake).
    #[inline]
    fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.consumer_sleeping.load(Ordering::Relaxed) {
            self.consumer_unparker.unpark();
        }
    }
}

impl<T> IntakeSender<T> {
    /// Queues `value` if there is room now; returns its position.
    #[inline]
    fn try_claim(&self, value: T) -> Result<usize, Refused<T>> {
        let queue = &*self.queue;
        if queue.consumer_gone.load(Ordering::Acquire) {
            return Err(Refused::Gone(value));
        }
        let mut pos = queue.tail.load(Ordering::Relaxed);
        loop {
            // Acquire: invariant 2.
            let head = queue.head.load(Ordering::Acquire);
            if pos.wrapping_sub(head) >= queue.capacity {
                return Err(Refused::Full(value));
            }
            match queue.tail.compare_exchange_weak(
                pos,
                pos.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => pos = now,
            }
        }
        let slot = &queue.slots[pos & queue.mask];
        // SAFETY: this producer owns `pos` (invariant 1): claimed above, after a head that
        // shows the slot's previous value moved out (invariant 2).
        slot.value
            .with_mut(|cell| unsafe { cell.write(MaybeUninit::new(value)) });
        slot.ready.store(pos.wrapping_add(1), Ordering::Release);
        queue.ring();
        Ok(pos)
    }

    /// Queues `value` if there is room now (never at bound 0, where a send must wait).
    #[cfg(feature = "async")]
    pub(crate) fn try_send(&self, value: T) -> Result<(), Refused<T>> {
        if self.queue.rendezvous {
            return Err(Refused::Full(value));
        }
        self.try_claim(value).map(drop)
    }

    /// Queues `value`, waiting for room until `deadline` (if any), and returns its position (the
    /// number of messages queued before it, wrapping). At bound 0, then waits for the
    /// dispatcher to take it (see the module doc for the deadline there).
    pub(crate) fn send(
        &self,
        mut value: T,
        deadline: Option<Instant>,
    ) -> Result<usize, Refused<T>> {
        let queue = &*self.queue;
        loop {
            match self.try_claim(value) {
                Ok(pos) if queue.rendezvous => {
                    return self.await_taken(pos, deadline).map(|()| pos)
                }
                Ok(pos) => return Ok(pos),
                Err(Refused::Full(back)) => value = back,
                Err(refused) => return Err(refused),
            }
            let Ok(timeout) = park_time(deadline) else {
                return Err(Refused::Timeout(value));
            };
            queue.park_producer(timeout, || queue.has_room());
        }
    }

    /// Bound 0: waits until the message at `pos` is taken. If the dispatcher is gone first,
    /// takes the message back.
    fn await_taken(&self, pos: usize, deadline: Option<Instant>) -> Result<(), Refused<T>> {
        let queue = &*self.queue;
        loop {
            if queue.taken(pos) {
                return Ok(());
            }
            if queue.consumer_gone.load(Ordering::Acquire) {
                // The consumer stored its flag after its last take, so `head` is final.
                if queue.taken(pos) {
                    return Ok(());
                }
                let slot = &queue.slots[pos & queue.mask];
                // Not ready any more: the queue's drop must not drop it again.
                slot.ready.store(pos, Ordering::Relaxed);
                // SAFETY: the value of `pos` was written by this producer and never taken, and
                // the consumer is gone: nobody else can reach it.
                let value = slot
                    .value
                    .with_mut(|cell| unsafe { cell.read().assume_init() });
                return Err(Refused::Gone(value));
            }
            let Ok(timeout) = park_time(deadline) else {
                // Accepted; it will be stamped (module doc).
                return Ok(());
            };
            queue.park_producer(timeout, || queue.taken(pos));
        }
    }

    /// Announces a control message about to be sent (before sending it).
    pub(crate) fn announce_control(&self) {
        self.queue.control_pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Wakes the dispatcher if it sleeps: after a control message is sent.
    pub(crate) fn ring(&self) {
        self.queue.ring();
    }

    /// Whether every send is a rendezvous (bound 0).
    #[cfg(feature = "async")]
    pub(crate) fn is_rendezvous(&self) -> bool {
        self.queue.rendezvous
    }
}

impl<T> Clone for IntakeSender<T> {
    fn clone(&self) -> Self {
        self.queue.producers.fetch_add(1, Ordering::Relaxed);
        IntakeSender {
            queue: self.queue.clone(),
        }
    }
}

impl<T> Drop for IntakeSender<T> {
    fn drop(&mut self) {
        // AcqRel: the last one's decrement is seen (Acquire) by the consumer after every push
        // and control message any producer made.
        if self.queue.producers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Always: this happens once, and the consumer must learn of it.
            self.queue.consumer_unparker.unpark();
        }
    }
}

impl<T> IntakeReceiver<T> {
    /// Takes the oldest message, if its producer has finished writing it.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Result<T, Taken> {
        let queue = &*self.queue;
        let pos = self.head;
        let slot = &queue.slots[pos & queue.mask];
        // Acquire: pairs with the producer's Release store of `ready` (invariant 1).
        if slot.ready.load(Ordering::Acquire) != pos.wrapping_add(1) {
            return Err(self.why_empty());
        }
        // SAFETY: `ready == pos + 1`: the value is written and this consumer owns it until
        // the store of `head` below (invariant 1); it is moved out once.
        let value = slot
            .value
            .with_mut(|cell| unsafe { cell.read().assume_init() });
        self.head = pos.wrapping_add(1);
        // Release: the value moved out happens-before a producer reuses the slot.
        queue.head.store(self.head, Ordering::Release);
        Ok(value)
    }

    /// Nothing ready at `head`: empty for now, or for good.
    #[cold]
    fn why_empty(&self) -> Taken {
        let queue = &*self.queue;
        if queue.producers.load(Ordering::Acquire) != 0 {
            return Taken::Empty;
        }
        // Every producer is gone, and their pushes happened before (Acquire above): one more
        // look is final.
        let slot = &queue.slots[self.head & queue.mask];
        if slot.ready.load(Ordering::Acquire) == self.head.wrapping_add(1) {
            Taken::Empty
        } else {
            Taken::Disconnected
        }
    }

    /// Whether a control message may be waiting. A join announced before a data message was
    /// sent is seen here by the time that message is taken: the announcement happened-before
    /// the send, and the take synchronises with it.
    #[inline]
    pub(crate) fn control_pending(&self) -> bool {
        self.queue.control_pending.load(Ordering::Relaxed) != 0
    }

    /// One announced control message has been taken.
    pub(crate) fn control_taken(&self) {
        self.queue.control_pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// Messages queued (claimed positions not yet taken; a claim is written at once).
    pub(crate) fn len(&self) -> usize {
        self.queue
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// Parks until a producer rings (a data or a control message), every producer is gone,
    /// or `timeout` passes (or spuriously); the caller loops. `control_ready` looks at the
    /// control channel itself: the count of announced messages may run ahead of it (a message
    /// announced and not yet sent), and a sleep that trusted the count would spin.
    pub(crate) fn sleep(&self, timeout: Option<Duration>, control_ready: impl Fn() -> bool) {
        let queue = &*self.queue;
        queue.consumer_sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Queue::ring` (module doc).
        fence(Ordering::SeqCst);
        let slot = &queue.slots[self.head & queue.mask];
        let ready = slot.ready.load(Ordering::Acquire) == self.head.wrapping_add(1)
            || control_ready()
            || queue.producers.load(Ordering::Acquire) == 0;
        if !ready {
            match timeout {
                Some(timeout) => self.parker.park_timeout(timeout),
                None => self.parker.park(),
            }
        }
        queue.consumer_sleeping.store(false, Ordering::Relaxed);
    }

    /// Wakes the producers waiting for room or for their message to be taken. Called after
    /// each batch and before the dispatcher blocks on anything else.
    pub(crate) fn wake_producers(&self) {
        let queue = &*self.queue;
        // Pairs with the fence in `Queue::park_producer` (module doc).
        fence(Ordering::SeqCst);
        if queue.waiting.load(Ordering::Relaxed) != 0 {
            for (_, unparker) in queue.waiters.lock().iter() {
                unparker.unpark();
            }
        }
    }
}

impl<T> Drop for IntakeReceiver<T> {
    fn drop(&mut self) {
        let queue = &*self.queue;
        // Release: a producer that sees the flag sees the final `head`.
        queue.consumer_gone.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        for (_, unparker) in queue.waiters.lock().iter() {
            unparker.unpark();
        }
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // Every handle is gone: the values written and not taken are dropped here.
        let mut pos = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        while pos != tail {
            let slot = &self.slots[pos & self.mask];
            if slot.ready.load(Ordering::Acquire) == pos.wrapping_add(1) {
                // SAFETY: written (ready) and never taken (at or after head); no handle is left.
                slot.value
                    .with_mut(|cell| unsafe { drop(cell.read().assume_init()) });
            }
            pos = pos.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
