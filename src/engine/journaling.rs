//! The journaled dispatcher: a batch's messages are staged as records, written (and synced)
//! with one write, and only then delivered. See [`crate::journal`] for the guarantees.
//!
//! ```text
//! handle:        stamp, encode a record, stage (stamp, message)
//! end of batch:  write the records (+ fdatasync per Durability) -> settle waiting senders
//!                -> deliver what was staged -> publish the clock
//! ```
//!
//! Under `Durability::Batch` the write and its sync run on a writer thread
//! ([`crate::journal::write_behind`]) while the dispatcher stages the next batch: at the end
//! of batch k+1 the dispatcher waits for batch k's write, hands k+1 to the writer, then
//! delivers k. Batch k+1 stays in flight until the next batch is staged, or until the
//! dispatcher finds its intake empty and would sleep (`Engine::next_message` finishes it
//! first), but never when a join is applied or a close is due (both need every earlier
//! message delivered). While a batch is in flight, the clock published stops at the batch
//! before it. If the writer thread is gone (a bug: it cannot fail otherwise), the batch in
//! flight is reported as not stored, as a failed write is.
//!
//! A receiver joining first settles what is staged (so it never gets, live, a broadcast
//! stamped before it joined), then learns its replay plan: its backlog is what the journal
//! holds for its name after its last commit, up to the clock now (see
//! [`crate::journal::replay`]). A message for a slot whose name has a newer receiver (the old
//! one was dropped, the name made again) goes to the newer one: it is the name's.
//!
//! If a batch's write fails (after one retry in a fresh segment), its messages are neither
//! stored nor delivered: they are counted in `DispatcherStats::unjournaled`, and under
//! `Durability::Always` each sender gets its value back with `SendErrorKind::JournalFailed`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Engine, Held};
use crate::journal::frame::{self, Entry, JournalId};
use crate::journal::log::{Change, Journal, Written};
use crate::journal::replay::Plan;
use crate::journal::write_behind::WriteBehind;
use crate::journal::Durability;
use crate::registry::ReceiverId;
use crate::spill::codec::EncodeFn;

/// Values handed back to `Always` senders whose batch failed, by intake position.
pub(crate) type Returned<T> = Mutex<HashMap<u64, Vec<T>>>;

/// One staged message: its stamp, the message, the intake position of its `send` (if any),
/// and whether it is in the batch's records.
type Staged<T> = (usize, Held<T>, Option<u64>, bool);

/// A batch whose records are written (or being written): delivered once the write returns.
struct Batch<T> {
    staged: Vec<Staged<T>>,
    /// Intake positions before this one are in the batch or earlier.
    handled: u64,
    /// The highest stamp in the batch.
    clock: u64,
}

/// The batch on the writer thread, and the clock the dispatcher may publish meanwhile.
struct InFlight<T> {
    batch: Batch<T>,
    /// The clock of the batch before it (delivered, or being delivered).
    floor: usize,
}

/// A receiver joining a journaled dispatcher: its journal id, and where to leave its plan.
pub(crate) struct JournalJoin {
    pub(crate) id: JournalId,
    pub(crate) name: String,
    pub(crate) plan: Arc<OnceLock<Plan>>,
    /// A transient receiver: no name in the journal, nothing to replay (see
    /// `src/journal/log/names.rs`).
    pub(crate) transient: bool,
}

/// The dispatcher thread's side of the journal.
pub(crate) struct EngineJournal<T> {
    pub(super) journal: Arc<Journal>,
    encode: EncodeFn<T>,
    returned: Arc<Returned<T>>,
    /// This batch's records, written at its end.
    records: Vec<u8>,
    changes: Vec<Change>,
    /// This batch's messages (with the intake position of each `send`, and whether it is in
    /// the records), delivered once written.
    pub(super) staged: Vec<Staged<T>>,
    /// `Batch`: the writer thread, the batch on it, and the clock of the last batch handed
    /// to it (see the module doc).
    pub(super) writer: Option<WriteBehind>,
    in_flight: Option<InFlight<T>>,
    handed_clock: usize,
    /// Buffers of the last batch written, for the next.
    spare_records: Vec<u8>,
    spare_changes: Vec<Change>,
    spare_staged: Vec<Staged<T>>,
    /// A batch is being delivered: a delivery that blocks (and publishes meanwhile) must not
    /// settle another batch in the middle of this one.
    delivering: bool,
    /// While a written batch is delivered: where it starts in the journal, for a message that
    /// is in it (see `delivery`).
    pub(super) releasing: Option<Written>,
    /// Journal id of each receiver slot.
    ids: Vec<Option<JournalId>>,
    /// The slot of each journal id's latest receiver.
    latest: Vec<Option<ReceiverId>>,
    /// The last stamp that carried no message, not yet written as a tick.
    tick: Option<usize>,
    /// A multicast's journal ids, reused.
    multicast_ids: Vec<JournalId>,
    /// The highest stamp staged.
    stamp: usize,
    /// `send`s staged in this batch.
    pub(super) sends: usize,
    /// `Always`: threads that waited for the last write; most of them send again at once, so
    /// the next write waits a little for them (see [`Engine::gather_siblings`]).
    pub(super) siblings: usize,
    /// `Always`: a running average of how long a write (with its sync) takes.
    pub(super) write_time: Duration,
}

