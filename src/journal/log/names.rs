//! Journal ids beyond receivers' durable names: transient receivers, declared names (a
//! multicast group's history, a position saved without a receiver) and reading a name's
//! history back.
//!
//! # Id spaces
//!
//! * **Named** ids count up from 0 and stay below [`TRANSIENT_IDS`]. A name's id is stable
//!   across restarts (its `Name` record, restated by every checkpoint), and its next receiver
//!   replays every message for the id (`Data`, and `Multicast` records that list it) above its
//!   commit.
//! * **Transient** ids count down from `JournalId::MAX` and stay at or above
//!   [`TRANSIENT_IDS`]. A transient receiver (a broker's connection) has no `Name` record and is
//!   in no checkpoint: the journal forgets it when it goes. Its messages are read back only
//!   by its own lag reader, from where it joined on. A new run starts below the lowest
//!   transient id any record names, so ids are not reused while their records are held
//!   (after `2^31` of them they wrap, which is harmless: a lag reader never reads before its
//!   receiver joined). Because the spaces are apart, no named replay can ever return a
//!   transient receiver's messages.

use super::super::frame::{self, Entry, JournalId};
use super::super::replay::Plan;
use super::Journal;
use crate::error::JournalError;

/// The lowest transient id; named ids stay below it.
pub(crate) const TRANSIENT_IDS: JournalId = 1 << 31;

impl Journal {
    /// A fresh id for a transient receiver.
    pub(crate) fn transient_id(&self) -> JournalId {
        let mut state = self.state.lock();
        let id = state.next_transient;
        state.next_transient = if id <= TRANSIENT_IDS {
            JournalId::MAX
        } else {
            id - 1
        };
        id
    }

    /// The id of `name`, made if the journal does not know it yet. A new name's `Name` record
    /// is written under the state lock before the name is known, so no record for the id can
    /// precede it (and a failed write leaves the name unknown); it is synced per the
    /// durability mode before this returns.
    pub(crate) fn declare(&self, name: &str) -> Result<JournalId, JournalError> {
        let mut state = self.state.lock();
        if let Some(&id) = state.by_name.get(name) {
            return Ok(id);
        }
        let id = state.next_id;
        let mut record = Vec::new();
        frame::append_entry(&mut record, &Entry::Name { receiver: id, name });
        let written = state.append(&record, false, &self.tail);
        let segment = state.position.segment;
        written.map_err(|source| self.io_error(segment, source))?;
        // The lock was held since `id` was read: it is still the next one.
        state.add_name(name);
        let mine = state.appends;
        drop(state);
        self.sync_appends(mine)?;
        Ok(id)
    }

    /// Every name starting with `prefix` that has a position, with it, sorted by name.
    pub(crate) fn positions_with_prefix(&self, prefix: &str) -> Vec<(String, u64)> {
        let state = self.state.lock();
        let mut found: Vec<(String, u64)> = state
            .by_name
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter_map(|(name, id)| Some((name.clone(), state.known.get(id)?.commit)))
            .collect();
        found.sort_unstable();
        found
    }

    /// The id of a name the journal knows.
    pub(crate) fn id_of_name(&self, name: &str) -> Option<JournalId> {
        self.state.lock().by_name.get(name).copied()
    }

    /// The position (last commit, or rewind) of a name the journal knows.
    pub(crate) fn position_of(&self, name: &str) -> Option<u64> {
        let state = self.state.lock();
        let id = state.by_name.get(name)?;
        state.known.get(id).map(|known| known.commit)
    }

    /// What reading `id`'s messages stamped `from` or later, up to what is written now, takes.
    pub(crate) fn history_plan(&self, id: JournalId, from: u64) -> Plan {
        let state = self.state.lock();
        Plan {
            id,
            from: from.saturating_sub(1),
            limit: state.clock,
            end: state.position,
            expired: 0,
            oldest: state.oldest,
        }
    }

    /// Syncs appends up to number `mine`, per the durability mode (sharing a sync with
    /// commits made meanwhile).
    fn sync_appends(&self, mine: u64) -> Result<(), JournalError> {
        if self.synced_writes() {
            self.sync_through(mine)
                .map_err(|source| self.io_error(self.state.lock().position.segment, source))?;
        }
        Ok(())
    }

    fn io_error(&self, segment: u64, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.dir.join(super::segments::file_name(segment)),
            source,
        }
    }
}
