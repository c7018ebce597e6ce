//! The state one receiver's [`SpillWriter`](super::writer::SpillWriter) and
//! [`SpillReader`](super::reader::SpillReader) share, and the accounting status queries read.
//! The protocol between them is in [`super::queue`].

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::SendErrorKind;
use crate::spill::dir::{ReceiverStatus, SpillRoot};
use crate::spill::failure::{Failure, FAILING_DISK_WAIT};
use crate::spill::segment;
use crate::spill::{DiskFull, SpillStats};
use crate::status::Gauges;

/// What the writer knows about one segment file.
pub(super) struct SegmentMeta {
    pub(super) id: u64,
    /// Index of its first record.
    pub(super) first: u64,
    /// Index after its last record, once sealed.
    pub(super) end: Option<u64>,
    /// File size, once sealed (until then counted in `disk_bytes` as it grows).
    pub(super) bytes: u64,
}

/// State shared by one receiver's writer and reader, and read by status queries.
pub(crate) struct SpillShared {
    pub(super) root: Arc<SpillRoot>,
    pub(super) dir: PathBuf,
    pub(super) committed: AtomicU64,
    pub(super) read: AtomicU64,
    pub(super) segments: Mutex<VecDeque<SegmentMeta>>,
    pub(super) seals: AtomicU64,
    pub(super) seal_requested: AtomicBool,
    pub(super) disk_bytes: AtomicU64,
    pub(super) receiver_alive: AtomicBool,
    /// Whether sends to this receiver are held back; see [`SpillShared::admit`].
    pub(super) held: AtomicBool,
    pub(super) gate: Mutex<()>,
    pub(super) gate_changed: Condvar,
    pub(super) spilled: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) corrupted: AtomicU64,
    pub(super) unencodable: AtomicU64,
    pub(super) write_errors: AtomicU64,
    /// The inbox's gauges: its name, what sits in memory, the last stamp returned.
    pub(super) gauges: Arc<Gauges>,
    pub(super) lost: AtomicU64,
    /// Whether writes are failing, and what the reader may report meanwhile.
    pub(crate) failure: Failure,
}

impl SpillShared {
    /// The state of a new receiver's spill in `dir`, registered for status queries.
    pub(super) fn new(root: &Arc<SpillRoot>, dir: PathBuf, gauges: Arc<Gauges>) -> Arc<Self> {
        let shared = Arc::new(SpillShared {
            root: root.clone(),
            dir,
            committed: AtomicU64::new(0),
            read: AtomicU64::new(0),
            segments: Mutex::new(VecDeque::new()),
            seals: AtomicU64::new(0),
            seal_requested: AtomicBool::new(false),
            disk_bytes: AtomicU64::new(0),
            receiver_alive: AtomicBool::new(true),
            held: AtomicBool::new(false),
            gate: Mutex::new(()),
            gate_changed: Condvar::new(),
            spilled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            corrupted: AtomicU64::new(0),
            unencodable: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            gauges,
            lost: AtomicU64::new(0),
            failure: Failure::new(),
        });
        root.register(shared.clone());
        shared
    }
    pub(super) fn limit(&self) -> u64 {
        self.root.config.disk_limit
    }

    /// The sender-side gate: `Ok` at once unless sends are held; then, under
    /// [`DiskFull::Reject`], `Err(limit)`; otherwise waits until the reader frees room or goes.
    ///
    /// A failing disk (see [`crate::spill::failure`]) fails the send with `DiskFailed`: at
    /// once under `Reject`, after at most [`FAILING_DISK_WAIT`] under `Block`.
    pub(crate) fn admit(&self) -> Result<(), SendErrorKind> {
        if !self.held.load(Ordering::Acquire) {
            return Ok(());
        }
        let reject = self.root.config.when_full == DiskFull::Reject;
        if reject || self.failure.failing() {
            if let Some(kind) = self.failure.failing_kind() {
                if reject {
                    return Err(SendErrorKind::DiskFailed { kind });
                }
                return self.wait_for_recovery();
            }
            if reject {
                return Err(SendErrorKind::DiskFull {
                    limit: self.limit(),
                });
            }
        }
        let mut guard = self.gate.lock();
        while self.held.load(Ordering::Acquire) && self.receiver_alive.load(Ordering::Acquire) {
            if self.failure.failing() {
                drop(guard);
                return self.wait_for_recovery();
            }
            // The timeout only guards against a missed notification; releases notify.
            self.gate_changed
                .wait_for(&mut guard, Duration::from_millis(50));
        }
        Ok(())
    }

    /// The gate without waiting: `Ok` unless sends are held; then `DiskFailed` for a failing
    /// disk, `DiskFull` for a full one, whatever the policy (for tasks, which must not block).
    #[cfg(feature = "async")]
    pub(crate) fn try_admit(&self) -> Result<(), SendErrorKind> {
        if !self.held.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.failure.failing_kind() {
            Some(kind) => Err(SendErrorKind::DiskFailed { kind }),
            None => Err(SendErrorKind::DiskFull {
                limit: self.limit(),
            }),
        }
    }

