//! The journal: restart, replay, commit, durability modes, damage.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use clocked_dispatch::{Builder, Dispatcher, Durability, FaultKind, JournalError, SendErrorKind};

mod support;

use support::journal::{drain, read_through, segment_files};

fn open(dir: &Path, durability: Durability) -> Dispatcher<u64> {
    Builder::new()
        .bound(16)
        .inbox_capacity(1024)
        .journal(dir)
        .durability(durability)
        .build_journaled::<u64>()
        .unwrap()
}

#[test]
fn the_clock_resumes_and_uncommitted_messages_are_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::None);
        let (tx, rx) = d.new("tx", "rx");
        let (tx_b, rx_b) = d.new("tx_b", "other");
        for v in 0..10 {
            tx.send(v).unwrap();
            tx_b.send(100 + v).unwrap();
        }
        // rx processes 4 messages and commits them; "other" commits nothing.
        for expected in 0..4 {
            let (value, stamp) = loop {
                if let (Some(v), s) = rx.recv().unwrap() {
                    break (v, s);
                }
            };
            assert_eq!(value, expected);
            rx.commit(stamp).unwrap();
        }
        drop(rx_b);
    }
    let d = open(dir.path(), Durability::None);
    let report = d.recovery().unwrap().clone();
    assert_eq!(report.last_stamp, 20);
    assert_eq!(report.messages, 20);
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.gaps.is_empty());
    let (tx, rx) = d.new("tx", "rx");
    tx.send(10).unwrap();
    let got = drain(&rx);
    let values: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(values, (4..11).collect::<Vec<_>>(), "{got:?}");
    assert_eq!(
        got.last().unwrap().1,
        21,
        "new stamps start above the journal's"
    );
    let stamps: Vec<usize> = got.iter().map(|g| g.1).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    let (_tx_b, rx_b) = d.new("tx_b", "other");
    let other: Vec<u64> = drain(&rx_b).into_iter().map(|g| g.0).collect();
    assert_eq!(other, (100..110).collect::<Vec<_>>());
}

#[test]
fn a_receiver_made_again_in_the_same_run_gets_what_its_predecessor_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path(), Durability::None);
    let (tx, rx) = d.new("tx", "rx");
    tx.send_all(0..5).unwrap();
    let (first, stamp) = rx.recv().unwrap();
    assert_eq!(first, Some(0));
    rx.commit(stamp).unwrap();
    drop(rx);
    drop(tx);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(5).unwrap();
    let values: Vec<u64> = drain(&rx).into_iter().map(|g| g.0).collect();
    assert_eq!(values, [1, 2, 3, 4, 5]);
}

#[test]
fn a_name_is_subscribed_to_broadcasts_from_its_first_join_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::None);
        let (tx_a, rx_a) = d.new("tx_a", "a");
        let b = tx_a.clone("bc").into_broadcaster();
        b.broadcast(1).unwrap();
        // Handled before "b" joins (a join is applied before any data queued after it).
        assert_eq!(rx_a.recv().unwrap(), (Some(1), 1));
        let (_tx_b, rx_b) = d.new("tx_b", "b");
        b.broadcast(2).unwrap();
        assert_eq!(drain(&rx_b), [(2, 2)]);
        // "b" has no receiver now, but stays subscribed: stamp 3 is its too.
        drop(rx_b);
        let (_tx_c, rx_c) = d.new("tx_c", "c");
        b.broadcast(3).unwrap();
        assert_eq!(drain(&rx_c), [(3, 3)]);
        drop(rx_a);
    }
    let d = open(dir.path(), Durability::None);
    let (_t, rx_a) = d.new("t", "a");
    assert_eq!(drain(&rx_a), [(1, 1), (2, 2), (3, 3)]);
    let (_t, rx_b) = d.new("tb", "b");
    assert_eq!(drain(&rx_b), [(2, 2), (3, 3)], "not 1: b joined after it");
    let (_t, rx_c) = d.new("tc", "c");
    assert_eq!(drain(&rx_c), [(3, 3)]);
}

#[test]
fn commit_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path(), Durability::None);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(1).unwrap();
    assert!(matches!(
        rx.commit(5),
        Err(JournalError::CommitAhead { stamp: 5, .. })
    ));
    let plain = clocked_dispatch::new::<u64>(4);
    let (ptx, prx) = plain.new("tx", "rx");
    ptx.send(1).unwrap();
    assert!(matches!(prx.commit(0), Err(JournalError::NotJournaled)));
    assert!(matches!(ptx.flush(), Err(JournalError::NotJournaled)));
    assert!(plain.recovery().is_none());
    assert!(matches!(
        Builder::new().build_journaled::<u64>(),
        Err(JournalError::NotJournaled)
    ));
}

