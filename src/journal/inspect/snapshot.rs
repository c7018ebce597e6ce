//! [`snapshot`]: a consistent copy of a journal while its dispatcher may be running.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use super::walk::{to_usize, Walker};
use super::Progress;
use crate::error::JournalError;
use crate::journal::scan::{SegmentReader, Step};
use crate::journal::segments;
use crate::spill::FaultKind;

/// What [`snapshot`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Segment files copied.
    pub segments: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// The highest stamp in the copy.
    pub clock: usize,
    /// Bytes of the newest segment left out: its torn tail, or a segment the dispatcher had
    /// only begun to create.
    pub left_out_bytes: u64,
}

/// Copies the journal at `dir` into `out`, consistently, while a dispatcher may be running on
/// it: the segments oldest first, the newest only up to its last whole record. The copy is
/// a state the journal could have been in after a crash, so it opens as a journal (with
/// [`Builder::build_journaled`](crate::Builder::build_journaled)) and recovers with nothing
/// truncated and no gap that the original did not have. The files and `out` are synced before
/// this returns.
///
/// `out` is created if it does not exist; if it does, it must be an empty directory.
///
/// # Errors
///
/// [`JournalError::Io`] if `dir` cannot be listed, `out` exists and is not an empty directory
/// (kind [`AlreadyExists`](io::ErrorKind::AlreadyExists)), or a copy fails.
///
/// # Examples
///
/// ```
/// use clocked_dispatch::journal::inspect;
/// use clocked_dispatch::Builder;
///
/// let dir = tempfile::tempdir()?;
/// let out = tempfile::tempdir()?;
/// let d = Builder::new()
///     .bound(16)
///     .inbox_capacity(1024)
///     .journal(dir.path())
///     .build_journaled::<u64>()?;
/// let (tx, _rx) = d.new("tx", "rx");
/// tx.send_all(0..100).unwrap();
/// tx.flush()?;
/// let copied = inspect::snapshot(dir.path(), out.path())?; // d is still running
/// assert_eq!(copied.clock, 100);
///
/// let copy = Builder::new().journal(out.path()).build_journaled::<u64>()?;
/// let recovery = copy.recovery().unwrap();
/// assert_eq!((recovery.last_stamp, recovery.truncated_bytes), (100, 0));
/// let (_tx, rx) = copy.new("tx", "rx");
/// assert_eq!(rx.recv()?, (Some(0), 1)); // replayed from the copy
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn snapshot(
    dir: impl AsRef<Path>,
    out: impl AsRef<Path>,
) -> Result<SnapshotReport, JournalError> {
    snapshot_with(dir, out, |_| {})
}

/// [`snapshot`], calling `on_progress` after each segment.
///
/// # Errors
///
/// As [`snapshot`].
pub fn snapshot_with(
    dir: impl AsRef<Path>,
    out: impl AsRef<Path>,
    mut on_progress: impl FnMut(Progress),
) -> Result<SnapshotReport, JournalError> {
    let (dir, out) = (dir.as_ref(), out.as_ref());
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    let listed = Walker::list(dir)?;
    let created = prepare_out(out).map_err(io_error(out))?;
    let mut progress = listed.progress;
    let mut report = SnapshotReport::default();
    let mut last_copied = None;
    let newest = listed.newest;
    for (index, path, _) in listed.todo {
        let name = segments::file_name(index);
        let copy_to = out.join(&name);
        let copied = if Some(index) == newest {
            copy_newest(&path, &copy_to, &mut report)
        } else {
            copy_prefix(&path, &copy_to, None)
        };
        match copied {
            Ok(Some(bytes)) => {
                report.segments += 1;
                report.bytes += bytes;
                last_copied = Some(copy_to);
                progress.bytes_done += bytes;
            }
            Ok(None) => {}
            Err(source) => {
                return Err(JournalError::Io { path, source });
            }
        }
        progress.segments_done += 1;
        on_progress(progress);
    }
    // The clock: the highest stamp of the newest segment copied (stamps only increase, and
    // each segment's checkpoint starts with the clock when it began).
    if let Some(last) = &last_copied {
        report.clock = highest_stamp(last);
    }
    segments::sync_dir(out).map_err(io_error(out))?;
    if created {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            segments::sync_dir(parent).map_err(io_error(parent))?;
        }
    }
    Ok(report)
}

/// Makes sure `out` is an empty directory; true if it was created.
fn prepare_out(out: &Path) -> io::Result<bool> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the snapshot's destination is not empty",
                ));
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(out)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Copies the newest segment up to its last whole record; `None` if it has none yet (or is
/// gone).
fn copy_newest(path: &Path, to: &Path, report: &mut SnapshotReport) -> io::Result<Option<u64>> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut reader = match SegmentReader::open(path, len) {
        Ok(reader) => reader,
        Err(FaultKind::Io(io::ErrorKind::NotFound)) => return Ok(None),
        Err(_) => {
            // Not even a whole magic: a segment being created. Recovery would delete it.
            report.left_out_bytes += len;
            return Ok(None);
        }
    };
    let mut good_end = reader.offset();
    loop {
        match reader.next_step() {
            Step::End => break,
            Step::Entry(_) => good_end = reader.offset(),
            Step::Damaged {
                resumable: true, ..
            } => {}
            Step::Damaged {
                resumable: false, ..
            } => break,
        }
    }
    report.left_out_bytes += len - good_end;
    copy_prefix(path, to, Some(good_end))
}

/// The highest stamp in the segment at `path` (0 if none).
fn highest_stamp(path: &Path) -> usize {
    let Ok(mut reader) = SegmentReader::open(path, u64::MAX) else {
        return 0;
    };
    let mut clock = 0;
    loop {
        match reader.next_step() {
            Step::End => return to_usize(clock),
            Step::Entry(entry) => clock = clock.max(entry.stamp().unwrap_or(0)),
            Step::Damaged { .. } => {}
        }
    }
}

/// Copies `path` to `to` (the first `len` bytes, or all), synced; `None` if `path` is gone.
fn copy_prefix(path: &Path, to: &Path, len: Option<u64>) -> io::Result<Option<u64>> {
    let source = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut dest = File::options().write(true).create_new(true).open(to)?;
    let copied = match len {
        Some(len) => io::copy(&mut source.take(len), &mut dest)?,
        None => io::copy(&mut &source, &mut dest)?,
    };
    if len.is_some_and(|len| copied != len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the segment shrank while it was copied",
        ));
    }
    dest.sync_all()?;
    Ok(Some(copied))
}