    /// Waits at most [`FAILING_DISK_WAIT`] for a failing disk to work again.
    fn wait_for_recovery(&self) -> Result<(), SendErrorKind> {
        let deadline = std::time::Instant::now() + FAILING_DISK_WAIT;
        let mut guard = self.gate.lock();
        while self.failure.failing() && self.receiver_alive.load(Ordering::Acquire) {
            if self
                .gate_changed
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                break;
            }
        }
        match self.failure.failing_kind() {
            Some(kind) if self.receiver_alive.load(Ordering::Acquire) => {
                Err(SendErrorKind::DiskFailed { kind })
            }
            _ => Ok(()),
        }
    }

    /// Holds back sends to this receiver.
    pub(super) fn hold(&self) {
        let _guard = self.gate.lock();
        // A receiver that is gone is never held: its reader's drop released the gate (under
        // this lock) after marking it gone, and nothing may hold it again, or broadcasters
        // would wait for a reader that will never free room.
        if !self.receiver_alive.load(Ordering::Acquire) {
            return;
        }
        if !self.held.swap(true, Ordering::AcqRel) {
            self.root.held_receivers.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Lets sends through again and wakes waiting senders.
    pub(super) fn release(&self) {
        let _guard = self.gate.lock();
        if self.held.swap(false, Ordering::AcqRel) {
            self.root.held_receivers.fetch_sub(1, Ordering::AcqRel);
        }
        self.gate_changed.notify_all();
    }

    /// Releases the hold if the disk is back under its limit.
    pub(super) fn release_if_room(&self) {
        // A failing disk stays held whatever room the reader frees.
        if self.held.load(Ordering::Acquire)
            && !self.failure.failing()
            && self.disk_bytes.load(Ordering::Acquire) < self.limit()
        {
            self.release();
        }
    }

    /// Deletes every sealed segment, oldest first, whose records all lie below `read` (taken
    /// or dropped). Both ends call it: the reader when it leaves a segment, the writer when it
    /// seals one the reader had already finished.
    pub(super) fn delete_read_through(&self, segments: &mut VecDeque<SegmentMeta>, read: u64) {
        while segments
            .front()
            .is_some_and(|front| front.end.is_some_and(|end| end <= read))
        {
            if let Some(done) = segments.pop_front() {
                self.delete(&done);
            }
        }
    }

    /// Deletes a sealed segment's file and forgets its bytes.
    pub(super) fn delete(&self, meta: &SegmentMeta) {
        let _ = fs::remove_file(self.dir.join(segment::file_name(meta.id)));
        self.disk_bytes.fetch_sub(meta.bytes, Ordering::AcqRel);
    }

    /// A snapshot for status queries.
    pub(crate) fn stats(&self) -> SpillStats {
        let read = self.read.load(Ordering::Acquire);
        let committed = self.committed.load(Ordering::Acquire);
        SpillStats {
            receiver: self.gauges.name.clone(),
            in_memory: self.gauges.in_memory(),
            on_disk: committed.saturating_sub(read),
            disk_bytes: self.disk_bytes.load(Ordering::Acquire),
            segments: self.segments.lock().len() as u64,
            spilled: self.spilled.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            corrupted: self.corrupted.load(Ordering::Relaxed),
            unencodable: self.unencodable.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            sends_held: self.held.load(Ordering::Acquire),
            disk_failing: self.failure.failing(),
            disk_error: self.failure.last_error().map(|(_, text)| text),
            lost: self.lost.load(Ordering::Relaxed),
            last_stamp: self.gauges.last_stamp(),
        }
    }

    /// Without a lock: messages and bytes on disk, dropped and corrupted counts.
    pub(crate) fn gauges(&self) -> (u64, u64, u64, u64) {
        let read = self.read.load(Ordering::Acquire);
        let committed = self.committed.load(Ordering::Acquire);
        (
            committed.saturating_sub(read),
            self.disk_bytes.load(Ordering::Acquire),
            self.dropped.load(Ordering::Relaxed),
            self.corrupted.load(Ordering::Relaxed),
        )
    }

    /// Whether the receiver still exists.
    pub(crate) fn receiver_alive(&self) -> bool {
        self.receiver_alive.load(Ordering::Acquire)
    }
}

impl Drop for SpillShared {
    fn drop(&mut self) {
        if self.held.load(Ordering::Acquire) {
            self.root.held_receivers.fetch_sub(1, Ordering::AcqRel);
        }
        if self.failure.recovered() {
            self.root.failing_receivers.fetch_sub(1, Ordering::AcqRel);
        }
        // Writer and reader are both gone: nobody will read what is left.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl ReceiverStatus for SpillShared {
    fn alive(&self) -> bool {
        self.receiver_alive()
    }

    fn status(&self) -> SpillStats {
        self.stats()
    }

    fn failing_kind(&self) -> Option<std::io::ErrorKind> {
        self.failure.failing_kind()
    }
}
