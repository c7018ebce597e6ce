//! Building a dispatcher from a [`Builder`]: checking its settings, opening its journal or
//! spill directory, and starting the dispatcher thread.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dispatcher::Dispatcher;
use crate::engine::journaling::EngineJournal;
use crate::engine::Engine;
use crate::error::{BuildError, CapacityError, JournalError, SpillSetupError};
use crate::intake::Envelope;
use crate::journal::log::Journal;
use crate::link::{Link, Shared};
use crate::spill::dir::SpillRoot;
use crate::spill::{Codec, SpillConfig};
use crate::sync::{channel, thread, Arc};

use super::{Builder, MAX_PREALLOCATED_BYTES};

impl Builder {
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
        self.check_capacities::<T>()
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
    /// [`MAX_PREALLOCATED_BYTES`]), [`SpillSetupError::InUse`] if another dispatcher holds the
    /// directory, [`SpillSetupError::Io`] if it cannot be created or locked, and
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
        self.check_capacities::<T>().map_err(BuildError::Capacity)?;
        let (link, thread) = self.start(None).map_err(BuildError::Thread)?;
        Ok(Dispatcher::from_link(link, thread))
    }

    fn effective_inbox_capacity(&self) -> usize {
        self.inbox_capacity.unwrap_or(self.bound).max(1)
    }

    /// The intake's bound and the inboxes' capacity can be allocated up front (the checks of
    /// [`try_build`](Self::try_build) and [`build_journaled`](Self::build_journaled); a
    /// spilling build checks its memory capacity instead).
    fn check_capacities<T>(&self) -> Result<(), CapacityError> {
        check_capacity::<(usize, Envelope<T>)>("bound", self.bound)?;
        let setting = match self.inbox_capacity {
            Some(_) => "inbox_capacity",
            None => "bound",
        };
        check_capacity::<(T, usize)>(setting, self.effective_inbox_capacity())
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
