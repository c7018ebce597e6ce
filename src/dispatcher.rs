//! The [`Dispatcher`] handle: creates clocked channels and reports on the dispatcher thread.

use std::fmt;

mod history;
pub use history::History;

use crate::engine::journaling::JournalJoin;
use crate::error::{HandleError, JournalError, Mode};
use crate::inbox::{inbox, journaled_inbox, spilling_inbox, LagShared};
use crate::intake::Control;
use crate::journal::RecoveryReport;
use crate::link::Link;
use crate::multicast::ClockedMulticaster;
use crate::receiver::ClockedReceiver;
use crate::sender::ClockedSender;
use crate::spill::dir::SpillRoot;
use crate::spill::queue::spill_queue;
use crate::spill::{Codec, SpillStats};
use crate::stats::DispatcherStats;
use crate::status::{Gauges, Status};
use crate::sync::thread;

/// A handle on one dispatcher thread; creates the channels that share its clock.
///
/// Made by [`new`](crate::new), [`new_with_seed`](crate::new_with_seed) or a
/// [`Builder`](crate::Builder). The thread runs until this handle and every sender and
/// broadcaster are dropped. Dropping the `Dispatcher` itself closes nothing: channels already
/// made keep working.
pub struct Dispatcher<T: Send> {
    link: Link<T>,
    /// How receivers' backlogs are spilled, for a dispatcher built with
    /// [`Builder::build_spilling`](crate::Builder::build_spilling).
    spill: Option<(std::sync::Arc<SpillRoot>, Codec<T>)>,
    /// Journaled: how receivers decode what they replay.
    journal_codec: Option<Codec<T>>,
    thread: thread::JoinHandle<()>,
}

impl<T: Send> Dispatcher<T> {
    pub(crate) fn from_link(link: Link<T>, thread: thread::JoinHandle<()>) -> Self {
        Dispatcher {
            link,
            spill: None,
            journal_codec: None,
            thread,
        }
    }

    pub(crate) fn spilling(
        link: Link<T>,
        thread: thread::JoinHandle<()>,
        root: std::sync::Arc<SpillRoot>,
        codec: Codec<T>,
    ) -> Self {
        Dispatcher {
            link,
            spill: Some((root, codec)),
            journal_codec: None,
            thread,
        }
    }

    pub(crate) fn journaled(
        link: Link<T>,
        thread: thread::JoinHandle<()>,
        codec: Codec<T>,
    ) -> Self {
        Dispatcher {
            link,
            spill: None,
            journal_codec: Some(codec),
            thread,
        }
    }

    /// Drops this handle and waits for the dispatcher thread to exit, which it does once every
    /// sender and broadcaster is gone as well (so this waits for them). When it returns, every
    /// receiver has been closed (each still returns what was delivered to it), and a spilling
    /// dispatcher has removed its files, except those of receivers still alive and, while
    /// any receiver lives, the directory's lock.
    ///
    /// # Panics
    ///
    /// If the dispatcher thread panicked (only a `Clone` or `Serialize` implementation of `T`
    /// can make it), its panic is resumed here.
    ///
    /// ```
    /// let d = clocked_dispatch::new(4);
    /// let (tx, rx) = d.new("tx", "rx");
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// d.join();
    /// assert_eq!(rx.recv(), Ok((Some(1), 1)));
    /// assert!(rx.recv().is_err());
    /// ```
    pub fn join(self) {
        let Dispatcher {
            link,
            spill,
            thread,
            ..
        } = self;
        drop((link, spill));
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    /// Creates a clocked channel: a sender named `sender` and a receiver named `receiver`.
    ///
    /// The receiver's inbox holds `bound` messages (at least one); when it is full the
    /// dispatcher waits for it, after publishing the clock so that other receivers still see
    /// time move.
    ///
    /// # Panics
    ///
    /// If a live receiver of this dispatcher is already named `receiver` (4.0.2 panicked on
    /// its dispatcher thread instead), or if the dispatcher thread has stopped. Use
    /// [`try_new`](Self::try_new) to get these as errors.
    ///
    /// ```
    /// use std::thread;
    ///
    /// let d = clocked_dispatch::new(1);
    /// let (tx, rx) = d.new("atx1", "arx");
    /// thread::spawn(move || tx.send(10).unwrap());
    /// assert_eq!(rx.recv().unwrap().0, Some(10));
    /// ```
    // The name and signature are 4.0.2's: a method `new` on the dispatcher that makes a pair.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<S1: Into<String>, S2: Into<String>>(
        &self,
        sender: S1,
        receiver: S2,
    ) -> (ClockedSender<T>, ClockedReceiver<T>) {
        match self.try_new(sender, receiver) {
            Ok(pair) => pair,
            Err(e) => panic!("clocked_dispatch::Dispatcher::new: {e}"),
        }
    }

