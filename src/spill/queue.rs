//! The spilling part of one receiver's inbox: the dispatcher's [`SpillWriter`], the receiver's
//! [`SpillReader`], and the [`SpillShared`] state between them.
//!
//! # Indexes
//!
//! Every record ever written to disk for this receiver has a global index `0, 1, 2, …`.
//!
//! * `committed`: records before it are in segment files. Stored by the writer (`Release`)
//!   after each successful write.
//! * `read`: records before it have been delivered, or dropped. Advanced by the reader with a
//!   `compare_exchange` per record, and jumped forward by the writer (`fetch_max`) when
//!   [`DiskFull::DropOldest`] deletes segments. Whoever moves it owns the records it passes: a
//!   record is delivered only if the reader's exchange succeeds, and counted as dropped only
//!   if the writer's jump passed it, so nothing is both and nothing is neither.
//!
//! # Writer (dispatcher thread)
//!
//! ```text
//! push(x):  if spilling and nothing buffered and read == committed: spilling = false
//!           if not spilling: try the memory queue; if it is full: spilling = true
//!           if spilling: append x's record to the write buffer
//! flush():  (before every clock publish, and when the buffer is large)
//!           apply the disk limit, write the buffer with one write(), committed += n
//! ```
//!
//! So the memory queue only receives a message when nothing older is on disk or buffered.
//!
//! # Reader (receiver thread), inside [`crate::inbox::InboxReader::poll`]
//!
//! ```text
//! c = clock;  on_disk = committed > next;  pop the memory queue
//! if popped: deliver it                       (older than every disk record)
//! else if on_disk: read record `next`
//! else: nothing below c is anywhere: watermark c
//! ```
//!
//! Why loading `committed` *before* the pop is enough: if the loaded `committed` is above
//! `next`, the record at `next` has not been delivered, so `read <= next < committed` and the
//! writer cannot have moved back to memory since; anything the pop returns is older than that
//! record. If the pop finds memory empty, the record at `next` is the oldest message there
//! is. And because the writer flushes before it publishes, a `committed` loaded after clock
//! `c` covers every record stamped `<= c`.
//!
//! # Segments
//!
//! The writer appends to the newest segment and seals it (records its end index) when it
//! reaches `segment_size`, after a write error, or when the reader asks (after finding damage
//! in it). The reader deletes a segment as soon as it has read its last record. Each seal
//! bumps `seals`, which the reader checks before trusting that the segment it reads is still
//! the newest; the writer seals before it commits records to the next segment, so a reader
//! that sees those records (through `committed`) also sees the seal.
//!
//! # Damage
//!
//! A record that fails its checks poisons the rest of its segment: its framing can no longer
//! be trusted. The reader skips to the segment's end, counts what it skipped in
//! [`SpillStats::corrupted`], and returns a [`SpillFault`].

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::spill::dir::SpillRoot;
use crate::spill::record;
use crate::spill::segment::{self, SegmentReader, SegmentWriter};
use crate::spill::{Codec, DiskFull, FaultKind, SpillFault, SpillStats};
use crate::sync::channel::{self, TrySendError};

/// The write buffer is written out when it holds this much, even within a batch.
const FLUSH_AT: usize = 64 * 1024;

/// How long a failing write waits before it is tried again, at most.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What the writer knows about one segment file.
struct SegmentMeta {
    id: u64,
    /// Index of its first record.
    first: u64,
    /// Index after its last record, once sealed.
    end: Option<u64>,
    /// File size, once sealed (until then counted in `disk_bytes` as it grows).
    bytes: u64,
}

/// State shared by one receiver's writer and reader, and read by status queries.
pub(crate) struct SpillShared {
    root: Arc<SpillRoot>,
    dir: PathBuf,
    name: String,
    committed: AtomicU64,
    read: AtomicU64,
    segments: Mutex<VecDeque<SegmentMeta>>,
    seals: AtomicU64,
    seal_requested: AtomicBool,
    disk_bytes: AtomicU64,
    receiver_alive: AtomicBool,
    /// Whether sends to this receiver are held back; see [`SpillShared::admit`].
    held: AtomicBool,
    gate: Mutex<()>,
    gate_changed: Condvar,
    memory_in: AtomicU64,
    memory_out: AtomicU64,
    spilled: AtomicU64,
    dropped: AtomicU64,
    corrupted: AtomicU64,
    unencodable: AtomicU64,
    write_errors: AtomicU64,
    last_stamp: AtomicUsize,
}

