//! What a journaled dispatcher offers beyond durable receivers: receivers the journal forgets
//! when they go, multicast groups that keep their history, positions saved by name, and a
//! name's history read back while the dispatcher runs. A broker builds on these: a connection
//! is a transient receiver, a topic an archived multicaster, a durable subscription a saved
//! position, and `SUB topic FROM stamp` a read of the topic's history.

use super::Dispatcher;
use crate::error::{HandleError, JournalError};
use crate::journal::replay::{Replay, Replayed};
use crate::multicast::ClockedMulticaster;
use crate::receiver::ClockedReceiver;
use crate::sender::ClockedSender;
use crate::spill::SpillFault;

impl<T: Send> Dispatcher<T> {
    /// As [`try_new`](Self::try_new), but on a journaled dispatcher the receiver is *transient*:
    /// it is not a durable subscription. It is journaled under an id of its own, not under its
    /// name, so it gets only what is sent to it while it lives (a slow one still reads its
    /// backlog back from the journal, and never holds the dispatcher up), nothing is replayed
    /// to it, and the journal forgets it once it is dropped: its name is not written, and a
    /// later receiver of the same name, in this run or the next, starts afresh. Made for
    /// connections that come and go by the thousand. Without a journal, the same as
    /// `try_new`.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// {
    ///     let d = Builder::new().bound(4).journal(dir.path()).build_journaled::<u32>().unwrap();
    ///     let (tx, _rx) = d.try_new_transient("tx", "conn-1").unwrap();
    ///     tx.send(7).unwrap(); // never read
    /// }
    /// let d = Builder::new().bound(4).journal(dir.path()).build_journaled::<u32>().unwrap();
    /// let (tx, rx) = d.try_new_transient("tx", "conn-1").unwrap();
    /// tx.send(8).unwrap();
    /// assert_eq!(rx.recv().unwrap(), (Some(8), 2)); // nothing of the last run's conn-1
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_new`](Self::try_new).
    pub fn try_new_transient<S1: Into<String>, S2: Into<String>>(
        &self,
        sender: S1,
        receiver: S2,
    ) -> Result<(ClockedSender<T>, ClockedReceiver<T>), HandleError> {
        self.make_pair(sender.into(), receiver.into(), true)
    }

    /// Every message the journal holds for `name` stamped `from` or later, up to the last
    /// stamp written when this is called, in stamp order: a group's history (see
    /// [`archived_multicaster`](Self::archived_multicaster)), or what was sent to a receiver
    /// name. Reads the journal's files (skipping the segments wholly below `from`) while the
    /// dispatcher goes on; a damaged record is an `Err` item, never data. Messages retention
    /// deleted are simply not there.
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled);
    /// [`UnknownReceiver`](JournalError::UnknownReceiver) if the journal has no such name.
    pub fn history(&self, name: &str, from: usize) -> Result<History<T>, JournalError> {
        let journal = self.journal()?;
        let codec = self
            .journal_codec
            .as_ref()
            .ok_or(JournalError::NotJournaled)?;
        let id = journal
            .id_of_name(name)
            .ok_or_else(|| JournalError::UnknownReceiver {
                name: name.to_owned(),
            })?;
        let plan = journal.history_plan(id, from as u64);
        Ok(History {
            replay: Replay::new(journal.dir(), plan, codec.decode),
        })
    }

    /// Saves position `stamp` under `name` in the journal (written and, under `Batch` and
    /// `Always`, synced before this returns), for [`saved_position`](Self::saved_position) to
    /// return, in this run or after a restart: where a consumer that is not a receiver (a
    /// broker's durable subscription reading a group's history) got to. The name is made if
    /// the journal does not know it. As a receiver's commit, a position below the saved one
    /// changes nothing: use [`rewind`](Self::rewind) to go back.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// {
    ///     let d = Builder::new().journal(dir.path()).build_journaled::<u32>().unwrap();
    ///     assert_eq!(d.saved_position("reports/orders"), None);
    ///     d.save_position("reports/orders", 41).unwrap();
    /// }
    /// let d = Builder::new().journal(dir.path()).build_journaled::<u32>().unwrap();
    /// assert_eq!(d.saved_position("reports/orders"), Some(41));
    /// ```
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled);
    /// [`ReceiverOpen`](JournalError::ReceiverOpen) while a receiver of that name exists (it
    /// commits its own position); an [`Io`](JournalError::Io) error.
    pub fn save_position(&self, name: &str, stamp: usize) -> Result<(), JournalError> {
        let journal = self.journal()?;
        if self.link.shared.registry.lock().has_receiver(name) {
            return Err(JournalError::ReceiverOpen {
                name: name.to_owned(),
            });
        }
        let id = journal.declare(name)?;
        journal.commit(id, stamp as u64)
    }

    /// The position last saved under `name` (a receiver's last commit, or what
    /// [`save_position`](Self::save_position) saved); `None` if the journal does not know the
    /// name, or there is no journal.
    pub fn saved_position(&self, name: &str) -> Option<usize> {
        let journal = self.link.shared.journal.as_ref()?;
        let position = journal.position_of(name)?;
        Some(usize::try_from(position).unwrap_or(usize::MAX))
    }

    /// Every position saved under a name that starts with `prefix` (receivers' commits
    /// included), sorted by name: a broker's durable subscriptions, say. Empty without a
    /// journal.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let d = Builder::new().journal(dir.path()).build_journaled::<u32>().unwrap();
    /// d.save_position("sub/b", 7).unwrap();
    /// d.save_position("sub/a", 3).unwrap();
    /// d.save_position("other", 1).unwrap();
    /// assert_eq!(
    ///     d.saved_positions("sub/"),
    ///     [("sub/a".to_string(), 3), ("sub/b".to_string(), 7)]
    /// );
    /// ```
    pub fn saved_positions(&self, prefix: &str) -> Vec<(String, usize)> {
        let Some(journal) = self.link.shared.journal.as_ref() else {
            return Vec::new();
        };
        journal
            .positions_with_prefix(prefix)
            .into_iter()
            .map(|(name, position)| (name, usize::try_from(position).unwrap_or(usize::MAX)))
            .collect()
    }

    fn journal(&self) -> Result<&crate::journal::log::Journal, JournalError> {
        self.link
            .shared
            .journal
            .as_deref()
            .ok_or(JournalError::NotJournaled)
    }
}

