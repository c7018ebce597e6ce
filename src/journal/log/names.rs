//! Journal ids beyond receivers' durable names: transient receivers, declared names (a
//! multicast group's history, a position saved without a receiver) and reading a name's
//! history back.
//!
//! # Id spaces
//!
//! * **Named** ids count up from 0 and stay below [`TRANSIENT_IDS`]. A name's id is stable
//!   across restarts (its `Name` record, restated by every checkpoint), and its next receiver
//!   replays every `Data` record for the id above its commit.
//! * **Transient** ids count down from `JournalId::MAX` and stay at or above
//!   [`TRANSIENT_IDS`]. A transient receiver (a broker's connection) has no `Name` record and is
//!   in no checkpoint: the journal forgets it when it goes. Its `Data` records are read back only
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

    /// The id of `name`, made (and its `Name` record written, synced per the durability mode)
    /// if the journal does not know it yet.
    pub(crate) fn declare(&self, name: &str) -> Result<JournalId, JournalError> {
        let (id, new) = self.id_for(name);
        if new {
            let mut record = Vec::new();
            frame::append_entry(&mut record, &Entry::Name { receiver: id, name });
            self.append_synced(&record)?;
        }
        Ok(id)
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

    /// Appends whole records and syncs them per the durability mode (sharing a sync with
    /// commits made meanwhile).
    fn append_synced(&self, records: &[u8]) -> Result<(), JournalError> {
        let mut state = self.state.lock();
        let written = state.append(records, false, &self.tail);
        let io_error = |segment, source| JournalError::Io {
            path: self.dir.join(super::segments::file_name(segment)),
            source,
        };
        written.map_err(|source| io_error(state.position.segment, source))?;
        let mine = state.appends;
        drop(state);
        if self.synced_writes() {
            self.sync_through(mine)
                .map_err(|source| io_error(self.state.lock().position.segment, source))?;
        }
        Ok(())
    }
}
