//! [`fuse`]: several receivers of one dispatcher read as one stream, in global stamp order.
//!
//! # Algorithm
//!
//! Each input has a *horizon*: the highest stamp it has returned (data or watermark), or
//! infinity once it is closed and its held item is gone. Because a receiver's stamps strictly
//! increase and a data stamp never falls at or below a watermark it returned, an input whose
//! horizon is `h` will never return anything stamped `<= h` again. Each input holds at most
//! one data item read but not yet released (its *head*).
//!
//! ```text
//! loop {
//!     the smallest head, stamped s, is released if every other input's horizon is >= s
//!     else the watermark w = min(horizons) is released if it is above what was returned
//!     else read the input with the smallest horizon (it has no head: it is what everyone
//!     waits for), blocking on it alone if the read may block
//! }
//! ```
//!
//! So the fused stream's data comes out in stamp order, and a watermark `w` comes out only
//! when no input can still produce data stamped `<= w`: the receiver guarantees carry over.
//! Blocking on the slowest input alone is enough, because nothing can be returned until it
//! moves. A broadcast reaches every fused input under one stamp: the copies come out one after
//! the other, in input order, under that stamp (the one place where the fused stream's stamps
//! repeat instead of increasing).
//!
//! Receivers of different dispatchers have unrelated stamps: fusing them is a typed error,
//! [`FuseError::DifferentDispatchers`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use crate::read::ClockedRead;
use crate::receiver::ClockedReceiver;

/// Why [`fuse`] refused; the receivers come back.
pub struct FuseError<T> {
    kind: FuseErrorKind,
    receivers: Vec<ClockedReceiver<T>>,
}

/// What was wrong with the receivers given to [`fuse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseErrorKind {
    /// No receiver was given.
    Empty,
    /// The receivers belong to different dispatchers, whose stamps cannot be ordered together.
    DifferentDispatchers,
}

impl<T> FuseError<T> {
    /// What was wrong.
    pub fn kind(&self) -> FuseErrorKind {
        self.kind
    }

    /// The receivers, unchanged.
    pub fn into_receivers(self) -> Vec<ClockedReceiver<T>> {
        self.receivers
    }
}

impl<T> fmt::Debug for FuseError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FuseError")
            .field("kind", &self.kind)
            .field("receivers", &self.receivers.len())
            .finish()
    }
}

impl<T> fmt::Display for FuseError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FuseErrorKind::Empty => f.write_str("fuse needs at least one receiver"),
            FuseErrorKind::DifferentDispatchers => {
                f.write_str("fused receivers must belong to one dispatcher")
            }
        }
    }
}

impl<T> std::error::Error for FuseError<T> {}

/// One input of a [`Fused`] stream.
struct Input<T> {
    rx: ClockedReceiver<T>,
    head: RefCell<Option<(T, usize)>>,
    horizon: Cell<usize>,
    closed: Cell<bool>,
}

impl<T> Input<T> {
    /// The horizon, infinite once closed with nothing held.
    fn reach(&self) -> usize {
        if self.closed.get() && self.head.borrow().is_none() {
            usize::MAX
        } else {
            self.horizon.get()
        }
    }
}

/// Several receivers of one dispatcher, read as one stream in stamp order; made by [`fuse`].
///
/// It has the reading API of a receiver (inherent methods and [`ClockedRead`]), and is an
/// iterator, so the [`pipeline`](crate::pipeline) helpers take it.
pub struct Fused<T> {
    inputs: Vec<Input<T>>,
    /// The highest stamp returned.
    last: Cell<usize>,
    name: String,
}

