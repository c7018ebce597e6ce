//! Reading a journal backlog before the queue (see the module doc of [`crate::inbox`] and
//! [`crate::journal`]).

use super::{InboxReader, Polled};
use crate::journal::replay::{Plan, Replay, Replayed};
use crate::spill::codec::DecodeFn;

/// A reader's journal backlog.
pub(super) enum ReplayState<T> {
    /// Nothing to replay, or all replayed.
    Done,
    /// Waiting for the dispatcher to fix the plan.
    Planned {
        plan: std::sync::Arc<std::sync::OnceLock<Plan>>,
        dir: std::path::PathBuf,
        decode: DecodeFn<T>,
    },
    Reading(Box<Replay<T>>),
}

impl<T> InboxReader<T> {
    /// Reads the journal backlog that the dispatcher will plan in `plan` (from the journal in
    /// `dir`) before anything in the queue.
    pub(crate) fn replay_first(
        &self,
        plan: std::sync::Arc<std::sync::OnceLock<Plan>>,
        dir: std::path::PathBuf,
        decode: DecodeFn<T>,
    ) {
        *self.replay.borrow_mut() = ReplayState::Planned { plan, dir, decode };
        self.replaying.set(true);
    }

    /// The next look at the journal backlog: `None` once it is all read.
    pub(super) fn look_replay(&self) -> Option<Polled<T>> {
        let mut state = self.replay.borrow_mut();
        if let ReplayState::Planned { plan, dir, decode } = &*state {
            let Some(&plan) = plan.get() else {
                return Some(Polled::Empty);
            };
            *state = ReplayState::Reading(Box::new(Replay::new(dir, plan, *decode)));
        }
        let ReplayState::Reading(replay) = &mut *state else {
            self.replaying.set(false);
            return None;
        };
        match replay.next() {
            Replayed::Data(value, stamp) => {
                self.saw(stamp);
                Some(Polled::Data(value, stamp))
            }
            Replayed::Fault(fault) => Some(Polled::Fault(fault)),
            Replayed::Done => {
                *state = ReplayState::Done;
                self.replaying.set(false);
                None
            }
        }
    }
}
