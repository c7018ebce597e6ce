//! The dispatcher thread.
//!
//! # Loop
//!
//! ```text
//! loop {
//!     publish the clock (one Release store and one SeqCst fence); wake waiting forwarders,
//!     and sleeping receivers when due (paced: see the `waking` module)
//!     close every receiver whose close has become due
//!     block for one message (control first)
//!     handle it, then up to BATCH-1 more without blocking
//! }
//! ```
//!
//! Before each data message it drains the control channel, so every join that
//! happened-before the message has been applied (see [`crate::intake`]).
//!
//! # Modes
//!
//! * Serializing: `stamp += 1`, push to the target (or to everyone, for a broadcast).
//! * Forwarding: the message goes into the [`ReorderWindow`] at its stamp, and everything at
//!   the window's front is released in order; a message that is next in line and finds the
//!   window empty is delivered without touching it.
//!
//! The mode itself is fixed by the senders (an atomic claimed by the first data message), so a
//! wrong-mode message never reaches this thread and nothing here panics on user input.
//!
//! # Delivery and back-pressure
//!
//! A push to a full inbox first publishes the clock up to the previous stamp (so every other
//! receiver still learns how far time has moved) and then blocks on that one inbox until it
//! has room or its receiver is dropped. A payload for a dropped or closed receiver is counted
//! in [`DispatcherStats::undeliverable`] and dropped.
//!
//! # Spilling
//!
//! A spilling inbox never reports full: a slow receiver's backlog goes to its write buffer
//! instead, and the receiver is listed as dirty. Every dirty inbox is flushed to disk before
//! the clock is published, so a published watermark never runs ahead of a buffered record (see
//! [`crate::spill`]).
//!
//! # Journaling
//!
//! With a journal, a stamped message is not delivered at once: it is encoded into the batch's
//! records and staged, and at the end of the batch (before the clock is published, and before
//! a receiver joins) the records are written with one write (and synced per the durability
//! mode), waiting senders are settled, and only then is what was staged delivered. See
//! [`journaling`].
//!
//! # Closing and forgetting
//!
//! A receiver closes when it has no sender left, no broadcaster exists, every data message
//! that was queued when its last sender left has been handled, and the reorder window holds
//! nothing for it. Its slot is then freed and its id reused (see [`crate::slots`]), so the
//! cost of a batch never depends on how many receivers ever existed:
//!
//! * pending closes wait in a FIFO ordered by `after` (the count of data messages handled or
//!   queued when the last sender left, which never decreases), so settling looks only at
//!   closes that are due;
//! * a close that is due but finds messages for it in the reorder window waits in a side list,
//!   looked at again only when the window has released something;
//! * a receiver kept open by broadcasters is found again, when the last broadcaster leaves, in
//!   the list of open receivers (not by a scan of every slot ever made);
//! * a receiver found gone with no sender left is closed the same way, so its slot is freed
//!   even while broadcasters live.
//!
//! When every handle is gone the thread drains both channels, releases what the window still
//! holds (skipping stamps nobody can fill any more, counted in
//! [`DispatcherStats::skipped_stamps`]), closes every inbox and exits.

use crate::intake::{Cloner, Control, Envelope};
use crate::journal::frame::JournalId;
use crate::link::Shared;
use crate::multicast::GroupId;
use std::collections::{HashMap, VecDeque};

use crate::registry::ReceiverId;
use crate::reorder::{Rejected, ReorderWindow};
use crate::slots::SlotTable;

mod closing;
mod delivery;
mod gathering;
pub(crate) mod journaling;
mod multicast;
mod waiting;
pub(crate) mod waking;

use crate::intake::queue::{IntakeReceiver, Taken};
use crate::stats::DispatcherStats;
use crate::sync::channel::Receiver;
use crate::sync::Arc;
use closing::PendingClose;
use journaling::EngineJournal;
use waking::Wakes;

/// How often the dispatcher wakes, while a spilling receiver's disk is failing, to retry it.
const RETRY_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Data messages handled per wake-up before the clock is published.
const BATCH: usize = 256;

/// What [`Engine::next_message`] found.
enum Next<T> {
    Control(Control<T>),
    Data(Envelope<T>),
    /// Every handle is gone and both channels are drained.
    End,
    TimedOut,
}

/// A message held in the reorder window.
enum Held<T> {
    /// `forward(None, ts)`: the stamp is accounted for, nothing to deliver.
    Nothing,
    Unicast(ReceiverId, T),
    Broadcast(T, Cloner<T>),
    /// A multicast on a journaled dispatcher: the group's members when it was stamped, and
    /// the journal id its history is kept under, if the group keeps one.
    Multicast(Vec<ReceiverId>, T, Cloner<T>, Option<JournalId>),
}

