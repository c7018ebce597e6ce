//! Forwarding: `forward`, `try_forward` and `forward_timeout` on [`ClockedSender`], and their
//! broadcasting twins on [`ClockedBroadcaster`].
//!
//! A forwarded stamp must fall within the reorder window above the released clock, since the
//! dispatcher holds early stamps in a ring of that size. `forward` waits until it does (the
//! window's back-pressure, as a full bounded channel's); `try_forward` fails at once with
//! [`StampTooFarAhead`](SendErrorKind::StampTooFarAhead); `forward_timeout` waits up to a
//! deadline. The wait parks in the clock's forwarder list and is woken by the dispatcher's next
//! publish, or by the clock stopping when the dispatcher thread ends (see [`crate::clock`]).

use std::time::{Duration, Instant};

use super::{ClockedBroadcaster, ClockedSender};
use crate::error::{Mode, SendError, SendErrorKind};
use crate::intake::Envelope;
use crate::link::Link;

/// Whether a forward waits for the reorder window, and until when.
#[derive(Clone, Copy)]
enum Wait {
    /// Fail with `StampTooFarAhead` instead.
    No,
    /// Wait, until the deadline if there is one (for the intake as well).
    Until(Option<Instant>),
}

impl Wait {
    fn timeout(timeout: Duration) -> Self {
        // A timeout too long to represent is no deadline at all.
        Wait::Until(Instant::now().checked_add(timeout))
    }
}

/// The steps every forward takes: claim forwarding mode, check (or wait for) the window, pass
/// the caller's `admit` gate, hand the envelope to the intake.
fn forward_through<T>(
    link: &Link<T>,
    value: Option<T>,
    stamp: usize,
    wait: Wait,
    admit: impl FnOnce(&Option<T>) -> Result<(), SendErrorKind>,
    envelope: impl FnOnce(Option<T>) -> Envelope<T>,
) -> Result<(), SendError<Option<T>>> {
    let shared = &link.shared;
    let checked = shared
        .claim_mode(Mode::Forwarding)
        .and_then(|()| match wait {
            Wait::No => shared.check_stamp(stamp),
            Wait::Until(deadline) => shared.wait_for_window(stamp, deadline),
        })
        .and_then(|()| admit(&value));
    if let Err(kind) = checked {
        return Err(SendError::new(kind, value));
    }
    let deadline = match wait {
        Wait::No => None,
        Wait::Until(deadline) => deadline,
    };
    // Journaled under `Always`, a forward does not wait to be stored: its stamp can only be
    // written once every lower one has been forwarded, which may be this thread's next call.
    // `flush` waits.
    link.submit_by(envelope(value), deadline)
        .map(drop)
        .map_err(|(envelope, kind)| SendError::new(kind, forwarded_value(envelope)))
}

/// The value of a forwarding envelope the intake handed back.
fn forwarded_value<T>(envelope: Envelope<T>) -> Option<T> {
    match envelope {
        Envelope::Forward { value, .. } | Envelope::BroadcastForward { value, .. } => value,
        // `submit_by` hands back the envelope it was given, which is a forwarding one.
        _ => unreachable!("submit returned a different envelope"),
    }
}

impl<T> ClockedSender<T> {
    /// Forwards a message already stamped `stamp` by an upstream dispatcher. The dispatcher
    /// releases stamps strictly in order: this message waits until every smaller stamp has been
    /// forwarded (with or without data) by some sender.
    ///
    /// `forward(None, stamp)` accounts for a stamp without data, for example one a pipeline
    /// stage filtered out, so that later stamps are not held back waiting for it.
    ///
    /// # Blocking
    ///
    /// If `stamp` is more than [`reorder_window`](crate::Builder::reorder_window) ahead of the
    /// released clock (the stamp through which everything has been delivered), `forward`
    /// waits until the clock comes within the window of it, as a full bounded channel makes
    /// its sender wait: the thread parks, and the dispatcher wakes it when it publishes the
    /// clock. Then, like [`send`](Self::send), it waits while the intake is full. Use
    /// [`try_forward`](Self::try_forward) to get
    /// [`StampTooFarAhead`](SendErrorKind::StampTooFarAhead) instead of waiting, or
    /// [`forward_timeout`](Self::forward_timeout) to wait a bounded time.
    ///
    /// # Deadlock
    ///
    /// The wait ends only when every stamp up to `stamp - reorder_window` has been forwarded,
    /// with or without data, by some sender. If those stamps can only come from the calling
    /// thread itself, it waits forever: a single thread that forwards its stamps out of order
    /// by more than the window (say stamp 20, then stamp 1, with a window of 10) deadlocks in
    /// the first call, as a thread that receives on a channel only it sends to. Senders that
    /// each forward their own stamps in increasing order (as [pipeline](crate::pipeline)
    /// stage workers do) cannot deadlock this way: the sender holding the lowest missing stamp
    /// is always within the window. Dropping every other handle does not end the wait (this
    /// sender keeps the dispatcher running); it ends with
    /// [`DispatcherGone`](SendErrorKind::DispatcherGone) only if the dispatcher thread stops
    /// (it panics when a user's `Clone` panics during a broadcast).
    ///
    /// # Errors
    ///
    /// The value comes back in a [`SendError`] when the receiver is gone, the dispatcher is in
    /// serializing mode, its thread has stopped, or `stamp` has already been released
    /// ([`StaleStamp`](SendErrorKind::StaleStamp), at once, without waiting). A stamp that was
    /// already forwarded but not yet released is a duplicate the dispatcher drops and counts in
    /// [`DispatcherStats::duplicate_stamps`](crate::DispatcherStats::duplicate_stamps); a stale
    /// stamp that races past this check is counted in
    /// [`stale_stamps`](crate::DispatcherStats::stale_stamps).
    ///
    /// ```
    /// use std::thread;
    ///
    /// let d = clocked_dispatch::Builder::new().bound(4).reorder_window(2).build();
    /// let (even, rx) = d.new("even", "rx");
    /// let odd = even.clone("odd");
    /// // `even` runs far ahead of the window: it waits for `odd` instead of failing.
    /// let ahead = thread::spawn(move || {
    ///     (2..=20).step_by(2).try_for_each(|s| even.forward(Some(s), s))
    /// });
    /// let behind = thread::spawn(move || {
    ///     (1..=19).step_by(2).try_for_each(|s| odd.forward(Some(s), s))
    /// });
    /// let got: Vec<usize> = rx.filter_map(|(v, _)| v).collect(); // read while they run
    /// assert_eq!(got, (1..=20).collect::<Vec<_>>());
    /// ahead.join().unwrap().unwrap();
    /// behind.join().unwrap().unwrap();
    /// ```
    pub fn forward(&self, value: Option<T>, stamp: usize) -> Result<(), SendError<Option<T>>> {
        self.forward_with(value, stamp, Wait::Until(None))
    }

