//! Loom twin of `crossbeam_utils::Backoff`.
//!
//! Spinning means nothing to a model checker (and makes its search space explode), so the twin
//! reports itself completed at once: callers go straight to their parking path, which is the
//! part whose interleavings matter.

pub(crate) struct Backoff;

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff
    }

    pub(crate) fn snooze(&self) {}

    pub(crate) fn is_completed(&self) -> bool {
        true
    }
}
