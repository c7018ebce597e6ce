//! Error types.
//!
//! Receiving uses `std::sync::mpsc`'s error types unchanged ([`RecvError`], [`TryRecvError`],
//! [`RecvTimeoutError`]), as clocked-dispatch 4.0.2 did, so matching code keeps compiling.
//! Sending and creating handles return the types below: every failure that 4.0.2 turned into a
//! panic (often on the dispatcher thread, poisoning every later send) is a value here, and a
//! failed send always gives the caller its value back.
//!
//! [`RecvError`]: std::sync::mpsc::RecvError
//! [`TryRecvError`]: std::sync::mpsc::TryRecvError
//! [`RecvTimeoutError`]: std::sync::mpsc::RecvTimeoutError

use std::fmt;

/// The two modes a dispatcher can run in. The first data message fixes it for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Senders call `send`/`broadcast`; the dispatcher assigns stamps.
    Serializing,
    /// Senders call `forward`/`broadcast_forward` with stamps assigned upstream.
    Forwarding,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Serializing => "serializing (send/broadcast)",
            Mode::Forwarding => "forwarding (forward/broadcast_forward)",
        })
    }
}

/// Why a message could not be accepted. See [`SendError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendErrorKind {
    /// The sender's receiver has been dropped; nobody will ever read this message.
    ReceiverGone,
    /// The dispatcher thread is no longer running.
    DispatcherGone,
    /// The dispatcher already runs in the other mode: `send` after `forward`, or the reverse.
    WrongMode {
        /// The mode the dispatcher is in.
        dispatcher: Mode,
    },
    /// `forward` with a stamp the dispatcher has already released: it can never be delivered
    /// in order. Stamps are dense and each is used once, so this is a bug upstream.
    StaleStamp {
        /// The stamp given.
        stamp: usize,
        /// The highest stamp already released when the call was made.
        released: usize,
    },
    /// `try_forward` (or `try_broadcast_forward`) with a stamp so far ahead of the released
    /// clock that the reorder window (see
    /// [`Builder::reorder_window`](crate::Builder::reorder_window)) cannot hold it yet.
    /// `forward` waits instead.
    StampTooFarAhead {
        /// The stamp given.
        stamp: usize,
        /// The highest stamp already released when the call was made.
        released: usize,
        /// The reorder window's size.
        window: usize,
    },
    /// `forward_timeout` or `broadcast_forward_timeout`: the deadline passed before the
    /// reorder window reached the stamp, or before the intake had room for the message.
    Timeout,
    /// The receiver spills to disk, its disk budget is used up (or its disk is failing), and
    /// the dispatcher was built with [`DiskFull::Reject`](crate::DiskFull::Reject).
    DiskFull {
        /// The receiver's disk budget in bytes
        /// ([`Builder::disk_limit`](crate::Builder::disk_limit)).
        limit: u64,
    },
    /// The receiver spills to disk and writes to it are failing (not full: refused by the
    /// system, for example because the directory was deleted and cannot be created again).
    /// Under [`DiskFull::Reject`](crate::DiskFull::Reject) at once, under `Block` after
    /// waiting [`FAILING_DISK_WAIT`](crate::FAILING_DISK_WAIT) for it to recover. Messages
    /// already accepted stay queued; [`SpillStats`](crate::SpillStats) shows the error.
    DiskFailed {
        /// The error the last write failed with.
        kind: std::io::ErrorKind,
    },
    /// The dispatcher is journaled with [`Durability::Always`](crate::Durability::Always) and
    /// the write of the batch holding this message failed: it was not stored and not
    /// delivered.
    JournalFailed {
        /// The error the write failed with.
        kind: std::io::ErrorKind,
    },
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SendErrorKind::ReceiverGone => f.write_str("the receiver has been dropped"),
            SendErrorKind::DispatcherGone => f.write_str("the dispatcher thread has stopped"),
            SendErrorKind::WrongMode { dispatcher } => {
                write!(f, "the dispatcher is already in {dispatcher} mode")
            }
            SendErrorKind::StaleStamp { stamp, released } => write!(
                f,
                "stamp {stamp} was already released (the clock is at {released})"
            ),
            SendErrorKind::StampTooFarAhead {
                stamp,
                released,
                window,
            } => write!(
                f,
                "stamp {stamp} is more than {window} ahead of the released clock {released}"
            ),
            SendErrorKind::Timeout => {
                f.write_str("timed out waiting for the reorder window or the intake")
            }
            SendErrorKind::DiskFull { limit } => write!(
                f,
                "the receiver's spill is full ({limit} bytes on disk) and the policy is Reject"
            ),
            SendErrorKind::DiskFailed { kind } => {
                write!(
                    f,
                    "writes to the receiver's spill directory are failing ({kind})"
                )
            }
            SendErrorKind::JournalFailed { kind } => write!(
                f,
                "the journal write failed ({kind}): the message was not stored"
            ),
        }
    }
}

