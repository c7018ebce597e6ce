//! Reading a journal directory from outside: what the operator tool (`clockd journal ...`)
//! is built on.
//!
//! Everything here is read-only on the journal and takes no lock, so it works while a
//! dispatcher is running on the directory (or while none is):
//!
//! * the segments present when a call starts are read, oldest first; segments created after
//!   that are not (a later call sees them);
//! * each segment is read up to its length when it is opened, and only whole, checksummed
//!   records are returned: a record the dispatcher is writing at that moment shows up as the
//!   journal's *torn tail*, never as data;
//! * a segment deleted before it could be opened is skipped, not an error;
//! * damage is reported as a [`JournalGap`], never as data, and classified as recovery does
//!   (see `src/journal/recover.rs`): damage in the newest segment that no good record follows
//!   is the torn tail (a write in progress, or one cut by a crash; the next dispatcher to open
//!   the journal cuts it) unless it is plainly not a torn write (a length no record has with
//!   a whole record somewhere after it, or a read error); damage anywhere else is a gap (its
//!   records are lost). A torn tail whose [`JournalGap::kind`] is a checksum or decode fault
//!   starts with a whole damaged record: a crash can leave one, bit rot too.
//!
//! | call | what it does |
//! |------|--------------|
//! | [`records`] | every record in journal order, with its segment and offset |
//! | [`status`] | the clock, the segments, and each receiver name's commit and backlog |
//! | [`verify`] | checks every record's checksum and lists the damage |
//! | [`snapshot`] | a consistent copy of the journal that opens as a journal |
//! | [`segments`] | the segment files, oldest first, with their lengths |
//!
//! ```
//! use clocked_dispatch::journal::inspect::{self, Item, RecordKind};
//! use clocked_dispatch::Builder;
//!
//! let dir = tempfile::tempdir()?;
//! let d = Builder::new().journal(dir.path()).build_journaled::<String>()?;
//! let (tx, rx) = d.new("tx", "orders");
//! tx.send("first".to_string()).unwrap();
//! tx.send("second".to_string()).unwrap();
//! let (_, stamp) = rx.recv()?; // "first", stamp 1
//! rx.commit(stamp)?;
//! tx.flush()?; // "second" is in the journal too
//!
//! // While the dispatcher runs:
//! let status = inspect::status(dir.path())?;
//! assert_eq!(status.clock, 2);
//! assert_eq!(status.receivers[0].name, "orders");
//! assert_eq!(status.receivers[0].backlog, 1);
//!
//! let mut stamps = Vec::new();
//! for item in inspect::records(dir.path())? {
//!     if let Item::Record(record) = item {
//!         if let RecordKind::Data { stamp, .. } = record.kind {
//!             stamps.push(stamp);
//!         }
//!     }
//! }
//! assert_eq!(stamps, [1, 2]);
//! assert!(inspect::verify(dir.path())?.is_clean());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{Entry, JournalId};
use super::JournalGap;
use crate::error::JournalError;
use walk::{owned, to_usize, Event, Tracker, Walker};

mod snapshot;
mod walk;

pub use snapshot::{snapshot, snapshot_with, SnapshotReport};

#[cfg(test)]
mod tests;

/// One record of the journal, as [`records`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The segment file it is in.
    pub segment: Arc<Path>,
    /// The segment's index (the number in its file name).
    pub segment_index: u64,
    /// Where the record starts, in bytes from the start of the segment file.
    pub offset: u64,
    /// Its length on disk, header included.
    pub len: u64,
    /// What it says.
    pub kind: RecordKind,
}

impl Record {
    /// The stamp of a message or tick; `None` for the other kinds.
    pub fn stamp(&self) -> Option<usize> {
        match self.kind {
            RecordKind::Data { stamp, .. }
            | RecordKind::Broadcast { stamp, .. }
            | RecordKind::Multicast { stamp, .. }
            | RecordKind::Tick { stamp } => Some(stamp),
            _ => None,
        }
    }

