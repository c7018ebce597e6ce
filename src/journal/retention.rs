//! Retention: a size limit with kvspool's attrition (whole oldest segments are deleted) and an
//! age limit (zaichik's `retention_ttl`: a segment whose last write is older goes).
//!
//! A background thread per journal does the work, so that the dispatcher never scans or deletes
//! a file itself. It wakes when the dispatcher starts a new segment, and every
//! [`tick`](RetentionConfig::tick) when an age limit is set. The segment being written is never
//! deleted.
//!
//! Before deleting a segment the thread reads it once and counts, for each receiver name, the
//! messages in it that the name had not committed (its `Data` records and the `Multicast`
//! records that list it above its commit, and the
//! broadcasts made while it was open). Those counts accumulate in the name's `expired` count,
//! which is kept in every checkpoint (an `Expired` record) and reset by its next commit or
//! rewind. A receiver whose replay starts below the oldest stamp still held gets one
//! [`SpillFault`](crate::SpillFault) of kind [`FaultKind::Expired`](crate::FaultKind::Expired)
//! with that count, then the messages that remain.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::frame::{Entry, JournalId};
use super::log::Journal;
use super::scan::{SegmentReader, Step};
use super::segments;
use super::tail::SegmentMessages;

/// Retention limits; `u64::MAX` bytes and no age mean keep everything.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetentionConfig {
    pub(crate) max_bytes: u64,
    pub(crate) max_age: Option<Duration>,
}

impl RetentionConfig {
    pub(crate) fn keeps_everything(&self) -> bool {
        self.max_bytes == u64::MAX && self.max_age.is_none()
    }

    /// How often the thread looks at ages.
    fn tick(&self) -> Duration {
        self.max_age.map_or(Duration::from_secs(3600), |age| {
            (age / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
        })
    }
}

/// Wakes the retention thread.
#[derive(Default)]
pub(crate) struct RetentionBell {
    rung: Mutex<bool>,
    ring: Condvar,
}

impl RetentionBell {
    pub(crate) fn ring(&self) {
        *self.rung.lock() = true;
        self.ring.notify_one();
    }

    /// Waits for a ring or `timeout`.
    fn wait(&self, timeout: Duration) {
        let mut rung = self.rung.lock();
        if !*rung {
            self.ring.wait_for(&mut rung, timeout);
        }
        *rung = false;
    }
}

/// Starts the retention thread for `journal`; it ends when the journal is dropped.
pub(crate) fn start(journal: &Arc<Journal>) -> std::io::Result<()> {
    let config = journal.retention;
    if config.keeps_everything() {
        return Ok(());
    }
    let bell = journal.retention_bell.clone();
    let weak: Weak<Journal> = Arc::downgrade(journal);
    std::thread::Builder::new()
        .name("clocked-dispatch-retention".into())
        .spawn(move || loop {
            match weak.upgrade() {
                Some(journal) => enforce(&journal, config),
                None => return,
            }
            bell.wait(config.tick());
        })?;
    Ok(())
}

/// Deletes the oldest segments while the journal is over its limits.
pub(crate) fn enforce(journal: &Journal, config: RetentionConfig) {
    let Ok(listed) = segments::list(journal.dir()) else {
        return;
    };
    let current = journal.position().segment;
    let mut sizes: Vec<(u64, std::path::PathBuf, u64, Option<SystemTime>)> = listed
        .into_iter()
        .filter_map(|(index, path)| {
            let meta = std::fs::metadata(&path).ok()?;
            Some((index, path, meta.len(), meta.modified().ok()))
        })
        .collect();
    let mut total: u64 = sizes.iter().map(|s| s.2).sum();
    let now = SystemTime::now();
    sizes.retain(|s| s.0 < current);
    for (index, path, bytes, modified) in sizes {
        let too_big = total > config.max_bytes;
        let too_old = match (config.max_age, modified) {
            (Some(age), Some(modified)) => now.duration_since(modified).is_ok_and(|d| d > age),
            _ => false,
        };
        if !too_big && !too_old {
            break;
        }
        let commits = journal.commits();
        let (unread, held, last_stamp) = count_unread(&path, &commits);
        // The loss is on record before the file goes (see `Journal::expire`), and so is what
        // it held, for live receivers reading their backlog (see `super::tail`).
        journal.tail.deleting(index, held);
        if journal.expire(&unread).is_err() || std::fs::remove_file(&path).is_err() {
            break;
        }
        journal.deleted_through(last_stamp);
        let _ = segments::sync_dir(journal.dir());
        total = total.saturating_sub(bytes);
    }
}

/// Per receiver, the messages in the segment at `path` above its commit; every message in
/// it; and its highest stamp.
fn count_unread(
    path: &std::path::Path,
    commits: &HashMap<JournalId, u64>,
) -> (HashMap<JournalId, u64>, SegmentMessages, u64) {
    let mut unread: HashMap<JournalId, u64> = HashMap::new();
    let mut held = SegmentMessages::default();
    let mut last_stamp = 0;
    let Ok(mut reader) = SegmentReader::open(path, u64::MAX) else {
        return (unread, held, last_stamp);
    };
    let mut open: Vec<JournalId> = Vec::new();
    loop {
        match reader.next_step() {
            Step::End => break,
            Step::Damaged {
                resumable: true, ..
            } => {}
            Step::Damaged { .. } => break,
            Step::Entry(entry) => {
                if let Some(stamp) = entry.stamp() {
                    last_stamp = last_stamp.max(stamp);
                }
                let above =
                    |id: &JournalId, stamp: u64| commits.get(id).is_some_and(|&c| stamp > c);
                match entry {
                    Entry::Data { receiver, .. } => *held.data.entry(receiver).or_default() += 1,
                    Entry::Multicast { receivers, .. } => {
                        for receiver in receivers.iter() {
                            *held.data.entry(receiver).or_default() += 1;
                        }
                    }
                    Entry::Broadcast { .. } => held.broadcasts += 1,
                    _ => {}
                }
                match entry {
                    Entry::Open { receiver } if !open.contains(&receiver) => open.push(receiver),
                    Entry::Closed { receiver } => open.retain(|&id| id != receiver),
                    Entry::Data {
                        stamp, receiver, ..
                    } if above(&receiver, stamp) => *unread.entry(receiver).or_default() += 1,
                    Entry::Multicast {
                        stamp, receivers, ..
                    } => {
                        for receiver in receivers.iter().filter(|id| above(id, stamp)) {
                            *unread.entry(receiver).or_default() += 1;
                        }
                    }
                    Entry::Broadcast { stamp, .. } => {
                        for id in &open {
                            if above(id, stamp) {
                                *unread.entry(*id).or_default() += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    (unread, held, last_stamp)
}
