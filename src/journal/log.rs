//! The open journal of one dispatcher: the current segment, what it knows about receivers, and
//! how writers wait for durability.
//!
//! One [`Journal`] is shared by the dispatcher thread (which writes each batch's records with
//! [`Journal::write`]), the dispatcher handle (which assigns receiver ids by name) and the
//! receivers (which append their commits with [`Journal::commit`]). A mutex serialises the
//! writes; the dispatcher takes it once per batch.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

pub(crate) use super::durable::{Durable, Settled};
use super::frame::{self, Entry, JournalId};
use super::recover::{recover, Known};
use super::retention::{RetentionBell, RetentionConfig};
use super::segments;
use super::tail::TailSignals;
use super::{Durability, RecoveryReport};
use crate::error::JournalError;

/// Where the journal ends: segment index and byte length. Everything written before a
/// position is readable up to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// Where a batch's records were written: from `start` to `end`, in one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) start: Position,
    pub(crate) end: Position,
}

/// A change to the receiver table that a batch's records announce.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Open(JournalId),
}

/// One dispatcher's open journal.
pub(crate) struct Journal {
    dir: PathBuf,
    pub(crate) durability: Durability,
    state: Mutex<State>,
    pub(crate) durable: Durable,
    pub(crate) retention: RetentionConfig,
    pub(crate) retention_bell: std::sync::Arc<RetentionBell>,
    /// What live receivers reading their backlog from the journal need to hear.
    pub(crate) tail: TailSignals,
    /// Taken by a receiver that syncs commits (its own and those written meanwhile): the
    /// others queue behind it and find theirs synced (see [`Journal::sync_through`]).
    sync_turn: Mutex<()>,
    /// How many syncs commits took (they share them: fewer than commits when they come
    /// together).
    commit_syncs: std::sync::atomic::AtomicU64,
    recovered: RecoveryReport,
    /// Held until drop.
    _lock: segments::DirLock,
}

struct State {
    file: File,
    position: Position,
    segment_size: u64,
    known: BTreeMap<JournalId, Known>,
    by_name: HashMap<String, JournalId>,
    next_id: JournalId,
    /// The id the next transient receiver gets (they count down from `JournalId::MAX`; see
    /// `names.rs`).
    next_transient: JournalId,
    /// The highest stamp written.
    clock: u64,
    /// The lowest stamp a replay can still return (older segments are gone).
    oldest: u64,
    /// Scratch for commits and checkpoints.
    scratch: Vec<u8>,
    /// Appends so far, and how many of them are known synced.
    appends: u64,
    synced: u64,
}

impl Journal {
    /// Locks `dir`, recovers what is there, and starts a new segment.
    pub(crate) fn open(
        dir: PathBuf,
        durability: Durability,
        segment_size: u64,
        retention: RetentionConfig,
    ) -> Result<Self, JournalError> {
        Self::open_with(dir, durability, segment_size, retention, false)
    }

    /// As [`open`](Self::open), but goes on appending to the newest segment if there is one
    /// (for a short edit such as an offline rewind, which should not add a segment per call).
    pub(crate) fn open_appending(
        dir: PathBuf,
        durability: Durability,
        segment_size: u64,
        retention: RetentionConfig,
    ) -> Result<Self, JournalError> {
        Self::open_with(dir, durability, segment_size, retention, true)
    }

