//! Receiver names and ids.
//!
//! Names are interned once, when a receiver is created: the hot path carries a [`ReceiverId`]
//! (an index into the dispatcher's slot table), never a `String`. Receiver names are unique
//! among a dispatcher's live receivers and freed when the receiver is dropped. Sender and
//! broadcaster names are labels only: the dispatcher counts senders instead of keeping 4.0.2's
//! per-name sets, so two senders with one name can no longer close a channel early, and need
//! no check.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::error::HandleError;

/// Index of a receiver in the dispatcher's slot table. Reused once the dispatcher has freed the
/// slot (see [`crate::slots`]): at any moment an id names at most one receiver that a handle or
/// a queued message can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReceiverId(pub(crate) usize);

/// The live receivers' names, behind the dispatcher's one (cold-path) mutex.
#[derive(Default)]
pub(crate) struct Registry {
    names: HashSet<String>,
    next_id: usize,
    /// Ids the dispatcher has freed, smallest first, so the slot table stays compact.
    free_ids: BinaryHeap<Reverse<usize>>,
}

impl Registry {
    /// Reserves `name` and a fresh id for a new receiver.
    pub(crate) fn add_receiver(&mut self, name: &str) -> Result<ReceiverId, HandleError> {
        if self.names.contains(name) {
            return Err(HandleError::ReceiverNameInUse(name.to_owned()));
        }
        self.names.insert(name.to_owned());
        let id = match self.free_ids.pop() {
            Some(Reverse(id)) => id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        Ok(ReceiverId(id))
    }

    /// Gives back an id whose slot the dispatcher has freed, or one that was reserved but never
    /// announced to it.
    pub(crate) fn release_id(&mut self, id: ReceiverId) {
        self.free_ids.push(Reverse(id.0));
        if self.free_ids.capacity() > 64 && self.free_ids.capacity() > 4 * self.free_ids.len() {
            self.free_ids.shrink_to(2 * self.free_ids.len());
        }
    }

    /// Whether a live receiver has `name`.
    pub(crate) fn has_receiver(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Frees a receiver's name.
    pub(crate) fn remove_receiver(&mut self, name: &str) {
        self.names.remove(name);
        if self.names.capacity() > 64 && self.names.capacity() > 4 * self.names.len() {
            self.names.shrink_to(2 * self.names.len());
        }
    }
}
