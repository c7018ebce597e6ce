//! The inspection API against journals written by real dispatchers.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::journal::{frame, segments};
use crate::{Builder, ClockedReceiver, Dispatcher, FaultKind};

fn open(dir: &Path, segment_size: u64) -> Dispatcher<u64> {
    Builder::new()
        .bound(16)
        .inbox_capacity(1 << 16)
        .journal(dir)
        .journal_segment_size(segment_size)
        .build_journaled::<u64>()
        .unwrap()
}

/// The next data message, skipping watermarks.
fn next(rx: &ClockedReceiver<u64>) -> (u64, usize) {
    loop {
        if let (Some(v), stamp) = rx.recv().unwrap() {
            return (v, stamp);
        }
    }
}

/// Everything the receiver holds now.
fn drain(rx: &ClockedReceiver<u64>) -> Vec<(u64, usize)> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((Some(v), stamp)) => got.push((v, stamp)),
            Ok((None, _)) => {}
            Err(_) => return got,
        }
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segments::list(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.1)
        .collect()
}

fn name<'a>(status: &'a JournalStatus, name: &str) -> &'a NameStatus {
    status
        .receivers
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} in {status:?}"))
}

/// The values of the `Data` records the iterator returns, and the damage it reports.
fn data_and_damage(dir: &Path) -> (Vec<u64>, Vec<Item>) {
    let mut values = Vec::new();
    let mut damage = Vec::new();
    for item in records(dir).unwrap() {
        match item {
            Item::Record(Record {
                kind: RecordKind::Data { payload, .. },
                ..
            }) => values.push(postcard::from_bytes(&payload).unwrap()),
            Item::Record(_) => {}
            other => damage.push(other),
        }
    }
    (values, damage)
}

/// Sends, broadcasts and commits with known stamps (one segment per batch, or one segment):
///
/// | stamps | what                                  |
/// |--------|---------------------------------------|
/// | 1-5    | data for `a` (10-14)                  |
/// | 6-8    | data for `b` (20-22)                  |
/// | 9-10   | broadcasts while `a`, `b` are open    |
/// | 11     | a broadcast once `c` has joined too   |
///
/// `a` commits 9, `b` commits 7, `c` nothing.
#[test]
fn status_counts_each_names_messages_commits_and_backlog() {
    for segment_size in [1, DEFAULT_SEGMENT] {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), segment_size);
        let (tx_a, rx_a) = d.new("tx_a", "a");
        let bc = tx_a.clone("bc").into_broadcaster();
        let (tx_b, rx_b) = d.new("tx_b", "b");
        tx_a.send_all(10..15).unwrap();
        tx_b.send_all(20..23).unwrap();
        bc.broadcast(100).unwrap();
        bc.broadcast(101).unwrap();
        // Every message so far is written (written before delivered): `c` joins after them.
        let b_got: Vec<_> = (0..5).map(|_| next(&rx_b)).collect();
        assert_eq!(b_got, [(20, 6), (21, 7), (22, 8), (100, 9), (101, 10)]);
        rx_b.commit(7).unwrap();
        let (tx_c, rx_c) = d.new("tx_c", "c");
        bc.broadcast(102).unwrap();
        assert_eq!(next(&rx_c), (102, 11));
        let mut a_got = Vec::new();
        while a_got.len() < 8 {
            a_got.push(next(&rx_a));
        }
        assert_eq!(a_got.last(), Some(&(102, 11)));
        rx_a.commit(9).unwrap();

        let status = super::status(dir.path()).unwrap();
        assert_eq!(status.clock, 11, "{segment_size}: {status:?}");
        assert_eq!(status.oldest, 1);
        assert_eq!(status.first_message, Some(1));
        assert_eq!(status.messages, 11);
        assert_eq!((status.gaps, status.torn_tail_bytes), (0, 0));
        assert_eq!(status.segments, segment_files(dir.path()).len() as u64);
        if segment_size == 1 {
            assert!(status.segments > 5, "{status:?}");
        }
        let on_disk: u64 = segment_files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(status.bytes, on_disk);
        let names: Vec<&str> = status.receivers.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);

        // A u64 below 128 is one postcard byte: data records are 8 + 13 + 1 bytes,
        // broadcasts 8 + 9 + 1.
        let a = name(&status, "a");
        assert_eq!(a.committed, 9);
        assert_eq!((a.messages, a.consumed, a.backlog), (8, 6, 2));
        assert_eq!(a.backlog_bytes, 2 * 18);
        assert_eq!(a.percent_consumed(), 75.0);
        assert_eq!((a.oldest, a.newest), (Some(1), Some(11)));
        let b = name(&status, "b");
        assert_eq!(b.committed, 7);
        assert_eq!((b.messages, b.consumed, b.backlog), (6, 2, 4));
        assert_eq!(b.backlog_bytes, 22 + 3 * 18);
        assert_eq!((b.oldest, b.newest), (Some(6), Some(11)));
        let c = name(&status, "c");
        assert_eq!((c.committed, c.messages, c.backlog), (0, 1, 1));
        assert_eq!((c.oldest, c.newest), (Some(11), Some(11)));
        assert_eq!(c.percent_consumed(), 0.0);

        drop((tx_a, tx_b, tx_c, rx_a, rx_b, rx_c, bc));
        d.join();
        // Offline rewind of `a` to stamp 5: position 4; status follows the `Rewind` record.
        crate::journal::rewind(dir.path(), "a", 5).unwrap();
        let after = super::status(dir.path()).unwrap();
        let a = name(&after, "a");
        assert_eq!(a.committed, 4);
        assert_eq!((a.consumed, a.backlog), (4, 4));
        assert_eq!(a.backlog_bytes, 22 + 3 * 18);

        // The backlog is what a restart replays.
        let d = open(dir.path(), segment_size);
        let (_tx, rx_a) = d.new("tx_a", "a");
        let replayed: Vec<usize> = drain(&rx_a).into_iter().map(|g| g.1).collect();
        assert_eq!(replayed, [5, 9, 10, 11]);
        let (_tx, rx_b) = d.new("tx_b", "b");
        assert_eq!(drain(&rx_b).len() as u64, b.backlog);
    }
}

