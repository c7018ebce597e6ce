//! A stage worker: reads a receiver, maps each message, forwards the result under its stamp.
//! The accounting rule it follows is in [the module doc](super).

use std::fmt;
use std::thread;

use crate::{ClockedRead, ClockedSender, SendErrorKind};

/// How many inputs a worker takes from its receiver at once.
const WORKER_BATCH: usize = 64;

/// What a stage worker did, returned by [`StageHandle::join`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Inputs mapped to a result and forwarded with data.
    pub passed: u64,
    /// Inputs this stage filtered out (forwarded as `None`).
    pub filtered: u64,
    /// Stamps filtered by an earlier stage, passed on as `None`.
    pub carried: u64,
}

/// Why a stage worker stopped early, or could not start.
#[derive(Debug)]
pub enum StageError {
    /// A forward to the next stage failed: its receiver or dispatcher is gone (or the stamp
    /// was refused, which means two workers accounted for one stamp).
    Downstream(SendErrorKind),
    /// [`spawn_stage`] was given no output sender.
    NoOutputs,
    /// The operating system refused to start the worker thread.
    Spawn(std::io::Error),
    /// The user's function panicked.
    Panicked,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageError::Downstream(kind) => write!(f, "the next stage refused a message: {kind}"),
            StageError::NoOutputs => f.write_str("a stage needs at least one output sender"),
            StageError::Spawn(e) => write!(f, "cannot start the stage worker: {e}"),
            StageError::Panicked => f.write_str("the stage function panicked"),
        }
    }
}

impl std::error::Error for StageError {}

/// A running stage worker.
#[derive(Debug)]
pub struct StageHandle {
    thread: thread::JoinHandle<Result<StageReport, StageError>>,
}

impl StageHandle {
    /// Waits for the worker to end: `Ok` once its input closed and everything was forwarded.
    ///
    /// # Errors
    ///
    /// [`StageError::Downstream`] if the next stage went away first, and
    /// [`StageError::Panicked`] if the stage function panicked.
    pub fn join(self) -> Result<StageReport, StageError> {
        self.thread.join().unwrap_or(Err(StageError::Panicked))
    }
}

/// Starts a worker thread that reads `input`, applies `f` to each value, and forwards the
/// result under the value's stamp.
///
/// Pipeline dispatchers carry `Option<T>`: `Some(x)` is a value, `None` a stamp filtered out
/// by an earlier stage, passed along so that every later dispatcher still gets that stamp
/// (see [the pipeline docs](super)). So a worker, for each message it receives:
///
/// * `Some(x)`: `f(x)` returning `Some((i, u))` forwards `Some(u)` through
///   `outputs[i % outputs.len()]` (several outputs let a stage re-key its results across the
///   next stage's workers); returning `None` filters `x` out: `None` is forwarded under its
///   stamp;
/// * `None`: forwarded on as `None`, through `outputs[stamp % outputs.len()]`;
/// * a watermark: nothing (another worker accounts for those stamps).
///
/// `outputs` are senders of a *forwarding* dispatcher. The worker ends when `input` closes.
///
/// # Errors
///
/// [`StageError::NoOutputs`] for an empty `outputs`, [`StageError::Spawn`] if the thread
/// cannot start.
///
/// ```
/// use clocked_dispatch::pipeline::spawn_stage;
///
/// let top = clocked_dispatch::new(16);
/// let bottom = clocked_dispatch::new(16);
/// let (input, worker_rx) = top.new("input", "worker");
/// let (worker_tx, sink) = bottom.new("worker", "sink");
/// // Square the even numbers, filter out the odd ones (their stamps are still forwarded).
/// let worker = spawn_stage(worker_rx, vec![worker_tx], |x: u64| {
///     (x % 2 == 0).then(|| (0, x * x))
/// })
/// .unwrap();
/// for x in 1..=4 {
///     input.send(Some(x)).unwrap();
/// }
/// drop(input);
/// let out: Vec<(Option<u64>, usize)> = sink.filter_map(|(v, stamp)| Some((v?, stamp))).collect();
/// assert_eq!(out, vec![(None, 1), (Some(4), 2), (None, 3), (Some(16), 4)]);
/// assert_eq!(worker.join().unwrap().filtered, 2);
/// ```
pub fn spawn_stage<T, U, F, R>(
    input: R,
    outputs: Vec<ClockedSender<Option<U>>>,
    mut f: F,
) -> Result<StageHandle, StageError>
where
    R: ClockedRead<Option<T>> + Send + 'static,
    T: Send + 'static,
    U: Send + 'static,
    F: FnMut(T) -> Option<(usize, U)> + Send + 'static,
{
    if outputs.is_empty() {
        return Err(StageError::NoOutputs);
    }
    let name = format!("stage-{}", input.name());
    let work = move || -> Result<StageReport, StageError> {
        let mut report = StageReport::default();
        let mut batch = Vec::with_capacity(WORKER_BATCH);
        let pass_on = |stamp: usize| &outputs[stamp % outputs.len()];
        while input.recv_many(&mut batch, WORKER_BATCH).is_ok() {
            for (value, stamp) in batch.drain(..) {
                let forwarded = match value {
                    // A watermark: some other worker accounts for these stamps.
                    None => continue,
                    Some(None) => {
                        report.carried += 1;
                        pass_on(stamp).forward(Some(None), stamp)
                    }
                    Some(Some(value)) => match f(value) {
                        Some((to, result)) => {
                            report.passed += 1;
                            outputs[to % outputs.len()].forward(Some(Some(result)), stamp)
                        }
                        None => {
                            report.filtered += 1;
                            pass_on(stamp).forward(Some(None), stamp)
                        }
                    },
                };
                forwarded.map_err(|e| StageError::Downstream(e.kind()))?;
            }
        }
        Ok(report)
    };
    let thread = thread::Builder::new()
        .name(name)
        .spawn(work)
        .map_err(StageError::Spawn)?;
    Ok(StageHandle { thread })
}