impl<T> EngineJournal<T> {
    pub(crate) fn new(
        journal: Arc<Journal>,
        encode: EncodeFn<T>,
        returned: Arc<Returned<T>>,
    ) -> Self {
        let stamp = journal.recovered().last_stamp;
        EngineJournal {
            journal,
            encode,
            returned,
            records: Vec::new(),
            changes: Vec::new(),
            staged: Vec::new(),
            writer: None,
            in_flight: None,
            handed_clock: stamp,
            spare_records: Vec::new(),
            spare_changes: Vec::new(),
            spare_staged: Vec::new(),
            delivering: false,
            ids: Vec::new(),
            latest: Vec::new(),
            tick: None,
            multicast_ids: Vec::new(),
            stamp,
            releasing: None,
            sends: 0,
            siblings: 0,
            write_time: Duration::ZERO,
        }
    }

    /// `Durability::Batch`: writes and syncs on a thread of its own while the dispatcher stages
    /// the next batch (see [`crate::journal::write_behind`]).
    pub(crate) fn write_behind(mut self) -> std::io::Result<Self> {
        if self.journal.durability == Durability::Batch {
            self.writer = Some(WriteBehind::spawn(self.journal.clone())?);
        }
        Ok(self)
    }

    /// While a batch is in flight, the highest stamp that may be published: its predecessor's.
    pub(super) fn publishable(&self, stamp: usize) -> usize {
        match &self.in_flight {
            Some(flight) => stamp.min(flight.floor),
            None => stamp,
        }
    }

    /// Waits for the batch on the writer thread, if one is; its buffers come back for the
    /// next batch.
    fn finish_in_flight(&mut self) -> Option<(Batch<T>, Result<Written, std::io::ErrorKind>)> {
        let flight = self.in_flight.take()?;
        // A batch is in flight only if there is a writer thread.
        let done = self.writer.as_mut()?.finish();
        self.spare_records = done.records;
        self.spare_changes = done.changes;
        Some((flight.batch, done.written))
    }

    /// Writes what is staged as one batch. With a writer thread it is handed over and stays
    /// in flight (`None`); without one it is written here and returned, to be delivered.
    fn write_batch(
        &mut self,
        handled: u64,
    ) -> Option<(Batch<T>, Result<Written, std::io::ErrorKind>)> {
        let batch = self.take_batch(handled);
        self.sends = 0;
        if self.writer.is_some() {
            let records =
                std::mem::replace(&mut self.records, std::mem::take(&mut self.spare_records));
            let changes =
                std::mem::replace(&mut self.changes, std::mem::take(&mut self.spare_changes));
            if let Some(writer) = self.writer.as_mut() {
                writer.start(records, changes, batch.clock);
            }
            self.in_flight = Some(InFlight {
                floor: self.handed_clock,
                batch,
            });
            self.handed_clock = self.stamp;
            return None;
        }
        let began = (self.journal.durability == Durability::Always).then(Instant::now);
        let written = self
            .journal
            .write(&mut self.records, &self.changes, batch.clock);
        self.changes.clear();
        if let Some(began) = began {
            self.write_time = (self.write_time * 7 + began.elapsed()) / 8;
            self.siblings = self.journal.durable.waiting();
        }
        Some((batch, written))
    }

    /// Takes what is staged as a batch, leaving the spare buffer in its place.
    fn take_batch(&mut self, handled: u64) -> Batch<T> {
        let spare = std::mem::take(&mut self.spare_staged);
        Batch {
            staged: std::mem::replace(&mut self.staged, spare),
            handled,
            clock: self.stamp as u64,
        }
    }

    fn id_of(&self, receiver: ReceiverId) -> Option<JournalId> {
        self.ids.get(receiver.0).copied().flatten()
    }

