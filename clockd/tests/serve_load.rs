//! `clockd serve` under load: global stamp order across publishers, topics and subscribers;
//! a subscriber that never reads is cut off without slowing anyone; connections that come and
//! go by the ten thousand leave no receiver and no memory behind; ten thousand idle
//! connections do not stop a new one from being served. The first three also on a journal
//! (`--data`), where connections are transient receivers and a slow one reads its backlog
//! back from the journal instead of spilling.

mod server;

use std::collections::BTreeMap;
use std::thread;

use server::{Broker, Client};

/// `--data DIR` in a fresh temporary directory, kept while the broker runs.
fn on_a_journal(args: &[&str]) -> (Broker, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut all = vec!["--data", data.path().to_str().expect("a UTF-8 path")];
    all.extend_from_slice(args);
    (Broker::start(&all), data)
}

#[test]
fn four_publishers_four_topics_eight_subscribers_see_stamp_order() {
    stamp_order(&Broker::start(&[]));
}

#[test]
fn stamp_order_on_a_journal() {
    stamp_order(&on_a_journal(&[]).0);
}

fn stamp_order(broker: &Broker) {
    const PER_PUBLISHER: usize = 1_000;
    // Subscriber s follows topic s % 4, and the odd ones (s + 1) % 4 too.
    let mut subscribers = Vec::new();
    for s in 0..8usize {
        let mut client = broker.connect();
        client.send("STAMPS on");
        let mut follows = vec![s % 4];
        if s % 2 == 1 {
            follows.push((s + 1) % 4);
        }
        for t in &follows {
            client.send(&format!("SUB topic-{t}"));
        }
        client.sync();
        subscribers.push((follows, client));
    }
    let publishers: Vec<_> = (0..4usize)
        .map(|p| {
            let addr = broker.addr;
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut batch = String::new();
                for i in 0..PER_PUBLISHER {
                    let topic = (i + p) % 4;
                    batch.push_str(&format!("PUB topic-{topic} {p} {i}\n"));
                }
                client.send_raw(batch.as_bytes());
                client.sync();
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    for (follows, mut client) in subscribers {
        let expected_count = (0..4usize)
            .map(|p| {
                (0..PER_PUBLISHER)
                    .filter(|i| follows.contains(&((i + p) % 4)))
                    .count()
            })
            .sum::<usize>();
        let mut last_stamp = 0;
        let mut by_publisher: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for _ in 0..expected_count {
            let line = client.expect_line();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [verb, stamp, topic, p, i] = fields[..] else {
                panic!("unexpected line {line:?}");
            };
            assert_eq!(verb, "STAMPED");
            let stamp: usize = stamp.parse().unwrap();
            assert!(stamp > last_stamp, "stamp {stamp} after {last_stamp}");
            last_stamp = stamp;
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(topic, format!("topic-{}", (i + p) % 4));
            assert!(
                follows.contains(&((i + p) % 4)),
                "{line} is not for this subscriber"
            );
            by_publisher.entry(p).or_default().push(i);
        }
        for (p, got) in by_publisher {
            let expected: Vec<usize> = (0..PER_PUBLISHER)
                .filter(|i| follows.contains(&((i + p) % 4)))
                .collect();
            assert_eq!(got, expected, "publisher {p}'s messages, in its order");
        }
        assert!(client.sync().is_empty(), "nothing more than was published");
    }
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off_and_slows_no_one() {
    stalled_subscriber_is_cut_off(&["--max-backlog", "2000", "--bound", "256"]);
}

#[test]
fn a_subscriber_whose_spill_grows_is_cut_off_before_publishes_are_refused() {
    // 2 MiB of spill per connection (cut at 1.5 MiB), no message-count limit to speak of:
    // without the byte limit the stalled one would hold the dispatcher's disk gate shut and
    // every publish would be refused.
    stalled_subscriber_is_cut_off(&["--spill-limit", "2097152", "--bound", "256"]);
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off_on_a_journal() {
    let (broker, _data) = on_a_journal(&["--max-backlog", "2000", "--bound", "256"]);
    stalled_subscriber_is_cut_off_on(broker);
}

/// A subscriber that never reads, one that does, 20,000 messages of 1 KiB: the reader gets
/// them all, the publisher never sees an ERR, the stalled one is cut off.
fn stalled_subscriber_is_cut_off(args: &[&str]) {
    stalled_subscriber_is_cut_off_on(Broker::start(args));
}

fn stalled_subscriber_is_cut_off_on(broker: Broker) {
    const MESSAGES: usize = 20_000;
    const ROUND: usize = 500;
    let mut stalled = broker.connect();
    stalled.send("SUB t");
    stalled.sync(); // and never reads again
    let mut reader = broker.connect();
    reader.send("SUB t");
    reader.sync();
    // Published in rounds, each read by the reader before the next: its backlog stays
    // far below the limit however slow this machine is, while the stalled one's grows.
    let mut publisher = broker.connect();
    let payload = "x".repeat(1024);
    for round in 0..MESSAGES / ROUND {
        let mut batch = String::new();
        for i in round * ROUND..(round + 1) * ROUND {
            batch.push_str(&format!("PUB t {i} {payload}\n"));
        }
        publisher.send_raw(batch.as_bytes());
        for i in round * ROUND..(round + 1) * ROUND {
            let line = reader.expect_line();
            assert!(
                line.starts_with(&format!("UPDATED t {i} ")),
                "message {i}: {line:.40}"
            );
        }
    }
    assert!(publisher.sync().is_empty(), "no publish was refused");
    let cut = broker.wait_for_metric("clockd_slow_disconnects_total", |n| n >= 1);
    assert_eq!(cut, 1, "the stalled subscriber, and only it, was cut off");
    // Its receiver is gone; the reader's is the only one left.
    assert_eq!(broker.wait_for_metric("clockd_receivers", |n| n == 1), 1);
    drop(stalled);
}

/// The broker's resident memory, from its own metric.
fn resident(broker: &Broker) -> u64 {
    broker.metric("clockd_resident_memory_bytes")
}

#[test]
fn ten_thousand_subscribe_and_disconnect_cycles_leave_nothing_behind() {
    subscribe_and_disconnect(&Broker::start(&[]), 2);
}

#[test]
fn ten_thousand_cycles_on_a_journal_leave_no_name_in_it() {
    let (mut broker, data) = on_a_journal(&[]);
    // Journaled, a closed receiver's slot may wait a batch longer to be freed, so a few more
    // slots can be in use at once; what matters is that they do not grow with the cycles.
    subscribe_and_disconnect(&broker, 64);
    assert_eq!(broker.terminate(), Some(0));
    // The journal names the topics' histories, and none of the 10,000 connections.
    let status = clocked_dispatch::journal::inspect::status(data.path().join("journal")).unwrap();
    let mut names: Vec<&str> = status.receivers.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    let mut topics: Vec<String> = (0..16).map(|t| format!("topic/topic-{t}")).collect();
    topics.sort_unstable();
    assert_eq!(names, topics);
    // The topics' histories hold the 100 messages once; the connections' copies are under
    // transient ids (at least one each: a subscriber closing meanwhile may get one too).
    let topic_messages: u64 = status.receivers.iter().map(|r| r.messages).sum();
    assert_eq!(topic_messages, 100);
    assert!(
        status.unnamed_messages >= 100,
        "{}",
        status.unnamed_messages
    );
}

/// 10,000 connections subscribe and go, one in a hundred after a message: nothing is left,
/// and the receiver table never held more than `max_slots` at once.
fn subscribe_and_disconnect(broker: &Broker, max_slots: u64) {
    let mut publisher = broker.connect();
    let mut cycle = |i: usize| {
        let mut client = broker.connect();
        client.send(&format!("SUB topic-{}", i % 16));
        client.sync();
        if i.is_multiple_of(100) {
            // Some of them get a message before they go.
            publisher.send(&format!("PUB topic-{} {i}", i % 16));
            assert_eq!(
                client.expect_line(),
                format!("UPDATED topic-{} {i}\n", i % 16)
            );
        }
        drop(client);
    };
    for i in 0..1_000 {
        cycle(i);
    }
    broker.wait_for_metric("clockd_connections", |n| n == 1);
    let warm = resident(broker);
    for i in 1_000..10_000 {
        cycle(i);
    }
    assert_eq!(broker.wait_for_metric("clockd_connections", |n| n == 1), 1);
    assert_eq!(broker.wait_for_metric("clockd_receivers", |n| n == 0), 0);
    let slots = broker.metric("clockd_receiver_slots");
    assert!(
        slots <= max_slots,
        "{slots} receiver slots after 10,000 cycles"
    );
    let (_, metrics) = broker.http_get("/metrics");
    for t in 0..16 {
        let line = format!("clockd_topic_subscribers{{topic=\"topic-{t}\"}} 0");
        assert!(metrics.contains(&line), "{line} missing");
    }
    let after = resident(broker);
    assert!(
        after < warm + 8 * 1024 * 1024,
        "resident memory grew from {warm} to {after} bytes over 9,000 cycles"
    );
}

#[test]
fn ten_thousand_idle_connections_and_a_new_one_is_served() {
    const IDLE: usize = 10_000;
    let broker = Broker::start(&[]);
    let idle: Vec<std::net::TcpStream> = (0..IDLE)
        .map(|_| std::net::TcpStream::connect(broker.addr).expect("connects"))
        .collect();
    assert_eq!(
        broker.wait_for_metric("clockd_connections", |n| n == IDLE as u64),
        IDLE as u64
    );
    let mut fresh = broker.connect();
    fresh.send("SUB t");
    fresh.send("PUB t still served");
    assert_eq!(fresh.expect_line(), "UPDATED t still served\n");
    drop(idle);
    assert_eq!(broker.wait_for_metric("clockd_connections", |n| n == 1), 1);
}