/// Creates the spilling part of a receiver's inbox, in a new directory under `root`.
pub(crate) fn spill_queue<T>(
    root: &Arc<SpillRoot>,
    name: &str,
    codec: Codec<T>,
    seen: usize,
) -> std::io::Result<(SpillWriter<T>, SpillReader<T>, Arc<SpillShared>)> {
    let dir = root.receiver_dir(name)?;
    let shared = Arc::new(SpillShared {
        root: root.clone(),
        dir,
        name: name.to_string(),
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
        memory_in: AtomicU64::new(0),
        memory_out: AtomicU64::new(0),
        spilled: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        corrupted: AtomicU64::new(0),
        unencodable: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
        last_stamp: AtomicUsize::new(seen),
    });
    root.register(&shared);
    let writer = SpillWriter {
        shared: shared.clone(),
        encode: codec.encode,
        spilling: false,
        buffer: Vec::new(),
        record_ends: Vec::new(),
        segment: None,
        committed: 0,
        next_segment: 0,
        memory_in: 0,
    };
    let reader = SpillReader {
        shared: shared.clone(),
        decode: codec.decode,
        current: None,
        next: 0,
        seals_seen: 0,
        scratch: Vec::new(),
        memory_out: 0,
    };
    Ok((writer, reader, shared))
}

impl SpillShared {
    fn limit(&self) -> u64 {
        self.root.config.disk_limit
    }

    /// The sender-side gate: `Ok` at once unless sends are held; then, under
    /// [`DiskFull::Reject`], `Err(limit)`; otherwise waits until the reader frees room or goes.
    pub(crate) fn admit(&self) -> Result<(), u64> {
        if !self.held.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.root.config.when_full == DiskFull::Reject {
            return Err(self.limit());
        }
        let mut guard = self.gate.lock();
        while self.held.load(Ordering::Acquire) && self.receiver_alive.load(Ordering::Acquire) {
            // The timeout only guards against a missed notification; releases notify.
            self.gate_changed
                .wait_for(&mut guard, Duration::from_millis(50));
        }
        Ok(())
    }

