//! Waking a timely operator from another thread: a [`Waker`] over timely's
//! [`SyncActivator`].
//!
//! The library's asynchronous reading and forwarding API (`recv_async`, `StampedStream`,
//! `forward_async`) registers the `Waker` of the polling task and wakes it when the dispatcher
//! publishes its clock, closes an inbox or frees room in its intake. A timely operator is not
//! a task, but it can be *activated* from any thread: `SyncActivator::activate` queues the
//! operator's address for its worker and unparks the worker if it is parked in
//! `step_or_park`. So the operators of this crate poll the library's futures with a `Waker`
//! whose `wake` is that activation: when a poll returns `Pending`, the operator returns,
//! the worker may park, and the dispatcher's wake-up schedules the operator again. Nothing
//! spins, and an idle operator costs no CPU.
//!
//! An activation that fails (the worker has shut down, so nothing is left to schedule) is
//! ignored: there is no task left to wake.

use std::sync::Arc;
use std::task::{Wake, Waker};

use timely::scheduling::SyncActivator;

/// A `Wake` that activates one timely operator (and unparks its worker).
struct ActivateOperator(SyncActivator);

impl Wake for ActivateOperator {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Err means the worker is gone: nothing is left to schedule.
        let _ = self.0.activate();
    }
}

/// A `Waker` whose `wake` activates the operator at `activator`'s address and unparks its
/// worker thread.
pub(crate) fn operator_waker(activator: SyncActivator) -> Waker {
    Waker::from(Arc::new(ActivateOperator(activator)))
}
