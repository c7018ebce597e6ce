//! The receiver's end of a spilling inbox: reads disk records in order behind the memory
//! queue, deletes what it has read, reports damage.
//!
//! The protocol it shares with the writer, and why the reader's loads suffice, are stated
//! once, in [`super::queue`]. A record that fails its checks poisons the rest of its
//! segment: the reader skips to the segment's end, counts what it skipped in
//! [`SpillStats::corrupted`](crate::SpillStats::corrupted), and returns a [`SpillFault`].

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::spill::codec::DecodeFn;
use crate::spill::record;
use crate::spill::segment::SegmentReader;
use crate::spill::shared::SpillShared;
use crate::spill::{Codec, FaultKind, SpillFault};

/// What the reader took from disk.
pub(crate) enum Took<T> {
    Data(T, usize),
    Fault(SpillFault),
}

/// The segment the reader is in.
struct Current {
    id: u64,
    path: PathBuf,
    /// `None` if the file could not be opened.
    input: Option<SegmentReader>,
    end: Option<u64>,
    /// Set once damage is found: the rest of the segment is skipped.
    poison: Option<FaultKind>,
}

/// The receiver's end of a spilling inbox.
pub(crate) struct SpillReader<T> {
    shared: Arc<SpillShared>,
    decode: DecodeFn<T>,
    current: Option<Current>,
    /// Index of the next record to read.
    next: u64,
    seals_seen: u64,
    scratch: Vec<u8>,
}

impl<T> SpillReader<T> {
    pub(super) fn new(shared: Arc<SpillShared>, codec: Codec<T>) -> Self {
        SpillReader {
            shared,
            decode: codec.decode,
            current: None,
            next: 0,
            seals_seen: 0,
            scratch: Vec::new(),
        }
    }

    /// Whether a record is committed and not yet read. Must be loaded *before* the memory
    /// queue is popped (see the module doc).
    pub(crate) fn on_disk(&self) -> bool {
        self.shared.committed.load(Ordering::Acquire) > self.next
    }

    /// Takes the next record from disk: `None` if there is none (it may have been dropped),
    /// a fault if damage was found. Every stamp delivered is above `last_seen`.
    pub(crate) fn take(&mut self, last_seen: usize) -> Option<Took<T>> {
        loop {
            // `committed` before `seals`: see the module doc.
            let committed = self.shared.committed.load(Ordering::Acquire);
            let read = self.shared.read.load(Ordering::Acquire);
            if read > self.next {
                // Attrition deleted what we were reading (the writer deleted the files).
                self.next = read;
                self.current = None;
            }
            if self.next >= committed {
                return None;
            }
            if self.current.is_none() {
                self.open_next();
                if self.current.is_none() {
                    // Every record in [read, committed) is in a listed segment, and attrition
                    // claims a span before it unlists it: not finding ours means `read` has
                    // moved past it. Look again rather than report a watermark over it.
                    if self.shared.read.load(Ordering::Acquire) > self.next {
                        continue;
                    }
                    return None;
                }
            }
            let seals = self.shared.seals.load(Ordering::Acquire);
            let current = self.current.as_mut()?;
            if current.end.is_none() && seals != self.seals_seen {
                self.seals_seen = seals;
                let listed = self
                    .shared
                    .segments
                    .lock()
                    .iter()
                    .find(|meta| meta.id == current.id)
                    .map(|meta| meta.end);
                match listed {
                    Some(end) => current.end = end,
                    None => {
                        // The writer sealed and deleted it after we had read it all (it went
                        // back to memory); what comes next is in a newer segment.
                        self.current = None;
                        continue;
                    }
                }
            }
            if current.end == Some(self.next) {
                self.retire();
                continue;
            }
            let available = current.end.unwrap_or(committed);
            if let Some(kind) = current.poison {
                match self.skip_to(available, kind) {
                    Some(fault) => return Some(Took::Fault(fault)),
                    None => continue,
                }
            }
            let outcome = match current.input.as_mut() {
                Some(input) => record::read(input.input(), &mut self.scratch),
                None => Err(FaultKind::Io(std::io::ErrorKind::NotFound)),
            };
            let damage = match outcome {
                Ok(stamp) if stamp <= last_seen => FaultKind::BadStamp(stamp as u64),
                Ok(stamp) => match (self.decode)(record::payload(&self.scratch)) {
                    Ok(value) => {
                        if !self.advance(self.next + 1) {
                            continue; // dropped meanwhile
                        }
                        return Some(Took::Data(value, stamp));
                    }
                    Err(_) => FaultKind::Decode,
                },
                Err(kind) => kind,
            };
            if let Some(current) = self.current.as_mut() {
                current.poison = Some(damage);
                if current.end.is_none() {
                    // Ask the writer to start a new segment rather than append behind damage.
                    self.shared.seal_requested.store(true, Ordering::Release);
                }
            }
            if let Some(fault) = self.skip_to(available, damage) {
                return Some(Took::Fault(fault));
            }
        }
    }

