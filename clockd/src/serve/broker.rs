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
//!
//! With `--data DIR` the dispatcher is journaled ([`Storage`]): a topic's multicaster keeps
//! its history under the journal name `topic/NAME`, so `SUB topic FROM stamp` can replay it, a
//! durable subscription's position is saved under `sub/NAME TOPIC` (neither has a space), and
//! each connection's
//! receiver is transient (the journal forgets it when the connection closes).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clocked_dispatch::{ClockedMulticaster, ClockedReceiver, ClockedSender, Dispatcher, History};

use super::command::TopicOptions;
use super::nats::interest::{TopicInterest, Wildcards};
pub use super::published::Published;
use super::store::TopicStore;

/// A topic: its multicast group and what went through it.
pub struct Topic {
    pub(super) group: ClockedMulticaster<Published>,
    published: AtomicU64,
    /// The NATS subscriptions that match it (see `nats/interest.rs`).
    pub(super) nats: Mutex<TopicInterest>,
    /// Whether it has NATS queue groups (read on every publish, without the lock).
    pub(super) has_queues: AtomicBool,
    /// Its retention and compaction (kept on a journaled broker only).
    options: Mutex<TopicOptions>,
    /// The journal name its history is kept under (journaled broker).
    history: Option<String>,
}

/// A journaled broker's storage besides the journal (`--data DIR`).
pub struct Storage {
    store: TopicStore,
    /// Options read from the topics file, for topics not made yet in this run.
    stored: Mutex<HashMap<String, TopicOptions>>,
    /// Durable subscriptions a connection has now: one connection each.
    in_use: Mutex<HashSet<String>>,
    /// Durable subscriptions the journal knows (each is a name in every checkpoint).
    durable_names: AtomicUsize,
    /// Taken by `CREATE` with options, so that two of them cannot both write.
    creating: Mutex<()>,
}

impl Storage {
    /// Opens `dir`'s topics file; `dispatcher` is the journaled one it goes with.
    pub fn open(
        dir: &std::path::Path,
        dispatcher: &Dispatcher<Published>,
    ) -> std::io::Result<Self> {
        let (store, stored) = TopicStore::open(dir)?;
        Ok(Storage {
            store,
            stored: Mutex::new(stored),
            in_use: Mutex::new(HashSet::new()),
            durable_names: AtomicUsize::new(dispatcher.saved_positions(DURABLE_PREFIX).len()),
            creating: Mutex::new(()),
        })
    }
}

/// Durable subscriptions' journal names: `sub/NAME TOPIC`.
const DURABLE_PREFIX: &str = "sub/";

/// The journal name of durable subscription `name` to `topic`.
fn durable_key(name: &str, topic: &str) -> String {
    format!("{DURABLE_PREFIX}{name} {topic}")
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
    /// Durable subscriptions in all (`--data`): each is a name the journal keeps.
    pub max_durable: usize,
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
    /// A command that needs the broker started with `--data`.
    NeedsData(&'static str),
    /// `CREATE` with options other than the topic's.
    TopicExists(String, TopicOptions),
    /// The journal or the topics file could not be read or written.
    Storage(String),
    /// A durable subscription that is in use, or one too many.
    Subscription(String),
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerError::TooManyTopics(limit) => write!(f, "too many topics (limit {limit})"),
            BrokerError::Dispatcher(why) => write!(f, "cannot deliver: {why}"),
            BrokerError::NeedsData(what) => write!(
                f,
                "{what} needs a journal: start the broker with --data DIR"
            ),
            BrokerError::TopicExists(topic, options) => write!(
                f,
                "topic {topic} exists with ttl={} compact={}",
                options.ttl.unwrap_or(0),
                options.compact.unwrap_or(0)
            ),
            BrokerError::Storage(why) => write!(f, "storage: {why}"),
            BrokerError::Subscription(why) => f.write_str(why),
        }
    }
}

/// The topics by name, and the NATS wildcard subscriptions that join the ones they match:
/// one lock for both, so that a topic made while a wildcard subscribes is joined once.
#[derive(Default)]
pub(super) struct Topics {
    pub(super) by_name: HashMap<Arc<str>, Arc<Topic>>,
    pub(super) wildcards: Wildcards,
}

