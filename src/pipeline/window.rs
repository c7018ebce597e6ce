//! Watermark-driven windows: a sink that closes the window of stamps `[first, last]` as soon as
//! its receiver returns a stamp at or above `last`, data or watermark.
//!
//! A receiver's stamps strictly increase, and after `(None, c)` nothing stamped `<= c` will
//! reach it (the crate's watermark guarantee), so a window can be closed at the first stamp
//! that reaches its end. That stamp may be a watermark: the window's last messages may have gone to
//! other receivers (other stages, other workers, or been filtered out), and the sink still
//! learns that the window is complete without seeing them. Windows with no data are closed
//! too, each with its `init` value, so a consumer sees every window in order.

use crate::{ClockedRead, ClockedReceiver};

/// One closed window: the stamps `first..=last` and what was folded from the data among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<A> {
    /// The first stamp of the window.
    pub first: usize,
    /// The last stamp of the window.
    pub last: usize,
    /// The fold of the data stamped in the window (`init()` if there was none).
    pub value: A,
    /// How many data messages were folded.
    pub count: u64,
    /// `false` only for the last window of a closed receiver, if the clock stopped inside it.
    pub complete: bool,
}

/// Iterator of closed windows over a receiver; made by [`windows`].
pub struct Windows<U, A, I, F, R = ClockedReceiver<U>> {
    receiver: R,
    _items: std::marker::PhantomData<fn() -> U>,
    width: usize,
    init: I,
    fold: F,
    /// The window being filled: its first stamp, value (always `Some` between calls) and
    /// count.
    first: usize,
    value: Option<A>,
    count: u64,
    /// A stamp past the window just returned, not yet taken in: it may close more (empty)
    /// windows, returned one per call.
    pending_jump: Option<(usize, Option<U>)>,
    done: bool,
}

/// Groups what `receiver` returns into windows of `width` stamps (at least 1), numbered from
/// the receiver's current stamp: the first window is `last_stamp() + 1 ..= last_stamp() +
/// width`. Each window is returned as soon as the receiver returns a stamp at or past its end; the
/// data in it is folded with `fold`, starting from `init()`. When the receiver closes, the
/// window it stopped in is returned with `complete: false` unless the clock reached its end.
///
/// ```
/// use clocked_dispatch::pipeline::windows;
///
/// let d = clocked_dispatch::new(16);
/// let (tx_a, rx_a) = d.new("tx_a", "a");
/// let (tx_b, rx_b) = d.new("tx_b", "b");
/// for i in 1..=7u64 {
///     if i == 3 || i == 4 {
///         tx_b.send(i).unwrap(); // stamps 3 and 4 go elsewhere: a only sees watermarks
///     } else {
///         tx_a.send(i).unwrap();
///     }
/// }
/// drop((tx_a, tx_b, rx_b));
/// let sums: Vec<(usize, usize, u64)> = windows(rx_a, 2, || 0, |sum, x| sum + x)
///     .map(|w| (w.first, w.last, w.value))
///     .collect();
/// assert_eq!(sums, vec![(1, 2, 3), (3, 4, 0), (5, 6, 11), (7, 8, 7)]);
/// ```
pub fn windows<U, A, I, F, R>(receiver: R, width: usize, init: I, fold: F) -> Windows<U, A, I, F, R>
where
    R: ClockedRead<U>,
    I: FnMut() -> A,
    F: FnMut(A, U) -> A,
{
    let mut init = init;
    let first = receiver.last_stamp() + 1;
    let value = Some(init());
    Windows {
        receiver,
        _items: std::marker::PhantomData,
        width: width.max(1),
        init,
        fold,
        first,
        value,
        count: 0,
        pending_jump: None,
        done: false,
    }
}

impl<U, A, I, F, R> Windows<U, A, I, F, R>
where
    R: ClockedRead<U>,
    I: FnMut() -> A,
    F: FnMut(A, U) -> A,
{
    fn window_end(&self) -> usize {
        self.first + (self.width - 1)
    }

    /// Closes the window being filled and starts the next one.
    fn close(&mut self, complete: bool) -> Window<A> {
        let next = (self.init)();
        let window = Window {
            first: self.first,
            last: self.window_end(),
            value: self.value.replace(next).unwrap_or_else(&mut self.init),
            count: std::mem::take(&mut self.count),
            complete,
        };
        self.first += self.width;
        window
    }

    /// Takes in one stamp; returns the window it closes, if any. A stamp past the window is
    /// kept for the next call; a stamp at the window's last one completes it.
    fn take_in(&mut self, value: Option<U>, stamp: usize) -> Option<Window<A>> {
        if stamp > self.window_end() {
            self.pending_jump = Some((stamp, value));
            return Some(self.close(true));
        }
        if let Some(value) = value {
            let acc = self.value.take().unwrap_or_else(&mut self.init);
            self.value = Some((self.fold)(acc, value));
            self.count += 1;
        }
        (stamp == self.window_end()).then(|| self.close(true))
    }
}

impl<U, A, I, F, R> Iterator for Windows<U, A, I, F, R>
where
    R: ClockedRead<U>,
    I: FnMut() -> A,
    F: FnMut(A, U) -> A,
{
    type Item = Window<A>;

    fn next(&mut self) -> Option<Window<A>> {
        if let Some((stamp, value)) = self.pending_jump.take() {
            if let Some(window) = self.take_in(value, stamp) {
                return Some(window);
            }
        }
        if self.done {
            return None;
        }
        loop {
            match self.receiver.recv() {
                Ok((value, stamp)) => {
                    if let Some(window) = self.take_in(value, stamp) {
                        return Some(window);
                    }
                }
                Err(_) => {
                    self.done = true;
                    // The clock stopped inside the current window (a stamp at its end would
                    // have closed it already).
                    if self.receiver.last_stamp() >= self.first || self.count > 0 {
                        return Some(self.close(false));
                    }
                    return None;
                }
            }
        }
    }
}

impl<U, A, I, F> std::fmt::Debug for Windows<U, A, I, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windows")
            .field("first", &self.first)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}
