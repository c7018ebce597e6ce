//! A receiver's row in a status snapshot, and its backlog: what its inbox holds in memory, in
//! its spill files, or left in the journal.

use super::InboxFlags;
use crate::status::ReceiverStatus;

impl InboxFlags {
    /// Messages waiting in memory, on disk, and in the journal.
    pub(crate) fn backlog(&self) -> u64 {
        let on_disk = self.spill.as_ref().map_or(0, |spill| spill.gauges().0);
        let in_journal = self.lag.as_ref().map_or(0, |lag| lag.backlog());
        self.gauges.in_memory() + on_disk + in_journal
    }

    /// This inbox's row of a status snapshot, against the published clock `clock`.
    pub(crate) fn status(&self, clock: usize) -> ReceiverStatus {
        let gauges = &self.gauges;
        let last_stamp = gauges.last_stamp();
        let mut row = ReceiverStatus {
            name: gauges.name.clone(),
            lag: clock.saturating_sub(last_stamp),
            last_stamp,
            in_memory: gauges.in_memory(),
            on_disk: self.lag.as_ref().map_or(0, |lag| lag.backlog()),
            ..ReceiverStatus::default()
        };
        if let Some(spill) = &self.spill {
            let (on_disk, disk_bytes, dropped, corrupted) = spill.gauges();
            row.on_disk = on_disk;
            row.disk_bytes = disk_bytes;
            row.dropped = dropped;
            row.corrupted = corrupted;
        }
        row
    }
}