const DEFAULT_SEGMENT: u64 = crate::DEFAULT_JOURNAL_SEGMENT_SIZE;

/// Six messages, one segment each (value `v` stamped `v + 1`); the dispatcher is gone.
fn six_segments(dir: &Path) {
    let d = open(dir, 1);
    let (tx, rx) = d.new("tx", "rx");
    for v in 0..6 {
        tx.send(v).unwrap();
        assert_eq!(next(&rx).0, v);
    }
    drop((tx, rx));
    d.join();
}

#[test]
fn a_flipped_bit_is_reported_by_verify_and_skipped_by_the_iterator() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let clean = verify(dir.path()).unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.messages, 6);
    assert_eq!(clean.torn_tail, None);

    // The record of value 2: find it, then flip a bit of its payload.
    let (segment, offset, len) = records(dir.path())
        .unwrap()
        .find_map(|item| match item {
            Item::Record(r) if r.kind == data(3, 0, vec![2]) => Some((r.segment, r.offset, r.len)),
            _ => None,
        })
        .expect("value 2's record");
    let mut bytes = fs::read(&segment).unwrap();
    bytes[(offset + len - 1) as usize] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();

    let report = verify(dir.path()).unwrap();
    assert!(!report.is_clean());
    assert_eq!(
        report.gaps,
        [JournalGap {
            segment: segment.to_path_buf(),
            offset,
            bytes: len,
            kind: FaultKind::Checksum,
        }]
    );
    assert_eq!(report.messages, 5);
    assert_eq!(report.records, clean.records - 1);
    assert_eq!(
        (report.segments, report.bytes),
        (clean.segments, clean.bytes)
    );

    let (values, damage) = data_and_damage(dir.path());
    assert_eq!(
        values,
        [0, 1, 3, 4, 5],
        "2 is skipped, never returned damaged"
    );
    assert_eq!(damage, [Item::Gap(report.gaps[0].clone())]);
    let status = super::status(dir.path()).unwrap();
    assert_eq!((status.messages, status.gaps), (5, 1));
    assert_eq!(name(&status, "rx").messages, 5);
}

fn data(stamp: usize, receiver: u32, payload: Vec<u8>) -> RecordKind {
    RecordKind::Data {
        stamp,
        receiver,
        payload,
    }
}