#[test]
fn a_second_dispatcher_on_one_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _d = open(dir.path(), Durability::None);
    let second = Builder::new().journal(dir.path()).build_journaled::<u64>();
    assert!(
        matches!(second, Err(JournalError::InUse { .. })),
        "{second:?}"
    );
}

#[test]
fn flush_and_always_return_once_stored() {
    for durability in [Durability::None, Durability::Batch, Durability::Always] {
        let dir = tempfile::tempdir().unwrap();
        {
            let d = open(dir.path(), durability);
            let (tx, _rx) = d.new("tx", "rx");
            let senders: Vec<_> = (0..8)
                .map(|t| {
                    let tx = tx.clone(format!("tx{t}"));
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            tx.send(t * 1000 + i).unwrap();
                        }
                        tx.flush().unwrap();
                    })
                })
                .collect();
            for s in senders {
                s.join().unwrap();
            }
            tx.flush().unwrap();
            // Everything was acknowledged as stored: it is in the files now, whatever happens
            // to this process (the dispatcher is still running).
            let mut reopened = 0;
            for segment in segment_files(dir.path()) {
                reopened += fs::metadata(segment).unwrap().len();
            }
            assert!(reopened > 400 * 10, "{durability:?}: {reopened} bytes");
        }
        let d = open(dir.path(), durability);
        assert_eq!(d.recovery().unwrap().messages, 400, "{durability:?}");
    }
}

#[test]
fn a_torn_tail_is_cut_and_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::None);
        let (tx, rx) = d.new("tx", "rx");
        tx.send_all(0..3).unwrap();
        assert_eq!(drain(&rx).len(), 3);
        // The dispatcher thread must be done writing before the file is damaged.
        drop((tx, rx));
        d.join();
    }
    let last = segment_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&last).unwrap().len();
    // Half a record: a length that promises more than follows.
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]).unwrap();
    drop(file);
    let d = open(dir.path(), Durability::None);
    let report = d.recovery().unwrap();
    assert_eq!(report.truncated_bytes, 11);
    assert!(report.gaps.is_empty());
    assert_eq!(fs::metadata(&last).unwrap().len(), good_len);
    let (_tx, rx) = d.new("tx", "rx");
    assert_eq!(drain(&rx), [(0, 1), (1, 2), (2, 3)]);
}

#[test]
fn a_flipped_bit_in_an_older_segment_is_a_reported_gap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = Builder::new()
            .bound(16)
            .journal(dir.path())
            .journal_segment_size(1)
            .build_journaled::<u64>()
            .unwrap();
        let (tx, rx) = d.new("tx", "rx");
        for v in 0..6 {
            tx.send(v).unwrap();
            // One batch each: each message in its own segment.
            assert_eq!(rx.recv().unwrap().0, Some(v));
        }
        drop((tx, rx));
        d.join();
    }
    // Find the segment holding value 2 (stamp 3) and flip a bit in its last byte (the
    // payload of its message record).
    let files = segment_files(dir.path());
    let mut flipped = None;
    for file in &files {
        let mut bytes = fs::read(file).unwrap();
        let n = bytes.len();
        // postcard encodes 2u64 as the single byte 2, the record's last.
        if n > 30 && bytes[n - 1] == 2 && bytes[n - 14] == 1 {
            bytes[n - 1] ^= 0x10;
            fs::write(file, &bytes).unwrap();
            flipped = Some(file.clone());
            break;
        }
    }
    let flipped = flipped.expect("a segment ending with message 2");
    let d = open(dir.path(), Durability::None);
    let report = d.recovery().unwrap().clone();
    assert_eq!(report.corrupt_records, 1, "{report:?}");
    assert_eq!(report.gaps[0].segment, flipped);
    assert_eq!(report.gaps[0].kind, FaultKind::Checksum);
    let (tx, rx) = d.new("tx", "rx");
    let read = read_through(&tx, &rx, 99);
    assert_eq!(
        read.values,
        [0, 1, 3, 4, 5],
        "2 is lost, never delivered damaged"
    );
    assert_eq!(read.fault_kinds(), [FaultKind::Checksum]);
}

