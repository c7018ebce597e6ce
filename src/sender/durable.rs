//! Senders of a journaled dispatcher: waiting for durability.
//!
//! The dispatcher settles the journal once per batch (see [`crate::engine::journaling`]). A
//! sender learns its message's intake position from the queue (`send`, `send_all`,
//! `broadcast`) or knows its stamp (`forward`), and waits on
//! [`Durable`](crate::journal::log::Durable) for that position or stamp:
//!
//! * under [`Durability::Always`], `send`, `send_all` and `broadcast` wait before they return
//!   (forwards and `send_async` do not: a forwarded stamp is stored only once every lower
//!   stamp has been forwarded, perhaps by this very thread's next call);
//! * [`ClockedSender::flush`] and [`ClockedBroadcaster::flush`] wait for the last message the
//!   handle sent, whatever the mode. Messages sent with `send_async` are not tracked: its
//!   future completes once the message is in the intake, under `Always` too, and `flush`
//!   does not wait for it. Where durability matters, use the blocking calls.

use std::sync::atomic::Ordering;

use super::{ClockedBroadcaster, ClockedSender};
use crate::error::{JournalError, Mode, SendError, SendErrorKind};
use crate::journal::log::Settled;
use crate::journal::Durability;
use crate::link::Link;

/// What a wait for one message found, when it was not stored.
pub(crate) struct NotStored<T> {
    pub(crate) kind: SendErrorKind,
    /// The values the dispatcher handed back (those of a failed batch).
    pub(crate) values: Vec<T>,
}

impl<T> Link<T> {
    /// After a message went into the intake at `position`: under `Always`, waits until it is
    /// settled. Not journaled, or another mode: returns at once.
    pub(crate) fn settle_position(&self, position: usize) -> Result<(), NotStored<T>> {
        let Some(journal) = self.shared.journal.as_ref() else {
            return Ok(());
        };
        if journal.durability != Durability::Always {
            return Ok(());
        }
        let position = position as u64;
        let kind = match journal.durable.wait_position(position) {
            Settled::Stored => return Ok(()),
            Settled::Stopped => SendErrorKind::DispatcherGone,
            Settled::Failed(kind) => SendErrorKind::JournalFailed { kind },
        };
        let values = self
            .returned
            .as_ref()
            .and_then(|returned| returned.lock().remove(&position))
            .unwrap_or_default();
        Err(NotStored { kind, values })
    }
}

impl<T> ClockedSender<T> {
    /// A journaled dispatcher accepted a `send` at intake `position`: notes it for
    /// [`flush`](Self::flush) and, under `Always`, waits until it is stored. Out of line, so that
    /// a dispatcher without a journal pays one branch for it.
    #[cold]
    #[inline(never)]
    pub(crate) fn journaled_sent(&self, position: usize) -> Result<(), NotStored<T>> {
        self.mark_sent(position);
        self.link.settle_position(position)
    }

    /// [`journaled_sent`](Self::journaled_sent) for one `send`: its value comes back if the
    /// journal could not store it.
    #[cold]
    #[inline(never)]
    pub(crate) fn journaled_send(&self, position: usize) -> Result<(), SendError<T>> {
        match self.journaled_sent(position) {
            Ok(()) => Ok(()),
            Err(mut not_stored) => match not_stored.values.pop() {
                Some(value) => Err(SendError::new(not_stored.kind, value)),
                // Stored nowhere and handed back nowhere: the dispatcher stopped with it.
                None => Ok(()),
            },
        }
    }

    /// Notes a sent message (its intake position, or its stamp when forwarding) for
    /// [`flush`](Self::flush).
    pub(crate) fn mark_sent(&self, mark: usize) {
        if self.link.shared.journal.is_some() {
            // A max, not a store: a skip below an earlier forward must not lower it.
            self.last_sent.fetch_max(mark as u64 + 1, Ordering::Relaxed);
        }
    }

    /// Waits until every message this sender has sent is stored in the dispatcher's journal
    /// as its [`Durability`] mode defines stored: synced to disk under `Batch` and `Always`,
    /// written to the operating system under `None`.
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled) if the dispatcher has no journal,
    /// [`WriteFailed`](JournalError::WriteFailed) if the batch holding this sender's last
    /// message could not be written, [`DispatcherGone`](JournalError::DispatcherGone) if the
    /// dispatcher thread stopped first.
    ///
    /// ```
    /// use clocked_dispatch::{Builder, Durability};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let d = Builder::new()
    ///     .bound(16)
    ///     .journal(dir.path())
    ///     .durability(Durability::Batch)
    ///     .build_journaled::<String>()
    ///     .unwrap();
    /// let (tx, rx) = d.new("tx", "rx");
    /// tx.send("kept".to_string()).unwrap();
    /// tx.flush().unwrap(); // on disk now
    /// assert_eq!(rx.recv().unwrap(), (Some("kept".to_string()), 1));
    /// ```
    pub fn flush(&self) -> Result<(), JournalError> {
        self.link.flush_mark(self.last_sent.load(Ordering::Relaxed))
    }
}

impl<T: Clone> ClockedBroadcaster<T> {
    /// Notes a broadcast (its intake position, or its stamp when forwarding) for
    /// [`flush`](Self::flush).
    pub(crate) fn mark_sent(&self, mark: usize) {
        if self.link.shared.journal.is_some() {
            // A max, not a store: a skip below an earlier forward must not lower it.
            self.last_sent.fetch_max(mark as u64 + 1, Ordering::Relaxed);
        }
    }

    /// Waits until every message this broadcaster has sent is stored in the dispatcher's
    /// journal, as [`ClockedSender::flush`] does for a sender.
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::flush`].
    ///
    /// ```
    /// use clocked_dispatch::{Builder, Durability};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let d = Builder::new()
    ///     .bound(16)
    ///     .journal(dir.path())
    ///     .durability(Durability::Batch)
    ///     .build_journaled::<u32>()
    ///     .unwrap();
    /// let (tx, rx) = d.new("tx", "rx");
    /// let everyone = tx.into_broadcaster();
    /// everyone.broadcast(7).unwrap();
    /// everyone.flush().unwrap(); // on disk now
    /// assert_eq!(rx.recv().unwrap(), (Some(7), 1));
    /// ```
    pub fn flush(&self) -> Result<(), JournalError> {
        self.link.flush_mark(self.last_sent.load(Ordering::Relaxed))
    }
}

impl<T> Link<T> {
    /// Waits until the message marked `mark` (intake position + 1, or stamp + 1 when
    /// forwarding; 0 for none) is stored.
    fn flush_mark(&self, mark: u64) -> Result<(), JournalError> {
        let journal = self
            .shared
            .journal
            .as_ref()
            .ok_or(JournalError::NotJournaled)?;
        if mark == 0 {
            return Ok(());
        }
        let settled = match self.shared.mode() {
            Some(Mode::Forwarding) => journal.durable.wait_stamp(mark - 1),
            _ => journal.durable.wait_position(mark - 1),
        };
        match settled {
            Settled::Stored => Ok(()),
            Settled::Failed(kind) => Err(JournalError::WriteFailed { kind }),
            Settled::Stopped => Err(JournalError::DispatcherGone),
        }
    }
}