    /// Like [`forward`](Self::forward), but fails at once instead of waiting for the reorder
    /// window: this is `forward` as it was before it waited. Like `send`, it still waits while
    /// the intake is full.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward), plus
    /// [`StampTooFarAhead`](SendErrorKind::StampTooFarAhead) when `stamp` is more than the
    /// reorder window ahead of the released clock.
    ///
    /// ```
    /// use clocked_dispatch::SendErrorKind;
    ///
    /// let d = clocked_dispatch::Builder::new().bound(4).reorder_window(4).build();
    /// let (tx, rx) = d.new("tx", "rx");
    /// let err = tx.try_forward(Some('x'), 10).unwrap_err();
    /// assert_eq!(
    ///     err.kind(),
    ///     SendErrorKind::StampTooFarAhead { stamp: 10, released: 0, window: 4 }
    /// );
    /// assert_eq!(err.into_inner(), Some('x')); // handed back
    /// tx.try_forward(Some('a'), 1).unwrap(); // within the window
    /// assert_eq!(rx.recv(), Ok((Some('a'), 1)));
    /// ```
    pub fn try_forward(&self, value: Option<T>, stamp: usize) -> Result<(), SendError<Option<T>>> {
        self.forward_with(value, stamp, Wait::No)
    }

    /// Like [`forward`](Self::forward), waiting at most `timeout` in all: for the reorder
    /// window to reach `stamp`, then for room in the intake. (A spilling receiver's
    /// [`DiskFull::Block`](crate::DiskFull::Block) gate, if it holds sends, still waits as
    /// for `send`.)
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward), plus [`Timeout`](SendErrorKind::Timeout) when the time
    /// runs out; the value comes back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use clocked_dispatch::SendErrorKind;
    ///
    /// let d = clocked_dispatch::Builder::new().bound(4).reorder_window(4).build();
    /// let (tx, rx) = d.new("tx", "rx");
    /// let err = tx.forward_timeout(Some('x'), 10, Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.kind(), SendErrorKind::Timeout);
    /// assert_eq!(err.into_inner(), Some('x'));
    /// for stamp in 1..=6 {
    ///     tx.forward(None, stamp).unwrap(); // stamps without data move the clock to 6
    /// }
    /// tx.forward_timeout(Some('x'), 10, Duration::from_secs(10)).unwrap(); // in the window now
    /// for stamp in 7..=9 {
    ///     tx.forward(None, stamp).unwrap();
    /// }
    /// let mut rx = rx;
    /// assert_eq!(rx.find(|(v, _)| v.is_some()), Some((Some('x'), 10)));
    /// ```
    pub fn forward_timeout(
        &self,
        value: Option<T>,
        stamp: usize,
        timeout: Duration,
    ) -> Result<(), SendError<Option<T>>> {
        self.forward_with(value, stamp, Wait::timeout(timeout))
    }

    /// Accounts, in one step, for every stamp up to `through` that has not been forwarded:
    /// each is a stamp without data. What the dispatcher holds below it is released, and the
    /// clock moves to `through`, so every receiver learns it (`(None, through)` or later).
    ///
    /// For a bridge that relays one upstream stream in stamp order and learns from its
    /// watermark that nothing for it is stamped up to `through` (a remote subscription does:
    /// the stamps between its messages are everyone else's traffic). `forward(None, s)` for
    /// each of those stamps would cost one dispatcher operation per stamp skipped; this costs
    /// one, whatever the distance. Stamps at or below the clock are ignored.
    ///
    /// A stamp up to `through` that another sender forwards afterwards is stale (rejected, or
    /// dropped and counted in [`stale_stamps`](crate::DispatcherStats::stale_stamps)): skip
    /// only stamps nobody else will forward.
    ///
    /// Does not wait for the reorder window (a skip holds nothing back); like
    /// [`send`](Self::send), waits while the intake is full.
    ///
    /// # Errors
    ///
    /// The dispatcher is in serializing mode ([`WrongMode`](SendErrorKind::WrongMode)), or its
    /// thread has stopped.
    ///
    /// ```
    /// let d = clocked_dispatch::Builder::new().bound(4).reorder_window(8).build();
    /// let (tx, rx) = d.new("bridge", "rx");
    /// tx.forward(Some("first"), 1).unwrap();
    /// tx.skip_through(1_000_000).unwrap(); // far beyond the window: one operation
    /// tx.forward(Some("next"), 1_000_003).unwrap();
    /// assert_eq!(rx.recv().unwrap(), (Some("first"), 1));
    /// let (value, stamp) = rx.recv().unwrap();
    /// assert!(value.is_none() && stamp >= 1_000_000); // the clock moved
    /// // 1_000_001 and 1_000_002 were never forwarded: "next" waits for them.
    /// tx.skip_through(1_000_002).unwrap();
    /// let mut rx = rx;
    /// assert_eq!(rx.find(|(v, _)| v.is_some()), Some((Some("next"), 1_000_003)));
    /// ```
    pub fn skip_through(&self, through: usize) -> Result<(), SendError<()>> {
        let shared = &self.link.shared;
        shared
            .claim_mode(crate::error::Mode::Forwarding)
            .map_err(|kind| SendError::new(kind, ()))?;
        if through <= shared.clock.read() {
            return Ok(());
        }
        self.link
            .submit_by(Envelope::Skip { through }, None)
            .map_err(|(_, kind)| SendError::new(kind, ()))?;
        self.mark_sent(through);
        Ok(())
    }

    fn forward_with(
        &self,
        value: Option<T>,
        stamp: usize,
        wait: Wait,
    ) -> Result<(), SendError<Option<T>>> {
        if value.is_some() && !self.receiver.receiver_alive() {
            return Err(SendError::new(SendErrorKind::ReceiverGone, value));
        }
        let target = self.target;
        let forwarded = forward_through(
            &self.link,
            value,
            stamp,
            wait,
            |value| match value {
                Some(_) => self.admit(),
                None => Ok(()), // a stamp without data takes no room
            },
            |value| Envelope::Forward {
                to: target,
                value,
                stamp,
            },
        );
        if forwarded.is_ok() {
            self.mark_sent(stamp);
        }
        forwarded
    }
}

