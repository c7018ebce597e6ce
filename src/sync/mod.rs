//! The one door through which the crate reaches for synchronisation.
//!
//! Every atomic, `Arc`, mutex, condvar, thread, parker and channel the crate uses is imported
//! from here, never from `std`, `parking_lot` or `crossbeam` directly. In a normal build these are
//! re-exports of the fast production types. Built with `RUSTFLAGS="--cfg loom"`, they become
//! [loom](https://docs.rs/loom)'s instrumented twins, so a loom model explores the crate's own
//! interleavings — the dispatcher thread becomes a loom thread, every atomic a loom atomic.
//!
//! crossbeam's channels and parker have no loom twin; under `cfg(loom)` the small replacements
//! in [`channel`] and [`parker`] stand in for them. They are deliberately simple (a mutex and a
//! condvar each) and offer exactly the subset of crossbeam's API the crate calls, with the same
//! semantics, so that what loom explores is *our* protocol on top of them.
//!
//! The layout follows tokio's `src/loom/`: one module, two worlds, chosen by `cfg`.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic;
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread;

    /// A mutex whose `lock` returns the guard directly (no poisoning).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

    pub(crate) use crossbeam_utils::sync::{Parker, Unparker};
    pub(crate) use crossbeam_utils::Backoff;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic;
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread;

    pub(crate) use super::backoff::Backoff;
    pub(crate) use super::mutex::Mutex;
    pub(crate) use super::parker::{Parker, Unparker};
}

/// The crossbeam channels, plus the two-receiver select the dispatcher blocks in.
#[cfg(not(loom))]
pub(crate) mod channel {
    #[cfg(feature = "async")]
    pub(crate) use crossbeam_channel::TrySendError;
    pub(crate) use crossbeam_channel::{
        bounded, unbounded, Receiver, RecvError, SendTimeoutError, Sender,
    };

    /// Both ends of one channel.
    pub(crate) type Pair<T> = (Sender<T>, Receiver<T>);

    /// A bounded and an unbounded channel that can be waited on together with
    /// [`recv_either`]. (The loom twin needs to know the pair at creation.)
    pub(crate) fn select_pair<A, B>(cap: usize) -> (Pair<A>, Pair<B>) {
        (bounded(cap), unbounded())
    }

    /// What [`recv_either`] got.
    pub(crate) enum Either<A, B> {
        Left(A),
        Right(B),
    }

    /// Blocks until `left` or `right` has a message (preferring `right`), or both are
    /// disconnected and drained, in which case it returns `None`.
    pub(crate) fn recv_either<A, B>(
        left: &Receiver<A>,
        right: &Receiver<B>,
    ) -> Option<Either<A, B>> {
        crossbeam_channel::select_biased! {
            recv(right) -> got => match got {
                Ok(b) => Some(Either::Right(b)),
                Err(RecvError) => left.recv().ok().map(Either::Left),
            },
            recv(left) -> got => match got {
                Ok(a) => Some(Either::Left(a)),
                Err(RecvError) => right.recv().ok().map(Either::Right),
            },
        }
    }

    /// [`recv_either`] gave up waiting.
    #[derive(Debug)]
    pub(crate) struct TimedOut;

    /// Like [`recv_either`], giving up after `timeout` (which may then be spent waiting on
    /// one channel alone, once the other is disconnected).
    pub(crate) fn recv_either_timeout<A, B>(
        left: &Receiver<A>,
        right: &Receiver<B>,
        timeout: std::time::Duration,
    ) -> Result<Option<Either<A, B>>, TimedOut> {
        use crossbeam_channel::RecvTimeoutError::{Disconnected, Timeout};
        crossbeam_channel::select_biased! {
            recv(right) -> got => match got {
                Ok(b) => Ok(Some(Either::Right(b))),
                Err(RecvError) => match left.recv_timeout(timeout) {
                    Ok(a) => Ok(Some(Either::Left(a))),
                    Err(Timeout) => Err(TimedOut),
                    Err(Disconnected) => Ok(None),
                },
            },
            recv(left) -> got => match got {
                Ok(a) => Ok(Some(Either::Left(a))),
                Err(RecvError) => match right.recv_timeout(timeout) {
                    Ok(b) => Ok(Some(Either::Right(b))),
                    Err(Timeout) => Err(TimedOut),
                    Err(Disconnected) => Ok(None),
                },
            },
            default(timeout) => Err(TimedOut),
        }
    }
}

pub(crate) mod cell;

#[cfg(loom)]
mod backoff;
#[cfg(loom)]
pub(crate) mod channel;
#[cfg(loom)]
mod mutex;
#[cfg(loom)]
mod parker;

pub(crate) use imp::*;
