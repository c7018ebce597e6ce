//! One client connection: a reader that turns lines into commands, and a writer task that
//! drains the connection's receiver into the socket.
//!
//! ```text
//!   socket ─► LineReader ─► parse ─► Broker (SUB/UNSUB/PUB…)      replies ─┐
//!                                                                           ▼
//!   socket ◄─ BufWriter ◄──────────── writer task ◄── receiver (UPDATED, CLOCK)
//! ```
//!
//! * **One receiver per connection**, made on its first `SUB` or `CLOCK on`, named
//!   `conn-N`; each subscribed topic's group lists it. So a connection's deliveries, across
//!   all its topics, arrive in stamp order with no merging, and a publish to topics it does
//!   not follow moves its watermark (`CLOCK` lines) without waking it with data.
//! * **The writer owns the socket's write half.** Replies (`PONG`, `ERR …`) reach it through a
//!   bounded channel, so they keep their order with each other; a client that stops reading
//!   fills the channel and the reader stops reading too (TCP back-pressure).
//! * **A slow subscriber never slows others**: the dispatcher spills its backlog to disk; once
//!   the backlog passes `--max-backlog` messages or three quarters of `--spill-limit` bytes,
//!   or one write takes longer than `--write-timeout`, the connection gets `ERR slow
//!   consumer …` (if the socket takes it) and is closed. Checked after each batch and, while a
//!   write is blocked, every 50 ms.
//! * **Closing frees everything**: the reader leaves every topic, drops the connection's only
//!   sender, so the receiver closes; the writer sees it close and ends. The dispatcher forgets
//!   the receiver once its queued messages are handled (see the library's churn tests).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clocked_dispatch::{ClockedReceiver, ClockedSender};
use std::io::Write as _;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::broker::{Broker, BrokerError, Published, Topic};
use super::command::{parse, Command};
use super::lines::{Frame, LineReader};

/// What the reader asks of the writer, in order.
enum Out {
    /// A reply line, with its `\n`.
    Line(String),
    /// The connection's receiver, made on its first subscription.
    Attach(Box<ClockedReceiver<Published>>),
    /// `STAMPS on|off`.
    Stamps(bool),
    /// `CLOCK on|off`.
    Clock(bool),
    /// Write this line (if any) and close.
    Close(Option<String>),
}

/// How many replies may wait for the writer before the reader waits.
const REPLY_QUEUE: usize = 256;
/// Deliveries written before a flush.
const WRITE_BATCH: usize = 256;

