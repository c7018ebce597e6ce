//! What every handle holds: the way into the dispatcher, and the state shared with it.

use std::time::Instant;

use std::collections::BTreeMap;

use crate::clock::{Clock, Waited};
use crate::error::{Mode, SendErrorKind};
use crate::inbox::InboxFlags;
use crate::intake::queue::{IntakeSender, Refused};
use crate::intake::{Control, Envelope};
use crate::registry::Registry;
use crate::spill::dir::SpillRoot;
use crate::stats::Counters;
use crate::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};
use crate::sync::channel::Sender;
use crate::sync::{Arc, Mutex};

const MODE_UNSET: u8 = 0;
const MODE_SERIALIZING: u8 = 1;
const MODE_FORWARDING: u8 = 2;

/// State shared by the dispatcher thread and every handle of one dispatcher.
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) registry: Mutex<Registry>,
    /// Every live receiver's inbox flags, by creation number, for status queries. Taken by
    /// receivers as they come and go and by status queries; never by the dispatcher thread.
    pub(crate) live: Mutex<BTreeMap<u64, Arc<InboxFlags>>>,
    next_live: AtomicU64,
    /// Tasks waiting for room in the intake.
    #[cfg(feature = "async")]
    pub(crate) intake_waiters: crate::async_send::IntakeWaiters,
    pub(crate) counters: Counters,
    /// How far ahead of the released clock a forwarded stamp may be.
    pub(crate) reorder_window: usize,
    /// Capacity of each receiver's inbox.
    pub(crate) inbox_capacity: usize,
    /// The spill directory, if receivers spill.
    pub(crate) spill: Option<std::sync::Arc<SpillRoot>>,
    /// The journal, if the dispatcher has one.
    pub(crate) journal: Option<std::sync::Arc<crate::journal::log::Journal>>,
    mode: AtomicU8,
}

impl Shared {
    pub(crate) fn new(
        seed: usize,
        reorder_window: usize,
        inbox_capacity: usize,
        spill: Option<std::sync::Arc<SpillRoot>>,
    ) -> Self {
        Shared {
            clock: Clock::new(seed),
            registry: Mutex::new(Registry::default()),
            live: Mutex::new(BTreeMap::new()),
            next_live: AtomicU64::new(0),
            #[cfg(feature = "async")]
            intake_waiters: crate::async_send::IntakeWaiters::new(),
            counters: Counters::default(),
            reorder_window,
            inbox_capacity,
            spill,
            journal: None,
            mode: AtomicU8::new(MODE_UNSET),
        }
    }

    /// Lists a new receiver's inbox for status queries; returns the key it is listed under.
    pub(crate) fn list_receiver(&self, flags: Arc<InboxFlags>) -> u64 {
        let key = self.next_live.fetch_add(1, SeqCst);
        self.live.lock().insert(key, flags);
        key
    }

    /// The mode, once the first data message has fixed it.
    pub(crate) fn mode(&self) -> Option<Mode> {
        match self.mode.load(SeqCst) {
            MODE_SERIALIZING => Some(Mode::Serializing),
            MODE_FORWARDING => Some(Mode::Forwarding),
            _ => None,
        }
    }

    /// Fixes the mode to `wanted` if unset; fails if it is fixed to the other one. The first
    /// caller wins, so two racing senders of different modes cannot both get in.
    pub(crate) fn claim_mode(&self, wanted: Mode) -> Result<(), SendErrorKind> {
        let code = match wanted {
            Mode::Serializing => MODE_SERIALIZING,
            Mode::Forwarding => MODE_FORWARDING,
        };
        let current = self.mode.load(SeqCst);
        if current == code {
            return Ok(());
        }
        match self.mode.compare_exchange(MODE_UNSET, code, SeqCst, SeqCst) {
            Ok(_) => Ok(()),
            Err(other) if other == code => Ok(()),
            Err(_) => Err(SendErrorKind::WrongMode {
                dispatcher: match wanted {
                    Mode::Serializing => Mode::Forwarding,
                    Mode::Forwarding => Mode::Serializing,
                },
            }),
        }
    }

