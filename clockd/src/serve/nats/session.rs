//! A NATS connection's reader: operations in, broker calls and replies out.
//!
//! The writer (`writer.rs`) owns the socket's write half; the reader hands it replies
//! (`+OK`, `-ERR`, `PONG`), new and ended subscriptions, and the connection's receiver. The
//! order of what the reader hands over is the order the client sees it in.
//!
//! Errors follow `nats-server`: a framing error (an unknown operation, a control line or
//! payload too long, a bad `CONNECT`, failed authorization) is `-ERR` and the connection is
//! closed; a bad subject, a publish to `$CLOCK` or too many subscriptions is `-ERR` and the
//! connection goes on. A message already accepted is never lost to a later error.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clocked_dispatch::ClockedSender;
use serde::Deserialize;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::super::broker::{Broker, Published};
use super::super::published::now_ms;
use super::interest::Subscription;
use super::proto::{self, Op, OpReader, ProtoError};
use super::routing::Route;
use super::subject;
use super::writer::{write_loop, LocalSub, Out, Settings, CLOCK_SUBJECT};
use super::Options;

/// Replies that may wait for the writer before the reader waits.
const REPLY_QUEUE: usize = 256;

/// The header block of a "no responders" status message.
const NO_RESPONDERS: &[u8] = b"NATS/1.0 503\r\n\r\n";

/// What a client may say in `CONNECT` (other fields are ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Connect {
    verbose: bool,
    pedantic: bool,
    headers: bool,
    no_responders: bool,
    echo: Option<bool>,
    auth_token: Option<String>,
}

/// A subscription as the reader knows it.
struct Sub {
    local: u64,
    filter: Box<str>,
    queue: Option<Arc<str>>,
}

struct Session {
    id: u64,
    broker: Arc<Broker>,
    replies: mpsc::Sender<Out>,
    /// The connection's receiver's sender (made on the first subscription).
    subscriber: Option<Arc<ClockedSender<Published>>>,
    subs: HashMap<Box<str>, Sub>,
    next_local: u64,
    authenticated: bool,
    verbose: bool,
    pedantic: bool,
    no_responders: bool,
    /// The subject of the last publish, and its topic, to spare a lookup.
    last_route: Option<(Box<str>, Route)>,
}