/// Serves one connection until it closes.
pub async fn serve(broker: Arc<Broker>, socket: TcpStream, authenticated: bool) {
    let _ = socket.set_nodelay(true);
    // A peer that vanished without closing (a half-open connection) is found by keepalive
    // probes: after `--keepalive` seconds of silence, then 3 probes 5 s apart; its reads then
    // fail and the connection is freed.
    let idle = broker.limits.keepalive;
    let probes = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(std::time::Duration::from_secs(5))
        .with_retries(3);
    let _ = socket2::SockRef::from(&socket).set_tcp_keepalive(&probes);
    let (read_half, write_half) = socket.into_split();
    let (replies, outbox) = mpsc::channel(REPLY_QUEUE);
    let writer = tokio::spawn(write_loop(broker.clone(), write_half, outbox));
    let mut session = Session {
        id: broker.next_connection_id(),
        broker,
        replies,
        subscriber: None,
        topics: HashSet::new(),
        authenticated,
        last_published: None,
    };
    let mut lines = LineReader::new(BufReader::new(read_half), session.broker.limits.max_line);
    let auth_deadline = tokio::time::Instant::now() + session.broker.limits.auth_timeout;
    loop {
        // The writer ends first when the client is cut off (slow, or a broken socket): stop
        // reading then too, so that nothing of the connection lingers. A connection that has
        // not authenticated in time is closed (it holds a connection slot for nothing).
        let frame = tokio::select! {
            frame = lines.next() => frame,
            () = session.replies.closed() => break,
            () = tokio::time::sleep_until(auth_deadline), if !session.authenticated => {
                session.close(Some("authentication timed out".into())).await;
                break;
            }
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let keep_going = match frame {
            Frame::Line(line) => session.execute(line).await,
            Frame::NotUtf8 if session.authenticated => session.error("line is not UTF-8").await,
            Frame::NotUtf8 => {
                session
                    .close(Some("authentication required: AUTH token".into()))
                    .await;
                false
            }
            Frame::TooLong => {
                let limit = session.broker.limits.max_line;
                session
                    .close(Some(format!("line longer than {limit} bytes")))
                    .await;
                false
            }
        };
        if !keep_going {
            break;
        }
    }
    session.leave_all();
    drop(session);
    let _ = writer.await;
}

/// The reader's side of a connection.
struct Session {
    id: u64,
    broker: Arc<Broker>,
    replies: mpsc::Sender<Out>,
    /// The connection's receiver's sender: names it to topics, never sends.
    subscriber: Option<ClockedSender<Published>>,
    topics: HashSet<Arc<str>>,
    authenticated: bool,
    /// The topic of the last `PUB`, kept to spare a lookup for the next one.
    last_published: Option<(Box<str>, Arc<Topic>)>,
}

impl Session {
    /// Runs one command line; `false` when the connection is to close.
    async fn execute(&mut self, line: &str) -> bool {
        let command = match parse(line) {
            Ok(command) => command,
            Err(_) if !self.authenticated => {
                self.close(Some("authentication required: AUTH token".into()))
                    .await;
                return false;
            }
            Err(e) => return self.error(&e.to_string()).await,
        };
        if !self.authenticated {
            return match command {
                Command::Auth(token) if self.broker.check_token(token) => {
                    self.authenticated = true;
                    true
                }
                Command::Auth(_) => {
                    self.close(Some("authentication failed".into())).await;
                    false
                }
                _ => {
                    self.close(Some("authentication required: AUTH token".into()))
                        .await;
                    false
                }
            };
        }
        match command {
            Command::Empty | Command::Auth(_) => true,
            Command::Ping => self.send(Out::Line("PONG\n".into())).await,
            Command::Quit => {
                self.close(None).await;
                false
            }
            Command::Stamps(on) => self.send(Out::Stamps(on)).await,
            Command::Clock(on) => {
                if on {
                    if let Err(e) = self.ensure_subscriber().await {
                        return self.error(&e).await;
                    }
                }
                self.send(Out::Clock(on)).await
            }
            Command::Create(topic) => match self.broker.topic(topic) {
                Ok(_) => true,
                Err(e) => self.error(&e.to_string()).await,
            },
            Command::Pub { topic, body, .. } => match self.publish(topic, body).await {
                Ok(()) => true,
                Err(e) => self.error(&e.to_string()).await,
            },
            Command::Sub(topic) => match self.subscribe(topic).await {
                Ok(()) => true,
                Err(e) => self.error(&e).await,
            },
            Command::Unsub(topic) => {
                let Some(name) = self.topics.take(topic) else {
                    return self.error(&format!("not subscribed to {topic}")).await;
                };
                if let (Ok(topic), Some(subscriber)) =
                    (self.broker.topic(&name), self.subscriber.as_ref())
                {
                    topic.unsubscribe(subscriber);
                }
                true
            }
        }
    }

    /// Publishes, looking the topic up only when it differs from the last one.
    async fn publish(&mut self, topic: &str, body: &str) -> Result<(), BrokerError> {
        let target = match &self.last_published {
            Some((name, target)) if **name == *topic => target.clone(),
            _ => {
                let target = self.broker.topic(topic)?;
                self.last_published = Some((topic.into(), target.clone()));
                target
            }
        };
        self.broker.publish_to(&target, body).await
    }

    async fn subscribe(&mut self, name: &str) -> Result<(), String> {
        if self.topics.contains(name) {
            return Ok(());
        }
        let limit = self.broker.limits.max_subscriptions;
        if self.topics.len() >= limit {
            return Err(format!("too many subscriptions (limit {limit})"));
        }
        let topic: Arc<Topic> = self.broker.topic(name).map_err(|e| e.to_string())?;
        self.ensure_subscriber().await?;
        if let Some(subscriber) = &self.subscriber {
            topic.subscribe(subscriber).map_err(|e| e.to_string())?;
        }
        self.topics.insert(name.into());
        Ok(())
    }

    /// Makes the connection's receiver if it has none yet, and hands it to the writer.
    async fn ensure_subscriber(&mut self) -> Result<(), String> {
        if self.subscriber.is_some() {
            return Ok(());
        }
        let (sender, receiver) = self.broker.subscriber(self.id).map_err(|e| e.to_string())?;
        self.subscriber = Some(sender);
        self.send(Out::Attach(Box::new(receiver))).await;
        Ok(())
    }

    /// Leaves every topic; dropping the session then drops the only sender of its receiver.
    fn leave_all(&mut self) {
        let Some(subscriber) = self.subscriber.take() else {
            return;
        };
        for name in self.topics.drain() {
            if let Ok(topic) = self.broker.topic(&name) {
                topic.unsubscribe(&subscriber);
            }
        }
    }

    /// Hands something to the writer; `false` if it is gone (the connection is closing).
    async fn send(&self, out: Out) -> bool {
        self.replies.send(out).await.is_ok()
    }

    /// Sends `ERR reason`; the connection stays open.
    async fn error(&self, reason: &str) -> bool {
        self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.send(Out::Line(format!("ERR {reason}\n"))).await
    }

    /// Asks the writer to send `ERR reason` (if any) and close.
    async fn close(&self, reason: Option<String>) {
        if reason.is_some() {
            self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.send(Out::Close(reason.map(|r| format!("ERR {r}\n"))))
            .await;
    }
}

/// The writer's state. Lines are formatted into `pending` without awaiting anything; the
/// socket is written once per batch (one `watch`ed `write_all`), so a delivery costs no
/// system call and no timer of its own.
struct Writer {
    broker: Arc<Broker>,
    socket: OwnedWriteHalf,
    /// The connection's receiver, once it subscribed.
    receiver: Option<ClockedReceiver<Published>>,
    stamps: bool,
    clock: bool,
    /// The last `CLOCK` line's stamp.
    clock_sent: usize,
    /// Bytes formatted and not yet written.
    pending: Vec<u8>,
}

/// Why the writer stops.
enum Stop {
    /// The reader asked (QUIT, or its last line), or the receiver closed.
    Done,
    /// The socket failed or timed out, or the client was too slow.
    Broken,
}

/// Written as soon as this much is pending, even if more is ready. Small enough that the
/// buffer stays below the allocator's mmap threshold (128 KiB): a bigger one was mapped and
/// unmapped by the kernel on every batch (page faults were 8% of the broker's time).
const WRITE_AT: usize = 32 * 1024;

async fn write_loop(broker: Arc<Broker>, socket: OwnedWriteHalf, mut outbox: mpsc::Receiver<Out>) {
    let mut writer = Writer {
        socket,
        receiver: None,
        broker,
        stamps: false,
        clock: false,
        clock_sent: 0,
        pending: Vec::new(),
    };
    let stop = loop {
        let step = tokio::select! {
            biased;
            out = outbox.recv() => match out {
                None => Err(Stop::Done),
                Some(Out::Attach(rx)) => {
                    writer.receiver = Some(*rx);
                    Ok(())
                }
                Some(out) => writer.apply(out),
            },
            got = recv(&mut writer.receiver), if writer.receiver.is_some() => match got {
                Some(item) => writer.deliver(item),
                None => Err(Stop::Done),
            },
        };
        if let Err(stop) = step {
            break stop;
        }
        if (outbox.is_empty() && !writer.pending.is_empty()) || writer.pending.len() >= WRITE_AT {
            if let Err(stop) = writer.flush().await {
                break stop;
            }
        }
    };
    if let Stop::Done = stop {
        let _ = writer.flush().await;
        let _ = writer.socket.shutdown().await;
    }
    // Whatever the reader still sends is dropped with the channel; its sends fail.
}

/// The next item of the connection's receiver; `None` once it is closed.
async fn recv(
    receiver: &mut Option<ClockedReceiver<Published>>,
) -> Option<(Option<Published>, usize)> {
    match receiver {
        Some(rx) => rx.recv_async().await.ok(),
        None => std::future::pending().await,
    }
}

impl Writer {
    fn apply(&mut self, out: Out) -> Result<(), Stop> {
        match out {
            Out::Line(line) => self.pending.extend_from_slice(line.as_bytes()),
            Out::Stamps(on) => self.stamps = on,
            Out::Clock(on) => self.clock = on,
            Out::Close(line) => {
                if let Some(line) = line {
                    self.pending.extend_from_slice(line.as_bytes());
                }
                return Err(Stop::Done);
            }
            Out::Attach(_) => {}
        }
        Ok(())
    }

    /// Formats one delivery and whatever else the receiver has ready (up to a batch).
    fn deliver(&mut self, first: (Option<Published>, usize)) -> Result<(), Stop> {
        self.format(first);
        for _ in 1..WRITE_BATCH {
            if self.pending.len() >= WRITE_AT {
                break;
            }
            let Some(Ok(item)) = self.receiver.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            self.format(item);
        }
        self.check_backlog()
    }

    /// Appends the line for one item of the receiver: a delivery, or a `CLOCK` line.
    fn format(&mut self, (value, stamp): (Option<Published>, usize)) {
        match value {
            Some(Published(body)) => {
                if self.stamps {
                    let _ = write!(self.pending, "STAMPED {stamp} ");
                } else {
                    self.pending.extend_from_slice(b"UPDATED ");
                }
                self.pending.extend_from_slice(body.as_bytes());
                self.pending.push(b'\n');
                self.broker
                    .counters
                    .messages_out
                    .fetch_add(1, Ordering::Relaxed);
            }
            None if self.clock && stamp > self.clock_sent => {
                self.clock_sent = stamp;
                let _ = writeln!(self.pending, "CLOCK {stamp}");
            }
            None => {}
        }
    }

    /// Cuts the connection off if its backlog passed `--max-backlog`.
    fn check_backlog(&mut self) -> Result<(), Stop> {
        match self.receiver.as_ref().map(|rx| too_slow(rx, &self.broker)) {
            Some(Some(backlog)) => {
                self.cut_off(backlog);
                Err(Stop::Broken)
            }
            _ => Ok(()),
        }
    }

    /// Counts a slow client and tells it why, if its socket takes the line without waiting.
    fn cut_off(&self, backlog: u64) {
        self.broker
            .counters
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
        let line = format!("ERR slow consumer: {backlog} messages behind, disconnecting\n");
        let _ = self.socket.try_write(line.as_bytes());
    }

    /// Writes what is pending. While the socket is full, checks every [`WATCH_EVERY`]
    /// whether the backlog passed the limit or the write took longer than `--write-timeout`:
    /// a client that stopped reading is cut off even while this write is blocked.
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let write = self.socket.write_all(&self.pending);
        tokio::pin!(write);
        let limits = &self.broker.limits;
        let deadline = Instant::now() + limits.write_timeout;
        loop {
            tokio::select! {
                done = &mut write => {
                    done.map_err(|_| Stop::Broken)?;
                    break;
                }
                () = tokio::time::sleep(WATCH_EVERY) => {}
            }
            let slow = self
                .receiver
                .as_ref()
                .and_then(|rx| too_slow(rx, &self.broker));
            if slow.is_some() || Instant::now() >= deadline {
                self.broker
                    .counters
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Stop::Broken);
            }
        }
        self.pending.clear();
        if self.pending.capacity() > 4 * WRITE_AT {
            self.pending.shrink_to(WRITE_AT);
        }
        Ok(())
    }
}

/// The connection's backlog if it is past a limit: `--max-backlog` messages, or the bytes
/// spilled for it past three quarters of `--spill-limit`.
fn too_slow(receiver: &ClockedReceiver<Published>, broker: &Broker) -> Option<u64> {
    let backlog = receiver.backlog();
    let spilled = receiver.spill_stats().map_or(0, |stats| stats.disk_bytes);
    let limits = &broker.limits;
    (backlog > limits.max_backlog || spilled > limits.max_spilled_bytes).then_some(backlog)
}

/// How often a blocked write looks at the backlog.
const WATCH_EVERY: Duration = Duration::from_millis(50);