    /// Holds back sends to this receiver.
    fn hold(&self) {
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
    fn release(&self) {
        let _guard = self.gate.lock();
        if self.held.swap(false, Ordering::AcqRel) {
            self.root.held_receivers.fetch_sub(1, Ordering::AcqRel);
        }
        self.gate_changed.notify_all();
    }

    /// Releases the hold if the disk is back under its limit.
    fn release_if_room(&self) {
        if self.held.load(Ordering::Acquire)
            && self.disk_bytes.load(Ordering::Acquire) < self.limit()
        {
            self.release();
        }
    }

    /// Deletes every sealed segment, oldest first, whose records all lie below `read` (taken
    /// or dropped). Both ends call it: the reader when it leaves a segment, the writer when it
    /// seals one the reader had already finished.
    fn delete_read_through(&self, segments: &mut VecDeque<SegmentMeta>, read: u64) {
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
    fn delete(&self, meta: &SegmentMeta) {
        let _ = fs::remove_file(self.dir.join(segment::file_name(meta.id)));
        self.disk_bytes.fetch_sub(meta.bytes, Ordering::AcqRel);
    }

    /// A snapshot for status queries.
    pub(crate) fn stats(&self) -> SpillStats {
        let read = self.read.load(Ordering::Acquire);
        let committed = self.committed.load(Ordering::Acquire);
        let memory_out = self.memory_out.load(Ordering::Relaxed);
        let memory_in = self.memory_in.load(Ordering::Relaxed);
        SpillStats {
            receiver: self.name.clone(),
            in_memory: memory_in.saturating_sub(memory_out),
            on_disk: committed.saturating_sub(read),
            disk_bytes: self.disk_bytes.load(Ordering::Acquire),
            segments: self.segments.lock().len() as u64,
            spilled: self.spilled.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            corrupted: self.corrupted.load(Ordering::Relaxed),
            unencodable: self.unencodable.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            sends_held: self.held.load(Ordering::Acquire),
            last_stamp: self.last_stamp.load(Ordering::Relaxed),
        }
    }

    /// Whether the receiver still exists.
    pub(crate) fn receiver_alive(&self) -> bool {
        self.receiver_alive.load(Ordering::Acquire)
    }

    /// Records the highest stamp the receiver has returned (for status queries).
    pub(crate) fn note_seen(&self, stamp: usize) {
        self.last_stamp.store(stamp, Ordering::Relaxed);
    }
}

impl Drop for SpillShared {
    fn drop(&mut self) {
        if self.held.load(Ordering::Acquire) {
            self.root.held_receivers.fetch_sub(1, Ordering::AcqRel);
        }
        // Writer and reader are both gone: nobody will read what is left.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The dispatcher's end of a spilling inbox.
pub(crate) struct SpillWriter<T> {
    shared: Arc<SpillShared>,
    encode: fn(&T, &mut Vec<u8>) -> Result<(), postcard::Error>,
    /// Whether new messages go to the write buffer instead of the memory queue.
    spilling: bool,
    buffer: Vec<u8>,
    /// Where each record in `buffer` ends (one entry per buffered record).
    record_ends: Vec<usize>,
    segment: Option<SegmentWriter>,
    committed: u64,
    next_segment: u64,
    memory_in: u64,
}

impl<T> SpillWriter<T> {
    /// Appends `item` behind everything already queued for this receiver, never waiting for
    /// the reader. Returns `Ok(true)` if it went to the write buffer (so [`flush`](Self::flush)
    /// must run before the clock is published), `Ok(false)` if it went to memory, and the item
    /// back if the receiver is gone.
    pub(crate) fn push(
        &mut self,
        memory: &channel::Sender<(T, usize)>,
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
            match memory.try_send(item) {
                Ok(()) => {
                    self.memory_in += 1;
                    self.shared
                        .memory_in
                        .store(self.memory_in, Ordering::Relaxed);
                    return Ok(false);
                }
                Err(TrySendError::Full(item)) => {
                    self.spilling = true;
                    item
                }
                Err(TrySendError::Disconnected(item)) => return Err(item),
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
            self.flush();
        }
        Ok(true)
    }

    /// Writes the buffer out. Returns at once if it is empty. Segments are filled up to
    /// `segment_size` at record boundaries (a record larger than that gets a segment of its
    /// own), with one `write` per segment touched.
    ///
    /// If the disk fails, holds sends to this receiver and retries, in a fresh segment, until
    /// the write succeeds or the receiver is gone: the dispatcher waits (like
    /// [`DiskFull::Block`]), and accepted data is never dropped.
    pub(crate) fn flush(&mut self) {
        if self.record_ends.is_empty() {
            return;
        }
        if self.shared.seal_requested.swap(false, Ordering::AcqRel) {
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
            let mut pause = Duration::from_millis(1);
            let written = loop {
                if !self.shared.receiver_alive.load(Ordering::Acquire) {
                    self.buffer.clear();
                    self.record_ends.clear();
                    return;
                }
                match self.write_chunk(from_byte..to_byte) {
                    Ok(written) => break written,
                    Err(_) => {
                        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                        self.shared.hold();
                        self.seal();
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
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
        let over = self.shared.disk_bytes.load(Ordering::Acquire) >= self.shared.limit();
        if over && self.shared.root.config.when_full != DiskFull::DropOldest {
            self.shared.hold();
        } else if !over && self.shared.held.load(Ordering::Acquire) {
            // A failing disk that recovered.
            self.shared.release();
        }
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
    /// closing), so the reader deletes the last segment as soon as it has read it.
    pub(crate) fn finish(&mut self) {
        self.flush();
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
    fn drop_sealed(&mut self, target: u64) -> bool {
        let shared = &self.shared;
        let mut segments = shared.segments.lock();
        // The dropped segments are contiguous: records [first, through).
        let mut span: Option<(u64, u64)> = None;
        while shared.disk_bytes.load(Ordering::Acquire) > target {
            let Some(end) = segments.front().and_then(|front| front.end) else {
                break;
            };
            if let Some(oldest) = segments.pop_front() {
                let first = span.map_or(oldest.first, |(first, _)| first);
                span = Some((first, end));
                shared.delete(&oldest);
            }
        }
        drop(segments);
        if let Some((first, through)) = span {
            // Whatever the reader had not taken before this jump is dropped.
            let read_before = shared.read.fetch_max(through, Ordering::AcqRel);
            let from = read_before.max(first);
            if through > from {
                shared.dropped.fetch_add(through - from, Ordering::Relaxed);
            }
        }
        shared.disk_bytes.load(Ordering::Acquire) <= target
    }
}

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
    decode: fn(&[u8]) -> Result<T, postcard::Error>,
    current: Option<Current>,
    /// Index of the next record to read.
    next: u64,
    seals_seen: u64,
    scratch: Vec<u8>,
    memory_out: u64,
}

impl<T> SpillReader<T> {
    /// The state shared with the writer.
    pub(crate) fn shared(&self) -> &Arc<SpillShared> {
        &self.shared
    }

    /// Whether a record is committed and not yet read. Must be loaded *before* the memory
    /// queue is popped (see the module doc).
    pub(crate) fn on_disk(&self) -> bool {
        self.shared.committed.load(Ordering::Acquire) > self.next
    }

    /// Counts a message taken from the memory queue (for status queries).
    pub(crate) fn took_from_memory(&mut self) {
        self.memory_out += 1;
        self.shared
            .memory_out
            .store(self.memory_out, Ordering::Relaxed);
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
