//! Sending without blocking a thread (the `async` feature): [`ClockedSender::send_async`] and
//! [`ClockedSender::forward_async`].
//!
//! # What a send waits for, and who wakes it
//!
//! * **Room in the intake.** A full intake is the back-pressure `send` blocks on. The task
//!   registers in the dispatcher's list of intake waiters, tries once more, and returns
//!   `Pending`; the dispatcher, after each batch it took from the intake, wakes the listed
//!   tasks. Both sides write, `fence(SeqCst)`, then read (the clock's handshake): either the
//!   retry finds room, or the dispatcher finds the registration. With bound 0 the intake is a
//!   rendezvous, which a task cannot wait on: the send then blocks the thread, as `send` does.
//! * **The reorder window** (`forward_async`): the task registers in the clock's forwarder list
//!   for the next publish and re-checks, as a parked forwarder does.
//! * **A spilling receiver's disk gate** is not waited on: a held receiver fails the send at
//!   once (`DiskFull` or `DiskFailed`), whatever the policy, rather than block the executor.
//!
//! Cancel safety: the value lives in the future until a poll hands it to the intake (then
//! `Ready(Ok)`); dropping the future before that drops the value unsent and removes the
//! registrations. A message is never half-sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::task::{Context, Poll, Waker};

use crate::error::{Mode, SendError, SendErrorKind};
use crate::intake::Envelope;
use crate::link::{Link, Shared, Submitted};
use crate::multicast::ClockedMulticaster;
use crate::sender::ClockedSender;
use crate::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::sync::Mutex;

/// Tasks waiting for room in a dispatcher's intake.
pub(crate) struct IntakeWaiters {
    waiting: AtomicUsize,
    tasks: Mutex<Vec<Waker>>,
}

impl IntakeWaiters {
    pub(crate) fn new() -> Self {
        IntakeWaiters {
            waiting: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// A task: wake me when the dispatcher has taken from the intake. Re-check afterwards.
    fn register(&self, waker: &Waker) {
        let mut tasks = self.tasks.lock();
        if !tasks.iter().any(|task| task.will_wake(waker)) {
            tasks.push(waker.clone());
        }
        self.waiting.store(tasks.len(), Ordering::Relaxed);
        drop(tasks);
        fence(Ordering::SeqCst);
    }

    /// The dispatcher, after taking from the intake (or when it stops): wakes every task
    /// waiting for room. One fence and one load when nobody waits.
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock());
        self.waiting.store(0, Ordering::Relaxed);
        for task in tasks {
            task.wake();
        }
    }
}

/// Keys for tasks in the clock's forwarder list: odd, so they never equal an address (the keys
/// of threads and receivers), and unique.
fn task_key() -> usize {
    static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    (NEXT.fetch_add(1, StdOrdering::Relaxed) << 1) | 1
}

impl<T> ClockedSender<T> {
    /// Sends `value` as [`send`](Self::send) does, waiting for room in a full intake without
    /// blocking the thread (the dispatcher wakes the task after each batch it takes). A
    /// spilling receiver whose sends are held fails it at once (`DiskFull` or `DiskFailed`)
    /// rather than block the executor; with bound 0 it blocks like `send`. On a journaled
    /// dispatcher the future completes once the message is in the intake, not once it is
    /// stored, even under [`Durability::Always`](crate::Durability::Always), and
    /// [`flush`](Self::flush) does not wait for it: use `send` where that matters.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let d = clocked_dispatch::new(1);
    /// let (tx, rx) = d.new("tx", "rx");
    /// let reader = std::thread::spawn(move || rx.map(|(v, _)| v).flatten().count());
    /// for i in 0..100 {
    ///     tx.send_async(i).await.unwrap(); // the intake holds 1: most sends wait
    /// }
    /// drop(tx);
    /// assert_eq!(reader.join().unwrap(), 100);
    /// # });
    /// ```
    pub fn send_async(&self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            sender: self,
            value: Some(value),
            stamp: None,
            clock_key: None,
        }
    }

    /// Forwards as [`forward`](Self::forward) does, waiting for the reorder window and for
    /// room in the intake without blocking the thread. The same deadlock note applies: the
    /// wait for the window ends only when the smaller stamps are forwarded by someone.
    pub fn forward_async(&self, value: Option<T>, stamp: usize) -> ForwardFuture<'_, T> {
        ForwardFuture {
            inner: SendFuture {
                sender: self,
                value: None,
                stamp: Some(stamp),
                clock_key: None,
            },
            value: Some(value),
        }
    }
}

