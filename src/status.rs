//! What every live receiver is doing: [`Dispatcher::status`](crate::Dispatcher::status),
//! [`ClockedReceiver::lag`](crate::ClockedReceiver::lag) and
//! [`ClockedReceiver::backlog`](crate::ClockedReceiver::backlog) (kvspool's `kvsp-status`, as
//! an API).
//!
//! # Cost
//!
//! Each inbox keeps three gauges, each on its own cache line and each written by one thread
//! only: messages pushed into memory (by the dispatcher), messages taken from memory and the
//! highest stamp returned (by the reader). A write is a plain `Relaxed` store of a counter the
//! writer keeps anyway; nobody waits on anybody. A status query reads them, the clock and the
//! spill's atomics; it takes only the list of live receivers' lock, which receivers take when
//! they are created and dropped, never the dispatcher thread. So it is cheap enough to call
//! every second from a monitoring thread, and it never stops the world: each row is exact for
//! its own gauges, and the rows together are only roughly simultaneous.

use std::fmt;

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// One inbox's gauges (see the module doc).
pub(crate) struct Gauges {
    pub(crate) name: String,
    pushed: CachePadded<AtomicU64>,
    taken: CachePadded<AtomicU64>,
    last_stamp: CachePadded<AtomicUsize>,
}

impl Gauges {
    pub(crate) fn new(name: String, seen: usize) -> Self {
        Gauges {
            name,
            pushed: CachePadded::new(AtomicU64::new(0)),
            taken: CachePadded::new(AtomicU64::new(0)),
            last_stamp: CachePadded::new(AtomicUsize::new(seen)),
        }
    }

    /// Dispatcher: `count` messages have been pushed into memory in all.
    #[inline]
    pub(crate) fn pushed(&self, count: u64) {
        self.pushed.store(count, Relaxed);
    }

    /// Reader: `count` messages have been taken from memory in all.
    #[inline]
    pub(crate) fn taken(&self, count: u64) {
        self.taken.store(count, Relaxed);
    }

    /// Reader: the highest stamp returned.
    #[inline]
    pub(crate) fn returned(&self, stamp: usize) {
        self.last_stamp.store(stamp, Relaxed);
    }

    /// Messages in memory, waiting to be read.
    pub(crate) fn in_memory(&self) -> u64 {
        // Read `taken` first: it never passes `pushed`, so the difference never underflows
        // by more than a race, which `saturating_sub` absorbs.
        let taken = self.taken.load(Relaxed);
        self.pushed.load(Relaxed).saturating_sub(taken)
    }

    /// The highest stamp returned.
    pub(crate) fn last_stamp(&self) -> usize {
        self.last_stamp.load(Relaxed)
    }
}

/// One live receiver, as [`Dispatcher::status`](crate::Dispatcher::status) sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStatus {
    /// The receiver's name.
    pub name: String,
    /// How many stamps the dispatcher has published past the last one this receiver returned.
    pub lag: usize,
    /// The highest stamp it has returned (data or watermark).
    pub last_stamp: usize,
    /// Messages waiting for it in memory.
    pub in_memory: u64,
    /// Messages waiting for it on disk (spilling dispatchers only).
    pub on_disk: u64,
    /// Bytes of its segment files (spilling dispatchers only).
    pub disk_bytes: u64,
    /// Messages dropped by [`DiskFull::DropOldest`](crate::DiskFull::DropOldest).
    pub dropped: u64,
    /// Messages lost to damage on disk.
    pub corrupted: u64,
}

impl ReceiverStatus {
    /// Messages waiting for it, in memory and on disk.
    pub fn backlog(&self) -> u64 {
        self.in_memory + self.on_disk
    }
}

/// A snapshot of every live receiver of a dispatcher; prints as a table.
///
/// ```
/// let d = clocked_dispatch::new(16);
/// let (tx, _slow) = d.new("tx", "slow");
/// let (_tx2, fast) = d.new("tx2", "fast");
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert_eq!(fast.recv(), Ok((None, 2))); // `fast` has caught up, `slow` read nothing
/// let status = d.status();
/// let slow = status.receivers.iter().find(|r| r.name == "slow").unwrap();
/// assert_eq!((slow.lag, slow.backlog()), (2, 2));
/// println!("{status}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The dispatcher's published clock when the snapshot was taken.
    pub clock: usize,
    /// One row per live receiver, in creation order.
    pub receivers: Vec<ReceiverStatus>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .receivers
            .iter()
            .map(|r| r.name.chars().count())
            .chain([8])
            .max()
            .unwrap_or(8);
        writeln!(f, "clock {}", self.clock)?;
        writeln!(
            f,
            "{:<width$}  {:>12}  {:>12}  {:>10}  {:>10}  {:>12}  {:>9}  {:>9}",
            "receiver",
            "last stamp",
            "lag",
            "in memory",
            "on disk",
            "disk bytes",
            "dropped",
            "corrupted"
        )?;
        for r in &self.receivers {
            writeln!(
                f,
                "{:<width$}  {:>12}  {:>12}  {:>10}  {:>10}  {:>12}  {:>9}  {:>9}",
                r.name,
                r.last_stamp,
                r.lag,
                r.in_memory,
                r.on_disk,
                r.disk_bytes,
                r.dropped,
                r.corrupted
            )?;
        }
        Ok(())
    }
}
