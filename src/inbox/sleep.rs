//! Sleeping on an inbox: a blocking read, a `Select` or a task registers with the clock's
//! sleepers (see [`crate::clock`]) and re-checks before it parks.

use super::InboxReader;
use crate::clock::Clock;
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, Unparker};
use crate::waiter::Waiter;

impl<T> InboxReader<T> {
    /// Registers a selector's `unparker` for this inbox's wake-ups (clock and close); the
    /// selector looks again before it parks. Undone by [`unwatch`](Self::unwatch).
    pub(crate) fn watch(&self, clock: &Clock, key: usize, unparker: &Unparker) {
        *self.flags.selector.lock() = Some(Waiter::Thread(unparker.clone()));
        self.flags.asleep.store(true, Ordering::Relaxed);
        clock.readers.sleep(key, unparker);
    }

    /// Registers a task's `waker` for the next clock move or the close (see
    /// [`Sleepers::sleep_task`](crate::clock::Sleepers::sleep_task)); the caller re-checks before it returns `Pending`. The key is
    /// this inbox's own: one reader, one registration.
    #[cfg(feature = "async")]
    pub(crate) fn watch_task(&self, clock: &Clock, waker: &std::task::Waker) {
        *self.flags.selector.lock() = Some(Waiter::Task(waker.clone()));
        self.flags.asleep.store(true, Ordering::Relaxed);
        clock.readers.sleep_task(self.key(), waker);
    }

    /// Removes what [`watch_task`](Self::watch_task) registered.
    #[cfg(feature = "async")]
    pub(crate) fn unwatch_task(&self, clock: &Clock) {
        self.flags.asleep.store(false, Ordering::Relaxed);
        *self.flags.selector.lock() = None;
        clock.readers.unregister(self.key());
    }

    /// This inbox's key among the clock's sleepers: its flags' address.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.flags) as usize
    }

    /// Removes what [`watch`](Self::watch) registered.
    pub(crate) fn unwatch(&self, clock: &Clock, key: usize) {
        self.flags.asleep.store(false, Ordering::Relaxed);
        *self.flags.selector.lock() = None;
        clock.readers.unregister(key);
    }

    /// Parks until woken, having registered as a sleeper; `recheck` runs after registering and
    /// before parking, and its answer, if any, is returned without parking.
    pub(crate) fn sleep<R>(
        &self,
        clock: &Clock,
        timeout: Option<std::time::Duration>,
        recheck: impl FnOnce() -> Option<R>,
    ) -> Option<R> {
        // The flags' address is a key unique among live receivers.
        let key = self.key();
        // Before the registration's fence: see `InboxFlags::wake_for_data`.
        self.flags.asleep.store(true, Ordering::Relaxed);
        clock.readers.sleep(key, self.parker.unparker());
        let ready = recheck();
        if ready.is_none() {
            match timeout {
                Some(timeout) => self.parker.park_timeout(timeout),
                None => self.parker.park(),
            }
        }
        clock.readers.unregister(key);
        self.flags.asleep.store(false, Ordering::Relaxed);
        ready
    }
}
