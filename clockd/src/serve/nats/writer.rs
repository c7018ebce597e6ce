//! A NATS connection's writer task: drains the connection's receiver into `MSG` / `HMSG`
//! frames, one per matching subscription, writes the reader's replies in order, keeps the
//! connection alive with `PING`s, and publishes the watermark on `$CLOCK`.
//!
//! * **Routing.** The connection's receiver gets each message once, whatever number of its
//!   subscriptions match (see `interest.rs`); the writer finds the matching ones (exact
//!   subjects by a map, wildcards by a scan) and writes one frame for each, with that
//!   subscription's sid. A queue subscription gets the message only if the message picked it.
//! * **A subscription is known to the writer before its first message.** The reader queues
//!   it here before it joins the topic (or publishes anything after it), so it is in the
//!   reader's queue before any message that is meant for it reaches the receiver; the writer
//!   takes runs of messages at once, so before routing each message it applies whatever the
//!   reader queued (a check of the queue's length when it is empty). A message stamped just
//!   before an `UNSUB` and a `SUB` of the same subject may so reach the new subscription:
//!   both were live while it was in flight.
//! * **Stamps.** A connection that said `"headers": true` in `CONNECT` gets every message as
//!   `HMSG` with a `Clocked-Stamp: <stamp>` header, added after the status line of the
//!   publisher's own headers (if any). Without headers, messages come as `MSG`, stamps left
//!   out.
//! * **`$CLOCK`.** A subscription to the subject `$CLOCK` gets the connection's watermark as
//!   a decimal payload whenever it moved, at most once per run of messages: every message
//!   this connection will get from then on is stamped above it.
//! * **Keep-alive.** Every `ping_interval` the writer sends `PING`; a client that leaves
//!   `max_pings_out` of them unanswered gets `-ERR 'Stale Connection'` and is closed.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clocked_dispatch::ClockedReceiver;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::super::broker::{Broker, Published};
use super::super::writer::{recv, too_slow, write_pending, Broken, WRITE_AT, WRITE_BATCH};
use super::subject::matches;

/// The header that carries a message's stamp.
pub const STAMP_HEADER: &str = "Clocked-Stamp";

/// The subject a connection's watermark is published on.
pub const CLOCK_SUBJECT: &str = "$CLOCK";

/// What the reader asks of the writer, in order.
pub enum Out {
    /// Bytes to write as they are (`PONG`, `+OK`, `-ERR …`).
    Line(Vec<u8>),
    /// The connection's receiver, made on its first subscription.
    Attach(Box<ClockedReceiver<Published>>),
    /// A new subscription.
    Sub(Box<LocalSub>),
    /// `UNSUB`: now, or once `max` messages were delivered to it in all.
    Unsub {
        /// The subscription.
        local: u64,
        /// See [`LocalSub::max`].
        max: Option<u64>,
    },
    /// The client answered a `PING`.
    Pong,
    /// Whether the client takes headers (its `CONNECT`).
    Headers(bool),
    /// Write this line (if any) and close.
    Close(Option<Vec<u8>>),
}

/// A subscription as the writer knows it.
pub struct LocalSub {
    /// The connection's number for it (queue picks name it).
    pub local: u64,
    /// The client's name for it, written in every frame.
    pub sid: Box<str>,
    /// Its subject, with wildcards.
    pub filter: Box<str>,
    /// Whether it is a queue subscription.
    pub queue: bool,
    /// Messages written to it so far.
    pub delivered: u64,
    /// Unsubscribed once this many messages were written to it.
    pub max: Option<u64>,
}

/// The writer's settings.
pub struct Settings {
    /// The connection's number.
    pub connection: u64,
    /// How often to `PING` the client.
    pub ping_interval: Duration,
    /// Unanswered `PING`s before the connection is stale.
    pub max_pings_out: u32,
}

struct Writer {
    broker: Arc<Broker>,
    settings: Settings,
    socket: OwnedWriteHalf,
    outbox: mpsc::Receiver<Out>,
    /// Subscriptions that ended by reaching their `max`, told to the reader.
    expired: mpsc::UnboundedSender<u64>,
    receiver: Option<ClockedReceiver<Published>>,
    pending: Vec<u8>,
    subs: HashMap<u64, LocalSub>,
    /// Subscriptions without wildcards, by subject.
    exact: HashMap<Box<str>, Vec<u64>>,
    wildcards: Vec<u64>,
    /// Subscriptions to `$CLOCK`.
    clocks: Vec<u64>,
    headers: bool,
    pings_out: u32,
    /// The highest stamp seen, and the last published on `$CLOCK`.
    watermark: usize,
    clock_sent: usize,
    /// Scratch: the subscriptions a message matches; a header block.
    matched: Vec<u64>,
    header: Vec<u8>,
}

