//! The dispatcher's end of a spilling inbox: appends behind the memory queue, writes records
//! to segment files, applies the disk limit, rides out a failing disk.
//!
//! The protocol it shares with the reader (which index each side moves, which loads come
//! first, when segments are sealed and deleted) is stated once, in [`super::queue`]; a failing
//! disk is [`super::failure`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ring::{Refused, RingWriter};
use crate::spill::codec::EncodeFn;
use crate::spill::failure::MAX_RETRY_PAUSE;
use crate::spill::record;
use crate::spill::segment::{self, SegmentWriter};
use crate::spill::shared::{SegmentMeta, SpillShared};
use crate::spill::{Codec, DiskFull};

/// The write buffer is written out when it holds this much, even within a batch.
const FLUSH_AT: usize = 64 * 1024;

/// Whether a flush wrote everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// The buffer is empty.
    Done,
    /// The disk is failing; records wait in the buffer for a later flush.
    Pending,
}

/// A failing disk's retry schedule.
struct Failing {
    retry_at: Instant,
    pause: Duration,
}

/// The dispatcher's end of a spilling inbox.
pub(crate) struct SpillWriter<T> {
    shared: Arc<SpillShared>,
    encode: EncodeFn<T>,
    /// Whether new messages go to the write buffer instead of the memory queue.
    spilling: bool,
    buffer: Vec<u8>,
    /// Where each record in `buffer` ends (one entry per buffered record).
    record_ends: Vec<usize>,
    segment: Option<SegmentWriter>,
    committed: u64,
    next_segment: u64,
    /// Set while writes fail.
    failing: Option<Failing>,
}

impl<T> SpillWriter<T> {
    pub(super) fn new(shared: Arc<SpillShared>, codec: Codec<T>) -> Self {
        SpillWriter {
            shared,
            encode: codec.encode,
            spilling: false,
            buffer: Vec::new(),
            record_ends: Vec::new(),
            segment: None,
            committed: 0,
            next_segment: 0,
            failing: None,
        }
    }

