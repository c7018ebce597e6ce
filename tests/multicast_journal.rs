//! Multicast on a journaled dispatcher: one `Data` record per member with the multicast's
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
