//! `clockd serve` end to end: the topics protocol byte for byte, every added command, and
//! bad input. Each test starts the real binary on ephemeral loopback ports.

mod server;

use server::Broker;

#[test]
fn the_topics_transcript_byte_for_byte() {
    let broker = Broker::start(&[]);
    let mut subscriber = broker.connect();
    let mut publisher = broker.connect();
    subscriber.send_raw(b"SUB mytopic\r\n"); // telnet sends CRLF
    assert!(subscriber.sync().is_empty(), "SUB answers nothing");
    publisher.send("PUB mytopic a message");
    assert_eq!(subscriber.expect_line(), "UPDATED mytopic a message\n");
    // The publisher is not subscribed: it gets nothing but its PONG.
    assert!(publisher.sync().is_empty());
    // Spaces in the message are kept as sent.
    publisher.send("PUB mytopic  two  spaces ");
    assert_eq!(subscriber.expect_line(), "UPDATED mytopic  two  spaces \n");
}

#[test]
fn a_subscriber_gets_only_its_topics_and_unsub_stops_them() {
    let broker = Broker::start(&[]);
    let mut sub = broker.connect();
    let mut publisher = broker.connect();
    sub.send("SUB a");
    sub.send("SUB b");
    sub.sync();
    publisher.send("PUB a 1");
    publisher.send("PUB c not for you");
    publisher.send("PUB b 2");
    assert_eq!(sub.expect_line(), "UPDATED a 1\n");
    assert_eq!(sub.expect_line(), "UPDATED b 2\n");
    sub.send("UNSUB a");
    sub.sync();
    publisher.send("PUB a 3");
    publisher.send("PUB b 4");
    assert_eq!(sub.expect_line(), "UPDATED b 4\n", "a was unsubscribed");
    sub.send("UNSUB a");
    assert_eq!(sub.sync(), vec!["ERR not subscribed to a\n"]);
}

#[test]
fn stamps_and_clock_lines() {
    let broker = Broker::start(&[]);
    let mut sub = broker.connect();
    let mut publisher = broker.connect();
    sub.send("STAMPS on");
    sub.send("SUB t");
    sub.sync();
    publisher.send("PUB t first");
    publisher.send("PUB t second");
    let first = sub.expect_line();
    let second = sub.expect_line();
    let stamp = |line: &str| -> usize {
        let rest = line.strip_prefix("STAMPED ").expect("a stamped delivery");
        let (stamp, body) = rest.split_once(' ').unwrap();
        assert!(body.starts_with("t "), "{line}");
        stamp.parse().unwrap()
    };
    let (s1, s2) = (stamp(&first), stamp(&second));
    assert!(s2 > s1, "stamps increase: {s1} then {s2}");
    assert!(first.ends_with(" t first\n") && second.ends_with(" t second\n"));

    // CLOCK on: a publish elsewhere moves this connection's watermark.
    sub.send("CLOCK on");
    sub.sync();
    publisher.send("PUB elsewhere x");
    publisher.sync();
    let clock = sub.expect_line();
    let watermark: usize = clock
        .strip_prefix("CLOCK ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a CLOCK line, got {clock:?}"));
    assert!(watermark > s2, "the watermark {watermark} passed {s2}");

    // Off again: plain UPDATED lines, no CLOCK lines.
    sub.send("STAMPS off");
    sub.send("CLOCK off");
    sub.sync();
    publisher.send("PUB elsewhere y");
    publisher.send("PUB t third");
    assert_eq!(sub.expect_line(), "UPDATED t third\n");
}

