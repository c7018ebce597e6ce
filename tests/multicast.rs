//! `ClockedMulticaster`: one stamp to a set of receivers that changes while messages flow.
//!
//! What a broker's topic needs: members get exactly what was multicast after they joined and
//! before they left, every receiver's stamps strictly increase, non-members see the stamps as
//! watermarks, a member is held open by its group, and groups and receivers created and
//! dropped by the thousand leave nothing behind.

#[allow(dead_code)] // `churn` is for the churn tests
mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use clocked_dispatch::{ClockedReceiver, HandleError, SendErrorKind};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const WAIT: Duration = Duration::from_secs(60);

/// Every data message of `rx` until it closes, with its stamp; checks that stamps (data and
/// watermarks) never go backwards and data stamps strictly increase.
fn drain<T: std::fmt::Debug>(rx: ClockedReceiver<T>) -> Vec<(T, usize)> {
    let mut got = Vec::new();
    let mut last_seen = 0;
    let mut last_data = 0;
    while let Ok((value, stamp)) = rx.recv_timeout(WAIT) {
        assert!(stamp >= last_seen, "stamp {stamp} after {last_seen}");
        last_seen = stamp;
        if let Some(value) = value {
            assert!(
                stamp > last_data,
                "data stamp {stamp} after data stamp {last_data}"
            );
            last_data = stamp;
            got.push((value, stamp));
        }
    }
    got
}

#[test]
fn members_share_one_stamp_and_others_see_a_watermark() {
    let d = clocked_dispatch::new::<String>(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let (tx_c, rx_c) = d.new("tx_c", "c");
    let topic = d.multicaster("t").unwrap();
    assert!(topic.add(&tx_a).unwrap());
    assert!(!topic.add(&tx_a).unwrap(), "adding twice is a no-op");
    assert!(topic.add(&tx_b).unwrap());
    assert_eq!(topic.len(), 2);
    topic.multicast("one".to_string()).unwrap();
    tx_c.send("own".to_string()).unwrap();
    assert!(topic.remove(&tx_a));
    assert!(!topic.remove(&tx_a));
    topic.multicast("two".to_string()).unwrap();
    drop((tx_a, tx_b, tx_c, topic));
    let a = drain(rx_a);
    let b = drain(rx_b);
    let c = drain(rx_c);
    assert_eq!(a, vec![("one".to_string(), 1)]);
    assert_eq!(b, vec![("one".to_string(), 1), ("two".to_string(), 3)]);
    assert_eq!(c, vec![("own".to_string(), 2)]);
}

#[test]
fn a_member_is_held_open_by_its_group() {
    let d = clocked_dispatch::new::<u32>(16);
    let (tx, rx) = d.new("tx", "rx");
    let topic = d.multicaster("t").unwrap();
    topic.add(&tx).unwrap();
    drop(tx); // its only sender: the group still holds it
    topic.multicast(7).unwrap();
    assert_eq!(rx.recv_timeout(WAIT), Ok((Some(7), 1)));
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "still open, nothing more"
    );
    drop(topic);
    assert!(
        rx.recv_timeout(WAIT).is_err(),
        "closed once the group let go"
    );
    assert!(rx.recv().is_err());
}

#[test]
fn a_dropped_member_is_skipped_and_others_still_get_everything() {
    let d = clocked_dispatch::new::<u32>(4);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let topic = d.multicaster("t").unwrap();
    topic.add(&tx_a).unwrap();
    topic.add(&tx_b).unwrap();
    drop(rx_b); // never reads: the dispatcher must not wait for it
    let reader = thread::spawn(move || drain(rx_a));
    for i in 0..1_000 {
        topic.multicast(i).unwrap();
    }
    drop((tx_a, tx_b, topic));
    let got: Vec<u32> = reader.join().unwrap().into_iter().map(|(v, _)| v).collect();
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    d.join();
}

