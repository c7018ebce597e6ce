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
//! The writer's side is [`super::writer`], the reader's [`super::reader`], the state between
//! them [`super::shared`].
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
//! c = clock;  c = min(c, hold_below - 1)    (only while the disk is failing)
//! on_disk = committed > next;  pop the memory queue
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
//! `c` covers every record stamped `<= c`, except records a failing disk refused: those are
//! above the cap `hold_below - 1`, published before the clock (see [`super::failure`]).
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

use std::sync::Arc;

use crate::spill::dir::SpillRoot;
use crate::spill::reader::SpillReader;
use crate::spill::shared::SpillShared;
use crate::spill::writer::SpillWriter;
use crate::spill::Codec;
use crate::status::Gauges;

/// Creates the spilling part of a receiver's inbox, in a new directory under `root`.
pub(crate) fn spill_queue<T>(
    root: &Arc<SpillRoot>,
    name: &str,
    codec: Codec<T>,
    gauges: Arc<Gauges>,
) -> std::io::Result<(SpillWriter<T>, SpillReader<T>, Arc<SpillShared>)> {
    let dir = root.receiver_dir(name)?;
    let shared = SpillShared::new(root, dir, gauges);
    let writer = SpillWriter::new(shared.clone(), codec);
    let reader = SpillReader::new(shared.clone(), codec);
    Ok((writer, reader, shared))
}