    fn open_with(
        dir: PathBuf,
        durability: Durability,
        segment_size: u64,
        retention: RetentionConfig,
        append_to_tail: bool,
    ) -> Result<Self, JournalError> {
        let lock = segments::lock(&dir)?;
        let recovered = recover(&dir)?;
        let clock = recovered.report.last_stamp as u64;
        let by_name = recovered
            .known
            .iter()
            .map(|(&id, known)| (known.name.clone(), id))
            .collect();
        let next_id = recovered
            .known
            .keys()
            .next_back()
            .map_or(0, |&id| id.saturating_add(1));
        let oldest = recovered.oldest_checkpoint.unwrap_or(clock) + 1;
        let (index, file, offset) = match recovered.tail.filter(|_| append_to_tail) {
            Some((index, len)) => {
                let path = dir.join(segments::file_name(index));
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| JournalError::Io { path, source })?;
                (index, file, len)
            }
            None => {
                let checkpoint = checkpoint(clock, &recovered.known);
                let index = recovered.next_index;
                let (file, offset) =
                    segments::create(&dir, index, &checkpoint, true).map_err(|source| {
                        JournalError::Io {
                            path: dir.join(segments::file_name(index)),
                            source,
                        }
                    })?;
                (index, file, offset)
            }
        };
        Ok(Journal {
            durable: Durable::new(recovered.report.last_stamp),
            state: Mutex::new(State {
                file,
                position: Position {
                    segment: index,
                    offset,
                },
                segment_size,
                known: recovered.known,
                by_name,
                next_id,
                next_transient: match recovered.lowest_transient {
                    Some(lowest) if lowest > TRANSIENT_IDS => lowest - 1,
                    _ => JournalId::MAX,
                },
                clock,
                oldest,
                scratch: Vec::new(),
                appends: 0,
                synced: 0,
            }),
            dir,
            durability,
            retention,
            retention_bell: Default::default(),
            tail: TailSignals::default(),
            sync_turn: Mutex::new(()),
            commit_syncs: Default::default(),
            recovered: recovered.report,
            _lock: lock,
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found.
    pub(crate) fn recovered(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// The journal id for receiver `name` (a new one if the journal has never seen it), and
    /// whether it is new.
    pub(crate) fn id_for(&self, name: &str) -> (JournalId, bool) {
        let mut state = self.state.lock();
        if let Some(&id) = state.by_name.get(name) {
            return (id, false);
        }
        (state.add_name(name), true)
    }

    /// Where a replay for `id` starts: its position (last commit, 0 if none), the messages
    /// above it that retention deleted, and the oldest stamp still held.
    pub(crate) fn replay_start(&self, id: JournalId) -> (u64, u64, u64) {
        let state = self.state.lock();
        let known = state.known.get(&id);
        (
            known.map_or(0, |known| known.commit),
            known.map_or(0, |known| known.expired),
            state.oldest,
        )
    }

    /// Every known receiver's position, for retention.
    pub(crate) fn commits(&self) -> std::collections::HashMap<JournalId, u64> {
        let state = self.state.lock();
        state.known.iter().map(|(&id, k)| (id, k.commit)).collect()
    }

    /// Retention is about to delete a segment holding `unread` messages above each
    /// receiver's commit: the counts are added to each name's `expired` and written (an
    /// `Expired` record with the new total) before the file goes, so that a crash in between
    /// overstates a loss rather than hides one. [`deleted_through`](Self::deleted_through)
    /// follows once the file is gone.
    pub(crate) fn expire(
        &self,
        unread: &std::collections::HashMap<JournalId, u64>,
    ) -> io::Result<()> {
        let mut state = self.state.lock();
        let mut records = std::mem::take(&mut state.scratch);
        records.clear();
        let mut totals = Vec::new();
        for (&id, &count) in unread {
            if let Some(known) = state.known.get(&id) {
                let total = known.expired + count;
                totals.push((id, total));
                let entry = Entry::Expired {
                    receiver: id,
                    count: total,
                };
                frame::append_entry(&mut records, &entry);
            }
        }
        let written = if records.is_empty() {
            Ok(())
        } else {
            state.append(&records, self.synced_writes(), &self.tail)
        };
        state.scratch = records;
        // Counted only once on record: a failed write leaves the segment in place, to be
        // counted again on the next try.
        if written.is_ok() {
            for (id, total) in totals {
                if let Some(known) = state.known.get_mut(&id) {
                    known.expired = total;
                }
            }
        }
        written
    }

    /// Retention deleted the segment whose highest stamp is `last_stamp`: replays and rewinds
    /// can no longer reach below it. Called only once the file is gone, so that a segment
    /// whose deletion failed is never both reported expired and replayed.
    pub(crate) fn deleted_through(&self, last_stamp: u64) {
        let mut state = self.state.lock();
        state.oldest = state.oldest.max(last_stamp + 1);
    }

    /// Where the journal ends now.
    pub(crate) fn position(&self) -> Position {
        self.state.lock().position
    }

    /// Writes `records` (whole records, as [`frame`] appends them) with one write, syncs them
    /// per the durability mode, applies `changes`, and starts a new segment if this one is
    /// full. `records` is emptied either way. On a failed write the segment is cut back to its
    /// last whole record and the write tried once more in a fresh segment; if that fails too,
    /// `changes` are not applied (the records announcing them are not in the journal, so no
    /// later checkpoint may claim them). Returns where the records start and end.
    pub(crate) fn write(
        &self,
        records: &mut Vec<u8>,
        changes: &[Change],
        clock: u64,
    ) -> Result<Written, io::ErrorKind> {
        let mut state = self.state.lock();
        let mut start = state.position;
        let result = if records.is_empty() {
            Ok(())
        } else {
            match state.append(records, self.synced_writes(), &self.tail) {
                Ok(()) => Ok(()),
                Err(_) => state.roll(&self.dir, self.durability).and_then(|()| {
                    start = state.position;
                    state.append(records, self.synced_writes(), &self.tail)
                }),
            }
        };
        records.clear();
        let end = state.position;
        if result.is_ok() {
            for change in changes {
                let Change::Open(id) = *change;
                if let Some(known) = state.known.get_mut(&id) {
                    known.open = true;
                }
            }
            state.clock = state.clock.max(clock);
            if state.position.offset >= state.segment_size {
                // A failed roll leaves the full segment in use: it is tried again next batch.
                if state.roll(&self.dir, self.durability).is_ok() {
                    self.retention_bell.ring();
                }
            }
        }
        result
            .map(|()| Written { start, end })
            .map_err(|e| e.kind())
    }

    /// Records that receiver `id` has processed everything up to `stamp`, durably per the
    /// durability mode. A commit below an earlier one is kept as the earlier one.
    pub(crate) fn commit(&self, id: JournalId, stamp: u64) -> Result<(), JournalError> {
        self.append_position(&Entry::Commit {
            receiver: id,
            stamp,
        })
    }

    /// Sets receiver `name`'s position back (or forward) so that its next incarnation replays
    /// from `stamp` on. The caller makes sure no receiver of that name is open.
    pub(crate) fn rewind(&self, name: &str, stamp: u64) -> Result<(), JournalError> {
        let (id, oldest, clock) = {
            let state = self.state.lock();
            let id = *state
                .by_name
                .get(name)
                .ok_or_else(|| JournalError::UnknownReceiver {
                    name: name.to_owned(),
                })?;
            (id, state.oldest, state.clock)
        };
        if stamp < oldest {
            return Err(JournalError::RewindTooOld {
                stamp: stamp as usize,
                oldest: oldest as usize,
            });
        }
        if stamp > clock + 1 {
            return Err(JournalError::RewindAhead {
                stamp: stamp as usize,
                clock: clock as usize,
            });
        }
        self.append_position(&Entry::Rewind {
            receiver: id,
            stamp: stamp - 1,
        })
    }

    /// Writes a `Commit` or `Rewind` and applies it.
    fn append_position(&self, entry: &Entry<'_>) -> Result<(), JournalError> {
        let (id, stamp, rewind) = match *entry {
            Entry::Commit { receiver, stamp } => (receiver, stamp, false),
            Entry::Rewind { receiver, stamp } => (receiver, stamp, true),
            _ => return Ok(()),
        };
        let mut state = self.state.lock();
        let mut records = std::mem::take(&mut state.scratch);
        records.clear();
        frame::append_entry(&mut records, entry);
        // Written now, synced below with whatever else was written meanwhile.
        let written = state.append(&records, false, &self.tail);
        state.scratch = records;
        let io_error = |state: &State, source| JournalError::Io {
            path: self.dir.join(segments::file_name(state.position.segment)),
            source,
        };
        written.map_err(|source| io_error(&state, source))?;
        if let Some(known) = state.known.get_mut(&id) {
            known.commit = if rewind {
                stamp
            } else {
                known.commit.max(stamp)
            };
            known.expired = 0;
        }
        let mine = state.appends;
        drop(state);
        if self.synced_writes() {
            self.sync_through(mine)
                .map_err(|source| io_error(&self.state.lock(), source))?;
        }
        Ok(())
    }

    /// Whether this journal's writes are synced (`Batch`, `Always`).
    fn synced_writes(&self) -> bool {
        self.durability != Durability::None
    }

    /// Group commit for receivers' commits: makes sure append number `mine` is synced. One
    /// thread at a time syncs, everything appended so far; a thread that gets its turn after
    /// a sync that covered its append (another receiver's, or a batch of the dispatcher's,
    /// which syncs the whole file) returns at once. So commits that arrive together share
    /// one `fdatasync`, as sends do.
    fn sync_through(&self, mine: u64) -> io::Result<()> {
        let _turn = self.sync_turn.lock();
        let (file, target) = {
            let state = self.state.lock();
            if state.synced >= mine {
                return Ok(());
            }
            // Synced outside the state lock, so that the dispatcher's writes go on meanwhile.
            (state.file.try_clone()?, state.appends)
        };
        file.sync_data()?;
        self.commit_syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.state.lock();
        state.synced = state.synced.max(target);
        Ok(())
    }
}

impl State {
    /// Gives `name` (not known yet) the next named id, at position 0.
    fn add_name(&mut self, name: &str) -> JournalId {
        let id = self.next_id;
        self.next_id = id.saturating_add(1);
        self.by_name.insert(name.to_owned(), id);
        self.known.insert(
            id,
            Known {
                name: name.to_owned(),
                commit: 0,
                open: false,
                expired: 0,
            },
        );
        id
    }

    /// Appends whole records to the current segment; on error cuts it back to where it was.
    /// The cut is signalled to tails (see [`super::tail`]) before the lock is released, so
    /// before any later batch is delivered.
    /// With `sync`, everything written to this file so far is synced too.
    fn append(&mut self, records: &[u8], sync: bool, tail: &TailSignals) -> io::Result<()> {
        let written = self.file.write_all(records).and_then(|()| {
            if sync {
                self.file.sync_data()?;
            }
            Ok(())
        });
        match written {
            Ok(()) => {
                self.position.offset += records.len() as u64;
                self.appends += 1;
                if sync {
                    // Earlier segments were synced when they were left (`roll`).
                    self.synced = self.appends;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.position.offset);
                tail.cut();
                Err(e)
            }
        }
    }

    /// Starts the next segment, with a checkpoint of what is known now.
    fn roll(&mut self, dir: &Path, durability: Durability) -> io::Result<()> {
        if durability != Durability::None && self.synced < self.appends {
            // Commits written here and not synced yet: a later sync is of the next file.
            self.file.sync_data()?;
            self.synced = self.appends;
        }
        let index = self.position.segment + 1;
        let checkpoint = checkpoint(self.clock, &self.known);
        let (file, offset) =
            segments::create(dir, index, &checkpoint, durability != Durability::None)?;
        self.file = file;
        self.position = Position {
            segment: index,
            offset,
        };
        Ok(())
    }
}

/// The records a segment starts with: the clock, then every known receiver. A receiver's
/// position is restated as a `Rewind` (which sets it) rather than a `Commit` (which recovery
/// combines with earlier commits by taking the highest): after a rewind below an earlier
/// commit, a checkpoint must restore the rewound position even if the `Rewind` record itself
/// is lost (damage, or a reader that starts at this segment).
fn checkpoint(clock: u64, known: &BTreeMap<JournalId, Known>) -> Vec<u8> {
    let mut out = Vec::new();
    frame::append_entry(&mut out, &Entry::Tick { stamp: clock });
    for (&receiver, known) in known {
        frame::append_entry(
            &mut out,
            &Entry::Name {
                receiver,
                name: &known.name,
            },
        );
        frame::append_entry(
            &mut out,
            &Entry::Rewind {
                receiver,
                stamp: known.commit,
            },
        );
        if known.open {
            frame::append_entry(&mut out, &Entry::Open { receiver });
        }
        if known.expired > 0 {
            frame::append_entry(
                &mut out,
                &Entry::Expired {
                    receiver,
                    count: known.expired,
                },
            );
        }
    }
    out
}

mod names;
pub(crate) use names::TRANSIENT_IDS;
#[cfg(test)]
mod tests;
