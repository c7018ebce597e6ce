//! Reading a live receiver's backlog back from the journal: the receiver side of a *lag
//! stretch* (see [`crate::inbox::lagging`] for the handover with the memory queue).
//!
//! When a journaled receiver's memory queue is full, the dispatcher does not wait for it and
//! does not copy the message anywhere: the message is already in the journal. It raises the
//! receiver's `through` stamp instead, and at the start of such a stretch opens the segment
//! that holds the batch and hands the open file, with the offset where the batch starts, to
//! the receiver ([`TailStart`]). A [`Tail`] reads forward from there, record by record and
//! across segment files, returning the messages that are the receiver's: `Data` for its
//! journal id, `Multicast` records that list it, and every `Broadcast` (a live receiver is
//! open for all of them).
//!
//! # Why the reader never sees a half-written record
//!
//! With each journal-only message the dispatcher also leaves `end`, where the journal ended
//! once the batch holding it was written (one `write` that returned). Every record before
//! `end` is whole, and a tail never reads past it (`Read::take`); the journal is in stamp
//! order, so a tail asked for messages up to `through` stops at `end` or at the first record
//! stamped above `through` (which it leaves unread, for the next call), whichever comes
//! first. Running into the end of a segment before `end` means the rest is in the next one.
//!
//! Damage is reported once and never read twice: a record with a bad checksum is skipped; a
//! record that cannot be framed loses the rest of its segment (up to `end`), and the tail
//! goes on in the next segment or at `end`.
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
use std::io::{BufReader, Read, Seek, SeekFrom};
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
    /// Messages per receiver (`Data` records, and `Multicast` records for each one listed).
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

/// Whether position `a` comes before position `b` in the journal.
fn before(a: Position, b: Position) -> bool {
    (a.segment, a.offset) < (b.segment, b.offset)
}

/// What the next step of a tail found.
pub(crate) enum Tailed<T> {
    Data(T, usize),
    /// Damage, a deleted stretch, or a failing read: never delivered as data.
    Fault(SpillFault),
    /// Every record up to the stamp asked for is read.
    Through,
}

