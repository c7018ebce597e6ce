//! The shared clock: one watermark for every receiver, and a count of receivers asleep.
//!
//! # Protocol
//!
//! The dispatcher is the only writer. After it has pushed every payload stamped `<= c` into its
//! receiver's inbox, it [publishes](Clock::publish) `c`. A receiver [reads](Clock::read) the
//! clock *before* it looks at its inbox; if the inbox is then empty, nothing stamped `<= c` is
//! on its way to it, so `(None, c)` is a safe answer (watermark safety). One store per batch
//! replaces 4.0.2's mutex-and-condvar per receiver per message.
//!
//! Sleeping is an event count. A receiver that found nothing [registers](Clock::sleep) its
//! unparker in the sleeper list (and bumps the sleeper count), re-checks clock and inbox, and
//! only then parks. The dispatcher stores the clock, then reads the count; only if it is
//! non-zero does it lock the list and unpark exactly the receivers in it: the cost is
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

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::sync::{Mutex, Unparker};

/// The global watermark, and the receivers asleep waiting for it to move.
pub(crate) struct Clock {
    released: CachePadded<AtomicUsize>,
    /// `sleeping.len()`, readable without the lock.
    sleepers: CachePadded<AtomicUsize>,
    /// The sleepers' keys and unparkers.
    sleeping: Mutex<Vec<(usize, Unparker)>>,
}

impl Clock {
    /// A clock that starts at `seed`: the first stamp assigned will be `seed + 1`.
    pub(crate) fn new(seed: usize) -> Self {
        Clock {
            released: CachePadded::new(AtomicUsize::new(seed)),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            sleeping: Mutex::new(Vec::new()),
        }
    }

    /// The highest stamp whose payloads are all in their inboxes.
    pub(crate) fn read(&self) -> usize {
        // Acquire: pairs with `publish`'s Release, so the payloads pushed before are visible.
        self.released.load(Ordering::Acquire)
    }

    /// Publishes `stamp` and unparks every receiver asleep.
    ///
    /// Must only be called by the dispatcher, after every payload stamped `<= stamp` has been
    /// pushed, with stamps that never decrease.
    pub(crate) fn publish(&self, stamp: usize) {
        self.released.store(stamp, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            for (_, unparker) in self.sleeping.lock().iter() {
                unparker.unpark();
            }
        }
    }

    /// Registers a sleeper under `key` (unique among live receivers); the caller must re-check
    /// its condition afterwards, then park, then call [`wake`](Clock::wake).
    pub(crate) fn sleep(&self, key: usize, unparker: &Unparker) {
        let mut sleeping = self.sleeping.lock();
        sleeping.push((key, unparker.clone()));
        self.sleepers.store(sleeping.len(), Ordering::Relaxed);
        drop(sleeping);
        fence(Ordering::SeqCst);
    }

    /// Unregisters the sleeper registered under `key`.
    pub(crate) fn wake(&self, key: usize) {
        let mut sleeping = self.sleeping.lock();
        if let Some(index) = sleeping.iter().position(|&(k, _)| k == key) {
            sleeping.swap_remove(index);
        }
        self.sleepers.store(sleeping.len(), Ordering::Relaxed);
    }
}
