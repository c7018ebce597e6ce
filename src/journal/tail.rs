//! Reading a live receiver's backlog back from the journal: the receiver side of a *lag
//! stretch* (see [`crate::inbox::lagging`] for the handover with the memory queue).
//!
//! When a journaled receiver's memory queue is full, the dispatcher does not wait for it and
//! does not copy the message anywhere: the message is already in the journal. It raises the
//! receiver's `through` stamp instead, and at the start of such a stretch opens the segment
//! that holds the batch and hands the open file, with the offset where the batch starts, to
//! the receiver ([`TailStart`]). A [`Tail`] reads forward from there, record by record and
//! across segment files, returning the messages that are the receiver's: `Data` for its
//! journal id and every `Broadcast` (a live receiver is open for all of them).
//!
//! # Why the reader never sees a half-written record it needs
//!
//! Every record stamped `<= through` was written (one `write` that returned) before
//! `through` was stored, and the journal is in stamp order. A tail asked for messages up to
//! `through` stops as soon as it has read a record stamped `through` or later, so it never
//! parses past the end of what was complete when it loaded `through`. Running into the end of
//! a segment before that means the rest is in the next segment.
//!
//! Two things can change files under a reader, and each has its signal in [`TailSignals`]:
//!
//! * **A failed write** is cut back (`set_len`) and retried. Bytes of it that the tail's read
//!   buffer took in before the cut would be messages whose senders got an error. The journal
//!   bumps `cuts` after each cut, before any later `through` is stored; a tail that sees the
//!   count move drops its buffer and reads the file again from its offset (which is never
//!   past the cut: it only ever stops after records that were written whole).
//! * **Retention** deletes whole old segments. The segment a tail has open stays readable (an
//!   open file outlives its name on Unix), but a later one may be gone before the tail gets
//!   there when the receiver lags by more than the size limit. Retention notes, per deleted
//!   segment, how many messages it held for each receiver (`gone`); the tail reports their
//!   sum as one [`FaultKind::Expired`] fault and goes on with the oldest segment left.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::frame::{self, Bad, Entry, JournalId};
use super::log::Position;
use super::segments;
use crate::spill::codec::DecodeFn;
use crate::spill::{FaultKind, SpillFault};

/// How many deleted segments' counts are kept for tails that have not got there yet.
const GONE_KEPT: usize = 4096;

/// What a deleted segment held, for the tails that had not read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentMessages {
    /// Broadcasts (every open receiver's).
    pub(crate) broadcasts: u64,
    /// `Data` records per receiver.
    pub(crate) data: HashMap<JournalId, u64>,
}

/// What the journal tells tails about files changing under them.
#[derive(Default)]
pub(crate) struct TailSignals {
    /// Failed writes cut back so far.
    cuts: AtomicU64,
    /// What recently deleted segments held, by segment index.
    gone: Mutex<BTreeMap<u64, SegmentMessages>>,
}

impl TailSignals {
    /// The journal cut a failed write back. Called before any later batch is delivered.
    pub(crate) fn cut(&self) {
        self.cuts.fetch_add(1, Ordering::Release);
    }

    /// Retention is about to delete segment `index`, which holds `messages`.
    pub(crate) fn deleting(&self, index: u64, messages: SegmentMessages) {
        let mut gone = self.gone.lock();
        gone.insert(index, messages);
        while gone.len() > GONE_KEPT {
            gone.pop_first();
        }
    }

    /// Messages for receiver `id` in the deleted segments `from..to`.
    fn lost(&self, id: JournalId, from: u64, to: u64) -> u64 {
        self.gone
            .lock()
            .range(from..to)
            .map(|(_, m)| m.broadcasts + m.data.get(&id).copied().unwrap_or(0))
            .sum()
    }
}

/// Where a lag stretch starts: the segment holding its first batch, already open, and the
/// offset of the batch in it.
pub(crate) struct TailStart {
    file: File,
    at: Position,
}

impl TailStart {
    /// Opens the segment of `at` in the journal at `dir`.
    pub(crate) fn open(dir: &Path, at: Position) -> std::io::Result<Self> {
        let file = File::open(dir.join(segments::file_name(at.segment)))?;
        Ok(TailStart { file, at })
    }
}

/// What the next step of a tail found.
pub(crate) enum Tailed<T> {
    Data(T, usize),
    /// Damage, a deleted stretch, or a failing read: never delivered as data.
    Fault(SpillFault),
    /// Every record up to the stamp asked for is read.
    Through,
    /// The records up to the stamp asked for are not all readable yet (only after damage
    /// hid the last of them): look again later.
    NotYet,
}

/// A receiver's reading position in the journal.
pub(crate) struct Tail<T> {
    dir: PathBuf,
    id: JournalId,
    decode: DecodeFn<T>,
    segment: u64,
    input: BufReader<File>,
    /// Where the next record starts in `segment`.
    offset: u64,
    body: Vec<u8>,
    /// The highest stamp of any record read.
    scanned: u64,
    /// The journal's cut count when this tail last (re)filled its buffer.
    cuts_seen: u64,
}