    /// The payload of a message (`Data`, `Broadcast` or `Multicast`): the value's postcard
    /// encoding.
    pub fn payload(&self) -> Option<&[u8]> {
        match &self.kind {
            RecordKind::Data { payload, .. }
            | RecordKind::Broadcast { payload, .. }
            | RecordKind::Multicast { payload, .. } => Some(payload),
            _ => None,
        }
    }
}

/// The kinds of journal record and their fields (the format is described in
/// `src/journal/frame.rs`). Receivers are named by their journal id, stable for a name across
/// restarts; `Name` records say which name an id has ([`Records::name_of`] keeps track).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A message for one receiver.
    Data {
        /// Its stamp.
        stamp: usize,
        /// The receiver's journal id.
        receiver: u32,
        /// The value's postcard encoding.
        payload: Vec<u8>,
    },
    /// A message for every receiver open when it was sent.
    Broadcast {
        /// Its stamp.
        stamp: usize,
        /// The value's postcard encoding.
        payload: Vec<u8>,
    },
    /// Every stamp up to `stamp` is accounted for (a stamp that carried no message, or the
    /// clock at the start of a segment).
    Tick {
        /// The stamp.
        stamp: usize,
    },
    /// Journal id `receiver` is the receiver named `name`.
    Name {
        /// The journal id.
        receiver: u32,
        /// Its name.
        name: String,
    },
    /// The receiver is open from here on: broadcasts are its too.
    Open {
        /// The journal id.
        receiver: u32,
    },
    /// The receiver is closed from here on.
    Closed {
        /// The journal id.
        receiver: u32,
    },
    /// The receiver has processed everything up to `stamp`. Commits only move a receiver's
    /// position forward: the highest wins.
    Commit {
        /// The journal id.
        receiver: u32,
        /// The stamp committed.
        stamp: usize,
    },
    /// The receiver's position is set to `stamp` (lower or not): it replays what follows. Every
    /// segment's checkpoint restates each receiver's position this way.
    Rewind {
        /// The journal id.
        receiver: u32,
        /// The new position: the next incarnation replays from `stamp + 1`.
        stamp: usize,
    },
    /// Retention deleted messages of the receiver above its position: `count` in all since
    /// its last commit or rewind.
    Expired {
        /// The journal id.
        receiver: u32,
        /// The running count.
        count: u64,
    },
    /// One message for each of several receivers (a multicast), its payload stored once.
    Multicast {
        /// Its stamp.
        stamp: usize,
        /// The receivers' journal ids.
        receivers: Vec<u32>,
        /// The value's postcard encoding.
        payload: Vec<u8>,
    },
}

/// One step of [`records`]: a record, or a damaged place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole record whose checksum matched.
    Record(Record),
    /// Damage with good records after it (or in an older segment, or at the newest segment's
    /// end when it is not a torn write): its records are lost and reading goes on after it.
    Gap(JournalGap),
    /// The end of the newest segment after its last good record: a write in progress, or one
    /// torn by a crash (the next dispatcher to open the journal cuts it off). Never
    /// acknowledged to a sender as stored.
    TornTail(JournalGap),
}

/// How far a long call has got: passed to the `on_progress` of [`verify_with`] and
/// [`snapshot_with`], and returned by [`Records::progress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Segments finished.
    pub segments_done: u64,
    /// Segments to read (listed when the call started).
    pub segments_total: u64,
    /// Bytes of the finished segments.
    pub bytes_done: u64,
    /// Bytes of all the segments when they were listed (the newest may grow meanwhile).
    pub bytes_total: u64,
}

