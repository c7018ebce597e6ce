//! [`ClockedMulticaster`]: one stamp, delivered to a chosen set of receivers.
//!
//! A broker's topic is a set of subscribers that changes while messages flow. Looping over
//! `send`s would spend one stamp per subscriber; a broadcast reaches everyone. A multicaster
//! is a *group* the dispatcher keeps: members are added and removed through the control
//! channel (never blocking), and [`multicast`](ClockedMulticaster::multicast) hands the
//! dispatcher one envelope naming the group. The dispatcher assigns one stamp and pushes a
//! copy into each member's inbox; every other receiver sees that stamp as a watermark, as for
//! any send.
//!
//! # Invariants
//!
//! * **Membership is ordered with data.** A join or leave is an envelope in the data channel
//!   (taking no stamp), so a member gets exactly the multicasts sent after its `add` returned
//!   and before its `remove` was called, whatever the threads. (Through the control channel,
//!   which the dispatcher drains before data, a leave would overtake multicasts still queued.)
//! * **A member is held open.** Before its join, `add` announces one more sender of the
//!   member (control); after its leave, `remove` announces that sender gone. So a member's
//!   slot, and with it its [`ReceiverId`], is never freed and reused while a group lists it.
//! * **Dropping never blocks.** Drop sends one control message: the dispatcher stops holding
//!   the members at once (closes wait for queued data anyway) and forgets the group once the
//!   data queued before the drop, this handle's last multicasts included, is handled.
//! * **The handle's member list mirrors the dispatcher's**, under one mutex taken by `add`,
//!   `remove` and drop (never by `multicast`), so `add` and `remove` are idempotent.
//!
//! On a journaled dispatcher a multicast is written as one record naming every member, its
//! payload stored once, so a member replays it after a restart and a lagging member reads it
//! back, as for a send. Under [`Durability::Always`](crate::Durability::Always), `multicast`
//! returns once it is stored.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{HandleError, Mode, SendError, SendErrorKind};
use crate::intake::{Control, Envelope};
use crate::link::Link;
use crate::registry::ReceiverId;
use crate::sender::ClockedSender;
use crate::sync::Mutex;

/// Identifies a multicast group among all of the process's dispatchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupId(u64);

