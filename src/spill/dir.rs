//! The spill directory of one dispatcher: its lock, its receivers' subdirectories, and the
//! status of every spilling receiver.
//!
//! ```text
//! <spill_to>/
//!     clocked-dispatch.lock          held (flock) for the dispatcher's lifetime
//!     rx-0-<receiver name>/          one per receiver, created with it
//!         seg-00000000000000000000.spill
//!         seg-00000000000000000001.spill
//!     rx-1-<receiver name>/
//! ```
//!
//! The lock is an advisory `flock` on the lock file (`File::try_lock`), so a second dispatcher
//! on the same directory, in this process or another, gets
//! [`SpillSetupError::InUse`](crate::SpillSetupError::InUse), and a crashed process releases it
//! with its file descriptors. Once the lock is held, segment files left in `rx-*`
//! subdirectories by an earlier run are deleted (their process is gone: nobody can read them).
//! Files and directories with other names are never touched.
//!
//! When the last handle of the dispatcher goes, the lock file is removed, and the directory
//! itself if this dispatcher created it and it is empty.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::SpillSetupError;
use crate::spill::{segment, SpillConfig, SpillStats};

const LOCK_FILE: &str = "clocked-dispatch.lock";
const RECEIVER_PREFIX: &str = "rx-";

/// One dispatcher's spill directory.
pub(crate) struct SpillRoot {
    dir: PathBuf,
    pub(crate) config: SpillConfig,
    /// Held open (and so locked) until drop.
    _lock: File,
    created_dir: bool,
    next_receiver: AtomicU64,
    /// Receivers whose sends are held now; broadcasters wait (or fail) while it is not 0.
    pub(crate) held_receivers: AtomicUsize,
    /// How many receivers' disks are failing now.
    pub(crate) failing_receivers: AtomicUsize,
    /// The receivers listed for status queries, and the list's length when it was last
    /// pruned.
    receivers: Mutex<(Vec<Weak<dyn ReceiverStatus>>, usize)>,
}

impl SpillRoot {
    /// Takes `dir` (creating it if needed) for one dispatcher.
    pub(crate) fn open(dir: PathBuf, config: SpillConfig) -> Result<Arc<Self>, SpillSetupError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpillSetupError::Io { path, source }
        };
        let created_dir = !dir.exists();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpillSetupError::InUse { path: dir }),
            Err(TryLockError::Error(source)) => {
                return Err(SpillSetupError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        sweep_stale(&dir);
        Ok(Arc::new(SpillRoot {
            dir,
            config,
            _lock: lock,
            created_dir,
            next_receiver: AtomicU64::new(0),
            held_receivers: AtomicUsize::new(0),
            failing_receivers: AtomicUsize::new(0),
            receivers: Mutex::new((Vec::new(), 16)),
        }))
    }

    /// Creates the directory of a new receiver.
    pub(crate) fn receiver_dir(&self, name: &str) -> std::io::Result<PathBuf> {
        loop {
            let number = self.next_receiver.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("{RECEIVER_PREFIX}{number}-{}", file_safe(name)));
            match fs::create_dir(&path) {
                // Left by an earlier run with files that are not ours: use another number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(path),
            }
        }
    }

    /// Lists a receiver for [`status`](Self::status). Entries of receivers that are gone are
    /// pruned when the list has doubled since the last pruning, so creating receivers costs
    /// amortized O(1) however many are alive.
    pub(crate) fn register(&self, receiver: Arc<dyn ReceiverStatus>) {
        let mut listed = self.receivers.lock();
        let (receivers, pruned_at) = &mut *listed;
        if receivers.len() >= 2 * *pruned_at {
            receivers.retain(|weak| weak.strong_count() > 0);
            receivers.shrink_to(2 * receivers.len());
            *pruned_at = receivers.len().max(16);
        }
        receivers.push(Arc::downgrade(&receiver));
    }

    /// The error of some receiver whose disk is failing now, if any (for the broadcasters'
    /// gate; a cold path: one load when none is failing).
    pub(crate) fn failing_kind(&self) -> Option<std::io::ErrorKind> {
        if self.failing_receivers.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.receivers
            .lock()
            .0
            .iter()
            .filter_map(Weak::upgrade)
            .find_map(|receiver| receiver.failing_kind())
    }

    /// The status of every live spilling receiver, in creation order.
    pub(crate) fn status(&self) -> Vec<SpillStats> {
        self.receivers
            .lock()
            .0
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|receiver| receiver.alive())
            .map(|receiver| receiver.status())
            .collect()
    }
}

/// What [`SpillRoot::status`] asks of each registered receiver (implemented by the receiver's
/// shared spill state; a trait, so that this file does not depend on it).
pub(crate) trait ReceiverStatus: Send + Sync {
    /// Whether the receiver still exists.
    fn alive(&self) -> bool;
    /// Its current statistics.
    fn status(&self) -> SpillStats;
    /// The error its disk writes fail with now, if they do.
    fn failing_kind(&self) -> Option<std::io::ErrorKind>;
}

impl Drop for SpillRoot {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join(LOCK_FILE));
        if self.created_dir {
            // Fails, harmlessly, if anything else is in it.
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Deletes segment files an earlier run left in receiver directories, then those directories
/// if that empties them. Best effort: what cannot be removed stays.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_receiver_dir = entry
            .file_name()
            .to_string_lossy()
            .starts_with(RECEIVER_PREFIX)
            && entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_receiver_dir {
            continue;
        }
        if let Ok(files) = fs::read_dir(entry.path()) {
            for file in files.flatten() {
                if segment::parse_name(&file.file_name().to_string_lossy()).is_some() {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
        let _ = fs::remove_dir(entry.path());
    }
}

/// A receiver name reduced to characters safe in a file name on any platform.
fn file_safe(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
