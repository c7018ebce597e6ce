//! Loom twin of the subset of `crossbeam_channel` the crate uses: an unbounded channel (the
//! dispatcher's control messages).
//!
//! A mutex-protected `VecDeque`. Semantics kept from crossbeam: `send` fails (giving the value
//! back) once the receiver is gone; `try_recv` reports `Disconnected` once every sender is gone
//! and the queue is drained. Nobody blocks on it: the dispatcher is woken through its intake
//! queue's doorbell (see `crate::intake::queue`).

use std::collections::VecDeque;

use loom::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crossbeam_channel::{SendError, TryRecvError};

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Chan<T> {
    state: Mutex<State<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

pub(crate) fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

impl<T> Sender<T> {
    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.chan.lock();
        if !state.receiver_alive {
            return Err(SendError(value));
        }
        state.queue.push_back(value);
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
        self.chan.lock().senders -= 1;
    }
}

impl<T> Receiver<T> {
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.lock();
        match state.queue.pop_front() {
            Some(value) => Ok(value),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Receiver<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.chan.lock().queue.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.receiver_alive = false;
        // crossbeam drops what is buffered when the last receiver goes; so do we.
        state.queue.clear();
    }
}
