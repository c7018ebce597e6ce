//! `clockd serve --nats`: the NATS core protocol, tested with a client nobody here wrote
//! (`async-nats`), against the real binary on ephemeral loopback ports.

mod server;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use futures::StreamExt;
use server::Broker;

/// How long a test waits for any one message before it fails.
const WAIT: Duration = Duration::from_secs(20);

fn start(extra: &[&str]) -> (Broker, String) {
    let mut args = vec!["--nats", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let broker = Broker::start(&args);
    let url = format!(
        "nats://{}",
        broker.nats.expect("clockd prints its NATS address")
    );
    (broker, url)
}

async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("async-nats connects")
}

/// A round trip through the broker: every subscription `client` made before is in effect
/// when this returns, so a publish from another connection afterwards reaches it.
/// async-nats's `flush` only writes the client's buffer to the socket (its flush observers
/// are told when the write completes, not when the server answers), so it does not order a
/// SUB before another connection's PUB: the mixed-order test lost its first messages to that
/// race about once in 40 runs. A request to a subject nobody serves is answered by the
/// broker ("no responders") after it has handled everything the connection sent before.
async fn subscribed(client: &async_nats::Client) {
    client.flush().await.expect("flush");
    let answer = tokio::time::timeout(WAIT, client.request("sync.nobody.serves", "".into()))
        .await
        .expect("the broker answers in time");
    assert!(
        answer.is_err(),
        "nobody serves the sync subject: {answer:?}"
    );
}

/// The next message of `sub`, or a failed test after [`WAIT`].
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

/// The message's `Clocked-Stamp` header.
fn stamp(message: &async_nats::Message) -> u64 {
    let headers = message.headers.as_ref().expect("headers");
    let value = headers
        .get("Clocked-Stamp")
        .expect("a Clocked-Stamp header");
    value.as_str().parse().expect("a number")
}

