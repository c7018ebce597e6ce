//! Multicast on a journaled dispatcher: one record naming every member with the multicast's
//! stamp, so members replay what they had not committed after a restart, a member that falls
//! behind reads its multicasts back from the journal, and `Always` returns once stored.

use std::time::Duration;

use clocked_dispatch::{Builder, Dispatcher, Durability};

const WAIT: Duration = Duration::from_secs(60);

fn journaled(dir: &std::path::Path, durability: Durability) -> Dispatcher<u64> {
    Builder::new()
        .bound(64)
        .inbox_capacity(4)
        .journal(dir)
        .durability(durability)
        .build_journaled::<u64>()
        .unwrap()
}

/// Reads data until `n` messages came, skipping watermarks.
fn take(rx: &clocked_dispatch::ClockedReceiver<u64>, n: usize) -> Vec<(u64, usize)> {
    let mut got = Vec::new();
    while got.len() < n {
        if let (Some(value), stamp) = rx.recv_timeout(WAIT).expect("a message") {
            got.push((value, stamp));
        }
    }
    got
}

#[test]
fn members_replay_their_multicasts_after_a_restart_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<(u64, usize)>;
    {
        let d = journaled(dir.path(), Durability::Batch);
        let (tx_a, rx_a) = d.new("tx_a", "a");
        let (tx_b, rx_b) = d.new("tx_b", "b");
        let (tx_c, rx_c) = d.new("tx_c", "c");
        let topic = d.multicaster("t").unwrap();
        topic.add(&tx_a).unwrap();
        topic.add(&tx_b).unwrap();
        for i in 0..10 {
            topic.multicast(i).unwrap();
        }
        tx_c.send(100).unwrap();
        first = take(&rx_a, 10);
        assert_eq!(take(&rx_b, 10), first, "one stamp per multicast, shared");
        // b commits half of it; a commits nothing; c read its own message.
        rx_b.commit(first[4].1).unwrap();
        assert_eq!(take(&rx_c, 1)[0].0, 100);
        rx_c.commit(rx_c.last_stamp()).unwrap();
        tx_a.flush().unwrap();
        drop((tx_a, tx_b, tx_c, topic, rx_a, rx_b, rx_c));
        d.join();
    }
    let d = journaled(dir.path(), Durability::Batch);
    let (_tx_a, rx_a) = d.new("tx_a", "a");
    let (_tx_b, rx_b) = d.new("tx_b", "b");
    let (_tx_c, rx_c) = d.new("tx_c", "c");
    assert_eq!(
        take(&rx_a, 10),
        first,
        "a replays all ten, with their stamps"
    );
    assert_eq!(
        take(&rx_b, 5),
        first[5..].to_vec(),
        "b replays what it had not committed"
    );
    assert!(
        matches!(
            rx_c.recv_timeout(Duration::from_millis(100)),
            Ok((None, _)) | Err(_)
        ),
        "c was never a member: nothing to replay"
    );
}

#[test]
fn a_member_that_falls_behind_reads_its_multicasts_back_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let d = journaled(dir.path(), Durability::None);
    let (tx_slow, rx_slow) = d.new("tx_slow", "slow");
    let (tx_fast, rx_fast) = d.new("tx_fast", "fast");
    let topic = d.multicaster("t").unwrap();
    topic.add(&tx_slow).unwrap();
    topic.add(&tx_fast).unwrap();
    let fast = std::thread::spawn(move || take(&rx_fast, 2_000));
    // The slow one reads nothing until all 2,000 are multicast: its inbox holds 4, the rest
    // stay in the journal and the dispatcher never waits for it.
    for i in 0..2_000 {
        topic.multicast(i).unwrap();
    }
    let fast = fast.join().unwrap();
    let slow = take(&rx_slow, 2_000);
    assert_eq!(slow, fast);
    assert_eq!(
        slow.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (0..2_000).collect::<Vec<_>>()
    );
    assert!(slow.windows(2).all(|w| w[0].1 < w[1].1), "stamps increase");
    drop((tx_slow, tx_fast));
}

#[test]
fn under_always_a_multicast_returns_once_stored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = journaled(dir.path(), Durability::Always);
        let (tx, rx) = d.new("tx", "member");
        let topic = d.multicaster("t").unwrap();
        topic.add(&tx).unwrap();
        topic.multicast(7).unwrap();
        // Stored before it returned: a crash now could not lose it. Read it without
        // committing, and stop.
        assert_eq!(take(&rx, 1)[0].0, 7);
        drop((tx, rx, topic));
        d.join();
    }
    let d = journaled(dir.path(), Durability::Always);
    let (_tx, rx) = d.new("tx", "member");
    assert_eq!(take(&rx, 1)[0].0, 7, "replayed after the restart");
}

#[test]
fn a_name_made_again_is_not_a_member_until_added_and_never_gets_two_copies() {
    let dir = tempfile::tempdir().unwrap();
    let d = journaled(dir.path(), Durability::Batch);
    let (live_tx, live_rx) = d.new("live_tx", "live");
    let topic = d.multicaster("t").unwrap();
    let (old_tx, old_rx) = d.new("old_tx", "alice");
    topic.add(&old_tx).unwrap();
    topic.add(&live_tx).unwrap();
    drop(old_rx); // the group still holds the old slot open
    let (new_tx, new_rx) = d.new("new_tx", "alice");
    topic.multicast(1).unwrap(); // for the old alice (gone) and live: not for the new alice
    assert_eq!(take(&live_rx, 1)[0].0, 1);
    topic.add(&new_tx).unwrap();
    topic.multicast(2).unwrap();
    assert_eq!(take(&live_rx, 1)[0].0, 2);
    let got = take(&new_rx, 1);
    assert_eq!(
        got[0].0, 2,
        "the new alice gets only what followed its own add"
    );
    assert!(
        matches!(
            new_rx.recv_timeout(Duration::from_millis(100)),
            Ok((None, _)) | Err(_)
        ),
        "and one copy of it"
    );
    drop((old_tx, new_tx, live_tx, topic));
}

#[test]
fn multicasts_to_nobody_take_stamps_and_a_restart_resumes_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let stamp;
    {
        let d = journaled(dir.path(), Durability::Batch);
        let (tx, rx) = d.new("tx", "rx");
        let empty = d.multicaster("empty").unwrap();
        empty.multicast(1).unwrap();
        empty.multicast(2).unwrap();
        tx.send(3).unwrap(); // settles the batch; its stamp follows the two
        stamp = take(&rx, 1)[0].1;
        assert_eq!(stamp, 3, "the empty multicasts took stamps 1 and 2");
        drop((tx, rx, empty));
        d.join();
    }
    {
        let d = journaled(dir.path(), Durability::Batch);
        let (tx, rx) = d.new("tx", "rx2");
        let empty = d.multicaster("empty").unwrap();
        empty.multicast(4).unwrap(); // no record names it: a tick accounts for its stamp
        tx.send(5).unwrap();
        assert_eq!(take(&rx, 1)[0].1, stamp + 2);
        drop((tx, rx, empty));
        d.join();
    }
    let d = journaled(dir.path(), Durability::Batch);
    let (tx, rx) = d.new("tx", "rx3");
    tx.send(6).unwrap();
    assert_eq!(take(&rx, 1)[0].1, stamp + 3, "no stamp is handed out twice");
}
