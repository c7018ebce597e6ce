//! [`Builder`]: every knob of a dispatcher, with 4.0.2's defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::waking::DEFAULT_WAKE_INTERVAL;
use crate::journal::retention::RetentionConfig;
use crate::journal::Durability;
use crate::spill::DiskFull;
// Named in the docs.
#[cfg(doc)]
use crate::error::{BuildError, CapacityError, SpillSetupError};

mod build;

/// Default for [`Builder::reorder_window`].
pub const DEFAULT_REORDER_WINDOW: usize = 1 << 20;

/// The largest buffer, in bytes, that a dispatcher allocates up front for one channel: 1 GiB.
///
/// The intake (capacity [`Builder::bound`]) and each receiver's inbox (capacity
/// [`Builder::inbox_capacity`], or [`Builder::memory_capacity`] when spilling) are bounded
/// queues that allocate their whole buffer when created: one slot per message, each the size of
/// the message plus a word, and a power-of-two number of slots (the next at or above the
/// capacity). A capacity whose buffer would exceed this is refused with
/// a [`CapacityError`] instead of letting the allocator abort the process. 1 GiB is far
/// beyond any useful queue (over 20 million `u64` messages in the intake) and still small
/// enough to be a plausible allocation on a small machine. The limit applies per buffer: a
/// dispatcher with many receivers allocates one inbox buffer for each.
pub const MAX_PREALLOCATED_BYTES: usize = 1 << 30;

/// Default for [`Builder::segment_size`]: 8 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 8 << 20;

/// The journal segment size a [`Builder`] starts with: 64 MiB.
pub const DEFAULT_JOURNAL_SEGMENT_SIZE: u64 = 64 << 20;

/// Configures and starts a dispatcher.
///
/// ```
/// let d = clocked_dispatch::Builder::new()
///     .bound(64)
///     .seed(1000)
///     .build::<String>();
/// let (tx, rx) = d.new("tx", "rx");
/// tx.send("hello".to_string()).unwrap();
/// assert_eq!(rx.recv(), Ok((Some("hello".to_string()), 1001)));
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    bound: usize,
    inbox_capacity: Option<usize>,
    seed: usize,
    reorder_window: usize,
    wake_interval: Duration,
    thread_name: String,
    spill_to: Option<PathBuf>,
    memory_capacity: Option<usize>,
    disk_limit: u64,
    when_disk_full: DiskFull,
    segment_size: u64,
    journal_dir: Option<PathBuf>,
    durability: Durability,
    journal_segment_size: u64,
    retention: RetentionConfig,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bound: 0,
            inbox_capacity: None,
            seed: 0,
            reorder_window: DEFAULT_REORDER_WINDOW,
            wake_interval: DEFAULT_WAKE_INTERVAL,
            thread_name: "clocked-dispatch".to_string(),
            spill_to: None,
            memory_capacity: None,
            disk_limit: u64::MAX,
            when_disk_full: DiskFull::Block,
            segment_size: DEFAULT_SEGMENT_SIZE,
            journal_dir: None,
            durability: Durability::None,
            journal_segment_size: DEFAULT_JOURNAL_SEGMENT_SIZE,
            retention: RetentionConfig {
                max_bytes: u64::MAX,
                max_age: None,
            },
        }
    }
}