/// The broker: one dispatcher, its topics, its limits and counters.
pub struct Broker {
    dispatcher: Dispatcher<Published>,
    pub(super) topics: Mutex<Topics>,
    /// A group with no members: a NATS publish that nobody wants still takes a stamp (the
    /// clock moves for everyone), without a topic being made for its subject.
    pub(super) nobody: ClockedMulticaster<Published>,
    next_connection: AtomicU64,
    storage: Option<Storage>,
    /// The limits every connection is held to.
    pub limits: Limits,
    /// What happened so far.
    pub counters: Counters,
}

impl Broker {
    /// A broker on `dispatcher`: a spilling one, or with `storage` a journaled one (either
    /// way a slow subscriber never stalls it).
    pub fn new(
        dispatcher: Dispatcher<Published>,
        limits: Limits,
        storage: Option<Storage>,
    ) -> Result<Self, BrokerError> {
        // No topic's name has a space: this one is never a topic.
        let nobody = dispatcher
            .multicaster("nobody subscribes")
            .map_err(|e| BrokerError::Dispatcher(e.to_string()))?;
        Ok(Broker {
            nobody,
            dispatcher,
            topics: Mutex::new(Topics::default()),
            next_connection: AtomicU64::new(1),
            storage,
            limits,
            counters: Counters::default(),
        })
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
            .try_new_transient(name.clone(), name)
            .map_err(|e| BrokerError::Dispatcher(e.to_string()))
    }

    /// Whether the broker keeps a journal (`--data`).
    pub fn journaled(&self) -> bool {
        self.storage.is_some()
    }

