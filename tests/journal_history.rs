//! What a broker needs of a journaled dispatcher beyond durable receivers: transient receivers
//! (journaled by an id of their own, forgotten when they go), multicast groups that keep their
//! history, the history read back while the dispatcher runs and after a restart, and positions
//! saved by name.

use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver, Dispatcher, Durability, JournalError};

const WAIT: Duration = Duration::from_secs(60);

fn journaled(dir: &std::path::Path) -> Dispatcher<u64> {
    Builder::new()
        .bound(64)
        .inbox_capacity(4)
        .journal(dir)
        .durability(Durability::Batch)
        .build_journaled::<u64>()
        .unwrap()
}

/// Reads data until `n` messages came, skipping watermarks.
fn take(rx: &ClockedReceiver<u64>, n: usize) -> Vec<(u64, usize)> {
    let mut got = Vec::new();
    while got.len() < n {
        if let (Some(value), stamp) = rx.recv_timeout(WAIT).expect("a message") {
            got.push((value, stamp));
        }
    }
    got
}

fn history(d: &Dispatcher<u64>, name: &str, from: usize) -> Vec<(u64, usize)> {
    d.history(name, from)
        .unwrap()
        .map(|item| item.expect("no damage"))
        .collect()
}

#[test]
fn a_transient_receiver_is_forgotten_and_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = journaled(dir.path());
        let (tx, rx) = d.try_new_transient("tx", "conn-1").unwrap();
        // 200 messages through an inbox of 4: it reads most back from the journal, in order.
        for i in 0..200 {
            tx.send(i).unwrap();
        }
        let got = take(&rx, 200);
        assert_eq!(
            got.iter().map(|m| m.0).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
        // Another transient one with unread messages, and a named one.
        let (tx2, _rx2) = d.try_new_transient("tx2", "conn-2").unwrap();
        tx2.send_all(500..510).unwrap();
        let (tx3, _rx3) = d.new("tx3", "named");
        tx3.send(900).unwrap();
        tx3.flush().unwrap();
        tx2.flush().unwrap();
        drop((tx, rx, tx2, tx3));
        d.join();
    }
    let status = clocked_dispatch::journal::inspect::status(dir.path()).unwrap();
    let names: Vec<&str> = status.receivers.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["named"], "transient receivers leave no name behind");

    let d = journaled(dir.path());
    // The same names, made again: transient ones start afresh, the named one replays.
    let (tx1, rx1) = d.try_new_transient("tx", "conn-1").unwrap();
    let (_tx2, rx2) = d.try_new_transient("tx2", "conn-2").unwrap();
    let (_tx3, rx3) = d.new("tx3", "named");
    assert_eq!(take(&rx3, 1)[0].0, 900);
    tx1.send(7).unwrap();
    assert_eq!(take(&rx1, 1)[0].0, 7, "nothing of the last run's conn-1");
    // conn-2's ten unread messages are not replayed: the first thing it sees is the clock.
    let (value, stamp) = rx2.recv_timeout(WAIT).unwrap();
    assert_eq!(value, None);
    assert!(stamp > 210);
    // A name made after the restart never gets a transient receiver's records.
    let (tx4, rx4) = d.new("tx4", "fresh");
    tx4.send(1).unwrap();
    assert_eq!(take(&rx4, 1)[0].0, 1);
}

#[test]
fn a_group_keeps_its_history_with_or_without_members_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let live;
    {
        let d = journaled(dir.path());
        let topic = d.archived_multicaster("topic/a").unwrap();
        let other = d.archived_multicaster("topic/b").unwrap();
        topic.multicast(1).unwrap(); // no member
        other.multicast(100).unwrap();
        let (tx, rx) = d.try_new_transient("tx", "sub").unwrap();
        topic.add(&tx).unwrap();
        topic.multicast(2).unwrap();
        topic.multicast(3).unwrap();
        live = take(&rx, 2);
        assert_eq!(live.iter().map(|m| m.0).collect::<Vec<_>>(), [2, 3]);
        // Everything up to the last delivery is in the history, members or not, once.
        let all = history(&d, "topic/a", 1);
        assert_eq!(all.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(&all[1..], &live[..], "the same stamps as delivered");
        assert_eq!(history(&d, "topic/b", 0), [(100, 2)]);
        // From a stamp: only what is stamped there or later.
        assert_eq!(history(&d, "topic/a", live[0].1), live);
        assert_eq!(history(&d, "topic/a", live[1].1 + 1), []);
        tx.flush().unwrap();
        drop((topic, other, tx, rx));
        d.join();
    }
    let d = journaled(dir.path());
    let after = history(&d, "topic/a", 0);
    assert_eq!(after.len(), 3);
    assert_eq!(&after[1..], &live[..]);
    // The group goes on under the same name, its history after the old one.
    let topic = d.archived_multicaster("topic/a").unwrap();
    topic.multicast(4).unwrap();
    let (tx, rx) = d.new("tx", "watch");
    tx.send(0).unwrap();
    take(&rx, 1); // the clock is past the multicast: it is written
    let grown = history(&d, "topic/a", 0);
    assert_eq!(grown.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(grown.windows(2).all(|w| w[0].1 < w[1].1));
}

#[test]
fn a_history_read_ends_at_what_was_written_when_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = journaled(dir.path());
    let topic = d.archived_multicaster("t").unwrap();
    let (tx, rx) = d.new("tx", "watch");
    for i in 0..50 {
        topic.multicast(i).unwrap();
    }
    tx.send(0).unwrap();
    take(&rx, 1);
    let reading = d.history("t", 0).unwrap();
    for i in 50..100 {
        topic.multicast(i).unwrap();
    }
    let got: Vec<u64> = reading.map(|m| m.unwrap().0).collect();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn positions_are_saved_by_name_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = journaled(dir.path());
        assert_eq!(d.saved_position("sub/x"), None);
        d.save_position("sub/x", 10).unwrap();
        d.save_position("sub/x", 5).unwrap(); // below: changes nothing
        assert_eq!(d.saved_position("sub/x"), Some(10));
        d.save_position("sub/y", 3).unwrap();
        let (tx, rx) = d.new("tx", "open");
        assert!(matches!(
            d.save_position("open", 1),
            Err(JournalError::ReceiverOpen { .. })
        ));
        drop((tx, rx));
        d.join();
    }
    let d = journaled(dir.path());
    assert_eq!(d.saved_position("sub/x"), Some(10));
    assert_eq!(d.saved_position("sub/y"), Some(3));
    assert_eq!(d.saved_position("sub/z"), None);
}