    /// The broadcasters' disk-full gate: `Ok` unless some spilling receiver holds its sends;
    /// then fails under [`DiskFull::Reject`](crate::DiskFull::Reject), or waits until none
    /// does. A receiver whose disk is failing (not full) fails the broadcast with
    /// `DiskFailed`: at once under `Reject`, after [`FAILING_DISK_WAIT`](crate::FAILING_DISK_WAIT)
    /// under `Block`.
    pub(crate) fn admit_broadcast(&self) -> Result<(), SendErrorKind> {
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        let held = || {
            spill
                .held_receivers
                .load(std::sync::atomic::Ordering::Acquire)
                > 0
        };
        if !held() {
            return Ok(());
        }
        let reject = spill.config.when_full == crate::DiskFull::Reject;
        if reject && spill.failing_kind().is_none() {
            return Err(SendErrorKind::DiskFull {
                limit: spill.config.disk_limit,
            });
        }
        let failing_since = std::time::Instant::now();
        // Rare and long (a reader must free a segment): a sleeping poll is enough.
        while held() {
            if let Some(kind) = spill.failing_kind() {
                if reject || failing_since.elapsed() >= crate::FAILING_DISK_WAIT {
                    return Err(SendErrorKind::DiskFailed { kind });
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// [`admit_broadcast`](Self::admit_broadcast) without waiting: while a spilling receiver
    /// holds its sends, fails at once with `DiskFull` (or `DiskFailed`), whatever the policy.
    #[cfg(feature = "async")]
    pub(crate) fn try_admit_broadcast(&self) -> Result<(), SendErrorKind> {
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        if spill
            .held_receivers
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
        {
            return Ok(());
        }
        Err(match spill.failing_kind() {
            Some(kind) => SendErrorKind::DiskFailed { kind },
            None => SendErrorKind::DiskFull {
                limit: spill.config.disk_limit,
            },
        })
    }

    /// Checks a stamp about to be forwarded against the released clock.
    pub(crate) fn check_stamp(&self, stamp: usize) -> Result<(), SendErrorKind> {
        self.stamp_verdict(stamp, self.clock.read())
    }

    /// Waits until the released clock is within the reorder window of `stamp` (see
    /// [`Clock::wait_until`]), or `deadline` passes
    /// ([`Timeout`](SendErrorKind::Timeout)), or the dispatcher thread ends
    /// ([`DispatcherGone`](SendErrorKind::DispatcherGone)). A stale stamp fails at once.
    pub(crate) fn wait_for_window(
        &self,
        stamp: usize,
        deadline: Option<Instant>,
    ) -> Result<(), SendErrorKind> {
        // Ready once the stamp is in the window, or stale (reported below).
        let ready = |released| {
            !matches!(
                self.stamp_verdict(stamp, released),
                Err(SendErrorKind::StampTooFarAhead { .. })
            )
        };
        match self.clock.wait_until(deadline, ready) {
            Waited::Ready(released) => self.stamp_verdict(stamp, released),
            Waited::Stopped => Err(SendErrorKind::DispatcherGone),
            Waited::TimedOut(_) => Err(SendErrorKind::Timeout),
        }
    }

    /// The verdict on forwarding `stamp` while the clock is at `released`.
    fn stamp_verdict(&self, stamp: usize, released: usize) -> Result<(), SendErrorKind> {
        if stamp <= released {
            Err(SendErrorKind::StaleStamp { stamp, released })
        } else if stamp - released > self.reorder_window {
            Err(SendErrorKind::StampTooFarAhead {
                stamp,
                released,
                window: self.reorder_window,
            })
        } else {
            Ok(())
        }
    }
}

/// What [`Link::try_submit`] did with an envelope.
#[cfg(feature = "async")]
pub(crate) enum Submitted<T> {
    Done,
    Full(Envelope<T>),
    Gone(Envelope<T>),
}

/// The channels into the dispatcher plus the shared state.
pub(crate) struct Link<T> {
    data: IntakeSender<Envelope<T>>,
    control: Sender<Control<T>>,
    pub(crate) shared: Arc<Shared>,
    /// Journaled: values the dispatcher hands back to `Always` senders whose batch failed.
    pub(crate) returned: Option<std::sync::Arc<crate::engine::journaling::Returned<T>>>,
}

impl<T> Clone for Link<T> {
    fn clone(&self) -> Self {
        Link {
            data: self.data.clone(),
            control: self.control.clone(),
            shared: self.shared.clone(),
            returned: self.returned.clone(),
        }
    }
}

impl<T> Link<T> {
    pub(crate) fn new(
        data: IntakeSender<Envelope<T>>,
        control: Sender<Control<T>>,
        shared: Arc<Shared>,
    ) -> Self {
        Link {
            data,
            control,
            shared,
            returned: None,
        }
    }

    /// Hands a data message to the dispatcher, blocking while the intake is full. Gives the
    /// envelope back if the dispatcher thread is gone.
    #[inline]
    pub(crate) fn submit(&self, envelope: Envelope<T>) -> Result<usize, Envelope<T>> {
        self.data
            .send(envelope, None)
            .map_err(|refused| match refused {
                Refused::Full(e) | Refused::Timeout(e) | Refused::Gone(e) => e,
            })
    }

    /// Like [`submit`](Self::submit), but waits for room in the intake only until `deadline`
    /// (if any); gives the envelope back with the reason.
    pub(crate) fn submit_by(
        &self,
        envelope: Envelope<T>,
        deadline: Option<Instant>,
    ) -> Result<usize, (Envelope<T>, SendErrorKind)> {
        self.data
            .send(envelope, deadline)
            .map_err(|refused| match refused {
                Refused::Full(e) | Refused::Timeout(e) => (e, SendErrorKind::Timeout),
                Refused::Gone(e) => (e, SendErrorKind::DispatcherGone),
            })
    }

    /// Hands a data message to the dispatcher if the intake has room now.
    #[cfg(feature = "async")]
    pub(crate) fn try_submit(&self, envelope: Envelope<T>) -> Submitted<T> {
        match self.data.try_send(envelope) {
            Ok(()) => Submitted::Done,
            Err(Refused::Full(envelope) | Refused::Timeout(envelope)) => Submitted::Full(envelope),
            Err(Refused::Gone(envelope)) => Submitted::Gone(envelope),
        }
    }

    /// Whether the intake has no room at all (bound 0: every send is a rendezvous).
    #[cfg(feature = "async")]
    pub(crate) fn intake_is_rendezvous(&self) -> bool {
        self.data.is_rendezvous()
    }

    /// Whether `other` leads to the same dispatcher.
    pub(crate) fn same_dispatcher(&self, other: &Link<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Tells the dispatcher about a handle joining or leaving. Never blocks. Returns false if
    /// the dispatcher thread is gone.
    pub(crate) fn control(&self, message: Control<T>) -> bool {
        self.data.announce_control();
        let sent = self.control.send(message).is_ok();
        self.data.ring();
        sent
    }
}
