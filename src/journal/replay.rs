//! A receiver's backlog read back from the journal.
//!
//! When a receiver is created under a name the journal knows, the dispatcher hands it a
//! [`Plan`]: replay every message for that name with a stamp in `(from, limit]`, reading the
//! segments up to `end`. `from` is the name's last commit; `limit` is the dispatcher's clock
//! when the receiver joined, and `end` where the journal ended then. Every message the
//! receiver gets live has a stamp above `limit`, so replay then live traffic is in stamp order,
//! each message once.
//!
//! A message is the name's if it is a `Data` record for its journal id, a `Multicast` record
//! that lists it, or a `Broadcast` made
//! after the name first joined: a name is a durable subscription, as a Kafka consumer group or a
//! JetStream durable consumer. It stays subscribed while it has no receiver (dropped, or its
//! process dead), so its next receiver gets the broadcasts it missed. Each segment's checkpoint
//! lists the subscribed names (`Open`). The replay never reads past `end`, where the dispatcher
//! may be appending.

use std::path::{Path, PathBuf};

use super::frame::{Entry, JournalId};
use super::log::Position;
use super::scan::{SegmentReader, Step};
use super::segments;
use crate::spill::codec::DecodeFn;
use crate::spill::{FaultKind, SpillFault};

/// What to replay, fixed by the dispatcher when the receiver joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) id: JournalId,
    pub(crate) from: u64,
    pub(crate) limit: u64,
    pub(crate) end: Position,
    /// Messages above `from` that retention deleted: reported first, if any.
    pub(crate) expired: u64,
    /// The oldest stamp the journal still held.
    pub(crate) oldest: u64,
}

/// What the next step of a replay found.
pub(crate) enum Replayed<T> {
    Data(T, usize),
    /// Damage on the way: never delivered. `messages_lost` is 0 when the damaged record's
    /// receiver cannot be known.
    Fault(SpillFault),
    /// The backlog is all read.
    Done,
}

/// A replay in progress.
pub(crate) struct Replay<T> {
    dir: PathBuf,
    plan: Plan,
    decode: DecodeFn<T>,
    /// Segment indexes still to read, oldest first (listed on the first step).
    todo: Option<std::vec::IntoIter<(u64, PathBuf)>>,
    current: Option<SegmentReader>,
    open: bool,
    /// Whether the loss to retention (if any) has been reported.
    reported: bool,
}

impl<T> Replay<T> {
    pub(crate) fn new(dir: &Path, plan: Plan, decode: DecodeFn<T>) -> Self {
        Replay {
            dir: dir.to_path_buf(),
            plan,
            decode,
            todo: None,
            current: None,
            open: false,
            reported: false,
        }
    }

    /// What it replays.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The next message of the backlog.
    pub(crate) fn next(&mut self) -> Replayed<T> {
        if self.plan.from >= self.plan.limit {
            return Replayed::Done;
        }
        if !self.reported {
            self.reported = true;
            if self.plan.expired > 0 && self.plan.from + 1 < self.plan.oldest {
                return Replayed::Fault(SpillFault {
                    kind: FaultKind::Expired,
                    segment: self.dir.clone(),
                    messages_lost: self.plan.expired,
                });
            }
        }
        loop {
            if self.current.is_none() {
                match self.open_next() {
                    Ok(true) => {}
                    Ok(false) => return Replayed::Done,
                    Err(fault) => return Replayed::Fault(fault),
                }
            }
            let Some(reader) = self.current.as_mut() else {
                continue;
            };
            let path = reader.path.clone();
            match reader.next_step() {
                Step::End => self.current = None,
                Step::Damaged { kind, .. } => {
                    return Replayed::Fault(SpillFault {
                        kind,
                        segment: path,
                        messages_lost: 0,
                    })
                }
                Step::Entry(entry) => {
                    let plan = self.plan;
                    let (stamp, payload) = match entry {
                        Entry::Open { receiver } if receiver == plan.id => {
                            self.open = true;
                            continue;
                        }
                        Entry::Data {
                            stamp,
                            receiver,
                            payload,
                        } if receiver == plan.id => (stamp, payload),
                        Entry::Multicast {
                            stamp,
                            receivers,
                            payload,
                        } if receivers.contains(plan.id) => (stamp, payload),
                        Entry::Broadcast { stamp, payload } if self.open => (stamp, payload),
                        _ => continue,
                    };
                    if stamp <= plan.from {
                        continue;
                    }
                    if stamp > plan.limit {
                        self.current = None;
                        self.todo = Some(Vec::new().into_iter());
                        return Replayed::Done;
                    }
                    let stamp = usize::try_from(stamp).unwrap_or(usize::MAX);
                    return match (self.decode)(payload) {
                        Ok(value) => Replayed::Data(value, stamp),
                        Err(_) => Replayed::Fault(SpillFault {
                            kind: FaultKind::Decode,
                            segment: path,
                            messages_lost: 1,
                        }),
                    };
                }
            }
        }
    }

    /// Opens the next segment to read; false when there is none.
    fn open_next(&mut self) -> Result<bool, SpillFault> {
        if self.todo.is_none() {
            let listed = segments::list(&self.dir).map_err(|e| SpillFault {
                kind: FaultKind::Io(e.kind()),
                segment: self.dir.clone(),
                messages_lost: 0,
            })?;
            let end = self.plan.end.segment;
            let mut wanted: Vec<_> = listed.into_iter().filter(|s| s.0 <= end).collect();
            skip_read_segments(&mut wanted, self.plan.from);
            self.todo = Some(wanted.into_iter());
        }
        let Some((index, path)) = self.todo.as_mut().and_then(Iterator::next) else {
            return Ok(false);
        };
        let end = if index == self.plan.end.segment {
            self.plan.end.offset
        } else {
            u64::MAX
        };
        // A checkpoint at the head of the segment says whether the name is open.
        self.open = false;
        match SegmentReader::open(&path, end) {
            Ok(reader) => {
                self.current = Some(reader);
                Ok(true)
            }
            // Deleted by retention since it was listed: its loss is counted there.
            Err(FaultKind::Io(std::io::ErrorKind::NotFound)) => self.open_next(),
            Err(kind) => Err(SpillFault {
                kind,
                segment: path,
                messages_lost: 0,
            }),
        }
    }
}

/// Drops the oldest segments that hold nothing stamped above `from`: a segment's messages are
/// all stamped at or below the clock tick that opens the segment after it (its checkpoint),
/// so one short read per segment finds where the replay starts, instead of reading every
/// older record. What a skipped segment says about names (opens, commits) is restated by the
/// next one's checkpoint, which the replay reads.
fn skip_read_segments(segments: &mut Vec<(u64, PathBuf)>, from: u64) {
    if from == 0 {
        return;
    }
    let first_needed = segments
        .windows(2)
        .position(|pair| opening_tick(&pair[1].1).is_none_or(|tick| tick > from))
        .unwrap_or(segments.len().saturating_sub(1));
    segments.drain(..first_needed);
}

/// The clock tick a segment's checkpoint starts with, if it can be read.
fn opening_tick(path: &Path) -> Option<u64> {
    let mut reader = SegmentReader::open(path, u64::MAX).ok()?;
    match reader.next_step() {
        Step::Entry(Entry::Tick { stamp }) => Some(stamp),
        _ => None,
    }
}
