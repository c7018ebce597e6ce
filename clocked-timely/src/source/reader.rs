//! [`ClockedSource`]: what a source operator can read without a thread.

use clocked_dispatch::{ClockedReceiver, Fused, StampedStream};
use futures_core::Stream as FuturesStream;

/// A stamped stream the source operator can read without a thread: it is polled with a
/// waker, and wakes the operator when it may have something.
///
/// Implemented for [`ClockedReceiver`] and [`Fused`]; other readers (a remote one, a test's
/// recording wrapper) can implement it too. An implementation must keep the library's
/// contract: the stamps it yields strictly increase, all above [`start`](Self::start), and
/// after it yields `(None, c)` it yields nothing stamped at or below `c`. Items that break it
/// are dropped and counted in [`SourceHandle::out_of_order`](crate::SourceHandle::out_of_order),
/// never given to timely.
pub trait ClockedSource<T> {
    /// The stream the operator polls.
    type Stream: FuturesStream<Item = (Option<T>, usize)> + 'static;

    /// The highest stamp already returned, or where the stream starts: the source's frontier
    /// begins one above it.
    fn start(&self) -> usize;

    /// A name for the operator.
    fn source_name(&self) -> String;

    /// The stream to poll.
    fn into_stamped_stream(self) -> Self::Stream;
}

impl<T: 'static> ClockedSource<T> for ClockedReceiver<T> {
    type Stream = StampedStream<ClockedReceiver<T>>;

    fn start(&self) -> usize {
        self.last_stamp()
    }

    fn source_name(&self) -> String {
        format!("ClockedSource({})", self.name())
    }

    fn into_stamped_stream(self) -> Self::Stream {
        self.into_stream()
    }
}

impl<T: 'static> ClockedSource<T> for Fused<T> {
    type Stream = StampedStream<Fused<T>>;

    fn start(&self) -> usize {
        self.last_stamp()
    }

    fn source_name(&self) -> String {
        format!("ClockedSource({})", self.name())
    }

    fn into_stamped_stream(self) -> Self::Stream {
        self.into_stream()
    }
}