    /// Moves `read` from `next` to `to`, retiring the current segment if that finishes it;
    /// false if the writer's attrition moved `read` first.
    fn advance(&mut self, to: u64) -> bool {
        let moved = self
            .shared
            .read
            .compare_exchange(self.next, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            self.next = to;
            if self.current.as_ref().and_then(|c| c.end) == Some(to) {
                self.retire();
            }
        }
        moved
    }

    /// Skips the records of a damaged segment up to `to`, counting them as corrupted, and
    /// returns the fault that reports them; `None` if attrition got there first.
    fn skip_to(&mut self, to: u64, kind: FaultKind) -> Option<SpillFault> {
        // The path before `advance`, which may retire the segment.
        let segment = match &self.current {
            Some(current) => current.path.clone(),
            None => self.shared.dir.clone(),
        };
        let lost = to - self.next;
        if !self.advance(to) {
            return None;
        }
        self.shared.corrupted.fetch_add(lost, Ordering::Relaxed);
        Some(SpillFault {
            kind,
            segment,
            messages_lost: lost,
        })
    }

    /// Opens the segment holding record `next` (there is one: `next < committed`).
    fn open_next(&mut self) {
        let found = self
            .shared
            .segments
            .lock()
            .iter()
            .find(|meta| meta.first <= self.next && meta.end.is_none_or(|end| end > self.next))
            .map(|meta| (meta.id, meta.first, meta.end));
        let Some((id, first, end)) = found else {
            return;
        };
        #[cfg(test)]
        crate::spill::test_hooks::run(crate::spill::test_hooks::Point::BeforeOpen);
        let dir = &self.shared.dir;
        let (input, path, poison) = match SegmentReader::open(dir, id) {
            Ok(input) => {
                let path = input.path.clone();
                (Some(input), path, None)
            }
            Err((path, kind)) => (None, path, Some(kind)),
        };
        let mut current = Current {
            id,
            path,
            input,
            end,
            poison,
        };
        // A segment is entered at its first record, except after a skip inside it.
        for _ in first..self.next {
            let skipped = match current.input.as_mut() {
                Some(input) => record::read(input.input(), &mut self.scratch),
                None => break,
            };
            if let Err(kind) = skipped {
                current.poison = Some(kind);
                break;
            }
        }
        self.current = Some(current);
    }

    /// Leaves the current segment, deleting every fully read one.
    fn retire(&mut self) {
        self.current = None;
        let mut segments = self.shared.segments.lock();
        self.shared.delete_read_through(&mut segments, self.next);
        drop(segments);
        self.shared.release_if_room();
    }
}

impl<T> Drop for SpillReader<T> {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
        // Wake senders waiting at the gate: they will find the receiver gone.
        self.shared.release();
        // Nobody will read the backlog: free the disk now, not when the dispatcher next
        // notices the receiver is gone. A writer racing this finds the directory gone, and
        // then the receiver gone, and discards its buffer.
        let _ = fs::remove_dir_all(&self.shared.dir);
    }
}
