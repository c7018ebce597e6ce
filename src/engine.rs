//! The dispatcher thread.
//!
//! # Loop
//!
//! ```text
//! loop {
//!     publish the clock (one Release store and one SeqCst fence) and wake sleeping receivers
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
//! # Closing
//!
//! A receiver closes when it has no sender left, no broadcaster exists, every data message
//! that was queued when its last sender left has been handled, and the reorder window holds
//! nothing for it. When every handle is gone the thread drains both channels, releases what
//! the window still holds (skipping stamps nobody can fill any more, counted in
//! [`DispatcherStats::skipped_stamps`]), closes every inbox and exits.

use crate::inbox::{InboxWriter, PushError, Pushed};
use crate::intake::{Cloner, Control, Envelope};
use crate::link::Shared;
use crate::registry::ReceiverId;
use crate::reorder::{Rejected, ReorderWindow};
use crate::stats::DispatcherStats;
use crate::sync::channel::{recv_either, Either, Receiver};
use crate::sync::Arc;

/// Data messages handled per wake-up before the clock is published.
const BATCH: usize = 256;

/// A message held in the reorder window.
enum Held<T> {
    /// `forward(None, ts)`: the stamp is accounted for, nothing to deliver.
    Nothing,
    Unicast(ReceiverId, T),
    Broadcast(T, Cloner<T>),
}

/// The dispatcher's view of one receiver.
struct Slot<T> {
    /// `None` once closed or found gone.
    inbox: Option<InboxWriter<T>>,
    senders: usize,
    /// Messages for it waiting in the reorder window.
    held: usize,
    /// Whether its spill write buffer holds records (it is then listed in `Engine::dirty`).
    dirty: bool,
}

/// A receiver that lost its last sender, and the `handled` count after which the data queued
/// at that moment has been handled.
struct PendingClose {
    id: ReceiverId,
    after: u64,
}

pub(crate) struct Engine<T> {
    shared: Arc<Shared>,
    data: Receiver<Envelope<T>>,
    control: Receiver<Control<T>>,
    slots: Vec<Option<Slot<T>>>,
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
    pending_closes: Vec<PendingClose>,
    /// Counts not yet added to the shared counters.
    local: DispatcherStats,
}

/// However the thread ends (after `shut_down`, or unwinding from a panic in a user's `Clone`),
/// the clock stops, waking every forwarder that waits for the reorder window.
impl<T> Drop for Engine<T> {
    fn drop(&mut self) {
        self.shared.clock.stop();
    }
}

