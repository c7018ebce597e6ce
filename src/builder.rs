//! [`Builder`]: every knob of a dispatcher, with 4.0.2's defaults.

use std::io;

use crate::dispatcher::Dispatcher;
use crate::engine::Engine;
use crate::link::{Link, Shared};
use crate::sync::{channel, thread, Arc};

/// Default for [`Builder::reorder_window`].
pub const DEFAULT_REORDER_WINDOW: usize = 1 << 20;

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
    thread_name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bound: 0,
            inbox_capacity: None,
            seed: 0,
            reorder_window: DEFAULT_REORDER_WINDOW,
            thread_name: "clocked-dispatch".to_string(),
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
    pub fn bound(mut self, bound: usize) -> Self {
        self.bound = bound;
        self
    }

    /// Capacity of each receiver's inbox (at least 1), if it should differ from `bound`.
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
    /// the limit turns a wild stamp into a
    /// [`StampTooFarAhead`](crate::SendErrorKind::StampTooFarAhead) error instead of an
    /// enormous allocation.
    pub fn reorder_window(mut self, stamps: usize) -> Self {
        self.reorder_window = stamps.max(1);
        self
    }

    /// Name of the dispatcher thread (default `clocked-dispatch`).
    pub fn thread_name<S: Into<String>>(mut self, name: S) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the dispatcher thread.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start a thread, like `std::thread::spawn`; see
    /// [`try_build`](Self::try_build).
    pub fn build<T: Send + 'static>(self) -> Dispatcher<T> {
        match self.try_build() {
            Ok(dispatcher) => dispatcher,
            Err(e) => panic!("clocked_dispatch: failed to start the dispatcher thread: {e}"),
        }
    }

    /// Starts the dispatcher thread, or returns the operating system's error.
    pub fn try_build<T: Send + 'static>(self) -> io::Result<Dispatcher<T>> {
        let inbox_capacity = self.inbox_capacity.unwrap_or(self.bound).max(1);
        let shared = Arc::new(Shared::new(self.seed, self.reorder_window, inbox_capacity));
        let ((data_tx, data_rx), (control_tx, control_rx)) = channel::select_pair(self.bound);
        let engine = Engine::new(shared.clone(), data_rx, control_rx, self.seed);
        thread::Builder::new()
            .name(self.thread_name)
            .spawn(move || engine.run())?;
        Ok(Dispatcher::from_link(Link::new(
            data_tx, control_tx, shared,
        )))
    }
}