/// A message that was not accepted, with the reason and the value itself.
///
/// For `send`/`broadcast` the value is the `T` given; for `forward`/`broadcast_forward` it is
/// the `Option<T>` given.
///
/// ```
/// use clocked_dispatch::SendErrorKind;
///
/// let d = clocked_dispatch::new(4);
/// let (tx, rx) = d.new("tx", "rx");
/// drop(rx);
/// let err = tx.send(String::from("lost?")).unwrap_err();
/// assert_eq!(err.kind(), SendErrorKind::ReceiverGone);
/// assert_eq!(err.into_inner(), "lost?"); // not lost: handed back
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SendError<V> {
    kind: SendErrorKind,
    value: V,
}

impl<V> SendError<V> {
    pub(crate) fn new(kind: SendErrorKind, value: V) -> Self {
        SendError { kind, value }
    }

    /// Why the message was not accepted.
    pub fn kind(&self) -> SendErrorKind {
        self.kind
    }

    /// The value that was not sent.
    pub fn into_inner(self) -> V {
        self.value
    }
}

impl<V> fmt::Debug for SendError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<V> fmt::Display for SendError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message not accepted: {}", self.kind)
    }
}

impl<V> std::error::Error for SendError<V> {}

/// Why a sender, receiver or broadcaster could not be created.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HandleError {
    /// A live receiver of this dispatcher already has this name. A name is freed when its
    /// receiver is dropped.
    ReceiverNameInUse(String),
    /// The sender's receiver has been dropped, so a new sender for it would be useless.
    ReceiverGone,
    /// The dispatcher thread is no longer running.
    DispatcherGone,
    /// A spilling dispatcher could not create the new receiver's spill directory.
    SpillDirectory(std::io::ErrorKind),
    /// A handle of one dispatcher was given to another's (a multicaster's member).
    OtherDispatcher,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::ReceiverNameInUse(name) => {
                write!(f, "receiver name {name:?} is already in use")
            }
            HandleError::ReceiverGone => f.write_str("the receiver has been dropped"),
            HandleError::DispatcherGone => f.write_str("the dispatcher thread has stopped"),
            HandleError::SpillDirectory(kind) => {
                write!(f, "cannot create the receiver's spill directory: {kind}")
            }
            HandleError::OtherDispatcher => f.write_str("the handle belongs to another dispatcher"),
        }
    }
}

impl std::error::Error for HandleError {}

/// A capacity too large to allocate up front.
///
/// The intake and each receiver's inbox are bounded channels whose whole buffer is allocated
/// when they are created, so an absurd capacity would otherwise end the process in the
/// allocator (an abort, which no caller can catch). A capacity is refused when its buffer
/// would exceed [`MAX_PREALLOCATED_BYTES`](crate::MAX_PREALLOCATED_BYTES); see
/// [`Builder::bound`](crate::Builder::bound).
///
/// ```
/// use clocked_dispatch::{BuildError, Builder};
///
/// let err = Builder::new().bound(1 << 40).try_build::<u64>().unwrap_err();
/// let BuildError::Capacity(err) = err else { panic!("expected a capacity error") };
/// assert_eq!(err.setting(), "bound");
/// assert_eq!(err.capacity(), 1 << 40);
/// assert!(err.max_capacity() > 1_000_000); // millions of u64 messages still fit
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapacityError {
    setting: &'static str,
    capacity: usize,
    max_capacity: usize,
}

impl CapacityError {
    pub(crate) fn new(setting: &'static str, capacity: usize, max_capacity: usize) -> Self {
        CapacityError {
            setting,
            capacity,
            max_capacity,
        }
    }

    /// The builder setting that was too large: `"bound"`, `"inbox_capacity"` or
    /// `"memory_capacity"`.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The capacity asked for, in messages.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest capacity, in messages of this type, that this setting accepts.
    pub fn max_capacity(&self) -> usize {
        self.max_capacity
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is too large: its buffer is allocated up front, and at most {} messages of \
             this type fit in MAX_PREALLOCATED_BYTES ({} bytes)",
            self.setting,
            self.capacity,
            self.max_capacity,
            crate::MAX_PREALLOCATED_BYTES
        )
    }
}