#[test]
fn ping_quit_close_and_create() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    client.send("ping");
    assert_eq!(client.expect_line(), "PONG\n");
    client.send("CREATE made");
    client.send("CREATE made"); // twice is fine
    assert!(client.sync().is_empty());
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains("clockd_topic_subscribers{topic=\"made\"} 0"),
        "{metrics}"
    );
    client.send("CREATE other ttl=60");
    let reply = client.sync();
    assert_eq!(reply.len(), 1);
    assert_eq!(
        reply[0],
        "ERR CREATE with ttl= or compact= needs a journal: start the broker with --data DIR\n"
    );
    // So do replays and durable subscriptions; the connection goes on.
    client.send("SUB t FROM 1");
    client.send("SUB t AS me");
    client.send("COMMIT t 1");
    let reply = client.sync();
    assert_eq!(reply.len(), 3, "{reply:?}");
    assert!(
        reply[0].contains("SUB topic FROM stamp needs a journal"),
        "{reply:?}"
    );
    assert!(
        reply[1].contains("SUB topic AS name needs a journal"),
        "{reply:?}"
    );
    assert!(
        reply[2].starts_with("ERR no durable subscription to t"),
        "{reply:?}"
    );
    client.send("QUIT");
    assert!(client.closed());
    let mut other = broker.connect();
    other.send("CLOSE");
    assert!(other.closed());
}

#[test]
fn bad_lines_get_an_err_and_the_connection_goes_on() {
    let broker = Broker::start(&[]);
    let mut client = broker.connect();
    let cases: [(&[u8], &str); 10] = [
        (b"FROB x\n", "ERR unknown command \"FROB\"\n"),
        (b"SUB \n", "ERR bad topic name: empty\n"),
        (b"SUB  x\n", "ERR usage: SUB topic [FROM stamp | AS name]\n"),
        (b"PUB lonely\n", "ERR usage: PUB topic message\n"),
        (b"PUB t \xff\xfe\n", "ERR line is not UTF-8\n"),
        (b"CLOCK sometimes\n", "ERR usage: CLOCK on|off\n"),
        (b"SUB t FROM soon\n", "ERR stamp \"soon\" is not a number\n"),
        (b"COMMIT t\n", "ERR usage: COMMIT topic stamp\n"),
        (
            b"CREATE t size=9\n",
            "ERR unknown option \"size=9\": CREATE takes ttl=SECS and compact=SECS\n",
        ),
        (
            b"PING now\n",
            "ERR usage: PING, TIME, QUIT and CLOSE take no arguments\n",
        ),
    ];
    for (input, reply) in cases {
        client.send_raw(input);
        assert_eq!(
            client.expect_line(),
            reply,
            "for {:?}",
            String::from_utf8_lossy(input)
        );
    }
    client.send_raw(b"\n\r\n"); // empty lines are ignored
    assert!(client.sync().is_empty(), "still usable");
    assert!(broker.metric("clockd_errors_total") >= 10);
}

#[test]
fn a_line_over_the_limit_closes_that_connection_only() {
    let broker = Broker::start(&["--max-line", "1024"]);
    let mut bystander = broker.connect();
    bystander.send("SUB t");
    bystander.sync();
    let mut hostile = broker.connect();
    let mut flood = b"PUB t ".to_vec();
    flood.extend(std::iter::repeat_n(b'x', 64 * 1024));
    hostile.send_raw(&flood);
    assert_eq!(hostile.expect_line(), "ERR line longer than 1024 bytes\n");
    assert!(hostile.closed());
    // Nothing of it was published; the bystander is unharmed.
    let mut publisher = broker.connect();
    publisher.send("PUB t fine");
    assert_eq!(bystander.expect_line(), "UPDATED t fine\n");
}

#[test]
fn a_token_is_required_first_when_set() {
    let broker = Broker::start(&["--token", "s3cret"]);
    let mut anonymous = broker.connect();
    anonymous.send("SUB t");
    assert_eq!(
        anonymous.expect_line(),
        "ERR authentication required: AUTH token\n"
    );
    assert!(anonymous.closed());
    let mut wrong = broker.connect();
    wrong.send("AUTH guess");
    assert_eq!(wrong.expect_line(), "ERR authentication failed\n");
    assert!(wrong.closed());
    let mut garbled = broker.connect();
    garbled.send_raw(b"\xff\xfe\n");
    assert_eq!(
        garbled.expect_line(),
        "ERR authentication required: AUTH token\n"
    );
    assert!(
        garbled.closed(),
        "bad input before AUTH closes the connection"
    );
    let mut member = broker.connect();
    member.send("AUTH s3cret");
    member.send("SUB t");
    member.send("PUB t hello");
    assert_eq!(member.expect_line(), "UPDATED t hello\n");
}

