//! What the dispatcher loop waits on: the next control or data message.
//!
//! Control comes first: a join that happened-before a data message must be applied before
//! that message (see [`crate::intake`]). With nothing to take, the dispatcher spins briefly,
//! delivers a journal batch still being written (so nothing waits on a dispatcher asleep),
//! and sleeps on the intake's doorbell.

use super::{Engine, Next};
use crate::deadline::park_time;
use crate::intake::queue::Taken;
use crate::intake::Control;
use crate::sync::Backoff;

impl<T> Engine<T> {
    /// Waits for the next control or data message (control first): spins briefly, then
    /// sleeps on the intake's doorbell, for at most `timeout` if one is given.
    pub(super) fn next_message(&mut self, timeout: Option<std::time::Duration>) -> Next<T> {
        let deadline = timeout.and_then(|timeout| std::time::Instant::now().checked_add(timeout));
        let backoff = Backoff::new();
        loop {
            if let Some(control) = self.take_control() {
                return Next::Control(control);
            }
            match self.data.try_recv() {
                Ok(envelope) => return Next::Data(envelope),
                Err(Taken::Empty) => {}
                Err(Taken::Disconnected) => {
                    // Every handle is gone, so every control message is visible now.
                    return match self.control.try_recv() {
                        Ok(control) => Next::Control(control),
                        Err(_) => Next::End,
                    };
                }
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            if self.journal_in_flight() {
                // Nothing more to stage while it is written: deliver it before sleeping.
                self.drain_journal();
                self.end_batch();
                continue;
            }
            let Ok(left) = park_time(deadline) else {
                return Next::TimedOut;
            };
            self.data.sleep(left, || !self.control.is_empty());
        }
    }

    /// A control message, if one was announced and has arrived.
    #[inline]
    pub(super) fn take_control(&mut self) -> Option<Control<T>> {
        if !self.data.control_pending() {
            return None;
        }
        let control = self.control.try_recv().ok()?;
        self.data.control_taken();
        Some(control)
    }
}