    /// Like [`new`](Self::new), returning an error instead of panicking.
    ///
    /// ```
    /// use clocked_dispatch::HandleError;
    ///
    /// let d = clocked_dispatch::new::<u32>(4);
    /// let (_tx, _rx) = d.try_new("tx", "rx").unwrap();
    /// assert_eq!(
    ///     d.try_new("tx2", "rx").unwrap_err(),
    ///     HandleError::ReceiverNameInUse("rx".into())
    /// );
    /// ```
    pub fn try_new<S1: Into<String>, S2: Into<String>>(
        &self,
        sender: S1,
        receiver: S2,
    ) -> Result<(ClockedSender<T>, ClockedReceiver<T>), HandleError> {
        self.make_pair(sender.into(), receiver.into(), false)
    }

    /// Makes a sender and a receiver; a `transient` receiver of a journaled dispatcher is
    /// journaled under an id of its own, not its name (see [`try_new_transient`]).
    ///
    /// [`try_new_transient`]: Self::try_new_transient
    pub(crate) fn make_pair(
        &self,
        sender: String,
        receiver: String,
        transient: bool,
    ) -> Result<(ClockedSender<T>, ClockedReceiver<T>), HandleError> {
        let shared = &self.link.shared;
        // The registry lock covers only the name and the id: the dispatcher takes it to give
        // ids back, and must not wait while we allocate an inbox or create a directory.
        let id = shared.registry.lock().add_receiver(&receiver)?;
        let give_back = |error: HandleError| {
            let mut registry = shared.registry.lock();
            registry.remove_receiver(&receiver);
            registry.release_id(id);
            error
        };
        // Read after the id is reserved: every stamp published so far was assigned before this
        // receiver existed, so none of them can be for it.
        let mut seen = shared.clock.read();
        // Journaled: the name's journal id, and whether it has a backlog to replay first (it
        // then starts below the clock, at its last commit).
        let journal = shared.journal.as_ref().map(|journal| {
            let (journal_id, new) = if transient {
                (journal.transient_id(), true)
            } else {
                journal.id_for(&receiver)
            };
            let plan = std::sync::Arc::new(std::sync::OnceLock::new());
            if !new {
                seen = seen.min(journal.replay_start(journal_id).0 as usize);
            }
            (journal_id, new, plan)
        });
        let gauges = std::sync::Arc::new(Gauges::new(receiver.clone(), seen));
        let lag = match (&journal, &shared.journal, &self.journal_codec) {
            (Some((journal_id, _, _)), Some(log), Some(codec)) => {
                Some((LagShared::new(log.clone(), *journal_id), codec.decode))
            }
            _ => None,
        };
        let (writer, reader) = match (&self.spill, lag) {
            (_, Some((lag, decode))) => {
                journaled_inbox(gauges, shared.inbox_capacity, seen, lag, decode)
            }
            (None, None) => inbox(gauges, shared.inbox_capacity, seen),
            (Some((root, codec)), None) => {
                match spill_queue(root, &receiver, *codec, gauges.clone()) {
                    Ok(spill) => spilling_inbox(gauges, root.config.memory_capacity, seen, spill),
                    Err(e) => return Err(give_back(HandleError::SpillDirectory(e.kind()))),
                }
            }
        };
        let journal_join = match (&journal, &shared.journal, &self.journal_codec) {
            (Some((journal_id, new, plan)), Some(log), Some(codec)) => {
                if !new {
                    reader.replay_first(plan.clone(), log.dir().to_path_buf(), codec.decode);
                }
                Some(Box::new(JournalJoin {
                    id: *journal_id,
                    name: receiver.clone(),
                    plan: plan.clone(),
                    transient,
                }))
            }
            _ => None,
        };
        let flags = reader.flags().clone();
        if !self.link.control(Control::NewReceiver {
            id,
            inbox: Box::new(writer),
            journal: journal_join,
        }) {
            return Err(give_back(HandleError::DispatcherGone));
        }
        let listed = shared.list_receiver(flags.clone());
        let mut rx = ClockedReceiver::new(receiver, reader, shared.clone(), listed);
        rx.journal_id = journal.map(|(journal_id, _, _)| journal_id);
        let tx = ClockedSender::joined(sender, id, flags, self.link.clone());
        Ok((tx, rx))
    }