#[test]
fn connections_and_subscriptions_are_limited() {
    let broker = Broker::start(&["--max-connections", "2", "--max-subscriptions", "2"]);
    let mut first = broker.connect();
    let _second = broker.connect();
    first.sync(); // both are counted by now? the first is; wait for the second too
    broker.wait_for_metric("clockd_connections", |n| n == 2);
    let mut third = broker.connect();
    assert_eq!(third.expect_line(), "ERR too many connections (limit 2)\n");
    assert!(third.closed());
    first.send("SUB a");
    first.send("SUB b");
    first.send("SUB c");
    assert_eq!(first.sync(), vec!["ERR too many subscriptions (limit 2)\n"]);
}

#[test]
fn metrics_status_page_and_clockd_status() {
    let broker = Broker::start(&[]);
    let mut sub = broker.connect();
    sub.send("SUB news");
    sub.sync();
    let mut publisher = broker.connect();
    publisher.send("PUB news one");
    sub.expect_line();
    let (status, metrics) = broker.http_get("/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(metrics.contains("# TYPE clockd_messages_in_total counter"));
    assert!(
        metrics.contains("clockd_topic_messages_total{topic=\"news\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("clockd_topic_subscribers{topic=\"news\"} 1"));
    assert!(
        metrics.contains("clockd_subscriber_backlog{receiver=\"conn-1\"}"),
        "{metrics}"
    );
    assert_eq!(broker.metric("clockd_receivers"), 1);
    let (status, page) = broker.http_get("/");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(page.contains("http-equiv=\"refresh\""));
    assert!(page.contains("<td>news</td><td>1</td><td>1</td>"), "{page}");
    assert_eq!(broker.http_get("/nope").0, "HTTP/1.0 404 Not Found");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(["status", &broker.monitor.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("clockd_messages_in_total "))
        .expect("the counter is printed");
    assert_eq!(line.split_whitespace().last(), Some("1"));
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_spill_directory() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.connect();
    client.send("SUB t");
    client.sync();
    assert!(
        broker.spill_dir().exists(),
        "the dispatcher made its spill directory"
    );
    assert_eq!(broker.terminate(), Some(0));
    assert!(client.closed(), "connections end with the process");
    assert!(!broker.spill_dir().exists(), "a clean shutdown removes it");
    assert!(!broker.is_running());
}

#[test]
fn a_flood_of_subscriptions_hits_the_limits_and_harms_no_one() {
    let broker = Broker::start(&["--max-topics", "1000", "--max-subscriptions", "100000"]);
    let mut bystander = broker.connect();
    bystander.send("SUB news");
    bystander.sync();
    let mut flooder = broker.connect();
    let mut flood = String::new();
    for i in 0..20_000 {
        flood.push_str(&format!("SUB flood-{i}\n"));
    }
    flooder.send_raw(flood.as_bytes());
    let replies = flooder.sync();
    // 999 new topics fit beside "news"; every SUB after that is refused, one line each.
    assert_eq!(replies.len(), 20_000 - 999);
    assert!(replies
        .iter()
        .all(|r| r == "ERR too many topics (limit 1000)\n"));
    assert_eq!(broker.metric("clockd_topics"), 1000);
    let mut publisher = broker.connect();
    publisher.send("PUB news still here");
    assert_eq!(bystander.expect_line(), "UPDATED news still here\n");
}

#[test]
fn a_connection_that_does_not_authenticate_in_time_is_closed() {
    let broker = Broker::start(&["--token", "s3cret", "--auth-timeout", "1"]);
    let mut silent = broker.connect();
    let started = std::time::Instant::now();
    assert_eq!(silent.expect_line(), "ERR authentication timed out\n");
    assert!(silent.closed());
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(broker.wait_for_metric("clockd_connections", |n| n == 0), 0);
}
