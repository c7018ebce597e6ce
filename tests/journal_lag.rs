//! A journaled receiver that falls behind reads its backlog back from the journal: it never
//! stalls the dispatcher (so the others go on), gets every message once, in order, and the
//! handover between memory and journal is seamless however often it happens.

use std::time::{Duration, Instant};

use std::sync::mpsc::RecvTimeoutError;

use clocked_dispatch::{Builder, ClockedReceiver, FaultKind, RecvCheckedError};

const PATIENCE: Duration = Duration::from_secs(20);

/// Reads `rx` until it has returned `count` values, checking that stamps strictly increase;
/// returns the values. `pause` runs after each value (to lag on purpose).
fn read_values(rx: &ClockedReceiver<u64>, count: usize, mut pause: impl FnMut(usize)) -> Vec<u64> {
    let deadline = Instant::now() + PATIENCE;
    let mut values = Vec::with_capacity(count);
    let mut last = 0;
    while values.len() < count {
        assert!(
            Instant::now() < deadline,
            "stalled after {} values",
            values.len()
        );
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok((value, stamp)) => {
                assert!(stamp > last, "stamp {stamp} after {last}");
                last = stamp;
                if let Some(value) = value {
                    values.push(value);
                    pause(values.len());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    values
}

/// A journaled dispatcher whose receivers hold 4 messages in memory: the rest of a backlog
/// is read back from the journal.
fn lagging(dir: &std::path::Path) -> clocked_dispatch::Dispatcher<u64> {
    Builder::new()
        .bound(16)
        .inbox_capacity(4)
        .journal(dir)
        .build_journaled::<u64>()
        .unwrap()
}

#[test]
fn a_receiver_that_does_not_read_stalls_nobody_and_gets_everything_later() {
    let dir = tempfile::tempdir().unwrap();
    let d = lagging(dir.path());
    let (tx_slow, slow) = d.new("tx_slow", "slow");
    let (tx_fast, fast) = d.new("tx_fast", "fast");
    let n = 20_000u64;
    let sender = std::thread::spawn(move || {
        for v in 0..n {
            tx_slow.send(v).unwrap();
            tx_fast.send(v).unwrap();
        }
        (tx_slow, tx_fast)
    });
    // Without the journal taking the slow receiver's backlog, the dispatcher would block on
    // its inbox of 4 and this would stall.
    let got = read_values(&fast, n as usize, |_| {});
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    let handles = sender.join().unwrap();
    assert!(
        slow.backlog() > n / 2,
        "the backlog waits in the journal: {}",
        slow.backlog()
    );
    let row = d.status().receivers.into_iter().find(|r| r.name == "slow");
    assert!(
        row.is_some_and(|r| r.on_disk > n / 2),
        "status shows it on disk"
    );
    let got = read_values(&slow, n as usize, |_| {});
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert_eq!(slow.backlog(), 0);
    drop(handles);
    // Everything read, then closed: the journal-only stretch does not hide the end.
    loop {
        match slow.recv_timeout(PATIENCE) {
            Ok((None, _)) => {}
            Ok((Some(v), stamp)) => panic!("{v} at {stamp} after the end"),
            Err(e) => {
                assert_eq!(e, RecvTimeoutError::Disconnected);
                break;
            }
        }
    }
}

#[test]
fn memory_and_journal_hand_over_many_times_across_segments_with_broadcasts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(8)
        .inbox_capacity(2)
        .journal(dir.path())
        .journal_segment_size(4 << 10)
        .build_journaled::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (_tx_other, other) = d.new("tx_other", "other");
    let (tx_b, _rx_b) = d.new("tx_b", "rx_b");
    let b = tx_b.into_broadcaster();
    let n = 30_000u64;
    let sender = std::thread::spawn(move || {
        for v in 0..n {
            if v % 7 == 0 {
                b.broadcast(v).unwrap();
            } else {
                tx.send(v).unwrap();
            }
            // Bursts and pauses: the reader falls behind and catches up, again and again.
            if v % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let reader = std::thread::spawn(move || {
        read_values(&rx, n as usize, |count| {
            if count % 3000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    });
    let broadcasts = read_values(&other, n.div_ceil(7) as usize, |_| {});
    assert_eq!(broadcasts, (0..n).step_by(7).collect::<Vec<_>>());
    sender.join().unwrap();
    assert_eq!(reader.join().unwrap(), (0..n).collect::<Vec<_>>());
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cdj"))
        })
        .count();
    assert!(segments > 10, "the stretches crossed segments: {segments}");
}

#[test]
fn a_lagging_backlog_that_retention_deletes_is_counted_as_expired() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(16)
        .inbox_capacity(4)
        .journal(dir.path())
        .journal_segment_size(2 << 10)
        .journal_retention_bytes(8 << 10)
        .build_journaled::<u64>()
        .unwrap();
    let (tx, slow) = d.new("tx", "slow");
    let n = 5_000u64;
    for v in 0..n {
        tx.send(v).unwrap();
    }
    tx.flush().unwrap();
    // Wait for retention to bring the journal within its limit (it runs after each roll).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let bytes: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cdj"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        if bytes <= (8 << 10) + (2 << 10) + 256 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not run: {bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(tx);
    let mut values = Vec::new();
    let mut lost = 0;
    loop {
        match slow.recv_checked() {
            Ok((Some(v), _)) => values.push(v),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => {
                assert_eq!(fault.kind, FaultKind::Expired, "{fault}");
                lost += fault.messages_lost;
            }
            Err(RecvCheckedError::Disconnected) => break,
        }
    }
    assert!(lost > 0, "retention deleted part of the backlog");
    assert_eq!(
        values.len() as u64 + lost,
        n,
        "each message read or counted lost"
    );
    assert!(values.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(values.last(), Some(&(n - 1)), "the newest are still there");
}

/// Flips a byte of the `Data` record stamped `stamp`: its last (in the payload) if `payload`,
/// else the top byte of its length.
fn damage_record(dir: &std::path::Path, stamp: usize, payload: bool) {
    use clocked_dispatch::journal::inspect::{self, Item, RecordKind};
    use std::io::{Read, Seek, SeekFrom, Write};
    for item in inspect::records(dir).unwrap() {
        if let Item::Record(record) = item {
            if matches!(record.kind, RecordKind::Data { stamp: s, .. } if s == stamp) {
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&record.segment)
                    .unwrap();
                let at = if payload {
                    record.offset + record.len - 1
                } else {
                    record.offset + 3
                };
                let mut byte = [0u8];
                file.seek(SeekFrom::Start(at)).unwrap();
                file.read_exact(&mut byte).unwrap();
                file.seek(SeekFrom::Start(at)).unwrap();
                file.write_all(&[byte[0] ^ 0x55]).unwrap();
                return;
            }
        }
    }
    panic!("no record stamped {stamp}");
}

/// Sends 0..2000 to a receiver with an inbox of 4, damages the record of value 1000 (journal
/// only by then), and reads everything: (values, fault kinds), checking stamps increase and
/// that the reader does not hang.
fn read_past_damage(payload: bool) -> (Vec<u64>, Vec<FaultKind>) {
    let dir = tempfile::tempdir().unwrap();
    let d = lagging(dir.path());
    let (tx, rx) = d.new("tx", "rx");
    let n = 2_000u64;
    for v in 0..n {
        tx.send(v).unwrap();
    }
    tx.flush().unwrap();
    // Stamp 1001 (value 1000) is journal-only: the inbox holds 4.
    damage_record(dir.path(), 1001, payload);
    drop(tx);
    let reader = std::thread::spawn(move || {
        let mut values = Vec::new();
        let mut faults = Vec::new();
        let mut last = 0;
        loop {
            match rx.recv_checked() {
                Ok((value, stamp)) => {
                    assert!(stamp > last, "stamp {stamp} after {last}");
                    last = stamp;
                    values.extend(value);
                }
                Err(RecvCheckedError::Spill(fault)) => faults.push(fault.kind),
                Err(RecvCheckedError::Disconnected) => {
                    // Everything was read or reported: nothing waits in the journal.
                    assert_eq!(rx.backlog(), 0, "the backlog count comes back to 0");
                    return (values, faults);
                }
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the reader hangs on the damage");
        std::thread::sleep(Duration::from_millis(10));
    }
    reader.join().unwrap()
}

#[test]
fn a_bad_checksum_in_a_journal_only_stretch_loses_that_message_only() {
    let (values, faults) = read_past_damage(true);
    assert_eq!(faults, vec![FaultKind::Checksum], "reported once");
    let expected: Vec<u64> = (0..2000).filter(|&v| v != 1000).collect();
    assert_eq!(values, expected, "only the damaged message is lost");
}

#[test]
fn a_bad_length_in_a_journal_only_stretch_is_reported_once_without_a_hang() {
    let (values, faults) = read_past_damage(false);
    assert_eq!(faults.len(), 1, "reported once: {faults:?}");
    assert!(matches!(faults[0], FaultKind::BadLength(_)), "{faults:?}");
    // The rest of the segment cannot be framed: up to where the journal ended when the
    // reader got there, it is lost. What came before the damage comes first, in order; what
    // the dispatcher handed over after that point (its last batches, if they were still being
    // delivered when the reader started) follows, and ends with the last value.
    assert_eq!(values[..1000], (0..1000).collect::<Vec<_>>());
    let rest = &values[1000..];
    assert!(rest.windows(2).all(|w| w[1] == w[0] + 1), "{rest:?}");
    assert!(rest.is_empty() || rest.last() == Some(&1999), "{rest:?}");
}