impl std::error::Error for CapacityError {}

/// Why [`Builder::try_build`](crate::Builder::try_build) failed.
#[derive(Debug)]
pub enum BuildError {
    /// A capacity ([`bound`](crate::Builder::bound) or
    /// [`inbox_capacity`](crate::Builder::inbox_capacity)) is too large to allocate.
    Capacity(CapacityError),
    /// The operating system refused to start the dispatcher thread.
    Thread(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Capacity(e) => e.fmt(f),
            BuildError::Thread(e) => write!(f, "cannot start the dispatcher thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Capacity(e) => Some(e),
            BuildError::Thread(e) => Some(e),
        }
    }
}

/// For callers that report every failure as an `io::Error`: a capacity error becomes
/// `ErrorKind::InvalidInput` (with the [`CapacityError`] inside), a thread error stays itself.
impl From<BuildError> for std::io::Error {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Capacity(e) => std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            BuildError::Thread(e) => e,
        }
    }
}

/// Why [`Builder::build_spilling`](crate::Builder::build_spilling) failed.
#[derive(Debug)]
pub enum SpillSetupError {
    /// A capacity ([`bound`](crate::Builder::bound) or
    /// [`memory_capacity`](crate::Builder::memory_capacity)) is too large to allocate.
    Capacity(CapacityError),
    /// The directory (or its lock file) could not be created or opened.
    Io {
        /// The path that failed.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another dispatcher, in this process or another, holds the directory's lock.
    InUse {
        /// The directory.
        path: std::path::PathBuf,
    },
    /// The operating system refused to start the dispatcher thread.
    Thread(std::io::Error),
}

/// The failures a spilling and a journaled build share (the first four variants of
/// [`SpillSetupError`] and [`JournalError`]), worded once for both `Display`s.
enum SetupFailure<'a> {
    Capacity(&'a CapacityError),
    Io {
        path: &'a std::path::Path,
        source: &'a std::io::Error,
    },
    InUse(&'a std::path::Path),
    Thread(&'a std::io::Error),
}

impl SetupFailure<'_> {
    /// Writes the failure; `what` names the directory (or, for the journal, its files).
    fn write(&self, f: &mut fmt::Formatter<'_>, what: &str) -> fmt::Result {
        match *self {
            SetupFailure::Capacity(e) => fmt::Display::fmt(e, f),
            SetupFailure::Io { path, source } => {
                write!(f, "cannot use {what} {}: {source}", path.display())
            }
            SetupFailure::InUse(path) => write!(
                f,
                "{what} {} is in use by another dispatcher",
                path.display()
            ),
            SetupFailure::Thread(e) => write!(f, "cannot start the dispatcher thread: {e}"),
        }
    }
}

impl fmt::Display for SpillSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failure = match self {
            SpillSetupError::Capacity(e) => SetupFailure::Capacity(e),
            SpillSetupError::Io { path, source } => SetupFailure::Io { path, source },
            SpillSetupError::InUse { path } => SetupFailure::InUse(path),
            SpillSetupError::Thread(e) => SetupFailure::Thread(e),
        };
        failure.write(f, "spill directory")
    }
}

impl std::error::Error for SpillSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpillSetupError::Io { source, .. } | SpillSetupError::Thread(source) => Some(source),
            SpillSetupError::Capacity(e) => Some(e),
            SpillSetupError::InUse { .. } => None,
        }
    }
}

/// Why [`ClockedReceiver::recv_checked`](crate::ClockedReceiver::recv_checked) returned no
/// item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvCheckedError {
    /// The receiver is closed and drained, as `RecvError` for `recv`.
    Disconnected,
    /// Spilled (or journaled) messages were lost to damage on disk. Reading may go on: the
    /// next call returns what follows the damage.
    Spill(crate::spill::SpillFault),
}

impl fmt::Display for RecvCheckedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvCheckedError::Disconnected => f.write_str("receiving on a closed channel"),
            RecvCheckedError::Spill(fault) => fault.fmt(f),
        }
    }
}

impl std::error::Error for RecvCheckedError {}

