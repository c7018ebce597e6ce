//! Opening a journal that already has segments: what the last run left, and repairing its tail.
//!
//! Every segment is read once, oldest first:
//!
//! * the clock is the highest stamp of any message or tick (stamps keep increasing across
//!   restarts: the next run starts above it);
//! * names, commits and subscriptions are replayed from `Name`, `Commit`, `Rewind`, `Open`
//!   and `Closed` records (each segment's checkpoint repeats them, so deleted segments lose
//!   none);
//! * damage is a **gap** unless it is the torn tail below: a record with a plausible length
//!   but a bad checksum (or contents that do not parse) is skipped alone, one whose length
//!   cannot be trusted loses the rest of its segment; each is listed in
//!   [`RecoveryReport::gaps`], its bytes stay on disk, and recovery goes on with the next
//!   record or segment. Damaged bytes are never delivered. In the last segment too: damage
//!   followed by a good record is a gap, and the records after it are recovered.
//! * damage in the **last** segment that no good record follows is the *torn tail* of a
//!   write cut by a crash, and is cut off (the file is truncated after its last good record,
//!   the bytes counted in [`RecoveryReport::truncated_bytes`]); nothing in it was ever
//!   acknowledged (a write is acknowledged only once it returned, and synced in `Batch` and
//!   `Always`). What ends the segment decides ([`classify_tail`]):
//!   - a short header, or a length that runs past the end of the file: torn;
//!   - a whole record (its length fits in the file) with a bad checksum, the segment's very
//!     last: ambiguous (a crash can leave a record's length written and its body not, and bit
//!     rot in an acknowledged record looks the same). It is cut as torn, but reported in
//!     [`RecoveryReport::damaged_tail`];
//!   - a length that cannot be a record's (0, or above the largest body): torn if only zero
//!     bytes follow (a file extended by a crash before its data was written); if a whole,
//!     valid record can be found after it, it is a gap (kept, as in an older segment: the
//!     records after it cannot be framed and are not read, but are not destroyed either);
//!     otherwise torn, and reported in [`RecoveryReport::damaged_tail`] (if telling would
//!     take too long, many bytes framing plausible lengths, it is kept as a gap: a cut
//!     cannot be undone);
//!   - a read error: a gap (nothing is cut because a read failed).
//!
//! A name stays subscribed across a crash: its next receiver replays what it missed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::frame::{self, Entry, JournalId, HEAD_LEN, MAX_BODY_LEN};
use super::scan::{SegmentReader, Step};
use super::segments;
use super::{JournalGap, RecoveryReport};
use crate::error::JournalError;
use crate::spill::FaultKind;

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
    /// The lowest transient receiver id any record names (a new run's transient ids start
    /// below it, so that none is ever read as an earlier run's).
    pub(crate) lowest_transient: Option<JournalId>,
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
        // last segment) classified by `classify_tail`.
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
                    let next = reader.offset();
                    unconfirmed.push(damage_gap(&path, kind, offset, resumable, next, file_len));
                }
            }
        }
        if unconfirmed.is_empty() {
            continue;
        }
        match last.then(|| classify_tail(&unconfirmed, file_len)) {
            Some(Tail::Torn { reported, .. }) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error)?;
                file.set_len(good_end).map_err(io_error)?;
                file.sync_all().map_err(io_error)?;
                recovered.report.truncated_bytes += file_len - good_end;
                recovered.report.damaged_tail = reported;
                recovered.tail = Some((index, good_end));
            }
            Some(Tail::Gap) => {
                // Nothing may be appended after bytes that cannot be framed.
                recovered.tail = None;
                recovered.report.gaps.append(&mut unconfirmed);
            }
            None => recovered.report.gaps.append(&mut unconfirmed),
        }
    }
    recovered.report.corrupt_records = recovered.report.gaps.len() as u64;
    Ok(recovered)
}

/// The gap a damaged record at `offset` of the segment at `path` (`len` bytes) makes, the
/// reader being at `next` after it: the record alone if its length could be trusted
/// (`resumable`), else the rest of the segment.
pub(crate) fn damage_gap(
    path: &Path,
    kind: FaultKind,
    offset: u64,
    resumable: bool,
    next: u64,
    len: u64,
) -> JournalGap {
    let bytes = if resumable {
        next - offset
    } else {
        len.saturating_sub(offset)
    };
    JournalGap {
        segment: path.to_path_buf(),
        offset,
        bytes,
        kind,
    }
}

/// What damage at the end of the newest segment (no good record after it) is: see the module
/// docs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// A write torn by a crash: cut from `from` (the first damage) on. `reported`: the damage
    /// could also be bit rot in an acknowledged record, and is reported.
    Torn {
        from: u64,
        reported: Option<JournalGap>,
    },
    /// Damage that is not a torn write: the damaged places are gaps, nothing is cut.
    Gap,
}