/// The records of the journal at `dir`, in journal order (oldest segment first), with the
/// damaged places between them. See the [module docs](self) for what is read while a
/// dispatcher is running.
///
/// # Errors
///
/// [`JournalError::Io`] if the directory cannot be listed (it does not exist, say). Damage in
/// the files is returned as [`Item::Gap`] or [`Item::TornTail`], not as an error.
///
/// # Examples
///
/// Names of the receivers a message was for:
///
/// ```
/// use clocked_dispatch::journal::inspect::{self, Item, RecordKind};
/// use clocked_dispatch::Builder;
///
/// let dir = tempfile::tempdir()?;
/// let d = Builder::new().journal(dir.path()).build_journaled::<Vec<u8>>()?;
/// let (tx, _rx) = d.new("tx", "images");
/// tx.send(vec![0xff, 0xd8]).unwrap();
/// tx.flush()?;
///
/// let mut records = inspect::records(dir.path())?;
/// let mut seen = Vec::new();
/// while let Some(item) = records.next() {
///     if let Item::Record(record) = item {
///         if let RecordKind::Data { stamp, receiver, payload } = &record.kind {
///             let name = records.name_of(*receiver).unwrap().to_owned();
///             seen.push((*stamp, name, payload.clone()));
///         }
///     }
/// }
/// // postcard encodes a `Vec<u8>` as its length, then its bytes.
/// assert_eq!(seen, [(1, "images".to_string(), vec![2, 0xff, 0xd8])]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn records(dir: impl AsRef<Path>) -> Result<Records, JournalError> {
    Ok(Records {
        walker: Walker::list(dir.as_ref())?,
        ready: VecDeque::new(),
        tracker: Tracker::default(),
    })
}

/// The iterator [`records`] returns. It also keeps track of the receivers' names and of who
/// is open, as of the last record it read.
pub struct Records {
    walker: Walker,
    ready: VecDeque<Item>,
    tracker: Tracker,
}

impl Records {
    /// The name of journal receiver id `receiver`, from the `Name` records read so far (every
    /// segment starts with the names of all receivers it knows).
    pub fn name_of(&self, receiver: u32) -> Option<&str> {
        self.tracker.names.get(&receiver).map(String::as_str)
    }

    /// The journal id of the receiver named `name`, from the `Name` records read so far.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.tracker
            .names
            .iter()
            .find(|(_, known)| known.as_str() == name)
            .map(|(&id, _)| id)
    }

    /// Whether receiver `receiver` was open (so that a broadcast was also for it) as of the
    /// last record read: what [`status`] counts a broadcast against.
    pub fn is_open(&self, receiver: u32) -> bool {
        self.tracker.open.contains(&receiver)
    }

    /// How far the reading has got.
    pub fn progress(&self) -> Progress {
        self.walker.progress
    }
}

impl Iterator for Records {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while self.ready.is_empty() {
            let Records {
                walker,
                ready,
                tracker,
            } = self;
            let more = walker.step(&mut |event| match event {
                Event::Segment => tracker.new_segment(),
                Event::Record {
                    path,
                    index,
                    offset,
                    len,
                    entry,
                } => {
                    tracker.apply(&entry);
                    ready.push_back(Item::Record(Record {
                        segment: Arc::clone(path),
                        segment_index: index,
                        offset,
                        len,
                        kind: owned(&entry),
                    }));
                }
                Event::Gap(gap) => ready.push_back(Item::Gap(gap)),
                Event::TornTail(gap) => ready.push_back(Item::TornTail(gap)),
                Event::SegmentDone { .. } => {}
            });
            if !more {
                break;
            }
        }
        self.ready.pop_front()
    }
}

/// A segment file, as [`segments`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its index: the number in its name, which orders the segments.
    pub index: u64,
    /// Its path.
    pub path: PathBuf,
    /// Its length in bytes when listed (the newest grows while a dispatcher runs).
    pub len: u64,
}

/// The segment files of the journal at `dir`, oldest first. An empty list if the directory
/// holds none (other files are ignored).
///
/// # Errors
///
/// [`JournalError::Io`] if the directory cannot be listed (it does not exist, say).
///
/// # Examples
///
/// ```
/// use clocked_dispatch::journal::inspect;
///
/// let dir = tempfile::tempdir()?;
/// assert!(inspect::segments(dir.path())?.is_empty());
/// let d = clocked_dispatch::Builder::new()
///     .journal(dir.path())
///     .build_journaled::<u64>()?;
/// let listed = inspect::segments(dir.path())?;
/// assert_eq!(listed.len(), 1);
/// assert!(listed[0].path.ends_with("journal-00000000000000000000.cdj"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn segments(dir: impl AsRef<Path>) -> Result<Vec<SegmentFile>, JournalError> {
    let dir = dir.as_ref();
    let listed = super::segments::list(dir).map_err(|source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(listed
        .into_iter()
        .filter_map(|(index, path)| {
            // One deleted since it was listed is not there.
            let len = std::fs::metadata(&path).ok()?.len();
            Some(SegmentFile { index, path, len })
        })
        .collect())
}