    /// The slot of the latest receiver of journal id `id`.
    fn latest_of(&self, id: JournalId) -> Option<ReceiverId> {
        self.latest.get(id as usize).copied().flatten()
    }

    fn write_tick(&mut self) {
        if let Some(stamp) = self.tick.take() {
            frame::append_entry(
                &mut self.records,
                &Entry::Tick {
                    stamp: stamp as u64,
                },
            );
        }
    }

    fn stage_entry(&mut self, entry: &Entry<'_>) {
        self.write_tick();
        frame::append_entry(&mut self.records, entry);
    }
}

impl<T> Engine<T> {
    /// Journaled: stages a stamped message (or a stamp without one) for the end of the batch.
    /// `position` is the intake position of the `send` it came from, if any.
    pub(super) fn stage(&mut self, stamp: usize, held: Held<T>, position: Option<u64>) {
        let Some(journal) = self.journal.as_mut() else {
            self.release(stamp, held);
            return;
        };
        journal.stamp = journal.stamp.max(stamp);
        let mut held = held;
        // A message for a name whose receiver was dropped and made again (its old slot still
        // waits to close) is the name's: the new receiver gets it. It joined after its replay
        // limit, below this stamp, so this is its live traffic, in order.
        let rebind = |journal: &EngineJournal<T>, to: &mut ReceiverId| {
            if let Some(latest) = journal.id_of(*to).and_then(|id| journal.latest_of(id)) {
                *to = latest;
            }
        };
        match &mut held {
            Held::Unicast(to, _) => rebind(journal, to),
            // Membership belongs to a receiver, not to its name: a member whose name was
            // taken by a newer receiver is a dropped one (the newer one joins by its own
            // `add`), so it is left out rather than rebound (which could deliver twice).
            Held::Multicast(members, _, _, _) => members.retain(|&to| {
                journal
                    .id_of(to)
                    .and_then(|id| journal.latest_of(id))
                    .is_none_or(|latest| latest == to)
            }),
            Held::Nothing | Held::Broadcast(..) => {}
        }
        let encoded = match &held {
            Held::Nothing => {
                journal.tick = Some(stamp);
                return;
            }
            Held::Unicast(to, value) => match journal.id_of(*to) {
                Some(id) => {
                    journal.write_tick();
                    frame::append_message(
                        &mut journal.records,
                        stamp,
                        Some(id),
                        value,
                        journal.encode,
                    )
                    .is_ok()
                }
                // Not a receiver the journal knows (it is gone): undeliverable anyway.
                None => true,
            },
            Held::Broadcast(value, _) => {
                journal.write_tick();
                frame::append_message(&mut journal.records, stamp, None, value, journal.encode)
                    .is_ok()
            }
            // Each member's replay and lag reader find it as they find a send of theirs.
            Held::Multicast(members, value, _, archive) => {
                // The group's history (if it keeps one) and each member still known: one
                // `Multicast` record naming them all, the payload stored once (`Data` for one).
                let mut ids = std::mem::take(&mut journal.multicast_ids);
                ids.clear();
                ids.extend(archive.iter().copied());
                // (A member made under the group's own name shares its id: listed once.)
                let members = members.iter().filter_map(|&to| journal.id_of(to));
                ids.extend(members.filter(|&id| Some(id) != *archive));
                let encoded = match ids.as_slice() {
                    [] => {
                        // No record will carry the stamp: a tick does, so that a restart never
                        // hands out a stamp already published.
                        journal.tick = Some(stamp);
                        journal.multicast_ids = ids;
                        return;
                    }
                    [id] => {
                        journal.write_tick();
                        frame::append_message(
                            &mut journal.records,
                            stamp,
                            Some(*id),
                            value,
                            journal.encode,
                        )
                        .is_ok()
                    }
                    several => {
                        journal.write_tick();
                        frame::append_multicast(
                            &mut journal.records,
                            stamp,
                            several,
                            value,
                            journal.encode,
                        )
                        .is_ok()
                    }
                };
                journal.multicast_ids = ids;
                encoded
            }
        };
        if !encoded {
            // Delivered, but nothing a restart could replay.
            self.local.unjournaled += 1;
            journal.tick = Some(stamp);
        }
        let in_journal =
            encoded && !matches!(&held, Held::Unicast(to, _) if journal.id_of(*to).is_none());
        journal.sends += usize::from(position.is_some());
        journal.staged.push((stamp, held, position, in_journal));
    }

    /// Writes what the batch staged, settles waiting senders, then delivers it. Under
    /// `Batch`, may leave the batch in flight on the writer thread (see the module doc).
    pub(super) fn settle_journal(&mut self) {
        self.settle_journal_as(false);
    }