/// Merges receivers of one dispatcher into one stream that returns the union of their
/// messages in global stamp order, with watermarks: `(None, w)` once every input has passed
/// `w`. The algorithm: only the slowest input is read; the smallest message held is released
/// once every other input has passed its stamp; the smallest horizon is the watermark.
///
/// # Errors
///
/// [`FuseErrorKind::Empty`] for no receivers, [`FuseErrorKind::DifferentDispatchers`] if they
/// belong to different dispatchers (the receivers come back in the error).
///
/// ```
/// let d = clocked_dispatch::new(16);
/// let (tx_a, rx_a) = d.new("tx_a", "a");
/// let (tx_b, rx_b) = d.new("tx_b", "b");
/// tx_b.send("b1").unwrap(); // stamp 1
/// tx_a.send("a2").unwrap(); // stamp 2
/// tx_b.send("b3").unwrap(); // stamp 3
/// drop((tx_a, tx_b));
/// let both = clocked_dispatch::fuse(vec![rx_a, rx_b]).unwrap();
/// let data: Vec<(&str, usize)> = both.filter_map(|(v, stamp)| Some((v?, stamp))).collect();
/// assert_eq!(data, vec![("b1", 1), ("a2", 2), ("b3", 3)]);
/// ```
pub fn fuse<T>(receivers: Vec<ClockedReceiver<T>>) -> Result<Fused<T>, FuseError<T>> {
    let Some(first) = receivers.first() else {
        return Err(FuseError {
            kind: FuseErrorKind::Empty,
            receivers,
        });
    };
    let dispatcher = first.dispatcher_key();
    if receivers.iter().any(|rx| rx.dispatcher_key() != dispatcher) {
        return Err(FuseError {
            kind: FuseErrorKind::DifferentDispatchers,
            receivers,
        });
    }
    let name = receivers
        .iter()
        .map(|rx| rx.name())
        .collect::<Vec<_>>()
        .join("+");
    let last = receivers
        .iter()
        .map(ClockedReceiver::last_stamp)
        .min()
        .unwrap_or(0);
    let inputs = receivers
        .into_iter()
        .map(|rx| Input {
            horizon: Cell::new(rx.last_stamp()),
            rx,
            head: RefCell::new(None),
            closed: Cell::new(false),
        })
        .collect();
    Ok(Fused {
        inputs,
        last: Cell::new(last),
        name,
    })
}

/// What a step ended with.
enum Step<T> {
    Item((Option<T>, usize)),
    Closed,
    Empty,
    TimedOut,
    /// The slowest input has nothing yet; its wake-up is registered (`async` only).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Pending,
}

impl<T> Fused<T> {
    /// The receivers, back (what they had read but the fused stream had not returned is
    /// lost).
    pub fn into_receivers(self) -> Vec<ClockedReceiver<T>> {
        self.inputs.into_iter().map(|input| input.rx).collect()
    }

    /// The inputs' names, joined by `+`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The highest stamp returned.
    pub fn last_stamp(&self) -> usize {
        self.last.get()
    }

