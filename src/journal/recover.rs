//! Opening a journal that already has segments: what the last run left, and repairing its tail.
//!
//! Every segment is read once, oldest first:
//!
//! * the clock is the highest stamp of any message or tick (stamps keep increasing across
//!   restarts: the next run starts above it);
//! * names, commits and subscriptions are replayed from `Name`, `Commit`, `Rewind`, `Open`
//!   and `Closed` records (each segment's checkpoint repeats them, so deleted segments lose
//!   none);
//! * damage in the **last** segment after its last good record is a torn tail, from a crash in
//!   the middle of a write: the file is cut back to that record and the bytes counted in
//!   [`RecoveryReport::truncated_bytes`]. Nothing after it was ever acknowledged (a write is
//!   acknowledged only once it returned, and synced in `Batch` and `Always`).
//! * damage anywhere else is a gap: a record with a plausible length but a bad checksum is
//!   skipped alone, one whose length cannot be trusted loses the rest of its segment; each is
//!   listed in [`RecoveryReport::gaps`] and recovery goes on with the next record or segment.
//!   Damaged bytes are never delivered.
//!
//! A name stays subscribed across a crash: its next receiver replays what it missed.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;

use super::frame::{Entry, JournalId};
use super::scan::{SegmentReader, Step};
use super::segments;
use super::{JournalGap, RecoveryReport};
use crate::error::JournalError;

/// What the journal knows about one receiver name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) name: String,
    /// Everything up to this stamp is processed (0: nothing committed).
    pub(crate) commit: u64,
    /// Whether it is subscribed to broadcasts (it has joined at least once).
    pub(crate) open: bool,
    /// Messages above its commit that retention deleted (reset by its next commit or rewind).
    pub(crate) expired: u64,
}

/// The state rebuilt from a journal directory.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) report: RecoveryReport,
    pub(crate) known: BTreeMap<JournalId, Known>,
    /// The index the next segment gets.
    pub(crate) next_index: u64,
    /// The newest segment, if it was read (its magic is whole): its index and its length
    /// after repair, where a record appended to it would start.
    pub(crate) tail: Option<(u64, u64)>,
    /// The clock in the oldest readable segment's checkpoint: every stamp above it is held
    /// (or was lost to damage), none at or below it. `None` if there was no segment.
    pub(crate) oldest_checkpoint: Option<u64>,
}

/// Reads every segment of `dir` (whose lock the caller holds) and repairs a torn tail.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let io_error = |source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let listed = segments::list(dir).map_err(io_error)?;
    let mut recovered = Recovered::default();
    let count = listed.len();
    for (position, (index, path)) in listed.into_iter().enumerate() {
        let last = position + 1 == count;
        recovered.next_index = index + 1;
        recovered.report.segments += 1;
        let file_len = std::fs::metadata(&path).map_err(io_error)?.len();
        let mut reader = match SegmentReader::open(&path, u64::MAX) {
            Ok(reader) => reader,
            Err(kind) => {
                if last {
                    // Created by a run that crashed before its checkpoint was whole.
                    std::fs::remove_file(&path).map_err(io_error)?;
                    recovered.report.truncated_bytes += file_len;
                    recovered.report.segments -= 1;
                } else {
                    recovered.report.gaps.push(JournalGap {
                        segment: path,
                        offset: 0,
                        bytes: file_len,
                        kind,
                    });
                }
                continue;
            }
        };
        if last {
            recovered.tail = Some((index, file_len));
        }
        let mut good_end = reader.offset();
        // Damage seen since the last good record: a gap if a good record follows, else (in the
        // last segment) part of the torn tail.
        let mut unconfirmed: Vec<JournalGap> = Vec::new();
        loop {
            match reader.next_step() {
                Step::End => break,
                Step::Entry(entry) => {
                    if let (None, Entry::Tick { stamp }) = (recovered.oldest_checkpoint, &entry) {
                        recovered.oldest_checkpoint = Some(*stamp);
                    }
                    apply(&mut recovered, &entry);
                    recovered.report.gaps.append(&mut unconfirmed);
                    good_end = reader.offset();
                }
                Step::Damaged {
                    kind,
                    offset,
                    resumable,
                } => {
                    let bytes = if resumable {
                        reader.offset() - offset
                    } else {
                        file_len.saturating_sub(offset)
                    };
                    unconfirmed.push(JournalGap {
                        segment: path.clone(),
                        offset,
                        bytes,
                        kind,
                    });
                }
            }
        }
        if unconfirmed.is_empty() {
            continue;
        }
        if last {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_error)?;
            file.set_len(good_end).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            recovered.report.truncated_bytes += file_len - good_end;
            recovered.tail = Some((index, good_end));
        } else {
            recovered.report.gaps.append(&mut unconfirmed);
        }
    }
    recovered.report.corrupt_records = recovered.report.gaps.len() as u64;
    Ok(recovered)
}

/// Applies one good record to the recovered state.
fn apply(recovered: &mut Recovered, entry: &Entry<'_>) {
    if let Some(stamp) = entry.stamp() {
        let stamp = usize::try_from(stamp).unwrap_or(usize::MAX);
        recovered.report.last_stamp = recovered.report.last_stamp.max(stamp);
        if !matches!(entry, Entry::Tick { .. }) {
            recovered.report.messages += 1;
        }
        return;
    }
    match *entry {
        Entry::Name { receiver, name } => {
            recovered
                .known
                .entry(receiver)
                .and_modify(|known| known.name = name.to_owned())
                .or_insert_with(|| Known {
                    name: name.to_owned(),
                    commit: 0,
                    open: false,
                    expired: 0,
                });
        }
        Entry::Open { receiver } => set_open(recovered, receiver, true),
        Entry::Closed { receiver } => set_open(recovered, receiver, false),
        Entry::Commit { receiver, stamp } => {
            if let Some(known) = recovered.known.get_mut(&receiver) {
                known.commit = known.commit.max(stamp);
                known.expired = 0;
            }
        }
        Entry::Rewind { receiver, stamp } => {
            if let Some(known) = recovered.known.get_mut(&receiver) {
                known.commit = stamp;
                known.expired = 0;
            }
        }
        Entry::Expired { receiver, count } => {
            if let Some(known) = recovered.known.get_mut(&receiver) {
                known.expired = count;
            }
        }
        _ => {}
    }
}

fn set_open(recovered: &mut Recovered, receiver: JournalId, open: bool) {
    if let Some(known) = recovered.known.get_mut(&receiver) {
        known.open = open;
    }
}