/// The future of [`ClockedSender::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    sender: &'a ClockedSender<T>,
    value: Option<T>,
    /// `Some` for a forward: the stamp it carries.
    stamp: Option<usize>,
    /// Its key in the clock's forwarder list while registered there.
    clock_key: Option<usize>,
}

/// The future of [`ClockedSender::forward_async`].
#[must_use = "futures do nothing unless polled"]
pub struct ForwardFuture<'a, T> {
    inner: SendFuture<'a, T>,
    value: Option<Option<T>>,
}

impl<T> SendFuture<'_, T> {
    fn shared(&self) -> &Shared {
        &self.sender.link().shared
    }

    /// For a forward: `Ready(Ok)` once the stamp is within the window, `Pending` with the
    /// task registered for the next publish, or the error.
    fn poll_window(
        &mut self,
        cx: &mut Context<'_>,
        stamp: usize,
    ) -> Poll<Result<(), SendErrorKind>> {
        let verdict = |shared: &Shared| match shared.check_stamp(stamp) {
            Err(SendErrorKind::StampTooFarAhead { .. }) if shared.clock.is_stopped() => {
                Some(Err(SendErrorKind::DispatcherGone))
            }
            Err(SendErrorKind::StampTooFarAhead { .. }) => None,
            other => Some(other),
        };
        if let Some(verdict) = verdict(self.shared()) {
            return Poll::Ready(verdict);
        }
        let key = *self.clock_key.get_or_insert_with(task_key);
        self.shared().clock.forwarders.sleep_task(key, cx.waker());
        match verdict(self.shared()) {
            Some(verdict) => Poll::Ready(verdict),
            None => Poll::Pending,
        }
    }

    /// Hands `envelope` to the intake, or registers for room and gives it back.
    fn submit(&self, cx: &mut Context<'_>, envelope: Envelope<T>) -> Submit<T> {
        submit_or_register(self.sender.link(), cx, envelope)
    }
}

/// Hands `envelope` to the intake, or registers the task for room and gives it back.
fn submit_or_register<T>(link: &Link<T>, cx: &mut Context<'_>, envelope: Envelope<T>) -> Submit<T> {
    let envelope = match link.try_submit(envelope) {
        Submitted::Done => return Submit::Done,
        Submitted::Gone(envelope) => {
            return Submit::Failed(envelope, SendErrorKind::DispatcherGone)
        }
        Submitted::Full(envelope) if link.intake_is_rendezvous() => {
            // A rendezvous cannot be waited on by a task: block, as `send` does.
            return match link.submit(envelope) {
                Ok(_) => Submit::Done,
                Err(envelope) => Submit::Failed(envelope, SendErrorKind::DispatcherGone),
            };
        }
        Submitted::Full(envelope) => envelope,
    };
    link.shared.intake_waiters.register(cx.waker());
    match link.try_submit(envelope) {
        Submitted::Done => Submit::Done,
        Submitted::Gone(envelope) => Submit::Failed(envelope, SendErrorKind::DispatcherGone),
        Submitted::Full(envelope) => Submit::Wait(envelope),
    }
}

/// What one attempt to hand an envelope to the intake did.
enum Submit<T> {
    Done,
    /// Still full; the task is registered for the dispatcher's wake-up.
    Wait(Envelope<T>),
    Failed(Envelope<T>, SendErrorKind),
}

// The value is moved in and out by value, never pinned: the futures may move freely.
impl<T> Unpin for SendFuture<'_, T> {}
impl<T> Unpin for ForwardFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(value) = self.value.take() else {
            panic!("SendFuture polled after it completed");
        };
        if let Err(kind) = self.sender.check_send_now() {
            return Poll::Ready(Err(SendError::new(kind, value)));
        }
        let envelope = Envelope::Send {
            to: self.sender.target(),
            value,
        };
        match self.submit(cx, envelope) {
            Submit::Done => Poll::Ready(Ok(())),
            Submit::Wait(Envelope::Send { value, .. }) => {
                self.value = Some(value);
                Poll::Pending
            }
            Submit::Failed(Envelope::Send { value, .. }, kind) => {
                Poll::Ready(Err(SendError::new(kind, value)))
            }
            Submit::Wait(_) | Submit::Failed(..) => {
                unreachable!("the intake hands back the envelope it was given")
            }
        }
    }
}

