//! Reading a segment file record by record: the one reader behind recovery, replay and the
//! operator tool.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::frame::{self, Bad, Entry};
use super::segments::MAGIC;
use crate::spill::FaultKind;

/// One segment file, open for reading from its first record.
pub(crate) struct SegmentReader {
    pub(crate) path: PathBuf,
    input: BufReader<File>,
    /// Where the next record starts.
    offset: u64,
    /// Stop before this offset (a writer may be appending past it).
    end: u64,
    body: Vec<u8>,
    /// Set once the rest of the segment cannot be framed.
    done: bool,
}

/// What the next step through a segment found.
pub(crate) enum Step<'a> {
    /// A verified record (it ends at [`SegmentReader::offset`]).
    Entry(Entry<'a>),
    /// A damaged record starting at `offset`. If `resumable`, reading goes on after it;
    /// otherwise the rest of the segment (to `end`) is lost.
    Damaged {
        kind: FaultKind,
        offset: u64,
        resumable: bool,
    },
    /// The end of the segment (or of the part to read).
    End,
}

impl SegmentReader {
    /// Opens the segment at `path` and checks its magic; reads stop at `end` bytes (pass
    /// `u64::MAX` for the whole file).
    pub(crate) fn open(path: &Path, end: u64) -> Result<Self, FaultKind> {
        let file = File::open(path).map_err(|e| FaultKind::Io(e.kind()))?;
        let mut input = BufReader::with_capacity(64 << 10, file);
        let mut magic = [0u8; MAGIC.len()];
        match input.read_exact(&mut magic) {
            Ok(()) if magic == MAGIC => {}
            Ok(()) if magic[..6] == MAGIC[..6] => {
                let version = std::str::from_utf8(&magic[6..])
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Err(FaultKind::UnknownVersion(version));
            }
            Ok(()) => return Err(FaultKind::BadHeader),
            Err(_) => return Err(FaultKind::Truncated),
        }
        Ok(SegmentReader {
            path: path.to_path_buf(),
            input,
            offset: MAGIC.len() as u64,
            end,
            body: Vec::new(),
            done: false,
        })
    }

    /// Where the next record would start: after the last one read.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record.
    pub(crate) fn next_step(&mut self) -> Step<'_> {
        if self.done || self.offset >= self.end {
            return Step::End;
        }
        let offset = self.offset;
        let limit = self.end - offset;
        match frame::read_body(&mut (&mut self.input).take(limit), &mut self.body) {
            Ok(len) => {
                self.offset += len;
                match frame::parse(&self.body) {
                    Ok(entry) => Step::Entry(entry),
                    Err(kind) => Step::Damaged {
                        kind,
                        offset,
                        resumable: true,
                    },
                }
            }
            Err(Bad::End) => {
                self.done = true;
                Step::End
            }
            Err(Bad::Damaged { kind, resumable }) => {
                if resumable {
                    self.offset += (frame::HEAD_LEN + self.body.len()) as u64;
                } else {
                    self.done = true;
                }
                Step::Damaged {
                    kind,
                    offset,
                    resumable,
                }
            }
        }
    }
}