/// Why the writer stops.
enum Stop {
    /// Asked to, or the receiver closed: what is pending is written.
    Done,
    /// The socket failed, or the client was too slow.
    Broken,
}

impl From<Broken> for Stop {
    fn from(Broken: Broken) -> Self {
        Stop::Broken
    }
}

/// Runs the writer until the connection ends; `hello` (the `INFO` line) goes first.
pub async fn write_loop(
    broker: Arc<Broker>,
    settings: Settings,
    socket: OwnedWriteHalf,
    outbox: mpsc::Receiver<Out>,
    expired: mpsc::UnboundedSender<u64>,
    hello: Vec<u8>,
) {
    let start = tokio::time::Instant::now() + settings.ping_interval;
    let mut ping = tokio::time::interval_at(start, settings.ping_interval);
    let mut writer = Writer {
        broker,
        settings,
        socket,
        outbox,
        expired,
        receiver: None,
        pending: hello,
        subs: HashMap::new(),
        exact: HashMap::new(),
        wildcards: Vec::new(),
        clocks: Vec::new(),
        headers: false,
        pings_out: 0,
        watermark: 0,
        clock_sent: 0,
        matched: Vec::new(),
        header: Vec::new(),
    };
    let stop = loop {
        if let Err(stop) = writer.flush_if_due().await {
            break stop;
        }
        let step = tokio::select! {
            biased;
            out = writer.outbox.recv() => match out {
                None => Err(Stop::Done),
                Some(out) => writer.apply(out),
            },
            _ = ping.tick() => writer.ping(),
            got = recv(&mut writer.receiver) => match got {
                Some(item) => writer.deliver(item),
                None => Err(Stop::Done),
            },
        };
        if let Err(stop) = step {
            break stop;
        }
    };
    if let Stop::Done = stop {
        let _ = writer.flush().await;
        let _ = writer.socket.shutdown().await;
    }
}

impl Writer {
    fn apply(&mut self, out: Out) -> Result<(), Stop> {
        match out {
            Out::Line(line) => self.pending.extend_from_slice(&line),
            Out::Attach(receiver) => self.receiver = Some(*receiver),
            Out::Sub(sub) => {
                let local = sub.local;
                if &*sub.filter == CLOCK_SUBJECT {
                    self.clocks.push(local);
                } else if super::subject::has_wildcard(&sub.filter) {
                    self.wildcards.push(local);
                } else {
                    self.exact
                        .entry(sub.filter.clone())
                        .or_default()
                        .push(local);
                }
                self.subs.insert(local, *sub);
            }
            Out::Unsub { local, max } => match (self.subs.get_mut(&local), max) {
                (Some(sub), Some(max)) if sub.delivered < max => sub.max = Some(max),
                (Some(_), Some(_)) => self.expire(local),
                (Some(_), None) => self.forget(local),
                (None, _) => {}
            },
            Out::Pong => self.pings_out = 0,
            Out::Headers(on) => self.headers = on,
            Out::Close(line) => {
                if let Some(line) = line {
                    self.pending.extend_from_slice(&line);
                }
                return Err(Stop::Done);
            }
        }
        Ok(())
    }

    /// Removes a subscription from the routing tables.
    fn forget(&mut self, local: u64) {
        let Some(sub) = self.subs.remove(&local) else {
            return;
        };
        self.clocks.retain(|&l| l != local);
        self.wildcards.retain(|&l| l != local);
        if let Some(locals) = self.exact.get_mut(&sub.filter) {
            locals.retain(|&l| l != local);
            if locals.is_empty() {
                self.exact.remove(&sub.filter);
            }
        }
    }

    /// A subscription reached its `max`: forgotten here, and the reader takes it off the
    /// broker.
    fn expire(&mut self, local: u64) {
        self.forget(local);
        let _ = self.expired.send(local);
    }

    fn ping(&mut self) -> Result<(), Stop> {
        if self.pings_out >= self.settings.max_pings_out {
            self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
            self.pending
                .extend_from_slice(b"-ERR 'Stale Connection'\r\n");
            return Err(Stop::Done);
        }
        self.pings_out += 1;
        self.pending.extend_from_slice(b"PING\r\n");
        Ok(())
    }

