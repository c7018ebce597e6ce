//! The journal directory: its lock, its segment files, and how they are named and created.
//!
//! ```text
//! <journal dir>/
//!     clocked-dispatch.journal.lock        held (flock) while a dispatcher has the journal open
//!     journal-00000000000000000000.cdj     segments, numbered in write order
//!     journal-00000000000000000001.cdj
//! ```
//!
//! A segment starts with the 8-byte magic [`MAGIC`] (which names the format version), then
//! records (see [`super::frame`]). Its first records are a *checkpoint*: a `Tick` of the
//! clock when the segment was opened and, for every receiver the journal knows, its `Name`,
//! its position as a `Rewind` (which sets it exactly, where a `Commit` could only raise it)
//! and, if it is open, `Open`. So a segment can be read on its own: deleting older segments
//! (retention) loses their messages but no name, position or clock.
//!
//! A new segment is created, its checkpoint written and synced, and the directory synced, before
//! any message goes into it: after a crash, every segment file either holds a whole checkpoint
//! or is the torn last one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::JournalError;

/// The first bytes of every segment: "CDJ" for clocked-dispatch journal, then the version.
pub(crate) const MAGIC: [u8; 8] = *b"CDJRNL01";

const LOCK_FILE: &str = "clocked-dispatch.journal.lock";
const PREFIX: &str = "journal-";
const SUFFIX: &str = ".cdj";

/// The file name of segment `index`.
pub(crate) fn file_name(index: u64) -> String {
    format!("{PREFIX}{index:020}{SUFFIX}")
}

/// The index of a segment file name, if it is one of ours.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every segment in `dir`, by index, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(index) = entry.file_name().to_str().and_then(parse_name) {
            segments.push((index, entry.path()));
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The journal directory's lock: held while this value lives.
pub(crate) struct DirLock {
    /// `Some` until drop, which closes it (releasing the lock) before unlisting it.
    file: Option<File>,
    /// The directory's canonical path, listed in [`HELD`] while the lock is held.
    canonical: PathBuf,
}

/// Journal directories locked by this process. A journal stays locked until its dispatcher
/// thread has finished and its last handle is gone, a moment after the user drops the last
/// one: reopening it in the same process waits that moment out (see [`lock`]).
static HELD: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::Mutex::new(Vec::new());

/// How long [`lock`] waits for a journal locked by this process to be released.
const IN_PROCESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long [`lock`] waits for a journal locked elsewhere (see there).
const FORK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl Drop for DirLock {
    fn drop(&mut self) {
        // Released first: a `lock` that finds the directory unlisted must find it unlocked too.
        drop(self.file.take());
        let mut held = HELD.lock();
        // One entry: a new lock on the directory may already have listed its own.
        if let Some(at) = held.iter().position(|path| path == &self.canonical) {
            held.swap_remove(at);
        }
    }
}

/// Takes the journal directory's lock, creating the directory if needed. The lock is held as
/// long as the returned value lives; a crashed process releases it with its descriptors. If
/// this process holds it (a dispatcher whose handles were just dropped, still finishing), waits
/// up to two seconds for it; otherwise up to 100 ms (a child being spawned holds a copy of the
/// lock's descriptor until it execs).
pub(crate) fn lock(dir: &Path) -> Result<DirLock, JournalError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let canonical = dir.canonicalize().map_err(io_error(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                HELD.lock().push(canonical.clone());
                return Ok(DirLock {
                    file: Some(file),
                    canonical,
                });
            }
            Err(TryLockError::WouldBlock) => {
                let ours = HELD.lock().contains(&canonical);
                // Not ours: still a short wait, because a child process this process is
                // spawning holds a copy of every descriptor, the lock's too, from its fork to
                // its exec.
                let limit = if ours { IN_PROCESS_WAIT } else { FORK_WAIT };
                if started.elapsed() >= limit {
                    return Err(JournalError::InUse {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(TryLockError::Error(source)) => {
                return Err(JournalError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
    }
}

/// Creates segment `index` holding the magic and `checkpoint`, syncs it (if `sync`) and the
/// directory, and returns it open for appending with its length.
pub(crate) fn create(
    dir: &Path,
    index: u64,
    checkpoint: &[u8],
    sync: bool,
) -> io::Result<(File, u64)> {
    let path = dir.join(file_name(index));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    let mut head = Vec::with_capacity(MAGIC.len() + checkpoint.len());
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(checkpoint);
    let written = file.write_all(&head).and_then(|()| {
        if sync {
            file.sync_data()?;
            sync_dir(dir)?;
        }
        Ok(())
    });
    if let Err(e) = written {
        // A segment without its whole checkpoint must not be left for recovery to trust.
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, head.len() as u64))
}

/// Syncs a directory, so that files created or removed in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(parse_name(&file_name(0)), Some(0));
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        for stranger in [
            "journal-1.cdj",
            "journal-0000000000000000000x.cdj",
            "seg-00000000000000000000.spill",
            "journal-00000000000000000000.cdj.tmp",
        ] {
            assert_eq!(parse_name(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        assert!(matches!(lock(dir.path()), Err(JournalError::InUse { .. })));
        drop(first);
        lock(dir.path()).unwrap();
    }

    #[test]
    fn segments_are_listed_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        for index in [3, 1, 2] {
            create(dir.path(), index, b"", false).unwrap();
        }
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let indexes: Vec<u64> = list(dir.path()).unwrap().into_iter().map(|s| s.0).collect();
        assert_eq!(indexes, [1, 2, 3]);
        assert!(create(dir.path(), 2, b"", false).is_err(), "never reused");
    }
}
