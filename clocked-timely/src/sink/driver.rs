//! The sink's forwarding task: hands the [plan](super::plan)'s items to the downstream
//! dispatcher without blocking the timely worker.
//!
//! A blocking `forward` would stall the whole worker (and so every operator on it, and the
//! other workers waiting on its progress) whenever the downstream intake is full; a consumer
//! that reads the downstream receiver on a thread that also waits for the computation would
//! deadlock. So the items go through `forward_async`, polled by the sink operator with the
//! waker that activates it (see [`crate::wake`]): when the intake is full the poll returns
//! `Pending`, the dispatcher wakes the operator after its next batch, and meanwhile the
//! worker runs everything else. What timely produces faster than the dispatcher takes waits
//! in the sink's queue (timely has no back-pressure of its own).
//!
//! The task is one `async` block that owns the sender, so a forward interrupted by `Pending`
//! keeps its value across activations (dropping a `ForwardFuture` would drop the value). It
//! waits for items in a queue shared with the operator; an empty queue returns `Pending`
//! *without* a waker, which is sound only because the operator polls the task after every
//! push. When the queue is finished and drained, the task ends and drops the sender, so the
//! downstream receiver closes once its other senders are gone.
//!
//! Errors: a record the downstream receiver refuses (it is gone, or its spill is full or
//! failing) is counted as undeliverable and its stamp is forwarded without data, so the
//! clock still moves for every other receiver; a stamp the dispatcher has already released
//! (another forwarder used it) is counted as stale; anything else (the dispatcher gone, or
//! in serializing mode) stops the task, is kept as [`SinkStats::error`], and every record
//! still queued or arriving later is counted as undeliverable.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use clocked_dispatch::{ClockedSender, SendErrorKind};

use super::plan::Item;

/// What a sink has done so far; see [`SinkHandle::stats`](super::SinkHandle::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Stamps forwarded with data (one message per time that had records).
    pub messages: u64,
    /// Records forwarded, in those messages.
    pub records: u64,
    /// Stamps forwarded without data (`forward(None, stamp)`), as the frontier passed them.
    pub gaps: u64,
    /// The highest stamp forwarded, with or without data (0 before the first).
    pub accounted: usize,
    /// Records that arrived at a time whose stamp was already accounted for, below the first
    /// stamp, or with no stamp at all; dropped. Never for a stream whose times are at or
    /// above the first stamp.
    pub refused: u64,
    /// Records the downstream side did not take: refused by its receiver (gone, spill full
    /// or failing), or left behind when the forwarding stopped on an error.
    pub undeliverable: u64,
    /// Stamps the dispatcher had already released (another forwarder used them).
    pub stale: u64,
    /// The error that stopped the forwarding, if one did.
    pub error: Option<SendErrorKind>,
    /// Whether the forwarding is over and the sender dropped.
    pub finished: bool,
}

/// The stats, shared between the sink worker and its handles.
pub(crate) type SharedStats = Arc<Mutex<SinkStats>>;

pub(crate) fn update(stats: &SharedStats, change: impl FnOnce(&mut SinkStats)) {
    change(&mut stats.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Items waiting for the task, and whether more may come.
#[derive(Debug)]
pub(crate) struct Queue<D> {
    items: VecDeque<Item<D>>,
    /// No more items will be pushed.
    finished: bool,
    /// The task stopped on an error: items are counted and dropped instead of queued.
    abandoned: bool,
}

impl<D> Queue<D> {
    pub(crate) fn new() -> Self {
        Queue {
            items: VecDeque::new(),
            finished: false,
            abandoned: false,
        }
    }

    /// Where the plan appends its items.
    pub(crate) fn items(&mut self) -> &mut VecDeque<Item<D>> {
        &mut self.items
    }

    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned
    }

    /// Drops every queued item; returns how many records they held.
    fn abandon(&mut self) -> u64 {
        self.abandoned = true;
        let records = self
            .items
            .drain(..)
            .map(|item| match item {
                Item::Data(_, records) => records.len() as u64,
                Item::Gap { .. } => 0,
            })
            .sum();
        records
    }
}

/// The forwarding task.
pub(crate) struct Driver {
    task: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Driver {
    pub(crate) fn new<D: 'static>(
        sender: ClockedSender<Vec<D>>,
        queue: Rc<RefCell<Queue<D>>>,
        stats: SharedStats,
    ) -> Self {
        Driver {
            task: Some(Box::pin(forward_all(sender, queue, stats))),
        }
    }

    /// Runs the task until it waits or ends; `true` once it has ended.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(task) = self.task.as_mut() {
            if task.as_mut().poll(cx).is_ready() {
                self.task = None;
            }
        }
        self.task.is_none()
    }
}

