//! The broker's side of NATS routing: subscriptions joining topics, and where a publish
//! goes. See `interest.rs` for the bookkeeping and its invariant. Lock order: the topic
//! map's lock, then a topic's interest lock, then the group's (inside the library).
//!
//! Costs, for the next engineer: wildcard subscriptions are a list, not a trie. A wildcard
//! `SUB` or `UNSUB` scans every topic, and a publish to a subject without a topic (or a new
//! topic) scans every wildcard, under the topic map's lock, which every topic lookup takes.
//! Both are bounded by `--max-topics` and `--max-subscriptions`, and fine for thousands;
//! a broker with a million topics and many wildcard subscribers wants a subject trie here.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clocked_dispatch::ClockedSender;

use super::super::broker::{Broker, BrokerError, Published, Topic};
use super::interest::Subscription;
use super::subject;

/// Where a NATS publish goes: see [`Broker::nats_route`].
pub enum Route {
    /// To a topic's subscribers.
    Topic(Arc<Topic>),
    /// To these connections' receivers (one, unless it is a reply subject).
    Direct(Vec<Arc<ClockedSender<Published>>>),
    /// Nowhere: nobody subscribes (it still takes a stamp).
    Nobody,
}

/// Where NATS clients' reply subjects start (their default inbox prefix).
pub const REPLY_PREFIX: &str = "_INBOX.";

impl Broker {
    /// Adds a NATS subscription to `filter` (a valid filter; `$CLOCK` is served by the
    /// connection itself). An exact subject makes its topic if new; a wildcard joins every
    /// topic it matches, now and when they are made.
    pub fn nats_subscribe(
        &self,
        filter: &str,
        subscription: Subscription,
    ) -> Result<(), BrokerError> {
        if !subject::has_wildcard(filter) {
            return self.topic(filter)?.nats_join(&subscription);
        }
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let matching: Vec<Arc<Topic>> = topics
            .by_name
            .iter()
            .filter(|(name, _)| subject::matches(filter, name))
            .map(|(_, topic)| topic.clone())
            .collect();
        for (at, topic) in matching.iter().enumerate() {
            if let Err(e) = topic.nats_join(&subscription) {
                for joined in &matching[..at] {
                    joined.nats_leave(&subscription);
                }
                return Err(e);
            }
        }
        topics.wildcards.insert(filter, subscription);
        Ok(())
    }