    /// As [`settle_journal`](Self::settle_journal); with `drain`, nothing is left in flight.
    fn settle_journal_as(&mut self, drain: bool) {
        let handled = self.handled;
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if journal.delivering {
            return;
        }
        journal.write_tick();
        let has_batch = !(journal.records.is_empty()
            && journal.changes.is_empty()
            && journal.staged.is_empty());
        // Write-behind: the batch in flight is finished first, this one handed over, and
        // only then is the earlier one delivered, while this one is written. Without a
        // writer thread this one is written here, now, and delivered at once.
        let earlier = journal.finish_in_flight();
        let written_here = if has_batch {
            self.local.journal_writes += 1;
            journal.write_batch(handled)
        } else {
            None
        };
        for (batch, written) in earlier.into_iter().chain(written_here) {
            self.deliver_batch(batch, written);
        }
        if !drain && !self.closes_due() && self.journal_in_flight() {
            return;
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        match journal.finish_in_flight() {
            Some((batch, written)) => self.deliver_batch(batch, written),
            None if !has_batch => {
                let stamp = journal.stamp as u64;
                journal.journal.durable.settle(handled, stamp, None);
            }
            None => {}
        }
    }

    /// A batch's write returned: settles its senders, then delivers it (or, if the write
    /// failed, counts it and hands `Always` senders their values back).
    fn deliver_batch(&mut self, batch: Batch<T>, written: Result<Written, std::io::ErrorKind>) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let Batch {
            mut staged,
            handled,
            clock,
        } = batch;
        let (start, failure) = match written {
            Ok(start) => (Some(start), None),
            Err(kind) => (None, Some(kind)),
        };
        if failure.is_some() {
            self.local.unjournaled += staged.len() as u64;
            if journal.journal.durability == Durability::Always {
                let mut returned = journal.returned.lock();
                for (_, held, position, _) in staged.drain(..) {
                    let value = match held {
                        Held::Unicast(_, value)
                        | Held::Broadcast(value, _)
                        | Held::Multicast(_, value, _, _) => value,
                        Held::Nothing => continue,
                    };
                    if let Some(position) = position {
                        returned.entry(position).or_default().push(value);
                    }
                }
            }
            staged.clear();
        }
        // Before delivery: an `Always` sender may go on as soon as its message is stored.
        journal.journal.durable.settle(handled, clock, failure);
        journal.delivering = true;
        for (stamp, held, _, encoded) in staged.drain(..) {
            if let Some(journal) = self.journal.as_mut() {
                journal.releasing = start.filter(|_| encoded);
            }
            self.release(stamp, held);
        }
        if let Some(journal) = self.journal.as_mut() {
            journal.spare_staged = staged;
            journal.releasing = None;
            journal.delivering = false;
        }
    }

    /// Whether a batch is on the writer thread.
    pub(super) fn journal_in_flight(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|journal| journal.in_flight.is_some())
    }

    /// Nothing left staged or in flight: everything handled is written and delivered.
    pub(super) fn drain_journal(&mut self) {
        self.settle_journal_as(true);
    }

    /// A receiver joins a journaled dispatcher: settle the batch so far, then fix its replay
    /// plan and note it open. Call before its slot is inserted.
    pub(super) fn join_journal(&mut self, receiver: ReceiverId, join: JournalJoin) {
        self.drain_journal();
        let limit = self.stamp.max(self.window.released());
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if journal.ids.len() <= receiver.0 {
            journal.ids.resize(receiver.0 + 1, None);
        }
        journal.ids[receiver.0] = Some(join.id);
        if join.transient {
            // No name that a later receiver could take, and no backlog.
            return;
        }
        let index = join.id as usize;
        if journal.latest.len() <= index {
            journal.latest.resize(index + 1, None);
        }
        journal.latest[index] = Some(receiver);
        let (from, expired, oldest) = journal.journal.replay_start(join.id);
        let plan = Plan {
            id: join.id,
            from,
            expired,
            oldest,
            limit: limit as u64,
            end: journal.journal.position(),
        };
        let _ = join.plan.set(plan);
        journal.stage_entry(&Entry::Name {
            receiver: join.id,
            name: &join.name,
        });
        journal.stage_entry(&Entry::Open { receiver: join.id });
        journal.changes.push(Change::Open(join.id));
    }

    /// The dispatcher stops: its waiters give up.
    pub(super) fn stop_journal(&mut self) {
        if let Some(journal) = self.journal.as_ref() {
            journal.journal.durable.stop();
        }
    }
}
