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
//!   the receiver once its queued messages are handled (see the library's churn tests). On a
//!   journaled broker the receiver is transient: the journal forgets it too.
//! * **Replays and durable subscriptions** (`SUB topic FROM stamp`, `SUB topic AS name`) are a
//!   handshake between the reader and the writer: see `writer.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clocked_dispatch::ClockedSender;

use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::broker::{Broker, BrokerError, Published, Topic};
use super::command::{parse, Command, Start};
use super::lines::{Frame, LineReader};
use super::writer::{write_loop, Catchup, Out};

/// How many replies may wait for the writer before the reader waits.
const REPLY_QUEUE: usize = 256;
/// How often a reader awaiting a replay checks that its marker was stored.
const MARKER_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves one connection until it closes.
pub async fn serve(broker: Arc<Broker>, socket: TcpStream, authenticated: bool) {
    tune(&socket, &broker);
    let (read_half, write_half) = socket.into_split();
    let (replies, outbox) = mpsc::channel(REPLY_QUEUE);
    let writer = tokio::spawn(write_loop(broker.clone(), write_half, outbox));
    let mut session = Session {
        id: broker.next_connection_id(),
        broker,
        replies,
        subscriber: None,
        topics: HashSet::new(),
        durable: HashMap::new(),
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

/// Sets a new connection's socket options: no Nagle delay, and keepalive probes that find a
/// peer that vanished without closing (a half-open connection): after `--keepalive` seconds
/// of silence, then 3 probes 5 s apart; its reads then fail and the connection is freed.
pub fn tune(socket: &TcpStream, broker: &Broker) {
    let _ = socket.set_nodelay(true);
    let probes = socket2::TcpKeepalive::new()
        .with_time(broker.limits.keepalive)
        .with_interval(std::time::Duration::from_secs(5))
        .with_retries(3);
    let _ = socket2::SockRef::from(socket).set_tcp_keepalive(&probes);
}

/// The reader's side of a connection.
struct Session {
    id: u64,
    broker: Arc<Broker>,
    replies: mpsc::Sender<Out>,
    /// The connection's receiver's sender: names it to topics, never sends.
    subscriber: Option<ClockedSender<Published>>,
    topics: HashSet<Arc<str>>,
    /// Durable subscriptions claimed, by topic: the journal name of each one's position.
    durable: HashMap<Arc<str>, String>,
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
            // Through the reply queue: ahead of deliveries the receiver still holds, so a
            // client can tell how far behind it is.
            Command::Time => {
                let clock = self.broker.dispatcher().stats().clock;
                self.send(Out::Line(format!("TIME {clock}\n"))).await
            }
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
            Command::Create { topic, options } => match self.broker.create(topic, options) {
                Ok(_) => true,
                Err(e) => self.error(&e.to_string()).await,
            },
            Command::Pub { topic, body, .. } => match self.publish(topic, body).await {
                Ok(()) => true,
                Err(e) => self.error(&e.to_string()).await,
            },
            Command::Sub { topic, start } => match self.subscribe(topic, start).await {
                Ok(()) => true,
                Err(e) => self.error(&e).await,
            },
            // The writer checks it against what it wrote and answers, in order with the rest.
            Command::Commit { topic, stamp } => self.send(Out::Commit(topic.into(), stamp)).await,
            Command::Unsub(topic) => {
                let Some(name) = self.topics.take(topic) else {
                    return self.error(&format!("not subscribed to {topic}")).await;
                };
                if let (Ok(topic), Some(subscriber)) =
                    (self.broker.topic(&name), self.subscriber.as_ref())
                {
                    topic.unsubscribe(subscriber);
                }
                if let Some(key) = self.durable.remove(&name) {
                    self.broker.release_durable(&key);
                }
                self.send(Out::Forget(name)).await
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

    async fn subscribe(&mut self, name: &str, start: Start<'_>) -> Result<(), String> {
        if self.topics.contains(name) {
            return match start {
                Start::Live => Ok(()),
                _ => Err(format!("already subscribed to {name}: UNSUB it first")),
            };
        }
        let limit = self.broker.limits.max_subscriptions;
        if self.topics.len() >= limit {
            return Err(format!("too many subscriptions (limit {limit})"));
        }
        if start != Start::Live && !self.broker.journaled() {
            let what = match start {
                Start::As(_) => BrokerError::NeedsData("SUB topic AS name"),
                _ => BrokerError::NeedsData("SUB topic FROM stamp"),
            };
            return Err(what.to_string());
        }
        let topic: Arc<Topic> = self.broker.topic(name).map_err(|e| e.to_string())?;
        self.ensure_subscriber().await?;
        let name: Arc<str> = name.into();
        match start {
            Start::Live => {
                if let Some(subscriber) = &self.subscriber {
                    topic.subscribe(subscriber).map_err(|e| e.to_string())?;
                }
            }
            Start::From(from) => self.catch_up(&name, topic, from, None).await?,
            Start::As(subscription) => {
                let (key, saved) = self
                    .broker
                    .claim_durable(subscription, &name)
                    .map_err(|e| e.to_string())?;
                let from = match saved {
                    Some(position) => Ok(position.saturating_add(1)),
                    // New: it starts now, and a reconnect without a commit resumes here.
                    None => {
                        let now = self.broker.dispatcher().stats().clock;
                        tokio::task::block_in_place(|| self.broker.save_position(&key, now))
                            .map(|()| now + 1)
                    }
                };
                let caught_up = match from {
                    Ok(from) => {
                        let catchup = self.catch_up(&name, topic, from, Some(key.clone()));
                        catchup.await
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = caught_up {
                    self.broker.release_durable(&key);
                    return Err(e);
                }
                self.durable.insert(name.clone(), key);
            }
        }
        self.topics.insert(name);
        Ok(())
    }

    /// Joins `topic` with a replay from `from` (see `writer.rs` for the handshake).
    async fn catch_up(
        &self,
        name: &Arc<str>,
        topic: Arc<Topic>,
        from: usize,
        durable: Option<String>,
    ) -> Result<(), String> {
        let closing = || "the connection is closing".to_string();
        let Some(subscriber) = self.subscriber.as_ref() else {
            return Err(closing());
        };
        let (held, holding) = oneshot::channel();
        let (replayed, replaying) = oneshot::channel();
        let catchup = Catchup {
            name: name.clone(),
            topic: topic.clone(),
            from,
            durable,
            replayed: Some(replayed),
        };
        if !self.send(Out::Catchup(Box::new(catchup), held)).await {
            return Err(closing());
        }
        holding.await.map_err(|_| closing())?;
        // A marker the journal fails to store is never delivered: noticed by the count of
        // messages not stored going up while the replay is awaited.
        let not_stored = self.broker.dispatcher().stats().unjournaled;
        let joined = topic
            .subscribe(subscriber)
            .map_err(|e| e.to_string())
            .and(Ok(()));
        let marked = match joined {
            Ok(()) => subscriber
                .send_async(Published::marker())
                .await
                .map_err(|e| format!("cannot deliver: {}", e.kind())),
            Err(e) => Err(e),
        };
        if marked.is_err() {
            topic.unsubscribe(subscriber);
            self.send(Out::Abandon).await;
            return marked;
        }
        // The replay is written before anything this connection asks next is answered.
        tokio::pin!(replaying);
        loop {
            tokio::select! {
                done = &mut replaying => {
                    if done.is_err() {
                        // The writer ended first (the connection is closing): leave the
                        // topic, which `leave_all` does not know of yet.
                        topic.unsubscribe(subscriber);
                        return Err(closing());
                    }
                    return Ok(());
                }
                () = tokio::time::sleep(MARKER_CHECK) => {
                    if self.broker.dispatcher().stats().unjournaled > not_stored {
                        topic.unsubscribe(subscriber);
                        let reason = "the journal failed to store a message (disk full?): \
                                      the replay cannot be placed, closing";
                        self.close(Some(reason.into())).await;
                        return Err(closing());
                    }
                }
            }
        }
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
        for (_, key) in self.durable.drain() {
            self.broker.release_durable(&key);
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
