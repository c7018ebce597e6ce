//! The bridge thread: one connection at a time to the broker, its lines relayed into a local
//! forwarding dispatcher (see the module doc of [`super`]).
//!
//! Invariants:
//! * `last` is the highest stamp relayed (forwarded or skipped); the local dispatcher's clock
//!   never passes it, and a line stamped at or below it (a replay after a reconnect) is
//!   dropped. So the local stream is the broker's, in order, with nothing twice.
//! * Nothing is relayed out of order: during a handshake (up to its `PONG`) the broker may
//!   replay several topics one after the other, so with several topics those lines are
//!   gathered and relayed sorted at the `PONG`; every later line is stamped above them.
//!   `CLOCK` lines during a handshake are ignored (they may speak for the topics subscribed
//!   so far only), and `CLOCK on` is sent after the subscriptions.
//! * A connection is lost when it closes, fails, or stays silent for a read timeout after an
//!   unanswered keep-alive `PING` (time the bridge spent blocked on a full local receiver
//!   does not count).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::line::{parse, Line};
use super::shared::Shared;
use super::{Message, RemoteError, RemoteSubscriber};
use crate::{Builder, ClockedReceiver, ClockedSender};

/// Starts the bridge on a local forwarding dispatcher; returns its receiver once the first
/// handshake is over (or a single topic's replay began), or why it failed.
pub(super) fn start(
    config: RemoteSubscriber,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
) -> Result<ClockedReceiver<Message>, RemoteError> {
    let dispatcher = Builder::new()
        .bound(config.bound.max(1))
        // One in-order source: nothing is ever held, whatever the distance to the next stamp.
        .reorder_window(usize::MAX / 4)
        .thread_name("clocked-remote")
        .build::<Message>();
    let (sender, receiver) = dispatcher.new("remote", "remote");
    let timeout = config.timeout;
    let mut bridge = Bridge {
        config,
        addrs,
        shared: shared.clone(),
        sender,
        last: 0,
        lost_since: None,
    };
    let first = bridge.connect()?;
    std::thread::Builder::new()
        .name("clocked-remote-bridge".into())
        .spawn(move || bridge.run(first))
        .map_err(|e| RemoteError::Connect(format!("cannot start the bridge thread: {e}")))?;
    match shared.wait_ready(timeout) {
        Ok(()) => Ok(receiver),
        Err(why) => {
            shared.close();
            Err(why)
        }
    }
}

struct Bridge {
    config: RemoteSubscriber,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    sender: ClockedSender<Message>,
    /// The highest stamp relayed.
    last: usize,
    /// When the connection was lost, until a handshake succeeds again.
    lost_since: Option<Instant>,
}

/// How a connection ended.
enum Lost {
    /// Closed, silent, or failed: reconnect if the subscription resumes.
    Connection(String),
    /// The broker refused the subscription, or a replay failed (during the handshake).
    Refused(String),
    /// The local receiver was dropped, or the handle closed: stop.
    Stop,
}