impl Builder {
    /// A builder with bound 0 (rendezvous), seed 0, and the default reorder window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Capacity of the dispatcher's intake: `send` blocks while this many messages wait for the
    /// dispatcher. 0 makes every send a rendezvous with the dispatcher thread. Unless
    /// [`inbox_capacity`](Self::inbox_capacity) is set, also each receiver's inbox capacity
    /// (at least 1), as in 4.0.2.
    ///
    /// # Limit
    ///
    /// The intake's buffer (and each inbox's, whose slot count is the next power of two at or
    /// above its capacity) is allocated up front, so its size is capped at
    /// [`MAX_PREALLOCATED_BYTES`]: for a message type `T` the largest bound is about
    /// `MAX_PREALLOCATED_BYTES / (size_of::<T>() + 40)` on a 64-bit target (more than 20 million
    /// for `u64`); [`CapacityError::max_capacity`] gives the exact figure. Beyond it [`try_build`](Self::try_build) returns
    /// [`BuildError::Capacity`], [`build_spilling`](Self::build_spilling) returns
    /// [`SpillSetupError::Capacity`], and [`build`](Self::build) (like
    /// [`new`](crate::new)) panics with a message naming the limit. Without the check such a
    /// bound would abort the process in the allocator.
    ///
    /// ```
    /// use clocked_dispatch::{BuildError, Builder};
    ///
    /// assert!(matches!(
    ///     Builder::new().bound(1 << 40).try_build::<u64>(),
    ///     Err(BuildError::Capacity(_))
    /// ));
    /// ```
    pub fn bound(mut self, bound: usize) -> Self {
        self.bound = bound;
        self
    }

    /// Capacity of each receiver's inbox (at least 1), if it should differ from `bound`. Capped
    /// like [`bound`](Self::bound): see [`MAX_PREALLOCATED_BYTES`].
    pub fn inbox_capacity(mut self, capacity: usize) -> Self {
        self.inbox_capacity = Some(capacity);
        self
    }

    /// The clock starts at `seed`: the first stamp assigned is `seed + 1`, and in forwarding
    /// mode the first stamp expected is `seed + 1`.
    pub fn seed(mut self, seed: usize) -> Self {
        self.seed = seed;
        self
    }

    /// How far ahead of the released clock a forwarded stamp may be (default
    /// [`DEFAULT_REORDER_WINDOW`]). The window costs memory only for the span actually in use;
    /// the limit bounds it: a forwarder whose stamp is further ahead waits in
    /// [`forward`](crate::ClockedSender::forward) until the window reaches it (back-pressure),
    /// or gets [`StampTooFarAhead`](crate::SendErrorKind::StampTooFarAhead) from
    /// [`try_forward`](crate::ClockedSender::try_forward).
    pub fn reorder_window(mut self, stamps: usize) -> Self {
        self.reorder_window = stamps.max(1);
        self
    }

    /// How often, at most, a receiver blocked in a read (`recv`, a `Select`, `recv_async`) is
    /// woken only because the clock moved, while the dispatcher is busy (default
    /// [`DEFAULT_WAKE_INTERVAL`], 1 ms; capped at an hour).
    ///
    /// Data is never held back: a receiver that gets a message is woken for it at once. And a
    /// read that *looks* sees the clock as soon as it moves; only waking a read that sleeps is
    /// paced. So a receiver blocked in `recv` while the others' traffic flows returns
    /// `(None, t)` within this interval of the clock's move, or its stretch (below), instead of
    /// at every batch (the first move after a quiet interval wakes it at once). That is what
    /// keeps many receivers blocked in `recv` from taking the cores the traffic needs
    /// (BENCHMARKS.md).
    ///
    /// When many readers sleep, the interval stretches to 32 µs per reader woken the last time
    /// (so 63 readers: about 2 ms; the stretch is capped at 100 ms, and a longer interval
    /// wins), which keeps waking them under a quarter of one core up to about 3 000 readers.
    /// `Duration::ZERO` turns pacing off: they are woken at every batch the dispatcher ends
    /// with an empty intake, as before 5.0's pacing; a pipeline whose stages are driven by
    /// watermarks may want that, or a short interval with few readers.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let d = clocked_dispatch::Builder::new()
    ///     .bound(16)
    ///     .watermark_wake_interval(Duration::from_micros(200))
    ///     .build::<u32>();
    /// let (tx, _rx) = d.new("tx", "rx");
    /// let (_tx_b, rx_b) = d.new("tx_b", "rx_b");
    /// let waiter = std::thread::spawn(move || rx_b.recv());
    /// tx.send(7).unwrap();
    /// // b learns that stamp 1 passed it by.
    /// assert_eq!(waiter.join().unwrap(), Ok((None, 1)));
    /// ```
    pub fn watermark_wake_interval(mut self, interval: Duration) -> Self {
        self.wake_interval = interval.min(Duration::from_secs(3600));
        self
    }