#[test]
fn a_forwarding_dispatcher_resumes_its_released_clock() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::Batch);
        let (tx, rx) = d.new("tx", "rx");
        tx.forward(Some(2), 2).unwrap();
        tx.forward(None, 1).unwrap();
        tx.forward(None, 3).unwrap();
        tx.flush().unwrap();
        assert_eq!(rx.recv().unwrap(), (Some(2), 2));
    }
    let d = open(dir.path(), Durability::Batch);
    assert_eq!(d.recovery().unwrap().last_stamp, 3);
    let (tx, rx) = d.new("tx", "rx");
    assert!(matches!(
        tx.try_forward(Some(9), 3).unwrap_err().kind(),
        SendErrorKind::StaleStamp { .. }
    ));
    tx.forward(Some(4), 4).unwrap();
    assert_eq!(drain(&rx), [(2, 2), (4, 4)]);
}

#[test]
fn try_recv_finds_nothing_until_the_replay_is_planned_then_the_backlog_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::None);
        let (tx, _rx) = d.new("tx", "rx");
        tx.send_all(0..100).unwrap();
        tx.flush().unwrap();
    }
    let d = open(dir.path(), Durability::None);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(100).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while values.len() < 101 && std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok((Some(v), _)) => values.push(v),
            Ok((None, _)) | Err(TryRecvError::Empty) => std::thread::yield_now(),
            Err(TryRecvError::Disconnected) => break,
        }
    }
    assert_eq!(values, (0..101).collect::<Vec<_>>());
}

#[test]
fn a_rewind_replays_again_from_its_stamp_and_bad_rewinds_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::Batch);
        let (tx, rx) = d.new("tx", "rx");
        tx.send_all(0..6).unwrap();
        let got = drain(&rx);
        assert_eq!(got.len(), 6);
        rx.commit(6).unwrap();
        assert!(matches!(
            d.rewind("rx", 2),
            Err(JournalError::ReceiverOpen { .. })
        ));
        assert!(matches!(
            d.rewind("nobody", 2),
            Err(JournalError::UnknownReceiver { .. })
        ));
        drop((tx, rx));
        assert!(matches!(
            d.rewind("rx", 0),
            Err(JournalError::RewindTooOld {
                stamp: 0,
                oldest: 1
            })
        ));
        assert!(matches!(
            d.rewind("rx", 8),
            Err(JournalError::RewindAhead { stamp: 8, clock: 6 })
        ));
        d.rewind("rx", 4).unwrap();
        let (tx, rx) = d.new("tx", "rx");
        assert_eq!(drain(&rx), [(3, 4), (4, 5), (5, 6)]);
        drop((tx, rx));
        d.join();
    }
    // Offline, as the operator tool does it; then a restart replays from there.
    assert!(matches!(
        clocked_dispatch::journal::rewind(dir.path(), "nobody", 1),
        Err(JournalError::UnknownReceiver { .. })
    ));
    clocked_dispatch::journal::rewind(dir.path(), "rx", 2).unwrap();
    let d = open(dir.path(), Durability::Batch);
    let (_tx, rx) = d.new("tx", "rx");
    let values: Vec<u64> = drain(&rx).into_iter().map(|g| g.0).collect();
    assert_eq!(values, [1, 2, 3, 4, 5]);
}

/// A journal with one segment per batch (segment size 1).
fn open_rolling(dir: &Path) -> Dispatcher<u64> {
    Builder::new()
        .bound(16)
        .inbox_capacity(1024)
        .journal(dir)
        .durability(Durability::Batch)
        .journal_segment_size(1)
        .build_journaled::<u64>()
        .unwrap()
}

/// Writes a journal in which "rx" got 0..6 (stamps 1 to 6), committed 6, then was rewound to
/// stamp 2 (position 1); a later batch for "other" rolls the segment, so the newest segment's
/// checkpoint restates the rewound position.
fn rewound_then_rolled(dir: &Path) {
    let d = open_rolling(dir);
    let (tx, rx) = d.new("tx", "rx");
    tx.send_all(0..6).unwrap();
    assert_eq!(drain(&rx).len(), 6);
    rx.commit(6).unwrap();
    drop((tx, rx));
    d.rewind("rx", 2).unwrap();
    let (tx_other, rx_other) = d.new("tx_other", "other");
    tx_other.send(100).unwrap();
    assert_eq!(drain(&rx_other), [(100, 7)]);
    drop((tx_other, rx_other));
    d.join();
}

