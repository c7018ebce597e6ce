//! The shared clock: one watermark for every receiver, and the lists of those asleep.
//!
//! # Protocol
//!
//! The dispatcher is the only writer. After it has pushed every payload stamped `<= c` into its
//! receiver's inbox, it [publishes](Clock::advance) `c`. A receiver [reads](Clock::read) the
//! clock *before* it looks at its inbox; if the inbox is then empty, nothing stamped `<= c` is
//! on its way to it, so `(None, c)` is a safe answer (watermark safety). One store per batch
//! replaces 4.0.2's mutex-and-condvar per receiver per message.
//!
//! Sleeping is an event count. A receiver that found nothing [registers](Sleepers::sleep) its
//! unparker in a sleeper list (and bumps that list's count), re-checks clock and inbox, and
//! only then parks. The dispatcher stores the clock, then reads the count; only if it is
//! non-zero does it lock the list and unpark exactly the sleepers in it: the cost is
//! O(sleepers), not O(receivers), and when nobody sleeps it is one fence and one load, with no
//! lock and no syscall. Both sides write, issue a `fence(SeqCst)`, then read (a
//! store-buffering, Dekker-style handshake): the two fences are totally ordered, so either the
//! receiver's re-check sees the new clock, or the dispatcher sees the count, and then, through
//! the list's lock, the entry pushed in the same critical section. No wake-up is lost.
//!
//! Fences rather than `SeqCst` loads and stores: the guarantee is the same in the C++ model,
//! but loom models `SeqCst` accesses only as `AcqRel` (and would report false lost wake-ups),
//! while it models `fence(SeqCst)` exactly. The fence costs one per batch on the dispatcher and
//! one per sleep on a receiver; the hot path (a receiver that finds data) has none.
//!
//! There are two lists with the same handshake. [`Clock::readers`] holds receivers waiting for
//! something new; the dispatcher may wake them later than it publishes, at most once per its
//! wake interval while it is busy (a reader with data is woken through its inbox at once; see
//! `crate::engine::waking`). [`Clock::forwarders`] holds forwarders waiting for room in the
//! reorder window ([`Clock::wait_until`], keyed by the address of their own parker); they are
//! woken at every publish, since the room they wait for is what lets the stream go on. When
//! the dispatcher thread ends (normally or by a panic) it [stops](Clock::stop) the clock: the
//! flag is set and every sleeper unparked, so a waiting forwarder learns that the clock will
//! never move again instead of hanging.

use crossbeam_utils::CachePadded;

use std::time::Instant;

use crate::deadline::park_time;
use crate::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Mutex, Parker, Unparker};
use crate::waiter::Waiter;

/// How [`Clock::wait_until`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The condition held for this released clock.
    Ready(usize),
    /// The dispatcher thread has ended: the clock will not move again.
    Stopped,
    /// The deadline passed; the clock last read.
    TimedOut(usize),
}

/// The global watermark, and the threads and tasks asleep waiting for it to move.
pub(crate) struct Clock {
    released: CachePadded<AtomicUsize>,
    /// Receivers waiting for something new (`recv`, `Select`, `recv_async`): the dispatcher
    /// may hold their wake-up back for its wake interval (see `crate::engine::waking`).
    pub(crate) readers: Sleepers,
    /// Forwarders waiting for room in the reorder window: woken at every publish.
    pub(crate) forwarders: Sleepers,
    /// Set once the dispatcher thread has ended.
    stopped: AtomicBool,
}

/// One list of sleepers, and its length readable without the lock.
pub(crate) struct Sleepers {
    /// `sleeping.len()`.
    count: CachePadded<AtomicUsize>,
    /// The sleepers' keys, and whom to wake (see [`crate::waiter`]).
    sleeping: Mutex<Vec<(usize, Waiter)>>,
}

impl Sleepers {
    fn new() -> Self {
        Sleepers {
            count: CachePadded::new(AtomicUsize::new(0)),
            sleeping: Mutex::new(Vec::new()),
        }
    }

    /// Registers a sleeper under `key` (unique among live sleepers of this list); the caller
    /// must re-check its condition afterwards, then park, then
    /// [`unregister`](Sleepers::unregister).
    pub(crate) fn sleep(&self, key: usize, unparker: &Unparker) {
        let mut sleeping = self.sleeping.lock();
        sleeping.push((key, Waiter::Thread(unparker.clone())));
        self.count.store(sleeping.len(), Ordering::Relaxed);
        drop(sleeping);
        fence(Ordering::SeqCst);
    }

    /// Registers a task under `key` for the next wake-up (one wake), replacing the waker of
    /// an entry it left under that key. Like [`sleep`](Sleepers::sleep), the caller re-checks
    /// its condition afterwards; [`unregister`](Sleepers::unregister) removes the entry if it
    /// is still there.
    #[cfg(feature = "async")]
    pub(crate) fn sleep_task(&self, key: usize, waker: &std::task::Waker) {
        let mut sleeping = self.sleeping.lock();
        match sleeping.iter_mut().find(|(k, _)| *k == key) {
            Some((_, waiter)) => *waiter = Waiter::Task(waker.clone()),
            None => sleeping.push((key, Waiter::Task(waker.clone()))),
        }
        self.count.store(sleeping.len(), Ordering::Relaxed);
        drop(sleeping);
        fence(Ordering::SeqCst);
    }