/// What [`status`] found: the journal as a whole, and each receiver name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalStatus {
    /// The highest stamp the journal holds (of a message or a tick): a dispatcher opening it
    /// now would start above it.
    pub clock: usize,
    /// The lowest stamp a rewind can go back to (older segments are gone): one above the clock
    /// in the oldest segment's checkpoint, as [`JournalError::RewindTooOld`] reports it.
    pub oldest: usize,
    /// The lowest stamp of a message held, if any.
    pub first_message: Option<usize>,
    /// Segment files read.
    pub segments: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// Messages held (each broadcast and each multicast once; per receiver in `receivers`
    /// and `unnamed_messages`).
    pub messages: u64,
    /// Messages for receiver ids the journal has no name for: transient receivers' (see
    /// [`Dispatcher::try_new_transient`](crate::Dispatcher::try_new_transient)), or after damage.
    pub unnamed_messages: u64,
    /// Damaged places found (their records are not counted anywhere).
    pub gaps: u64,
    /// Bytes after the newest segment's last good record (see [`Item::TornTail`]).
    pub torn_tail_bytes: u64,
    /// Every receiver name the journal knows, by name.
    pub receivers: Vec<NameStatus>,
}

/// One receiver name in a [`JournalStatus`]: how far it has committed, and what a receiver
/// created under that name now would replay. "Its messages" are the `Data` records for its
/// journal id, the `Multicast` records that list it and the broadcasts made while it was
/// open, that the journal still holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameStatus {
    /// The receiver name.
    pub name: String,
    /// Its journal id.
    pub id: u32,
    /// Its position: everything up to this stamp is processed (0: nothing committed). The
    /// last `Commit` or `Rewind` decides, as in recovery.
    pub committed: usize,
    /// Its messages held.
    pub messages: u64,
    /// Its messages stamped at or below `committed`.
    pub consumed: u64,
    /// Its messages stamped above `committed`: what its next receiver replays. Messages that
    /// retention deleted are not held, so never counted here: see `expired`.
    pub backlog: u64,
    /// Its messages above `committed` that retention deleted before they were committed (the
    /// running count of its last `Expired` record since its last commit or rewind), as its
    /// next receiver's replay reports them (one [`FaultKind::Expired`](crate::FaultKind)
    /// fault before the backlog): 0 if nothing above `committed` is gone (every stamp above
    /// it is still held, `committed + 1 >= oldest`), as the replay then reports nothing.
    pub expired: u64,
    /// The bytes on disk of the backlog's records (a broadcast or a multicast counts for each
    /// of its receivers).
    pub backlog_bytes: u64,
    /// The lowest stamp of its messages held.
    pub oldest: Option<usize>,
    /// The highest stamp of its messages held.
    pub newest: Option<usize>,
}

impl NameStatus {
    /// `consumed` as a percentage of `messages`; 100 if it has none.
    pub fn percent_consumed(&self) -> f64 {
        if self.messages == 0 {
            100.0
        } else {
            self.consumed as f64 * 100.0 / self.messages as f64
        }
    }
}