    /// Formats one item and whatever else the receiver has ready (up to a batch).
    fn deliver(&mut self, first: (Option<Published>, usize)) -> Result<(), Stop> {
        self.route(first)?;
        for _ in 1..WRITE_BATCH {
            if self.pending.len() >= WRITE_AT {
                break;
            }
            let Some(Ok(item)) = self.receiver.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            self.route(item)?;
        }
        self.publish_clock();
        match self
            .receiver
            .as_ref()
            .and_then(|rx| too_slow(rx, &self.broker))
        {
            Some(_) => {
                self.broker
                    .counters
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.socket.try_write(b"-ERR 'Slow Consumer'\r\n");
                Err(Stop::Broken)
            }
            None => Ok(()),
        }
    }

    fn route(&mut self, (value, stamp): (Option<Published>, usize)) -> Result<(), Stop> {
        self.watermark = self.watermark.max(stamp);
        let Some(message) = value else {
            return Ok(());
        };
        if message.is_marker() {
            return Ok(());
        }
        // A subscription this message is meant for may be in the reader's queue still.
        while !self.outbox.is_empty() {
            match self.outbox.try_recv() {
                Ok(out) => self.apply(out)?,
                Err(_) => break,
            }
        }
        self.write_message(&message, stamp);
        Ok(())
    }

    /// Writes `message` to each subscription it matches.
    fn write_message(&mut self, message: &Published, stamp: usize) {
        let subject = message.subject();
        self.matched.clear();
        if let Some(locals) = self.exact.get(subject) {
            self.matched.extend_from_slice(locals);
        }
        for &local in &self.wildcards {
            if self
                .subs
                .get(&local)
                .is_some_and(|sub| matches(&sub.filter, subject))
            {
                self.matched.push(local);
            }
        }
        let connection = self.settings.connection;
        let picked = |local: u64| {
            message
                .picks
                .as_ref()
                .is_some_and(|picks| picks.contains(&(connection, local)))
        };
        for at in 0..self.matched.len() {
            let local = self.matched[at];
            let Some(sub) = self.subs.get_mut(&local) else {
                continue;
            };
            if sub.queue && !picked(local) {
                continue;
            }
            sub.delivered += 1;
            let done = sub.max.is_some_and(|max| sub.delivered >= max);
            let sid = std::mem::take(&mut sub.sid);
            self.frame(
                subject,
                &sid,
                message.reply(),
                message.headers(),
                message.payload(),
                stamp,
            );
            if let Some(sub) = self.subs.get_mut(&local) {
                sub.sid = sid;
            }
            self.broker
                .counters
                .messages_out
                .fetch_add(1, Ordering::Relaxed);
            if done {
                self.expire(local);
            }
        }
    }

    /// Appends one `MSG` or `HMSG` frame.
    fn frame(
        &mut self,
        subject: &str,
        sid: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        stamp: usize,
    ) {
        let out = &mut self.pending;
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        if !self.headers {
            let _ = write!(out, "MSG {subject} {sid}{reply} {}\r\n", payload.len());
        } else {
            self.header.clear();
            match headers.and_then(|h| h.windows(2).position(|w| w == b"\r\n").map(|at| (h, at))) {
                Some((block, at)) => {
                    self.header.extend_from_slice(&block[..at + 2]);
                    let _ = write!(self.header, "{STAMP_HEADER}: {stamp}\r\n");
                    self.header.extend_from_slice(&block[at + 2..]);
                }
                None => {
                    let _ = write!(self.header, "NATS/1.0\r\n{STAMP_HEADER}: {stamp}\r\n\r\n");
                }
            }
            let total = self.header.len() + payload.len();
            let _ = write!(
                out,
                "HMSG {subject} {sid}{reply} {} {total}\r\n",
                self.header.len()
            );
            out.extend_from_slice(&self.header);
        }
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    /// Publishes the watermark to the `$CLOCK` subscriptions, if it moved.
    fn publish_clock(&mut self) {
        if self.clocks.is_empty() || self.watermark <= self.clock_sent {
            return;
        }
        self.clock_sent = self.watermark;
        let payload = self.watermark.to_string();
        for local in self.clocks.clone() {
            let Some(sub) = self.subs.get_mut(&local) else {
                continue;
            };
            sub.delivered += 1;
            let done = sub.max.is_some_and(|max| sub.delivered >= max);
            let sid = sub.sid.clone();
            let stamp = self.watermark;
            self.frame(CLOCK_SUBJECT, &sid, None, None, payload.as_bytes(), stamp);
            if done {
                self.expire(local);
            }
        }
    }

    async fn flush_if_due(&mut self) -> Result<(), Stop> {
        if (self.outbox.is_empty() && !self.pending.is_empty()) || self.pending.len() >= WRITE_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        let receiver = self.receiver.as_mut();
        write_pending(&mut self.socket, &mut self.pending, receiver, &self.broker).await?;
        Ok(())
    }
}
