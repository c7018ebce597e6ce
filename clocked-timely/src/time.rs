//! [`StampTime`]: the timely timestamp types that carry stamps.
//!
//! A stamp is a `usize`. Timely computations commonly use `u64` timestamps (what
//! `timely::example` builds) or `usize`; both are accepted, so a source plugs into an existing
//! dataflow without a conversion operator. `usize` converts to `u64` losslessly on every
//! platform Rust supports; the other way, a `u64` time above `usize::MAX` (only on a 32-bit
//! target) has no stamp, and the sink counts such records as undeliverable instead of
//! forwarding them under a wrong stamp.

use timely::order::TotalOrder;
use timely::progress::Timestamp;

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for u64 {}
}

/// A totally ordered timely timestamp that holds a dispatcher's stamp: `u64` or `usize`.
pub trait StampTime: Timestamp + TotalOrder + Copy + sealed::Sealed {
    /// The time of `stamp`, or `None` if the type cannot hold it.
    fn from_stamp(stamp: usize) -> Option<Self>;

    /// The stamp of this time, or `None` if a stamp cannot hold it.
    fn to_stamp(self) -> Option<usize>;
}

impl StampTime for usize {
    fn from_stamp(stamp: usize) -> Option<Self> {
        Some(stamp)
    }

    fn to_stamp(self) -> Option<usize> {
        Some(self)
    }
}

impl StampTime for u64 {
    fn from_stamp(stamp: usize) -> Option<Self> {
        u64::try_from(stamp).ok()
    }

    fn to_stamp(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}