#[test]
fn handles_of_another_dispatcher_and_of_dropped_receivers_are_refused() {
    let d1 = clocked_dispatch::new::<u32>(4);
    let d2 = clocked_dispatch::new::<u32>(4);
    let (tx2, _rx2) = d2.new("tx", "rx");
    let topic = d1.multicaster("t").unwrap();
    assert_eq!(topic.add(&tx2), Err(HandleError::OtherDispatcher));
    assert!(!topic.remove(&tx2));

    let (tx1, rx1) = d1.new("tx1", "rx1");
    drop(rx1);
    assert_eq!(topic.add(&tx1), Err(HandleError::ReceiverGone));
}

#[test]
fn a_multicast_in_forwarding_mode_comes_back() {
    let d = clocked_dispatch::new::<u32>(4);
    let (tx, _rx) = d.new("tx", "rx");
    tx.forward(Some(1), 1).unwrap();
    let topic = d.multicaster("t").unwrap();
    topic.add(&tx).unwrap();
    let err = topic.multicast(5).unwrap_err();
    assert!(matches!(err.kind(), SendErrorKind::WrongMode { .. }));
    assert_eq!(err.into_inner(), 5);
}

#[test]
fn ten_thousand_subscribe_cycles_leave_no_slot_and_no_group_behind() {
    let d = clocked_dispatch::new::<u64>(64);
    let (live_tx, live_rx) = d.new("live-tx", "live");
    let topics: Vec<_> = (0..4)
        .map(|i| d.multicaster(format!("topic-{i}")).unwrap())
        .collect();
    for i in 0..10_000u64 {
        // A connection: one receiver, subscribed to two topics, gets one message, leaves.
        let (tx, rx) = d.new("conn", format!("conn-{i}"));
        let (a, b) = (&topics[i as usize % 4], &topics[(i as usize + 1) % 4]);
        a.add(&tx).unwrap();
        b.add(&tx).unwrap();
        a.multicast(i).unwrap();
        // A watermark may come first: the clock can move between the receiver's creation and
        // the multicast (earlier cycles' stamps published late). Only data is asserted.
        let got = loop {
            match rx.recv_timeout(WAIT) {
                Ok((None, _)) => continue,
                other => break other.map(|(v, _)| v),
            }
        };
        assert_eq!(got, Ok(Some(i)));
        if i % 2 == 0 {
            drop(rx); // the connection drops its receiver first, then unsubscribes
            a.remove(&tx);
            b.remove(&tx);
        } else {
            a.remove(&tx);
            b.remove(&tx);
            drop(rx);
        }
        drop(tx);
        if i % 1_000 == 999 {
            common::settle(&live_tx, &live_rx);
        }
    }
    common::settle(&live_tx, &live_rx);
    assert!(topics.iter().all(|t| t.is_empty()));
    let stats = d.stats();
    assert!(
        stats.receiver_slots <= 2,
        "10,000 subscribers left a table of {} slots",
        stats.receiver_slots
    );
    assert_eq!(
        d.status().receivers.len(),
        1,
        "only the live receiver is listed"
    );
}