#[test]
fn refusals_are_typed() {
    let plain = clocked_dispatch::new::<u64>(4);
    assert!(matches!(
        plain.history("t", 0),
        Err(JournalError::NotJournaled)
    ));
    assert!(matches!(
        plain.save_position("t", 0),
        Err(JournalError::NotJournaled)
    ));
    assert!(matches!(
        plain.archived_multicaster("t"),
        Err(JournalError::NotJournaled)
    ));
    // Without a journal a transient receiver is a plain one.
    let (tx, rx) = plain.try_new_transient("tx", "rx").unwrap();
    tx.send(3).unwrap();
    assert_eq!(rx.recv().unwrap(), (Some(3), 1));

    let dir = tempfile::tempdir().unwrap();
    let d = journaled(dir.path());
    assert!(matches!(
        d.history("nobody", 0),
        Err(JournalError::UnknownReceiver { .. })
    ));
    let (_tx, _rx) = d.new("tx", "taken");
    assert!(matches!(
        d.archived_multicaster("taken"),
        Err(JournalError::ReceiverOpen { .. })
    ));
}

#[test]
fn a_history_says_what_retention_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .journal(dir.path())
        .journal_segment_size(4096)
        .journal_retention_bytes(16 * 1024)
        .build_journaled::<u64>()
        .unwrap();
    let topic = d.archived_multicaster("t").unwrap();
    assert_eq!(
        d.history("t", 0).unwrap().oldest_held(),
        1,
        "nothing deleted yet"
    );
    let (tx, rx) = d.new("tx", "watch");
    let deadline = std::time::Instant::now() + WAIT;
    let mut published = 0u64;
    // Publish until retention deleted the oldest segments (it runs on its own thread).
    while d.history("t", 0).unwrap().oldest_held() == 1 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        for _ in 0..100 {
            topic.multicast(published).unwrap();
            published += 1;
        }
        tx.send(0).unwrap();
        take(&rx, 1);
    }
    let history = d.history("t", 0).unwrap();
    let oldest = history.oldest_held();
    let held: Vec<(u64, usize)> = history.map(|m| m.unwrap()).collect();
    assert!(held.len() < published as usize);
    assert!(held.iter().all(|&(_, stamp)| stamp >= oldest));
    // What is held is the newest, in order, up to the last message.
    assert!(held.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    assert_eq!(held.last().unwrap().0, published - 1);
}

#[test]
fn a_multicast_is_one_record_naming_its_members() {
    use clocked_dispatch::journal::inspect::{records, Item, RecordKind};
    let dir = tempfile::tempdir().unwrap();
    {
        let d = journaled(dir.path());
        let topic = d.archived_multicaster("topic/t").unwrap();
        let pairs: Vec<_> = (0..3)
            .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
            .collect();
        for (tx, _) in &pairs {
            topic.add(tx).unwrap();
        }
        topic.multicast(42).unwrap();
        for (_, rx) in &pairs {
            assert_eq!(take(rx, 1), [(42, 1)]);
        }
        drop((topic, pairs));
        d.join();
    }
    let mut walk = records(dir.path()).unwrap();
    let mut messages = Vec::new();
    for item in walk.by_ref() {
        if let Item::Record(record) = item {
            if record.payload().is_some() {
                messages.push(record.kind);
            }
        }
    }
    // One record: the group's history and its three members, the payload once.
    let [RecordKind::Multicast {
        stamp: 1,
        receivers,
        payload,
    }] = &messages[..]
    else {
        panic!("{messages:?}");
    };
    let names: Vec<&str> = receivers
        .iter()
        .map(|&id| walk.name_of(id).expect("named"))
        .collect();
    assert_eq!(names, ["topic/t", "rx0", "rx1", "rx2"]);
    assert_eq!(postcard::from_bytes::<u64>(payload).unwrap(), 42);
}

#[test]
fn a_member_under_the_groups_own_name_is_listed_once() {
    use clocked_dispatch::journal::inspect::{records, Item, RecordKind};
    let dir = tempfile::tempdir().unwrap();
    {
        let d = journaled(dir.path());
        let topic = d.archived_multicaster("t").unwrap();
        // Made after the group, under its name: it shares the group's journal id.
        let (tx, rx) = d.new("tx", "t");
        topic.add(&tx).unwrap();
        topic.multicast(5).unwrap();
        assert_eq!(take(&rx, 1), [(5, 1)]);
        drop((topic, tx, rx));
        d.join();
    }
    let messages: Vec<RecordKind> = records(dir.path())
        .unwrap()
        .filter_map(|item| match item {
            Item::Record(record) if record.payload().is_some() => Some(record.kind),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&messages[..], [RecordKind::Data { stamp: 1, .. }]),
        "one id, one Data record: {messages:?}"
    );
}