/// Classifies `pending` (the damaged places of a segment of `len` bytes, in order, no good
/// record after the first of them) as the newest segment's torn tail or as gaps.
pub(crate) fn classify_tail(pending: &[JournalGap], len: u64) -> Tail {
    let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
        return Tail::Gap;
    };
    let torn = |reported: Option<&JournalGap>| Tail::Torn {
        from: first.offset,
        reported: reported.cloned(),
    };
    // The first whole record with a bad checksum or contents, if any.
    let whole = pending
        .iter()
        .find(|gap| matches!(gap.kind, FaultKind::Checksum | FaultKind::Decode));
    match last.kind {
        FaultKind::Io(_) => Tail::Gap,
        FaultKind::BadLength(_) => match rest_after(&last.segment, last.offset, len) {
            Rest::Record | Rest::Unsure => Tail::Gap,
            Rest::Zeros => torn(whole),
            Rest::Garbage => torn(whole.or(Some(last))),
        },
        // A short header or a length past the end (`Truncated`); or the very last record is
        // whole but damaged (`Checksum`, `Decode`): reported, as `whole` finds it.
        _ => torn(whole),
    }
}

/// What follows a record whose length cannot be trusted.
enum Rest {
    /// Nothing but zero bytes (or nothing).
    Zeros,
    /// A whole record, checksummed and parsed, starts somewhere after it.
    Record,
    /// Neither.
    Garbage,
    /// Too costly to tell (many plausible lengths to check): kept, as if a record followed,
    /// since cutting cannot be undone.
    Unsure,
}

/// Looks at bytes `(from, len)` of the segment at `path`. Unreadable bytes count as garbage.
fn rest_after(path: &Path, from: u64, len: u64) -> Rest {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(from + 1))?;
        file.take(len.saturating_sub(from + 1))
            .read_to_end(&mut bytes)
    });
    if read.is_err() {
        return Rest::Garbage;
    }
    if bytes.iter().all(|&b| b == 0) {
        return Rest::Zeros;
    }
    let mut body = Vec::new();
    // Each plausible length costs a checksum over that many bytes: a bounded amount in all.
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 20);
    for start in 0..bytes.len() {
        let rest = &bytes[start..];
        let Some(head) = rest.get(..4) else {
            break;
        };
        let body_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        // Only a length that fits is tried (`read_body` would allocate it first).
        if body_len == 0 || body_len > MAX_BODY_LEN || HEAD_LEN + body_len > rest.len() {
            continue;
        }
        budget = match budget.checked_sub(body_len) {
            Some(left) => left,
            None => return Rest::Unsure,
        };
        if frame::read_body(&mut &rest[..], &mut body).is_ok() && frame::parse(&body).is_ok() {
            return Rest::Record;
        }
    }
    Rest::Garbage
}

/// Applies one good record to the recovered state.
fn apply(recovered: &mut Recovered, entry: &Entry<'_>) {
    if let Some(stamp) = entry.stamp() {
        let stamp = usize::try_from(stamp).unwrap_or(usize::MAX);
        recovered.report.last_stamp = recovered.report.last_stamp.max(stamp);
        if !matches!(entry, Entry::Tick { .. }) {
            recovered.report.messages += 1;
        }
        let mut note_transient = |receiver: JournalId| {
            if receiver >= super::log::TRANSIENT_IDS {
                let lowest = recovered.lowest_transient.get_or_insert(receiver);
                *lowest = (*lowest).min(receiver);
            }
        };
        match *entry {
            Entry::Data { receiver, .. } => note_transient(receiver),
            Entry::Multicast { receivers, .. } => receivers.iter().for_each(note_transient),
            _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame::append_entry;

    /// A segment file holding `bytes`, and the damage a reader reports at `offset`.
    fn damaged(dir: &Path, bytes: &[u8], offset: u64, kind: FaultKind) -> JournalGap {
        let path = dir.join("segment");
        std::fs::write(&path, bytes).unwrap();
        damage_gap(&path, kind, offset, false, offset, bytes.len() as u64)
    }

    #[test]
    fn a_bad_length_followed_by_garbage_is_torn_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0xff; 4];
        bytes.extend((0..200u8).map(|b| b.wrapping_mul(37) | 1));
        let gap = damaged(dir.path(), &bytes, 0, FaultKind::BadLength(u32::MAX as u64));
        assert_eq!(
            classify_tail(std::slice::from_ref(&gap), bytes.len() as u64),
            Tail::Torn {
                from: 0,
                reported: Some(gap)
            }
        );
    }

    #[test]
    fn a_bad_length_followed_by_a_whole_record_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0xff; 11];
        append_entry(&mut bytes, &Entry::Tick { stamp: 5 });
        let gap = damaged(dir.path(), &bytes, 0, FaultKind::BadLength(u32::MAX as u64));
        assert_eq!(classify_tail(&[gap], bytes.len() as u64), Tail::Gap);
    }

    #[test]
    fn a_bad_length_followed_by_zeros_is_torn_unreported() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![0; 64];
        let gap = damaged(dir.path(), &bytes, 0, FaultKind::BadLength(0));
        assert_eq!(
            classify_tail(&[gap], 64),
            Tail::Torn {
                from: 0,
                reported: None
            }
        );
    }

    #[test]
    fn a_read_error_is_a_gap_and_a_short_record_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let io = damaged(
            dir.path(),
            &[1; 8],
            0,
            FaultKind::Io(std::io::ErrorKind::Other),
        );
        assert_eq!(classify_tail(&[io], 8), Tail::Gap);
        let short = damaged(dir.path(), &[1; 8], 0, FaultKind::Truncated);
        assert_eq!(
            classify_tail(&[short], 8),
            Tail::Torn {
                from: 0,
                reported: None
            }
        );
    }
}
