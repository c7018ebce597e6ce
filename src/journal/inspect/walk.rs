//! The reading loop behind every call of [`super`]: segments, records and damage, as
//! recovery classifies them, and the receiver table rebuilt from the records.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Progress, RecordKind};
use crate::error::JournalError;
use crate::journal::frame::{Entry, JournalId, HEAD_LEN};
use crate::journal::recover::{classify_tail, damage_gap, Tail};
use crate::journal::scan::{SegmentReader, Step};
use crate::journal::segments;
use crate::journal::JournalGap;
use crate::spill::FaultKind;

pub(super) fn to_usize(stamp: u64) -> usize {
    usize::try_from(stamp).unwrap_or(usize::MAX)
}

/// An owned copy of a record's contents.
pub(super) fn owned(entry: &Entry<'_>) -> RecordKind {
    match *entry {
        Entry::Data {
            stamp,
            receiver,
            payload,
        } => RecordKind::Data {
            stamp: to_usize(stamp),
            receiver,
            payload: payload.to_vec(),
        },
        Entry::Broadcast { stamp, payload } => RecordKind::Broadcast {
            stamp: to_usize(stamp),
            payload: payload.to_vec(),
        },
        Entry::Tick { stamp } => RecordKind::Tick {
            stamp: to_usize(stamp),
        },
        Entry::Name { receiver, name } => RecordKind::Name {
            receiver,
            name: name.to_owned(),
        },
        Entry::Open { receiver } => RecordKind::Open { receiver },
        Entry::Closed { receiver } => RecordKind::Closed { receiver },
        Entry::Commit { receiver, stamp } => RecordKind::Commit {
            receiver,
            stamp: to_usize(stamp),
        },
        Entry::Rewind { receiver, stamp } => RecordKind::Rewind {
            receiver,
            stamp: to_usize(stamp),
        },
        Entry::Expired { receiver, count } => RecordKind::Expired { receiver, count },
        Entry::Multicast {
            stamp,
            receivers,
            payload,
        } => RecordKind::Multicast {
            stamp: to_usize(stamp),
            receivers: receivers.iter().collect(),
            payload: payload.to_vec(),
        },
    }
}

/// A record's length on disk, from its parsed contents (every field is fixed-size but the
/// last, which runs to the end of the body).
fn record_len(entry: &Entry<'_>) -> u64 {
    let body = 1 + match *entry {
        Entry::Data { payload, .. } => 8 + 4 + payload.len(),
        Entry::Broadcast { payload, .. } => 8 + payload.len(),
        Entry::Tick { .. } => 8,
        Entry::Name { name, .. } => 4 + name.len(),
        Entry::Open { .. } | Entry::Closed { .. } => 4,
        Entry::Commit { .. } | Entry::Rewind { .. } | Entry::Expired { .. } => 4 + 8,
        Entry::Multicast {
            receivers, payload, ..
        } => 8 + 4 + 4 * receivers.len() + payload.len(),
    };
    (HEAD_LEN + body) as u64
}

/// Receiver names, positions, who is open and what retention deleted, rebuilt from records as
/// recovery and replay do: commits move a position forward, rewinds set it, both reset the
/// expired count, which `Expired` records set; nobody is open at the start of a segment until
/// its checkpoint says so.
#[derive(Default)]
pub(super) struct Tracker {
    pub(super) names: BTreeMap<JournalId, String>,
    pub(super) positions: BTreeMap<JournalId, u64>,
    pub(super) open: BTreeSet<JournalId>,
    /// Messages above the position that retention deleted (absent: none).
    pub(super) expired: BTreeMap<JournalId, u64>,
}

impl Tracker {
    pub(super) fn new_segment(&mut self) {
        self.open.clear();
    }

    pub(super) fn apply(&mut self, entry: &Entry<'_>) {
        match *entry {
            Entry::Name { receiver, name } => {
                self.names.insert(receiver, name.to_owned());
            }
            Entry::Open { receiver } => {
                self.open.insert(receiver);
            }
            Entry::Closed { receiver } => {
                self.open.remove(&receiver);
            }
            Entry::Commit { receiver, stamp } if self.names.contains_key(&receiver) => {
                let position = self.positions.entry(receiver).or_insert(0);
                *position = (*position).max(stamp);
                self.expired.remove(&receiver);
            }
            Entry::Rewind { receiver, stamp } if self.names.contains_key(&receiver) => {
                self.positions.insert(receiver, stamp);
                self.expired.remove(&receiver);
            }
            Entry::Expired { receiver, count } if self.names.contains_key(&receiver) => {
                self.expired.insert(receiver, count);
            }
            _ => {}
        }
    }
}

/// What a [`Walker`] step found.
pub(super) enum Event<'a> {
    /// A segment was opened.
    Segment,
    /// A whole record.
    Record {
        path: &'a Arc<Path>,
        index: u64,
        offset: u64,
        len: u64,
        entry: Entry<'a>,
    },
    /// Damage with a good record after it, or in an older segment, or in the newest segment's
    /// end when it is not a torn write (see `recover::classify_tail`).
    Gap(JournalGap),
    /// The newest segment's damaged end, as recovery cuts it.
    TornTail(JournalGap),
    /// A segment (opened or not) is finished; `len` bytes of it were read.
    SegmentDone {
        index: u64,
        path: &'a Path,
        len: u64,
    },
}