    /// Removes the sleeper registered under `key`, if it is still there.
    pub(crate) fn unregister(&self, key: usize) {
        let mut sleeping = self.sleeping.lock();
        if let Some(index) = sleeping.iter().position(|&(k, _)| k == key) {
            sleeping.swap_remove(index);
        }
        self.count.store(sleeping.len(), Ordering::Relaxed);
    }

    /// Whether anyone is registered (after the caller's `fence(SeqCst)`).
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Wakes every sleeper; tasks' entries go (one wake-up per registration). The list is
    /// copied into `scratch` under the lock and woken after it: a woken thread unregisters at
    /// once, and would otherwise queue on the lock behind the rest of the wake-ups. A sleeper
    /// that registers after the copy registered after the clock was stored, so its re-check
    /// sees the new clock (the handshake in the module doc); one unregistered meanwhile gets
    /// a spare token, which only makes its next park return early.
    ///
    /// Returns how many were woken.
    fn wake_all(&self, scratch: &mut Vec<Waiter>) -> usize {
        let mut sleeping = self.sleeping.lock();
        scratch.extend(sleeping.iter().map(|(_, waiter)| waiter.clone()));
        sleeping.retain(|(_, waiter)| !waiter.one_shot());
        self.count.store(sleeping.len(), Ordering::Relaxed);
        drop(sleeping);
        let woken = scratch.len();
        for waiter in scratch.drain(..) {
            waiter.wake();
        }
        woken
    }
}

impl Clock {
    /// A clock that starts at `seed`: the first stamp assigned will be `seed + 1`.
    pub(crate) fn new(seed: usize) -> Self {
        Clock {
            released: CachePadded::new(AtomicUsize::new(seed)),
            readers: Sleepers::new(),
            forwarders: Sleepers::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// The highest stamp whose payloads are all in their inboxes.
    pub(crate) fn read(&self) -> usize {
        // Acquire: pairs with `advance`'s Release, so the payloads pushed before are visible.
        self.released.load(Ordering::Acquire)
    }

    /// Publishes `stamp` without waking anyone yet: a receiver that looks sees it, one that
    /// sleeps sees it after the next [`wake_readers`](Clock::wake_readers), which the caller
    /// owes it (the dispatcher defers it while it is busy).
    ///
    /// Must only be called by the dispatcher, after every payload stamped `<= stamp` has been
    /// pushed, with stamps that never decrease.
    pub(crate) fn advance(&self, stamp: usize) {
        self.released.store(stamp, Ordering::Release);
    }

    /// The dispatcher's half of the sleep handshake, after one or more
    /// [`advance`](Clock::advance)s: a `fence(SeqCst)`, then unparks every forwarder asleep.
    /// Returns whether any reader is asleep: if not, a reader that registers later sees the
    /// advanced clock in its re-check, and nothing is owed to it. `scratch` is the caller's
    /// reusable buffer (empty on return).
    pub(crate) fn wake_forwarders(&self, scratch: &mut Vec<Waiter>) -> bool {
        fence(Ordering::SeqCst);
        if self.forwarders.any() {
            self.forwarders.wake_all(scratch);
        }
        self.readers.any()
    }

    /// Unparks every reader asleep: the wake-up owed since a
    /// [`wake_forwarders`](Clock::wake_forwarders) that found readers asleep (which may be
    /// some time ago: the dispatcher paces these, see `crate::engine::waking`). No fence of
    /// its own: the handshake's fence is the one `wake_forwarders` issued after the last
    /// [`advance`](Clock::advance), and every reader registered before it is in the list now
    /// (or has left it, having seen something). Returns how many were woken.
    pub(crate) fn wake_readers(&self, scratch: &mut Vec<Waiter>) -> usize {
        self.readers.wake_all(scratch)
    }

    /// Marks the clock as stopped for good and unparks every sleeper. Called once, when the
    /// dispatcher thread ends.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        // Always take the locks (this runs once): a sleeper either registered before, and is
        // unparked here, or registers after, and then its re-check sees the flag.
        let mut scratch = Vec::new();
        self.forwarders.wake_all(&mut scratch);
        self.readers.wake_all(&mut scratch);
    }

    /// Whether the dispatcher thread has ended.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Blocks until `ready(released)` holds, the clock [stops](Clock::stop), or `deadline`
    /// passes. Between checks the caller parks in the forwarder list and is unparked by the
    /// next publish: no spinning. Checks once before any registration, so a call whose
    /// condition already holds costs one load.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn(usize) -> bool,
    ) -> Waited {
        let mut parker: Option<Parker> = None;
        loop {
            let released = self.read();
            if ready(released) {
                return Waited::Ready(released);
            }
            if self.is_stopped() {
                return Waited::Stopped;
            }
            let Ok(timeout) = park_time(deadline) else {
                return Waited::TimedOut(released);
            };
            let parker = parker.get_or_insert_with(Parker::new);
            // The parker lives in this frame until the entry is removed: its address is unique
            // among live sleepers (receivers use their inbox flags' heap address).
            let key = parker as *const Parker as usize;
            self.forwarders.sleep(key, parker.unparker());
            if !ready(self.read()) && !self.is_stopped() {
                match timeout {
                    Some(timeout) => parker.park_timeout(timeout),
                    None => parker.park(),
                }
            }
            self.forwarders.unregister(key);
        }
    }
}
