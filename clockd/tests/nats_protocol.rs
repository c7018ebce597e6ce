//! `clockd serve --nats`, byte by byte: the protocol's edges (errors, limits, keep-alive,
//! authorization, `UNSUB` with a maximum, `$CLOCK`), with a plain TCP client on loopback.

mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use server::{Broker, READ_TIMEOUT};

/// A NATS connection spoken by hand.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The `INFO` line it got first.
    info: String,
}

impl Raw {
    fn connect(broker: &Broker) -> Raw {
        let socket = TcpStream::connect(broker.nats.expect("started with --nats")).unwrap();
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut raw = Raw {
            writer: socket.try_clone().unwrap(),
            reader: BufReader::new(socket),
            info: String::new(),
        };
        raw.info = raw.line().expect("INFO first");
        assert!(raw.info.starts_with("INFO {"), "{}", raw.info);
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next line with its `\r\n`; `None` at the end of the connection.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no line from the broker: {e}"),
        }
    }

    /// `PING`, then the lines before its `PONG`.
    fn sync(&mut self) -> Vec<String> {
        self.send(b"PING\r\n");
        let mut before = Vec::new();
        loop {
            let line = self.line().expect("a line before PONG");
            if line == "PONG\r\n" {
                return before;
            }
            before.push(line);
        }
    }

    /// The next `MSG`: (its control line without `\r\n`, its payload).
    fn msg(&mut self) -> (String, Vec<u8>) {
        let line = self.line().expect("a MSG");
        let line = line.trim_end().to_string();
        assert!(line.starts_with("MSG "), "{line}");
        let size: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        let mut payload = vec![0; size + 2];
        self.reader.read_exact(&mut payload).unwrap();
        assert!(payload.ends_with(b"\r\n"));
        payload.truncate(size);
        (line, payload)
    }

    /// A `+OK` and a `MSG`, in either order: the `MSG`.
    fn ok_and_msg(&mut self) -> (String, Vec<u8>) {
        let first = self.line().expect("+OK or MSG");
        if first == "+OK\r\n" {
            return self.msg();
        }
        let size: usize = first
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut payload = vec![0; size + 2];
        self.reader.read_exact(&mut payload).unwrap();
        payload.truncate(size);
        assert_eq!(self.line().unwrap(), "+OK\r\n");
        (first.trim_end().to_string(), payload)
    }

    /// Reads to the end, which must come: the broker closed the connection.
    fn closed(&mut self) -> String {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

fn start(extra: &[&str]) -> Broker {
    let mut args = vec!["--nats", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Broker::start(&args)
}

#[test]
fn verbose_and_pedantic_modes_answer_and_refuse_without_closing() {
    let broker = start(&[]);
    let mut c = Raw::connect(&broker);
    c.send(b"CONNECT {\"verbose\":true,\"pedantic\":true}\r\nSUB a.* 1\r\nPUB a.b 2\r\nhi\r\n");
    assert_eq!(c.line().unwrap(), "+OK\r\n"); // CONNECT
    assert_eq!(c.line().unwrap(), "+OK\r\n"); // SUB
                                              // The PUB's +OK and its delivery to this connection come in either order.
    assert_eq!(c.ok_and_msg(), ("MSG a.b 1 2".into(), b"hi".to_vec()));
    c.send(b"PUB a.* 1\r\nx\r\nSUB a..b 2\r\nHPUB a.b 5 5\r\nhello\r\nPUB $CLOCK 1\r\nx\r\n");
    let lines = c.sync();
    assert_eq!(
        lines,
        [
            "-ERR 'Invalid Publish Subject'\r\n",
            "-ERR 'Invalid Subject'\r\n",
            "-ERR 'Invalid Header: NATS/1.0 [status], then Name: value lines, then an empty line'\r\n",
            "-ERR 'Permissions Violation for Publish to \"$CLOCK\"'\r\n",
        ]
    );
    // Still open, still subscribed.
    c.send(b"PUB a.c 2\r\nok\r\n");
    assert_eq!(c.ok_and_msg(), ("MSG a.c 1 2".into(), b"ok".to_vec()));
}

#[test]
fn framing_violations_close_only_their_connection_and_lose_nothing_accepted() {
    let broker = start(&["--nats-max-payload", "16"]);
    let mut watcher = Raw::connect(&broker);
    assert!(
        watcher.info.contains("\"max_payload\":16"),
        "{}",
        watcher.info
    );
    watcher.send(b"SUB t 1\r\n");
    watcher.sync();
    let mut big = Raw::connect(&broker);
    big.send(b"PUB t 5\r\nfirst\r\nPUB t 17\r\n");
    assert_eq!(big.closed(), "-ERR 'Maximum Payload Violation'\r\n");
    let mut unknown = Raw::connect(&broker);
    unknown.send(b"PUB t 6\r\nsecond\r\nHELLO\r\n");
    assert_eq!(unknown.closed(), "-ERR 'Unknown Protocol Operation'\r\n");
    let mut long = Raw::connect(&broker);
    long.send(format!("SUB {} 1\r\n", "x".repeat(5000)).as_bytes());
    assert_eq!(long.closed(), "-ERR 'Maximum Control Line Exceeded'\r\n");
    let mut torn = Raw::connect(&broker);
    torn.send(b"PUB t 2\r\nabcd\r\n");
    let reply = torn.closed();
    assert!(reply.starts_with("-ERR 'Parser Error"), "{reply}");
    // What was accepted before each violation was delivered; the watcher is untouched.
    assert_eq!(watcher.msg().1, b"first");
    assert_eq!(watcher.msg().1, b"second");
    assert!(watcher.sync().is_empty());
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_as_stale() {
    let broker = start(&["--nats-ping-interval", "1", "--nats-max-pings-out", "2"]);
    let mut silent = Raw::connect(&broker);
    let mut answering = Raw::connect(&broker);
    // The other one answers every PING, and stays.
    let answers = std::thread::spawn(move || {
        for _ in 0..4 {
            assert_eq!(answering.line().unwrap(), "PING\r\n");
            answering.send(b"PONG\r\n");
        }
        answering.sync().is_empty()
    });
    let started = Instant::now();
    assert_eq!(silent.line().unwrap(), "PING\r\n");
    assert_eq!(silent.line().unwrap(), "PING\r\n");
    assert_eq!(silent.closed(), "-ERR 'Stale Connection'\r\n");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "three intervals, not {took:?}"
    );
    assert!(answers.join().unwrap(), "still open after 4 pings");
}

#[test]
fn a_token_is_required_before_anything_else() {
    let broker = start(&["--token", "s3cret"]);
    let mut early = Raw::connect(&broker);
    assert!(
        early.info.contains("\"auth_required\":true"),
        "{}",
        early.info
    );
    early.send(b"SUB a 1\r\n");
    assert_eq!(early.closed(), "-ERR 'Authorization Violation'\r\n");
    let mut wrong = Raw::connect(&broker);
    wrong.send(b"CONNECT {\"auth_token\":\"nope\"}\r\n");
    assert_eq!(wrong.closed(), "-ERR 'Authorization Violation'\r\n");
    let mut right = Raw::connect(&broker);
    right.send(b"CONNECT {\"auth_token\":\"s3cret\"}\r\nSUB a 1\r\nPUB a 1\r\nx\r\n");
    assert_eq!(right.msg().1, b"x");
}

#[test]
fn unsub_with_a_maximum_ends_after_that_many_messages() {
    let broker = start(&[]);
    let mut sub = Raw::connect(&broker);
    sub.send(b"SUB n 1\r\nSUB n 2\r\nUNSUB 1 3\r\nSUB done 3\r\n");
    sub.sync();
    let mut publisher = Raw::connect(&broker);
    for i in 0..5 {
        publisher.send(format!("PUB n 1\r\n{i}\r\n").as_bytes());
    }
    publisher.send(b"PUB done 0\r\n\r\n");
    publisher.sync();
    // A connection's deliveries come in stamp order: everything before `done` is here.
    let mut got = Vec::new();
    loop {
        let (line, payload) = sub.msg();
        if line.starts_with("MSG done") {
            break;
        }
        got.push(format!(
            "{} {}",
            &line[4..7],
            String::from_utf8(payload).unwrap()
        ));
    }
    got.sort();
    let want = [
        "n 1 0", "n 1 1", "n 1 2", "n 2 0", "n 2 1", "n 2 2", "n 2 3", "n 2 4",
    ];
    assert_eq!(got, want, "sid 1 got 3, sid 2 all 5");
    // Later `UNSUB 2 0`-style limits already reached end at once.
    sub.send(b"UNSUB 2 1\r\n");
    // The UNSUB must be in effect before the publish, which comes on another connection.
    assert_eq!(sub.sync(), Vec::<String>::new());
    publisher.send(b"PUB n 1\r\nz\r\nPUB done 0\r\n\r\n");
    let (line, _) = sub.msg();
    assert!(line.starts_with("MSG done"), "nothing for n: {line}");
}

#[test]
fn clock_carries_the_watermark_and_telnet_gets_binary_payloads_flattened() {
    let broker = start(&[]);
    let mut clock = Raw::connect(&broker);
    clock.send(b"SUB $CLOCK c\r\n");
    clock.sync();
    let mut telnet = broker.connect();
    telnet.send("SUB bin");
    telnet.sync();
    let mut publisher = Raw::connect(&broker);
    publisher.send(b"PUB elsewhere 1\r\nx\r\nPUB bin 6\r\na\r\nb\xff!\r\n");
    publisher.sync();
    assert_eq!(telnet.expect_line(), "UPDATED bin a  b\u{FFFD}!\n");
    let mut last = 0;
    while last < 2 {
        let (line, payload) = clock.msg();
        assert!(line.starts_with("MSG $CLOCK c "), "{line}");
        let stamp: u64 = String::from_utf8(payload).unwrap().parse().unwrap();
        assert!(stamp > last, "the watermark rises: {stamp} after {last}");
        last = stamp;
    }
    assert_eq!(last, 2, "two messages, two stamps");
}

#[test]
fn a_subscription_gets_the_publish_that_follows_it_on_the_same_connection() {
    let broker = start(&[]);
    let mut c = Raw::connect(&broker);
    // Messages flow to a wildcard while new exact subscriptions come and go.
    c.send(b"SUB o.* 1\r\n");
    c.sync();
    for i in 0..200 {
        let sid = i + 2;
        c.send(format!("SUB o.e{i} {sid}\r\nPUB o.e{i} 1\r\nx\r\n").as_bytes());
        let mut sids = vec![c.msg().0, c.msg().0];
        sids.sort();
        let want = vec![format!("MSG o.e{i} 1 1"), format!("MSG o.e{i} {sid} 1")];
        assert_eq!(sids, want, "both subscriptions got message {i}");
    }
}

#[test]
fn header_blocks_that_would_break_a_client_are_refused() {
    let broker = start(&[]);
    let mut sub = Raw::connect(&broker);
    sub.send(b"CONNECT {\"headers\":true}\r\nSUB h 1\r\n");
    sub.sync();
    let mut publisher = Raw::connect(&broker);
    let hpub = |headers: &str, payload: &str| {
        let (h, t) = (headers.len(), headers.len() + payload.len());
        format!("HPUB h {h} {t}\r\n{headers}{payload}\r\n")
    };
    publisher.send(hpub("NATS/1.0\r\nbad\r\n\r\n", "").as_bytes());
    publisher.send(hpub("NATS/1.0\r\nA:b\r\n\r\n", "k").as_bytes());
    let lines = publisher.sync();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("-ERR 'Invalid Header"), "{lines:?}");
    // Only the good one reached the subscriber, its header kept after the stamp.
    let head = sub.line().unwrap();
    assert!(head.starts_with("HMSG h 1 "), "{head}");
    let sizes: Vec<usize> = head
        .trim_end()
        .rsplit(' ')
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let mut block = vec![0; sizes[0] + 2];
    sub.reader.read_exact(&mut block).unwrap();
    let text = String::from_utf8(block).unwrap();
    assert!(
        text.starts_with("NATS/1.0\r\nClocked-Stamp: 1\r\nA:b\r\n\r\nk"),
        "{text:?}"
    );
}
