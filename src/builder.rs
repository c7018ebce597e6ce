//! [`Builder`]: every knob of a dispatcher, with 4.0.2's defaults.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dispatcher::Dispatcher;
use crate::engine::journaling::EngineJournal;
use crate::engine::waking::DEFAULT_WAKE_INTERVAL;
use crate::engine::Engine;
use crate::error::{BuildError, CapacityError, JournalError, SpillSetupError};
use crate::intake::Envelope;
use crate::journal::log::Journal;
use crate::journal::retention::RetentionConfig;
use crate::journal::Durability;
use crate::link::{Link, Shared};
use crate::spill::dir::SpillRoot;
use crate::spill::{Codec, DiskFull, SpillConfig};
use crate::sync::{channel, thread, Arc};

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
    /// `(None, t)` within this interval of the clock's move (the first move after a quiet
    /// interval wakes it at once), instead of at every batch. That is what keeps many receivers
    /// blocked in `recv` from taking the cores the traffic needs (BENCHMARKS.md). `Duration::ZERO`
    /// wakes them at every batch the dispatcher ends with an empty intake, as before 5.0's
    /// pacing; a pipeline whose stages are driven by watermarks may want it shorter.
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

    /// Builds a journaled dispatcher in the directory given to [`journal`](Self::journal):
    /// every message is written to the journal before it is delivered, the clock resumes
    /// above the last stamp the journal holds, and a receiver created under a name the journal
    /// knows first gets that name's messages after its last
    /// [`commit`](crate::ClockedReceiver::commit). Payloads are stored as their postcard
    /// encoding, as for spill.
    ///
    /// A receiver that falls behind never makes the dispatcher wait: once its inbox
    /// ([`inbox_capacity`](Self::inbox_capacity)) is full, its messages stay in the journal
    /// only and it reads them back from there, in order, before going back to memory. So the
    /// spill settings do not apply (nothing is written twice), and its memory stays within its
    /// inbox capacity. What retention deletes before it gets there is reported as a
    /// [`FaultKind::Expired`](crate::FaultKind::Expired) fault with the count.
    ///
    /// A seed below the journal's last stamp is raised to it.
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled) if no directory was given;
    /// [`InUse`](JournalError::InUse) if another dispatcher has the journal open; an
    /// [`Io`](JournalError::Io) error if it cannot be created, read or repaired; as
    /// [`try_build`](Self::try_build) for capacities and the thread.
    ///
    /// ```
    /// use clocked_dispatch::{Builder, Durability};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// for run in 0..2 {
    ///     let d = Builder::new()
    ///         .bound(8)
    ///         .journal(dir.path())
    ///         .durability(Durability::Batch)
    ///         .build_journaled::<u64>()
    ///         .unwrap();
    ///     let (tx, rx) = d.new("tx", "rx");
    ///     tx.send(run).unwrap();
    ///     // The second run's stamp follows the first run's.
    ///     let (value, stamp) = rx.recv().unwrap();
    ///     if run == 1 {
    ///         // Not committed in run 0: replayed first.
    ///         assert_eq!((value, stamp), (Some(0), 1));
    ///         assert_eq!(rx.recv().unwrap(), (Some(1), 2));
    ///     }
    /// }
    /// ```
    pub fn build_journaled<T>(mut self) -> Result<Dispatcher<T>, JournalError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let dir = self.journal_dir.clone().ok_or(JournalError::NotJournaled)?;
        check_capacity::<(usize, Envelope<T>)>("bound", self.bound)
            .map_err(JournalError::Capacity)?;
        let setting = match self.inbox_capacity {
            Some(_) => "inbox_capacity",
            None => "bound",
        };
        check_capacity::<(T, usize)>(setting, self.effective_inbox_capacity())
            .map_err(JournalError::Capacity)?;
        let journal = std::sync::Arc::new(Journal::open(
            dir,
            self.durability,
            self.journal_segment_size,
            self.retention,
        )?);
        crate::journal::retention::start(&journal).map_err(JournalError::Thread)?;
        self.seed = self.seed.max(journal.recovered().last_stamp);
        let codec = Codec::postcard();
        let returned = std::sync::Arc::new(parking_lot::Mutex::new(Default::default()));
        let engine_journal = EngineJournal::new(journal.clone(), codec.encode, returned.clone())
            .write_behind()
            .map_err(JournalError::Thread)?;
        let (mut link, thread) = self
            .start_with(None, Some((journal, engine_journal)))
            .map_err(JournalError::Thread)?;
        link.returned = Some(returned);
        Ok(Dispatcher::journaled(link, thread, codec))
    }

    /// Starts a dispatcher whose receivers spill to disk when they fall behind: the
    /// dispatcher never waits for a slow receiver; once its memory queue
    /// ([`memory_capacity`](Self::memory_capacity)) is full, later messages for it are written
    /// to segment files under [`spill_to`](Self::spill_to) and read back in order. Receivers
    /// cannot tell where a message came from; stamps, order and watermarks are as without
    /// spill. See [`ClockedReceiver::spill_stats`](crate::ClockedReceiver::spill_stats) and
    /// [`Dispatcher::spill_status`].
    ///
    /// Values are encoded with serde ([postcard](https://docs.rs/postcard)) when they spill.
    /// `Vec<u8>`, `Box<[u8]>`, `String` and `Box<str>` skip serde's per-byte walk: they are
    /// written as one length and one copy (the same bytes postcard writes). A `Vec<u8>` inside
    /// your own type goes through serde one byte at a time; mark it `#[serde(with =
    /// "serde_bytes")]` for the same speed.
    /// Without [`spill_to`](Self::spill_to), a directory under the system's temporary
    /// directory is used.
    ///
    /// # Errors
    ///
    /// [`SpillSetupError::Capacity`] if [`bound`](Self::bound) or
    /// [`memory_capacity`](Self::memory_capacity) is too large to allocate (see
    /// [`MAX_PREALLOCATED_BYTES`]), [`SpillSetupError::InUse`] if another dispatcher holds the directory,
    /// [`SpillSetupError::Io`] if it cannot be created or locked, and
    /// [`SpillSetupError::Thread`] if the thread cannot start.
    ///
    /// ```
    /// use clocked_dispatch::{Builder, DiskFull};
    ///
    /// let dir = std::env::temp_dir().join(format!("cd-doc-{}", std::process::id()));
    /// let d = Builder::new()
    ///     .bound(16)
    ///     .spill_to(&dir)
    ///     .memory_capacity(4)
    ///     .disk_limit(1 << 30)
    ///     .when_disk_full(DiskFull::Block)
    ///     .build_spilling::<String>()
    ///     .unwrap();
    /// let (tx, rx) = d.new("tx", "rx");
    /// for i in 0..100 {
    ///     tx.send(format!("message {i}")).unwrap(); // never waits for rx: 96 go to disk
    /// }
    /// drop(tx);
    /// let got: Vec<String> = rx.filter_map(|(value, _stamp)| value).collect();
    /// assert_eq!(got.len(), 100);
    /// assert_eq!(got[99], "message 99");
    /// d.join(); // every handle gone: the thread exits and the spill directory is removed
    /// assert!(!dir.exists());
    /// ```
    pub fn build_spilling<T>(self) -> Result<Dispatcher<T>, SpillSetupError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let dir = match &self.spill_to {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!(
                "clocked-dispatch-{}-{}",
                std::process::id(),
                SPILL_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
        };
        let memory_capacity = self
            .memory_capacity
            .unwrap_or(self.effective_inbox_capacity());
        check_capacity::<(usize, Envelope<T>)>("bound", self.bound)
            .map_err(SpillSetupError::Capacity)?;
        let setting = match (self.memory_capacity, self.inbox_capacity) {
            (Some(_), _) => "memory_capacity",
            (None, Some(_)) => "inbox_capacity",
            (None, None) => "bound",
        };
        check_capacity::<(T, usize)>(setting, memory_capacity)
            .map_err(SpillSetupError::Capacity)?;
        let config = SpillConfig {
            memory_capacity,
            disk_limit: self.disk_limit,
            when_full: self.when_disk_full,
            segment_size: self.segment_size,
        };
        let root = SpillRoot::open(dir, config)?;
        let (link, thread) = self
            .start(Some(root.clone()))
            .map_err(SpillSetupError::Thread)?;
        Ok(Dispatcher::spilling(link, thread, root, Codec::postcard()))
    }

    /// Starts the dispatcher thread.
    ///
    /// # Panics
    ///
    /// If [`bound`](Self::bound) or [`inbox_capacity`](Self::inbox_capacity) is too large to
    /// allocate up front (see [`MAX_PREALLOCATED_BYTES`]), with a message naming the limit; or
    /// if the operating system refuses to start a thread, like `std::thread::spawn`. See
    /// [`try_build`](Self::try_build).
    pub fn build<T: Send + 'static>(self) -> Dispatcher<T> {
        match self.try_build() {
            Ok(dispatcher) => dispatcher,
            Err(e) => panic!("clocked_dispatch: cannot build the dispatcher: {e}"),
        }
    }

    /// Starts the dispatcher thread.
    ///
    /// # Errors
    ///
    /// [`BuildError::Capacity`] if [`bound`](Self::bound) or
    /// [`inbox_capacity`](Self::inbox_capacity) is too large to allocate up front (see
    /// [`MAX_PREALLOCATED_BYTES`]); [`BuildError::Thread`] with the operating system's error if
    /// the thread cannot start.
    pub fn try_build<T: Send + 'static>(self) -> Result<Dispatcher<T>, BuildError> {
        check_capacity::<(usize, Envelope<T>)>("bound", self.bound)
            .map_err(BuildError::Capacity)?;
        let setting = match self.inbox_capacity {
            Some(_) => "inbox_capacity",
            None => "bound",
        };
        check_capacity::<(T, usize)>(setting, self.effective_inbox_capacity())
            .map_err(BuildError::Capacity)?;
        let (link, thread) = self.start(None).map_err(BuildError::Thread)?;
        Ok(Dispatcher::from_link(link, thread))
    }

    fn effective_inbox_capacity(&self) -> usize {
        self.inbox_capacity.unwrap_or(self.bound).max(1)
    }

    /// Starts the dispatcher thread; returns the way into it, and the thread.
    fn start<T: Send + 'static>(
        self,
        spill: Option<std::sync::Arc<SpillRoot>>,
    ) -> io::Result<(Link<T>, thread::JoinHandle<()>)> {
        self.start_with(spill, None)
    }

    fn start_with<T: Send + 'static>(
        self,
        spill: Option<std::sync::Arc<SpillRoot>>,
        journal: Option<(std::sync::Arc<Journal>, EngineJournal<T>)>,
    ) -> io::Result<(Link<T>, thread::JoinHandle<()>)> {
        let mut shared = Shared::new(
            self.seed,
            self.reorder_window,
            self.effective_inbox_capacity(),
            spill,
        );
        let engine_journal = journal.map(|(journal, engine_journal)| {
            shared.journal = Some(journal);
            engine_journal
        });
        let shared = Arc::new(shared);
        let (data_tx, data_rx) = crate::intake::queue::intake_queue(self.bound);
        let (control_tx, control_rx) = channel::unbounded();
        let engine = Engine::new(
            shared.clone(),
            data_rx,
            control_rx,
            self.seed,
            engine_journal,
            self.wake_interval,
        );
        let thread = thread::Builder::new()
            .name(self.thread_name)
            .spawn(move || engine.run())?;
        Ok((Link::new(data_tx, control_tx, shared), thread))
    }
}

/// Refuses a queue `capacity` whose up-front buffer of `M` slots would exceed
/// [`MAX_PREALLOCATED_BYTES`]. Both queues (the intake, `crate::intake::queue`, and an inbox's
/// ring, `crate::ring`) allocate the next power of two slots at or above their capacity, so the
/// largest capacity allowed is the largest power of two that fits.
fn check_capacity<M>(setting: &'static str, capacity: usize) -> Result<(), CapacityError> {
    let slot = std::mem::size_of::<M>().max(1);
    let fitting = MAX_PREALLOCATED_BYTES / slot;
    // The largest power of two <= fitting.
    let max_capacity = if fitting == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - fitting.leading_zeros())
    };
    match capacity.max(1).checked_next_power_of_two() {
        Some(slots) if slots <= max_capacity => Ok(()),
        _ => Err(CapacityError::new(setting, capacity, max_capacity)),
    }
}

/// Numbers the default spill directories of one process.
static SPILL_DIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