/// Reopens and reads receiver "rx"'s replay up to a sentinel: (values, fault kinds).
fn replay_rx(dir: &Path) -> (Vec<u64>, Vec<FaultKind>) {
    let d = open_rolling(dir);
    let (tx, rx) = d.new("tx", "rx");
    let read = read_through(&tx, &rx, 999);
    (read.values.clone(), read.fault_kinds())
}

#[test]
fn a_rewind_below_a_commit_survives_a_segment_roll() {
    let dir = tempfile::tempdir().unwrap();
    rewound_then_rolled(dir.path());
    assert!(segment_files(dir.path()).len() >= 3, "the segments rolled");
    let (values, faults) = replay_rx(dir.path());
    assert_eq!(values, [1, 2, 3, 4, 5], "replayed from the rewound stamp");
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn a_checkpoint_restores_a_rewound_position_even_if_the_rewind_record_is_lost() {
    use clocked_dispatch::journal::inspect::{self, Item, RecordKind};

    let dir = tempfile::tempdir().unwrap();
    rewound_then_rolled(dir.path());
    // Damage the operator's `Rewind` (the first one, before the roll): recovery skips it as a
    // gap, and only the next checkpoint can say the position is 1, not the commit's 6.
    let rewind = inspect::records(dir.path())
        .unwrap()
        .find_map(|item| match item {
            Item::Record(record) if matches!(record.kind, RecordKind::Rewind { stamp: 1, .. }) => {
                Some(record)
            }
            _ => None,
        })
        .expect("the rewind record");
    let mut bytes = fs::read(&rewind.segment).unwrap();
    let last = (rewind.offset + rewind.len - 1) as usize;
    bytes[last] ^= 0x01;
    fs::write(&rewind.segment, &bytes).unwrap();

    let (values, faults) = replay_rx(dir.path());
    assert_eq!(values, [1, 2, 3, 4, 5], "replayed from the rewound stamp");
    assert_eq!(
        faults,
        [FaultKind::Checksum],
        "the damaged record is reported"
    );
}

#[test]
fn offline_rewinds_append_to_the_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open(dir.path(), Durability::Batch);
        let (tx, rx) = d.new("tx", "rx");
        tx.send_all(0..12).unwrap();
        assert_eq!(drain(&rx).len(), 12);
        rx.commit(12).unwrap();
        drop((tx, rx));
        d.join();
    }
    let before = segment_files(dir.path()).len();
    for stamp in (3..13).rev() {
        clocked_dispatch::journal::rewind(dir.path(), "rx", stamp).unwrap();
    }
    let after = segment_files(dir.path()).len();
    assert!(after <= before + 1, "{before} segments, then {after}");
    // The last rewind (to stamp 3) is the one that counts.
    let d = open(dir.path(), Durability::Batch);
    assert!(d.recovery().unwrap().gaps.is_empty());
    let (_tx, rx) = d.new("tx", "rx");
    let values: Vec<u64> = drain(&rx).into_iter().map(|g| g.0).collect();
    assert_eq!(values, (2..12).collect::<Vec<_>>());
}

/// A journal (one segment) in which "rx" got 0..6 at stamps 1 to 6 and committed nothing.
fn six_messages_one_segment(dir: &Path) -> PathBuf {
    let d = open(dir, Durability::Batch);
    let (tx, rx) = d.new("tx", "rx");
    tx.send_all(0..6).unwrap();
    assert_eq!(drain(&rx).len(), 6);
    drop((tx, rx));
    d.join();
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    files[0].clone()
}

/// The message record with stamp `stamp`: (offset, length on disk).
fn message_record(dir: &Path, stamp: usize) -> (usize, usize) {
    use clocked_dispatch::journal::inspect::{self, Item};

    inspect::records(dir)
        .unwrap()
        .find_map(|item| match item {
            Item::Record(record) if record.payload().is_some() && record.stamp() == Some(stamp) => {
                Some((record.offset as usize, record.len as usize))
            }
            _ => None,
        })
        .expect("the message record")
}

/// Reopens, and reads "rx"'s replay up to a sentinel: (the dispatcher, values, fault kinds).
fn replay_rx_plain(dir: &Path) -> (Dispatcher<u64>, Vec<u64>, Vec<FaultKind>) {
    let d = open(dir, Durability::Batch);
    let (tx, rx) = d.new("tx", "rx");
    let read = read_through(&tx, &rx, 999);
    (d, read.values.clone(), read.fault_kinds())
}

