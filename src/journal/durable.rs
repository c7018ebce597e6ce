//! Waiting for durability: how far the journal has settled, for senders (and `flush`) that
//! wait until their message is stored, per [`Durability`](super::Durability).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// How far the journal has settled, for senders that wait for durability.
///
/// The dispatcher takes intake positions in order, so "every message handled before the
/// `n`-th is settled" is one number (`settled`); a forwarded message is settled once the clock
/// that released it is (`settled_stamp`). A batch whose write failed is settled too, but its
/// positions and stamps are listed in `failed`, so its waiters learn that their message was
/// not stored.
pub(crate) struct Durable {
    /// Intake positions below this are settled.
    settled: AtomicU64,
    /// Stamps up to this are settled.
    settled_stamp: AtomicU64,
    failed: Mutex<Vec<Failure>>,
    lock: Mutex<()>,
    changed: Condvar,
    waiting: AtomicUsize,
    stopped: AtomicBool,
}

/// A batch whose write failed: intake positions `[from, to)` and stamps `(after, through]`.
#[derive(Clone, Copy, Debug)]
struct Failure {
    from: u64,
    to: u64,
    after: u64,
    through: u64,
    kind: io::ErrorKind,
}

/// What a wait for durability found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    Stored,
    Failed(io::ErrorKind),
    /// The dispatcher stopped before settling it.
    Stopped,
}

/// Failures older than this many are forgotten (a waiter that old has long been answered).
const FAILURES_KEPT: usize = 1024;

impl Durable {
    pub(crate) fn new(stamp: usize) -> Self {
        Durable {
            settled: AtomicU64::new(0),
            settled_stamp: AtomicU64::new(stamp as u64),
            failed: Mutex::new(Vec::new()),
            lock: Mutex::new(()),
            changed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Dispatcher: everything before intake position `position` and up to stamp `stamp` is
    /// settled; if `failure` is given, what was settled since the last call failed to write.
    pub(crate) fn settle(&self, position: u64, stamp: u64, failure: Option<io::ErrorKind>) {
        if let Some(kind) = failure {
            let mut failed = self.failed.lock();
            if failed.len() >= FAILURES_KEPT {
                failed.remove(0);
            }
            failed.push(Failure {
                from: self.settled.load(Ordering::Relaxed),
                to: position,
                after: self.settled_stamp.load(Ordering::Relaxed),
                through: stamp,
                kind,
            });
        }
        self.settled.store(position, Ordering::Release);
        self.settled_stamp.fetch_max(stamp, Ordering::Release);
        self.notify();
    }

    /// How many threads wait for durability now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Dispatcher: it has stopped; every waiter gives up.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify();
    }

    fn notify(&self) {
        // SeqCst pairs with the waiter's increment of `waiting` before its last check.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            let _guard = self.lock.lock();
            self.changed.notify_all();
        }
    }

    /// Waits until the message at intake position `position` is settled.
    pub(crate) fn wait_position(&self, position: u64) -> Settled {
        self.wait(
            || self.settled.load(Ordering::Acquire) > position,
            |f| (f.from..f.to).contains(&position),
        )
    }

    /// Waits until stamp `stamp` is settled.
    pub(crate) fn wait_stamp(&self, stamp: u64) -> Settled {
        self.wait(
            || self.settled_stamp.load(Ordering::Acquire) >= stamp,
            |f| f.after < stamp && stamp <= f.through,
        )
    }

    fn wait(&self, done: impl Fn() -> bool, hit: impl Fn(&Failure) -> bool) -> Settled {
        if !done() {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let mut guard = self.lock.lock();
            while !done() && !self.stopped.load(Ordering::Acquire) {
                // The timeout is a backstop only; settle's notify wakes us.
                self.changed
                    .wait_for(&mut guard, Duration::from_millis(100));
            }
            drop(guard);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if !done() {
                return Settled::Stopped;
            }
        }
        match self.failed.lock().iter().rev().find(|f| hit(f)) {
            Some(failure) => Settled::Failed(failure.kind),
            None => Settled::Stored,
        }
    }
}
