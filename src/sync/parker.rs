//! Loom twin of `crossbeam_utils::sync::{Parker, Unparker}`.
//!
//! Same token semantics: `unpark` stores one token; `park` consumes it, or blocks until one
//! arrives. An `unpark` that comes before the `park` is therefore never lost.

use std::time::Duration;

use loom::sync::{Arc, Condvar, Mutex};

struct Inner {
    token: Mutex<bool>,
    cond: Condvar,
}

/// Blocks the thread that owns it until its [`Unparker`] is called.
pub(crate) struct Parker {
    unparker: Unparker,
}

/// Wakes the [`Parker`] it was taken from; cloneable and shareable.
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Parker {
            unparker: Unparker {
                inner: Arc::new(Inner {
                    token: Mutex::new(false),
                    cond: Condvar::new(),
                }),
            },
        }
    }

    pub(crate) fn park(&self) {
        let inner = &self.unparker.inner;
        let mut token = inner.token.lock().unwrap_or_else(|p| p.into_inner());
        while !*token {
            token = inner.cond.wait(token).unwrap_or_else(|p| p.into_inner());
        }
        *token = false;
    }

    /// Loom has no clock: a timed park is an untimed one, so a model only passes if the wake-up
    /// it relies on really happens.
    pub(crate) fn park_timeout(&self, _timeout: Duration) {
        self.park();
    }

    pub(crate) fn unparker(&self) -> &Unparker {
        &self.unparker
    }
}

impl Unparker {
    pub(crate) fn unpark(&self) {
        let mut token = self.inner.token.lock().unwrap_or_else(|p| p.into_inner());
        *token = true;
        self.inner.cond.notify_one();
    }
}