#[test]
fn a_bad_checksum_in_the_middle_of_the_newest_segment_is_a_gap_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let segment = six_messages_one_segment(dir.path());
    let (offset, len) = message_record(dir.path(), 3);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[offset + len - 1] ^= 0x10;
    fs::write(&segment, &bytes).unwrap();

    let (d, values, faults) = replay_rx_plain(dir.path());
    let report = d.recovery().unwrap();
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    assert_eq!(report.gaps[0].kind, FaultKind::Checksum);
    assert_eq!(report.gaps[0].offset, offset as u64);
    assert_eq!(report.damaged_tail, None);
    assert_eq!(report.messages, 5);
    assert_eq!(fs::metadata(&segment).unwrap().len(), bytes.len() as u64);
    assert_eq!(
        values,
        [0, 1, 3, 4, 5],
        "the records after the damage are recovered"
    );
    assert_eq!(faults, [FaultKind::Checksum]);
}

#[test]
fn a_bad_length_in_the_middle_of_the_newest_segment_is_a_gap_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segment = six_messages_one_segment(dir.path());
    let (offset, _) = message_record(dir.path(), 3);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[offset..offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&segment, &bytes).unwrap();
    let verified = clocked_dispatch::journal::inspect::verify(dir.path()).unwrap();
    assert_eq!(verified.gaps.len(), 1, "{verified:?}");
    assert_eq!(
        verified.torn_tail, None,
        "inspect classifies as recovery does"
    );

    let (d, values, faults) = replay_rx_plain(dir.path());
    let report = d.recovery().unwrap();
    assert_eq!(
        report.truncated_bytes, 0,
        "acknowledged records are not cut"
    );
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    assert_eq!(report.gaps[0].offset, offset as u64);
    assert!(matches!(report.gaps[0].kind, FaultKind::BadLength(_)));
    assert_eq!(
        fs::read(&segment).unwrap(),
        bytes,
        "the segment is left as it was"
    );
    // The records after a length that cannot be trusted cannot be framed: the rest of the
    // segment is a gap (kept on disk), as in an older segment.
    assert_eq!(values, [0, 1]);
    assert_eq!(faults.len(), 1, "{faults:?}");
}

#[test]
fn a_damaged_last_record_is_cut_as_torn_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let segment = six_messages_one_segment(dir.path());
    // The segment's last record (a tick after the messages, as the dispatcher writes it).
    let last = clocked_dispatch::journal::inspect::records(dir.path())
        .unwrap()
        .filter_map(|item| match item {
            clocked_dispatch::journal::inspect::Item::Record(record) => Some(record),
            _ => None,
        })
        .last()
        .expect("records");
    let (offset, len) = (last.offset as usize, last.len as usize);
    let lost_message = last.payload().is_some();
    let mut bytes = fs::read(&segment).unwrap();
    assert_eq!(offset + len, bytes.len(), "the last record");
    bytes[offset + len - 1] ^= 0x10;
    fs::write(&segment, &bytes).unwrap();
    let verified = clocked_dispatch::journal::inspect::verify(dir.path()).unwrap();
    assert!(verified.gaps.is_empty(), "{verified:?}");
    assert_eq!(
        verified.torn_tail.map(|t| (t.offset, t.kind)),
        Some((offset as u64, FaultKind::Checksum))
    );

    let (d, values, faults) = replay_rx_plain(dir.path());
    let report = d.recovery().unwrap();
    assert_eq!(report.truncated_bytes, len as u64);
    assert!(report.gaps.is_empty(), "{report:?}");
    let reported = report.damaged_tail.as_ref().expect("reported");
    assert_eq!(
        (reported.offset, reported.bytes, reported.kind),
        (offset as u64, len as u64, FaultKind::Checksum)
    );
    assert_eq!(fs::metadata(&segment).unwrap().len(), offset as u64);
    let sent = if lost_message { 5 } else { 6 };
    assert_eq!(values, (0..sent).collect::<Vec<_>>());
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn zeros_after_the_last_record_are_a_torn_tail_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let segment = six_messages_one_segment(dir.path());
    let good_len = fs::metadata(&segment).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0; 64]).unwrap();
    drop(file);

    let (d, values, _) = replay_rx_plain(dir.path());
    let report = d.recovery().unwrap();
    assert_eq!(report.truncated_bytes, 64);
    assert!(report.gaps.is_empty(), "{report:?}");
    assert_eq!(report.damaged_tail, None, "a crash explains zeros");
    assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
}
