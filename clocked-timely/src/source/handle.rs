//! [`SourceHandle`]: what a running source reports.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// What a source reports while it runs; cheap to clone and to read from any thread (for
/// monitoring, or to wait until a source has caught up). Updated once per activation.
#[derive(Clone, Debug, Default)]
pub struct SourceHandle {
    shared: Arc<Counters>,
}

/// The counters behind a [`SourceHandle`], written by the source's worker only.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    last_stamp: AtomicUsize,
    data: AtomicU64,
    watermarks: AtomicU64,
    out_of_order: AtomicU64,
    closed: AtomicBool,
}

/// One activation's counts.
#[derive(Debug, Default)]
pub(crate) struct Activation {
    pub(crate) data: u64,
    pub(crate) watermarks: u64,
    pub(crate) out_of_order: u64,
}

impl Counters {
    pub(crate) fn publish(&self, last_stamp: usize, counts: &Activation) {
        let adds = [
            (&self.data, counts.data),
            (&self.watermarks, counts.watermarks),
            (&self.out_of_order, counts.out_of_order),
        ];
        for (counter, n) in adds {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
        self.last_stamp.store(last_stamp, Relaxed);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
    }
}

impl SourceHandle {
    pub(crate) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.shared)
    }

    /// The highest stamp the source has read (data or watermark), or its start before the
    /// first read: its capability is one above it until the reader closes.
    pub fn last_stamp(&self) -> usize {
        self.shared.last_stamp.load(Relaxed)
    }

    /// Data messages given to timely so far.
    pub fn data(&self) -> u64 {
        self.shared.data.load(Relaxed)
    }

    /// Watermarks read so far.
    pub fn watermarks(&self) -> u64 {
        self.shared.watermarks.load(Relaxed)
    }

    /// Items dropped because their stamp was not above the last one read (a
    /// [`ClockedSource`](crate::ClockedSource) implementation breaking its contract; never for
    /// the library's readers).
    pub fn out_of_order(&self) -> u64 {
        self.shared.out_of_order.load(Relaxed)
    }

    /// Whether the reader has closed and the capability is dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Relaxed)
    }
}
