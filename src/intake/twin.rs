//! Loom twin of [the intake queue](super) for the crate-wide models in `tests/loom.rs`.
//!
//! The real queue has loom models of its own (`src/intake/queue/loom_tests.rs`, run with
//! `--lib`). Explored inside every crate-wide model as well, its many atomics multiply the
//! search beyond what CI can afford (the suite went from minutes to more than a quarter of an
//! hour), so those models use this stand-in instead, as they once used a stand-in for
//! crossbeam's channel: a mutex, two condvars and the same API and semantics (bound, bound 0 as
//! a rendezvous, the control count and doorbell, both ends' departures). What the crate-wide
//! models then explore is *our* protocol on top of the queue; what the queue-only models
//! explore is the queue.
//!
//! Selected when the crate is built with `--cfg loom` and not for its own unit tests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

pub(crate) use super::{Refused, Taken};

struct State<T> {
    queue: VecDeque<T>,
    /// Messages ever taken: a rendezvous sender waits for its ticket.
    taken: u64,
    pushed: u64,
    producers: usize,
    consumer_gone: bool,
    control_pending: usize,
    /// Bumped by every event the consumer may wait for.
    epoch: u64,
}

struct Queue<T> {
    capacity: usize,
    rendezvous: bool,
    state: Mutex<State<T>>,
    /// The consumer waits here for the epoch to move.
    consumer: Condvar,
    /// Producers wait here for room, their ticket, or the consumer's departure.
    producers: Condvar,
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, state: &mut State<T>) {
        state.epoch += 1;
        self.consumer.notify_all();
    }
}

pub(crate) struct IntakeSender<T> {
    queue: Arc<Queue<T>>,
}

pub(crate) struct IntakeReceiver<T> {
    queue: Arc<Queue<T>>,
}

pub(crate) fn intake_queue<T>(bound: usize) -> (IntakeSender<T>, IntakeReceiver<T>) {
    let queue = Arc::new(Queue {
        capacity: bound.max(1),
        rendezvous: bound == 0,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            taken: 0,
            pushed: 0,
            producers: 1,
            consumer_gone: false,
            control_pending: 0,
            epoch: 0,
        }),
        consumer: Condvar::new(),
        producers: Condvar::new(),
    });
    (
        IntakeSender {
            queue: queue.clone(),
        },
        IntakeReceiver { queue },
    )
}

impl<T> IntakeSender<T> {
    #[cfg(feature = "async")]
    pub(crate) fn try_send(&self, value: T) -> Result<(), Refused<T>> {
        let queue = &*self.queue;
        let mut state = queue.lock();
        if state.consumer_gone {
            return Err(Refused::Gone(value));
        }
        if queue.rendezvous || state.queue.len() >= queue.capacity {
            return Err(Refused::Full(value));
        }
        state.queue.push_back(value);
        state.pushed += 1;
        queue.bump(&mut state);
        Ok(())
    }

    /// Loom has no clock: the deadline is ignored, so a model passes only if the room it
    /// waits for really appears.
    pub(crate) fn send(&self, value: T, _deadline: Option<Instant>) -> Result<usize, Refused<T>> {
        let queue = &*self.queue;
        let mut state = queue.lock();
        loop {
            if state.consumer_gone {
                return Err(Refused::Gone(value));
            }
            if state.queue.len() < queue.capacity {
                break;
            }
            state = queue
                .producers
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.queue.push_back(value);
        state.pushed += 1;
        let ticket = state.pushed;
        queue.bump(&mut state);
        if queue.rendezvous {
            while state.taken < ticket && !state.consumer_gone {
                state = queue
                    .producers
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        Ok((ticket - 1) as usize)
    }

    pub(crate) fn announce_control(&self) {
        self.queue.lock().control_pending += 1;
    }

    pub(crate) fn ring(&self) {
        let mut state = self.queue.lock();
        self.queue.bump(&mut state);
    }

    #[cfg(feature = "async")]
    pub(crate) fn is_rendezvous(&self) -> bool {
        self.queue.rendezvous
    }
}

impl<T> Clone for IntakeSender<T> {
    fn clone(&self) -> Self {
        self.queue.lock().producers += 1;
        IntakeSender {
            queue: self.queue.clone(),
        }
    }
}

impl<T> Drop for IntakeSender<T> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.producers -= 1;
        if state.producers == 0 {
            self.queue.bump(&mut state);
        }
    }
}

impl<T> IntakeReceiver<T> {
    pub(crate) fn try_recv(&mut self) -> Result<T, Taken> {
        let mut state = self.queue.lock();
        match state.queue.pop_front() {
            Some(value) => {
                state.taken += 1;
                Ok(value)
            }
            None if state.producers == 0 => Err(Taken::Disconnected),
            None => Err(Taken::Empty),
        }
    }

    pub(crate) fn control_pending(&self) -> bool {
        self.queue.lock().control_pending != 0
    }

    pub(crate) fn control_taken(&self) {
        self.queue.lock().control_pending -= 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().queue.len()
    }

    pub(crate) fn sleep(&self, _timeout: Option<Duration>, control_ready: impl Fn() -> bool) {
        let queue = &*self.queue;
        let mut state = queue.lock();
        if !state.queue.is_empty() || state.producers == 0 || control_ready() {
            return;
        }
        let seen = state.epoch;
        while state.epoch == seen {
            state = queue
                .consumer
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn wake_producers(&self) {
        let _state = self.queue.lock();
        self.queue.producers.notify_all();
    }
}

impl<T> Drop for IntakeReceiver<T> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.consumer_gone = true;
        state.queue.clear();
        self.queue.producers.notify_all();
    }
}
