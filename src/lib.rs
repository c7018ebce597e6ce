//! Channels that share one clock.
//!
//! Every message goes through one dispatcher thread, which stamps it with a global,
//! monotonically increasing sequence number and delivers it to its receiver. Every *other*
//! receiver learns, without anyone blocking, that the clock has moved: its next read returns
//! `(None, stamp)`.
//!
//! ```text
//!   tx_a ─┐                         ┌─► rx_a   (Some(v), 7)
//!   tx_b ─┼─► intake ─► dispatcher ─┼─► rx_b   (None, 7)   "7 stamps have passed you by"
//!   tx_c ─┘   (bounded)  stamps ts  └─► rx_c   (None, 7)
//! ```
//!
//! The dispatcher runs in one of two modes, fixed by the first data message:
//!
//! * **serializing** — senders call [`send`](ClockedSender::send) (or
//!   [`broadcast`](ClockedBroadcaster::broadcast)); the dispatcher assigns stamps 1, 2, 3, …
//!   (or `seed + 1`, … with [`new_with_seed`]);
//! * **forwarding** — senders call [`forward`](ClockedSender::forward) with stamps from an
//!   upstream dispatcher, in any order; the dispatcher releases them strictly in stamp order.
//!
//! so dispatchers compose: a serializing one at the top, forwarding ones below.
//!
//! This crate is the successor of clocked-dispatch 4.0.2 with the same API. What changed, and
//! why, is in the README's migration section; in short: sends return `Result` instead of
//! panicking, dropping a handle never blocks, bound 0 works, a closed receiver stays closed,
//! `T: Clone` is needed only to broadcast, and the per-message cost no longer grows with the
//! number of receivers.
//!
//! # Examples
//!
//! Simple:
//!
//! ```
//! use std::thread;
//!
//! let d = clocked_dispatch::new(1);
//! let (tx, rx) = d.new("atx1", "arx");
//! thread::spawn(move || tx.send(10).unwrap());
//! assert_eq!(rx.recv().unwrap().0, Some(10));
//! ```
//!
//! Shared between threads:
//!
//! ```
//! use std::thread;
//!
//! let d = clocked_dispatch::new(10);
//! let (tx, rx) = d.new("atx", "arx");
//! for i in 0..10 {
//!     let tx = tx.clone(format!("atx{i}"));
//!     thread::spawn(move || tx.send(i).unwrap());
//! }
//! drop(tx);
//! let mut got: Vec<i32> = rx.map(|(v, _)| v.unwrap()).collect();
//! got.sort();
//! assert_eq!(got, (0..10).collect::<Vec<_>>());
//! ```
//!
//! In-order delivery when forwarding (stamp 2 waits for stamp 1):
//!
//! ```
//! use std::sync::mpsc::TryRecvError;
//! use std::time::Duration;
//!
//! let m = clocked_dispatch::new(10);
//! let (tx1, rx) = m.new("tx1", "a");
//! let tx2 = tx1.clone("tx2");
//!
//! tx1.forward(Some("a2"), 2).unwrap();
//! // Stamp 1 is unaccounted for, so nothing may be released, however long we wait.
//! assert_eq!(rx.recv_timeout(Duration::from_millis(50)).is_err(), true);
//! assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
//!
//! tx2.forward(None, 1).unwrap(); // stamp 1 carried no data for anyone
//! assert_eq!(rx.recv(), Ok((Some("a2"), 2)));
//! ```
//!
//! # Reading many receivers
//!
//! * [`Select`] waits on several receivers (of any dispatchers and payload types) at once;
//! * [`fuse`] reads several receivers of one dispatcher as one stream in stamp order;
//! * [`ClockedRead`] is the reading API both receivers and fused streams offer (the
//!   [`pipeline`] helpers take it);
//! * with the `async` feature: `recv_async`, `into_stream` (a `futures_core::Stream`),
//!   `send_async` and `forward_async`, runtime-agnostic;
//! * [`Dispatcher::status`], [`ClockedReceiver::lag`] and [`ClockedReceiver::backlog`] say how
//!   far behind everyone is.
//!
//! # Errors instead of panics
//!
//! ```
//! use clocked_dispatch::{Mode, SendErrorKind};
//!
//! let d = clocked_dispatch::new(4);
//! let (tx, _rx) = d.new("tx", "rx");
//! tx.send(1).unwrap(); // the dispatcher is now serializing
//! let err = tx.forward(Some(2), 2).unwrap_err();
//! assert_eq!(err.kind(), SendErrorKind::WrongMode { dispatcher: Mode::Serializing });
//! assert_eq!(err.into_inner(), Some(2));
//! ```
#![warn(missing_docs)]

