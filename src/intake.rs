//! What flows into the dispatcher thread.
//!
//! Two channels, because two kinds of traffic have different needs:
//!
//! * **data** ([`Envelope`]) — the user's messages, through a queue bounded by the
//!   dispatcher's `bound` ([`queue`]): a full intake is the back-pressure `send` blocks on
//!   (bound 0: a rendezvous with the dispatcher).
//! * **control** ([`Control`]) — handles joining and leaving, through an unbounded channel, so
//!   that creating or dropping a handle never blocks (4.0.2 sent these through the bounded
//!   channel, which is how dropping a sender could deadlock).
//!
//! Ordering between the two is restored by the dispatcher:
//!
//! * A *join* is pushed before the new handle exists, so it happens-before any data that handle
//!   sends. The dispatcher drains control before it handles each data message, so it has seen
//!   the join by the time it sees that data.
//! * A *leave* is pushed after the handle's last data message was accepted, so that data is
//!   already in the data channel. When the dispatcher processes the leave it notes how many
//!   data messages are queued; a receiver is closed only once that many more have been handled.

use crate::registry::ReceiverId;

/// Why a message was not queued in the intake; it comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// No room now.
    Full(T),
    /// No room before the deadline.
    #[cfg_attr(all(loom, not(test)), allow(dead_code))]
    Timeout(T),
    /// The dispatcher thread is gone.
    Gone(T),
}

/// What a take from the intake found, when it found no message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Nothing now.
    Empty,
    /// Nothing, and every producer is gone: nothing ever will be.
    Disconnected,
}

#[cfg(any(not(loom), test))]
pub(crate) mod queue;
/// Under `--cfg loom`, the crate-wide models use a stand-in (see its module doc).
#[cfg(all(loom, not(test)))]
#[path = "intake/twin.rs"]
pub(crate) mod queue;

/// Clones a broadcast payload; `<T as Clone>::clone`, captured where `T: Clone` is known, so
/// the dispatcher itself never needs `T: Clone`.
pub(crate) type Cloner<T> = fn(&T) -> T;

/// A data message.
pub(crate) enum Envelope<T> {
    /// `send`: stamp it, deliver to one receiver.
    Send { to: ReceiverId, value: T },
    /// `send_all`: stamp each in order (consecutive stamps), deliver to one receiver.
    SendMany { to: ReceiverId, values: Vec<T> },
    /// `broadcast`: stamp it, deliver a copy to every receiver.
    Broadcast { value: T, cloner: Cloner<T> },
    /// `multicast`: stamp it, deliver a copy to every member of a group.
    Multicast {
        group: crate::multicast::GroupId,
        value: T,
        cloner: Cloner<T>,
    },
    /// A receiver joins (`join`) or leaves a multicast group. Takes no stamp; through the data
    /// channel so that it falls exactly between the multicasts sent before and after it.
    GroupChange {
        group: crate::multicast::GroupId,
        member: ReceiverId,
        join: bool,
    },
    /// `forward`: already stamped; release in stamp order.
    Forward {
        to: ReceiverId,
        value: Option<T>,
        stamp: usize,
    },
    /// `broadcast_forward`: already stamped; release in stamp order to everyone.
    BroadcastForward {
        value: Option<T>,
        stamp: usize,
        cloner: Cloner<T>,
    },
    /// `skip_through`: every stamp up to `through` not forwarded yet carries nothing.
    Skip { through: usize },
}

/// A handle joining or leaving.
pub(crate) enum Control<T> {
    /// `Dispatcher::new`: a receiver and its first sender.
    NewReceiver {
        id: ReceiverId,
        inbox: Box<crate::inbox::InboxWriter<T>>,
        /// Journaled dispatchers: the receiver's journal id and where its replay plan goes.
        journal: Option<Box<crate::engine::journaling::JournalJoin>>,
    },
    /// A sender for `0` was created (`clone`).
    SenderJoined(ReceiverId),
    /// A sender for `0` was dropped.
    SenderLeft(ReceiverId),
    /// A multicaster that keeps its group's history was made: each multicast is also
    /// journaled under `id`.
    GroupArchived {
        group: crate::multicast::GroupId,
        id: crate::journal::frame::JournalId,
    },
    /// A multicaster was dropped: its group is forgotten once the data queued before this
    /// is handled, and it stops holding `members` open.
    GroupDropped {
        group: crate::multicast::GroupId,
        members: Vec<ReceiverId>,
    },
    /// A broadcaster was created.
    BroadcasterJoined,
    /// A broadcaster was dropped.
    BroadcasterLeft,
}