/// A receiver's reading position in the journal.
pub(crate) struct Tail<T> {
    dir: PathBuf,
    id: JournalId,
    decode: DecodeFn<T>,
    segment: u64,
    /// The open segment; `None` between stretches (released, so that a segment retention
    /// deletes meanwhile does not stay on disk) or after damage: opened again at `offset`
    /// before the next read.
    input: Option<BufReader<File>>,
    /// Where the next record starts in `segment`.
    offset: u64,
    body: Vec<u8>,
    /// The journal's cut count when this tail last (re)filled its buffer.
    cuts_seen: u64,
    /// A fault found while moving on, to report next.
    pending: Option<SpillFault>,
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
            input: Some(BufReader::with_capacity(64 << 10, start.file)),
            offset: start.at.offset,
            body: Vec::new(),
            cuts_seen: signals.cuts.load(Ordering::Acquire),
            pending: None,
        };
        if let Err(kind) = tail.seek() {
            tail.pending = Some(tail.fault_at(FaultKind::Io(kind), 0));
        }
        tail
    }

    /// Drops what is buffered and reads on from `offset`.
    fn seek(&mut self) -> Result<(), std::io::ErrorKind> {
        match self.input.as_mut() {
            Some(input) => input
                .seek(SeekFrom::Start(self.offset))
                .map(drop)
                .map_err(|e| e.kind()),
            // Opened (and positioned) before the next read.
            None => Ok(()),
        }
    }

    /// Closes the segment between stretches; the next read opens it again by name.
    pub(crate) fn release(&mut self) {
        self.input = None;
    }

    fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset,
        }
    }

    /// The next message for the receiver stamped in `(after, through]`, or
    /// [`Tailed::Through`] once every record up to `through` is read. `end` is where the
    /// journal ended after the batch holding `through` was written (or later): every record
    /// before it is whole, and nothing past it is read.
    pub(crate) fn next(
        &mut self,
        after: u64,
        through: u64,
        end: Position,
        signals: &TailSignals,
    ) -> Tailed<T> {
        if let Some(fault) = self.pending.take() {
            return Tailed::Fault(fault);
        }
        loop {
            if !before(self.position(), end) {
                return Tailed::Through;
            }
            let cuts = signals.cuts.load(Ordering::Acquire);
            if cuts != self.cuts_seen {
                self.cuts_seen = cuts;
                if let Err(kind) = self.seek() {
                    return self.skip_to(end, signals, FaultKind::Io(kind));
                }
            }
            let record_at = self.offset;
            let limit = if self.segment == end.segment {
                end.offset - self.offset
            } else {
                u64::MAX
            };
            let Some(input) = self.input.as_mut() else {
                if let Err(found) = self.reopen(end, signals) {
                    return found;
                }
                continue;
            };
            match frame::read_body(&mut input.take(limit), &mut self.body) {
                Ok(len) => self.offset += len,
                // The end of a segment before `end`: the rest is in the next one.
                Err(Bad::End) if self.segment < end.segment => {
                    match self.next_segment(end, signals) {
                        Ok(None) => continue,
                        Ok(Some(fault)) => return Tailed::Fault(fault),
                        Err(kind) => return self.skip_to(end, signals, kind),
                    }
                }
                Err(Bad::Damaged {
                    kind,
                    resumable: true,
                }) => {
                    self.offset += (frame::HEAD_LEN + self.body.len()) as u64;
                    return self.fault(kind, 0);
                }
                // Cannot be framed (or ends before `end` says it should): the rest of this
                // segment, up to `end`, is lost.
                Err(Bad::End) => return self.skip_to(end, signals, FaultKind::Truncated),
                Err(Bad::Damaged { kind, .. }) => return self.skip_to(end, signals, kind),
            }
            let entry = match frame::parse(&self.body) {
                Ok(entry) => entry,
                Err(kind) => return self.fault(kind, 0),
            };
            if entry.stamp().is_some_and(|stamp| stamp > through) {
                // Past the stretch asked for: leave it for the next call.
                self.offset = record_at;
                return match self.seek() {
                    Ok(()) => Tailed::Through,
                    Err(kind) => self.skip_to(end, signals, FaultKind::Io(kind)),
                };
            }
            let (stamp, payload) = match entry {
                Entry::Data {
                    stamp,
                    receiver,
                    payload,
                } if receiver == self.id => (stamp, payload),
                Entry::Multicast {
                    stamp,
                    receivers,
                    payload,
                } if receivers.contains(self.id) => (stamp, payload),
                Entry::Broadcast { stamp, payload } => (stamp, payload),
                _ => continue,
            };
            if stamp <= after {
                continue;
            }
            let stamp = usize::try_from(stamp).unwrap_or(usize::MAX);
            return match (self.decode)(payload) {
                Ok(value) => Tailed::Data(value, stamp),
                Err(_) => self.fault(FaultKind::Decode, 1),
            };
        }
    }

    /// Damage that cannot be read past: reports `kind` and goes on after it, in the next
    /// segment (or at `end` if this segment is `end`'s), so a fault is reported once.
    fn skip_to(&mut self, end: Position, signals: &TailSignals, kind: FaultKind) -> Tailed<T> {
        let fault = self.fault_at(kind, 0);
        if self.segment < end.segment {
            match self.next_segment(end, signals) {
                Ok(expired) => self.pending = expired,
                Err(_) => self.jump(end),
            }
        } else {
            self.jump(end);
        }
        Tailed::Fault(fault)
    }

    /// Gives up on everything before `end`: the file is opened there again before the next
    /// read (the buffer holds bytes from before the damage).
    fn jump(&mut self, end: Position) {
        self.segment = end.segment;
        self.offset = end.offset;
        self.input = None;
    }

    /// Opens the file of `segment` again at `offset`.
    fn reopen(&mut self, end: Position, signals: &TailSignals) -> Result<(), Tailed<T>> {
        let path = self.dir.join(segments::file_name(self.segment));
        match File::open(&path) {
            Ok(file) => {
                self.input = Some(BufReader::with_capacity(64 << 10, file));
                self.seek().map_err(|kind| {
                    self.input = None;
                    self.fault(FaultKind::Io(kind), 0)
                })
            }
            // Deleted by retention meanwhile: go on with the next segment that exists.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.segment < end.segment => {
                match self.next_segment(end, signals) {
                    Ok(None) => Ok(()),
                    Ok(Some(fault)) => Err(Tailed::Fault(fault)),
                    Err(kind) => Err(self.fault(kind, 0)),
                }
            }
            // `end`'s own segment is gone: so is everything up to `end`.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fault = self.fault(FaultKind::Expired, 0);
                self.offset = self.offset.max(end.offset);
                Err(fault)
            }
            Err(e) => Err(self.fault(FaultKind::Io(e.kind()), 0)),
        }
    }

    /// Moves to the oldest segment after this one that still exists (up to `end`'s); a fault
    /// if retention deleted some in between.
    fn next_segment(
        &mut self,
        end: Position,
        signals: &TailSignals,
    ) -> Result<Option<SpillFault>, FaultKind> {
        // Retention may delete a segment between the listing and the open: list again then.
        for _ in 0..8 {
            let listed = segments::list(&self.dir).map_err(|e| FaultKind::Io(e.kind()))?;
            let Some((index, path)) = listed
                .into_iter()
                .find(|(index, _)| *index > self.segment && *index <= end.segment)
            else {
                return Err(FaultKind::Io(std::io::ErrorKind::NotFound));
            };
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(FaultKind::Io(e.kind())),
            };
            let skipped = self.segment + 1..index;
            self.segment = index;
            self.input = Some(BufReader::with_capacity(64 << 10, file));
            self.offset = segments::MAGIC.len() as u64;
            self.seek().map_err(FaultKind::Io)?;
            if skipped.is_empty() {
                return Ok(None);
            }
            let lost = signals.lost(self.id, skipped.start, skipped.end);
            return Ok(Some(SpillFault {
                kind: FaultKind::Expired,
                segment: self.dir.join(segments::file_name(skipped.start)),
                messages_lost: lost,
            }));
        }
        Err(FaultKind::Io(std::io::ErrorKind::NotFound))
    }

    fn fault_at(&self, kind: FaultKind, messages_lost: u64) -> SpillFault {
        SpillFault {
            kind,
            segment: self.dir.join(segments::file_name(self.segment)),
            messages_lost,
        }
    }

    fn fault(&self, kind: FaultKind, messages_lost: u64) -> Tailed<T> {
        Tailed::Fault(self.fault_at(kind, messages_lost))
    }
}