#[cfg(feature = "async")]
mod async_recv;
#[cfg(feature = "async")]
mod async_send;
mod builder;
mod clock;
mod deadline;
mod dispatcher;
mod engine;
mod error;
mod fuse;
mod inbox;
mod intake;
pub mod journal;
mod link;
mod multicast;
pub mod pipeline;
mod read;
mod receiver;
mod registry;
#[cfg(feature = "remote")]
pub mod remote;
mod reorder;
mod ring;
mod select;
mod selectable;
mod sender;
mod slots;
mod spill;
mod stats;
mod status;
mod sync;
mod waiter;

#[cfg(feature = "async")]
pub use async_recv::{RecvFuture, StampedStream};
#[cfg(feature = "async")]
pub use async_send::{ForwardFuture, MulticastFuture, SendFuture};
pub use builder::{
    Builder, DEFAULT_JOURNAL_SEGMENT_SIZE, DEFAULT_REORDER_WINDOW, DEFAULT_SEGMENT_SIZE,
    MAX_PREALLOCATED_BYTES,
};
pub use dispatcher::{Dispatcher, History};
pub use engine::waking::DEFAULT_WAKE_INTERVAL;
pub use error::{
    BuildError, CapacityError, HandleError, JournalError, Mode, RecvCheckedError, SendError,
    SendErrorKind, SpillSetupError,
};
pub use fuse::{fuse, FuseError, FuseErrorKind, Fused};
pub use journal::{Durability, JournalGap, RecoveryReport};
pub use multicast::ClockedMulticaster;
pub use read::ClockedRead;
pub use receiver::{ClockedReceiver, TryIter};
pub use select::{Select, SelectTimeoutError, SelectedOperation, TryReadyError, TrySelectError};
pub use sender::{ClockedBroadcaster, ClockedSender};
pub use spill::failure::FAILING_DISK_WAIT;
pub use spill::{DiskFull, FaultKind, SpillFault, SpillStats};
pub use stats::DispatcherStats;
pub use status::{ReceiverStatus, Status};

/// How many values [`ClockedSender::send_all`] hands to the dispatcher at once.
pub const SEND_ALL_CHUNK: usize = 64;

/// Starts a dispatcher whose intake holds `bound` messages (0: every send is a rendezvous with
/// the dispatcher thread); each receiver's inbox holds `bound` too (at least 1).
///
/// Shorthand for `Builder::new().bound(bound).build()`.
///
/// # Panics
///
/// If `bound` is too large to allocate up front (its buffer would exceed
/// [`MAX_PREALLOCATED_BYTES`]; see [`Builder::bound`]), with a message naming the limit, or if
/// the operating system refuses to start the thread. [`Builder::try_build`] returns these as
/// errors.
pub fn new<T: Send + 'static>(bound: usize) -> Dispatcher<T> {
    Builder::new().bound(bound).build()
}

/// Like [`new`], with the clock starting at `seed`: the first stamp assigned is `seed + 1`.
/// Panics as [`new`] does.
///
/// Lets a program keep stamps monotonic across restarts: store the last stamp seen, resume
/// from it.
///
/// ```
/// let d = clocked_dispatch::new_with_seed(1, 69105);
/// let (tx, rx) = d.new("tx", "rx");
/// tx.send("a").unwrap();
/// assert_eq!(rx.recv(), Ok((Some("a"), 69106)));
/// ```
pub fn new_with_seed<T: Send + 'static>(bound: usize, seed: usize) -> Dispatcher<T> {
    Builder::new().bound(bound).seed(seed).build()
}

/// The README's examples, compiled and run as doc tests so they cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
