//! The dispatcher's table of receivers, indexed by [`ReceiverId`].
//!
//! # Why a table with reuse
//!
//! A broker creates and drops receivers by the thousand. Everything the dispatcher does per
//! message or per batch must therefore cost in proportion to the receivers that are *open*,
//! never to the receivers that ever existed:
//!
//! * a slot is freed once nothing can refer to its id any more (see [`SlotTable::free`]), and
//!   its id goes back to the [`Registry`](crate::registry::Registry), which hands it to the next
//!   receiver: the table is as large as the most receivers open at once;
//! * the ids of the receivers whose inbox is open are kept in a dense list, so a broadcast, or
//!   the last broadcaster leaving, visits open receivers only.
//!
//! # Invariants
//!
//! * `open` holds exactly the ids whose slot has `inbox: Some(_)`, each once, and
//!   `slot.open_at` is the id's position in `open`.
//! * A freed id has no slot, no sender targets it, no data for it is queued in the intake and
//!   the reorder window holds nothing for it (the engine frees a slot only when its close has
//!   settled: see [`crate::engine`]).

use crate::inbox::InboxWriter;
use crate::registry::ReceiverId;

/// The dispatcher's view of one receiver.
pub(crate) struct Slot<T> {
    /// `None` once closed or found gone.
    pub(crate) inbox: Option<InboxWriter<T>>,
    /// Its position in the open list, while `inbox` is `Some`.
    open_at: usize,
    pub(crate) senders: usize,
    /// Messages for it waiting in the reorder window.
    pub(crate) held: usize,
    /// Whether its spill write buffer holds records (it is then listed in `Engine::dirty`).
    pub(crate) dirty: bool,
    /// Which receiver, of those that have had this id, the slot holds: a close queued for an
    /// earlier holder of the id must not close a later one.
    pub(crate) epoch: u64,
    /// The dispatcher's batch number when it last listed this receiver as delivered to.
    pub(crate) delivered_in: u64,
}

/// Every receiver the dispatcher knows, and the list of those whose inbox is open.
pub(crate) struct SlotTable<T> {
    slots: Vec<Option<Slot<T>>>,
    open: Vec<ReceiverId>,
    next_epoch: u64,
}

impl<T> SlotTable<T> {
    pub(crate) fn new() -> Self {
        SlotTable {
            slots: Vec::new(),
            open: Vec::new(),
            next_epoch: 0,
        }
    }

    /// Installs a new receiver with its first sender under `id` (a fresh or freed id).
    pub(crate) fn insert(&mut self, id: ReceiverId, inbox: InboxWriter<T>) {
        if self.slots.len() <= id.0 {
            self.slots.resize_with(id.0 + 1, || None);
        }
        self.open.push(id);
        self.next_epoch += 1;
        self.slots[id.0] = Some(Slot {
            epoch: self.next_epoch,
            inbox: Some(inbox),
            open_at: self.open.len() - 1,
            senders: 1,
            held: 0,
            dirty: false,
            delivered_in: u64::MAX,
        });
    }

    pub(crate) fn get_mut(&mut self, id: ReceiverId) -> Option<&mut Slot<T>> {
        self.slots.get_mut(id.0).and_then(Option::as_mut)
    }

    /// Takes a receiver's inbox writer out (to close it, or because its reader is gone), and
    /// removes it from the open list in O(1).
    pub(crate) fn take_inbox(&mut self, id: ReceiverId) -> Option<InboxWriter<T>> {
        let slot = self.slots.get_mut(id.0)?.as_mut()?;
        let inbox = slot.inbox.take()?;
        let at = slot.open_at;
        self.open.swap_remove(at);
        if let Some(&moved) = self.open.get(at) {
            if let Some(moved_slot) = self.get_mut(moved) {
                moved_slot.open_at = at;
            }
        }
        Some(inbox)
    }

    /// Forgets a slot whose inbox is already taken. The caller returns the id to the registry.
    pub(crate) fn free(&mut self, id: ReceiverId) {
        debug_assert!(self.get_mut(id).is_some_and(|slot| slot.inbox.is_none()));
        if let Some(slot) = self.slots.get_mut(id.0) {
            *slot = None;
        }
        // Trailing free slots are given back, so a burst of receivers does not pin memory.
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.capacity() > 64 && self.slots.capacity() > 4 * self.slots.len() {
            self.slots.shrink_to(2 * self.slots.len());
            self.open.shrink_to(2 * self.open.len());
        }
    }

    /// The ids of every receiver whose inbox is open, in no particular order.
    pub(crate) fn open(&self) -> &[ReceiverId] {
        &self.open
    }

    /// The size of the table: the highest id in use, plus one.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Takes every open inbox, for shutdown.
    pub(crate) fn take_all_inboxes(&mut self) -> Vec<InboxWriter<T>> {
        self.open.clear();
        self.slots
            .iter_mut()
            .flatten()
            .filter_map(|slot| slot.inbox.take())
            .collect()
    }
}
