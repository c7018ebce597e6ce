//! Spill to disk: a receiver that falls behind pages its backlog to disk instead of stalling
//! the dispatcher (and with it every other receiver).
//!
//! Enabled with [`Builder::spill_to`](crate::Builder::spill_to) and
//! [`Builder::build_spilling`](crate::Builder::build_spilling). The idea is hopper's (an
//! unbounded channel with bounded memory); the on-disk discipline is a spool's (bounded size,
//! checksummed records, attrition of the oldest segments, a status you can read while it runs).
//!
//! # A spilling inbox
//!
//! Each receiver's backlog is one sequence, in stamp order:
//!
//! ```text
//!   memory queue (≤ memory_capacity)  ++  disk records [read, committed)  ++  write buffer
//!   oldest ──────────────────────────────────────────────────────────────────────▶ newest
//! ```
//!
//! * The dispatcher appends to the **memory queue** only while the disk part and the write
//!   buffer are empty; otherwise (or when the queue is full) it appends to the **write
//!   buffer**, which becomes records in the current **segment file** with one `write` per
//!   batch. So every disk record is newer than everything in memory, and everything later put in
//!   memory is newer than every disk record.
//! * The receiver takes from the memory queue first; only when it is empty does it read the
//!   next disk record. The details (which loads come first, and why that is enough) are in
//!   [`queue`].
//! * Before the dispatcher publishes its clock it writes every pending buffer, so a watermark
//!   `c` a receiver reports is never ahead of a record stamped `<= c` that is still in a
//!   buffer: the read-clock-then-inbox argument of [`crate::inbox`] holds unchanged.
//!
//! Segments are deleted as soon as they are fully read; a receiver's directory goes when the
//! receiver and the dispatcher's writer for it are both gone; the dispatcher's directory lock
//! goes with the last handle. See [`dir`] for the layout.
//!
//! # Encoding
//!
//! Values are stored as their postcard encoding, in checksummed records (see [`record`]). Byte
//! payloads (`Vec<u8>`, `Box<[u8]>`, `String`, `Box<str>`) are recognised once per dispatcher by
//! `TypeId` and written and read as one length and one copy: the bytes postcard writes when
//! serde hands it a `Vec<u8>` one byte at a time. See [`codec`].
//!
//! # A failing disk
//!
//! A write that fails (`ENOSPC`, `EFBIG`, an I/O error, a deleted directory) is cut back to the
//! last whole record, counted in [`SpillStats::write_errors`], and retried at once in a fresh
//! segment, after creating the receiver's directory again if it is gone. If that fails too, the
//! disk is *failing*, which is not the same as full: the dispatcher never waits for it. See
//! [`failure`] for what senders, the receiver and status queries see meanwhile.
//!
//! # Crash behaviour
//!
//! This is a spill, not a log: nothing is `fsync`ed, and the backlog of a process that dies is
//! not recovered. The next dispatcher started on the same directory deletes the segment files
//! a previous run left (only files whose names are ours; anything else is left alone).
//!
//! # Not modelled by loom
//!
//! File I/O cannot run inside a loom model, so this module uses `std` atomics and
//! `parking_lot` directly rather than [`crate::sync`]; loom builds compile it but never run
//! it. Its concurrency is checked by the quickcheck properties and stress tests in
//! `tests/spill*.rs`.

pub(crate) mod codec;
pub(crate) mod dir;
pub(crate) mod failure;
pub(crate) mod queue;
pub(crate) mod reader;
pub(crate) mod record;
pub(crate) mod segment;
pub(crate) mod shared;
pub(crate) mod writer;

#[cfg(test)]
mod attrition_tests;
#[cfg(test)]
mod test_hooks;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub(crate) use codec::Codec;

/// What a spilling receiver does when its disk budget
/// ([`Builder::disk_limit`](crate::Builder::disk_limit)) is used up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiskFull {
    /// Sends to that receiver wait until its reader frees room (the default). Only senders
    /// targeting that receiver wait, and broadcasters; the dispatcher and every other pair go
    /// on at full speed. A forwarder waiting here holds back its stamps, so receivers of the
    /// same forwarding dispatcher wait for those stamps in their turn, as they would for any
    /// slow forwarder.
    #[default]
    Block,
    /// Delete whole segments, oldest first, until the new data fits (a spool's attrition).
    /// What was dropped is counted in [`SpillStats::dropped`]; the receiver's stamps jump
    /// over it.
    DropOldest,
    /// Refuse the send: it fails with
    /// [`SendErrorKind::DiskFull`](crate::SendErrorKind::DiskFull) and the value comes back.
    Reject,
}