impl<T> Tail<T> {
    /// A tail for receiver `id` of the journal in `dir`, from `start`.
    pub(crate) fn new(
        dir: &Path,
        id: JournalId,
        decode: DecodeFn<T>,
        start: TailStart,
        signals: &TailSignals,
    ) -> Self {
        let mut tail = Tail {
            dir: dir.to_path_buf(),
            id,
            decode,
            segment: start.at.segment,
            input: BufReader::with_capacity(64 << 10, start.file),
            offset: start.at.offset,
            body: Vec::new(),
            scanned: 0,
            cuts_seen: signals.cuts.load(Ordering::Acquire),
        };
        tail.seek();
        tail
    }

    /// Drops what is buffered and reads on from `offset`.
    fn seek(&mut self) -> bool {
        self.input.seek(SeekFrom::Start(self.offset)).is_ok()
    }

    /// The next message for the receiver stamped in `(after, through]`, or
    /// [`Tailed::Through`] once every record up to `through` is read.
    pub(crate) fn next(&mut self, after: u64, through: u64, signals: &TailSignals) -> Tailed<T> {
        loop {
            if self.scanned >= through {
                return Tailed::Through;
            }
            let cuts = signals.cuts.load(Ordering::Acquire);
            if cuts != self.cuts_seen {
                self.cuts_seen = cuts;
                if !self.seek() {
                    return self.io_fault(std::io::ErrorKind::Other);
                }
            }
            let path_offset = self.offset;
            match frame::read_body(&mut self.input, &mut self.body) {
                Ok(len) => self.offset += len,
                // The end of this segment, or of what was written whole: what is still to
                // read is in a later segment.
                Err(Bad::End)
                | Err(Bad::Damaged {
                    kind: FaultKind::Truncated,
                    ..
                }) => match self.next_segment(signals) {
                    Ok(None) => continue,
                    Ok(Some(fault)) => return Tailed::Fault(fault),
                    Err(NoSegment) => {
                        // Nothing after this segment although records up to `through` are
                        // not all read: the last of them was damaged. Read again from here
                        // when more is written.
                        self.offset = path_offset;
                        self.seek();
                        return Tailed::NotYet;
                    }
                },
                Err(Bad::Damaged { kind, resumable }) => {
                    if resumable {
                        self.offset += (frame::HEAD_LEN + self.body.len()) as u64;
                    } else if let Err(NoSegment) = self.next_segment(signals) {
                        self.offset = path_offset;
                        self.seek();
                    }
                    return self.fault(kind, 0);
                }
            }
            let entry = match frame::parse(&self.body) {
                Ok(entry) => entry,
                Err(kind) => return self.fault(kind, 0),
            };
            if let Some(stamp) = entry.stamp() {
                self.scanned = self.scanned.max(stamp);
            }
            let (stamp, payload) = match entry {
                Entry::Data {
                    stamp,
                    receiver,
                    payload,
                } if receiver == self.id => (stamp, payload),
                Entry::Broadcast { stamp, payload } => (stamp, payload),
                _ => continue,
            };
            if stamp <= after || stamp > through {
                continue;
            }
            let stamp = usize::try_from(stamp).unwrap_or(usize::MAX);
            return match (self.decode)(payload) {
                Ok(value) => Tailed::Data(value, stamp),
                Err(_) => self.fault(FaultKind::Decode, 1),
            };
        }
    }

    /// Moves to the oldest segment after this one; a fault if retention deleted some in
    /// between.
    fn next_segment(&mut self, signals: &TailSignals) -> Result<Option<SpillFault>, NoSegment> {
        let listed = segments::list(&self.dir).map_err(|_| NoSegment)?;
        let (index, path) = listed
            .into_iter()
            .find(|(index, _)| *index > self.segment)
            .ok_or(NoSegment)?;
        let file = File::open(&path).map_err(|_| NoSegment)?;
        let skipped = self.segment + 1..index;
        self.segment = index;
        self.input = BufReader::with_capacity(64 << 10, file);
        self.offset = segments::MAGIC.len() as u64;
        if !self.seek() {
            return Err(NoSegment);
        }
        if skipped.is_empty() {
            return Ok(None);
        }
        let lost = signals.lost(self.id, skipped.start, skipped.end);
        Ok(Some(SpillFault {
            kind: FaultKind::Expired,
            segment: self.dir.join(segments::file_name(skipped.start)),
            messages_lost: lost,
        }))
    }

    fn fault(&self, kind: FaultKind, messages_lost: u64) -> Tailed<T> {
        Tailed::Fault(SpillFault {
            kind,
            segment: self.dir.join(segments::file_name(self.segment)),
            messages_lost,
        })
    }

    fn io_fault(&self, kind: std::io::ErrorKind) -> Tailed<T> {
        self.fault(FaultKind::Io(kind), 0)
    }
}

/// No later segment to move to.
struct NoSegment;
