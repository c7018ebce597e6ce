//! Multicast groups on the dispatcher thread (the handle is [`crate::ClockedMulticaster`]).
//!
//! A group is a list of member receivers. Joins and leaves come through the data channel
//! (`Envelope::GroupChange`), so each falls exactly between the multicasts sent before and
//! after it. While a receiver is a member, the handle holds it open as one more sender (a
//! `SenderJoined` before the join, a `SenderLeft` after the leave), so a listed id never
//! names a different receiver. A dropped multicaster's group is forgotten once the data
//! queued before the drop is handled (its own last multicasts still reach their members).
//! A multicast takes one stamp and pushes a copy to each member in turn, through the same
//! [`deliver`](Engine::deliver) as a send: a member found gone is closed and skipped.
//! Journaled, it is staged with the members of the moment (`Held::Multicast`), written as
//! one record naming every member (`Multicast`; `Data` for one), and delivered to them after
//! the write. A group that keeps its history
//! ([`Dispatcher::archived_multicaster`](crate::Dispatcher::archived_multicaster)) is named in
//! that record too, under its own journal id, members or not.

use super::Engine;
use crate::intake::Cloner;
use crate::multicast::GroupId;
use crate::registry::ReceiverId;

impl<T> Engine<T> {
    /// `member` joins or leaves `group`. The handle never repeats a join or a leave.
    pub(super) fn change_group(&mut self, group: GroupId, member: ReceiverId, join: bool) {
        let members = self.groups.entry(group).or_default();
        if join {
            members.push(member);
        } else if let Some(at) = members.iter().position(|&id| id == member) {
            members.swap_remove(at);
        }
        if members.is_empty() {
            self.groups.remove(&group);
        }
    }

    /// `group`'s multicaster is gone: forget the group once the `due`-th message is handled.
    pub(super) fn drop_group(&mut self, group: GroupId, due: u64) {
        self.dropped_groups.push_back((due, group));
    }

    /// Forgets the dropped groups that are due.
    pub(super) fn forget_dropped_groups(&mut self) {
        while let Some(&(due, group)) = self.dropped_groups.front() {
            if due > self.handled {
                break;
            }
            self.dropped_groups.pop_front();
            self.groups.remove(&group);
            self.archives.remove(&group);
        }
    }

    /// Stamps are assigned by the caller; delivers a copy of `value` to every member of
    /// `group` (the original to the last), or nothing if it has none.
    pub(super) fn multicast(&mut self, group: GroupId, value: T, cloner: Cloner<T>, stamp: usize) {
        let members = self.groups.get(&group).map_or(&[][..], Vec::as_slice);
        if self.journal.is_some() {
            // Journaled: written first, delivered after; the members are those of now.
            let archive = self.archives.get(&group).copied();
            let held = super::Held::Multicast(members.to_vec(), value, cloner, archive);
            self.stage(stamp, held, Some(self.handled));
            return;
        }
        // A copy: delivering may block and find receivers gone, and needs `&mut self`.
        let mut targets = std::mem::take(&mut self.broadcast_targets);
        targets.clear();
        targets.extend_from_slice(members);
        self.deliver_to_each(&targets, value, cloner, stamp);
        self.broadcast_targets = targets;
    }
}
