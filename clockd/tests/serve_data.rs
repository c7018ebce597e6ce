//! `clockd serve --data DIR`: the broker on a journal. Replays (`SUB topic FROM stamp`),
//! retention and compaction (`CREATE topic ttl= compact=`), durable subscriptions (`SUB topic
//! AS name`, `COMMIT`) across reconnects, a clean restart and `kill -9`, and the clock going on
//! above everything it stamped before.

mod server;

use std::path::Path;

use server::{Broker, Client};

fn start(data: &Path) -> Broker {
    Broker::start(&["--data", data.to_str().expect("a UTF-8 path")])
}

/// `STAMPED stamp topic message` → (stamp, "topic message").
fn stamped(line: &str) -> (usize, String) {
    let rest = line
        .strip_prefix("STAMPED ")
        .unwrap_or_else(|| panic!("not a STAMPED line: {line:?}"));
    let (stamp, body) = rest.trim_end().split_once(' ').expect("stamp and body");
    (stamp.parse().expect("a stamp"), body.to_string())
}

/// Reads `n` deliveries.
fn deliveries(client: &mut Client, n: usize) -> Vec<(usize, String)> {
    (0..n).map(|_| stamped(&client.expect_line())).collect()
}

/// Publishes `messages` to `topic` and returns their stamps, as a live subscriber saw them.
fn publish(broker: &Broker, topic: &str, messages: &[&str]) -> Vec<(usize, String)> {
    let mut watcher = broker.connect();
    watcher.send("STAMPS on");
    watcher.send(&format!("SUB {topic}"));
    assert!(watcher.sync().is_empty());
    let mut publisher = broker.connect();
    for message in messages {
        publisher.send(&format!("PUB {topic} {message}"));
    }
    assert!(publisher.sync().is_empty());
    deliveries(&mut watcher, messages.len())
}

#[test]
fn a_replay_from_a_stamp_then_live_with_no_gap_and_nothing_twice() {
    let data = tempfile::tempdir().unwrap();
    let broker = start(data.path());
    let published = publish(&broker, "t", &["m0", "m1", "m2", "m3", "m4"]);
    publish(&broker, "other", &["x"]);
    let mut late = broker.connect();
    late.send("STAMPS on");
    late.send(&format!("SUB t FROM {}", published[2].0));
    // The replay comes before the PONG.
    let replayed: Vec<(usize, String)> = late.sync().iter().map(|l| stamped(l)).collect();
    assert_eq!(replayed, published[2..], "m2 to m4, with their stamps");
    // Then live; the topics it does not follow stay out.
    let live = publish(&broker, "t", &["m5"]);
    assert_eq!(deliveries(&mut late, 1), live);
    // A replay while messages keep coming: every one once, in order.
    let mut publisher = broker.connect();
    for i in 0..300 {
        publisher.send(&format!("PUB t n{i}"));
    }
    let mut racing = broker.connect();
    racing.send("STAMPS on");
    racing.send("SUB t FROM 1");
    for i in 300..600 {
        publisher.send(&format!("PUB t n{i}"));
    }
    assert!(publisher.sync().is_empty());
    let got = deliveries(&mut racing, 6 + 600);
    let bodies: Vec<&str> = got.iter().map(|(_, body)| body.as_str()).collect();
    let mut expected: Vec<String> = (0..6).map(|i| format!("t m{i}")).collect();
    expected.extend((0..600).map(|i| format!("t n{i}")));
    assert_eq!(bodies, expected);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "stamps increase");
    // Subscribing twice with a replay is refused.
    racing.send("SUB t FROM 1");
    let reply = racing.sync();
    assert_eq!(reply, ["ERR already subscribed to t: UNSUB it first\n"]);
}

#[test]
fn history_and_the_clock_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let first = {
        let mut broker = start(data.path());
        let first = publish(&broker, "t", &["a", "b", "c"]);
        assert_eq!(broker.terminate(), Some(0));
        first
    };
    let broker = start(data.path());
    let mut client = broker.connect();
    client.send("STAMPS on");
    client.send("SUB t FROM 0");
    let replayed: Vec<(usize, String)> = client.sync().iter().map(|l| stamped(l)).collect();
    assert_eq!(replayed, first);
    let next = publish(&broker, "t", &["d"]);
    assert!(
        next[0].0 > first[2].0,
        "the clock goes on above the last run's stamps"
    );
    assert_eq!(deliveries(&mut client, 1), next);
}