fn text(message: &async_nats::Message) -> String {
    String::from_utf8_lossy(&message.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_route_and_every_message_carries_its_stamp() {
    let (_broker, url) = start(&[]);
    let client = connect(&url).await;
    let mut star = client.subscribe("orders.*").await.unwrap();
    let mut full = client.subscribe("orders.>").await.unwrap();
    let mut exact = client.subscribe("orders.eu").await.unwrap();
    subscribed(&client).await;
    let publisher = connect(&url).await;
    for subject in ["orders.eu", "orders.us.east", "orders.us", "other"] {
        publisher.publish(subject, subject.into()).await.unwrap();
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Trace", "abc");
    publisher
        .publish_with_headers("orders.eu", headers, "with headers".into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();

    let got: Vec<String> = [
        next(&mut star).await,
        next(&mut star).await,
        next(&mut star).await,
    ]
    .iter()
    .map(text)
    .collect();
    assert_eq!(got, ["orders.eu", "orders.us", "with headers"]);
    let mut stamps = Vec::new();
    for _ in 0..4 {
        let message = next(&mut full).await;
        stamps.push((stamp(&message), text(&message)));
    }
    let texts: Vec<&str> = stamps.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["orders.eu", "orders.us.east", "orders.us", "with headers"]
    );
    assert!(
        stamps.windows(2).all(|w| w[0].0 < w[1].0),
        "stamps rise: {stamps:?}"
    );
    let first = next(&mut exact).await;
    assert_eq!(
        (text(&first), stamp(&first)),
        ("orders.eu".into(), stamps[0].0)
    );
    let second = next(&mut exact).await;
    let trace = second.headers.as_ref().and_then(|h| h.get("Trace"));
    assert_eq!(
        trace.map(|v| v.as_str()),
        Some("abc"),
        "the publisher's header is kept"
    );
    assert_eq!(stamp(&second), stamps[3].0);
    // Nothing else came: `other` matched none of them.
    client.flush().await.unwrap();
    let extra = tokio::time::timeout(Duration::from_millis(300), star.next()).await;
    assert!(extra.is_err(), "no more messages: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_splits_a_stream_between_its_members() {
    let (_broker, url) = start(&[]);
    let mut members = Vec::new();
    for _ in 0..3 {
        let client = connect(&url).await;
        let sub = client.queue_subscribe("work", "q".into()).await.unwrap();
        subscribed(&client).await;
        members.push((client, sub));
    }
    let watcher = connect(&url).await;
    let mut everything = watcher.subscribe("work").await.unwrap();
    subscribed(&watcher).await;
    let publisher = connect(&url).await;
    for i in 0..300 {
        publisher
            .publish("work", i.to_string().into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();

    let mut seen = BTreeSet::new();
    let mut shares = Vec::new();
    let mut total = 0;
    for (_, sub) in members.iter_mut() {
        let mut share = 0;
        while total < 300 {
            match tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
                Ok(Some(message)) => {
                    assert!(
                        seen.insert(text(&message)),
                        "delivered twice: {}",
                        text(&message)
                    );
                    share += 1;
                    total += 1;
                }
                _ => break,
            }
        }
        shares.push(share);
    }
    assert_eq!(
        seen.len(),
        300,
        "every message went to one member: shares {shares:?}"
    );
    // Round robin over the members, in the order they joined.
    assert_eq!(shares, [100, 100, 100]);
    for i in 0..300 {
        assert_eq!(text(&next(&mut everything).await), i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_replies_and_nobody_serving_is_reported_at_once() {
    let (broker, url) = start(&[]);
    let responder = connect(&url).await;
    let mut service = responder.subscribe("svc.upper").await.unwrap();
    subscribed(&responder).await;
    let serving = tokio::spawn(async move {
        for _ in 0..3 {
            let request = next(&mut service).await;
            let reply = request.reply.clone().expect("a reply subject");
            let answer = text(&request).to_uppercase();
            responder.publish(reply, answer.into()).await.unwrap();
        }
        responder.flush().await.unwrap();
    });
    // A second connection that watches every reply: a reply subject then matches two
    // connections, and still makes no topic.
    let watcher = connect(&url).await;
    let mut replies = watcher.subscribe("_INBOX.>").await.unwrap();
    subscribed(&watcher).await;
    // The sync's "no responders" answer went to an inbox subject, which `_INBOX.>` matches.
    let status = next(&mut replies).await;
    assert_eq!(status.status.map(|code| code.as_u16()), Some(503));
    let client = connect(&url).await;
    for word in ["one", "two", "three"] {
        let reply = tokio::time::timeout(WAIT, client.request("svc.upper", word.into()))
            .await
            .expect("a reply in time")
            .expect("a reply");
        assert_eq!(text(&reply), word.to_uppercase());
    }
    serving.await.unwrap();
    for word in ["ONE", "TWO", "THREE"] {
        assert_eq!(
            text(&next(&mut replies).await),
            word,
            "the watcher saw each reply"
        );
    }
    let started = std::time::Instant::now();
    let nobody = client.request("svc.nobody", "hello".into()).await;
    let kind = nobody.expect_err("nobody serves it").kind();
    assert_eq!(kind, RequestErrorKind::NoResponders);
    assert!(started.elapsed() < Duration::from_secs(5), "not a timeout");
    let broker = tokio::task::spawn_blocking(move || {
        let topics = broker.metric("clockd_topics");
        (broker, topics)
    });
    let (_broker, topics) = broker.await.unwrap();
    assert_eq!(
        topics, 1,
        "svc.upper only: replies and unserved requests make no topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_and_nats_subscribers_see_one_order() {
    let (broker, url) = start(&[]);
    let mut telnet = broker.connect();
    telnet.send("STAMPS on");
    telnet.send("SUB mixed");
    assert!(telnet.sync().is_empty());
    let client = connect(&url).await;
    let mut sub = client.subscribe("mixed").await.unwrap();
    subscribed(&client).await;

    // Two publishers at once, one of each protocol.
    let addr = broker.addr;
    let telnet_publisher = std::thread::spawn(move || {
        let mut publisher = server::Client::connect(addr);
        for i in 0..200 {
            publisher.send(&format!("PUB mixed t{i}"));
        }
        publisher.sync();
    });
    let publisher = connect(&url).await;
    for i in 0..200 {
        publisher
            .publish("mixed", format!("n{i}").into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    tokio::task::spawn_blocking(move || telnet_publisher.join().unwrap())
        .await
        .unwrap();

    let mut via_nats = Vec::new();
    for _ in 0..400 {
        let message = next(&mut sub).await;
        via_nats.push(format!("{} {}", stamp(&message), text(&message)));
    }
    let via_telnet = tokio::task::spawn_blocking(move || {
        (0..400)
            .map(|_| {
                let line = telnet.expect_line();
                let rest = line
                    .trim_end()
                    .strip_prefix("STAMPED ")
                    .expect("a delivery");
                let (stamp, body) = rest.split_once(' ').unwrap();
                format!("{stamp} {}", body.strip_prefix("mixed ").unwrap())
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(via_nats, via_telnet, "one order for both protocols");
    let stamps: Vec<u64> = via_nats
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing"
    );
    for prefix in ["t", "n"] {
        // Each publisher's messages keep their order.
        let mine: Vec<String> = via_nats
            .iter()
            .filter_map(|l| l.split(' ').nth(1).filter(|t| t.starts_with(prefix)))
            .map(String::from)
            .collect();
        let want: Vec<String> = (0..200).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(mine, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_a_broker_restart() {
    let (mut broker, url) = start(&[]);
    let nats_addr = broker.nats.unwrap().to_string();
    let client = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(&url)
        .await
        .unwrap();
    let mut sub = client.subscribe("after").await.unwrap();
    client
        .publish("after", "before the restart".into())
        .await
        .unwrap();
    assert_eq!(text(&next(&mut sub).await), "before the restart");

    assert_eq!(broker.terminate(), Some(0), "a clean exit on SIGTERM");
    let broker = Broker::start(&["--nats", &nats_addr]);
    assert_eq!(broker.nats.map(|a| a.to_string()), Some(nats_addr));
    // The client resubscribes on reconnect; publish until the subscription is back.
    let deadline = std::time::Instant::now() + WAIT;
    let message = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no message after the restart"
        );
        let _ = client.publish("after", "after the restart".into()).await;
        let _ = client.flush().await;
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(200), sub.next()).await
        {
            break message;
        }
    };
    assert_eq!(text(&message), "after the restart");
    assert!(stamp(&message) >= 1);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lets_async_nats_in_and_keeps_others_out() {
    let (_broker, url) = start(&["--token", "s3cret"]);
    let client = async_nats::ConnectOptions::with_token("s3cret".into())
        .connect(&url)
        .await
        .expect("the right token connects");
    let mut sub = client.subscribe("private").await.unwrap();
    client.publish("private", "in".into()).await.unwrap();
    assert_eq!(text(&next(&mut sub).await), "in");
    let refused = async_nats::ConnectOptions::with_token("wrong".into())
        .connect(&url)
        .await;
    assert!(refused.is_err(), "a wrong token is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_data_nats_publishes_are_kept_and_replayed_to_telnet() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let (broker, url) = start(&["--data", dir.to_str().unwrap()]);
    let client = connect(&url).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Kind", "binary");
    client.publish("kept", "first line".into()).await.unwrap();
    client
        .publish_with_headers("kept", headers, b"two\nlines\xff".to_vec().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut telnet = broker.connect();
        telnet.send("SUB kept FROM 1");
        let lines = telnet.sync();
        drop(broker);
        lines
    })
    .await
    .unwrap();
    assert_eq!(
        lines,
        [
            "UPDATED kept first line\n",
            "UPDATED kept two lines\u{FFFD}\n"
        ],
        "replayed from the journal, the second flattened for a line protocol"
    );
}
