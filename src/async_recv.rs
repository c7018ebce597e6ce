//! Receiving without a thread (the `async` feature): [`ClockedReceiver::recv_async`],
//! [`RecvFuture`], and [`StampedStream`], a `futures_core::Stream` over a [`ClockedReceiver`] or
//! a [`Fused`] stream.
//!
//! # Waking
//!
//! A poll reads once; if nothing is ready it registers the task's waker for the receiver's
//! two wake-up events (its dispatcher publishing the clock, and its inbox closing: the same
//! two a parked thread or a `Select` waits for), reads once more, and only then returns
//! `Pending`. Either the second read sees the event, or the event's wake-up sees the
//! registration (the clock's fence handshake; the inbox slot's lock). A registration wakes
//! once and then goes (see [`crate::waiter`]); the next `Pending` poll registers again.
//!
//! Cancel safety: a `RecvFuture` holds nothing: dropping it loses no message (a message is
//! only taken by the poll that returns it) and removes its registration. Thousands of tasks
//! waiting on receivers cost one entry each in their dispatcher's sleeper list, no thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::RecvError;
use std::task::{Context, Poll};

use crate::fuse::Fused;
use crate::receiver::ClockedReceiver;

impl<T> ClockedReceiver<T> {
    /// Waits, without blocking a thread, for a message or a new watermark: the `async` twin
    /// of [`recv`](Self::recv). Runtime-agnostic; cancel-safe (dropping the future loses
    /// nothing).
    ///
    /// Takes `&mut self`: a receiver is read by one task at a time, and so the future is
    /// `Send` (the receiver is not `Sync`), and can be spawned on a multi-threaded runtime.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let d = clocked_dispatch::new(4);
    /// let (tx, mut rx) = d.new("tx", "rx");
    /// std::thread::spawn(move || tx.send(5).unwrap());
    /// assert_eq!(rx.recv_async().await, Ok((Some(5), 1)));
    /// assert!(rx.recv_async().await.is_err()); // the sender is gone: closed
    /// # });
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_, T> {
        RecvFuture { receiver: self }
    }

    /// One poll of an asynchronous read (see the [module doc](self)).
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Option<T>, usize), RecvError>> {
        if let Some(read) = self.read_now() {
            self.unwatch_task();
            return Poll::Ready(read);
        }
        self.watch_task(cx.waker());
        match self.read_now() {
            Some(read) => {
                self.unwatch_task();
                Poll::Ready(read)
            }
            None => Poll::Pending,
        }
    }
}

/// The future of [`ClockedReceiver::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    receiver: &'a mut ClockedReceiver<T>,
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<(Option<T>, usize), RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.receiver.poll_recv(cx)
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        self.receiver.unwatch_task();
    }
}

impl<T> std::fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFuture").finish_non_exhaustive()
    }
}

/// A receiver or a fused stream as a `futures_core::Stream`; made by
/// [`ClockedReceiver::into_stream`] or [`Fused::into_stream`].
///
/// An adapter rather than an implementation on the receiver itself: receivers are iterators
/// (as in 4.0.2), and a type that is both an `Iterator` and a `Stream` makes every `map` or
/// `filter` ambiguous wherever `StreamExt` is imported.
///
/// ```
/// use futures::StreamExt;
///
/// let d = clocked_dispatch::new(4);
/// let (tx, rx) = d.new("tx", "rx");
/// std::thread::spawn(move || (1..=3).for_each(|i| tx.send(i).unwrap()));
/// let data: Vec<u32> = futures::executor::block_on(
///     rx.into_stream().filter_map(|(value, _stamp)| async move { value }).collect(),
/// );
/// assert_eq!(data, vec![1, 2, 3]);
/// ```
pub struct StampedStream<R> {
    inner: R,
}

impl<R> StampedStream<R> {
    /// The receiver (or fused stream) back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R> std::fmt::Debug for StampedStream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampedStream").finish_non_exhaustive()
    }
}

impl<T> ClockedReceiver<T> {
    /// This receiver as a `futures_core::Stream` of what [`recv`](Self::recv) returns; it
    /// ends when the receiver is closed and drained.
    pub fn into_stream(self) -> StampedStream<Self> {
        StampedStream { inner: self }
    }
}

impl<T> Fused<T> {
    /// This fused stream as a `futures_core::Stream`: the inputs' messages in stamp order,
    /// with watermarks. Only the slowest input is polled, and only its wake-ups wake the
    /// task: nothing else can let the stream move.
    pub fn into_stream(self) -> StampedStream<Self> {
        StampedStream { inner: self }
    }
}

impl<T> futures_core::Stream for StampedStream<ClockedReceiver<T>> {
    type Item = (Option<T>, usize);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_recv(cx).map(Result::ok)
    }
}

impl<T> futures_core::Stream for StampedStream<Fused<T>> {
    type Item = (Option<T>, usize);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_step(cx).map(Result::ok)
    }
}