/// The reading loop behind every call here: the listed segments one after the other, each
/// record or damaged place reported through a callback (so records are borrowed, not
/// copied), damage classified as recovery classifies it.
pub(super) struct Walker {
    /// Segments still to read: index, path, and how far to read (`None`: its length when
    /// opened).
    pub(super) todo: std::vec::IntoIter<(u64, PathBuf, Option<u64>)>,
    /// The newest segment listed: damage at its end is the torn tail.
    pub(super) newest: Option<u64>,
    current: Option<Current>,
    pub(super) progress: Progress,
}

struct Current {
    reader: SegmentReader,
    path: Arc<Path>,
    index: u64,
    /// How far it is read.
    len: u64,
    newest: bool,
    /// Damage in the newest segment not yet followed by a good record.
    pending: Vec<JournalGap>,
}

impl Walker {
    /// Lists the segments of `dir`.
    pub(super) fn list(dir: &Path) -> Result<Self, JournalError> {
        let listed = segments::list(dir).map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let bytes_total = listed
            .iter()
            .filter_map(|(_, path)| fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum();
        let newest = listed.last().map(|s| s.0);
        let todo: Vec<_> = listed
            .into_iter()
            .map(|(index, path)| (index, path, None))
            .collect();
        Ok(Self::new(todo, newest, bytes_total))
    }

    /// Reads `segments` (index, path, length) up to those lengths.
    pub(super) fn fixed(segments: Vec<(u64, PathBuf, u64)>, newest: Option<u64>) -> Self {
        let bytes_total = segments.iter().map(|s| s.2).sum();
        let todo = segments
            .into_iter()
            .map(|(index, path, len)| (index, path, Some(len)))
            .collect();
        Self::new(todo, newest, bytes_total)
    }

    fn new(todo: Vec<(u64, PathBuf, Option<u64>)>, newest: Option<u64>, bytes: u64) -> Self {
        Walker {
            progress: Progress {
                segments_total: todo.len() as u64,
                bytes_total: bytes,
                ..Progress::default()
            },
            todo: todo.into_iter(),
            newest,
            current: None,
        }
    }

    /// Reads one record (or opens one segment), reporting what it found to `f`. False once
    /// everything is read.
    pub(super) fn step(&mut self, f: &mut impl FnMut(Event<'_>)) -> bool {
        let Some(current) = self.current.as_mut() else {
            return self.open_next(f);
        };
        let offset = current.reader.offset();
        match current.reader.next_step() {
            Step::Entry(entry) => {
                for gap in current.pending.drain(..) {
                    f(Event::Gap(gap));
                }
                let len = record_len(&entry);
                f(Event::Record {
                    path: &current.path,
                    index: current.index,
                    offset,
                    len,
                    entry,
                });
                debug_assert_eq!(current.reader.offset(), offset + len);
            }
            Step::Damaged {
                kind,
                offset,
                resumable,
            } => {
                let next = current.reader.offset();
                let gap = damage_gap(&current.path, kind, offset, resumable, next, current.len);
                if current.newest {
                    current.pending.push(gap);
                } else {
                    f(Event::Gap(gap));
                }
            }
            Step::End => {
                match (
                    current.pending.first(),
                    classify_tail(&current.pending, current.len),
                ) {
                    (None, _) => {}
                    // One torn tail, from the first damage on.
                    (Some(first), Tail::Torn { from, .. }) => f(Event::TornTail(JournalGap {
                        offset: from,
                        bytes: current.len.saturating_sub(from),
                        ..first.clone()
                    })),
                    (Some(_), Tail::Gap) => {
                        for gap in current.pending.drain(..) {
                            f(Event::Gap(gap));
                        }
                    }
                }
                let (index, len) = (current.index, current.len);
                f(Event::SegmentDone {
                    index,
                    path: &current.path,
                    len,
                });
                self.finish_segment(len);
            }
        }
        true
    }

    fn finish_segment(&mut self, len: u64) {
        self.current = None;
        self.progress.segments_done += 1;
        self.progress.bytes_done += len;
    }

    /// Opens the next segment; false if there is none.
    fn open_next(&mut self, f: &mut impl FnMut(Event<'_>)) -> bool {
        let Some((index, path, len)) = self.todo.next() else {
            return false;
        };
        let newest = Some(index) == self.newest;
        let len = match len {
            Some(len) => Ok(len),
            None => fs::metadata(&path).map(|meta| meta.len()),
        };
        let opened = len
            .map_err(|e| FaultKind::Io(e.kind()))
            .and_then(|len| Ok((len, SegmentReader::open(&path, len)?)));
        match opened {
            Ok((len, reader)) => {
                f(Event::Segment);
                self.current = Some(Current {
                    reader,
                    path: path.into(),
                    index,
                    len,
                    newest,
                    pending: Vec::new(),
                });
            }
            // Deleted since it was listed: skipped.
            Err(FaultKind::Io(io::ErrorKind::NotFound)) => self.finish_segment(0),
            Err(kind) => {
                let len = fs::metadata(&path).map_or(0, |meta| meta.len());
                let gap = JournalGap {
                    segment: path.clone(),
                    offset: 0,
                    bytes: len,
                    kind,
                };
                // A newest segment without a whole magic is one being created (or torn by a
                // crash while it was): recovery deletes it.
                f(if newest {
                    Event::TornTail(gap)
                } else {
                    Event::Gap(gap)
                });
                f(Event::SegmentDone {
                    index,
                    path: &path,
                    len,
                });
                self.finish_segment(len);
            }
        }
        true
    }
}
