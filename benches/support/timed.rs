//! The measurement every two-thread bench shares.

use std::thread;
use std::time::{Duration, Instant};

/// Runs `produce` on a fresh thread and `consume` on this one; returns the time until
/// `consume` has finished (the producer is joined afterwards, outside the measurement).
pub fn timed(produce: impl FnOnce() + Send + 'static, consume: impl FnOnce()) -> Duration {
    let start = Instant::now();
    let producer = thread::spawn(produce);
    consume();
    let elapsed = start.elapsed();
    producer.join().expect("producer");
    elapsed
}
