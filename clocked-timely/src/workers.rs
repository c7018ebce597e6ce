//! Many workers, many processes: [`Workers`], [`per_worker`], [`WorkerSenders`] and
//! [`WorkerSlots`].
//!
//! # The model
//!
//! * **One process, `-w N` workers.** One dispatcher and one receiver per worker
//!   ([`per_worker`]). A producer thread holds a [`WorkerSenders`]: one sender per worker's
//!   receiver, and picks one per message, by key ([`WorkerSenders::for_key`]: `key % N`) or by
//!   worker index. Every receiver sees every stamp (as data or as a watermark), so every
//!   worker's source advances with the one clock, and timely's frontier, the minimum over the
//!   workers, is that clock.
//! * **Several processes (`-n P -p i`).** A dispatcher is a thread of one process: each process
//!   runs its own dispatcher, fed by its own producers, with one receiver per *local* worker.
//!   A time `t` then means "stamp `t` of each process's own clock", and timely's frontier passes
//!   `t` once *every* process's clock has: a window over stamps `(a, b]` holds, from each
//!   process, what its dispatcher stamped in `(a, b]` — time is aligned by position in each
//!   process's stream, as Kafka offsets are per partition. Give each process's dispatcher its
//!   own share of the input (its own producers, its own partitions of a log); keyed state
//!   still needs timely's `Exchange`, since a producer can only reach the workers of its own
//!   process.
//!
//! Routing by key at the source (rather than round-robin) only decides which worker reads a
//! message first; it saves an exchange when the key is the one the computation groups by and
//! there is one process.
//!
//! timely's `execute` runs one closure on every worker thread and wants it `Send + Sync`;
//! receivers and senders are `Send` but not `Sync`, so they wait in a [`WorkerSlots`] (a
//! mutex of slots, touched once per worker) until their worker takes them.

use std::sync::{Mutex, PoisonError};

use clocked_dispatch::{ClockedReceiver, ClockedSender, Dispatcher, HandleError};
use timely::dataflow::{Scope, Stream};
use timely::CommunicationConfig;

use crate::error::{PerWorkerError, TakeError};
use crate::source::{ClockedSource, Source, SourceHandle};
use crate::time::StampTime;

/// This process's share of a timely computation's workers: global worker indices
/// `first .. first + local`, out of `peers` in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Workers {
    first: usize,
    local: usize,
    peers: usize,
}

impl Workers {
    /// The workers of `config` that run in this process. timely numbers workers process by
    /// process: process `p` of a cluster with `w` threads each runs workers `p * w .. p * w + w`.
    pub fn from_config(config: &timely::Config) -> Self {
        match &config.communication {
            CommunicationConfig::Thread => Workers::local(1),
            CommunicationConfig::Process(threads) | CommunicationConfig::ProcessBinary(threads) => {
                Workers::local(*threads)
            }
            CommunicationConfig::Cluster {
                threads,
                process,
                addresses,
                ..
            } => Workers {
                first: process * threads,
                local: *threads,
                peers: threads * addresses.len(),
            },
        }
    }

    /// `threads` workers, all in this process.
    pub fn local(threads: usize) -> Self {
        Workers {
            first: 0,
            local: threads,
            peers: threads,
        }
    }

    /// This process's index (0 unless in a cluster).
    pub fn process(&self) -> usize {
        self.first / self.local.max(1)
    }

    /// How many processes the computation runs in.
    pub fn processes(&self) -> usize {
        self.peers / self.local.max(1)
    }

    /// The index of this process's first worker.
    pub fn first(&self) -> usize {
        self.first
    }

    /// How many workers run in this process.
    pub fn count(&self) -> usize {
        self.local
    }

    /// How many workers the computation has, in all processes.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The global indices of this process's workers.
    pub fn indices(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.local
    }
}

/// One sender per local worker's receiver, for one producer: pick one per message.
///
/// ```
/// use clocked_timely::{per_worker, Workers};
///
/// let d = clocked_dispatch::new::<(String, u32)>(64);
/// let (senders, _readers) = per_worker(&d, Workers::local(2), "words").unwrap();
/// let word = "timely".to_owned();
/// let key = word.len() as u64; // any hash of what the computation groups by
/// senders.for_key(key).send((word, 1)).unwrap();
/// ```
#[derive(Debug)]
pub struct WorkerSenders<T> {
    senders: Vec<ClockedSender<T>>,
    first: usize,
}

impl<T> WorkerSenders<T> {
    /// The sender to worker `key % count()` of this process.
    pub fn for_key(&self, key: u64) -> &ClockedSender<T> {
        // `count()` is at least 1 (`per_worker` makes no empty set) and fits in a u64.
        let index = (key % self.senders.len() as u64) as usize;
        &self.senders[index]
    }

    /// The sender to the worker with global index `worker`, if it runs in this process.
    pub fn to_worker(&self, worker: usize) -> Option<&ClockedSender<T>> {
        self.senders.get(worker.checked_sub(self.first)?)
    }

    /// How many workers (of this process) these senders reach.
    pub fn count(&self) -> usize {
        self.senders.len()
    }

    /// Every sender, in worker order.
    pub fn all(&self) -> &[ClockedSender<T>] {
        &self.senders
    }