#[test]
fn ttl_and_compaction_shape_what_is_replayed() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start(data.path());
    let mut admin = broker.connect();
    admin.send("CREATE short ttl=3");
    // Windows of a day: the three messages below fall in one unless the test runs across
    // midnight UTC (within milliseconds).
    admin.send("CREATE prices compact=86400");
    assert!(admin.sync().is_empty());
    publish(&broker, "short", &["old"]);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    publish(&broker, "short", &["new"]);
    publish(
        &broker,
        "prices",
        &["EURUSD 1.08", "GBPUSD 1.25", "EURUSD 1.09"],
    );
    let mut client = broker.connect();
    client.send("SUB short FROM 0");
    client.send("SUB prices FROM 0");
    assert_eq!(
        client.sync(),
        [
            "UPDATED short new\n",
            "UPDATED prices GBPUSD 1.25\n",
            "UPDATED prices EURUSD 1.09\n"
        ]
    );
    // Live deliveries are not compacted.
    publish(&broker, "prices", &["EURUSD 1.10", "EURUSD 1.11"]);
    assert_eq!(client.expect_line(), "UPDATED prices EURUSD 1.10\n");
    assert_eq!(client.expect_line(), "UPDATED prices EURUSD 1.11\n");
    // Options are given once and kept across a restart.
    admin.send("CREATE prices compact=86400");
    admin.send("CREATE prices compact=5");
    assert_eq!(
        admin.sync(),
        ["ERR topic prices exists with ttl=0 compact=86400\n"]
    );
    drop((admin, client));
    assert_eq!(broker.terminate(), Some(0));
    let broker = start(data.path());
    let mut admin = broker.connect();
    admin.send("CREATE prices ttl=9");
    assert_eq!(
        admin.sync(),
        ["ERR topic prices exists with ttl=0 compact=86400\n"]
    );
    admin.send("SUB prices FROM 0");
    let replayed = admin.sync();
    assert_eq!(
        replayed,
        [
            "UPDATED prices GBPUSD 1.25\n",
            "UPDATED prices EURUSD 1.11\n"
        ],
        "compaction still applies after the restart"
    );
}

#[test]
fn a_durable_subscription_resumes_after_its_commit_across_reconnects_and_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let broker = start(data.path());
    let mut worker = broker.connect();
    worker.send("STAMPS on");
    worker.send("SUB jobs AS w1");
    assert!(worker.sync().is_empty(), "a new subscription starts now");
    let mut publisher = broker.connect();
    for i in 0..5 {
        publisher.send(&format!("PUB jobs j{i}"));
    }
    assert!(publisher.sync().is_empty());
    let got = deliveries(&mut worker, 5);
    // Committing ahead of what was delivered is refused.
    worker.send(&format!("COMMIT jobs {}", got[4].0 + 1));
    worker.send("COMMIT other 1");
    let reply = worker.sync();
    assert_eq!(reply.len(), 2, "{reply:?}");
    assert!(reply[0].starts_with("ERR commit"), "{reply:?}");
    assert!(reply[1].starts_with("ERR no durable subscription to other"));
    // j0..j2 processed.
    worker.send(&format!("COMMIT jobs {}", got[2].0));
    assert!(worker.sync().is_empty(), "PONG: the commit is stored");
    // The same subscription from a second connection is refused while the first has it.
    let mut rival = broker.connect();
    rival.send("SUB jobs AS w1");
    let reply = rival.sync();
    assert!(reply[0].contains("in use"), "{reply:?}");
    drop(worker);
    // Published while nobody has it: kept for it.
    publisher.send("PUB jobs j5");
    assert!(publisher.sync().is_empty());
    let mut worker = broker.connect();
    worker.send("STAMPS on");
    let resumed = loop {
        // The first connection's close may not be handled yet: its claim is let go then.
        worker.send("SUB jobs AS w1");
        let reply = worker.sync();
        if reply.first().is_some_and(|line| line.contains("in use")) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        break reply;
    };
    let resumed: Vec<(usize, String)> = resumed.iter().map(|l| stamped(l)).collect();
    let bodies: Vec<&str> = resumed.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, ["jobs j3", "jobs j4", "jobs j5"]);
    assert_eq!(resumed[..2], got[3..]);
    worker.send(&format!("COMMIT jobs {}", resumed[1].0));
    assert!(worker.sync().is_empty());
    // kill -9: what was committed before the PONG stays committed.
    drop(broker);
    let broker = start(data.path());
    let mut publisher = broker.connect();
    publisher.send("PUB jobs j6");
    assert!(publisher.sync().is_empty());
    let mut worker = broker.connect();
    worker.send("STAMPS on");
    worker.send("SUB jobs AS w1");
    let after: Vec<String> = worker.sync().iter().map(|l| stamped(l).1).collect();
    assert_eq!(after, ["jobs j5", "jobs j6"]);
    // Another name is a subscription of its own, starting now.
    let mut other = broker.connect();
    other.send("SUB jobs AS w2");
    assert!(other.sync().is_empty());
}

#[test]
fn limits_hold_before_anything_is_written() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let args = ["--data", dir, "--max-durable", "2", "--max-topics", "3"];
    let mut broker = Broker::start(&args);
    let mut client = broker.connect();
    // Names and topics with a slash are not confused: two subscriptions.
    client.send("SUB b/c AS a");
    client.send("SUB c AS a/b");
    client.send("SUB d AS x");
    assert_eq!(
        client.sync(),
        ["ERR too many durable subscriptions (limit 2)\n"]
    );
    // Three topics exist: a CREATE with options past the limit writes nothing.
    client.send("CREATE e ttl=5");
    client.send("CREATE e ttl=5");
    let reply = client.sync();
    assert_eq!(reply, ["ERR too many topics (limit 3)\n"; 2]);
    let topics_file = std::fs::read_to_string(data.path().join("topics")).unwrap();
    assert_eq!(topics_file, "");
    drop(client);
    assert_eq!(broker.terminate(), Some(0));
    // After a restart the journal's durable subscriptions still count.
    let broker = Broker::start(&args);
    let mut client = broker.connect();
    client.send("SUB d AS y");
    client.send("SUB b/c AS a");
    assert_eq!(
        client.sync(),
        ["ERR too many durable subscriptions (limit 2)\n"]
    );
}