    /// Name of the dispatcher thread (default `clocked-dispatch`).
    pub fn thread_name<S: Into<String>>(mut self, name: S) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Spill slow receivers' backlogs to disk under `dir` (see [`build_spilling`]). The
    /// directory is created if needed, and locked: one dispatcher per directory.
    ///
    /// [`build_spilling`]: Self::build_spilling
    pub fn spill_to<P: Into<PathBuf>>(mut self, dir: P) -> Self {
        self.spill_to = Some(dir.into());
        self
    }

    /// With spill: how many messages each receiver keeps in memory before the rest goes to
    /// disk (at least 1; default: the inbox capacity). Capped like [`bound`](Self::bound): see
    /// [`MAX_PREALLOCATED_BYTES`].
    pub fn memory_capacity(mut self, messages: usize) -> Self {
        self.memory_capacity = Some(messages.max(1));
        self
    }

    /// With spill: how many bytes of segment files each receiver may have on disk (default:
    /// no limit). What happens when it is reached is [`when_disk_full`](Self::when_disk_full).
    ///
    /// The limit is checked by senders before they hand a message over, so messages already
    /// in the intake when it is reached are still written: under `Block` and `Reject` a
    /// receiver's files can exceed the limit by up to [`bound`](Self::bound) messages plus one
    /// batch (broadcasts and forwards included). `DropOldest` is applied by the dispatcher
    /// itself, before each write, and keeps to the limit (a single write larger than the
    /// limit is still written).
    pub fn disk_limit(mut self, bytes: u64) -> Self {
        self.disk_limit = bytes;
        self
    }

    /// With spill: what a full disk budget does; see [`DiskFull`] (default `Block`).
    pub fn when_disk_full(mut self, policy: DiskFull) -> Self {
        self.when_disk_full = policy;
        self
    }

    /// With spill: the size at which a segment file is closed and a new one started (default
    /// [`DEFAULT_SEGMENT_SIZE`]). Disk space comes back a whole segment at a time, once it is
    /// read (or dropped).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// Journals the dispatcher in `dir` (created if needed): see [`crate::journal`] and
    /// [`build_journaled`](Self::build_journaled).
    pub fn journal<P: Into<PathBuf>>(mut self, dir: P) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// When a journaled message counts as stored; [`Durability::None`] by default.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The size at which the journal starts a new segment file; default
    /// [`DEFAULT_JOURNAL_SEGMENT_SIZE`].
    pub fn journal_segment_size(mut self, bytes: u64) -> Self {
        self.journal_segment_size = bytes.max(1);
        self
    }

    /// Keeps the journal under `bytes` on disk: once it is over, whole oldest segments are
    /// deleted (never the one being written), as kvspool's attrition does. Messages deleted
    /// before their receiver name committed them are counted, and a receiver that replays past
    /// them gets a [`SpillFault`](crate::SpillFault) of kind
    /// [`FaultKind::Expired`](crate::FaultKind::Expired) first. Unlimited by default.
    pub fn journal_retention_bytes(mut self, bytes: u64) -> Self {
        self.retention.max_bytes = bytes;
        self
    }

    /// Deletes journal segments whose last write is older than `age` (never the one being
    /// written), with the same accounting as
    /// [`journal_retention_bytes`](Self::journal_retention_bytes). Unlimited by default.
    pub fn journal_retention_age(mut self, age: std::time::Duration) -> Self {
        self.retention.max_age = Some(age);
        self
    }
}
