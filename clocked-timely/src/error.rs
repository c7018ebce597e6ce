//! The errors of this crate's helpers. The operators themselves do not fail: what they cannot
//! deliver they count (see [`SourceHandle`](crate::SourceHandle) and
//! [`SinkHandle`](crate::SinkHandle)).

use std::fmt;

use clocked_dispatch::HandleError;

/// Why a worker could not take its handle from a [`WorkerSlots`](crate::WorkerSlots).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TakeError {
    /// The worker's reader was taken already (a dataflow built twice on one worker: build
    /// the second from another dispatcher's readers).
    AlreadyTaken {
        /// The worker's global index.
        worker: usize,
    },
}

impl fmt::Display for TakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeError::AlreadyTaken { worker } => {
                write!(f, "the reader of worker {worker} was already taken")
            }
        }
    }
}

impl std::error::Error for TakeError {}

/// Why [`per_worker`](crate::per_worker) could not make its senders and receivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerWorkerError {
    /// No worker of the computation runs in this process.
    NoLocalWorkers,
    /// The dispatcher refused a receiver (a name in use, or its thread has stopped).
    Handle(HandleError),
}

impl fmt::Display for PerWorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerWorkerError::NoLocalWorkers => f.write_str("no timely worker runs in this process"),
            PerWorkerError::Handle(e) => write!(f, "cannot make a worker's receiver: {e}"),
        }
    }
}

impl std::error::Error for PerWorkerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PerWorkerError::NoLocalWorkers => None,
            PerWorkerError::Handle(e) => Some(e),
        }
    }
}

/// Why a [`Sink`](crate::Sink) could not be built as asked on this worker.
///
/// Every worker must build the same dataflow: a worker that returns early from building
/// (say with `?`) leaves the others waiting forever for its part of the computation. So
/// `MissingSender` and `SenderOnOtherWorker` come back *after* the operator was built, without
/// a sender, and `NoSuchWorker` is the same on every worker. Treat them as a bug to fix, and
/// still finish building the dataflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SinkError {
    /// The sink worker's index is not a worker of the computation.
    NoSuchWorker {
        /// The sink worker given.
        worker: usize,
        /// How many workers the computation has.
        peers: usize,
    },
    /// This is the sink worker, and it was given no sender.
    MissingSender {
        /// The sink worker.
        worker: usize,
    },
    /// A sender was given to a worker that is not the sink worker (every stamp may be
    /// forwarded once, by the sink worker).
    SenderOnOtherWorker {
        /// The sink worker.
        sink_worker: usize,
        /// This worker.
        this_worker: usize,
    },
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::NoSuchWorker { worker, peers } => {
                write!(
                    f,
                    "sink worker {worker} does not exist (the computation has {peers} workers)"
                )
            }
            SinkError::MissingSender { worker } => {
                write!(
                    f,
                    "worker {worker} is the sink worker but was given no sender"
                )
            }
            SinkError::SenderOnOtherWorker {
                sink_worker,
                this_worker,
            } => write!(
                f,
                "worker {this_worker} was given a sender, but the sink worker is {sink_worker}"
            ),
        }
    }
}

impl std::error::Error for SinkError {}