impl GroupId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        GroupId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Sends each message, with one stamp, to every receiver in a set that can change (a topic's
/// subscribers). Made by [`Dispatcher::multicaster`](crate::Dispatcher::multicaster).
///
/// Members are named by a [`ClockedSender`] of theirs, which proves the receiver belongs to
/// this dispatcher. While it is a member, a receiver stays open as if the multicaster were
/// one more of its senders.
///
/// ```
/// let d = clocked_dispatch::new(16);
/// let (tx_a, rx_a) = d.new("tx_a", "a");
/// let (tx_b, rx_b) = d.new("tx_b", "b");
/// let (tx_c, rx_c) = d.new("tx_c", "c");
///
/// let topic = d.multicaster("news").unwrap();
/// topic.add(&tx_a).unwrap();
/// topic.add(&tx_b).unwrap();
/// topic.multicast("hello").unwrap();
///
/// // One stamp for both members; c learns that the clock moved.
/// assert_eq!(rx_a.recv(), Ok((Some("hello"), 1)));
/// assert_eq!(rx_b.recv(), Ok((Some("hello"), 1)));
/// assert_eq!(rx_c.recv(), Ok((None, 1)));
///
/// topic.remove(&tx_b);
/// topic.multicast("only a").unwrap();
/// assert_eq!(rx_a.recv(), Ok((Some("only a"), 2)));
/// assert_eq!(rx_b.recv(), Ok((None, 2)));
/// # drop((tx_c, rx_c));
/// ```
pub struct ClockedMulticaster<T: Clone> {
    name: String,
    group: GroupId,
    link: Link<T>,
    /// What the dispatcher's copy of the group holds (see the module doc).
    members: Mutex<HashSet<ReceiverId>>,
}

impl<T: Clone> ClockedMulticaster<T> {
    /// A multicaster with no members, for the dispatcher behind `link`.
    pub(crate) fn create(name: String, link: Link<T>) -> Result<Self, HandleError> {
        if link.shared.clock.is_stopped() {
            return Err(HandleError::DispatcherGone);
        }
        Ok(ClockedMulticaster {
            name,
            group: GroupId::fresh(),
            link,
            members: Mutex::new(HashSet::new()),
        })
    }

    /// A multicaster whose multicasts are also journaled under `id` (its history).
    pub(crate) fn archived(
        name: String,
        link: Link<T>,
        id: crate::journal::frame::JournalId,
    ) -> Result<Self, HandleError> {
        let multicaster = Self::create(name, link)?;
        // Through control, which the dispatcher takes before any data: known before the
        // first multicast.
        let archived = Control::GroupArchived {
            group: multicaster.group,
            id,
        };
        if !multicaster.link.control(archived) {
            return Err(HandleError::DispatcherGone);
        }
        Ok(multicaster)
    }

    /// This multicaster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many receivers are members.
    pub fn len(&self) -> usize {
        self.members.lock().len()
    }

    /// Whether the group has no members (a multicast then only moves the clock).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes `sender`'s receiver a member: it gets every message multicast after this returns,
    /// and none multicast before. Returns `Ok(false)` if it already was one. Blocks only
    /// while the dispatcher's intake is full (the join takes a place in it, no stamp).
    ///
    /// # Errors
    ///
    /// [`OtherDispatcher`](HandleError::OtherDispatcher) if `sender` belongs to another
    /// dispatcher, [`ReceiverGone`](HandleError::ReceiverGone) if its receiver was dropped,
    /// [`DispatcherGone`](HandleError::DispatcherGone) if the dispatcher thread stopped.
    pub fn add(&self, sender: &ClockedSender<T>) -> Result<bool, HandleError> {
        if !sender.link().same_dispatcher(&self.link) {
            return Err(HandleError::OtherDispatcher);
        }
        if !sender.receiver_alive() {
            return Err(HandleError::ReceiverGone);
        }
        let member = sender.target();
        let mut members = self.members.lock();
        if members.contains(&member) {
            return Ok(false);
        }
        // Hold it open first (through control, which never blocks), then join in order with
        // the data.
        if !self.link.control(Control::SenderJoined(member)) {
            return Err(HandleError::DispatcherGone);
        }
        if self.change(member, true).is_err() {
            self.link.control(Control::SenderLeft(member));
            return Err(HandleError::DispatcherGone);
        }
        members.insert(member);
        Ok(true)
    }

    /// Removes `sender`'s receiver from the group; returns whether it was a member. It gets
    /// every message multicast before this, and none multicast after. Blocks only while the
    /// intake is full.
    pub fn remove(&self, sender: &ClockedSender<T>) -> bool {
        if !sender.link().same_dispatcher(&self.link) {
            return false;
        }
        let member = sender.target();
        let mut members = self.members.lock();
        if !members.remove(&member) {
            return false;
        }
        // Leave in order with the data, then let go of it (as a dropped sender does: its
        // leave follows its last message).
        let _ = self.change(member, false);
        self.link.control(Control::SenderLeft(member));
        if members.capacity() > 64 && members.capacity() > 4 * members.len() {
            let keep = 2 * members.len();
            members.shrink_to(keep);
        }
        true
    }

    /// Queues a join or leave behind the data already in the intake; `Err` if the
    /// dispatcher is gone.
    fn change(&self, member: ReceiverId, join: bool) -> Result<(), ()> {
        let change = Envelope::GroupChange {
            group: self.group,
            member,
            join,
        };
        self.link.submit(change).map(|_| ()).map_err(|_| ())
    }

    /// The checks before a multicast: the dispatcher is (or now becomes) serializing, and no
    /// spilling receiver holds its sends (as for a broadcast).
    pub(crate) fn check(&self) -> Result<(), SendErrorKind> {
        let shared = &self.link.shared;
        shared
            .claim_mode(Mode::Serializing)
            .and_then(|()| shared.admit_broadcast())
    }

    /// [`check`](Self::check) without waiting at a spilling receiver's disk gate: a held
    /// receiver fails the multicast at once, as for `send_async` (`async` feature).
    #[cfg(feature = "async")]
    pub(crate) fn check_now(&self) -> Result<(), SendErrorKind> {
        let shared = &self.link.shared;
        shared.claim_mode(Mode::Serializing)?;
        shared.try_admit_broadcast()
    }

    /// The envelope for `value`.
    pub(crate) fn envelope(&self, value: T) -> Envelope<T> {
        Envelope::Multicast {
            group: self.group,
            value,
            cloner: T::clone,
        }
    }

    /// The link to the dispatcher (`async` feature).
    #[cfg(feature = "async")]
    pub(crate) fn link(&self) -> &Link<T> {
        &self.link
    }

    /// Sends a copy of `value` to every member; the dispatcher assigns one stamp to all, and
    /// the other receivers see it as a watermark. With no members, only the clock moves.
    ///
    /// Blocks while the intake is full. A member whose inbox is full makes the dispatcher wait
    /// for it unless the dispatcher spills ([`Builder::build_spilling`](crate::Builder)), as
    /// for any send.
    ///
    /// # Errors
    ///
    /// The value comes back if the dispatcher is in forwarding mode, its thread has stopped,
    /// (spilling) a receiver's disk budget is used up under
    /// [`DiskFull::Reject`](crate::DiskFull::Reject), or (journaled, under `Always`) it could not
    /// be stored.
    pub fn multicast(&self, value: T) -> Result<(), SendError<T>> {
        if let Err(kind) = self.check() {
            return Err(SendError::new(kind, value));
        }
        let position =
            self.link
                .submit(self.envelope(value))
                .map_err(|envelope| match envelope {
                    Envelope::Multicast { value, .. } => {
                        SendError::new(SendErrorKind::DispatcherGone, value)
                    }
                    // `submit` hands back the envelope it was given.
                    _ => unreachable!("submit returned a different envelope"),
                })?;
        // Journaled, under `Always`: wait until it is stored (or get it back).
        match self.link.settle_position(position) {
            Ok(()) => Ok(()),
            Err(mut not_stored) => match not_stored.values.pop() {
                Some(value) => Err(SendError::new(not_stored.kind, value)),
                None => Ok(()),
            },
        }
    }
}

impl<T: Clone> Drop for ClockedMulticaster<T> {
    fn drop(&mut self) {
        let members = self.members.lock().drain().collect();
        self.link.control(Control::GroupDropped {
            group: self.group,
            members,
        });
    }
}

impl<T: Clone> fmt::Debug for ClockedMulticaster<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockedMulticaster")
            .field("name", &self.name)
            .field("members", &self.len())
            .finish_non_exhaustive()
    }
}