/// A snapshot of one spilling receiver: kvspool's `kvsp-status`, as an API. Read it with
/// [`ClockedReceiver::spill_stats`](crate::ClockedReceiver::spill_stats) or, for every
/// receiver at once, [`Dispatcher::spill_status`](crate::Dispatcher::spill_status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// The receiver's name.
    pub receiver: String,
    /// Messages waiting in memory.
    pub in_memory: u64,
    /// Messages waiting on disk.
    pub on_disk: u64,
    /// Bytes of segment files on disk (headers and records not yet deleted included).
    pub disk_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Messages written to disk since the receiver was created.
    pub spilled: u64,
    /// Messages deleted unread by [`DiskFull::DropOldest`].
    pub dropped: u64,
    /// Messages lost to corrupt or unreadable records (see
    /// [`ClockedReceiver::recv_checked`](crate::ClockedReceiver::recv_checked)).
    pub corrupted: u64,
    /// Messages whose `Serialize` implementation failed, so they could not be spilled.
    pub unencodable: u64,
    /// Failed writes (each was retried; none lost data).
    pub write_errors: u64,
    /// Whether sends to this receiver are held back now ([`DiskFull::Block`] or
    /// [`DiskFull::Reject`] with the budget used up, or a failing disk).
    pub sends_held: bool,
    /// Whether writes to its disk are failing now (see [`FAILING_DISK_WAIT`](crate::FAILING_DISK_WAIT) and the module
    /// doc): messages wait in memory, senders get
    /// [`SendErrorKind::DiskFailed`](crate::SendErrorKind::DiskFailed).
    pub disk_failing: bool,
    /// The last write error, with the path it happened on; kept after the disk recovers.
    pub disk_error: Option<String>,
    /// Accepted messages lost because the disk was still failing when the receiver closed.
    pub lost: u64,
    /// The highest stamp the receiver has returned.
    pub last_stamp: usize,
}

/// What was wrong with spilled data that could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A record's checksum does not match its contents.
    Checksum,
    /// A record's length field is impossible.
    BadLength(u64),
    /// A record ends before its length says (a torn write).
    Truncated,
    /// A segment file does not start with this crate's header.
    BadHeader,
    /// A segment file was written by an unknown format version.
    UnknownVersion(u32),
    /// A record is intact but its stamp is out of order or out of range.
    BadStamp(u64),
    /// A record is intact but does not decode as the receiver's type.
    Decode,
    /// Reading the file failed.
    Io(io::ErrorKind),
    /// Journal only: the messages were deleted by retention before they were committed.
    Expired,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Checksum => f.write_str("checksum mismatch"),
            FaultKind::BadLength(len) => write!(f, "impossible record length {len}"),
            FaultKind::Truncated => f.write_str("record cut short"),
            FaultKind::BadHeader => f.write_str("not a clocked-dispatch segment"),
            FaultKind::UnknownVersion(v) => write!(f, "unknown segment format version {v}"),
            FaultKind::BadStamp(stamp) => write!(f, "record stamp {stamp} out of order"),
            FaultKind::Decode => f.write_str("record does not decode as the receiver's type"),
            FaultKind::Io(kind) => write!(f, "read failed: {kind}"),
            FaultKind::Expired => f.write_str("deleted by journal retention before it was read"),
        }
    }
}

/// Spilled messages a receiver could not deliver because their records were damaged.
///
/// A damaged record is never delivered as data. The receiver skips the rest of the segment it
/// was found in (after a damaged record the framing cannot be trusted), counts the messages in
/// [`SpillStats::corrupted`], and reports the loss once through
/// [`ClockedReceiver::recv_checked`](crate::ClockedReceiver::recv_checked); plain `recv`
/// skips it silently apart from that count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpillFault {
    /// What was wrong.
    pub kind: FaultKind,
    /// The segment file it was found in.
    pub segment: PathBuf,
    /// How many messages were lost with it.
    pub messages_lost: u64,
}

impl fmt::Display for SpillFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} message(s) lost in {}: {}",
            self.messages_lost,
            self.segment.display(),
            self.kind
        )
    }
}

impl std::error::Error for SpillFault {}

/// The spill settings of one dispatcher.
#[derive(Clone, Debug)]
pub(crate) struct SpillConfig {
    pub(crate) memory_capacity: usize,
    pub(crate) disk_limit: u64,
    pub(crate) when_full: DiskFull,
    pub(crate) segment_size: u64,
}
