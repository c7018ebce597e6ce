//! The bridge thread: one connection at a time to the broker, its lines relayed into a local
//! forwarding dispatcher (see the module doc of [`super`]).
//!
//! Invariants:
//! * `last` is the highest stamp relayed (forwarded or skipped); the local dispatcher's clock
//!   never passes it, and a line stamped at or below it (a replay after a reconnect) is
//!   dropped. So the local stream is the broker's, in order, with nothing twice.
//! * Requests that wait for the broker ([`Shared::request`], the bridge's own keep-alive)
//!   end in `PING`; `PONG`s come back in the order the `PING`s went out, so the n-th `PONG`
//!   of a connection answers its n-th `PING`. A request whose connection is lost (the
//!   generation changed) fails instead of waiting.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::line::{parse, Line};
use super::{Message, RemoteError, RemoteSubscriber};
use crate::{Builder, ClockedReceiver, ClockedSender};

/// What the bridge and the [`Remote`](super::Remote) handle share.
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The current connection's write side.
    writer: Option<TcpStream>,
    /// Bumped whenever a connection is made or lost.
    generation: u64,
    /// `PING`s sent and `PONG`s received on the current connection.
    pings: u64,
    pongs: u64,
    /// The last `ERR` line of the current connection, for the request waiting on it.
    refused: Option<String>,
    /// The handshake of the first connection is over (or relaying began).
    ready: bool,
    /// Why the stream ended.
    ended: Option<RemoteError>,
    closed: bool,
    reconnects: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `lines` and a `PING`, and waits for the `PONG`: `Err` if an `ERR` came first.
    pub(super) fn request(&self, lines: &str, timeout: Duration) -> Result<(), RemoteError> {
        let mut state = self.lock();
        let Some(writer) = state.writer.as_mut() else {
            return Err(state
                .ended
                .clone()
                .unwrap_or_else(|| RemoteError::Disconnected("reconnecting".into())));
        };
        if let Err(e) = writer.write_all(format!("{lines}PING\n").as_bytes()) {
            return Err(RemoteError::Disconnected(e.to_string()));
        }
        state.pings += 1;
        state.refused = None;
        let (generation, ping) = (state.generation, state.pings);
        let deadline = Instant::now() + timeout;
        loop {
            if state.generation != generation {
                return Err(RemoteError::Disconnected("lost while waiting".into()));
            }
            if state.pongs >= ping {
                return match state.refused.take() {
                    Some(why) => Err(RemoteError::Refused(why)),
                    None => Ok(()),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RemoteError::Timeout);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(super) fn error(&self) -> Option<RemoteError> {
        self.lock().ended.clone()
    }

    pub(super) fn is_connected(&self) -> bool {
        self.lock().writer.is_some()
    }

    pub(super) fn reconnects(&self) -> u64 {
        self.lock().reconnects
    }

    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(writer) = state.writer.take() {
            // Wakes the bridge's blocked read.
            let _ = writer.shutdown(Shutdown::Both);
        }
        state.generation += 1;
        self.changed.notify_all();
    }

    /// Ends the stream for `why` (the first reason stays).
    fn end(&self, why: RemoteError) {
        let mut state = self.lock();
        state.ended.get_or_insert(why);
        state.writer = None;
        state.ready = true;
        state.generation += 1;
        self.changed.notify_all();
    }
}

/// Starts the bridge on a local forwarding dispatcher; returns its receiver once the first
/// handshake is over (or relaying began), or why it failed.
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
    };
    let first = bridge.connect()?;
    std::thread::Builder::new()
        .name("clocked-remote-bridge".into())
        .spawn(move || bridge.run(first))
        .map_err(|e| RemoteError::Connect(format!("cannot start the bridge thread: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut state = shared.lock();
    while !state.ready {
        let now = Instant::now();
        if now >= deadline {
            drop(state);
            shared.close();
            return Err(RemoteError::Timeout);
        }
        state = shared
            .changed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    match (&state.ended, state.reconnects) {
        // Refused (or lost) before anything was relayed.
        (Some(why), 0) if !matches!(why, RemoteError::Closed) => Err(why.clone()),
        _ => Ok(receiver),
    }
}

struct Bridge {
    config: RemoteSubscriber,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    sender: ClockedSender<Message>,
    /// The highest stamp relayed.
    last: usize,
}

/// How a connection ended.
enum Lost {
    /// Closed, silent, or failed: reconnect if durable.
    Connection(String),
    /// The broker refused the subscription (during the handshake).
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
        // Half the liveness: the first silent period sends a PING, the second ends it.
        let _ = stream.set_read_timeout(Some(self.config.liveness / 2));
        let mut hello = String::new();
        if let Some(token) = &self.config.token {
            hello.push_str(&format!("AUTH {token}\n"));
        }
        hello.push_str("STAMPS on\nCLOCK on\n");
        for topic in &self.config.topics {
            match &self.config.durable {
                Some(name) => hello.push_str(&format!("SUB {topic} AS {name}\n")),
                None => hello.push_str(&format!("SUB {topic}\n")),
            }
        }
        hello.push_str("PING\n");
        let mut writer = stream
            .try_clone()
            .map_err(|e| RemoteError::Connect(e.to_string()))?;
        writer
            .write_all(hello.as_bytes())
            .map_err(|e| RemoteError::Connect(e.to_string()))?;
        let mut state = self.shared.lock();
        if state.closed {
            return Err(RemoteError::Closed);
        }
        state.writer = Some(writer);
        state.generation += 1;
        state.pings = 1; // the handshake's
        state.pongs = 0;
        state.refused = None;
        Ok(BufReader::new(stream))
    }

    /// Relays connections until the stream ends.
    fn run(mut self, first: BufReader<TcpStream>) {
        let mut reader = first;
        loop {
            let lost = self.relay(&mut reader);
            let why = match lost {
                Lost::Stop => {
                    self.shared.end(RemoteError::Closed);
                    return;
                }
                Lost::Refused(why) if !self.shared.lock().ready => {
                    self.shared.end(RemoteError::Refused(why));
                    return;
                }
                Lost::Refused(why) | Lost::Connection(why) => why,
            };
            {
                let mut state = self.shared.lock();
                state.writer = None;
                state.generation += 1;
                self.shared.changed.notify_all();
                if state.closed {
                    drop(state);
                    self.shared.end(RemoteError::Closed);
                    return;
                }
            }
            if self.config.durable.is_none() {
                self.shared.end(RemoteError::Disconnected(why));
                return;
            }
            match self.reconnect(&why) {
                Some(next) => reader = next,
                None => return,
            }
        }
    }

    /// Tries to connect again, with growing pauses, until the reconnect window is over.
    fn reconnect(&mut self, why: &str) -> Option<BufReader<TcpStream>> {
        let give_up = Instant::now() + self.config.reconnect_for;
        let mut pause = Duration::from_millis(50);
        loop {
            if self.shared.lock().closed {
                self.shared.end(RemoteError::Closed);
                return None;
            }
            if Instant::now() >= give_up {
                let window = self.config.reconnect_for;
                let reason = format!("{why}; no reconnect within {window:?}");
                self.shared.end(RemoteError::Disconnected(reason));
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
            if let Ok(reader) = self.connect() {
                self.shared.lock().reconnects += 1;
                return Some(reader);
            }
        }
    }

    /// Relays one connection's lines until it is lost.
    fn relay(&mut self, reader: &mut BufReader<TcpStream>) -> Lost {
        let mut line = Vec::new();
        let mut heard = Instant::now();
        let mut handshake = true;
        loop {
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Lost::Connection("the broker closed the connection".into()),
                Ok(_) if line.last() == Some(&b'\n') => {}
                Ok(_) => continue, // a partial line at the end: the next read ends it
                Err(e) if is_timeout(&e) => {
                    // `line` keeps what arrived: `read_until` appends before it fails.
                    if heard.elapsed() >= self.config.liveness {
                        return Lost::Connection("the broker went silent".into());
                    }
                    if !self.ping() {
                        return Lost::Connection("cannot write to the broker".into());
                    }
                    continue;
                }
                Err(e) => return Lost::Connection(e.to_string()),
            }
            heard = Instant::now();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            match parse(text) {
                Line::Stamped { stamp, topic, body } => {
                    let message = Message {
                        topic: topic.to_string(),
                        body: body.to_string(),
                    };
                    if !self.relay_message(message, stamp) {
                        return Lost::Stop;
                    }
                    if handshake {
                        self.set_ready(); // a replay is under way: the caller may read
                    }
                }
                Line::Clock(stamp) => {
                    if !self.skip_through(stamp) {
                        return Lost::Stop;
                    }
                }
                Line::Pong => {
                    let mut state = self.shared.lock();
                    state.pongs += 1;
                    if handshake && state.pongs == 1 {
                        handshake = false;
                        if let Some(why) = state.refused.take() {
                            return Lost::Refused(why);
                        }
                        state.ready = true;
                    }
                    self.shared.changed.notify_all();
                }
                Line::Err(why) if why.starts_with("replay of") => {
                    // Retention deleted part of the history asked for: the stream goes on.
                }
                Line::Err(why) => {
                    let mut state = self.shared.lock();
                    state.refused = Some(why.to_string());
                    if why.starts_with("slow consumer") || why.starts_with("authentication") {
                        return Lost::Connection(why.to_string());
                    }
                }
                Line::Other(_) => {}
            }
            line.clear();
        }
    }

    fn set_ready(&self) {
        let mut state = self.shared.lock();
        if !state.ready {
            state.ready = true;
            self.shared.changed.notify_all();
        }
    }

    /// Sends a keep-alive `PING`; `false` if the connection cannot be written.
    fn ping(&self) -> bool {
        let mut state = self.shared.lock();
        let Some(writer) = state.writer.as_mut() else {
            return false;
        };
        if writer.write_all(b"PING\n").is_err() {
            return false;
        }
        state.pings += 1;
        true
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
