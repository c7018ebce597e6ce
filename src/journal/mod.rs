//! The journal: a write-ahead log that lets the clock and every unread message survive a
//! crash.
//!
//! Enabled with [`Builder::journal`](crate::Builder::journal) and
//! [`Builder::build_journaled`](crate::Builder::build_journaled). The dispatcher appends every
//! message it stamps to the journal *before* delivering it, with one write (and, per
//! [`Durability`], at most one `fdatasync`) per batch, shared by every sender in the batch:
//! group commit on the thread that already serialises everything.
//!
//! # What is written
//!
//! Segment files of checksummed records (format in `src/journal/frame.rs`, layout in `src/journal/segments.rs`):
//! each message with its stamp and its receiver's journal id (a broadcast once, for everyone
//! open; a multicast once, naming its receivers), ticks for stamps that carry no message
//! (`forward(None, ts)`), receivers' names, when they open and close, and their commits. Receiver ids in the journal are stable for a
//! name across restarts.
//!
//! # Invariants
//!
//! 1. **Written before delivered.** A message reaches its receiver only after the batch that
//!    holds it was written (and synced, per the mode). The clock is published after the write
//!    too, so no receiver ever sees a stamp the journal could lose on a crash, except through
//!    the power loss that [`Durability::None`] accepts.
//! 2. **Stamps increase across restarts.** Opening a journal recovers the highest stamp
//!    written (`src/journal/recover.rs`); the new run's clock starts there.
//! 3. **A name's backlog is replayed once, in order, before live traffic**
//!    (`src/journal/replay.rs`): a receiver created under a name the journal knows first gets
//!    every message for that name stamped after its last commit, up to the stamp at which it
//!    joined; live messages have higher stamps. A name is a durable subscription: the messages
//!    sent to it and the broadcasts made since it first joined are its own, whether or not a
//!    receiver of it was open at the time (dropped, or its process dead).
//! 4. **Damage is never data.** Torn tails are cut at recovery (and reported in
//!    [`RecoveryReport::damaged_tail`] when bit rot could also explain them); damaged records
//!    elsewhere are skipped and reported ([`RecoveryReport::gaps`], and a
//!    [`SpillFault`](crate::SpillFault) to a receiver whose replay passes one).
//! 5. **One log, not two.** A receiver that falls behind is never copied to a spill file: once
//!    its inbox is full, its messages stay in the journal only and it reads them back from
//!    there (`src/journal/tail.rs`, the handover in `src/inbox/lagging.rs`). A journaled
//!    dispatcher has no spill, and never waits for a slow receiver.

pub(crate) mod durable;
pub(crate) mod frame;
pub mod inspect;
pub(crate) mod log;
pub(crate) mod recover;
pub(crate) mod replay;
pub(crate) mod retention;
pub(crate) mod scan;
pub(crate) mod segments;
pub(crate) mod tail;
pub(crate) mod write_behind;

use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::spill::FaultKind;

/// Rewinds receiver `name` in the journal at `dir` while no dispatcher has it open (what the
/// operator tool's `rewind` does): the next receiver created under that name replays from
/// `stamp` on. Otherwise as [`Dispatcher::rewind`](crate::Dispatcher::rewind), which does the
/// same on a running dispatcher.
///
/// # Errors
///
/// [`InUse`](JournalError::InUse) if a dispatcher has the journal open, and the errors of
/// [`Dispatcher::rewind`](crate::Dispatcher::rewind).
///
/// The rewind is appended to the newest segment (a new one is started only if the journal has
/// none that can be read), so repeated rewinds do not add segments.
pub fn rewind(dir: impl AsRef<Path>, name: &str, stamp: usize) -> Result<(), JournalError> {
    let journal = log::Journal::open_appending(
        dir.as_ref().to_path_buf(),
        Durability::Batch,
        crate::DEFAULT_JOURNAL_SEGMENT_SIZE,
        retention::RetentionConfig {
            max_bytes: u64::MAX,
            max_age: None,
        },
    )?;
    journal.rewind(name, stamp as u64)
}

/// How much a journaled dispatcher waits for the disk. Each mode writes every batch before
/// delivering it; they differ in when a message counts as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Never synced: a message is handed to the operating system before delivery, so it
    /// survives the process being killed, but not a power loss or an OS crash.
    #[default]
    None,
    /// Each batch is synced before delivery; `send` does not wait for it, and
    /// [`ClockedSender::flush`](crate::ClockedSender::flush) waits until everything that sender
    /// sent is on disk. Choose it when you can resend what the last moments before a power
    /// loss held.
    Batch,
    /// As `Batch`, and `send` (also `send_all`, `broadcast`) returns only once its message is
    /// synced to disk; concurrent senders share each sync. Forwards and `send_async` do not
    /// wait: call [`flush`](crate::ClockedSender::flush). Choose it when a returned `send` must
    /// never be lost.
    Always,
}

/// What opening a journal found; see [`Dispatcher::recovery`](crate::Dispatcher::recovery).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The highest stamp the journal holds: the new run's stamps start above it.
    pub last_stamp: usize,
    /// Segment files read.
    pub segments: u64,
    /// Messages read (each broadcast and each multicast once).
    pub messages: u64,
    /// Bytes cut from the end of the last segment: a write torn by a crash, never
    /// acknowledged.
    pub truncated_bytes: u64,
    /// A damaged place at the start of the cut tail that a crash alone may not explain (a
    /// whole record with a bad checksum, or a length no record has followed by more than
    /// zeros): bit rot in an acknowledged record looks the same. It was cut with the tail
    /// (its bytes are counted in `truncated_bytes`, not in `gaps`); reported here so that
    /// it is not lost silently.
    pub damaged_tail: Option<JournalGap>,
    /// Damaged records (or unreadable segments) skipped: `gaps.len()`.
    pub corrupt_records: u64,
    /// Each damaged place, in journal order. Its messages are lost; nothing in it is delivered.
    pub gaps: Vec<JournalGap>,
}

/// A damaged place in the journal: see [`RecoveryReport::gaps`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalGap {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the damage starts, in bytes from the start of the file.
    pub offset: u64,
    /// How many bytes were skipped.
    pub bytes: u64,
    /// What was wrong.
    pub kind: FaultKind,
}