#[test]
fn damage_at_the_newest_segments_end_is_its_torn_tail_unless_a_good_record_follows() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let newest = segment_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&newest).unwrap().len();
    // A record whose checksum is wrong, then half a record.
    let mut bad = Vec::new();
    frame::append_entry(&mut bad, &Entry::Tick { stamp: 99 });
    bad[4] ^= 1;
    let mut file = OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&bad).unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
    drop(file);

    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "a torn tail is not damage: {report:?}");
    let tail = report.torn_tail.clone().expect("a torn tail");
    assert_eq!((tail.offset, tail.bytes), (good_len, bad.len() as u64 + 6));
    assert_eq!((&tail.segment, tail.kind), (&newest, FaultKind::Checksum));
    let (values, damage) = data_and_damage(dir.path());
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
    assert_eq!(damage, [Item::TornTail(tail)]);
    assert_eq!(
        status(dir.path()).unwrap().torn_tail_bytes,
        bad.len() as u64 + 6
    );

    // A good record after the damaged one: the damaged one is a gap, the half one the tail.
    let mut good = Vec::new();
    frame::append_entry(&mut good, &Entry::Tick { stamp: 7 });
    let len = good_len + bad.len() as u64;
    let file = OpenOptions::new().write(true).open(&newest).unwrap();
    file.set_len(len).unwrap();
    drop(file);
    let mut file = OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&good).unwrap();
    file.write_all(&[40, 0, 0]).unwrap();
    drop(file);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    assert_eq!(report.gaps[0].offset, good_len);
    assert_eq!(report.gaps[0].kind, FaultKind::Checksum);
    let tail = report.torn_tail.unwrap();
    assert_eq!((tail.offset, tail.bytes), (len + good.len() as u64, 3));
    assert_eq!(tail.kind, FaultKind::Truncated);
}

#[test]
fn a_segment_deleted_while_reading_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let mut items = records(dir.path()).unwrap();
    let first = items.next().unwrap();
    assert!(matches!(first, Item::Record(_)), "{first:?}");
    // The segment holding value 3 goes while the iterator is at the first.
    let doomed = segment_files(dir.path())
        .into_iter()
        .find(|p| {
            records_of(p)
                .iter()
                .any(|k| matches!(k, RecordKind::Data { payload, .. } if payload == &[3]))
        })
        .unwrap();
    fs::remove_file(&doomed).unwrap();
    let mut values = Vec::new();
    for item in items {
        match item {
            Item::Record(Record {
                kind: RecordKind::Data { payload, .. },
                segment,
                ..
            }) => {
                assert_ne!(&*segment, doomed.as_path());
                values.push(payload[0]);
            }
            Item::Record(_) => {}
            damage => panic!("{damage:?}"),
        }
    }
    assert_eq!(values, [0, 1, 2, 4, 5]);
}

/// The records of one segment file, read alone.
fn records_of(path: &Path) -> Vec<RecordKind> {
    let mut reader = crate::journal::scan::SegmentReader::open(path, u64::MAX).unwrap();
    let mut kinds = Vec::new();
    while let crate::journal::scan::Step::Entry(entry) = reader.next_step() {
        kinds.push(walk::owned(&entry));
    }
    kinds
}

/// The first `n` data values `rx` gets (each within 10 s), then checks that no more follow.
fn take(rx: &ClockedReceiver<u64>, n: usize) -> Vec<u64> {
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((Some(v), _)) => values.push(v),
            Ok((None, _)) => {}
            Err(e) => panic!("{e:?} after {} of {n} values", values.len()),
        }
    }
    while let Ok((value, _)) = rx.recv_timeout(Duration::from_millis(100)) {
        assert_eq!(value, None, "more than {n} values");
    }
    values
}

/// How many messages the live sender of the snapshot tests sends: paced at 64 per
/// millisecond, it writes for half a second or more, rolling about 40 segments of 16 KiB.
const LIVE_MESSAGES: u64 = 30_000;

