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
//!   the backlog passes `--max-backlog`, or one write takes longer than `--write-timeout`, the
//!   connection gets `ERR slow consumer …` (if the socket takes it) and is closed.
//! * **Closing frees everything**: the reader leaves every topic, drops the connection's only
//!   sender, so the receiver closes; the writer sees it close and ends. The dispatcher forgets
//!   the receiver once its queued messages are handled (see the library's churn tests).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clocked_dispatch::{ClockedReceiver, ClockedSender};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::broker::{Broker, Published, Topic};
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
    };
    let mut lines = LineReader::new(BufReader::new(read_half), session.broker.limits.max_line);
    loop {
        // The writer ends first when the client is cut off (slow, or a broken socket): stop
        // reading then too, so that nothing of the connection lingers.
        let frame = tokio::select! {
            frame = lines.next() => frame,
            () = session.replies.closed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let keep_going = match frame {
            Frame::Line(line) => session.execute(&line).await,
            Frame::NotUtf8 => session.error("line is not UTF-8").await,
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
}

impl Session {
    /// Runs one command line; `false` when the connection is to close.
    async fn execute(&mut self, line: &str) -> bool {
        let command = match parse(line) {
            Ok(command) => command,
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
            Command::Pub { topic, message } => match self.broker.publish(topic, message).await {
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

/// The writer's state.
struct Writer {
    broker: Arc<Broker>,
    socket: BufWriter<OwnedWriteHalf>,
    /// The connection's receiver, once it subscribed.
    receiver: Option<ClockedReceiver<Published>>,
    stamps: bool,
    clock: bool,
    /// The last `CLOCK` line's stamp.
    clock_sent: usize,
    /// Lines written since the last flush.
    unflushed: usize,
}

/// Why the writer stops.
enum Stop {
    /// The reader asked (QUIT, or its last line), or the receiver closed.
    Done,
    /// The socket failed or timed out.
    Broken,
}

async fn write_loop(broker: Arc<Broker>, socket: OwnedWriteHalf, mut outbox: mpsc::Receiver<Out>) {
    let mut writer = Writer {
        socket: BufWriter::with_capacity(64 * 1024, socket),
        receiver: None,
        broker,
        stamps: false,
        clock: false,
        clock_sent: 0,
        unflushed: 0,
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
                Some(out) => writer.apply(out).await,
            },
            got = recv(&mut writer.receiver), if writer.receiver.is_some() => match got {
                Some(item) => writer.deliver(item).await,
                None => Err(Stop::Done),
            },
        };
        if let Err(stop) = step {
            break stop;
        }
        if outbox.is_empty() && writer.unflushed > 0 {
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
    async fn apply(&mut self, out: Out) -> Result<(), Stop> {
        match out {
            Out::Line(line) => self.write(line.as_bytes()).await,
            Out::Stamps(on) => {
                self.stamps = on;
                Ok(())
            }
            Out::Clock(on) => {
                self.clock = on;
                Ok(())
            }
            Out::Close(line) => {
                if let Some(line) = line {
                    self.write(line.as_bytes()).await?;
                }
                Err(Stop::Done)
            }
            Out::Attach(_) => Ok(()),
        }
    }

    /// Writes one delivery and whatever else the receiver has ready (up to a batch).
    async fn deliver(&mut self, first: (Option<Published>, usize)) -> Result<(), Stop> {
        self.write_item(first).await?;
        for _ in 1..WRITE_BATCH {
            let Some(Ok(item)) = self.receiver.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            self.write_item(item).await?;
        }
        self.check_backlog()
    }

    /// Cuts the connection off if its backlog passed `--max-backlog`.
    fn check_backlog(&mut self) -> Result<(), Stop> {
        let Some(backlog) = self.receiver.as_ref().map(|rx| rx.backlog()) else {
            return Ok(());
        };
        if backlog <= self.broker.limits.max_backlog {
            return Ok(());
        }
        self.broker
            .counters
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
        // Best effort, without waiting: a client that does not read may not take even this.
        let line = format!("ERR slow consumer: {backlog} messages behind, disconnecting\n");
        let _ = self.socket.get_ref().try_write(line.as_bytes());
        Err(Stop::Broken)
    }

    async fn write_item(&mut self, (value, stamp): (Option<Published>, usize)) -> Result<(), Stop> {
        match value {
            Some(Published(body)) => {
                let line = if self.stamps {
                    format!("STAMPED {stamp} {body}\n")
                } else {
                    format!("UPDATED {body}\n")
                };
                self.write(line.as_bytes()).await?;
                self.broker
                    .counters
                    .messages_out
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            None if self.clock && stamp > self.clock_sent => {
                self.clock_sent = stamp;
                self.write(format!("CLOCK {stamp}\n").as_bytes()).await
            }
            None => Ok(()),
        }
    }

    /// Writes `bytes`, watching the backlog while the socket is full: a client that stopped
    /// reading is cut off once its backlog passes the limit, or after `--write-timeout`.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.unflushed += 1;
        let write = self.socket.write_all(bytes);
        watch(write, &self.broker, self.receiver.as_mut()).await
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        self.unflushed = 0;
        let flush = self.socket.flush();
        watch(flush, &self.broker, self.receiver.as_mut()).await
    }
}

/// How often a blocked write looks at the backlog.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// Runs a socket write; while it is blocked, checks every [`WATCH_EVERY`] whether the
/// connection's backlog passed the limit or the write took longer than `--write-timeout`.
async fn watch(
    write: impl std::future::Future<Output = std::io::Result<()>>,
    broker: &Broker,
    // `&mut`: a receiver is `Send` but not `Sync`, and this future must be `Send`.
    receiver: Option<&mut ClockedReceiver<Published>>,
) -> Result<(), Stop> {
    tokio::pin!(write);
    let deadline = Instant::now() + broker.limits.write_timeout;
    loop {
        tokio::select! {
            done = &mut write => return done.map_err(|_| Stop::Broken),
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let over = receiver
            .as_ref()
            .is_some_and(|rx| rx.backlog() > broker.limits.max_backlog);
        if over || Instant::now() >= deadline {
            broker
                .counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            return Err(Stop::Broken);
        }
    }
}