impl<T> Engine<T> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        data: Receiver<Envelope<T>>,
        control: Receiver<Control<T>>,
        seed: usize,
    ) -> Self {
        let window = ReorderWindow::new(seed, shared.reorder_window);
        Engine {
            shared,
            data,
            control,
            slots: Vec::new(),
            broadcasters: 0,
            stamp: seed,
            published: seed,
            window,
            held_broadcasts: 0,
            handled: 0,
            dirty: Vec::new(),
            pending_closes: Vec::new(),
            local: DispatcherStats::default(),
        }
    }

    /// Runs until every handle is gone.
    pub(crate) fn run(mut self) {
        loop {
            self.end_batch();
            match recv_either(&self.data, &self.control) {
                None => break,
                Some(Either::Right(control)) => self.apply_control(control, 0),
                Some(Either::Left(envelope)) => {
                    self.handle(envelope);
                    for _ in 1..BATCH {
                        match self.data.try_recv() {
                            Ok(envelope) => self.handle(envelope),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        self.shut_down();
    }

    /// Publishes the clock, wakes sleepers, settles closes, flushes counters.
    fn end_batch(&mut self) {
        self.publish_through(self.stamp.max(self.window.released()));
        self.settle_closes();
        if self.local != DispatcherStats::default() {
            self.shared.counters.add(&self.local);
            self.local = DispatcherStats::default();
        }
    }

    /// Flushes spill buffers, then publishes `stamp` (if newer) and unparks the receivers
    /// that sleep.
    fn publish_through(&mut self, stamp: usize) {
        self.flush_spills();
        if stamp <= self.published {
            return;
        }
        self.published = stamp;
        self.shared.clock.publish(stamp);
    }

    /// Writes every dirty spill buffer to disk.
    fn flush_spills(&mut self) {
        // `pop` rather than `take`: the list keeps its capacity, so a receiver that spills
        // batch after batch costs no allocation per batch.
        while let Some(id) = self.dirty.pop() {
            if let Some(slot) = self.slots.get_mut(id.0).and_then(Option::as_mut) {
                slot.dirty = false;
                if let Some(inbox) = slot.inbox.as_mut() {
                    inbox.flush();
                }
            }
        }
    }

    fn handle(&mut self, envelope: Envelope<T>) {
        // Joins that happened-before this message must be applied first; one message (this
        // one) is in hand and not yet counted in `handled`. The emptiness check is one load;
        // a `try_recv` on the (list-flavoured) control channel costs about 90 instructions,
        // paid per data message (callgrind, BENCHMARKS.md).
        if !self.control.is_empty() {
            while let Ok(control) = self.control.try_recv() {
                self.apply_control(control, 1);
            }
        }
        match envelope {
            Envelope::Send { to, value } => {
                self.stamp += 1;
                self.deliver(to, value, self.stamp);
            }
            Envelope::SendMany { to, values } => {
                for value in values {
                    self.stamp += 1;
                    self.deliver(to, value, self.stamp);
                }
            }
            Envelope::Broadcast { value, cloner } => {
                self.stamp += 1;
                self.deliver_to_all(value, cloner, self.stamp);
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
            self.unhold(&held);
            self.release(stamp, held);
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
            Held::Nothing => {}
        }
    }

    fn release(&mut self, stamp: usize, held: Held<T>) {
        match held {
            Held::Nothing => {}
            Held::Unicast(to, value) => self.deliver(to, value, stamp),
            Held::Broadcast(value, cloner) => self.deliver_to_all(value, cloner, stamp),
        }
    }

    fn slot_mut(&mut self, id: ReceiverId) -> Option<&mut Slot<T>> {
        self.slots.get_mut(id.0).and_then(Option::as_mut)
    }

    /// Pushes one payload to one receiver, blocking only on that receiver's full inbox.
    fn deliver(&mut self, to: ReceiverId, value: T, stamp: usize) {
        let Some(slot) = self.slot_mut(to) else {
            self.local.undeliverable += 1;
            return;
        };
        let Some(inbox) = slot.inbox.as_mut() else {
            self.local.undeliverable += 1;
            return;
        };
        let gone = match inbox.try_push((value, stamp)) {
            Ok(Pushed::Memory) => false,
            Ok(Pushed::Buffered) => {
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(to);
                }
                false
            }
            Err(PushError::Gone(_)) => true,
            Err(PushError::Full(item)) => {
                // Let everyone else see every stamp before this one while we wait.
                self.publish_through(stamp - 1);
                match self.slot_mut(to).and_then(|slot| slot.inbox.as_ref()) {
                    Some(inbox) => inbox.push_blocking(item).is_err(),
                    None => true,
                }
            }
        };
        if gone {
            self.local.undeliverable += 1;
            if let Some(slot) = self.slot_mut(to) {
                slot.inbox = None;
            }
        }
    }

    /// Pushes a copy to every open receiver (the original to the last one), without
    /// allocating.
    fn deliver_to_all(&mut self, value: T, cloner: Cloner<T>, stamp: usize) {
        let is_open = |slot: &Option<Slot<T>>| matches!(slot, Some(Slot { inbox: Some(_), .. }));
        let Some(last) = self.slots.iter().rposition(is_open) else {
            return;
        };
        for index in 0..last {
            if is_open(&self.slots[index]) {
                self.deliver(ReceiverId(index), cloner(&value), stamp);
            }
        }
        self.deliver(ReceiverId(last), value, stamp);
    }

    /// Applies a join or leave. `in_hand` is the number of data messages taken from the intake
    /// but not yet handled.
    fn apply_control(&mut self, control: Control<T>, in_hand: u64) {
        let due = self.handled + in_hand + self.data.len() as u64;
        match control {
            Control::NewReceiver { id, inbox } => {
                if self.slots.len() <= id.0 {
                    self.slots.resize_with(id.0 + 1, || None);
                }
                self.slots[id.0] = Some(Slot {
                    inbox: Some(inbox),
                    senders: 1,
                    held: 0,
                    dirty: false,
                });
            }
            Control::SenderJoined(id) => {
                if let Some(slot) = self.slot_mut(id) {
                    slot.senders += 1;
                }
            }
            Control::SenderLeft(id) => {
                if let Some(slot) = self.slot_mut(id) {
                    slot.senders -= 1;
                    if slot.senders == 0 {
                        self.pending_closes.push(PendingClose { id, after: due });
                    }
                }
            }
            Control::BroadcasterJoined => self.broadcasters += 1,
            Control::BroadcasterLeft => {
                self.broadcasters -= 1;
                if self.broadcasters == 0 {
                    for (index, slot) in self.slots.iter().enumerate() {
                        if let Some(Slot {
                            inbox: Some(_),
                            senders: 0,
                            ..
                        }) = slot
                        {
                            let id = ReceiverId(index);
                            self.pending_closes.push(PendingClose { id, after: due });
                        }
                    }
                }
            }
        }
    }

    /// Closes the receivers whose close is due; forgets those a broadcaster keeps open (they
    /// are looked at again when the last broadcaster leaves).
    fn settle_closes(&mut self) {
        if self.pending_closes.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending_closes);
        pending.retain(|close| {
            if self.broadcasters > 0 {
                return false;
            }
            let Some(slot) = self.slots.get_mut(close.id.0).and_then(Option::as_mut) else {
                return false;
            };
            if slot.inbox.is_none() {
                return false;
            }
            if self.handled < close.after || slot.held > 0 || self.held_broadcasts > 0 {
                return true;
            }
            if let Some(inbox) = slot.inbox.take() {
                inbox.close(self.published);
            }
            false
        });
        self.pending_closes = pending;
    }

    /// Every handle is gone: release what the window holds, close every inbox.
    fn shut_down(&mut self) {
        let mut window = ReorderWindow::new(0, 0);
        std::mem::swap(&mut window, &mut self.window);
        let mut released = Vec::new();
        self.local.skipped_stamps += window.drain_skipping_gaps(|stamp, held| {
            released.push((stamp, held));
        }) as u64;
        let last_released = window.released();
        for (stamp, held) in released {
            self.unhold(&held);
            self.release(stamp, held);
        }
        self.publish_through(self.stamp.max(last_released));
        for slot in self.slots.iter_mut().flatten() {
            if let Some(inbox) = slot.inbox.take() {
                inbox.close(self.published);
            }
        }
        self.shared.counters.add(&self.local);
    }
}
