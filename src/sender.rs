//! The sending handles: [`ClockedSender`] (to one receiver) and [`ClockedBroadcaster`] (to all).
//!
//! A send does its checks on the caller's thread, where a typed error can be returned with the
//! value: the receiver's liveness flag, the dispatcher's mode (claimed atomically by the first
//! data message), for `forward` the stamp against the released clock (waiting, if it is beyond
//! the reorder window, until the window reaches it: see [`forward`](ClockedSender::forward),
//! in the `forward` submodule), and for a spilling
//! receiver its disk-full gate (see [`DiskFull`](crate::DiskFull)). Then it hands the message
//! to the dispatcher's intake, blocking only while the intake is full.
//!
//! Creating a handle registers it with the dispatcher and dropping it deregisters it, through
//! the never-blocking control channel: neither ever blocks, and neither can deadlock.

use std::fmt;

mod durable;
mod forward;

use crate::error::{HandleError, Mode, SendError, SendErrorKind};
use crate::inbox::InboxFlags;
use crate::intake::{Control, Envelope};
use crate::link::Link;
use crate::registry::ReceiverId;
use crate::sync::Arc;

/// The sending half of a clocked channel: delivers to one receiver, and lets every other
/// receiver of the dispatcher know that the clock has moved.
///
/// Cloning takes a name (`clone(name)`), as in 4.0.2. Names label senders (they show in
/// `Debug`); unlike 4.0.2 they need not be unique, since the dispatcher counts senders.
///
/// When the last sender of a receiver is dropped, and no [`ClockedBroadcaster`] exists, the
/// receiver returns what is buffered and then `Err(RecvError)`:
///
/// ```
/// use std::thread;
///
/// let d = clocked_dispatch::new(10);
/// let (tx_a, rx_a) = d.new("atx", "arx");
///
/// let tx_a1 = tx_a.clone("atx1");
/// let t1 = thread::spawn(move || tx_a1.send("a1").unwrap());
/// let tx_a2 = tx_a.clone("atx2");
/// let t2 = thread::spawn(move || tx_a2.send("a2").unwrap());
///
/// drop(tx_a);
/// assert_eq!(rx_a.count(), 2);
/// # t1.join().unwrap(); t2.join().unwrap();
/// ```
pub struct ClockedSender<T> {
    name: String,
    target: ReceiverId,
    receiver: Arc<InboxFlags>,
    link: Link<T>,
    /// Journaled: 1 + the intake position (or stamp, when forwarding) of the last message
    /// sent; 0 before the first. See [`flush`](Self::flush).
    last_sent: std::sync::atomic::AtomicU64,
}