/// Serves one NATS connection until it closes.
pub async fn serve(broker: Arc<Broker>, socket: TcpStream, options: Arc<Options>) {
    super::super::connection::tune(&socket, &broker);
    let (read_half, write_half) = socket.into_split();
    let (replies, outbox) = mpsc::channel(REPLY_QUEUE);
    let (expired_tx, mut expired) = mpsc::unbounded_channel();
    let id = broker.next_connection_id();
    let settings = Settings {
        connection: id,
        ping_interval: options.ping_interval,
        max_pings_out: options.max_pings_out,
    };
    let hello = options.info(id, broker.limits.token.is_some());
    let writer = tokio::spawn(write_loop(
        broker.clone(),
        settings,
        write_half,
        outbox,
        expired_tx,
        hello,
    ));
    let mut session = Session {
        id,
        authenticated: broker.limits.token.is_none(),
        broker,
        replies,
        subscriber: None,
        subs: HashMap::new(),
        next_local: 1,
        verbose: false,
        pedantic: false,
        no_responders: false,
        last_route: None,
    };
    let mut reader = OpReader::new(BufReader::new(read_half), options.max_payload);
    let auth_deadline = tokio::time::Instant::now() + session.broker.limits.auth_timeout;
    loop {
        let keep_going = tokio::select! {
            op = reader.next() => match op {
                Ok(Some(Ok(op))) => session.execute(op).await,
                Ok(Some(Err(violation))) => {
                    session.close(&violation.to_string()).await;
                    false
                }
                Ok(None) | Err(_) => false,
            },
            Some(local) = expired.recv() => {
                session.drop_local(local);
                true
            }
            () = session.replies.closed() => false,
            () = tokio::time::sleep_until(auth_deadline), if !session.authenticated => {
                session.close("Authentication Timeout").await;
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

impl Session {
    /// Runs one operation; `false` when the connection is to close.
    async fn execute(&mut self, op: Op<'_>) -> bool {
        if !self.authenticated && !matches!(op, Op::Connect(_)) {
            self.close("Authorization Violation").await;
            return false;
        }
        match op {
            Op::Connect(json) => self.connect(json).await,
            Op::Ping => self.send(Out::Line(b"PONG\r\n".to_vec())).await,
            Op::Pong => self.send(Out::Pong).await,
            Op::Pub {
                subject,
                reply,
                headers,
                payload,
            } => self.publish(subject, reply, headers, payload).await,
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.subscribe(subject, queue, sid).await,
            Op::Unsub { sid, max } => self.unsubscribe(sid, max).await,
        }
    }

    async fn connect(&mut self, json: &str) -> bool {
        let connect: Connect = match serde_json::from_str(json) {
            Ok(connect) => connect,
            Err(_) => {
                self.close(&ProtoError::Syntax("CONNECT {json}").to_string())
                    .await;
                return false;
            }
        };
        if !self.authenticated {
            if connect
                .auth_token
                .as_deref()
                .is_none_or(|t| !self.broker.check_token(t))
            {
                self.close("Authorization Violation").await;
                return false;
            }
            self.authenticated = true;
        }
        self.verbose = connect.verbose;
        self.pedantic = connect.pedantic;
        self.no_responders = connect.no_responders && connect.headers;
        if !self.send(Out::Headers(connect.headers)).await {
            return false;
        }
        if connect.echo == Some(false) {
            return self
                .error("echo false is not supported: a connection gets its own messages")
                .await;
        }
        self.ok().await
    }

    async fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> bool {
        if self.pedantic
            && (!subject::valid_literal(subject)
                || reply.is_some_and(|r| !subject::valid_literal(r)))
        {
            return self.error("Invalid Publish Subject").await;
        }
        if subject == CLOCK_SUBJECT {
            return self
                .error(&format!(
                    "Permissions Violation for Publish to \"{CLOCK_SUBJECT}\""
                ))
                .await;
        }
        if headers.is_some_and(|h| !proto::valid_headers(h)) {
            let usage = "NATS/1.0 [status], then Name: value lines, then an empty line";
            return self.error(&format!("Invalid Header: {usage}")).await;
        }
        let message = match Published::message(subject, reply, headers, payload, now_ms()) {
            Ok(message) => message,
            Err(_) => return self.error("Invalid Publish Subject: too long").await,
        };
        let route = match self.route(subject) {
            Ok(route) => route,
            Err(e) => return self.error(&e.to_string()).await,
        };
        let nobody = match &route {
            Route::Topic(topic) => reply.is_some() && !topic.has_subscribers(),
            Route::Direct(_) => false,
            Route::Nobody => true,
        };
        if let Err(e) = self.broker.publish_along(&route, message).await {
            return self.error(&e.to_string()).await;
        }
        if let (true, true, Some(reply)) = (nobody, self.no_responders, reply) {
            // A request nobody serves: the requester learns it at once, not by a timeout.
            if let Ok(status) = Published::message(reply, None, Some(NO_RESPONDERS), b"", now_ms())
            {
                if let Ok(route) = self.broker.nats_route(reply) {
                    let _ = self.broker.publish_along(&route, status).await;
                }
            }
        }
        self.ok().await
    }

    /// Where a publish to `subject` goes: the last route again if it is the same topic.
    fn route(&mut self, subject: &str) -> Result<Route, super::super::broker::BrokerError> {
        if let Some((last, Route::Topic(topic))) = &self.last_route {
            if **last == *subject {
                return Ok(Route::Topic(topic.clone()));
            }
        }
        let route = self.broker.nats_route(subject)?;
        if let Route::Topic(topic) = &route {
            // Topics are never deleted: the route stays right. Others can change.
            self.last_route = Some((subject.into(), Route::Topic(topic.clone())));
        }
        Ok(route)
    }

    async fn subscribe(&mut self, filter: &str, queue: Option<&str>, sid: &str) -> bool {
        if !subject::valid_filter(filter) || queue.is_some_and(|q| !subject::valid_literal(q)) {
            return self.error("Invalid Subject").await;
        }
        if self.subs.contains_key(sid) {
            return self
                .error(&format!("Invalid Subscription: sid {sid} is in use"))
                .await;
        }
        if self.subs.len() >= self.broker.limits.max_subscriptions {
            return self.error("Maximum Subscriptions Exceeded").await;
        }
        let sender = match self.ensure_subscriber().await {
            Ok(sender) => sender,
            Err(e) => return self.error(&e).await,
        };
        let local = self.next_local;
        self.next_local += 1;
        let queue: Option<Arc<str>> = queue.map(Into::into);
        // The writer learns of it before any of its messages can come.
        let known = LocalSub {
            local,
            sid: sid.into(),
            filter: filter.into(),
            queue: queue.is_some(),
            delivered: 0,
            max: None,
        };
        if !self.send(Out::Sub(Box::new(known))).await {
            return false;
        }
        if filter != CLOCK_SUBJECT {
            let subscription = Subscription {
                connection: self.id,
                local,
                queue: queue.clone(),
                sender,
            };
            if let Err(e) = self.broker.nats_subscribe(filter, subscription) {
                self.send(Out::Unsub { local, max: None }).await;
                return self.error(&e.to_string()).await;
            }
        }
        let sub = Sub {
            local,
            filter: filter.into(),
            queue,
        };
        self.subs.insert(sid.into(), sub);
        self.ok().await
    }

    async fn unsubscribe(&mut self, sid: &str, max: Option<u64>) -> bool {
        if let Some(sub) = self.subs.get(sid) {
            let local = sub.local;
            if max.is_none() {
                self.drop_local(local);
            }
            // With a max, the writer ends it when it is reached, and tells `drop_local`.
            if !self.send(Out::Unsub { local, max }).await {
                return false;
            }
        }
        self.ok().await
    }

    /// Takes subscription `local` off the broker.
    fn drop_local(&mut self, local: u64) {
        let Some(sid) = self
            .subs
            .iter()
            .find(|(_, sub)| sub.local == local)
            .map(|(sid, _)| sid.clone())
        else {
            return;
        };
        if let Some(sub) = self.subs.remove(&sid) {
            self.leave(&sub);
        }
    }

    fn leave(&self, sub: &Sub) {
        let Some(sender) = self.subscriber.clone() else {
            return;
        };
        if &*sub.filter == CLOCK_SUBJECT {
            return;
        }
        let subscription = Subscription {
            connection: self.id,
            local: sub.local,
            queue: sub.queue.clone(),
            sender,
        };
        self.broker.nats_unsubscribe(&sub.filter, &subscription);
    }

    /// Leaves every subscription; dropping the session then drops the last sender of its
    /// receiver, which closes it.
    fn leave_all(&mut self) {
        let Some(sender) = self.subscriber.take() else {
            return;
        };
        let subscriptions: Vec<(Box<str>, Subscription)> = self
            .subs
            .drain()
            .filter(|(_, sub)| &*sub.filter != CLOCK_SUBJECT)
            .map(|(_, sub)| {
                let subscription = Subscription {
                    connection: self.id,
                    local: sub.local,
                    queue: sub.queue,
                    sender: sender.clone(),
                };
                (sub.filter, subscription)
            })
            .collect();
        self.broker.nats_unsubscribe_all(&subscriptions);
    }

    /// The connection's receiver's sender, made (and the receiver handed to the writer) on
    /// first use.
    async fn ensure_subscriber(&mut self) -> Result<Arc<ClockedSender<Published>>, String> {
        if let Some(sender) = &self.subscriber {
            return Ok(sender.clone());
        }
        let (sender, receiver) = self.broker.subscriber(self.id).map_err(|e| e.to_string())?;
        let sender = Arc::new(sender);
        self.subscriber = Some(sender.clone());
        self.send(Out::Attach(Box::new(receiver))).await;
        Ok(sender)
    }

    async fn send(&self, out: Out) -> bool {
        self.replies.send(out).await.is_ok()
    }

    /// `+OK` in verbose mode.
    async fn ok(&self) -> bool {
        !self.verbose || self.send(Out::Line(b"+OK\r\n".to_vec())).await
    }

    /// `-ERR 'reason'`; the connection goes on.
    async fn error(&self, reason: &str) -> bool {
        self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.send(Out::Line(format!("-ERR '{reason}'\r\n").into_bytes()))
            .await
    }

    /// `-ERR 'reason'`, then the connection closes.
    async fn close(&self, reason: &str) {
        self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
        let line = format!("-ERR '{reason}'\r\n").into_bytes();
        self.send(Out::Close(Some(line))).await;
    }
}