pub(crate) struct Engine<T> {
    shared: Arc<Shared>,
    data: IntakeReceiver<Envelope<T>>,
    control: Receiver<Control<T>>,
    slots: SlotTable<T>,
    broadcasters: usize,
    /// Serializing: the last stamp assigned. (Forwarding uses `window.released()`.)
    stamp: usize,
    published: usize,
    window: ReorderWindow<Held<T>>,
    /// Broadcasts waiting in the window.
    held_broadcasts: usize,
    /// Data messages handled so far.
    handled: u64,
    /// Receivers whose spill buffers must be flushed before the next publish.
    dirty: Vec<ReceiverId>,
    /// Closes waiting for `handled` to reach their `after`, in order of `after`.
    pending_closes: VecDeque<PendingClose>,
    /// Closes that are due but wait for the reorder window to release messages for them.
    window_closes: Vec<(ReceiverId, u64)>,
    /// Whether the window released anything since `window_closes` was last looked at.
    window_moved: bool,
    /// Spilling receivers whose disk is failing, between two lists of `dirty`.
    failing_spills: Vec<ReceiverId>,
    /// Reused by broadcasts and multicasts for the list of receivers to deliver to.
    broadcast_targets: Vec<ReceiverId>,
    /// Multicast groups and their members (see [`multicast`]).
    groups: HashMap<GroupId, Vec<ReceiverId>>,
    /// Groups whose multicaster was dropped, forgotten once `handled` reaches the count.
    dropped_groups: VecDeque<(u64, GroupId)>,
    /// Journaled groups that keep their history, and the journal id they keep it under.
    archives: HashMap<GroupId, JournalId>,
    /// Counts not yet added to the shared counters.
    local: DispatcherStats,
    /// The wake-ups owed to sleeping receivers (see [`waking`]).
    wakes: Wakes,
    /// Receivers delivered to in this batch (each once): woken for their data even when the
    /// clock's wake-up is deferred.
    delivered: Vec<ReceiverId>,
    /// Numbers the batches, for `Slot::delivered_in`.
    batch_no: u64,
    /// The journal, if the dispatcher has one: messages are then staged, written, and only
    /// then delivered (see [`journaling`]).
    journal: Option<EngineJournal<T>>,
}

/// However the thread ends (after `shut_down`, or unwinding from a panic in a user's `Clone`),
/// the clock stops, waking every forwarder that waits for the reorder window.
impl<T> Drop for Engine<T> {
    fn drop(&mut self) {
        self.shared.clock.stop();
        self.stop_journal();
        #[cfg(feature = "async")]
        self.shared.intake_waiters.wake();
    }
}

