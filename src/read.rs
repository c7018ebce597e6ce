//! [`ClockedRead`]: the reading API shared by [`ClockedReceiver`](crate::ClockedReceiver) and
//! [`Fused`](crate::Fused), so code that consumes a stamped stream (the [`pipeline`](crate::pipeline)
//! helpers, your operators) takes either.

use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// A stream of stamped messages and watermarks: `(Some(value), stamp)` or `(None, stamp)`.
///
/// ```
/// use clocked_dispatch::ClockedRead;
///
/// /// Sums the data of any stamped stream until it closes.
/// fn total(input: &impl ClockedRead<u64>) -> u64 {
///     let mut sum = 0;
///     while let Ok((value, _stamp)) = input.recv() {
///         sum += value.unwrap_or(0);
///     }
///     sum
/// }
///
/// let d = clocked_dispatch::new(16);
/// let (tx, rx) = d.new("tx", "rx");
/// tx.send(2).unwrap();
/// tx.send(3).unwrap();
/// drop(tx);
/// assert_eq!(total(&rx), 5);
/// ```
pub trait ClockedRead<T> {
    /// Waits for a message or a new watermark; `Err` once closed and drained.
    fn recv(&self) -> Result<(Option<T>, usize), RecvError>;

    /// Returns a message or a new watermark if one is ready, without blocking.
    fn try_recv(&self) -> Result<(Option<T>, usize), TryRecvError>;

    /// Waits at most `timeout` for a message or a new watermark.
    fn recv_timeout(&self, timeout: Duration) -> Result<(Option<T>, usize), RecvTimeoutError>;

    /// The highest stamp returned so far (before the first read: where the stream starts).
    fn last_stamp(&self) -> usize;

    /// A name for the stream (used to name threads that read it).
    fn name(&self) -> &str;

    /// Appends up to `max` items to `out`: waits like [`recv`](Self::recv) for the first,
    /// then takes what is ready without blocking. Returns how many were appended (0 only if
    /// `max` is 0).
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` if the stream is closed and drained before the first item.
    fn recv_many(&self, out: &mut Vec<(Option<T>, usize)>, max: usize) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        out.push(self.recv()?);
        Ok(fill_ready(self, out, 1, max))
    }
}

/// The rest of a `recv_many` after its first item: appends what `try_recv` has ready until
/// `taken` reaches `max`; returns the new `taken`.
pub(crate) fn fill_ready<T, R: ClockedRead<T> + ?Sized>(
    reader: &R,
    out: &mut Vec<(Option<T>, usize)>,
    mut taken: usize,
    max: usize,
) -> usize {
    while taken < max {
        match reader.try_recv() {
            Ok(item) => out.push(item),
            Err(_) => break,
        }
        taken += 1;
    }
    taken
}
