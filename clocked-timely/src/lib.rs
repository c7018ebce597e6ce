//! Bridges between [clocked-dispatch](clocked_dispatch) and
//! [timely-dataflow](timely): a dispatcher's stamps and watermarks become a timely
//! computation's times and progress, and a timely stream's times and progress become a
//! forwarding dispatcher's stamps and watermarks.
//!
//! ```text
//!  producers ─► dispatcher ─► receiver per worker ─► Source ─► timely … ─► Sink ─► dispatcher ─► readers
//!              stamps ts      (Some(v), ts)          v at ts   frontier     forward(Some(vs), t)
//!                             (None, w)              frontier → w + 1       forward(None, t) as the
//!                                                                           frontier passes t
//! ```
//!
//! Use it when one process is no longer enough: timely runs the computation on many workers
//! and many processes (`-w`, `-n`, `-p`, `-h`), with real progress tracking, while the
//! producers and consumers keep the clocked API. For a computation that fits in one process,
//! the library's own [`pipeline`](clocked_dispatch::pipeline) helpers are simpler.
//!
//! # The pieces
//!
//! * [`Source`]: a [`ClockedReceiver`](clocked_dispatch::ClockedReceiver) or a
//!   [`Fused`](clocked_dispatch::Fused) stream as a timely stream. Each value at its stamp
//!   ([`Source::build`]), or in batches with the stamps inside ([`Source::build_batched`]).
//!   Its capability sits one above the last stamp the receiver returned, and is dropped when
//!   the receiver closes.
//! * [`Sink`]: a timely stream into a dispatcher in forwarding mode; the records of a time as
//!   one message under that time, every other stamp forwarded without data once timely's
//!   frontier has passed it.
//! * [`per_worker`], [`WorkerSenders`], [`WorkerSlots`], [`Workers`]: one dispatcher, one
//!   receiver per worker, routing by key, and handing receivers and senders to timely's worker
//!   threads; the model for several processes is in [`workers`].
//!
//! # Timestamps
//!
//! A stamp is a `usize`; the operators take any [`StampTime`]: `u64` (what
//! `timely::example` uses and most timely code does) or `usize`. A time is the stamp itself,
//! no offset, no scaling.
//!
//! # Invariants (the tests check them)
//!
//! * **Source**: its capability is always exactly one above the last stamp its receiver
//!   returned, data or watermark, so timely's frontier after it is that (or the stamp of a
//!   record still on its way); no record arrives at a time the frontier had passed, and timely
//!   never waits for a stamp the dispatcher has passed. Every value arrives at its stamp
//!   (batched: carries it, at a time at or below it). The computation ends when the senders
//!   are gone.
//! * **Sink**: every stamp from the first on is forwarded exactly once, in order, data or
//!   not, up to timely's frontier (and, at the end, up to the last record); the downstream
//!   receiver closes when the computation ends.
//! * **Idle is free**: nothing polls. The operators poll the library's `async` API with a
//!   [`Waker`](std::task::Waker) that activates them through timely's `SyncActivator`, which
//!   unparks a worker parked in `step_or_park`; an idle computation costs no CPU.
//!
//! # Example
//!
//! Two workers, each reading its own receiver of one dispatcher, routed by key:
//!
//! ```
//! use clocked_timely::{per_worker, Workers};
//! use timely::dataflow::operators::Inspect;
//!
//! let d = clocked_dispatch::new::<u64>(64);
//! let (senders, readers) = per_worker(&d, Workers::local(2), "numbers").unwrap();
//! let producer = std::thread::spawn(move || {
//!     for n in 0..1000u64 {
//!         senders.for_key(n).send(n).unwrap(); // worker n % 2
//!     }
//! });
//! timely::execute(timely::Config::process(2), move |worker| {
//!     worker.dataflow::<u64, _, _>(|scope| {
//!         let (numbers, _handle) = readers.source(scope).unwrap();
//!         numbers.inspect(|n| assert!(*n < 1000));
//!     });
//! })
//! .unwrap()
//! .join(); // ends when the producer's senders are gone
//! producer.join().unwrap();
//! ```
//!
//! The word count example (`examples/wordcount`) puts everything together, across processes
//! too.
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
