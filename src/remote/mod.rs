//! A `clockd serve` subscription as a [`ClockedReceiver`] (feature `remote`): a remote stream
//! with the reading API of a local one, so that `recv`, `try_recv`, `recv_timeout`,
//! iteration, [`Select`](crate::Select), `recv_async` (feature `async`) and the
//! [pipeline](crate::pipeline) helpers work on it unchanged.
//!
//! ```no_run
//! use clocked_dispatch::remote::RemoteSubscriber;
//!
//! let (rx, remote) = RemoteSubscriber::new("127.0.0.1:8889")
//!     .topic("orders")
//!     .durable("billing") // resume after the last commit, across restarts of this program
//!     .connect()?;
//! for (message, stamp) in rx {
//!     if let Some(message) = message {
//!         println!("{stamp}: {} {}", message.topic, message.body);
//!     }
//!     remote.commit(stamp)?; // processed everything up to `stamp`
//! }
//! // The stream ended: why.
//! println!("{:?}", remote.error());
//! # Ok::<(), clocked_dispatch::remote::RemoteError>(())
//! ```
//!
//! # How it works
//!
//! A thread (the *bridge*) holds the connection, with `STAMPS on` and `CLOCK on`, and relays
//! the broker's stream into a local dispatcher in forwarding mode: `STAMPED s topic body`
//! becomes `forward(Some(message), s)`, and the stamps between two of this connection's
//! messages (everyone else's traffic) are accounted for in one step with
//! [`skip_through`](crate::ClockedSender::skip_through), as is a `CLOCK c` line. So the local
//! receiver yields the broker's own stamps, data and watermarks, in the broker's order, and
//! the bridge costs one dispatcher operation per line, not per stamp of the broker's clock.
//!
//! # Durable subscriptions and reconnection
//!
//! With [`durable`](RemoteSubscriber::durable) (the broker needs `--data`), every topic is
//! subscribed `SUB topic AS name`: the broker replays what came after the name's last
//! [`commit`](Remote::commit), then goes live. If the connection is lost, the bridge
//! reconnects (for up to [`reconnect_for`](RemoteSubscriber::reconnect_for)) and subscribes
//! the same way; the replay starts at the last commit, and the bridge drops what it already
//! relayed (stamps only grow), so the local stream has no gap and nothing twice.
//! [`from`](RemoteSubscriber::from) reconnects the same way, resuming after the last stamp
//! relayed (`SUB topic FROM stamp`). Otherwise a lost connection ends the stream.
//!
//! With several topics, the broker replays them one after the other: the bridge gathers
//! the replays (everything before the subscription's `PONG`) in memory and relays them
//! sorted by stamp. A single topic's replay is relayed as it comes.
//!
//! # When the broker is gone
//!
//! [`connect`](RemoteSubscriber::connect) fails with a [`RemoteError`] if the broker cannot be
//! reached or refuses a subscription. Later, a connection that is closed, or silent for
//! [`liveness`](RemoteSubscriber::liveness) while the bridge's `PING`s go unanswered, is lost:
//! the stream ends once the reconnect window is over (at once without `durable`): the
//! receiver returns what it holds, then `Err(RecvError)`, never a hang, and
//! [`Remote::error`] says why.

mod bridge;
mod line;
mod shared;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::ClockedReceiver;
use shared::Shared;

/// A message from a remote topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// What was published (`PUB topic body`).
    pub body: String,
}

/// Why a remote subscription failed or ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// The broker could not be reached (or its address not resolved).
    Connect(String),
    /// The broker refused a command: its `ERR` line (a durable subscription in use, a broker
    /// without `--data`, a wrong token).
    Refused(String),
    /// The connection was lost and not regained (why, and for how long it was tried).
    Disconnected(String),
    /// [`commit`](Remote::commit) on a subscription that is not durable.
    NotDurable,
    /// The broker did not answer in time.
    Timeout,
    /// The subscription was closed by [`Remote::close`] or by dropping the receiver.
    Closed,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Connect(why) => write!(f, "cannot reach the broker: {why}"),
            RemoteError::Refused(why) => write!(f, "the broker refused: {why}"),
            RemoteError::Disconnected(why) => write!(f, "the connection was lost: {why}"),
            RemoteError::NotDurable => f.write_str("commit needs a durable subscription"),
            RemoteError::Timeout => f.write_str("the broker did not answer in time"),
            RemoteError::Closed => f.write_str("the subscription was closed"),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Builds a remote subscription: where, to what, and how.
#[derive(Clone, Debug)]
pub struct RemoteSubscriber {
    addr: String,
    topics: Vec<String>,
    durable: Option<String>,
    from: Option<usize>,
    token: Option<String>,
    bound: usize,
    reconnect_for: Duration,
    liveness: Duration,
    timeout: Duration,
}

impl RemoteSubscriber {
    /// A subscription to the broker at `addr` (`host:port` of `clockd serve --listen`).
    pub fn new(addr: impl Into<String>) -> Self {
        RemoteSubscriber {
            addr: addr.into(),
            topics: Vec::new(),
            durable: None,
            from: None,
            token: None,
            bound: 1024,
            reconnect_for: Duration::from_secs(30),
            liveness: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
        }
    }

