//! The library's remote receiver (`clocked_dispatch::remote`, feature `remote`) against the
//! real `clockd serve`: the broker's stream as a `ClockedReceiver`, durable resume across a
//! `kill -9` of the broker, and typed errors when the broker is gone.

mod server;

use std::time::{Duration, Instant};

use clocked_dispatch::remote::{Message, RemoteError, RemoteSubscriber};
use std::sync::mpsc::RecvTimeoutError;

use clocked_dispatch::{ClockedReceiver, Select};
use server::Broker;

const WAIT: Duration = Duration::from_secs(20);

/// The next `n` data messages of `rx`: (stamp, topic, body); watermarks are checked to rise
/// and never to pass a later message's stamp.
fn data(rx: &ClockedReceiver<Message>, n: usize) -> Vec<(usize, String, String)> {
    data_or(rx, n, &|| String::new())
}

fn data_or(
    rx: &ClockedReceiver<Message>,
    n: usize,
    why: &dyn Fn() -> String,
) -> Vec<(usize, String, String)> {
    let mut got = Vec::new();
    let mut last = 0;
    while got.len() < n {
        let (message, stamp) = match rx.recv_timeout(WAIT) {
            Ok(item) => item,
            Err(e) => panic!(
                "no message in time ({e:?}) after {} of {n}, last {last}: {}",
                got.len(),
                why()
            ),
        };
        assert!(
            stamp > last || (message.is_some() && stamp >= last),
            "stamps rise"
        );
        last = stamp;
        if let Some(Message { topic, body }) = message {
            got.push((stamp, topic, body));
        }
    }
    got
}

#[test]
fn a_remote_stream_is_the_brokers_stream_as_a_clocked_receiver() {
    let broker = Broker::start(&[]);
    let (rx, remote) = RemoteSubscriber::new(broker.addr.to_string())
        .topic("a")
        .topic("b")
        .connect()
        .expect("connects");
    assert!(remote.is_connected());
    let mut watcher = broker.connect();
    watcher.send("STAMPS on");
    watcher.send("SUB a");
    watcher.send("SUB b");
    watcher.sync();
    let mut publisher = broker.connect();
    for i in 0..30 {
        let topic = ["a", "b", "c"][i % 3];
        publisher.send(&format!("PUB {topic} m{i} and more"));
    }
    publisher.sync();
    // The watcher's view, by the topics protocol.
    let want: Vec<(usize, String, String)> = (0..20)
        .map(|_| {
            let line = watcher.expect_line();
            let mut fields = line.trim_end().splitn(4, ' ');
            let (_, stamp, topic, body) =
                (fields.next(), fields.next(), fields.next(), fields.next());
            (
                stamp.unwrap().parse().unwrap(),
                topic.unwrap().into(),
                body.unwrap().into(),
            )
        })
        .collect();
    // The same messages, stamps and order through the remote receiver, with a local
    // receiver beside it in one `Select`.
    let local = clocked_dispatch::new::<Message>(4);
    let (_tx, local_rx) = local.new("local", "local");
    let mut select = Select::new();
    let remote_index = select.recv(&rx);
    select.recv(&local_rx);
    let mut got = Vec::new();
    let mut watermark = 0;
    while got.len() < 20 {
        let op = select.select_timeout(WAIT).expect("something ready");
        assert_eq!(op.index(), remote_index, "the local one has nothing");
        match op.recv(&rx).expect("open") {
            (Some(Message { topic, body }), stamp) => got.push((stamp, topic, body)),
            (None, stamp) => watermark = watermark.max(stamp),
        }
    }
    assert_eq!(got, want);
    // The stamps of `c` reach the remote receiver as a watermark at least up to the last one.
    let deadline = Instant::now() + WAIT;
    while watermark < 30 {
        assert!(
            Instant::now() < deadline,
            "the watermark reaches 30: {watermark}"
        );
        if let Ok((None, stamp)) = rx.recv_timeout(Duration::from_millis(100)) {
            watermark = watermark.max(stamp);
        }
    }
    assert_eq!(remote.commit(1), Err(RemoteError::NotDurable));
}