impl<T: Clone> ClockedBroadcaster<T> {
    /// Forwards an already stamped message to every receiver, released in stamp order like
    /// [`ClockedSender::forward`]. `None` accounts for the stamp without data.
    ///
    /// Waits, as [`ClockedSender::forward`] does, while `stamp` is beyond the reorder window;
    /// the same deadlock note applies.
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::forward`], except that there is no single receiver to be gone.
    pub fn broadcast_forward(
        &self,
        value: Option<T>,
        stamp: usize,
    ) -> Result<(), SendError<Option<T>>> {
        self.broadcast_forward_with(value, stamp, Wait::Until(None))
    }

    /// Like [`broadcast_forward`](Self::broadcast_forward), but fails with
    /// [`StampTooFarAhead`](SendErrorKind::StampTooFarAhead) instead of waiting for the
    /// reorder window, as [`ClockedSender::try_forward`].
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::try_forward`], except that there is no single receiver to be gone.
    pub fn try_broadcast_forward(
        &self,
        value: Option<T>,
        stamp: usize,
    ) -> Result<(), SendError<Option<T>>> {
        self.broadcast_forward_with(value, stamp, Wait::No)
    }

    /// Like [`broadcast_forward`](Self::broadcast_forward), waiting at most `timeout`, as
    /// [`ClockedSender::forward_timeout`].
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::forward_timeout`], except that there is no single receiver to be
    /// gone.
    pub fn broadcast_forward_timeout(
        &self,
        value: Option<T>,
        stamp: usize,
        timeout: Duration,
    ) -> Result<(), SendError<Option<T>>> {
        self.broadcast_forward_with(value, stamp, Wait::timeout(timeout))
    }

    fn broadcast_forward_with(
        &self,
        value: Option<T>,
        stamp: usize,
        wait: Wait,
    ) -> Result<(), SendError<Option<T>>> {
        let shared = &self.link.shared;
        let forwarded = forward_through(
            &self.link,
            value,
            stamp,
            wait,
            |value| match value {
                Some(_) => shared.admit_broadcast(),
                None => Ok(()),
            },
            |value| Envelope::BroadcastForward {
                value,
                stamp,
                cloner: T::clone,
            },
        );
        if forwarded.is_ok() {
            self.mark_sent(stamp);
        }
        forwarded
    }
}
