//! clocked-timely (draft)
#![warn(missing_docs)]

mod error;
pub mod sink;
pub mod source;
mod time;
mod wake;
pub mod workers;

pub use error::{PerWorkerError, SinkError, TakeError};
pub use sink::{Sink, SinkHandle, SinkStats};
pub use source::{ClockedSource, Source, SourceHandle, DEFAULT_BATCH};
pub use time::StampTime;
pub use workers::{per_worker, WorkerSenders, WorkerSlots, Workers};