    /// Appends `item` behind everything already queued for this receiver, never waiting for
    /// the reader. Returns `Ok(true)` if it went to the write buffer (so [`flush`](Self::flush)
    /// must run before the clock is published), `Ok(false)` if it went to memory, and the item
    /// back if the receiver is gone.
    pub(crate) fn push(
        &mut self,
        memory: &mut RingWriter<(T, usize)>,
        item: (T, usize),
    ) -> Result<bool, (T, usize)> {
        if self.spilling
            && self.record_ends.is_empty()
            && self.shared.read.load(Ordering::Acquire) == self.committed
        {
            // The reader has taken (or lost to attrition) everything on disk; the segment
            // it finished goes now rather than linger until the next spill fills it.
            self.spilling = false;
            self.seal();
        }
        let item = if self.spilling {
            item
        } else {
            match memory.try_push(item) {
                // Counted in the inbox's gauges by the caller.
                Ok(()) => return Ok(false),
                Err(Refused::Full(item)) => {
                    self.spilling = true;
                    item
                }
                Err(Refused::Gone(item)) => return Err(item),
            }
        };
        if !self.shared.receiver_alive.load(Ordering::Acquire) {
            return Err(item);
        }
        let (value, stamp) = item;
        match record::append(&mut self.buffer, stamp, &value, self.encode) {
            Ok(()) => self.record_ends.push(self.buffer.len()),
            Err(_) => {
                // Accepted but impossible to spill: counted, never silently.
                self.shared.unencodable.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
        }
        if self.buffer.len() >= FLUSH_AT {
            // A failing disk leaves the records buffered; the end of the batch tries again.
            let _ = self.flush();
        }
        Ok(true)
    }

    /// Writes the buffer out. Returns at once if it is empty. Segments are filled up to
    /// `segment_size` at record boundaries (a record larger than that gets a segment of its
    /// own), with one `write` per segment touched.
    ///
    /// Returns [`Flushed::Pending`] if records are left in the buffer because the disk is
    /// failing (see [`crate::spill::failure`]): the caller must flush again later, and the
    /// reader's watermark is capped below them meanwhile. Never sleeps.
    pub(crate) fn flush(&mut self) -> Flushed {
        if self.record_ends.is_empty() {
            return Flushed::Done;
        }
        if self
            .failing
            .as_ref()
            .is_some_and(|failing| Instant::now() < failing.retry_at)
        {
            return Flushed::Pending;
        }
        if self.shared.seal_requested.swap(false, Ordering::AcqRel)
            || self.segment.as_ref().is_some_and(SegmentWriter::unlinked)
        {
            // Asked by a reader that found damage, or the file was deleted under us: what is
            // in it is lost (the reader reports it), nothing more goes there.
            self.seal();
        }
        self.apply_limit();
        let segment_size = self.shared.root.config.segment_size;
        let (mut from_record, mut from_byte) = (0, 0);
        while from_record < self.record_ends.len() {
            if self
                .segment
                .as_ref()
                .is_some_and(|s| s.len() >= segment_size)
            {
                self.seal();
            }
            let used = self
                .segment
                .as_ref()
                .map_or(segment::HEADER_LEN, SegmentWriter::len);
            let room = segment_size.saturating_sub(used) as usize;
            let mut to_record = from_record + 1; // at least one record per segment
            while to_record < self.record_ends.len()
                && self.record_ends[to_record] - from_byte <= room
            {
                to_record += 1;
            }
            let to_byte = self.record_ends[to_record - 1];
            if !self.shared.receiver_alive.load(Ordering::Acquire) {
                self.discard();
                return Flushed::Done;
            }
            let written = match self.write_repairing(from_byte..to_byte) {
                Ok(written) => written,
                Err(error) => {
                    self.keep_unwritten(from_record, from_byte);
                    self.start_failing(&error);
                    return Flushed::Pending;
                }
            };
            let records = (to_record - from_record) as u64;
            self.committed += records;
            self.shared.spilled.fetch_add(records, Ordering::Relaxed);
            self.shared.disk_bytes.fetch_add(written, Ordering::AcqRel);
            // Release: a reader that sees the new count sees the bytes and any seal before
            // them.
            self.shared
                .committed
                .store(self.committed, Ordering::Release);
            (from_record, from_byte) = (to_record, to_byte);
        }
        self.buffer.clear();
        self.record_ends.clear();
        if self.buffer.capacity() > 4 * FLUSH_AT {
            self.buffer.shrink_to(FLUSH_AT);
        }
        if self.failing.take().is_some() {
            self.stop_failing();
        }
        let over = self.shared.disk_bytes.load(Ordering::Acquire) >= self.shared.limit();
        if over && self.shared.root.config.when_full != DiskFull::DropOldest {
            self.shared.hold();
        } else if !over && self.shared.held.load(Ordering::Acquire) {
            // Held for a failing disk that recovered, or for a limit no longer reached.
            self.shared.release();
        }
        Flushed::Done
    }

    /// Writes `range`; if that fails, repairs what it can (a fresh segment, the receiver's
    /// directory created again if it is gone) and tries once more.
    fn write_repairing(&mut self, range: std::ops::Range<usize>) -> std::io::Result<u64> {
        if let Ok(written) = self.write_chunk(range.clone()) {
            return Ok(written);
        }
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        self.seal();
        if !self.shared.dir.is_dir() {
            // Deleted under us (a `/tmp` cleaner): what was in it is lost, and the reader
            // reports it when it finds the files gone; what is buffered can still be saved.
            let _ = std::fs::create_dir_all(&self.shared.dir);
        }
        self.write_chunk(range).inspect_err(|_| {
            self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
            self.seal();
        })
    }

    /// Drops the records before `from_record` (written) from the buffer, keeping the rest in
    /// order, and caps the reader's watermark below the oldest one kept.
    fn keep_unwritten(&mut self, from_record: usize, from_byte: usize) {
        self.buffer.drain(..from_byte);
        self.record_ends.drain(..from_record);
        for end in &mut self.record_ends {
            *end -= from_byte;
        }
        // Stored after `committed` (by the writes above) and before the clock is published.
        self.shared
            .failure
            .set_unwritten(Some(record::stamp_of(&self.buffer)));
    }

    /// A write failed even after repair: hold sends, tell the reader once, retry later.
    fn start_failing(&mut self, error: &std::io::Error) {
        let pause = match &self.failing {
            Some(failing) => (failing.pause * 2).min(MAX_RETRY_PAUSE),
            None => Duration::from_millis(1),
        };
        self.failing = Some(Failing {
            retry_at: Instant::now() + pause,
            pause,
        });
        let shared = &self.shared;
        if shared.failure.failed(error, &shared.dir) {
            shared.root.failing_receivers.fetch_add(1, Ordering::AcqRel);
            shared.failure.notify(error.kind(), &shared.dir, 0);
        }
        shared.hold();
    }

    /// Writes work again (or nobody is left to write for): lift the cap and the failure.
    fn stop_failing(&mut self) {
        self.failing = None;
        self.shared.failure.set_unwritten(None);
        if self.shared.failure.recovered() {
            self.shared
                .root
                .failing_receivers
                .fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The receiver is gone: nothing buffered will be read.
    fn discard(&mut self) {
        self.buffer.clear();
        self.record_ends.clear();
        self.stop_failing();
    }

    /// Writes `range` of the buffer to the current segment (opening one if needed); returns
    /// the bytes the disk grew by.
    fn write_chunk(&mut self, range: std::ops::Range<usize>) -> std::io::Result<u64> {
        let mut grown = 0;
        if self.segment.is_none() {
            let id = self.next_segment;
            let created = SegmentWriter::create(&self.shared.dir, id)?;
            self.next_segment += 1;
            grown += created.len();
            self.shared.segments.lock().push_back(SegmentMeta {
                id,
                first: self.committed,
                end: None,
                bytes: 0,
            });
            self.segment = Some(created);
        }
        let bytes = &self.buffer[range];
        if let Some(segment) = self.segment.as_mut() {
            if let Err(e) = segment.append(bytes) {
                self.shared.disk_bytes.fetch_add(grown, Ordering::AcqRel);
                return Err(e);
            }
        }
        Ok(grown + bytes.len() as u64)
    }

    /// Closes the current segment to appends; an empty one is deleted at once.
    fn seal(&mut self) {
        let Some(sealed) = self.segment.take() else {
            return;
        };
        let mut segments = self.shared.segments.lock();
        if let Some(meta) = segments.back_mut().filter(|meta| meta.id == sealed.id) {
            meta.end = Some(self.committed);
            meta.bytes = sealed.len();
            if meta.first == self.committed {
                if let Some(empty) = segments.pop_back() {
                    self.shared.delete(&empty);
                }
            }
        }
        // A segment the reader finished while it was still open for appends is the writer's
        // to delete: the reader only deletes what was sealed when it got to the end.
        let read = self.shared.read.load(Ordering::Acquire);
        self.shared.delete_read_through(&mut segments, read);
        drop(segments);
        self.shared.seals.fetch_add(1, Ordering::Release);
    }

    /// Writes what is buffered and seals the segment: nothing more will come (the inbox is
    /// closing), so the reader deletes the last segment as soon as it has read it. A failing
    /// disk gets one last attempt; what it still refuses is lost, counted in
    /// [`SpillStats::lost`](crate::SpillStats::lost) and reported to the reader.
    pub(crate) fn finish(&mut self) {
        if let Some(failing) = self.failing.as_mut() {
            failing.retry_at = Instant::now();
        }
        if self.flush() == Flushed::Pending {
            let lost = self.record_ends.len() as u64;
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
            if let Some(kind) = self.shared.failure.failing_kind() {
                self.shared.failure.notify(kind, &self.shared.dir, lost);
            }
            self.discard();
        }
        self.seal();
    }

    /// Under [`DiskFull::DropOldest`], deletes the oldest segments until the buffer fits;
    /// under the other policies, holds sends if the buffer does not fit (it is written
    /// anyway: it was accepted).
    fn apply_limit(&mut self) {
        let limit = self.shared.limit();
        let segments = 1 + self.buffer.len() as u64 / self.shared.root.config.segment_size;
        let needed = self.buffer.len() as u64 + segments * segment::HEADER_LEN;
        if self.shared.disk_bytes.load(Ordering::Acquire) + needed <= limit {
            return;
        }
        if self.shared.root.config.when_full != DiskFull::DropOldest {
            self.shared.hold();
            return;
        }
        let target = limit.saturating_sub(needed);
        if !self.drop_sealed(target) {
            // Sealed segments were not enough: the current one goes too.
            self.seal();
            self.drop_sealed(target);
        }
    }

    /// Deletes sealed segments, oldest first, until the disk holds at most `target` bytes.
    /// Returns whether that was reached.
    ///
    /// The span is *claimed* (`read` jumped past it) before any file goes: a reader that then
    /// fails to open a dropped segment's file finds `read` already beyond it, so its own
    /// exchange fails and it never reports the gap as damage. The other order let a reader
    /// that had listed a segment, and found its file gone, win the exchange and count records
    /// dropped by policy as corrupted.
    pub(super) fn drop_sealed(&mut self, target: u64) -> bool {
        let shared = &self.shared;
        let mut on_disk = shared.disk_bytes.load(Ordering::Acquire);
        let mut segments = shared.segments.lock();
        // The dropped segments are the oldest sealed ones, contiguous: records [first, through).
        let mut doomed = 0;
        for meta in segments.iter() {
            if on_disk <= target || meta.end.is_none() {
                break;
            }
            on_disk = on_disk.saturating_sub(meta.bytes);
            doomed += 1;
        }
        if doomed == 0 {
            return on_disk <= target;
        }
        let first = segments[0].first;
        let through = segments[doomed - 1].end.unwrap_or(first);
        // Claimed under the list's lock, before the segments leave the list: a reader that
        // looks for the segment of its next record and no longer finds it finds `read` moved.
        let read_before = shared.read.fetch_max(through, Ordering::AcqRel);
        let doomed: Vec<_> = segments.drain(..doomed).collect();
        drop(segments);
        // Whatever the reader had not taken before this jump is dropped.
        let from = read_before.max(first);
        if through > from {
            shared.dropped.fetch_add(through - from, Ordering::Relaxed);
        }
        #[cfg(test)]
        crate::spill::test_hooks::run(crate::spill::test_hooks::Point::AfterClaim);
        for meta in &doomed {
            shared.delete(meta);
        }
        shared.disk_bytes.load(Ordering::Acquire) <= target
    }
}