    /// A set for another producer: one more sender per receiver, named `{name}-{worker}`.
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::try_clone`] (a receiver gone, the dispatcher stopped).
    pub fn try_clone(&self, name: &str) -> Result<Self, HandleError> {
        let senders = self
            .senders
            .iter()
            .enumerate()
            .map(|(i, tx)| tx.try_clone(format!("{name}-{}", self.first + i)))
            .collect::<Result<_, _>>()?;
        Ok(WorkerSenders {
            senders,
            first: self.first,
        })
    }
}

/// Handles waiting for their workers (receivers, a sink's sender): each worker takes its
/// own, once, from inside timely's `execute` closure, which must be `Sync` while receivers
/// and senders are not. A worker without a reader builds an absent source (see
/// [`Source::absent`]); a worker without the sink's sender is not the sink worker.
#[derive(Debug)]
pub struct WorkerSlots<X> {
    slots: Mutex<Vec<(usize, Option<X>)>>,
}

impl<X> WorkerSlots<X> {
    /// Handles for the given global worker indices.
    pub fn new<I: IntoIterator<Item = (usize, X)>>(handles: I) -> Self {
        let slots = handles.into_iter().map(|(i, x)| (i, Some(x))).collect();
        WorkerSlots {
            slots: Mutex::new(slots),
        }
    }

    /// One handle, for worker `worker` only: a [`Fused`](clocked_dispatch::Fused) stream read
    /// by worker 0 (every other worker gets an absent source), or a sink's sender.
    pub fn on_worker(worker: usize, handle: X) -> Self {
        WorkerSlots::new([(worker, handle)])
    }

    /// No handle for any worker (a process that has no part in a sink, say).
    pub fn none() -> Self {
        WorkerSlots::new([])
    }

    /// The handle of worker `worker`: `Ok(None)` if it has none.
    ///
    /// # Errors
    ///
    /// [`TakeError::AlreadyTaken`] if it was taken before.
    pub fn take(&self, worker: usize) -> Result<Option<X>, TakeError> {
        // A worker that panicked while holding the lock left the slots intact.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.iter_mut().find(|(i, _)| *i == worker) {
            None => Ok(None),
            Some((_, slot)) => slot
                .take()
                .map(Some)
                .ok_or(TakeError::AlreadyTaken { worker }),
        }
    }

    /// Takes the reader of the worker running `scope` and builds its source (an absent one
    /// if the worker has no reader).
    ///
    /// # Errors
    ///
    /// As [`take`](Self::take).
    pub fn source<'scope, T, D>(
        &self,
        scope: Scope<'scope, T>,
    ) -> Result<(Stream<'scope, T, Vec<D>>, SourceHandle), TakeError>
    where
        X: ClockedSource<D>,
        T: StampTime,
        D: 'static,
    {
        let source = match self.take(scope.index())? {
            Some(reader) => Source::new(reader),
            None => Source::absent(),
        };
        Ok(source.build(scope))
    }
}

/// One dispatcher, one receiver per worker of this process: the senders (for one producer;
/// [`WorkerSenders::try_clone`] for more) and the receivers, waiting for their workers.
/// Receivers are named `{name}-w{worker}`, senders `{name}-tx-{worker}`.
///
/// # Errors
///
/// [`PerWorkerError::NoLocalWorkers`] if `workers` has no worker in this process (there would
/// be no receiver to route to); otherwise the dispatcher's: a receiver name in use, the
/// dispatcher stopped.
///
/// ```
/// use clocked_timely::{per_worker, Workers};
/// use timely::dataflow::operators::Inspect;
///
/// let d = clocked_dispatch::new::<u64>(64);
/// let workers = Workers::local(2);
/// let (senders, readers) = per_worker(&d, workers, "numbers").unwrap();
/// let producer = std::thread::spawn(move || {
///     for n in 0..100u64 {
///         senders.for_key(n).send(n).unwrap();
///     }
/// });
/// let guards = timely::execute(timely::Config::process(2), move |worker| {
///     worker.dataflow::<u64, _, _>(|scope| {
///         let (numbers, _) = readers.source(scope).expect("each worker takes its reader once");
///         numbers.inspect(|n| assert!(*n < 100));
///     });
/// })
/// .unwrap();
/// producer.join().unwrap();
/// drop(guards); // joins the workers: they finish once the senders are gone
/// ```
pub fn per_worker<T: Send>(
    dispatcher: &Dispatcher<T>,
    workers: Workers,
    name: &str,
) -> Result<(WorkerSenders<T>, WorkerSlots<ClockedReceiver<T>>), PerWorkerError> {
    if workers.count() == 0 {
        return Err(PerWorkerError::NoLocalWorkers);
    }
    let mut senders = Vec::with_capacity(workers.count());
    let mut readers = Vec::with_capacity(workers.count());
    for worker in workers.indices() {
        let (tx, rx) = dispatcher
            .try_new(format!("{name}-tx-{worker}"), format!("{name}-w{worker}"))
            .map_err(PerWorkerError::Handle)?;
        senders.push(tx);
        readers.push((worker, rx));
    }
    Ok((
        WorkerSenders {
            senders,
            first: workers.first(),
        },
        WorkerSlots::new(readers),
    ))
}