impl<T> Future for ForwardFuture<'_, T> {
    type Output = Result<(), SendError<Option<T>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(value) = this.value.take() else {
            panic!("ForwardFuture polled after it completed");
        };
        let stamp = this.inner.stamp.unwrap_or(0);
        let checked =
            this.inner
                .shared()
                .claim_mode(Mode::Forwarding)
                .and_then(|()| match &value {
                    Some(_) => this.inner.sender.check_alive_and_gate(),
                    None => Ok(()),
                });
        if let Err(kind) = checked {
            return Poll::Ready(Err(SendError::new(kind, value)));
        }
        match this.inner.poll_window(cx, stamp) {
            Poll::Pending => {
                this.value = Some(value);
                return Poll::Pending;
            }
            Poll::Ready(Err(kind)) => return Poll::Ready(Err(SendError::new(kind, value))),
            Poll::Ready(Ok(())) => {}
        }
        let envelope = Envelope::Forward {
            to: this.inner.sender.target(),
            value,
            stamp,
        };
        match this.inner.submit(cx, envelope) {
            Submit::Done => Poll::Ready(Ok(())),
            Submit::Wait(Envelope::Forward { value, .. }) => {
                this.value = Some(value);
                Poll::Pending
            }
            Submit::Failed(Envelope::Forward { value, .. }, kind) => {
                Poll::Ready(Err(SendError::new(kind, value)))
            }
            Submit::Wait(_) | Submit::Failed(..) => {
                unreachable!("the intake hands back the envelope it was given")
            }
        }
    }
}

impl<T: Clone> ClockedMulticaster<T> {
    /// Multicasts as [`multicast`](Self::multicast) does, waiting for room in a full intake
    /// without blocking the thread (the dispatcher wakes the task after each batch it takes).
    /// With bound 0 it blocks like `multicast`. Cancel safe, as
    /// [`send_async`](ClockedSender::send_async) is. On a journaled dispatcher it completes
    /// once the message is in the intake, not once it is stored, even under
    /// [`Durability::Always`](crate::Durability::Always): use `multicast` where that matters.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let d = clocked_dispatch::new(1);
    /// let (tx, rx) = d.new("tx", "rx");
    /// let topic = d.multicaster("topic").unwrap();
    /// topic.add(&tx).unwrap();
    /// let reader = std::thread::spawn(move || rx.map(|(v, _)| v).flatten().count());
    /// for i in 0..100 {
    ///     topic.multicast_async(i).await.unwrap();
    /// }
    /// drop((tx, topic));
    /// assert_eq!(reader.join().unwrap(), 100);
    /// # });
    /// ```
    pub fn multicast_async(&self, value: T) -> MulticastFuture<'_, T> {
        MulticastFuture {
            multicaster: self,
            value: Some(value),
        }
    }
}

/// The future of [`ClockedMulticaster::multicast_async`].
#[must_use = "futures do nothing unless polled"]
pub struct MulticastFuture<'a, T: Clone> {
    multicaster: &'a ClockedMulticaster<T>,
    value: Option<T>,
}

impl<T: Clone> Unpin for MulticastFuture<'_, T> {}

impl<T: Clone> Future for MulticastFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(value) = self.value.take() else {
            panic!("MulticastFuture polled after it completed");
        };
        if let Err(kind) = self.multicaster.check_now() {
            return Poll::Ready(Err(SendError::new(kind, value)));
        }
        let envelope = self.multicaster.envelope(value);
        match submit_or_register(self.multicaster.link(), cx, envelope) {
            Submit::Done => Poll::Ready(Ok(())),
            Submit::Wait(Envelope::Multicast { value, .. }) => {
                self.value = Some(value);
                Poll::Pending
            }
            Submit::Failed(Envelope::Multicast { value, .. }, kind) => {
                Poll::Ready(Err(SendError::new(kind, value)))
            }
            Submit::Wait(_) | Submit::Failed(..) => {
                unreachable!("the intake hands back the envelope it was given")
            }
        }
    }
}

impl<T: Clone> std::fmt::Debug for MulticastFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MulticastFuture").finish_non_exhaustive()
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.clock_key.take() {
            self.shared().clock.forwarders.unregister(key);
        }
    }
}

impl<T> std::fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for ForwardFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardFuture")
            .field("stamp", &self.inner.stamp)
            .finish_non_exhaustive()
    }
}
