//! Who wants a subject: NATS subscriptions as the broker tracks them.
//!
//! The dispatcher delivers a topic's messages to its group's members, one receiver per
//! connection. A NATS connection can have many subscriptions matching one subject (an exact
//! one, `*` and `>` ones, queue subscriptions): its receiver is a member of a topic's group
//! while at least one of them matches, and its writer then hands each message to every
//! matching subscription of its own (`nats/writer.rs`). So the broker keeps, per topic, a
//! count of each connection's matching subscriptions ([`TopicInterest`]), and, broker-wide,
//! the wildcard subscriptions ([`Wildcards`]), which join every topic they match: the ones
//! that exist when they subscribe, and the ones made later.
//!
//! Not every publish goes through a topic: see `routing.rs` for the subjects that go straight
//! to connections (reply subjects, and without `--data` a subject only one connection wants).
//!
//! # Queue groups
//!
//! Each message goes to one member of each queue group (grouped by queue name, as
//! `nats-server` does) of its subject. The member is chosen when the message is published,
//! round-robin, and travels with the message as a *pick*, `(connection, subscription)`; every
//! member's connection receives the message (one multicast, one stamp) and only the picked
//! one's writer delivers it. A member that leaves (or reaches its `UNSUB` maximum) after a
//! message picked it and before the message reached it loses that message for its group:
//! NATS core delivers at most once.
//!
//! # Invariant
//!
//! A connection is in a topic's group exactly while its count for that topic is above zero.
//! Counts change under the topic's interest lock, and the group change is made before that
//! lock is let go; wildcard subscriptions are added and removed under the broker's topic-map
//! lock, which a new topic also holds while it joins the wildcards that match it, so a topic
//! made while a wildcard subscribes is joined exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use clocked_dispatch::ClockedSender;

use super::super::published::{Picks, Published};
use super::subject::matches;

/// A NATS subscription as the broker knows it.
#[derive(Clone)]
pub struct Subscription {
    /// The connection's number.
    pub connection: u64,
    /// The subscription's number on its connection (not the client's sid, which is any
    /// string: the writer maps one to the other).
    pub local: u64,
    /// Its queue group, if any.
    pub queue: Option<Arc<str>>,
    /// The connection's receiver's sender: what a topic's group lists.
    pub sender: Arc<ClockedSender<Published>>,
}

/// One queue group of a topic.
struct QueueGroup {
    name: Arc<str>,
    members: Vec<(u64, u64)>,
    /// Where the round-robin goes next.
    next: usize,
}

/// The NATS subscriptions matching one topic.
#[derive(Default)]
pub struct TopicInterest {
    /// Matching subscriptions per connection.
    counts: HashMap<u64, usize>,
    queues: Vec<QueueGroup>,
}

impl TopicInterest {
    /// Counts `subscription`; `true` if its connection was not in the group yet (the caller
    /// adds it).
    pub fn join(&mut self, subscription: &Subscription) -> bool {
        if let Some(queue) = &subscription.queue {
            let member = (subscription.connection, subscription.local);
            match self.queues.iter_mut().find(|group| group.name == *queue) {
                Some(group) => group.members.push(member),
                None => self.queues.push(QueueGroup {
                    name: queue.clone(),
                    members: vec![member],
                    next: 0,
                }),
            }
        }
        let count = self.counts.entry(subscription.connection).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Uncounts a subscription; `true` if its connection has no other one matching (the
    /// caller removes it from the group).
    pub fn leave(&mut self, connection: u64, local: u64, queue: Option<&str>) -> bool {
        if let Some(queue) = queue {
            if let Some(at) = self.queues.iter().position(|g| &*g.name == queue) {
                let members = &mut self.queues[at].members;
                members.retain(|&member| member != (connection, local));
                if members.is_empty() {
                    self.queues.swap_remove(at);
                }
            }
        }
        match self.counts.get_mut(&connection) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(&connection);
                true
            }
            None => false,
        }
    }

    /// Whether any queue group has members.
    pub fn has_queues(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Chooses the next member of each queue group.
    pub fn pick(&mut self) -> Option<Picks> {
        if self.queues.is_empty() {
            return None;
        }
        let picks: Vec<(u64, u64)> = self
            .queues
            .iter_mut()
            .map(|group| {
                let member = group.members[group.next % group.members.len()];
                group.next = group.next.wrapping_add(1);
                member
            })
            .collect();
        Some(picks.into())
    }
}

/// The broker's wildcard subscriptions.
#[derive(Default)]
pub struct Wildcards {
    by_id: HashMap<(u64, u64), (Box<str>, Subscription)>,
}

impl Wildcards {
    /// Adds a subscription to `filter`.
    pub fn insert(&mut self, filter: &str, subscription: Subscription) {
        let id = (subscription.connection, subscription.local);
        self.by_id.insert(id, (filter.into(), subscription));
    }

    /// Removes a subscription; returns its filter.
    pub fn remove(&mut self, connection: u64, local: u64) -> Option<(Box<str>, Subscription)> {
        self.by_id.remove(&(connection, local))
    }

    /// The subscriptions whose filter matches `subject`.
    pub fn matching<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a Subscription> {
        self.by_id
            .values()
            .filter(move |(filter, _)| matches(filter, subject))
            .map(|(_, subscription)| subscription)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decide_membership_and_queues_round_robin() {
        let dispatcher = clocked_dispatch::new::<Published>(4);
        let (sender, _receiver) = dispatcher.new("tx", "rx");
        let sender = Arc::new(sender);
        let sub = |connection, local, queue: Option<&str>| Subscription {
            connection,
            local,
            queue: queue.map(Into::into),
            sender: sender.clone(),
        };
        let mut interest = TopicInterest::default();
        assert!(interest.join(&sub(1, 1, None)));
        assert!(!interest.join(&sub(1, 2, Some("q"))));
        assert!(interest.join(&sub(2, 1, Some("q"))));
        assert!(interest.has_queues());
        let picked: Vec<_> = (0..4).map(|_| interest.pick().unwrap()[0]).collect();
        assert_eq!(picked, [(1, 2), (2, 1), (1, 2), (2, 1)]);
        assert!(!interest.leave(1, 1, None));
        assert!(interest.leave(1, 2, Some("q")));
        assert_eq!(interest.pick().unwrap()[..], [(2, 1)]);
        assert!(interest.leave(2, 1, Some("q")));
        assert!(!interest.has_queues() && interest.pick().is_none());
        assert!(
            !interest.leave(3, 1, None),
            "an unknown connection is not removed"
        );
    }
}
