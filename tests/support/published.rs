//! Waiting for a dispatcher to publish a stamp: everything stamped up to it is then in its
//! inbox (or on disk), so counts and readiness can be asserted without racing the dispatcher.

use std::time::{Duration, Instant};

use clocked_dispatch::Dispatcher;

/// Waits (at most 30 s, then fails the test) until `d` has published `stamp`.
pub fn published<T: Send>(d: &Dispatcher<T>, stamp: usize) {
    let started = Instant::now();
    while d.stats().clock < stamp {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stamp {stamp} never published"
        );
        std::thread::yield_now();
    }
}
