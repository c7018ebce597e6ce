//! Segment files: append-only files of [records](super::record), each starting with a header.
//!
//! ```text
//! seg-00000000000000000007.spill
//! +------------------+-------------+---------------+---------+---------+----
//! | magic "CDSPILL\0"| version: u32| reserved: u32 | record  | record  | ...
//! +------------------+-------------+---------------+---------+---------+----
//! ```
//!
//! Ids are `u64` and only ever increase (one per segment; at a segment per nanosecond they
//! would last five centuries), and the name is zero-padded so that names sort like ids. A file
//! whose name does not parse, or whose header is not ours, is never read and never deleted by
//! accident: [`parse_name`] is the only way a name becomes an id.
//!
//! The writer keeps the length it knows to be on disk (`committed`). A write that fails part
//! way is cut back to it with `set_len`, so a torn batch never sits in front of later records.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::spill::FaultKind;

/// First bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"CDSPILL\0";
/// Format version written after the magic; a reader refuses any other.
pub(crate) const VERSION: u32 = 1;
/// Length of the file header.
pub(crate) const HEADER_LEN: u64 = 16;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".spill";

/// Buffer of a segment reader: reads come from the page cache in chunks this big.
const READ_BUFFER: usize = 64 * 1024;

/// The file name of segment `id`.
pub(crate) fn file_name(id: u64) -> String {
    format!("{PREFIX}{id:020}{SUFFIX}")
}

/// The id in a segment file name, or `None` for any other file.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header
}

/// The segment being appended to.
pub(crate) struct SegmentWriter {
    pub(crate) id: u64,
    file: File,
    /// Bytes known to be in the file, header included.
    committed: u64,
}

impl SegmentWriter {
    /// Creates segment `id` in `dir` (it must not exist) and writes its header.
    pub(crate) fn create(dir: &Path, id: u64) -> io::Result<Self> {
        let path = dir.join(file_name(id));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        if let Err(e) = file.write_all(&header()) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(SegmentWriter {
            id,
            file,
            committed: HEADER_LEN,
        })
    }

    /// Whether the file has been deleted while open (a `/tmp` cleaner): appends would still
    /// succeed, into a file nobody can open again. One `fstat`.
    pub(crate) fn unlinked(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.file.metadata().map_or(true, |meta| meta.nlink() == 0)
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// Bytes in the file, header included.
    pub(crate) fn len(&self) -> u64 {
        self.committed
    }

    /// Appends `bytes` with one `write_all`. If it fails, the file is cut back to what it held
    /// before, so that it ends on a record boundary.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.committed += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: if even this fails, the segment is sealed by the caller and
                // never appended to again, and its reader stops at the last counted record.
                let _ = self.file.set_len(self.committed);
                let _ = self.file.seek(SeekFrom::Start(self.committed));
                Err(e)
            }
        }
    }
}

/// A segment being read, front to back.
pub(crate) struct SegmentReader {
    pub(crate) path: PathBuf,
    input: BufReader<File>,
}

impl SegmentReader {
    /// Opens segment `id` in `dir` and checks its header.
    pub(crate) fn open(dir: &Path, id: u64) -> Result<Self, (PathBuf, FaultKind)> {
        let path = dir.join(file_name(id));
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => return Err((path, FaultKind::Io(e.kind()))),
        };
        let mut input = BufReader::with_capacity(READ_BUFFER, file);
        let mut head = [0u8; HEADER_LEN as usize];
        if let Err(e) = input.read_exact(&mut head) {
            let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
                FaultKind::Truncated
            } else {
                FaultKind::Io(e.kind())
            };
            return Err((path, kind));
        }
        if &head[..8] != MAGIC {
            return Err((path, FaultKind::BadHeader));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err((path, FaultKind::UnknownVersion(version)));
        }
        Ok(SegmentReader { path, input })
    }

    /// The stream of records after the header.
    pub(crate) fn input(&mut self) -> &mut BufReader<File> {
        &mut self.input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_name(&file_name(id)), Some(id));
        }
        assert!(file_name(9) < file_name(10));
        for stranger in [
            "LOCK",
            "seg-1.spill",
            "seg-0000000000000000000x.spill",
            "seg-00000000000000000001.spill.tmp",
            "99999999999999999999",
            "seg-99999999999999999999.spill", // overflows u64
        ] {
            assert_eq!(parse_name(stranger), None, "{stranger}");
        }
    }
}