    /// Removes a NATS subscription added by [`nats_subscribe`](Self::nats_subscribe).
    pub fn nats_unsubscribe(&self, filter: &str, subscription: &Subscription) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if !subject::has_wildcard(filter) {
            let topic = topics.by_name.get(filter).cloned();
            drop(topics);
            if let Some(topic) = topic {
                topic.nats_leave(subscription);
            }
            return;
        }
        if topics
            .wildcards
            .remove(subscription.connection, subscription.local)
            .is_none()
        {
            return;
        }
        for (name, topic) in &topics.by_name {
            if subject::matches(filter, name) {
                topic.nats_leave(subscription);
            }
        }
    }

    /// Where a NATS publish to `subject` goes.
    ///
    /// * A subject with a topic goes to it.
    /// * A reply subject (`_INBOX.…`) never gets a topic (topics are never deleted, and every
    ///   request has a reply subject of its own): it goes straight to each connection whose
    ///   subscriptions match it, a copy stamped for each (a reply has one reader; no order
    ///   between readers to keep).
    /// * With `--data`, any other subject gets a topic, so that its history is kept.
    /// * Without, a subject that only wildcard subscriptions of one connection match, with no
    ///   queue group, goes straight to that connection; one that nobody wants takes a stamp
    ///   and goes nowhere; anything else gets a topic, which the matching wildcards join (one
    ///   stamp, one order for all its subscribers).
    pub fn nats_route(&self, subject: &str) -> Result<Route, BrokerError> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(topic) = topics.by_name.get(subject) {
            return Ok(Route::Topic(topic.clone()));
        }
        let reply = subject.starts_with(REPLY_PREFIX);
        if self.journaled() && !reply {
            return self
                .topic_locked(&mut topics, subject, None)
                .map(Route::Topic);
        }
        let direct = {
            let mut matching = topics.wildcards.matching(subject).peekable();
            let Some(first) = matching.peek().copied() else {
                return Ok(Route::Nobody);
            };
            if reply {
                let mut connections: Vec<&Subscription> = matching.collect();
                connections.sort_by_key(|sub| sub.connection);
                connections.dedup_by_key(|sub| sub.connection);
                Some(connections.iter().map(|sub| sub.sender.clone()).collect())
            } else {
                let one_connection = matching
                    .all(|other| other.connection == first.connection && other.queue.is_none());
                one_connection.then(|| vec![first.sender.clone()])
            }
        };
        if let Some(senders) = direct {
            return Ok(Route::Direct(senders));
        }
        self.topic_locked(&mut topics, subject, None)
            .map(Route::Topic)
    }

    /// Publishes a NATS message along `route`; `Ok(false)` if nobody was to get it (it takes
    /// a stamp and is dropped, as core NATS drops it).
    pub async fn publish_along(
        &self,
        route: &Route,
        message: Published,
    ) -> Result<bool, BrokerError> {
        match route {
            Route::Topic(topic) => self.publish(topic, message).await.map(|()| true),
            Route::Direct(senders) => {
                self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                let mut sent = false;
                for sender in senders {
                    // A connection that closed meanwhile: nobody there wants it any more.
                    sent |= sender.send_async(message.clone()).await.is_ok();
                }
                if !sent {
                    self.counters.messages_in.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(sent)
            }
            Route::Nobody => {
                self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                let sent = self.nobody.multicast_async(message).await;
                sent.map(|()| false).map_err(|e| {
                    self.counters.messages_in.fetch_sub(1, Ordering::Relaxed);
                    BrokerError::Dispatcher(e.kind().to_string())
                })
            }
        }
    }

    /// Removes a closing connection's subscriptions: the wildcard ones with one pass over
    /// the topics, not one per wildcard.
    pub fn nats_unsubscribe_all(&self, subscriptions: &[(Box<str>, Subscription)]) {
        let (wild, exact): (Vec<_>, Vec<_>) = subscriptions
            .iter()
            .partition(|(filter, _)| subject::has_wildcard(filter));
        for (filter, subscription) in exact {
            self.nats_unsubscribe(filter, subscription);
        }
        if wild.is_empty() {
            return;
        }
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<&(Box<str>, Subscription)> = wild
            .into_iter()
            .filter(|(_, sub)| topics.wildcards.remove(sub.connection, sub.local).is_some())
            .collect();
        for (name, topic) in &topics.by_name {
            for (filter, subscription) in &removed {
                if subject::matches(filter, name) {
                    topic.nats_leave(subscription);
                }
            }
        }
    }

    /// How many NATS wildcard subscriptions there are.
    pub fn wildcard_count(&self) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.wildcards.len()
    }
}

impl Topic {
    /// Counts a NATS subscription that matches this topic, and adds its connection to the
    /// group if it is its first (may wait as [`subscribe`](Self::subscribe) does).
    pub(in crate::serve) fn nats_join(
        &self,
        subscription: &Subscription,
    ) -> Result<(), BrokerError> {
        let mut interest = self.nats.lock().unwrap_or_else(|p| p.into_inner());
        if interest.join(subscription) {
            let added = tokio::task::block_in_place(|| self.group.add(&subscription.sender));
            if let Err(e) = added {
                interest.leave(
                    subscription.connection,
                    subscription.local,
                    subscription.queue.as_deref(),
                );
                return Err(BrokerError::Dispatcher(e.to_string()));
            }
        }
        self.has_queues
            .store(interest.has_queues(), Ordering::Release);
        Ok(())
    }

    /// Uncounts a NATS subscription; its connection leaves the group with its last one.
    pub(in crate::serve) fn nats_leave(&self, subscription: &Subscription) {
        let mut interest = self.nats.lock().unwrap_or_else(|p| p.into_inner());
        let queue = subscription.queue.as_deref();
        if interest.leave(subscription.connection, subscription.local, queue) {
            tokio::task::block_in_place(|| self.group.remove(&subscription.sender));
        }
        self.has_queues
            .store(interest.has_queues(), Ordering::Release);
    }

    /// Whether anyone subscribes to it (NATS "no responders" for a request nobody serves).
    pub fn has_subscribers(&self) -> bool {
        !self.group.is_empty()
    }
}