impl Bridge {
    /// Opens a connection and sends the subscription; the reader is returned for `run`.
    fn connect(&mut self) -> Result<BufReader<TcpStream>, RemoteError> {
        let timeout = self.config.timeout;
        let stream = self
            .addrs
            .iter()
            .find_map(|addr| TcpStream::connect_timeout(addr, timeout).ok())
            .ok_or_else(|| {
                RemoteError::Connect(format!("{}: refused or unreachable", self.config.addr))
            })?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(self.config.liveness / 2));
        // A broker that stops reading must not hold a writer (and the shared lock) forever.
        let _ = stream.set_write_timeout(Some(timeout.max(Duration::from_millis(10))));
        let mut hello = String::new();
        if let Some(token) = &self.config.token {
            hello.push_str(&format!("AUTH {token}\n"));
        }
        hello.push_str("STAMPS on\n");
        for topic in &self.config.topics {
            match (&self.config.durable, self.config.from) {
                (Some(name), _) => hello.push_str(&format!("SUB {topic} AS {name}\n")),
                (None, Some(from)) => {
                    let from = from.max(self.last + 1);
                    hello.push_str(&format!("SUB {topic} FROM {from}\n"));
                }
                (None, None) => hello.push_str(&format!("SUB {topic}\n")),
            }
        }
        // After the replays: no CLOCK line can pass a stamp still to be replayed.
        hello.push_str("CLOCK on\nPING\n");
        let mut writer = stream
            .try_clone()
            .map_err(|e| RemoteError::Connect(e.to_string()))?;
        writer
            .write_all(hello.as_bytes())
            .map_err(|e| RemoteError::Connect(e.to_string()))?;
        if !self.shared.connected(writer) {
            return Err(RemoteError::Closed);
        }
        Ok(BufReader::new(stream))
    }

    /// Relays connections until the stream ends.
    fn run(mut self, first: BufReader<TcpStream>) {
        let mut reader = first;
        loop {
            let why = match self.relay(&mut reader) {
                Lost::Stop => {
                    self.shared.end(RemoteError::Closed);
                    return;
                }
                Lost::Refused(why) if !self.shared.is_ready() => {
                    self.shared.end(RemoteError::Refused(why));
                    return;
                }
                Lost::Refused(why) | Lost::Connection(why) => why,
            };
            let resumes = self.config.durable.is_some() || self.config.from.is_some();
            self.shared.lost(resumes);
            if self.shared.is_closed() {
                self.shared.end(RemoteError::Closed);
                return;
            }
            if !resumes {
                self.shared.end(RemoteError::Disconnected(why));
                return;
            }
            self.lost_since.get_or_insert_with(Instant::now);
            match self.reconnect(&why) {
                Some(next) => reader = next,
                None => return,
            }
        }
    }

    /// Tries to connect again, with growing pauses, until the reconnect window (counted from
    /// the last good handshake, not from this attempt) is over.
    fn reconnect(&mut self, why: &str) -> Option<BufReader<TcpStream>> {
        let lost = self.lost_since.unwrap_or_else(Instant::now);
        let give_up = lost.checked_add(self.config.reconnect_for);
        let mut pause = Duration::from_millis(50);
        loop {
            if self.shared.is_closed() || !self.sender.receiver_alive() {
                self.shared.end(RemoteError::Closed);
                return None;
            }
            if give_up.is_some_and(|give_up| Instant::now() >= give_up) {
                let window = self.config.reconnect_for;
                let reason = format!("{why}; no reconnect within {window:?}");
                self.shared.end(RemoteError::Disconnected(reason));
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
            if let Ok(reader) = self.connect() {
                return Some(reader);
            }
        }
    }

    /// Relays one connection's lines until it is lost.
    fn relay(&mut self, reader: &mut BufReader<TcpStream>) -> Lost {
        let mut line = Vec::new();
        let mut pinged: Option<Instant> = None;
        let mut handshake = true;
        let gather = self.config.topics.len() > 1;
        let mut gathered: Vec<(usize, Message)> = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Lost::Connection("the broker closed the connection".into()),
                Ok(_) if line.last() == Some(&b'\n') => {}
                Ok(_) => continue, // a partial line at the end: the next read ends it
                Err(e) if is_timeout(&e) => {
                    // `line` keeps what arrived: `read_until` appends before it fails.
                    if self.shared.is_closed() || !self.sender.receiver_alive() {
                        return Lost::Stop;
                    }
                    match pinged {
                        Some(at) if at.elapsed() >= self.config.liveness / 2 => {
                            return Lost::Connection("the broker went silent".into());
                        }
                        Some(_) => {}
                        None if self.shared.ping() => pinged = Some(Instant::now()),
                        None => return Lost::Connection("cannot write to the broker".into()),
                    }
                    continue;
                }
                Err(e) => return Lost::Connection(e.to_string()),
            }
            pinged = None;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            match parse(text) {
                Line::Stamped { stamp, topic, body } => {
                    self.shared.saw(stamp);
                    let message = Message {
                        topic: topic.to_string(),
                        body: body.to_string(),
                    };
                    if handshake && gather {
                        gathered.push((stamp, message));
                    } else {
                        if handshake {
                            // A single topic's replay: the caller may read while it comes.
                            self.shared.set_ready();
                        }
                        if !self.relay_message(message, stamp) {
                            return Lost::Stop;
                        }
                    }
                }
                Line::Clock(stamp) => {
                    self.shared.saw(stamp);
                    if !handshake && !self.skip_through(stamp) {
                        return Lost::Stop;
                    }
                }
                Line::Pong => {
                    let (pong, refusal) = self.shared.pong();
                    if handshake && pong == 1 {
                        if let Some(why) = refusal {
                            return Lost::Refused(why);
                        }
                        handshake = false;
                        gathered.sort_by_key(|(stamp, _)| *stamp);
                        for (stamp, message) in gathered.drain(..) {
                            if !self.relay_message(message, stamp) {
                                return Lost::Stop;
                            }
                        }
                        self.lost_since = None;
                        self.shared.set_ready();
                    }
                    if !self.sender.receiver_alive() {
                        return Lost::Stop;
                    }
                }
                Line::Time(stamp) => self.shared.set_broker_clock(stamp),
                Line::Err(why) => {
                    self.shared.refused(why);
                    if why.starts_with("slow consumer") {
                        return Lost::Connection(why.to_string());
                    }
                    if why.starts_with("authentication") {
                        return Lost::Refused(why.to_string());
                    }
                }
                Line::Other(_) => {}
            }
            line.clear();
        }
    }

    /// Forwards one message (dropped if already relayed); `false` once the local receiver
    /// is gone.
    fn relay_message(&mut self, message: Message, stamp: usize) -> bool {
        if stamp <= self.last {
            return true; // replayed again after a reconnect
        }
        if stamp > self.last + 1 && !self.skip_through(stamp - 1) {
            return false;
        }
        self.last = stamp;
        self.sender.forward(Some(message), stamp).is_ok()
    }

    /// Accounts for every stamp up to `stamp`; `false` once the local receiver is gone.
    fn skip_through(&mut self, stamp: usize) -> bool {
        if stamp <= self.last {
            return true;
        }
        self.last = stamp;
        self.sender.skip_through(stamp).is_ok() && self.sender.receiver_alive()
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