/// The state of the journal at `dir`, like kvspool's `kvsp-status`: the clock, the segments,
/// and for each receiver name its committed stamp and backlog. Works while a dispatcher runs.
///
/// The journal is read twice (first for each name's final position, then to count its
/// messages against it), both times up to the same place.
///
/// # Errors
///
/// [`JournalError::Io`] if the directory cannot be listed. Damage is counted in
/// [`JournalStatus::gaps`] and [`JournalStatus::torn_tail_bytes`].
///
/// # Examples
///
/// ```
/// use clocked_dispatch::journal::inspect;
/// use clocked_dispatch::Builder;
///
/// let dir = tempfile::tempdir()?;
/// let d = Builder::new()
///     .bound(16)
///     .inbox_capacity(64)
///     .journal(dir.path())
///     .build_journaled::<u64>()?;
/// let (tx, rx) = d.new("tx", "rx");
/// tx.send_all(0..10).unwrap();
/// for _ in 0..4 {
///     let (_, stamp) = rx.recv()?;
///     rx.commit(stamp)?; // stamps 1 to 4 are processed
/// }
/// tx.flush()?;
/// let status = inspect::status(dir.path())?;
/// let rx_status = &status.receivers[0];
/// assert_eq!((rx_status.committed, rx_status.messages), (4, 10));
/// assert_eq!((rx_status.consumed, rx_status.backlog), (4, 6));
/// assert_eq!(rx_status.percent_consumed(), 40.0);
/// assert_eq!((rx_status.oldest, rx_status.newest), (Some(1), Some(10)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn status(dir: impl AsRef<Path>) -> Result<JournalStatus, JournalError> {
    let dir = dir.as_ref();
    // First pass: the clock, the names and their final positions, and where each segment
    // ended, so that the second pass reads exactly the same records.
    let mut walker = Walker::list(dir)?;
    let mut tracker = Tracker::default();
    let mut status = JournalStatus {
        clock: 0,
        oldest: 0,
        first_message: None,
        segments: 0,
        bytes: 0,
        messages: 0,
        unnamed_messages: 0,
        gaps: 0,
        torn_tail_bytes: 0,
        receivers: Vec::new(),
    };
    let mut oldest_checkpoint = None;
    let mut read = Vec::new();
    while walker.step(&mut |event| match event {
        Event::Segment => {}
        Event::Record { entry, .. } => {
            if let Some(stamp) = entry.stamp() {
                status.clock = status.clock.max(to_usize(stamp));
                match entry {
                    Entry::Tick { .. } => {
                        oldest_checkpoint.get_or_insert(stamp);
                    }
                    _ => {
                        status.messages += 1;
                        status.first_message.get_or_insert(to_usize(stamp));
                    }
                }
            }
            tracker.apply(&entry);
        }
        Event::Gap(_) => status.gaps += 1,
        Event::TornTail(gap) => status.torn_tail_bytes += gap.bytes,
        Event::SegmentDone {
            index, path, len, ..
        } => {
            status.segments += 1;
            status.bytes += len;
            read.push((index, path.to_path_buf(), len));
        }
    }) {}
    status.oldest = to_usize(oldest_checkpoint.unwrap_or(status.clock as u64)).saturating_add(1);

    // Second pass: each name's messages, against its final position.
    let mut counts: BTreeMap<JournalId, NameStatus> = tracker
        .names
        .iter()
        .map(|(&id, name)| {
            let committed = to_usize(tracker.positions.get(&id).copied().unwrap_or(0));
            // As the replay reports it: only if something above the position is gone.
            let gone = committed.saturating_add(1) < status.oldest;
            let expired = tracker.expired.get(&id).copied().filter(|_| gone);
            let counts = NameStatus {
                name: name.clone(),
                id,
                committed,
                messages: 0,
                consumed: 0,
                backlog: 0,
                expired: expired.unwrap_or(0),
                backlog_bytes: 0,
                oldest: None,
                newest: None,
            };
            (id, counts)
        })
        .collect();
    let mut walker = Walker::fixed(read, walker.newest);
    let mut open = Tracker::default();
    let mut count = |counts: &mut BTreeMap<JournalId, NameStatus>, id, stamp, len| {
        let Some(name) = counts.get_mut(&id) else {
            status.unnamed_messages += 1;
            return;
        };
        let stamp = to_usize(stamp);
        name.messages += 1;
        if stamp <= name.committed {
            name.consumed += 1;
        } else {
            name.backlog += 1;
            name.backlog_bytes += len;
        }
        name.oldest.get_or_insert(stamp);
        name.newest = Some(stamp);
    };
    while walker.step(&mut |event| match event {
        Event::Segment => open.new_segment(),
        Event::Record { entry, len, .. } => match entry {
            Entry::Data {
                stamp, receiver, ..
            } => count(&mut counts, receiver, stamp, len),
            Entry::Multicast {
                stamp, receivers, ..
            } => {
                for receiver in receivers.iter() {
                    count(&mut counts, receiver, stamp, len);
                }
            }
            Entry::Broadcast { stamp, .. } => {
                for &receiver in &open.open {
                    count(&mut counts, receiver, stamp, len);
                }
            }
            _ => open.apply(&entry),
        },
        _ => {}
    }) {}
    status.receivers = counts.into_values().collect();
    status.receivers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(status)
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: u64,
    /// Bytes read (the segments' lengths when opened).
    pub bytes: u64,
    /// Whole records whose checksum matched.
    pub records: u64,
    /// Of them, messages (each broadcast and each multicast once).
    pub messages: u64,
    /// Damage other than the torn tail, in journal order: the records in it are lost.
    pub gaps: Vec<JournalGap>,
    /// The newest segment's end after its last good record (see [`Item::TornTail`]): a write
    /// in progress, or torn by a crash. Not damage: nothing in it was acknowledged as stored.
    pub torn_tail: Option<JournalGap>,
}