    /// Subscribes to `topic` (call once per topic; the stream merges them in stamp order).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Makes the subscription durable under `name`: it resumes after the name's last
    /// [`commit`](Remote::commit), after a reconnect or a restart of this program.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = Some(name.into());
        self
    }

    /// Starts with the topics' history from `stamp` (`SUB topic FROM stamp`; the broker
    /// needs `--data`), then goes live. Like a durable subscription it reconnects when its
    /// connection is lost, resuming after the last stamp it relayed; unlike one, the broker
    /// keeps no position for it: the caller does (a follower keeps it in its own journal).
    /// Ignored with [`durable`](Self::durable).
    pub fn from(mut self, stamp: usize) -> Self {
        self.from = Some(stamp.max(1));
        self
    }

    /// The broker's `--token`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Messages the local receiver holds before the bridge stops reading the socket
    /// (default 1024; the broker then holds the rest, up to its `--max-backlog`).
    pub fn bound(mut self, bound: usize) -> Self {
        self.bound = bound;
        self
    }

    /// How long a durable subscription tries to reconnect once its connection is lost
    /// (default 30 s).
    pub fn reconnect_for(mut self, window: Duration) -> Self {
        self.reconnect_for = window;
        self
    }

    /// Silence after which the connection counts as lost: after half of it the bridge
    /// `PING`s the broker, and if the other half passes without a line, it is lost (default
    /// 20 s; time the bridge waits for room in the local receiver does not count).
    pub fn liveness(mut self, silence: Duration) -> Self {
        self.liveness = silence.max(Duration::from_millis(10));
        self
    }

    /// How long [`connect`](Self::connect) and [`commit`](Remote::commit) wait for the broker
    /// (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects and subscribes. Returns once the broker accepted every subscription (or
    /// started a replay); the receiver yields the remote stream, the [`Remote`] commits and
    /// says why the stream ended.
    ///
    /// # Errors
    ///
    /// [`Connect`](RemoteError::Connect) if the broker cannot be reached,
    /// [`Refused`](RemoteError::Refused) if it refuses a subscription,
    /// [`Timeout`](RemoteError::Timeout) if it does not answer in time.
    pub fn connect(self) -> Result<(ClockedReceiver<Message>, Remote), RemoteError> {
        if self.topics.is_empty() {
            return Err(RemoteError::Refused("no topic to subscribe to".into()));
        }
        let addrs = resolve(&self.addr)?;
        let shared = Arc::new(Shared::default());
        let receiver = bridge::start(self.clone(), addrs, shared.clone())?;
        Ok((
            receiver,
            Remote {
                shared,
                config: self,
            },
        ))
    }
}

/// Resolves `addr` once: reconnects go to the same addresses.
fn resolve(addr: &str) -> Result<Vec<SocketAddr>, RemoteError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| RemoteError::Connect(format!("{addr}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(RemoteError::Connect(format!("{addr}: no address")));
    }
    Ok(addrs)
}

/// The control side of a remote subscription. Dropping it closes the connection (the
/// receiver then returns what it holds, then `Err`).
pub struct Remote {
    shared: Arc<Shared>,
    config: RemoteSubscriber,
}

impl Remote {
    /// Tells the broker that everything up to `stamp` (a message's or a watermark's) was
    /// processed: a durable subscription resumes after it. Does not wait for the broker to
    /// store it (the bridge may be waiting for room in the receiver this thread reads); the
    /// broker stores commits in order, and a refused one is returned by the next call.
    /// [`commit_and_wait`](Self::commit_and_wait) waits.
    ///
    /// # Errors
    ///
    /// [`NotDurable`](RemoteError::NotDurable); [`Refused`](RemoteError::Refused) for an
    /// earlier commit the broker refused; [`Disconnected`](RemoteError::Disconnected) if the
    /// connection is down (commit again once it is back: the replay restarts at the last
    /// stored commit, and what was relayed already is not relayed again).
    pub fn commit(&self, stamp: usize) -> Result<(), RemoteError> {
        let lines = self.commit_lines(stamp)?;
        if let Some(why) = self.shared.take_commit_refusal() {
            return Err(RemoteError::Refused(why));
        }
        match lines {
            Some(lines) => self.shared.send_unchecked(&lines),
            None => Ok(()),
        }
    }

    /// Like [`commit`](Self::commit), and returns once the broker stored it (synced, with
    /// `--durability batch`). The broker answers after every line it sent before, so this
    /// waits until the bridge has relayed them: call it from a thread other than the one that
    /// reads the receiver, or once the receiver has room for what is in flight.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), and [`Timeout`](RemoteError::Timeout).
    pub fn commit_and_wait(&self, stamp: usize) -> Result<(), RemoteError> {
        match self.commit_lines(stamp)? {
            Some(lines) => self.shared.request(&lines, self.config.timeout),
            None => Ok(()),
        }
    }

    /// The `COMMIT` lines for `stamp`, capped at the highest stamp read on this connection
    /// (after a reconnect the broker refuses a commit above what it delivered since; a lower
    /// commit only replays a little more, which the bridge drops). `None`: nothing to commit.
    fn commit_lines(&self, stamp: usize) -> Result<Option<String>, RemoteError> {
        if self.config.durable.is_none() {
            return Err(RemoteError::NotDurable);
        }
        let stamp = stamp.min(self.shared.seen());
        if stamp == 0 {
            return Ok(None);
        }
        let lines = self
            .config
            .topics
            .iter()
            .map(|topic| format!("COMMIT {topic} {stamp}\n"))
            .collect();
        Ok(Some(lines))
    }

    /// The broker's clock now (`TIME`): with the last stamp received, how far behind this
    /// subscription is.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), but for `NotDurable`.
    pub fn broker_clock(&self) -> Result<usize, RemoteError> {
        self.shared.request("TIME\n", self.config.timeout)?;
        self.shared
            .broker_clock()
            .ok_or_else(|| RemoteError::Refused("no TIME answer".into()))
    }

    /// Why the stream ended, if it did.
    pub fn error(&self) -> Option<RemoteError> {
        self.shared.error()
    }

    /// Whether the bridge is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// How many times the connection was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects()
    }

    /// Closes the connection; the receiver returns what it holds, then `Err`.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.close();
    }
}
