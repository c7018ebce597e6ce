//! Closing receivers, and forgetting them: the part of the dispatcher loop that settles
//! pending closes (see "Closing and forgetting" in [`super`]), and the dispatcher's own end.

use super::{Engine, Held};
use crate::registry::ReceiverId;
use crate::reorder::ReorderWindow;

/// A receiver that lost its last sender, and the `handled` count after which the data queued
/// at that moment has been handled.
pub(super) struct PendingClose {
    pub(super) id: ReceiverId,
    /// The slot's epoch when the close was queued.
    pub(super) epoch: u64,
    pub(super) after: u64,
}

impl<T> Engine<T> {
    /// Closes (and frees) the receivers whose close is due. Looks only at closes that are due,
    /// and at those waiting on the window when it has moved.
    pub(super) fn settle_closes(&mut self) {
        // While a broadcast waits in the window no close can settle: don't look.
        if self.window_moved && self.held_broadcasts == 0 && !self.window_closes.is_empty() {
            let waiting = std::mem::take(&mut self.window_closes);
            for (id, epoch) in waiting {
                self.settle(id, epoch);
            }
        }
        if self.held_broadcasts == 0 {
            self.window_moved = false;
        }
        while self
            .pending_closes
            .front()
            .is_some_and(|close| close.after <= self.handled)
        {
            if let Some(close) = self.pending_closes.pop_front() {
                self.settle(close.id, close.epoch);
            }
        }
    }

    /// Whether [`settle_closes`](Self::settle_closes) would look at any close now: a
    /// journaled batch still being written must be delivered first (a close is settled once
    /// every message queued before it was handled, and handled includes that batch).
    pub(super) fn closes_due(&self) -> bool {
        let window =
            self.window_moved && self.held_broadcasts == 0 && !self.window_closes.is_empty();
        window
            || self
                .pending_closes
                .front()
                .is_some_and(|close| close.after <= self.handled)
    }

    /// One due close: wait for the window, stay open for broadcasters, or close and free.
    fn settle(&mut self, id: ReceiverId, epoch: u64) {
        let broadcasters = self.broadcasters;
        let held_broadcasts = self.held_broadcasts;
        let Some(slot) = self.slots.get_mut(id).filter(|slot| slot.epoch == epoch) else {
            return; // Freed by an earlier close of the same receiver (and perhaps reused).
        };
        if slot.senders > 0 {
            return;
        }
        if slot.held > 0 || held_broadcasts > 0 {
            self.window_closes.push((id, epoch));
            return;
        }
        if broadcasters > 0 && slot.inbox.is_some() {
            // Broadcasters keep it open; it is looked at again when the last one leaves.
            return;
        }
        if let Some(inbox) = self.slots.take_inbox(id) {
            inbox.close(self.published);
        }
        self.slots.free(id);
        self.shared.registry.lock().release_id(id);
        self.shared.counters.set_receivers(self.slots.len());
    }

    /// One of `id`'s senders (or a group holding it) is gone; with none left, it closes once
    /// the `due`-th data message is handled.
    pub(super) fn sender_left(&mut self, id: ReceiverId, due: u64) {
        if let Some(slot) = self.slot_mut(id) {
            slot.senders -= 1;
            if slot.senders == 0 {
                let epoch = slot.epoch;
                self.pending_closes.push_back(PendingClose {
                    id,
                    epoch,
                    after: due,
                });
            }
        }
    }

    /// Every handle is gone: release what the window holds, close every inbox.
    pub(super) fn shut_down(&mut self) {
        let mut window = ReorderWindow::new(0, 0);
        std::mem::swap(&mut window, &mut self.window);
        let mut released = Vec::new();
        self.local.skipped_stamps += window.drain_skipping_gaps(|stamp, held| {
            released.push((stamp, held));
        }) as u64;
        let last_released = window.released();
        for (stamp, held) in released {
            self.unhold(&held);
            self.stage(stamp, held, None);
        }
        // Journaled: the final clock (past any skipped stamps) survives a restart.
        self.stage(self.stamp.max(last_released), Held::Nothing, None);
        self.drain_journal();
        if !self.publish_through(self.stamp.max(last_released), true) {
            // Paced or settled: wake whoever sleeps now, whatever the interval.
            self.wakes.wake_readers(&self.shared.clock);
        }
        for inbox in self.slots.take_all_inboxes() {
            inbox.close(self.published);
        }
        self.shared.counters.add(&self.local);
    }
}
