//! Delivery: pushing a stamped payload into one inbox, or a copy into every open one.
//!
//! A push to a full inbox first publishes the clock up to the previous stamp (so every other
//! receiver still learns how far time has moved) and wakes senders waiting for intake room,
//! then blocks on that one inbox until it has room or its receiver is dropped. A receiver
//! found gone is closed (and, journaled, recorded as closed).
//!
//! Journaled, a full inbox does not block: a message that is in the journal is left there for
//! its reader to read back (see [`crate::inbox`]'s `lagging`). Only a message that could not
//! be journaled (its encoding failed) waits for room.

use super::{Engine, PendingClose};
use crate::inbox::{PushError, Pushed};
use crate::intake::Cloner;
use crate::registry::ReceiverId;

impl<T> Engine<T> {
    /// Pushes one payload to one receiver, blocking only on that receiver's full inbox.
    pub(super) fn deliver(&mut self, to: ReceiverId, value: T, stamp: usize) {
        let batch_no = self.batch_no;
        let Some(slot) = self.slots.get_mut(to) else {
            self.local.undeliverable += 1;
            return;
        };
        let Some(inbox) = slot.inbox.as_mut() else {
            self.local.undeliverable += 1;
            return;
        };
        // Listed once per batch, whichever way the push goes: its reader is woken for the
        // data at the end of the batch (a receiver found gone is skipped there).
        if slot.delivered_in != batch_no {
            slot.delivered_in = batch_no;
            self.delivered.push(to);
        }
        // Journaled and in the journal: a full inbox's reader reads it back from there.
        let releasing = self.journal.as_ref().and_then(|j| j.releasing.as_ref());
        let pushed = match releasing {
            Some(at) => inbox.push_or_lag((value, stamp), *at),
            None => inbox.try_push((value, stamp)),
        };
        let gone = match pushed {
            Ok(Pushed::Memory | Pushed::Journal) => false,
            Ok(Pushed::Buffered) => {
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(to);
                }
                false
            }
            Err(PushError::Gone(_)) => true,
            Err(PushError::Full(item)) => {
                // Let everyone else see every stamp before this one while we wait, and let
                // senders waiting for the room this batch made go on (one of them may be the
                // very reader we wait for).
                self.publish_through(stamp - 1, true);
                self.data.wake_producers();
                self.push_waiting(to, item)
            }
        };
        if gone {
            self.local.undeliverable += 1;
            drop(self.slots.take_inbox(to));
            if let Some(slot) = self.slots.get_mut(to).filter(|slot| slot.senders == 0) {
                // Only broadcasters were keeping it: forget it once what is queued is handled.
                let after = self.handled + 1 + self.data.len() as u64;
                let epoch = slot.epoch;
                self.pending_closes.push_back(PendingClose {
                    id: to,
                    epoch,
                    after,
                });
            }
        }
    }

    /// Waits for room in `to`'s full inbox and pushes `item`; true if the receiver is gone.
    /// While it waits the readers' owed wake-up is paid by its deadline (see [`super::waking`]),
    /// so a receiver that stalls the dispatcher does not keep the others asleep.
    fn push_waiting(&mut self, to: ReceiverId, mut item: (T, usize)) -> bool {
        loop {
            let deadline = self.wakes.deadline();
            let Some(inbox) = self.slot_mut(to).and_then(|slot| slot.inbox.as_mut()) else {
                return true;
            };
            match inbox.push_blocking(item, deadline) {
                Ok(()) => return false,
                Err(PushError::Gone(_)) => return true,
                Err(PushError::Full(back)) => {
                    item = back;
                    self.wakes.wake_readers(&self.shared.clock);
                }
            }
        }
    }

    /// Pushes a copy to every open receiver (the original to the last one), without
    /// allocating.
    pub(super) fn deliver_to_all(&mut self, value: T, cloner: Cloner<T>, stamp: usize) {
        // A copy of the open list: delivering may find a receiver gone and change it.
        let mut targets = std::mem::take(&mut self.broadcast_targets);
        targets.clear();
        targets.extend_from_slice(self.slots.open());
        self.deliver_to_each(&targets, value, cloner, stamp);
        self.broadcast_targets = targets;
    }

    /// Delivers a copy of `value` to each of `targets` (the original to the last), as
    /// broadcasts and multicasts do.
    pub(super) fn deliver_to_each(
        &mut self,
        targets: &[ReceiverId],
        value: T,
        cloner: Cloner<T>,
        stamp: usize,
    ) {
        if let Some((&last, rest)) = targets.split_last() {
            for &id in rest {
                self.deliver(id, cloner(&value), stamp);
            }
            self.deliver(last, value, stamp);
        }
    }
}