#[test]
fn a_snapshot_taken_while_a_sender_runs_reopens_clean_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the sender rolls several even on a loaded machine.
    let d = open(dir.path(), 16 << 10);
    let (tx, rx) = d.new("tx", "rx");
    let sender = std::thread::spawn(move || {
        for v in 0..LIVE_MESSAGES {
            tx.send(v).unwrap();
            if (v + 1).is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let reader = std::thread::spawn(move || {
        let mut read = 0u64;
        while let Ok((value, _)) = rx.recv() {
            if let Some(v) = value {
                assert_eq!(v, read);
                read += 1;
            }
        }
        read
    });
    // Snapshots while the sender runs (at most 20), each once the journal has grown by a
    // segment since the last: paced by the sender's progress, not by time, so that a sender
    // slowed down by a loaded machine still leaves snapshots of a journal several segments
    // long.
    let mut snapshots: Vec<(tempfile::TempDir, SnapshotReport)> = Vec::new();
    let mut while_sending = 0;
    let mut segments_seen = 0;
    while !sender.is_finished() && snapshots.len() < 20 {
        std::thread::sleep(Duration::from_millis(2));
        let segments_now = segment_files(dir.path()).len();
        if segments_now <= segments_seen {
            continue;
        }
        segments_seen = segments_now;
        let out = tempfile::tempdir().unwrap();
        let running = !sender.is_finished();
        let report = snapshot(dir.path(), out.path().join("copy")).unwrap();
        if running && !sender.is_finished() {
            while_sending += 1;
        }
        snapshots.push((out, report));
    }
    sender.join().unwrap();
    assert_eq!(reader.join().unwrap(), LIVE_MESSAGES);
    d.join();
    assert!(
        while_sending >= 2,
        "{while_sending} snapshots while sending"
    );
    assert!(
        snapshots.iter().any(|s| s.1.segments >= 3),
        "the journal spanned 3 segments or more"
    );

    let mut clocks = Vec::new();
    for (out, report) in &snapshots {
        let copy = out.path().join("copy");
        // Every copied segment is a prefix of the original's (whole, but for the newest).
        let files = segment_files(&copy);
        assert_eq!(files.len() as u64, report.segments);
        let mut copied = 0;
        for file in &files {
            let mine = fs::read(file).unwrap();
            let theirs = fs::read(dir.path().join(file.file_name().unwrap())).unwrap();
            assert!(theirs.starts_with(&mine), "{file:?}");
            copied += mine.len() as u64;
        }
        assert_eq!(copied, report.bytes);
        assert!(verify(&copy).unwrap().torn_tail.is_none());

        let d = open(&copy, 16 << 10);
        let recovery = d.recovery().unwrap().clone();
        assert_eq!(recovery.truncated_bytes, 0, "{recovery:?}");
        assert!(recovery.gaps.is_empty(), "{recovery:?}");
        assert_eq!(recovery.last_stamp, report.clock);
        let (_tx, rx) = d.new("tx", "rx");
        // One message per stamp, replayed in order: the copy is a prefix of what was sent.
        let values = take(&rx, report.clock);
        assert!(values.iter().enumerate().all(|(i, &v)| v == i as u64));
        clocks.push(report.clock);
    }
    assert!(clocks.windows(2).all(|w| w[0] <= w[1]), "{clocks:?}");
    assert!(*clocks.last().unwrap() > 0);
}

#[test]
fn a_snapshot_refuses_a_destination_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("keep.txt"), b"mine").unwrap();
    let err = snapshot(dir.path(), out.path()).unwrap_err();
    let kind = match &err {
        JournalError::Io { source, .. } => source.kind(),
        other => panic!("{other:?}"),
    };
    assert_eq!(kind, std::io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
    assert!(matches!(
        status(dir.path().join("missing")),
        Err(JournalError::Io { .. })
    ));
}

/// Retention deleted messages "slow" had not committed: status counts them as expired, not
/// as backlog, and both agree with what the next receiver's replay gets.
#[test]
fn status_counts_what_retention_deleted_as_expired_not_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let sent = 2000;
    {
        let d = Builder::new()
            .bound(64)
            .inbox_capacity(1 << 16)
            .journal(dir.path())
            .journal_segment_size(2 << 10)
            .journal_retention_bytes(8 << 10)
            .build_journaled::<u64>()
            .unwrap();
        let (tx, slow) = d.new("tx", "slow");
        let (tx_fast, fast) = d.new("tx_fast", "fast");
        for v in 0..sent {
            tx.send(v).unwrap();
            tx_fast.send(v).unwrap();
        }
        tx.flush().unwrap();
        tx_fast.flush().unwrap();
        let mut last = 0;
        while last < 2 * sent as usize {
            last = next(&fast).1;
        }
        fast.commit(last).unwrap();
        // The retention thread deletes after each new segment: wait until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while status(dir.path()).unwrap().oldest == 1 {
            assert!(std::time::Instant::now() < deadline, "nothing was deleted");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop((tx, slow, tx_fast, fast));
        d.join();
    }
    // Reopened without retention: the old journal (and its retention thread) is done once
    // the new dispatcher has the lock, and nothing more is deleted.
    let d = open(dir.path(), 1 << 20);
    let status = status(dir.path()).unwrap();
    let slow = name(&status, "slow");
    assert_eq!(slow.committed, 0);
    assert!(slow.expired > 0, "{slow:?}");
    assert_eq!(slow.backlog, slow.messages, "{slow:?}");
    assert_eq!(slow.backlog + slow.expired, sent, "{slow:?}");
    let fast = name(&status, "fast");
    assert_eq!((fast.backlog, fast.expired), (0, 0), "{fast:?}");

    // The replay reports the same loss, then exactly the backlog.
    let (tx, rx) = d.new("tx", "slow");
    tx.send(u64::MAX).unwrap();
    let mut expired = 0;
    let mut replayed = 0;
    loop {
        match rx.recv_checked() {
            Ok((Some(u64::MAX), _)) => break,
            Ok((Some(_), _)) => replayed += 1,
            Ok((None, _)) => {}
            Err(crate::RecvCheckedError::Spill(fault)) => {
                assert_eq!(fault.kind, FaultKind::Expired);
                expired += fault.messages_lost;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((replayed, expired), (slow.backlog, slow.expired));
}