    /// The dispatcher's counters.
    pub fn stats(&self) -> DispatcherStats {
        let shared = &self.link.shared;
        shared.counters.snapshot(shared.clock.read())
    }

    /// A snapshot of every live receiver: lag, backlog in memory and on disk, drops and
    /// damage, in creation order; prints as a table (see [`Status`]). Cheap enough to call
    /// every second from a monitoring thread: it reads counters, and the only lock it takes is
    /// the list of live receivers, never one the dispatcher thread waits on.
    pub fn status(&self) -> Status {
        let shared = &self.link.shared;
        let clock = shared.clock.read();
        let receivers = shared
            .live
            .lock()
            .values()
            .map(|flags| flags.status(clock))
            .collect();
        Status { clock, receivers }
    }

    /// Sets receiver `name`'s position so that the next receiver created under that name
    /// replays every message for it stamped `stamp` or later (that retention still holds),
    /// before live traffic: to process a stretch again, or, with a stamp above its backlog, to
    /// skip it. Written to the journal like a commit.
    ///
    /// # Errors
    ///
    /// [`NotJournaled`](JournalError::NotJournaled); [`ReceiverOpen`](JournalError::ReceiverOpen)
    /// while a receiver of that name exists (drop it first);
    /// [`UnknownReceiver`](JournalError::UnknownReceiver);
    /// [`RewindTooOld`](JournalError::RewindTooOld), naming the oldest stamp held;
    /// [`RewindAhead`](JournalError::RewindAhead) for a stamp above the clock plus one.
    ///
    /// ```
    /// use clocked_dispatch::Builder;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let d = Builder::new().bound(8).journal(dir.path()).build_journaled::<String>().unwrap();
    /// let (tx, rx) = d.new("tx", "audit");
    /// tx.send_all(["a", "b", "c"].map(String::from)).unwrap();
    /// while rx.last_stamp() < 3 {
    ///     rx.recv().unwrap();
    /// }
    /// rx.commit(3).unwrap();
    /// drop((tx, rx));
    /// d.rewind("audit", 2).unwrap(); // process "b" and "c" again
    /// let (_tx, rx) = d.new("tx", "audit");
    /// assert_eq!(rx.recv().unwrap(), (Some("b".to_string()), 2));
    /// assert_eq!(rx.recv().unwrap(), (Some("c".to_string()), 3));
    /// ```
    pub fn rewind(&self, name: &str, stamp: usize) -> Result<(), JournalError> {
        let shared = &self.link.shared;
        let journal = shared.journal.as_ref().ok_or(JournalError::NotJournaled)?;
        // Held while rewinding: no receiver of that name can be created meanwhile.
        let registry = shared.registry.lock();
        if registry.has_receiver(name) {
            return Err(JournalError::ReceiverOpen {
                name: name.to_owned(),
            });
        }
        journal.rewind(name, stamp as u64)
    }

    /// What opening the journal found: the clock it resumed from, torn bytes cut, damaged
    /// records skipped. `None` if the dispatcher has no journal.
    pub fn recovery(&self) -> Option<&RecoveryReport> {
        self.link
            .shared
            .journal
            .as_ref()
            .map(|journal| journal.recovered())
    }

    /// The mode, once the first data message has fixed it.
    pub fn mode(&self) -> Option<Mode> {
        self.link.shared.mode()
    }

    /// The spill state of every live receiver, in creation order; empty unless the dispatcher
    /// was built with [`Builder::build_spilling`](crate::Builder::build_spilling).
    pub fn spill_status(&self) -> Vec<SpillStats> {
        match &self.spill {
            Some((root, _)) => root.status(),
            None => Vec::new(),
        }
    }
}

impl<T: Send + Clone> Dispatcher<T> {
    /// Creates an empty multicast group named `name`: each
    /// [`multicast`](ClockedMulticaster::multicast) is one stamp, delivered to every member
    /// (added with [`add`](ClockedMulticaster::add)); see [`ClockedMulticaster`].
    ///
    /// # Errors
    ///
    /// [`DispatcherGone`](HandleError::DispatcherGone) if its thread has stopped.
    pub fn multicaster<S: Into<String>>(
        &self,
        name: S,
    ) -> Result<ClockedMulticaster<T>, HandleError> {
        ClockedMulticaster::create(name.into(), self.link.clone())
    }
}

impl<T: Send> fmt::Debug for Dispatcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("mode", &self.mode())
            .field("clock", &self.link.shared.clock.read())
            .finish_non_exhaustive()
    }
}
