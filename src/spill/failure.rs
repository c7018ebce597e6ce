//! A failing disk, as one receiver's writer, reader and senders see it.
//!
//! # Full is not failing
//!
//! A spill that reaches its disk budget is *full*: a condition the reader ends by reading, and
//! [`DiskFull`](crate::DiskFull) says what senders do meanwhile. A write that the kernel
//! refuses (the directory deleted by a `/tmp` cleaner, a file system gone read-only, `ENOSPC`
//! from a full device, `EFBIG`) is a *failing* disk, which may never come back. It must not
//! stop the dispatcher, so it is handled differently:
//!
//! * The writer first repairs what it can and retries at once: a fresh segment (a file that
//!   outgrew a size limit), the receiver's directory created again (a directory deleted under
//!   it).
//! * If that write fails too, the records stay in the write buffer, in order, and the
//!   dispatcher goes on with every other receiver. The writer tries again at later batches,
//!   pausing 1 ms, doubling up to [`MAX_RETRY_PAUSE`], never sleeping on the dispatcher thread.
//! * The reader must not report a watermark past a record still in that buffer (it will be
//!   delivered later). So the writer publishes, *before* the clock moves past it, the stamp of
//!   the oldest unwritten record in `hold_below`; the reader caps what it reports at
//!   `hold_below - 1`. It loads `hold_below` after the clock and before `committed`; the writer
//!   stores `committed` before it lowers or clears `hold_below`, so a reader that sees the cap
//!   lifted also sees the records that were under it.
//! * Senders to the receiver are told at once with
//!   [`SendErrorKind::DiskFailed`](crate::SendErrorKind::DiskFailed) under
//!   [`DiskFull::Reject`](crate::DiskFull::Reject), and after waiting at most
//!   [`FAILING_DISK_WAIT`] under `Block`. Broadcasts are gated the same way. What was accepted
//!   stays queued and is delivered if the disk recovers.
//! * The receiver learns it through [`recv_checked`](crate::ClockedReceiver::recv_checked): a
//!   [`SpillFault`] with [`FaultKind::Io`] when the failure starts (`messages_lost` 0: nothing
//!   is lost yet), and another with the count if the receiver closes before the disk recovers
//!   (the records still buffered are then lost, and counted in
//!   [`SpillStats::lost`](crate::SpillStats::lost)). Status queries show the error
//!   ([`SpillStats::disk_error`](crate::SpillStats::disk_error)).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::spill::{FaultKind, SpillFault};

/// The longest pause between two attempts to write to a failing disk.
pub(crate) const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long a sender under [`DiskFull::Block`](crate::DiskFull::Block) waits for a failing disk
/// to recover before it gets [`SendErrorKind::DiskFailed`](crate::SendErrorKind::DiskFailed).
pub const FAILING_DISK_WAIT: Duration = Duration::from_secs(1);

/// The failure state of one receiver's spill, shared by its writer, reader and senders.
pub(crate) struct Failure {
    /// 0, or the stamp of the oldest record the writer could not write yet.
    hold_below: AtomicUsize,
    /// Whether writes are failing now.
    failing: AtomicBool,
    /// The last write error, kept after recovery for status queries.
    last_error: Mutex<Option<(io::ErrorKind, String)>>,
    /// Faults for the reader to report, oldest first.
    notices: Mutex<VecDeque<SpillFault>>,
    has_notices: AtomicBool,
}

impl Failure {
    pub(crate) fn new() -> Self {
        Failure {
            hold_below: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(None),
            notices: Mutex::new(VecDeque::new()),
            has_notices: AtomicBool::new(false),
        }
    }

    /// The highest stamp the reader may report as a watermark, if capped. Load after the
    /// clock, before `committed`.
    pub(crate) fn cap(&self) -> Option<usize> {
        match self.hold_below.load(Ordering::Acquire) {
            0 => None,
            stamp => Some(stamp - 1),
        }
    }

    /// Writer: records from `oldest` on are not on disk (or `None`: everything is). Called
    /// after `committed` was stored, before the clock is published.
    pub(crate) fn set_unwritten(&self, oldest: Option<usize>) {
        self.hold_below
            .store(oldest.unwrap_or(0), Ordering::Release);
    }

    /// Whether writes are failing now.
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The error that makes writes fail now.
    pub(crate) fn failing_kind(&self) -> Option<io::ErrorKind> {
        if !self.failing() {
            return None;
        }
        self.last_error.lock().as_ref().map(|(kind, _)| *kind)
    }

    /// The last write error (kind and text), current or past.
    pub(crate) fn last_error(&self) -> Option<(io::ErrorKind, String)> {
        self.last_error.lock().clone()
    }

    /// Writer: a write failed with `error`, on `path`. Returns whether writes were working
    /// until now (a new failure, which the caller reports once).
    pub(crate) fn failed(&self, error: &io::Error, path: &Path) -> bool {
        *self.last_error.lock() = Some((error.kind(), format!("{}: {error}", path.display())));
        !self.failing.swap(true, Ordering::AcqRel)
    }

    /// Writer: writes work again.
    pub(crate) fn recovered(&self) -> bool {
        self.failing.swap(false, Ordering::AcqRel)
    }

    /// Queues a fault for the reader.
    pub(crate) fn notify(&self, kind: io::ErrorKind, dir: &Path, messages_lost: u64) {
        self.notices.lock().push_back(SpillFault {
            kind: FaultKind::Io(kind),
            segment: dir.to_path_buf(),
            messages_lost,
        });
        self.has_notices.store(true, Ordering::Release);
    }

    /// Reader: the oldest fault not yet reported.
    pub(crate) fn next_notice(&self) -> Option<SpillFault> {
        if !self.has_notices.load(Ordering::Acquire) {
            return None;
        }
        let mut notices = self.notices.lock();
        let notice = notices.pop_front();
        self.has_notices
            .store(!notices.is_empty(), Ordering::Release);
        notice
    }
}
