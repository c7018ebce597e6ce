//! The ordered parallel map: a serializing dispatcher spreads stamped inputs over workers, a
//! forwarding dispatcher puts their results back in stamp order.

use crate::pipeline::stage::{spawn_stage, StageError, StageHandle};
use crate::{ClockedReceiver, ClockedSender};

/// The input of an [`ordered_map`]: sends each value to one of its workers.
#[derive(Debug)]
pub struct OrderedInput<T> {
    workers: Vec<ClockedSender<Option<T>>>,
    next: std::cell::Cell<usize>,
}

impl<T> OrderedInput<T> {
    /// Sends `value` to the next worker in turn. Its result comes out of the map at the
    /// value's position in the order of all sends.
    ///
    /// # Errors
    ///
    /// As [`ClockedSender::send`]; `ReceiverGone` if that worker stopped (its downstream went
    /// away).
    pub fn send(&self, value: T) -> Result<(), crate::SendError<T>> {
        let worker = self.next.get();
        self.next.set((worker + 1) % self.workers.len());
        self.workers[worker].send(Some(value)).map_err(unwrap_value)
    }

    /// Sends `value` to worker `key % workers`: values with equal keys go to the same worker,
    /// for stateful per-key functions.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_keyed(&self, key: u64, value: T) -> Result<(), crate::SendError<T>> {
        self.workers[(key % self.workers.len() as u64) as usize]
            .send(Some(value))
            .map_err(unwrap_value)
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

/// Takes the value back out of a failed send (it was wrapped in `Some` by the input).
fn unwrap_value<T>(error: crate::SendError<Option<T>>) -> crate::SendError<T> {
    let kind = error.kind();
    match error.into_inner() {
        Some(value) => crate::SendError::new(kind, value),
        // The input only ever sends `Some`.
        None => unreachable!("OrderedInput sent None"),
    }
}

/// An ordered parallel map: `workers` threads apply `f` (a `None` filters the value out), and
/// the results come out in the order the values went in, as from a sequential `filter_map`.
/// The output carries `Option<U>` (see [the pipeline docs](super)): `Some(u)` for a result,
/// `None` at the stamp of a filtered value.
///
/// Built from two dispatchers (`bound` is each one's intake and inbox capacity): a serializing
/// one that stamps inputs and spreads them over the workers, and a forwarding one that puts
/// the results back in stamp order. Dropping the [`OrderedInput`] ends the workers once they
/// have finished, and then the output receiver.
///
/// # Errors
///
/// [`StageError::Spawn`] if a thread cannot start, or if `bound` is too large to allocate
/// (then with `ErrorKind::InvalidInput`; see [`Builder::bound`](crate::Builder::bound)).
///
/// ```
/// use clocked_dispatch::pipeline::ordered_map;
///
/// let (input, output, workers) = ordered_map(4, 64, |x: u64| (x % 3 != 0).then(|| x * 10))
///     .unwrap();
/// let producer = std::thread::spawn(move || {
///     for x in 1..=1000 {
///         input.send(x).unwrap();
///     }
/// });
/// let results: Vec<u64> = output.filter_map(|(value, _stamp)| value.flatten()).collect();
/// let sequential: Vec<u64> = (1..=1000).filter(|x| x % 3 != 0).map(|x| x * 10).collect();
/// assert_eq!(results, sequential);
/// producer.join().unwrap();
/// for worker in workers {
///     worker.join().unwrap();
/// }
/// ```
#[allow(clippy::type_complexity)]
pub fn ordered_map<T, U, F>(
    workers: usize,
    bound: usize,
    f: F,
) -> Result<
    (
        OrderedInput<T>,
        ClockedReceiver<Option<U>>,
        Vec<StageHandle>,
    ),
    StageError,
>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> Option<U> + Send + Clone + 'static,
{
    let workers = workers.max(1);
    let upstream = crate::Builder::new()
        .bound(bound)
        .thread_name("ordered-map-in")
        .try_build::<Option<T>>()
        .map_err(|e| StageError::Spawn(e.into()))?;
    let downstream = crate::Builder::new()
        .bound(bound)
        .thread_name("ordered-map-out")
        .try_build::<Option<U>>()
        .map_err(|e| StageError::Spawn(e.into()))?;
    let (out_tx, output) = downstream.new("worker-0", "ordered-map-out");
    let mut inputs = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (input, worker_rx) = upstream.new(format!("input-{worker}"), format!("map-{worker}"));
        inputs.push(input);
        let f = f.clone();
        let out = vec![out_tx.clone(format!("worker-{worker}"))];
        handles.push(spawn_stage(worker_rx, out, move |value| {
            f(value).map(|result| (0, result))
        })?);
    }
    Ok((
        OrderedInput {
            workers: inputs,
            next: std::cell::Cell::new(0),
        },
        output,
        handles,
    ))
}
