//! One activation of a source: read up to a batch of items, keep the capability one above
//! the last stamp read.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream as FuturesStream;
use timely::dataflow::operators::Capability;

use super::handle::Activation;
use crate::time::StampTime;

/// Why an activation stopped reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Nothing ready: the reader has registered the operator's waker.
    Pending,
    /// The batch is used up; more may be ready.
    BatchFull,
    /// The reader has closed.
    Closed,
}

/// A source that has a reader.
pub(crate) struct Reading<T: StampTime, S> {
    /// `None` once the reader has closed (or the clock reached the largest time).
    pub(crate) capability: Option<Capability<T>>,
    stream: Pin<Box<S>>,
    /// The highest stamp read so far, or the start.
    pub(crate) last: usize,
}

impl<T: StampTime, S> Reading<T, S> {
    /// A reading source whose capability moves to `start + 1` at once.
    pub(crate) fn new(capability: Capability<T>, stream: S, start: usize) -> Self {
        Reading {
            capability: above(capability, start),
            stream: Box::pin(stream),
            last: start,
        }
    }

    /// Reads up to `batch` items; appends the data to `data` with their stamps (increasing,
    /// all above the previous `last`) and counts into `counts`. The capability is untouched:
    /// the caller gives the data, then calls [`settle`](Self::settle).
    pub(crate) fn read<D>(
        &mut self,
        cx: &mut Context<'_>,
        batch: usize,
        data: &mut Vec<(D, usize)>,
        counts: &mut Activation,
    ) -> Ended
    where
        S: FuturesStream<Item = (Option<D>, usize)>,
    {
        if self.capability.is_none() {
            return Ended::Closed;
        }
        for _ in 0..batch {
            match self.stream.as_mut().poll_next(cx) {
                Poll::Pending => return Ended::Pending,
                Poll::Ready(None) => return Ended::Closed,
                Poll::Ready(Some((value, stamp))) => {
                    if stamp <= self.last || T::from_stamp(stamp).is_none() {
                        counts.out_of_order += 1;
                        continue;
                    }
                    self.last = stamp;
                    match value {
                        Some(value) => {
                            data.push((value, stamp));
                            counts.data += 1;
                        }
                        None => counts.watermarks += 1,
                    }
                }
            }
        }
        Ended::BatchFull
    }

    /// After the data is given: drops the capability if the reader closed, else moves it to
    /// one above the last stamp read.
    pub(crate) fn settle(&mut self, ended: Ended) {
        self.capability = match ended {
            Ended::Closed => None,
            Ended::Pending | Ended::BatchFull => {
                self.capability.take().and_then(|c| above(c, self.last))
            }
        };
    }
}

/// `capability` moved to `stamp + 1`: the frontier of a reader that has returned `stamp`.
/// `None` (the capability dropped) if `stamp + 1` is not a time, after which nothing can
/// come.
fn above<T: StampTime>(mut capability: Capability<T>, stamp: usize) -> Option<Capability<T>> {
    let next = T::from_stamp(stamp.checked_add(1)?)?;
    if *capability.time() < next {
        // `next` is above the capability's time: the downgrade cannot fail.
        capability.try_downgrade(&next).ok()?;
    }
    Some(capability)
}