#[test]
fn a_durable_stream_resumes_after_a_broker_crash_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let broker = Broker::start(&["--data", data]);
    let listen = broker.addr.to_string();
    // Two topics: the broker replays them one after the other; the stream stays in order.
    let (rx, remote) = RemoteSubscriber::new(listen.clone())
        .topic("jobs")
        .topic("more")
        .durable("worker")
        .reconnect_for(WAIT)
        .connect()
        .expect("connects");
    let mut publisher = broker.connect();
    for i in 0..100 {
        publisher.send(&format!("PUB {} j{i}", ["jobs", "more"][i % 2]));
    }
    publisher.sync();
    // All 100 read: the broker delivered them, so its journal has them (a publish is only
    // stored for sure once delivered; a `kill -9` may take undelivered ones with it).
    let state1 = || {
        format!(
            "phase 1: error {:?} connected {} reconnects {}",
            remote.error(),
            remote.is_connected(),
            remote.reconnects()
        )
    };
    let first: Vec<(usize, String)> = data_or(&rx, 100, &state1)
        .into_iter()
        .map(|(s, _, b)| (s, b))
        .collect();
    // Processed up to the 50th: j50..j99 are replayed after the crash, and dropped by the
    // bridge, which relayed them already.
    remote.commit_and_wait(first[49].0).expect("stored");
    drop(publisher);
    drop(broker); // SIGKILL
    let broker = Broker::start_on(&listen, &["--data", data]);
    let mut publisher = broker.connect();
    for i in 100..200 {
        publisher.send(&format!("PUB {} j{i}", ["jobs", "more"][i % 2]));
    }
    publisher.sync();
    let state = || {
        format!(
            "phase 2: error {:?} connected {} reconnects {}",
            remote.error(),
            remote.is_connected(),
            remote.reconnects()
        )
    };
    let rest: Vec<(usize, String)> = data_or(&rx, 100, &state)
        .into_iter()
        .map(|(s, _, b)| (s, b))
        .collect();
    let bodies: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|(_, body)| body.clone())
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("j{i}")).collect();
    assert_eq!(
        bodies, want,
        "every message once, in order, across the crash"
    );
    assert!(remote.reconnects() >= 1);
    let stamps: Vec<usize> = first.iter().chain(&rest).map(|(stamp, _)| *stamp).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_lost_broker_ends_the_stream_with_a_typed_error_not_a_hang() {
    let broker = Broker::start(&[]);
    let (rx, remote) = RemoteSubscriber::new(broker.addr.to_string())
        .topic("t")
        .connect()
        .unwrap();
    let mut publisher = broker.connect();
    publisher.send("PUB t before");
    publisher.sync();
    assert_eq!(data(&rx, 1)[0].2, "before");
    drop(publisher);
    drop(broker);
    let started = Instant::now();
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(_) => continue, // a watermark, at most
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the stream did not end"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(remote.error(), Some(RemoteError::Disconnected(_))),
        "{:?}",
        remote.error()
    );

    // A durable one tries for its reconnect window, then ends the same way.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::start(&["--data", data.to_str().unwrap()]);
    let (rx, remote) = RemoteSubscriber::new(broker.addr.to_string())
        .topic("t")
        .durable("d")
        .reconnect_for(Duration::from_millis(500))
        .connect()
        .unwrap();
    drop(broker);
    let started = Instant::now();
    while rx.recv_timeout(WAIT).is_ok() {}
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let error = remote.error();
    assert!(
        matches!(&error, Some(RemoteError::Disconnected(why)) if why.contains("no reconnect")),
        "{error:?}"
    );
}

#[test]
fn connect_fails_with_a_reason() {
    // Nothing listens there any more.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = RemoteSubscriber::new(addr.to_string()).topic("t").connect();
    assert!(
        matches!(refused, Err(RemoteError::Connect(_))),
        "{:?}",
        refused.err()
    );
    // A durable subscription needs a broker with --data.
    let broker = Broker::start(&[]);
    let refused = RemoteSubscriber::new(broker.addr.to_string())
        .topic("t")
        .durable("d")
        .connect();
    match refused {
        Err(RemoteError::Refused(why)) => assert!(why.contains("--data"), "{why}"),
        other => panic!("refused, not {:?}", other.err()),
    }
    let none = RemoteSubscriber::new(broker.addr.to_string()).connect();
    assert!(matches!(none, Err(RemoteError::Refused(_))));
}