/// Why a journal operation failed: opening a journaled dispatcher
/// ([`Builder::build_journaled`](crate::Builder::build_journaled)), a commit
/// ([`ClockedReceiver::commit`](crate::ClockedReceiver::commit)) or a flush
/// ([`ClockedSender::flush`](crate::ClockedSender::flush)).
#[derive(Debug)]
pub enum JournalError {
    /// A capacity is too large to allocate.
    Capacity(CapacityError),
    /// A file or directory of the journal could not be created, read or written.
    Io {
        /// The path that failed.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another dispatcher, in this process or another, has the journal open.
    InUse {
        /// The journal directory.
        path: std::path::PathBuf,
    },
    /// The operating system refused to start the dispatcher thread.
    Thread(std::io::Error),
    /// The dispatcher was not built with a journal.
    NotJournaled,
    /// [`commit`](crate::ClockedReceiver::commit) of a stamp the receiver has not reached.
    CommitAhead {
        /// The stamp given.
        stamp: usize,
        /// The last stamp the receiver returned.
        received: usize,
    },
    /// The dispatcher thread stopped before the operation could be settled.
    DispatcherGone,
    /// A rewind of a receiver name the journal has never seen.
    UnknownReceiver {
        /// The name.
        name: String,
    },
    /// A rewind of a receiver name that has an open receiver: drop it first.
    ReceiverOpen {
        /// The name.
        name: String,
    },
    /// A rewind to a stamp the journal no longer holds (retention deleted it).
    RewindTooOld {
        /// The stamp asked for.
        stamp: usize,
        /// The oldest stamp the journal still holds.
        oldest: usize,
    },
    /// A rewind to a stamp beyond the journal's clock.
    RewindAhead {
        /// The stamp asked for.
        stamp: usize,
        /// The highest stamp the journal holds.
        clock: usize,
    },
    /// A batch this sender's messages were in could not be written: they were not delivered
    /// and are not in the journal.
    WriteFailed {
        /// The error the write failed with.
        kind: std::io::ErrorKind,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let setup =
            |failure: SetupFailure<'_>, f: &mut fmt::Formatter<'_>| failure.write(f, "journal");
        match self {
            JournalError::Capacity(e) => setup(SetupFailure::Capacity(e), f),
            JournalError::Io { path, source } => setup(SetupFailure::Io { path, source }, f),
            JournalError::InUse { path } => setup(SetupFailure::InUse(path), f),
            JournalError::Thread(e) => setup(SetupFailure::Thread(e), f),
            JournalError::NotJournaled => f.write_str("the dispatcher has no journal"),
            JournalError::CommitAhead { stamp, received } => write!(
                f,
                "cannot commit stamp {stamp}: the receiver has only reached {received}"
            ),
            JournalError::DispatcherGone => f.write_str("the dispatcher thread has stopped"),
            JournalError::UnknownReceiver { name } => {
                write!(f, "the journal has no receiver named {name:?}")
            }
            JournalError::ReceiverOpen { name } => {
                write!(f, "receiver {name:?} is open: drop it first")
            }
            JournalError::RewindTooOld { stamp, oldest } => write!(
                f,
                "cannot rewind to stamp {stamp}: the oldest stamp the journal holds is {oldest}"
            ),
            JournalError::RewindAhead { stamp, clock } => write!(
                f,
                "cannot rewind to stamp {stamp}: the journal's clock is only at {clock}"
            ),
            JournalError::WriteFailed { kind } => {
                write!(
                    f,
                    "the journal write failed ({kind}): not stored, not delivered"
                )
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } | JournalError::Thread(source) => Some(source),
            JournalError::Capacity(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_and_journal_setup_errors_are_worded_alike() {
        let path = std::path::PathBuf::from("/var/lib/d");
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let spill = SpillSetupError::Io {
            path: path.clone(),
            source: denied(),
        };
        let journal = JournalError::Io {
            path: path.clone(),
            source: denied(),
        };
        assert_eq!(
            spill.to_string(),
            format!("cannot use spill directory /var/lib/d: {}", denied())
        );
        assert_eq!(
            journal.to_string(),
            format!("cannot use journal /var/lib/d: {}", denied())
        );
        assert_eq!(
            JournalError::InUse { path: path.clone() }.to_string(),
            "journal /var/lib/d is in use by another dispatcher"
        );
        assert_eq!(
            SpillSetupError::InUse { path }.to_string(),
            "spill directory /var/lib/d is in use by another dispatcher"
        );
        assert_eq!(
            JournalError::Thread(denied()).to_string(),
            SpillSetupError::Thread(denied()).to_string()
        );
    }
}