impl<T> Engine<T> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        data: IntakeReceiver<Envelope<T>>,
        control: Receiver<Control<T>>,
        seed: usize,
        journal: Option<EngineJournal<T>>,
        wake_interval: std::time::Duration,
    ) -> Self {
        let window = ReorderWindow::new(seed, shared.reorder_window);
        Engine {
            shared,
            data,
            control,
            slots: SlotTable::new(),
            broadcasters: 0,
            stamp: seed,
            published: seed,
            window,
            held_broadcasts: 0,
            handled: 0,
            dirty: Vec::new(),
            pending_closes: VecDeque::new(),
            window_closes: Vec::new(),
            window_moved: false,
            broadcast_targets: Vec::new(),
            groups: HashMap::new(),
            dropped_groups: VecDeque::new(),
            archives: HashMap::new(),
            failing_spills: Vec::new(),
            local: DispatcherStats::default(),
            wakes: Wakes::new(wake_interval),
            delivered: Vec::new(),
            batch_no: 0,
            journal,
        }
    }

    /// Runs until every handle is gone.
    pub(crate) fn run(mut self) {
        loop {
            self.end_batch();
            // With a failing disk, buffered records are retried even if no message comes; an
            // owed wake-up is paid by its deadline even if none comes.
            let retry = (!self.dirty.is_empty()).then_some(RETRY_TICK);
            let timeout = match (retry, self.wakes.time_left()) {
                (Some(retry), Some(left)) => Some(retry.min(left)),
                (retry, left) => retry.or(left),
            };
            match self.next_message(timeout) {
                Next::End => break,
                Next::TimedOut => continue,
                Next::Control(control) => self.apply_control(control, 0),
                Next::Data(envelope) => {
                    self.handle(envelope);
                    let mut taken = 1;
                    while taken < self.batch_limit() {
                        match self.data.try_recv() {
                            Ok(envelope) => {
                                self.handle(envelope);
                                taken += 1;
                            }
                            Err(Taken::Empty) if self.gather_while_writing() => {}
                            Err(_) => break,
                        }
                    }
                    self.gather_siblings();
                }
            }
        }
        self.shut_down();
    }

    /// Publishes the clock, wakes sleepers, settles closes, flushes counters.
    fn end_batch(&mut self) {
        // The batch took from the intake: senders waiting for room may go on.
        self.data.wake_producers();
        // Waking sleepers costs a futex call each: clock-only wake-ups are paced (see
        // `waking`), data wake-ups are not.
        let due = self.wakes.due(self.data.len() == 0);
        let woke = self.publish_through(self.stamp.max(self.window.released()), due);
        if !woke && !self.delivered.is_empty() {
            // Receivers with new data do not wait for the deferred wake-up. The fence orders
            // this batch's pushes before the loads of their `asleep` flags.
            crate::sync::atomic::fence(crate::sync::atomic::Ordering::SeqCst);
            for &id in &self.delivered {
                if let Some(inbox) = self.slots.get_mut(id).and_then(|s| s.inbox.as_ref()) {
                    inbox.flags().wake_for_data();
                }
            }
        }
        self.delivered.clear();
        self.batch_no += 1;
        // The batch took from the intake: tasks waiting for room may go on.
        #[cfg(feature = "async")]
        self.shared.intake_waiters.wake();
        self.settle_closes();
        self.forget_dropped_groups();
        if self.local != DispatcherStats::default() {
            self.shared.counters.add(&self.local);
            self.local = DispatcherStats::default();
        }
    }

    /// Flushes spill buffers, then publishes `stamp` (if newer) and wakes forwarders; wakes
    /// the readers that sleep if `due` and their interval allows (see [`waking`]). Returns
    /// whether it woke them.
    fn publish_through(&mut self, stamp: usize, due: bool) -> bool {
        // Journaled: written before delivered, and before the clock says it happened.
        self.settle_journal();
        self.flush_spills();
        // A batch still being written (write-behind) is not delivered yet.
        let stamp = match self.journal.as_ref() {
            Some(journal) => journal.publishable(stamp),
            None => stamp,
        };
        let advanced = stamp > self.published;
        if advanced {
            self.published = stamp;
            self.shared.clock.advance(stamp);
        }
        self.wakes.after_publish(&self.shared.clock, advanced, due)
    }

    /// Writes every dirty spill buffer to disk.
    fn flush_spills(&mut self) {
        // `pop` rather than `take`: the list keeps its capacity, so a receiver that spills
        // batch after batch costs no allocation per batch.
        while let Some(id) = self.dirty.pop() {
            if let Some(slot) = self.slots.get_mut(id) {
                slot.dirty = false;
                if let Some(inbox) = slot.inbox.as_mut() {
                    if !inbox.flush() {
                        // Its disk is failing: records stay buffered (the reader's watermark is
                        // capped below them) and are tried again after the next batch.
                        slot.dirty = true;
                        self.failing_spills.push(id);
                    }
                }
            }
        }
        self.dirty.append(&mut self.failing_spills);
    }

    fn handle(&mut self, envelope: Envelope<T>) {
        // Joins that happened-before this message must be applied first; one message (this
        // one) is in hand and not yet counted in `handled`. The check is one load of the
        // intake's count of announced control messages; a `try_recv` on the control channel
        // costs about 90 instructions (callgrind, BENCHMARKS.md).
        while let Some(control) = self.take_control() {
            self.apply_control(control, 1);
        }
        match envelope {
            Envelope::Send { to, value } => {
                self.stamp += 1;
                if self.journal.is_some() {
                    self.stage(self.stamp, Held::Unicast(to, value), Some(self.handled));
                } else {
                    self.deliver(to, value, self.stamp);
                }
            }
            Envelope::SendMany { to, values } => {
                for value in values {
                    self.stamp += 1;
                    if self.journal.is_some() {
                        self.stage(self.stamp, Held::Unicast(to, value), Some(self.handled));
                    } else {
                        self.deliver(to, value, self.stamp);
                    }
                }
            }
            Envelope::Broadcast { value, cloner } => {
                self.stamp += 1;
                if self.journal.is_some() {
                    let held = Held::Broadcast(value, cloner);
                    self.stage(self.stamp, held, Some(self.handled));
                } else {
                    self.deliver_to_all(value, cloner, self.stamp);
                }
            }
            Envelope::Multicast {
                group,
                value,
                cloner,
            } => {
                self.stamp += 1;
                self.multicast(group, value, cloner, self.stamp);
            }
            Envelope::GroupChange {
                group,
                member,
                join,
            } => {
                self.change_group(group, member, join);
                // Counted for closes (it took a place in the intake), not as a message.
                self.handled += 1;
                return;
            }
            Envelope::Forward { to, value, stamp } => {
                let held = match value {
                    Some(value) => Held::Unicast(to, value),
                    None => Held::Nothing,
                };
                self.forward(stamp, held);
            }
            Envelope::BroadcastForward {
                value,
                stamp,
                cloner,
            } => {
                let held = match value {
                    Some(value) => Held::Broadcast(value, cloner),
                    None => Held::Nothing,
                };
                self.forward(stamp, held);
            }
            Envelope::Skip { through } => self.skip(through),
        }
        self.handled += 1;
        self.local.handled += 1;
    }

    fn forward(&mut self, stamp: usize, held: Held<T>) {
        if let Held::Unicast(to, _) = held {
            if let Some(slot) = self.slot_mut(to) {
                slot.held += 1;
            }
        } else if let Held::Broadcast(..) = held {
            self.held_broadcasts += 1;
        }
        if let Err((rejected, held)) = self.window.insert(stamp, held) {
            match rejected {
                Rejected::Stale => self.local.stale_stamps += 1,
                Rejected::Duplicate => self.local.duplicate_stamps += 1,
                // Senders check the window before submitting, against a clock that never runs
                // ahead of ours, so this is unreachable in practice; count it as stale.
                Rejected::TooFarAhead => self.local.stale_stamps += 1,
            }
            self.unhold(&held);
            return;
        }
        while let Some((stamp, held)) = self.window.pop_ready() {
            self.window_moved = true;
            self.unhold(&held);
            self.stage(stamp, held, None);
        }
    }

    /// `skip_through`: releases what the window holds up to `through`, the gaps between as
    /// stamps without data, and moves the released clock to `through`. O(the window's span),
    /// not O(stamps skipped): a bridge that skips a million stamps of other traffic pays once.
    fn skip(&mut self, through: usize) {
        if through <= self.window.released() {
            return;
        }
        let mut released = Vec::new();
        self.window
            .skip_through(through, |stamp, held| released.push((stamp, held)));
        for (stamp, held) in released {
            self.unhold(&held);
            self.stage(stamp, held, None);
        }
        // The skipped stamps are journaled as a tick, as a forwarded stamp without data is.
        self.stage(through, Held::Nothing, None);
        self.window_moved = true;
        while let Some((stamp, held)) = self.window.pop_ready() {
            self.unhold(&held);
            self.stage(stamp, held, None);
        }
    }

    /// Undoes the `held` bookkeeping of a message leaving the window.
    fn unhold(&mut self, held: &Held<T>) {
        match *held {
            Held::Unicast(to, _) => {
                if let Some(slot) = self.slot_mut(to) {
                    slot.held -= 1;
                }
            }
            Held::Broadcast(..) => self.held_broadcasts -= 1,
            Held::Nothing | Held::Multicast(..) => {}
        }
    }

    fn release(&mut self, stamp: usize, held: Held<T>) {
        match held {
            Held::Nothing => {}
            Held::Unicast(to, value) => self.deliver(to, value, stamp),
            Held::Broadcast(value, cloner) => self.deliver_to_all(value, cloner, stamp),
            Held::Multicast(members, value, cloner, _) => {
                self.deliver_to_each(&members, value, cloner, stamp)
            }
        }
    }

    fn slot_mut(&mut self, id: ReceiverId) -> Option<&mut crate::slots::Slot<T>> {
        self.slots.get_mut(id)
    }

    /// Applies a join or leave. `in_hand` is the number of data messages taken from the intake
    /// but not yet handled.
    fn apply_control(&mut self, control: Control<T>, in_hand: u64) {
        let due = self.handled + in_hand + self.data.len() as u64;
        match control {
            Control::NewReceiver { id, inbox, journal } => {
                if let Some(join) = journal {
                    self.join_journal(id, *join);
                    // It may already wait for its plan.
                    inbox.flags().wake_reader();
                }
                self.slots.insert(id, *inbox);
                self.shared.counters.set_receivers(self.slots.len());
            }
            Control::SenderJoined(id) => {
                if let Some(slot) = self.slot_mut(id) {
                    slot.senders += 1;
                }
            }
            Control::SenderLeft(id) => self.sender_left(id, due),
            Control::GroupArchived { group, id } => {
                self.archives.insert(group, id);
            }
            Control::GroupDropped { group, members } => {
                self.drop_group(group, due);
                for member in members {
                    self.sender_left(member, due);
                }
            }
            Control::BroadcasterJoined => self.broadcasters += 1,
            Control::BroadcasterLeft => {
                self.broadcasters -= 1;
                if self.broadcasters == 0 {
                    // The receivers the broadcasters kept open: open, with no sender.
                    for index in 0..self.slots.open().len() {
                        let id = self.slots.open()[index];
                        if let Some(slot) = self.slots.get_mut(id).filter(|s| s.senders == 0) {
                            let epoch = slot.epoch;
                            self.pending_closes.push_back(PendingClose {
                                id,
                                epoch,
                                after: due,
                            });
                        }
                    }
                }
            }
        }
    }
}
