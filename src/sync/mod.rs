//! The one door through which the crate reaches for synchronisation.
//!
//! Every atomic, `Arc`, mutex, condvar, thread, parker and channel the crate uses is imported
//! from here, never from `std`, `parking_lot` or `crossbeam` directly. In a normal build these are
//! re-exports of the fast production types. Built with `RUSTFLAGS="--cfg loom"`, they become
//! [loom](https://docs.rs/loom)'s instrumented twins, so a loom model explores the crate's own
//! interleavings — the dispatcher thread becomes a loom thread, every atomic a loom atomic.
//!
//! crossbeam's channel and parker have no loom twin; under `cfg(loom)` the small replacements
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

/// The crossbeam channel the control messages travel through (the data intake is the crate's
/// own, [`crate::intake::queue`]).
#[cfg(not(loom))]
pub(crate) mod channel {
    pub(crate) use crossbeam_channel::{unbounded, Receiver, Sender};
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
