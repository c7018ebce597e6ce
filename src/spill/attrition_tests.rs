//! Attrition ([`DiskFull::DropOldest`]) racing the reader, forced into each interleaving the
//! protocol allows with [`test_hooks`]: whatever the order, records dropped by policy are
//! counted as dropped and never reported as damage, and the reader goes on with the first
//! record after the dropped span.
//!
//! The interleaving of the old defect (files deleted *before* `read` was moved, so a reader
//! that found a file gone could win the exchange and report the gap as corruption, about one
//! run in ten of `tests/spill.rs`) cannot be built any more: the writer claims the span under
//! the list's lock before it unlists or deletes anything. These tests pin the two orders that
//! remain.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::ring::{self, RingReader};
use crate::spill::dir::SpillRoot;
use crate::spill::queue::spill_queue;
use crate::spill::reader::{SpillReader, Took};
use crate::spill::shared::SpillShared;
use crate::spill::test_hooks::{self, Point};
use crate::spill::writer::SpillWriter;
use crate::spill::{Codec, DiskFull, SpillConfig};

/// Records per segment: a record of a small `u64` is 17 bytes (12 framing, 8 stamp... see
/// `record.rs`), a segment holds a 16-byte header and three of them.
const SEGMENT_SIZE: u64 = 16 + 3 * 17;

struct Fixture {
    _dir: tempfile::TempDir,
    writer: Rc<RefCell<SpillWriter<u64>>>,
    reader: Rc<RefCell<SpillReader<u64>>>,
    shared: std::sync::Arc<SpillShared>,
    _memory: RingReader<(u64, usize)>,
}

/// A spill holding stamps 2..=13 on disk in four segments of three (the first three sealed),
/// stamp 1 in memory.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = SpillConfig {
        memory_capacity: 1,
        disk_limit: 1 << 20,
        when_full: DiskFull::DropOldest,
        segment_size: SEGMENT_SIZE,
    };
    let gauges = std::sync::Arc::new(crate::status::Gauges::new("rx".into(), 0));
    let root = SpillRoot::open(dir.path().to_path_buf(), config).unwrap();
    let (mut writer, reader, shared) = spill_queue(&root, "rx", Codec::postcard(), gauges).unwrap();
    let (mut memory, memory_rx) = ring::ring(1);
    for stamp in 1..=13usize {
        assert!(writer.push(&mut memory, (stamp as u64, stamp)).is_ok());
    }
    writer.flush();
    assert_eq!(shared.committed.load(Ordering::Acquire), 12);
    assert_eq!(shared.segments.lock().len(), 4);
    Fixture {
        _dir: dir,
        writer: Rc::new(RefCell::new(writer)),
        reader: Rc::new(RefCell::new(reader)),
        shared,
        _memory: memory_rx,
    }
}

/// What a `take` returned, comparable.
#[derive(Debug, PartialEq)]
enum Seen {
    Data(u64, usize),
    Fault,
    Nothing,
}

fn seen(took: Option<Took<u64>>) -> Seen {
    match took {
        Some(Took::Data(value, stamp)) => Seen::Data(value, stamp),
        Some(Took::Fault(_)) => Seen::Fault,
        None => Seen::Nothing,
    }
}

/// Drops the oldest segment (three records: stamps 2, 3, 4).
fn drop_oldest_segment(writer: &RefCell<SpillWriter<u64>>, shared: &SpillShared) {
    let target = shared.disk_bytes.load(Ordering::Acquire) - 1;
    writer.borrow_mut().drop_sealed(target);
}

fn assert_counted_as_dropped(shared: &SpillShared) {
    let stats = shared.stats();
    assert_eq!(stats.dropped, 3, "{stats:?}");
    assert_eq!(
        stats.corrupted, 0,
        "dropped records reported as damage: {stats:?}"
    );
}

/// The reader has found segment 0 in the list; before it opens the file, attrition claims
/// and deletes it. The open fails with `NotFound`, and that must not be reported.
#[test]
fn segment_deleted_between_listing_and_opening() {
    let f = fixture();
    let (writer, shared) = (f.writer.clone(), f.shared.clone());
    test_hooks::once(Point::BeforeOpen, move || {
        drop_oldest_segment(&writer, &shared);
    });
    let took = seen(f.reader.borrow_mut().take(0));
    assert_eq!(took, Seen::Data(5, 5));
    assert_counted_as_dropped(&f.shared);
}

/// Attrition has claimed segment 0 but not yet deleted it when the reader looks.
#[test]
fn reader_between_claim_and_deletion() {
    let f = fixture();
    let (reader, result) = (f.reader.clone(), Rc::new(RefCell::new(None)));
    let out = result.clone();
    test_hooks::once(Point::AfterClaim, move || {
        *out.borrow_mut() = Some(seen(reader.borrow_mut().take(0)));
    });
    drop_oldest_segment(&f.writer, &f.shared);
    assert_eq!(result.borrow_mut().take(), Some(Seen::Data(5, 5)));
    assert_counted_as_dropped(&f.shared);
}

/// The reader is inside segment 0 (file open) when attrition deletes it: what it has not
/// taken is dropped, and it resumes after the span.
#[test]
fn reader_inside_a_segment_that_is_dropped() {
    let f = fixture();
    assert_eq!(seen(f.reader.borrow_mut().take(0)), Seen::Data(2, 2));
    drop_oldest_segment(&f.writer, &f.shared);
    assert_eq!(seen(f.reader.borrow_mut().take(2)), Seen::Data(5, 5));
    let stats = f.shared.stats();
    assert_eq!((stats.dropped, stats.corrupted), (2, 0), "{stats:?}");
}