    /// Waits for a message or a new watermark; `Err` once every input is closed and drained.
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` once every input is closed and everything has been returned.
    pub fn recv(&self) -> Result<(Option<T>, usize), RecvError> {
        match self.step(|rx| rx.recv().map_err(|RecvError| Step::Closed)) {
            Step::Item(item) => Ok(item),
            _ => Err(RecvError),
        }
    }

    /// Returns a message or a new watermark if one is ready, without blocking.
    ///
    /// # Errors
    ///
    /// `Empty` if nothing new is ready; `Disconnected` once closed and drained.
    pub fn try_recv(&self) -> Result<(Option<T>, usize), TryRecvError> {
        let read = |rx: &ClockedReceiver<T>| {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => Step::Empty,
                TryRecvError::Disconnected => Step::Closed,
            })
        };
        match self.step(read) {
            Step::Item(item) => Ok(item),
            Step::Closed => Err(TryRecvError::Disconnected),
            Step::Empty | Step::TimedOut | Step::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Waits at most `timeout` for a message or a new watermark.
    ///
    /// # Errors
    ///
    /// `Timeout` if nothing came in time; `Disconnected` once closed and drained.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(Option<T>, usize), RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let read = |rx: &ClockedReceiver<T>| {
            let result = match deadline {
                None => rx
                    .recv()
                    .map_err(|RecvError| RecvTimeoutError::Disconnected),
                Some(deadline) => {
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            result.map_err(|e| match e {
                RecvTimeoutError::Timeout => Step::TimedOut,
                RecvTimeoutError::Disconnected => Step::Closed,
            })
        };
        match self.step(read) {
            Step::Item(item) => Ok(item),
            Step::Closed => Err(RecvTimeoutError::Disconnected),
            Step::Empty | Step::TimedOut | Step::Pending => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Appends up to `max` items to `out`, as [`ClockedRead::recv_many`].
    ///
    /// # Errors
    ///
    /// `Err(RecvError)` if closed and drained before the first item.
    pub fn recv_many(
        &self,
        out: &mut Vec<(Option<T>, usize)>,
        max: usize,
    ) -> Result<usize, RecvError> {
        ClockedRead::recv_many(self, out, max)
    }

    /// An iterator over what is ready now; it ends at the first `try_recv` error.
    pub fn try_iter(&self) -> impl Iterator<Item = (Option<T>, usize)> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// One poll of the stream as a task (see [`crate::async_recv`]).
    #[cfg(feature = "async")]
    pub(crate) fn poll_step(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(Option<T>, usize), RecvError>> {
        use std::task::Poll;
        let read = |rx: &ClockedReceiver<T>| match rx.poll_recv(cx) {
            Poll::Ready(Ok(item)) => Ok(item),
            Poll::Ready(Err(RecvError)) => Err(Step::Closed),
            Poll::Pending => Err(Step::Pending),
        };
        match self.step(read) {
            Step::Item(item) => Poll::Ready(Ok(item)),
            Step::Pending => Poll::Pending,
            Step::Closed | Step::Empty | Step::TimedOut => Poll::Ready(Err(RecvError)),
        }
    }

    /// Releases what can be released; otherwise reads the slowest input with `read`, which
    /// may block, fail, or register a wake-up, as the caller chose.
    fn step(
        &self,
        mut read: impl FnMut(&ClockedReceiver<T>) -> Result<(Option<T>, usize), Step<T>>,
    ) -> Step<T> {
        loop {
            if let Some(item) = self.release() {
                return Step::Item(item);
            }
            let (slowest, reach) = self
                .inputs
                .iter()
                .enumerate()
                .map(|(index, input)| (index, input.reach()))
                .min_by_key(|&(_, reach)| reach)
                .unwrap_or((0, usize::MAX));
            if reach == usize::MAX {
                return Step::Closed;
            }
            if reach > self.last.get() {
                self.last.set(reach);
                return Step::Item((None, reach));
            }
            // Nothing can come out until the slowest input moves: read it alone.
            let input = &self.inputs[slowest];
            let read = read(&input.rx);
            match read {
                Ok((value, stamp)) => {
                    input.horizon.set(stamp);
                    if let Some(value) = value {
                        *input.head.borrow_mut() = Some((value, stamp));
                    }
                }
                // That input is done; the others may still have something.
                Err(Step::Closed) => input.closed.set(true),
                Err(other) => return other,
            }
        }
    }

    /// The smallest head, if every other input has passed its stamp.
    fn release(&self) -> Option<(Option<T>, usize)> {
        let (index, stamp) = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(index, input)| input.head.borrow().as_ref().map(|h| (index, h.1)))
            .min_by_key(|&(_, stamp)| stamp)?;
        let passed = self
            .inputs
            .iter()
            .enumerate()
            .all(|(other, input)| other == index || input.reach() >= stamp);
        if !passed {
            return None;
        }
        let (value, stamp) = self.inputs[index].head.borrow_mut().take()?;
        self.last.set(self.last.get().max(stamp));
        Some((Some(value), stamp))
    }
}

impl<T> ClockedRead<T> for Fused<T> {
    fn recv(&self) -> Result<(Option<T>, usize), RecvError> {
        Fused::recv(self)
    }

    fn try_recv(&self) -> Result<(Option<T>, usize), TryRecvError> {
        Fused::try_recv(self)
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<(Option<T>, usize), RecvTimeoutError> {
        Fused::recv_timeout(self, timeout)
    }

    fn last_stamp(&self) -> usize {
        Fused::last_stamp(self)
    }

    fn name(&self) -> &str {
        Fused::name(self)
    }
}

impl<T> Iterator for Fused<T> {
    type Item = (Option<T>, usize);

    /// Blocks like [`recv`](Fused::recv); ends when every input is closed and drained.
    fn next(&mut self) -> Option<Self::Item> {
        self.recv().ok()
    }
}

impl<T> fmt::Debug for Fused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("name", &self.name)
            .field("last_stamp", &self.last.get())
            .finish_non_exhaustive()
    }
}
