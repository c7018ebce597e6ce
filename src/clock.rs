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
//! Sleeping is an event count. A receiver that found nothing marks itself sleeping, bumps
//! [`sleepers`](Clock::sleep), re-checks clock and inbox, and only then parks. The dispatcher
//! stores the clock (or a close marker), then reads `sleepers`; only if it is non-zero does it
//! look for sleeping receivers to unpark. Both sides write, issue a `fence(SeqCst)`, then read
//! (a store-buffering, Dekker-style handshake): the two fences are totally ordered, so either
//! the receiver's re-check sees the new clock, or the dispatcher sees the sleeper. No wake-up
//! is lost, and when nobody sleeps the dispatcher makes no syscall at all.
//!
//! Fences rather than `SeqCst` loads and stores: the guarantee is the same in the C++ model,
//! but loom models `SeqCst` accesses only as `AcqRel` (and would report false lost wake-ups),
//! while it models `fence(SeqCst)` exactly. The fence costs one per batch on the dispatcher and
//! one per sleep on a receiver; the hot path (a receiver that finds data) has none.

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{fence, AtomicUsize, Ordering};

/// The global watermark and sleeper count, each on its own cache line.
pub(crate) struct Clock {
    released: CachePadded<AtomicUsize>,
    sleepers: CachePadded<AtomicUsize>,
}

impl Clock {
    /// A clock that starts at `seed`: the first stamp assigned will be `seed + 1`.
    pub(crate) fn new(seed: usize) -> Self {
        Clock {
            released: CachePadded::new(AtomicUsize::new(seed)),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// The highest stamp whose payloads are all in their inboxes.
    pub(crate) fn read(&self) -> usize {
        // Acquire: pairs with `publish`'s Release, so the payloads pushed before are visible.
        self.released.load(Ordering::Acquire)
    }

    /// Publishes `stamp`; returns whether any receiver may be asleep and needs a look.
    ///
    /// Must only be called by the dispatcher, after every payload stamped `<= stamp` has been
    /// pushed, with stamps that never decrease.
    pub(crate) fn publish(&self, stamp: usize) -> bool {
        self.released.store(stamp, Ordering::Release);
        self.sleepers_after_store()
    }

    /// Whether any receiver may be asleep, to be called right after storing whatever a sleeper
    /// waits for (the dispatcher's half of the handshake).
    pub(crate) fn sleepers_after_store(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleepers.load(Ordering::Relaxed) != 0
    }

    /// Registers one more sleeper (the receiver's half of the handshake, after it has raised
    /// its own `sleeping` flag); the caller must re-check its condition afterwards.
    pub(crate) fn sleep(&self) {
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Unregisters a sleeper registered by [`sleep`](Clock::sleep).
    pub(crate) fn wake(&self) {
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }
}