impl<T: Send + Clone> Dispatcher<T> {
    /// As [`multicaster`](Self::multicaster), and on a journaled dispatcher the group keeps its
    /// history: every multicast is also journaled under `name` (members or not, once), so that
    /// [`history`](Self::history) reads it back, in this run or after a restart, until
    /// retention deletes it. A broker's topic: `SUB topic FROM stamp` is a read of its history
    /// followed by live delivery. `name` is a journal name, as a receiver's: give it one no
    /// receiver uses.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let d = Builder::new().journal(dir.path()).build_journaled::<String>().unwrap();
    /// let topic = d.archived_multicaster("topic/news").unwrap();
    /// topic.multicast("nobody listens yet".to_string()).unwrap();
    /// let (tx, rx) = d.new("tx", "reader");
    /// topic.add(&tx).unwrap();
    /// topic.multicast("live".to_string()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), (Some("live".to_string()), 2));
    ///
    /// // Once the clock passed them, the journal holds both.
    /// let history: Vec<_> = d.history("topic/news", 1).unwrap().map(Result::unwrap).collect();
    /// assert_eq!(
    ///     history,
    ///     [("nobody listens yet".to_string(), 1), ("live".to_string(), 2)]
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled);
    /// [`ReceiverOpen`](JournalError::ReceiverOpen) if a receiver has that name;
    /// [`DispatcherGone`](JournalError::DispatcherGone); an [`Io`](JournalError::Io) error if
    /// the name cannot be written.
    pub fn archived_multicaster<S: Into<String>>(
        &self,
        name: S,
    ) -> Result<ClockedMulticaster<T>, JournalError> {
        let name = name.into();
        let journal = self.journal()?;
        if self.link.shared.registry.lock().has_receiver(&name) {
            return Err(JournalError::ReceiverOpen { name });
        }
        let id = journal.declare(&name)?;
        ClockedMulticaster::archived(name, self.link.clone(), id)
            .map_err(|_| JournalError::DispatcherGone)
    }
}

/// A name's messages read back from the journal: see [`Dispatcher::history`]. Yields
/// `(message, stamp)` in stamp order, or the damage found on the way.
pub struct History<T> {
    replay: Replay<T>,
}

impl<T> History<T> {
    /// The lowest stamp the journal still held when the read started: retention deleted
    /// everything below it, so a read from an earlier stamp may have lost messages (1 if
    /// nothing was ever deleted).
    pub fn oldest_held(&self) -> usize {
        usize::try_from(self.replay.plan().oldest).unwrap_or(usize::MAX)
    }
}

impl<T> Iterator for History<T> {
    type Item = Result<(T, usize), SpillFault>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.replay.next() {
            Replayed::Data(value, stamp) => Some(Ok((value, stamp))),
            Replayed::Fault(fault) => Some(Err(fault)),
            Replayed::Done => None,
        }
    }
}

impl<T> std::fmt::Debug for History<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}
