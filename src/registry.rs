//! Receiver names and ids.
//!
//! Names are interned once, when a receiver is created: the hot path carries a [`ReceiverId`]
//! (an index into the dispatcher's slot table), never a `String`. Receiver names are unique
//! among a dispatcher's live receivers and freed when the receiver is dropped. Sender and
//! broadcaster names are labels only: the dispatcher counts senders instead of keeping 4.0.2's
//! per-name sets, so two senders with one name can no longer close a channel early, and need
//! no check.

use std::collections::HashSet;

use crate::error::HandleError;

/// Index of a receiver in the dispatcher's slot table. Never reused within a dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReceiverId(pub(crate) usize);

/// The live receivers' names, behind the dispatcher's one (cold-path) mutex.
#[derive(Default)]
pub(crate) struct Registry {
    names: HashSet<String>,
    next_id: usize,
}

impl Registry {
    /// Reserves `name` and a fresh id for a new receiver.
    pub(crate) fn add_receiver(&mut self, name: &str) -> Result<ReceiverId, HandleError> {
        if self.names.contains(name) {
            return Err(HandleError::ReceiverNameInUse(name.to_owned()));
        }
        self.names.insert(name.to_owned());
        let id = ReceiverId(self.next_id);
        self.next_id += 1;
        Ok(id)
    }

    /// Frees a receiver's name.
    pub(crate) fn remove_receiver(&mut self, name: &str) {
        self.names.remove(name);
    }
}