/// The next item, `None` once the queue is finished and empty. `Pending` registers no
/// waker: the operator polls the task after each push.
struct NextItem<'a, D>(&'a RefCell<Queue<D>>);

impl<D> Future for NextItem<'_, D> {
    type Output = Option<Item<D>>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut queue = self.0.borrow_mut();
        match queue.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if queue.finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

async fn forward_all<D>(
    sender: ClockedSender<Vec<D>>,
    queue: Rc<RefCell<Queue<D>>>,
    stats: SharedStats,
) {
    while let Some(item) = NextItem(&queue).await {
        let outcome = match item {
            Item::Data(stamp, records) => forward_data(&sender, stamp, records, &stats).await,
            Item::Gap { from, to } => forward_gap(&sender, from, to, &stats).await,
        };
        if let Err(kind) = outcome {
            let left = queue.borrow_mut().abandon();
            update(&stats, |s| {
                s.error = Some(kind);
                s.undeliverable += left;
            });
            break;
        }
    }
    drop(sender);
    update(&stats, |s| s.finished = true);
}

async fn forward_data<D>(
    sender: &ClockedSender<Vec<D>>,
    stamp: usize,
    records: Vec<D>,
    stats: &SharedStats,
) -> Result<(), SendErrorKind> {
    let count = records.len() as u64;
    let refused = match sender.forward_async(Some(records), stamp).await {
        Ok(()) => {
            update(stats, |s| {
                s.messages += 1;
                s.records += count;
                s.accounted = stamp;
            });
            return Ok(());
        }
        Err(e) => e.kind(),
    };
    update(stats, |s| s.undeliverable += count);
    match refused {
        // The receiver will not take it; the stamp must still be accounted for.
        SendErrorKind::ReceiverGone
        | SendErrorKind::DiskFull { .. }
        // (`stamp + 1` cannot overflow: the plan hands out no record at `usize::MAX`.)
        | SendErrorKind::DiskFailed { .. } => forward_gap(sender, stamp, stamp + 1, stats).await,
        SendErrorKind::StaleStamp { .. } => {
            update(stats, |s| s.stale += 1);
            Ok(())
        }
        fatal => Err(fatal),
    }
}

/// `forward(None, s)` for each `s` in `from .. to`.
async fn forward_gap<D>(
    sender: &ClockedSender<Vec<D>>,
    from: usize,
    to: usize,
    stats: &SharedStats,
) -> Result<(), SendErrorKind> {
    let (mut gaps, mut stale, mut outcome) = (0, 0, Ok(()));
    for stamp in from..to {
        match sender.forward_async(None, stamp).await {
            Ok(()) => gaps += 1,
            Err(e) => match e.kind() {
                SendErrorKind::StaleStamp { .. } => stale += 1,
                fatal => {
                    outcome = Err(fatal);
                    break;
                }
            },
        }
    }
    update(stats, |s| {
        s.gaps += gaps;
        s.stale += stale;
        if gaps + stale > 0 {
            s.accounted = s.accounted.max(from + (gaps + stale) as usize - 1);
        }
    });
    outcome
}