impl<T> ClockedSender<T> {
    /// A sender whose join the caller has already announced to the dispatcher.
    pub(crate) fn joined(
        name: String,
        target: ReceiverId,
        receiver: Arc<InboxFlags>,
        link: Link<T>,
    ) -> Self {
        ClockedSender {
            name,
            target,
            receiver,
            link,
            last_sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// This sender's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The checks `send` and `send_all` make before handing values over: the receiver is
    /// alive, and the dispatcher is (or now becomes) serializing.
    fn check_send(&self) -> Result<(), SendErrorKind> {
        if !self.receiver.receiver_alive() {
            return Err(SendErrorKind::ReceiverGone);
        }
        self.link.shared.claim_mode(Mode::Serializing)?;
        self.admit()
    }

    /// The link to the dispatcher.
    pub(crate) fn link(&self) -> &Link<T> {
        &self.link
    }

    /// The receiver this sender targets.
    pub(crate) fn target(&self) -> ReceiverId {
        self.target
    }

    /// Whether this sender's receiver is still alive.
    pub(crate) fn receiver_alive(&self) -> bool {
        self.receiver.receiver_alive()
    }

    /// [`check_send`](Self::check_send) without waiting at a spilling receiver's gate.
    #[cfg(feature = "async")]
    pub(crate) fn check_send_now(&self) -> Result<(), SendErrorKind> {
        self.link.shared.claim_mode(Mode::Serializing)?;
        self.check_alive_and_gate()
    }

    /// The receiver is alive and, if it spills, its sends are not held (no waiting).
    #[cfg(feature = "async")]
    pub(crate) fn check_alive_and_gate(&self) -> Result<(), SendErrorKind> {
        if !self.receiver.receiver_alive() {
            return Err(SendErrorKind::ReceiverGone);
        }
        match self.receiver.spill() {
            Some(spill) => spill.try_admit(),
            None => Ok(()),
        }
    }

    /// The disk-full gate of a spilling receiver (see [`DiskFull`](crate::DiskFull)): may
    /// wait, or fail under `Reject`.
    fn admit(&self) -> Result<(), SendErrorKind> {
        let Some(spill) = self.receiver.spill() else {
            return Ok(());
        };
        spill.admit()?;
        if self.receiver.receiver_alive() {
            Ok(())
        } else {
            Err(SendErrorKind::ReceiverGone)
        }
    }

    /// Sends `value` to this sender's receiver; the dispatcher assigns it the next stamp, and
    /// every other receiver will see that stamp as a watermark.
    ///
    /// Blocks while the dispatcher's intake is full (capacity `bound`; with bound 0 until the
    /// dispatcher takes the message). `Ok` means the dispatcher accepted the message: it will
    /// reach the receiver unless the receiver is dropped first.
    ///
    /// # Errors
    ///
    /// The value comes back in a [`SendError`] when the receiver is gone
    /// ([`ReceiverGone`](SendErrorKind::ReceiverGone)), the dispatcher is in forwarding mode
    /// ([`WrongMode`](SendErrorKind::WrongMode)), its thread has stopped, or the receiver
    /// spills and its disk budget is used up under [`DiskFull::Reject`](crate::DiskFull)
    /// ([`DiskFull`](SendErrorKind::DiskFull)). Under `DiskFull::Block` the send waits for the
    /// receiver to free room instead.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if let Err(kind) = self.check_send() {
            return Err(SendError::new(kind, value));
        }
        let envelope = Envelope::Send {
            to: self.target,
            value,
        };
        let position = self
            .link
            .submit(envelope)
            .map_err(|envelope| match envelope {
                Envelope::Send { value, .. } => {
                    SendError::new(SendErrorKind::DispatcherGone, value)
                }
                // `submit` hands back the envelope it was given, which is a `Send`.
                _ => unreachable!("submit returned a different envelope"),
            })?;
        // One load and a branch when the dispatcher has no journal.
        if self.link.shared.journal.is_some() {
            return self.journaled_send(position);
        }
        Ok(())
    }

    /// Sends every value of `values`, in order, as repeated [`send`](Self::send)s would: each
    /// gets its own stamp, in iteration order, and other receivers see them as watermarks.
    /// Returns how many were sent.
    ///
    /// Faster than a loop of `send`: values travel to the dispatcher in chunks of up to
    /// [`SEND_ALL_CHUNK`](crate::SEND_ALL_CHUNK), one intake slot and one hand-off per chunk
    /// (one allocation per chunk, too). The stamps of one chunk are consecutive: no other
    /// sender's message falls between them.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send). The error holds the values of the current chunk that were not
    /// sent (in order); values `values` had not yet yielded stay in the iterator, so pass
    /// `iter.by_ref()` to keep them.
    ///
    /// ```
    /// let d = clocked_dispatch::new(16);
    /// let (tx, rx) = d.new("tx", "rx");
    /// assert_eq!(tx.send_all(0..5).unwrap(), 5);
    /// let mut got = Vec::new();
    /// while got.len() < 5 {
    ///     rx.recv_many(&mut got, 5).unwrap();
    /// }
    /// assert_eq!(got, (0..5).map(|v| (Some(v), v as usize + 1)).collect::<Vec<_>>());
    /// ```
    pub fn send_all<I: IntoIterator<Item = T>>(
        &self,
        values: I,
    ) -> Result<usize, SendError<Vec<T>>> {
        let mut values = values.into_iter();
        let mut sent = 0;
        loop {
            let chunk: Vec<T> = values.by_ref().take(crate::SEND_ALL_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(sent);
            }
            if let Err(kind) = self.check_send() {
                return Err(SendError::new(kind, chunk));
            }
            let count = chunk.len();
            let envelope = Envelope::SendMany {
                to: self.target,
                values: chunk,
            };
            let position = match self.link.submit(envelope) {
                Ok(position) => position,
                Err(envelope) => {
                    return Err(match envelope {
                        Envelope::SendMany { values, .. } => {
                            SendError::new(SendErrorKind::DispatcherGone, values)
                        }
                        // `submit` hands back the envelope it was given, a `SendMany`.
                        _ => unreachable!("submit returned a different envelope"),
                    });
                }
            };
            if let Err(not_stored) = self.journaled_sent(position) {
                if !not_stored.values.is_empty() {
                    return Err(SendError::new(not_stored.kind, not_stored.values));
                }
            }
            sent += count;
        }
    }

