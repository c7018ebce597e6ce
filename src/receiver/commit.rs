//! Commits: a receiver of a journaled dispatcher records how far it has processed, so that
//! after a restart it resumes there (see [`crate::journal`]).

use super::ClockedReceiver;
use crate::error::JournalError;

impl<T> ClockedReceiver<T> {
    /// Records that every message up to `stamp` is processed. A receiver created later under
    /// this name (after a restart, or after this one is dropped) first gets, from the
    /// journal, every message for this name stamped after its last commit: commit after
    /// processing and nothing is lost (at least once); make processing and committing one
    /// step and nothing is seen twice.
    ///
    /// The commit is written to the journal and, under
    /// [`Durability::Batch`](crate::Durability::Batch) and `Always`, synced before this
    /// returns. Commits share syncs (group commit): receivers committing at the same time
    /// wait for one `fdatasync` between them, and a dispatcher batch synced meanwhile covers
    /// them too. A commit below an earlier one changes nothing.
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled) if the dispatcher has no journal;
    /// [`CommitAhead`](JournalError::CommitAhead) if `stamp` is above the last stamp this
    /// receiver returned (it would skip messages it has not seen); an
    /// [`Io`](JournalError::Io) error if the journal cannot be written.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// {
    ///     let d = Builder::new().bound(4).journal(dir.path()).build_journaled::<u32>().unwrap();
    ///     let (tx, rx) = d.new("tx", "orders");
    ///     tx.send_all([1, 2, 3]).unwrap();
    ///     assert_eq!(rx.recv().unwrap(), (Some(1), 1));
    ///     rx.commit(1).unwrap(); // 1 is processed; 2 and 3 are not
    /// }
    /// // A new dispatcher on the same journal (say, after a crash).
    /// let d = Builder::new().bound(4).journal(dir.path()).build_journaled::<u32>().unwrap();
    /// let (_tx, rx) = d.new("tx", "orders");
    /// assert_eq!(rx.recv().unwrap(), (Some(2), 2));
    /// assert_eq!(rx.recv().unwrap(), (Some(3), 3));
    /// ```
    pub fn commit(&self, stamp: usize) -> Result<(), JournalError> {
        let (Some(journal), Some(id)) = (self.shared.journal.as_ref(), self.journal_id) else {
            return Err(JournalError::NotJournaled);
        };
        let received = self.last_stamp();
        if stamp > received {
            return Err(JournalError::CommitAhead { stamp, received });
        }
        journal.commit(id, stamp as u64)
    }
}