    /// The topic named `name`, created if new (with the options the topics file holds for
    /// it, if any).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.topic_with(name, None)
    }

    /// `CREATE topic [options]`: the topic, made with `options` if new. Refused if it exists
    /// with other options (options given once stay), or without `--data`.
    pub fn create(&self, name: &str, options: TopicOptions) -> Result<Arc<Topic>, BrokerError> {
        if options == TopicOptions::default() {
            return self.topic(name);
        }
        let Some(storage) = &self.storage else {
            return Err(BrokerError::NeedsData("CREATE with ttl= or compact="));
        };
        let _creating = storage.creating.lock().unwrap_or_else(|p| p.into_inner());
        let existing = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(name)
            .cloned();
        let stored = storage
            .stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        let current = existing
            .as_ref()
            .map(|topic| topic.options())
            .filter(|&current| current != TopicOptions::default())
            .or(stored);
        match current {
            Some(current) if current == options => return self.topic(name),
            Some(current) => return Err(BrokerError::TopicExists(name.into(), current)),
            // A topic made by a PUB or SUB (no options): it gets them now.
            None => {}
        }
        if existing.is_none() && self.topic_count() >= self.limits.max_topics {
            // Before anything is written for it.
            return Err(BrokerError::TooManyTopics(self.limits.max_topics));
        }
        storage.store.record(name, options).map_err(|e| {
            BrokerError::Storage(format!("{}: {e}", storage.store.path().display()))
        })?;
        match existing {
            Some(topic) => {
                *topic.options.lock().unwrap_or_else(|p| p.into_inner()) = options;
                Ok(topic)
            }
            None => {
                let topic = self.topic_with(name, Some(options))?;
                // A PUB or SUB may have made it meanwhile, with none.
                *topic.options.lock().unwrap_or_else(|p| p.into_inner()) = options;
                Ok(topic)
            }
        }
    }

    fn topic_with(
        &self,
        name: &str,
        options: Option<TopicOptions>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        self.topic_locked(&mut topics, name, options)
    }

    /// [`topic_with`](Self::topic_with) with the topic map's lock held.
    pub(super) fn topic_locked(
        &self,
        topics: &mut Topics,
        name: &str,
        options: Option<TopicOptions>,
    ) -> Result<Arc<Topic>, BrokerError> {
        if let Some(topic) = topics.by_name.get(name) {
            return Ok(topic.clone());
        }
        if topics.by_name.len() >= self.limits.max_topics {
            return Err(BrokerError::TooManyTopics(self.limits.max_topics));
        }
        let (group, history, options) = match &self.storage {
            None => {
                let group = self.dispatcher.multicaster(name).map_err(|e| e.to_string());
                (group, None, TopicOptions::default())
            }
            Some(storage) => {
                let history = format!("topic/{name}");
                let group = self
                    .dispatcher
                    .archived_multicaster(history.clone())
                    .map_err(|e| e.to_string());
                let stored = storage
                    .stored
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                (group, Some(history), options.or(stored).unwrap_or_default())
            }
        };
        let topic = Arc::new(Topic {
            group: group.map_err(BrokerError::Dispatcher)?,
            published: AtomicU64::new(0),
            nats: Mutex::new(TopicInterest::default()),
            has_queues: AtomicBool::new(false),
            options: Mutex::new(options),
            history,
        });
        // Before anyone can publish to it: the wildcard subscriptions that match it join.
        for subscription in topics.wildcards.matching(name) {
            // A connection whose receiver is gone (it is closing) cannot join; that must not
            // keep the topic from being made for everyone else.
            let _ = topic.nats_join(subscription);
        }
        topics.by_name.insert(name.into(), topic.clone());
        Ok(topic)
    }

    /// Claims durable subscription `name` to `topic` for one connection; returns the journal
    /// name its position is saved under, and the position (`None` if it is new).
    pub fn claim_durable(
        &self,
        name: &str,
        topic: &str,
    ) -> Result<(String, Option<usize>), BrokerError> {
        let storage = self
            .storage
            .as_ref()
            .ok_or(BrokerError::NeedsData("SUB topic AS name"))?;
        let key = durable_key(name, topic);
        let mut in_use = storage.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if in_use.contains(&key) {
            return Err(BrokerError::Subscription(format!(
                "subscription {name} to {topic} is in use by another connection"
            )));
        }
        let saved = self.dispatcher.saved_position(&key);
        if saved.is_none() {
            let limit = self.limits.max_durable;
            let counted =
                storage
                    .durable_names
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |names| {
                        (names < limit).then_some(names + 1)
                    });
            if counted.is_err() {
                return Err(BrokerError::Subscription(format!(
                    "too many durable subscriptions (limit {limit})"
                )));
            }
        }
        in_use.insert(key.clone());
        Ok((key, saved))
    }

    /// Lets go of a durable subscription claimed by [`claim_durable`](Self::claim_durable).
    pub fn release_durable(&self, key: &str) {
        if let Some(storage) = &self.storage {
            storage
                .in_use
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
        }
    }

    /// Saves a durable subscription's position (synced per `--durability`).
    pub fn save_position(&self, key: &str, stamp: usize) -> Result<(), BrokerError> {
        self.dispatcher
            .save_position(key, stamp)
            .map_err(|e| BrokerError::Storage(e.to_string()))
    }

    /// How many topics exist.
    pub fn topic_count(&self) -> usize {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .len()
    }

    /// Each topic's name, subscriber count and messages published, sorted by name.
    pub fn topic_table(&self) -> Vec<(String, usize, u64)> {
        // Copied out first: a topic's member count takes its group's lock, which a SUB may
        // hold while it waits for intake room; the map's lock must not wait behind it.
        let topics: Vec<(Arc<str>, Arc<Topic>)> = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
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
        self.publish(target, Published::now(body)).await
    }

    /// Publishes `message` to `target`: one stamp, a copy (of an `Arc`) to each subscriber,
    /// and the next member of each of its NATS queue groups picked.
    pub async fn publish(&self, target: &Topic, message: Published) -> Result<(), BrokerError> {
        let body = if target.has_queues.load(Ordering::Acquire) {
            let picks = target.nats.lock().unwrap_or_else(|p| p.into_inner()).pick();
            message.with_picks(picks)
        } else {
            message
        };
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
    /// Its retention and compaction.
    pub fn options(&self) -> TopicOptions {
        *self.options.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its messages stamped `from` or later that the journal holds, up to what is written
    /// now (before its options are applied: see `retained.rs`).
    pub fn history(&self, broker: &Broker, from: usize) -> Result<History<Published>, BrokerError> {
        let name = self
            .history
            .as_deref()
            .ok_or(BrokerError::NeedsData("replay"))?;
        broker
            .dispatcher
            .history(name, from)
            .map_err(|e| BrokerError::Storage(e.to_string()))
    }

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
