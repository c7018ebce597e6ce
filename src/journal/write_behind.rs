//! Write-behind for [`Durability::Batch`](super::Durability::Batch): a thread that writes and
//! syncs one batch's records while the dispatcher stages the next.
//!
//! Without it, a synced batch costs the dispatcher its own work (take from the intake, stamp,
//! encode, deliver) *plus* the write and its `fdatasync`, one after the other. With it:
//!
//! ```text
//! dispatcher:  stage k | hand k | stage k+1 ........ | wait k | hand k+1 | deliver k | stage k+2
//! writer:              | write + sync k ...........|          | write + sync k+1 ...........
//! ```
//!
//! Invariants (the engine's side is in `crate::engine::journaling`):
//!
//! * at most one write is in flight, and batches are written in the order they were staged,
//!   so the journal's order is the stamp order;
//! * a batch is delivered, and its senders settled (`flush` returns), only after its write
//!   and sync returned: a receiver never sees a message that a power loss could take back;
//! * while a batch is in flight, the clock published to receivers stops at the last batch
//!   delivered.
//!
//! The write itself is [`Journal::write`], unchanged: its retry in a fresh segment, its
//! checkpoint on a roll and its signals to lagging readers happen on this thread instead of
//! the dispatcher's. If the thread is gone (it cannot panic short of a bug), the dispatcher
//! writes the batch itself.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::log::{Change, Journal, Written};

/// One batch to write: its records, the receiver-table changes they announce, its clock.
struct Request {
    records: Vec<u8>,
    changes: Vec<Change>,
    clock: u64,
}

/// A finished write, with the batch's buffers back (emptied) for the next batch.
pub(crate) struct Done {
    pub(crate) written: Result<Written, io::ErrorKind>,
    pub(crate) records: Vec<u8>,
    pub(crate) changes: Vec<Change>,
}

/// The dispatcher's handle on its writer thread.
pub(crate) struct WriteBehind {
    journal: Arc<Journal>,
    requests: Option<SyncSender<Request>>,
    results: Receiver<Done>,
    /// A batch the thread could not take (it is gone): written by [`finish`](Self::finish).
    orphan: Option<Request>,
    /// A finished write that [`is_done`](Self::is_done) found, for [`finish`](Self::finish).
    done: Option<Done>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Starts the writer thread of `journal`.
    pub(crate) fn spawn(journal: Arc<Journal>) -> io::Result<Self> {
        // One request and one result at a time: the dispatcher never has two in flight.
        let (requests, incoming) = sync_channel::<Request>(1);
        let (outgoing, results) = sync_channel::<Done>(1);
        let writer_journal = journal.clone();
        let thread = std::thread::Builder::new()
            .name("clocked-journal-writer".into())
            .spawn(move || {
                for request in incoming {
                    if outgoing.send(write(&writer_journal, request)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(WriteBehind {
            journal,
            requests: Some(requests),
            results,
            orphan: None,
            done: None,
            thread: Some(thread),
        })
    }

    /// Hands a batch to the writer. Call [`finish`](Self::finish) before the next `start`.
    pub(crate) fn start(&mut self, records: Vec<u8>, changes: Vec<Change>, clock: u64) {
        let request = Request {
            records,
            changes,
            clock,
        };
        let refused = match self.requests.as_ref() {
            Some(requests) => requests.send(request).err().map(|refused| refused.0),
            None => Some(request),
        };
        if let Some(request) = refused {
            self.requests = None;
            self.orphan = Some(request);
        }
    }

    /// Whether the write handed over by the last [`start`](Self::start) has returned
    /// (without waiting).
    pub(crate) fn is_done(&mut self) -> bool {
        if self.done.is_none() && self.orphan.is_none() {
            match self.results.try_recv() {
                Ok(done) => self.done = Some(done),
                Err(TryRecvError::Empty) => {}
                // The thread is gone: `finish` reports the batch as not stored.
                Err(TryRecvError::Disconnected) => self.requests = None,
            }
        }
        self.done.is_some() || self.orphan.is_some() || self.requests.is_none()
    }

    /// Waits for the write handed over by the last [`start`](Self::start).
    pub(crate) fn finish(&mut self) -> Done {
        if let Some(request) = self.orphan.take() {
            return write(&self.journal, request);
        }
        if let Some(done) = self.done.take() {
            return done;
        }
        match self.results.recv() {
            Ok(done) => done,
            // The thread died with the batch: whether it reached the disk is unknown, so it
            // is reported as not stored (a restart may still find it: at-least-once).
            Err(_) => {
                self.requests = None;
                Done {
                    written: Err(io::ErrorKind::Other),
                    records: Vec::new(),
                    changes: Vec::new(),
                }
            }
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Closing the request channel ends the thread's loop.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes one batch (with its sync, per the journal's durability).
fn write(journal: &Journal, mut request: Request) -> Done {
    let written = journal.write(&mut request.records, &request.changes, request.clock);
    request.changes.clear();
    Done {
        written,
        records: request.records,
        changes: request.changes,
    }
}