impl VerifyReport {
    /// No damage found (a torn tail is not damage).
    pub fn is_clean(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// Reads every record of the journal at `dir` and checks its checksum (and that its contents
/// parse). Works while a dispatcher runs.
///
/// # Errors
///
/// [`JournalError::Io`] if the directory cannot be listed; damage is in the report.
///
/// # Examples
///
/// ```
/// use clocked_dispatch::journal::inspect;
/// use clocked_dispatch::{Builder, FaultKind};
///
/// let dir = tempfile::tempdir()?;
/// {
///     let d = Builder::new().journal(dir.path()).build_journaled::<u64>()?;
///     let (tx, _rx) = d.new("tx", "rx");
///     tx.send_all(0..3).unwrap();
///     tx.flush()?;
/// }
/// assert!(inspect::verify(dir.path())?.is_clean());
///
/// // Flip a bit of the first message's payload: the segment's first record after its
/// // checkpoint (magic 8, tick 17, name 15, plus the `Data` header 8 + 13).
/// let segment = dir.path().join("journal-00000000000000000000.cdj");
/// let mut bytes = std::fs::read(&segment)?;
/// bytes[8 + 17 + 15 + 13 + 8 + 13] ^= 1;
/// std::fs::write(&segment, &bytes)?;
///
/// let report = inspect::verify(dir.path())?;
/// assert!(!report.is_clean());
/// assert_eq!(report.gaps[0].kind, FaultKind::Checksum);
/// assert_eq!(report.messages, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, JournalError> {
    verify_with(dir, |_| {})
}

/// [`verify`], calling `on_progress` after each segment.
///
/// # Errors
///
/// As [`verify`].
pub fn verify_with(
    dir: impl AsRef<Path>,
    mut on_progress: impl FnMut(Progress),
) -> Result<VerifyReport, JournalError> {
    let mut walker = Walker::list(dir.as_ref())?;
    let mut report = VerifyReport::default();
    let mut done = false;
    while walker.step(&mut |event| match event {
        Event::Segment => {}
        Event::Record { entry, .. } => {
            report.records += 1;
            if entry.stamp().is_some() && !matches!(entry, Entry::Tick { .. }) {
                report.messages += 1;
            }
        }
        Event::Gap(gap) => report.gaps.push(gap),
        Event::TornTail(gap) => report.torn_tail = Some(gap),
        Event::SegmentDone { len, .. } => {
            report.segments += 1;
            report.bytes += len;
            done = true;
        }
    }) {
        if std::mem::take(&mut done) {
            on_progress(walker.progress);
        }
    }
    Ok(report)
}
