//! Who to wake: a parked thread, or (with the `async` feature) a task.
//!
//! The clock's sleeper lists and each inbox's close slot hold [`Waiter`]s. A thread's entry
//! stays until the thread removes it after waking (it re-checks and may park again); a task's
//! entry is one-shot: the wake removes it from the clock's list, and the task registers again
//! on its next `Pending` poll. That is the `Future` contract (a waker is for one wake-up), and it
//! keeps a task that was dropped without being polled again from being woken forever.

use crate::sync::Unparker;

/// A thread to unpark or a task to wake.
#[derive(Clone)]
pub(crate) enum Waiter {
    Thread(Unparker),
    #[cfg(feature = "async")]
    Task(std::task::Waker),
}

impl Waiter {
    /// Wakes it (an unpark leaves a token if the thread is not parked yet).
    pub(crate) fn wake(&self) {
        match self {
            Waiter::Thread(unparker) => unparker.unpark(),
            #[cfg(feature = "async")]
            Waiter::Task(waker) => waker.wake_by_ref(),
        }
    }

    /// Whether its entry goes once woken (tasks) or stays until removed (threads).
    pub(crate) fn one_shot(&self) -> bool {
        match self {
            Waiter::Thread(_) => false,
            #[cfg(feature = "async")]
            Waiter::Task(_) => true,
        }
    }
}
