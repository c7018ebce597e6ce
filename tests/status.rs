//! Lag, backlog and the status table: what a monitoring thread sees, checked against what was
//! sent and read.

use std::thread;

mod support;

use support::published::published;

use clocked_dispatch::Builder;

#[test]
fn lag_and_backlog_follow_what_is_sent_and_read() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("tx", "rx");
    let (tx2, other) = d.new("tx2", "other");
    assert_eq!((rx.lag(), rx.backlog()), (0, 0));
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    tx2.send(100).unwrap();
    published(&d, 11);
    assert_eq!((rx.lag(), rx.backlog()), (11, 10));
    assert_eq!((other.lag(), other.backlog()), (11, 1));
    for _ in 0..4 {
        rx.recv().unwrap();
    }
    assert_eq!((rx.lag(), rx.backlog()), (7, 6));
    assert_eq!(other.recv(), Ok((Some(100), 11)));
    assert_eq!((other.lag(), other.backlog()), (0, 0));
}

#[test]
fn status_has_a_row_per_live_receiver_in_creation_order() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx_a, a) = d.new("tx_a", "alpha");
    let (tx_b, b) = d.new("tx_b", "beta");
    let (_tx_c, c) = d.new("tx_c", "gamma");
    tx_a.send(1).unwrap();
    tx_b.send(2).unwrap();
    tx_b.send(3).unwrap();
    published(&d, 3);
    assert_eq!(b.recv(), Ok((Some(2), 2)));
    drop(c); // gone: no row
    let status = d.status();
    assert_eq!(status.clock, 3);
    let rows: Vec<(&str, usize, u64)> = status
        .receivers
        .iter()
        .map(|r| (r.name.as_str(), r.lag, r.backlog()))
        .collect();
    assert_eq!(rows, vec![("alpha", 3, 1), ("beta", 1, 1)]);
    let table = status.to_string();
    assert!(table.starts_with("clock 3\n"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table.lines().nth(2).unwrap().starts_with("alpha"),
        "{table}"
    );
    drop(a);
}

#[test]
fn spilled_backlog_is_counted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .spill_to(dir.path())
        .memory_capacity(4)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..1_000 {
        tx.send(i).unwrap();
    }
    published(&d, 1_000);
    let row = d.status().receivers.remove(0);
    assert_eq!((row.in_memory, row.on_disk), (4, 996), "{row:?}");
    assert!(row.disk_bytes > 0);
    assert_eq!(rx.backlog(), 1_000);
    for _ in 0..10 {
        rx.recv().unwrap();
    }
    assert_eq!(rx.backlog(), 990);
}

/// A monitoring thread polling the status while pairs run: it never blocks them and never
/// sees a row go backwards.
#[test]
fn status_can_be_polled_while_traffic_runs() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("tx", "rx");
    let reader = thread::spawn(move || rx.filter(|(v, _)| v.is_some()).count());
    let sender = thread::spawn(move || {
        for i in 0..200_000 {
            tx.send(i).unwrap();
        }
    });
    let mut last = 0;
    let mut polls = 0;
    while !sender.is_finished() {
        let status = d.status();
        if let Some(row) = status.receivers.first() {
            assert!(row.last_stamp >= last, "last stamp went backwards");
            last = row.last_stamp;
        }
        polls += 1;
    }
    sender.join().unwrap();
    assert_eq!(reader.join().unwrap(), 200_000);
    assert!(polls > 0);
}
