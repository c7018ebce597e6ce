//! Loom twin of the subset of `crossbeam_channel` the crate uses.
//!
//! A mutex-protected `VecDeque` and two condvars. Semantics kept from crossbeam:
//!
//! * `bounded(n)` holds at most `n` messages; `send` blocks while full.
//! * `bounded(0)` is a rendezvous: `send` returns once a receiver has taken the message
//!   (`try_send` on it always reports `Full`; the crate never calls it there).
//! * the channel disconnects when every `Sender` or every `Receiver` is dropped; a receiver
//!   still drains what is buffered, then gets `Disconnected`; a sender gets its value back.
//!
//! Receiving never blocks here: the crate only calls `try_recv`, and [`recv_either`], which
//! stands in for `crossbeam_channel::select!` over the two channels of one [`select_pair`].
//! Both channels of a pair share a [`Hub`] whose epoch is bumped when a message arrives or a
//! channel's last sender leaves; `recv_either` notes the epoch, polls both receivers, and waits
//! for the epoch to change. A spinning poll would be simpler, but it makes loom's search
//! explode.

use std::collections::VecDeque;

use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

pub(crate) use crossbeam_channel::{SendError, SendTimeoutError, TryRecvError, TrySendError};

/// Wakes `recv_either` callers: an epoch bumped on every event a receiver could wait for. The
/// two channels given to one `recv_either` must share it (see [`select_pair`]).
struct Hub {
    epoch: Mutex<u64>,
    changed: Condvar,
}

impl Hub {
    fn new() -> Arc<Hub> {
        Arc::new(Hub {
            epoch: Mutex::new(0),
            changed: Condvar::new(),
        })
    }

    fn epoch(&self) -> u64 {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        *epoch += 1;
        self.changed.notify_all();
    }

    fn wait(&self, seen: u64) {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        while *epoch == seen {
            epoch = self.changed.wait(epoch).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receivers: usize,
    /// Messages ever taken by a receiver: a rendezvous sender waits for its ticket.
    taken: u64,
    pushed: u64,
}

struct Chan<T> {
    cap: Option<usize>,
    hub: Arc<Hub>,
    state: Mutex<State<T>>,
    /// Signalled when a message is taken or the last receiver leaves.
    writable: Condvar,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_full(&self, state: &State<T>) -> bool {
        match self.cap {
            // A rendezvous channel holds one message in flight, which its sender waits out.
            Some(0) => !state.queue.is_empty(),
            Some(cap) => state.queue.len() >= cap,
            None => false,
        }
    }
}

/// Sending half of a twin channel.
pub(crate) struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// Receiving half of a twin channel.
pub(crate) struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

fn with_cap<T>(cap: Option<usize>, hub: Arc<Hub>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        cap,
        hub,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receivers: 1,
            taken: 0,
            pushed: 0,
        }),
        writable: Condvar::new(),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// Both ends of one channel.
pub(crate) type Pair<T> = (Sender<T>, Receiver<T>);

/// A bounded and an unbounded channel that can be waited on together with [`recv_either`].
pub(crate) fn select_pair<A, B>(cap: usize) -> (Pair<A>, Pair<B>) {
    let hub = Hub::new();
    (with_cap(Some(cap), hub.clone()), with_cap(None, hub))
}

impl<T> Sender<T> {
    /// The bound, as crossbeam's `Sender::capacity` (`None`: unbounded).
    #[cfg(feature = "async")]
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        let chan = &*self.chan;
        let mut state = chan.lock();
        loop {
            if state.receivers == 0 {
                return Err(SendError(value));
            }
            if !chan.is_full(&state) {
                break;
            }
            state = chan.writable.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.queue.push_back(value);
        state.pushed += 1;
        let ticket = state.pushed;
        chan.hub.notify();
        if chan.cap == Some(0) {
            while state.taken < ticket && state.receivers > 0 {
                state = chan.writable.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
        Ok(())
    }

    /// Loom has no clock: a send with a deadline is an untimed one, so a model only passes if
    /// the room it waits for really appears.
    pub(crate) fn send_deadline(
        &self,
        value: T,
        _deadline: std::time::Instant,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send(value)
            .map_err(|SendError(value)| SendTimeoutError::Disconnected(value))
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let chan = &*self.chan;
        let mut state = chan.lock();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if chan.cap == Some(0) || chan.is_full(&state) {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        state.pushed += 1;
        drop(state);
        chan.hub.notify();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.senders -= 1;
        if state.senders == 0 {
            drop(state);
            self.chan.hub.notify();
        }
    }
}

impl<T> Receiver<T> {
    fn take(&self, state: &mut State<T>) -> Option<T> {
        let value = state.queue.pop_front()?;
        state.taken += 1;
        self.chan.writable.notify_all();
        Some(value)
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.lock();
        match self.take(&mut state) {
            Some(value) => Ok(value),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.receivers -= 1;
        if state.receivers == 0 {
            // crossbeam drops what is buffered when the last receiver goes; so do we.
            state.queue.clear();
            self.chan.writable.notify_all();
        }
    }
}

/// What [`recv_either`] got.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Blocks until `left` or `right` has a message (preferring `right`), or both are disconnected
/// and drained, in which case it returns `None`. The two must come from one [`select_pair`].
pub(crate) fn recv_either<A, B>(left: &Receiver<A>, right: &Receiver<B>) -> Option<Either<A, B>> {
    loop {
        let seen = left.chan.hub.epoch();
        let right_gone = match right.try_recv() {
            Ok(b) => return Some(Either::Right(b)),
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        };
        match left.try_recv() {
            Ok(a) => return Some(Either::Left(a)),
            Err(TryRecvError::Disconnected) if right_gone => return None,
            Err(_) => left.chan.hub.wait(seen),
        }
    }
}

/// [`recv_either_timeout`] gave up waiting (never, in this twin).
#[derive(Debug)]
pub(crate) struct TimedOut;

/// The production version gives up after `timeout`; it is used only while a spill's disk is
/// failing, and spill does not run inside loom models, so this twin simply waits.
pub(crate) fn recv_either_timeout<A, B>(
    left: &Receiver<A>,
    right: &Receiver<B>,
    _timeout: std::time::Duration,
) -> Result<Option<Either<A, B>>, TimedOut> {
    Ok(recv_either(left, right))
}