#[test]
fn four_publishers_four_topics_eight_subscribers_each_see_their_topics_in_order() {
    const PER_PUBLISHER: u64 = 2_000;
    let d = clocked_dispatch::new::<(u8, u64)>(64);
    let topics: Vec<_> = (0..4)
        .map(|i| std::sync::Arc::new(d.multicaster(format!("topic-{i}")).unwrap()))
        .collect();
    // Subscriber s follows topics s % 4 and, for odd s, (s + 1) % 4 too.
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for s in 0..8usize {
        let (tx, rx) = d.new(format!("tx-{s}"), format!("sub-{s}"));
        let mut follows = vec![s % 4];
        if s % 2 == 1 {
            follows.push((s + 1) % 4);
        }
        for &t in &follows {
            topics[t].add(&tx).unwrap();
        }
        senders.push(tx);
        readers.push((follows, thread::spawn(move || drain(rx))));
    }
    drop(senders); // the groups hold the subscribers open
    let publishers: Vec<_> = (0..4u8)
        .map(|p| {
            let topics = topics.clone();
            thread::spawn(move || {
                for i in 0..PER_PUBLISHER {
                    let topic = (i as usize + p as usize) % 4;
                    topics[topic].multicast((p, i)).unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    drop(topics);
    for (follows, reader) in readers {
        let got = reader.join().unwrap();
        // Exactly what was published to the followed topics, each publisher's in its order.
        let mut by_publisher: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
        for ((p, i), _stamp) in &got {
            by_publisher.entry(*p).or_default().push(*i);
        }
        for p in 0..4u8 {
            let expected: Vec<u64> = (0..PER_PUBLISHER)
                .filter(|i| follows.contains(&((*i as usize + p as usize) % 4)))
                .collect();
            assert_eq!(by_publisher.remove(&p).unwrap_or_default(), expected);
        }
    }
}

/// One step of a random scenario over three receivers and two groups.
#[derive(Clone, Debug)]
enum Op {
    Add { group: usize, member: usize },
    Remove { group: usize, member: usize },
    Multicast { group: usize },
    Send { to: usize },
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let group = usize::arbitrary(g) % 2;
        let member = usize::arbitrary(g) % 3;
        match u8::arbitrary(g) % 4 {
            0 => Op::Add { group, member },
            1 => Op::Remove { group, member },
            2 => Op::Multicast { group },
            _ => Op::Send { to: member },
        }
    }
}

/// Each receiver gets exactly the multicasts of groups it was a member of when they were
/// sent, and its sends, with one stamp per operation that sends.
fn membership_holds(ops: Vec<Op>) -> bool {
    // Room for every message: the receivers are read only at the end.
    let d = clocked_dispatch::new::<usize>(1024);
    let pairs: Vec<_> = (0..3)
        .map(|i| d.new(format!("tx{i}"), format!("rx{i}")))
        .collect();
    let groups = [d.multicaster("g0").unwrap(), d.multicaster("g1").unwrap()];
    let mut members = [[false; 3]; 2];
    let mut expected: Vec<Vec<(usize, usize)>> = vec![Vec::new(); 3];
    let mut stamp = 0;
    for (n, op) in ops.iter().enumerate() {
        match *op {
            Op::Add { group, member } => {
                let added = groups[group].add(&pairs[member].0).unwrap();
                assert_eq!(added, !members[group][member]);
                members[group][member] = true;
            }
            Op::Remove { group, member } => {
                assert_eq!(
                    groups[group].remove(&pairs[member].0),
                    members[group][member]
                );
                members[group][member] = false;
            }
            Op::Multicast { group } => {
                groups[group].multicast(n).unwrap();
                stamp += 1;
                for (member, expected) in expected.iter_mut().enumerate() {
                    if members[group][member] {
                        expected.push((n, stamp));
                    }
                }
            }
            Op::Send { to } => {
                pairs[to].0.send(n).unwrap();
                stamp += 1;
                expected[to].push((n, stamp));
            }
        }
    }
    drop(groups);
    let (senders, receivers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    drop(senders);
    receivers
        .into_iter()
        .zip(expected)
        .all(|(rx, expected)| drain(rx) == expected)
}

#[test]
fn membership_property() {
    QuickCheck::new()
        .tests(300)
        .quickcheck(membership_holds as fn(Vec<Op>) -> bool);
}

#[cfg(feature = "async")]
#[test]
fn multicast_async_waits_for_room_without_blocking_the_executor() {
    let d = clocked_dispatch::new::<u64>(1);
    let (tx, rx) = d.new("tx", "rx");
    let topic = d.multicaster("t").unwrap();
    topic.add(&tx).unwrap();
    drop(tx);
    let reader = thread::spawn(move || drain(rx));
    futures::executor::block_on(async {
        for i in 0..2_000 {
            topic.multicast_async(i).await.unwrap();
        }
    });
    drop(topic);
    let got: Vec<u64> = reader.join().unwrap().into_iter().map(|(v, _)| v).collect();
    assert_eq!(got, (0..2_000).collect::<Vec<_>>());
}
