//! Counters the dispatcher thread keeps, readable from any handle while it runs.
//!
//! The dispatcher counts in plain integers and publishes them with one `Relaxed` add per batch,
//! so statistics cost nothing per message. A count may therefore trail by a moment the
//! deliveries of the batch that made it: a reader can take a message from its inbox before its
//! batch ends.

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A snapshot of a dispatcher's counters; see [`Dispatcher::stats`](crate::Dispatcher::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatcherStats {
    /// Data messages the dispatcher has handled (sends, forwards, broadcasts; a broadcast
    /// counts once).
    pub handled: u64,
    /// Payloads dropped because their receiver was gone (dropped after the send was accepted)
    /// or already closed (a broadcast after every sender of that receiver left).
    pub undeliverable: u64,
    /// Forwarded stamps at or below the released clock when they reached the dispatcher.
    pub stale_stamps: u64,
    /// Forwarded stamps that were already waiting in the reorder window.
    pub duplicate_stamps: u64,
    /// Stamps never forwarded by anyone, skipped when the last handle went away so that the
    /// messages held behind them could still be delivered.
    pub skipped_stamps: u64,
    /// Journaled dispatchers: messages not stored, because the journal write of their batch
    /// failed (they were not delivered either) or their value could not be encoded (it was
    /// delivered, but a restart will not replay it).
    pub unjournaled: u64,
    /// Journaled dispatchers: writes to the journal, one per batch (each with one
    /// `fdatasync` under `Durability::Batch` and `Always`). `handled / journal_writes` is how
    /// many messages a sync serves on average: the group commit at work.
    pub journal_writes: u64,
    /// The published clock: every stamp up to it has been delivered to its inbox.
    pub clock: usize,
    /// The size of the dispatcher's receiver table: the highest receiver slot in use, plus
    /// one. Slots of closed receivers are reused, so this follows the number of receivers
    /// open at once, not the number ever created (a gauge, not a counter).
    pub receiver_slots: usize,
}

/// The shared, atomically updated form of [`DispatcherStats`].
#[derive(Default)]
pub(crate) struct Counters {
    handled: AtomicU64,
    undeliverable: AtomicU64,
    stale_stamps: AtomicU64,
    duplicate_stamps: AtomicU64,
    skipped_stamps: AtomicU64,
    unjournaled: AtomicU64,
    journal_writes: AtomicU64,
    receiver_slots: AtomicUsize,
}

impl Counters {
    /// Adds a batch's local counts.
    pub(crate) fn add(&self, local: &DispatcherStats) {
        let pairs = [
            (&self.handled, local.handled),
            (&self.undeliverable, local.undeliverable),
            (&self.stale_stamps, local.stale_stamps),
            (&self.duplicate_stamps, local.duplicate_stamps),
            (&self.skipped_stamps, local.skipped_stamps),
            (&self.unjournaled, local.unjournaled),
            (&self.journal_writes, local.journal_writes),
        ];
        for (counter, n) in pairs {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    /// Sets the receiver-table gauge (on the cold path: receivers joining and being freed).
    pub(crate) fn set_receivers(&self, slots: usize) {
        self.receiver_slots.store(slots, Relaxed);
    }

    /// Reads every counter (each exact; together only roughly simultaneous).
    pub(crate) fn snapshot(&self, clock: usize) -> DispatcherStats {
        DispatcherStats {
            handled: self.handled.load(Relaxed),
            undeliverable: self.undeliverable.load(Relaxed),
            stale_stamps: self.stale_stamps.load(Relaxed),
            duplicate_stamps: self.duplicate_stamps.load(Relaxed),
            skipped_stamps: self.skipped_stamps.load(Relaxed),
            unjournaled: self.unjournaled.load(Relaxed),
            journal_writes: self.journal_writes.load(Relaxed),
            receiver_slots: self.receiver_slots.load(Relaxed),
            clock,
        }
    }
}
