//! How a journaled dispatcher gathers a batch before it writes it.
//!
//! Each write of a synced journal (`Batch`, `Always`) costs an `fdatasync`, so a batch should
//! take everything that can share it:
//!
//! * **Batch size**: a synced batch takes up to [`SYNCED_BATCH`] messages from the intake, not
//!   the dispatcher's usual batch.
//! * **`Batch`, while the previous batch is written** (write-behind, see
//!   [`crate::journal::write_behind`]): the dispatcher keeps taking from the intake, and waking
//!   the senders that wait for room in it, until that write returns; then the batch is handed
//!   over at once. So one sync serves everything sent while the previous one ran, however small
//!   the intake's bound.
//! * **`Always`, commit delay**: after each write its waiting senders wake and most send again
//!   at once; the next batch waits (asleep, for at most half a write's time) until it holds as
//!   many sends as threads waited at the last write.

use std::time::{Duration, Instant};

use super::Engine;
use crate::intake::Taken;
use crate::journal::Durability;

/// The most data messages one synced write takes.
const SYNCED_BATCH: usize = 4096;

/// How long the dispatcher sleeps at a time while it gathers a batch during a write (see
/// [`Engine::gather_while_writing`]); a new message wakes it sooner.
const GATHER_NAP: Duration = Duration::from_micros(50);

/// The longest an `Always` batch waits for more senders before its write.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(1);

/// An `Always` batch stops waiting for more senders once it holds this many messages.
const MAX_GATHERED: usize = 4096;

impl<T> Engine<T> {
    /// Lets senders (threads and, with the `async` feature, tasks) waiting for room in the
    /// intake go on, in the middle of a batch that emptied it.
    fn wake_intake_producers(&self) {
        self.data.wake_producers();
        #[cfg(feature = "async")]
        self.shared.intake_waiters.wake();
    }

    /// `Batch`, while a batch is written: whether the dispatcher should keep adding to the
    /// next one although its intake is empty right now. Yes until that write returns (then
    /// the next batch is handed over at once, so the writer never idles while messages
    /// wait), unless a control message waits or the batch is full. While it waits, it sleeps
    /// on the intake for at most [`GATHER_NAP`]: a sender rings it awake.
    pub(super) fn gather_while_writing(&mut self) -> bool {
        let limit = self.batch_limit();
        if !self.journal_in_flight() {
            return false;
        }
        let Some(journal) = self.journal.as_mut() else {
            return false;
        };
        if journal.staged.len() >= limit {
            return false;
        }
        let Some(writer) = journal.writer.as_mut() else {
            return false;
        };
        if writer.is_done() || self.data.control_pending() {
            return false;
        }
        // The batch emptied the intake: senders waiting for room may go on (they would
        // otherwise sleep until the end of the batch, and the batch wait for them).
        self.wake_intake_producers();
        self.data
            .sleep(Some(GATHER_NAP), || !self.control.is_empty());
        true
    }

    /// How many data messages a batch may take before it is written: more when each write
    /// costs a sync (`Batch`, `Always`), so that one sync serves everything already waiting in
    /// the intake.
    pub(super) fn batch_limit(&self) -> usize {
        match &self.journal {
            Some(journal) if journal.journal.durability != Durability::None => SYNCED_BATCH,
            _ => super::BATCH,
        }
    }

    /// `Always`: before a batch is written, waits a little for more senders (commit delay, as
    /// databases do it). After each write its waiting senders wake and most send again at
    /// once; a write that went ahead with the first of them would sync a handful, and the
    /// rest would wait for the next sync. So while fewer sends are staged than threads were
    /// waiting at the last write, the dispatcher takes more from the intake, for at most half
    /// a write's time. One sender alone is never delayed (it is the only one it waits for).
    pub(super) fn gather_siblings(&mut self) {
        let Some(journal) = self.journal.as_ref() else {
            return;
        };
        if journal.journal.durability != Durability::Always
            || journal.sends == 0
            || journal.sends >= journal.siblings
        {
            return;
        }
        let deadline = Instant::now() + (journal.write_time / 2).min(MAX_COMMIT_DELAY);
        loop {
            match self.data.try_recv() {
                Ok(envelope) => self.handle(envelope),
                // A join waits for no commit delay; with every sender gone nobody will come.
                Err(Taken::Disconnected) => return,
                Err(Taken::Empty) if Instant::now() >= deadline || self.data.control_pending() => {
                    return
                }
                Err(Taken::Empty) => {
                    // Asleep, not spinning: the senders it waits for need the CPU to wake.
                    // Their send rings it awake; those blocked on a full intake are let go.
                    self.wake_intake_producers();
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.data.sleep(Some(left), || !self.control.is_empty());
                    continue;
                }
            }
            let Some(journal) = self.journal.as_ref() else {
                return;
            };
            if journal.sends >= journal.siblings || journal.staged.len() >= MAX_GATHERED {
                return;
            }
        }
    }
}