    /// Creates another sender, named `name`, for the same receiver.
    ///
    /// If the receiver is already gone the new sender still works as a handle, but its sends
    /// fail with [`ReceiverGone`](SendErrorKind::ReceiverGone); use
    /// [`try_clone`](Self::try_clone) to learn it at once.
    pub fn clone<S: Into<String>>(&self, name: S) -> ClockedSender<T> {
        self.link.control(Control::SenderJoined(self.target));
        ClockedSender::joined(
            name.into(),
            self.target,
            self.receiver.clone(),
            self.link.clone(),
        )
    }

    /// Like [`clone`](Self::clone), but fails if the receiver has been dropped or the
    /// dispatcher thread has stopped.
    pub fn try_clone<S: Into<String>>(&self, name: S) -> Result<ClockedSender<T>, HandleError> {
        if !self.receiver.receiver_alive() {
            return Err(HandleError::ReceiverGone);
        }
        if !self.link.control(Control::SenderJoined(self.target)) {
            return Err(HandleError::DispatcherGone);
        }
        Ok(ClockedSender::joined(
            name.into(),
            self.target,
            self.receiver.clone(),
            self.link.clone(),
        ))
    }
}

impl<T: Clone> ClockedSender<T> {
    /// Turns this sender into a broadcaster with the same name: from now on it sends to every
    /// receiver. While any broadcaster exists, no receiver of the dispatcher closes.
    pub fn into_broadcaster(self) -> ClockedBroadcaster<T> {
        // Join first, then leave (when `self` drops): the receiver is never seen without a
        // sender or broadcaster in between.
        self.link.control(Control::BroadcasterJoined);
        ClockedBroadcaster {
            name: self.name.clone(),
            link: self.link.clone(),
            last_sent: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<T> Drop for ClockedSender<T> {
    fn drop(&mut self) {
        self.link.control(Control::SenderLeft(self.target));
    }
}

impl<T> fmt::Debug for ClockedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockedSender")
            .field("name", &self.name)
            .field("receiver_alive", &self.receiver.receiver_alive())
            .finish_non_exhaustive()
    }
}

/// A sender that delivers every message to every receiver of the dispatcher. Made with
/// [`ClockedSender::into_broadcaster`].
///
/// While a broadcaster exists, no receiver closes, even one whose own senders are all gone.
///
/// ```
/// use std::sync::mpsc;
///
/// let m = clocked_dispatch::new(10);
/// let (tx_a, rx_a) = m.new("atx", "arx");
/// let tx = tx_a.into_broadcaster();
/// // A stays open: a broadcaster exists, although A's own senders are gone.
///
/// let (tx_b, rx_b) = m.new("btx", "brx");
/// tx.broadcast("1").unwrap();
/// let x = rx_a.recv().unwrap();
/// assert_eq!(x.0, Some("1"));
/// assert_eq!(rx_b.recv(), Ok(x));
///
/// // Unicast still works, and A sees it as a watermark.
/// tx_b.send("2").unwrap();
/// let x = rx_b.recv().unwrap();
/// assert_eq!(x.0, Some("2"));
/// assert_eq!(rx_a.recv(), Ok((None, x.1)));
///
/// drop(tx);
/// assert_eq!(rx_a.recv(), Err(mpsc::RecvError)); // no sender, no broadcaster: closed
/// assert_eq!(rx_b.try_recv(), Err(mpsc::TryRecvError::Empty)); // tx_b still exists
/// drop(tx_b);
/// assert_eq!(rx_b.recv(), Err(mpsc::RecvError));
/// ```
///
/// Forwarding broadcast:
///
/// ```
/// let m = clocked_dispatch::new(10);
/// let (tx_a, rx_a) = m.new("atx", "arx");
/// let (_tx_b, rx_b) = m.new("btx", "brx");
/// let (tx_c, rx_c) = m.new("ctx", "crx");
///
/// let tx = tx_a.into_broadcaster();
/// tx.broadcast_forward(Some("1"), 1).unwrap();
/// assert_eq!(rx_a.recv().unwrap(), (Some("1"), 1));
/// assert_eq!(rx_b.recv().unwrap(), (Some("1"), 1));
/// assert_eq!(rx_c.recv().unwrap(), (Some("1"), 1));
///
/// tx_c.forward(Some("c"), 2).unwrap();
/// assert_eq!(rx_a.recv().unwrap(), (None, 2));
/// assert_eq!(rx_b.recv().unwrap(), (None, 2));
/// assert_eq!(rx_c.recv().unwrap(), (Some("c"), 2));
/// ```
pub struct ClockedBroadcaster<T: Clone> {
    name: String,
    link: Link<T>,
    /// Journaled: what [`flush`](Self::flush) waits for (see `durable`).
    last_sent: std::sync::atomic::AtomicU64,
}

impl<T: Clone> ClockedBroadcaster<T> {
    /// This broadcaster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a copy of `value` to every receiver; the dispatcher assigns one stamp to all.
    ///
    /// Blocks while the intake is full. The dispatcher delivers to each receiver in turn and
    /// waits on any whose inbox is full, so a broadcast moves at the pace of the slowest
    /// receiver.
    ///
    /// # Errors
    ///
    /// The value comes back if the dispatcher is in forwarding mode or its thread has stopped.
    pub fn broadcast(&self, value: T) -> Result<(), SendError<T>> {
        let shared = &self.link.shared;
        if let Err(kind) = shared
            .claim_mode(Mode::Serializing)
            .and_then(|()| shared.admit_broadcast())
        {
            return Err(SendError::new(kind, value));
        }
        let envelope = Envelope::Broadcast {
            value,
            cloner: T::clone,
        };
        let position = self
            .link
            .submit(envelope)
            .map_err(|envelope| match envelope {
                Envelope::Broadcast { value, .. } => {
                    SendError::new(SendErrorKind::DispatcherGone, value)
                }
                // `submit` hands back the envelope it was given, which is a `Broadcast`.
                _ => unreachable!("submit returned a different envelope"),
            })?;
        if self.link.shared.journal.is_none() {
            return Ok(());
        }
        self.mark_sent(position);
        match self.link.settle_position(position) {
            Ok(()) => Ok(()),
            Err(mut not_stored) => match not_stored.values.pop() {
                Some(value) => Err(SendError::new(not_stored.kind, value)),
                None => Ok(()),
            },
        }
    }

    /// Creates another broadcaster, named `name`.
    pub fn clone<S: Into<String>>(&self, name: S) -> ClockedBroadcaster<T> {
        self.link.control(Control::BroadcasterJoined);
        ClockedBroadcaster {
            name: name.into(),
            link: self.link.clone(),
            last_sent: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<T: Clone> Drop for ClockedBroadcaster<T> {
    fn drop(&mut self) {
        self.link.control(Control::BroadcasterLeft);
    }
}

impl<T: Clone> fmt::Debug for ClockedBroadcaster<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockedBroadcaster")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
