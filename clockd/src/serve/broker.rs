//! The broker's shared state: the dispatcher, its topics, and counters.
//!
//! The clock, ordering, fan-out and spill are the library's: a topic is a
//! [`ClockedMulticaster`] whose members are its subscribers' receivers (one per connection),
//! so a publish is one dispatcher operation, one stamp, delivered in stamp order to every
//! subscriber while every other connection's receiver sees the stamp pass. The broker only
//! maps names to multicasters and counts.
//!
//! Topics are created on first use (`PUB`, `SUB`) or by `CREATE`, and never deleted: a topic
//! costs one map entry and an empty group (the dispatcher forgets a group with no members).
//! `--max-topics` bounds how many a hostile client can make.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clocked_dispatch::{ClockedMulticaster, ClockedReceiver, ClockedSender, Dispatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a publish hands to its subscribers: `topic message`, the body of an `UPDATED` line,
/// shared by every copy. Spilled to disk as its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published(pub Arc<str>);

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Published {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Published(text.into()))
    }
}

/// A topic: its multicast group and what went through it.
pub struct Topic {
    group: ClockedMulticaster<Published>,
    published: AtomicU64,
}

/// Limits that protect the broker from one client.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Subscriptions of one connection.
    pub max_subscriptions: usize,
    /// Topics in all.
    pub max_topics: usize,
    /// Messages waiting for one connection (in memory and spilled) before it is cut off.
    pub max_backlog: u64,
    /// Bytes spilled for one connection before it is cut off (below the dispatcher's disk
    /// limit, which would refuse every publish while any connection is held at it).
    pub max_spilled_bytes: u64,
    /// How long one write to a client may take before it is cut off.
    pub write_timeout: std::time::Duration,
    /// How long a connection may take to send `AUTH` when a token is required.
    pub auth_timeout: std::time::Duration,
    /// Silence on a connection before keepalive probes look for its peer.
    pub keepalive: std::time::Duration,
    /// The shared token every connection must give first (`AUTH token`), if any.
    pub token: Option<String>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Messages published.
    pub messages_in: AtomicU64,
    /// Deliveries written to subscribers.
    pub messages_out: AtomicU64,
    /// Connections cut off for reading too slowly.
    pub slow_disconnects: AtomicU64,
    /// `ERR` lines sent.
    pub errors: AtomicU64,
}

/// Why a broker operation failed; sent as `ERR {self}`.
#[derive(Debug, PartialEq, Eq)]
pub enum BrokerError {
    /// `--max-topics` reached.
    TooManyTopics(usize),
    /// The dispatcher refused (it stopped, or a disk is full).
    Dispatcher(String),
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerError::TooManyTopics(limit) => write!(f, "too many topics (limit {limit})"),
            BrokerError::Dispatcher(why) => write!(f, "cannot deliver: {why}"),
        }
    }
}

/// The broker: one dispatcher, its topics, its limits and counters.
pub struct Broker {
    dispatcher: Dispatcher<Published>,
    topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
    next_connection: AtomicU64,
    /// The limits every connection is held to.
    pub limits: Limits,
    /// What happened so far.
    pub counters: Counters,
}

impl Broker {
    /// A broker on `dispatcher` (a spilling one, so that a slow subscriber never stalls it).
    pub fn new(dispatcher: Dispatcher<Published>, limits: Limits) -> Self {
        Broker {
            dispatcher,
            topics: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            limits,
            counters: Counters::default(),
        }
    }

    /// The dispatcher (for status reports).
    pub fn dispatcher(&self) -> &Dispatcher<Published> {
        &self.dispatcher
    }

    /// Whether `token` is the one the broker was started with.
    pub fn check_token(&self, token: &str) -> bool {
        self.limits.token.as_deref() == Some(token)
    }

    /// A number for a new connection, unique for the broker's life.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// A connection's receiver and the sender that names it to topics.
    pub fn subscriber(
        &self,
        connection: u64,
    ) -> Result<(ClockedSender<Published>, ClockedReceiver<Published>), BrokerError> {
        let name = format!("conn-{connection}");
        self.dispatcher
            .try_new(name.clone(), name)
            .map_err(|e| BrokerError::Dispatcher(e.to_string()))
    }

    /// The topic named `name`, created if new.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        if topics.len() >= self.limits.max_topics {
            return Err(BrokerError::TooManyTopics(self.limits.max_topics));
        }
        let group = self
            .dispatcher
            .multicaster(name)
            .map_err(|e| BrokerError::Dispatcher(e.to_string()))?;
        let topic = Arc::new(Topic {
            group,
            published: AtomicU64::new(0),
        });
        topics.insert(name.into(), topic.clone());
        Ok(topic)
    }

    /// How many topics exist.
    pub fn topic_count(&self) -> usize {
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Each topic's name, subscriber count and messages published, sorted by name.
    pub fn topic_table(&self) -> Vec<(String, usize, u64)> {
        // Copied out first: a topic's member count takes its group's lock, which a SUB may
        // hold while it waits for intake room; the map's lock must not wait behind it.
        let topics: Vec<(Arc<str>, Arc<Topic>)> = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, topic)| (name.clone(), topic.clone()))
            .collect();
        let mut table: Vec<_> = topics
            .iter()
            .map(|(name, topic)| {
                let published = topic.published.load(Ordering::Relaxed);
                (name.to_string(), topic.group.len(), published)
            })
            .collect();
        table.sort();
        table
    }

    /// Publishes `body` (`topic message`) to `target` (found with [`topic`](Self::topic)): one
    /// stamp, a copy (of an `Arc`) to each subscriber.
    pub async fn publish_to(&self, target: &Topic, body: &str) -> Result<(), BrokerError> {
        let body = Published(body.into());
        // Counted before it is handed over: a subscriber may read it before this task runs
        // again, and a scrape must never show a delivery of a message not yet counted.
        target.published.fetch_add(1, Ordering::Relaxed);
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        let sent = target.group.multicast_async(body).await;
        if let Err(e) = sent {
            target.published.fetch_sub(1, Ordering::Relaxed);
            self.counters.messages_in.fetch_sub(1, Ordering::Relaxed);
            return Err(BrokerError::Dispatcher(e.kind().to_string()));
        }
        Ok(())
    }
}

impl Topic {
    /// Adds a subscriber; `false` if it already was one. The join takes a place in the
    /// dispatcher's intake and may wait for one: the worker thread is handed back to the
    /// runtime meanwhile (`block_in_place`), so other connections go on.
    pub fn subscribe(&self, subscriber: &ClockedSender<Published>) -> Result<bool, BrokerError> {
        tokio::task::block_in_place(|| self.group.add(subscriber))
            .map_err(|e| BrokerError::Dispatcher(e.to_string()))
    }

    /// Removes a subscriber; `false` if it was not one. May wait as
    /// [`subscribe`](Self::subscribe) does.
    pub fn unsubscribe(&self, subscriber: &ClockedSender<Published>) -> bool {
        tokio::task::block_in_place(|| self.group.remove(subscriber))
    }
}
