//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// What a [`check_frontier`] operator saw.
#[derive(Debug)]
pub struct FrontierLog<T, D> {
    /// Each distinct input frontier in the order seen (`None`: empty).
    pub frontiers: Vec<Option<T>>,
    /// Records at a time the frontier had already passed: `(time, the frontier passed)`.
    pub violations: Vec<(T, Option<T>)>,
    /// Every record with its time, in arrival order.
    pub records: Vec<(T, D)>,
}

impl<T, D> Default for FrontierLog<T, D> {
    fn default() -> Self {
        FrontierLog {
            frontiers: Vec::new(),
            violations: Vec::new(),
            records: Vec::new(),
        }
    }
}

/// Passes `stream` through, recording into `log` every frontier it sees and every record
/// that arrives at a time below a frontier already seen (the current one, or any earlier:
/// frontiers only move forward, and a record behind one is late).
pub fn check_frontier<'scope, T, D>(
    stream: Stream<'scope, T, Vec<D>>,
    log: Arc<Mutex<FrontierLog<T, D>>>,
) -> Stream<'scope, T, Vec<D>>
where
    T: Timestamp + TotalOrder + Copy,
    D: Clone + 'static,
{
    stream.unary_frontier(Pipeline, "CheckFrontier", move |_capability, _info| {
        // The highest frontier seen: `Some(None)` once it was empty.
        let mut passed: Option<Option<T>> = None;
        move |(input, frontier), output| {
            let mut log = log.lock().unwrap();
            input.for_each(|capability, records| {
                let time = *capability.least().expect("a record without a time");
                let late_now = !frontier.less_equal(&time);
                let late_before = match passed {
                    None => false,
                    Some(None) => true,
                    Some(Some(passed)) => time < passed,
                };
                if late_now || late_before {
                    log.violations
                        .push((time, frontier.frontier().first().copied()));
                }
                log.records
                    .extend(records.iter().map(|record| (time, record.clone())));
                output.session(&capability).give_container(records);
            });
            let now = frontier.frontier().first().copied();
            if log.frontiers.last() != Some(&now) {
                log.frontiers.push(now);
            }
            passed = Some(match (passed, now) {
                (Some(Some(before)), Some(now)) => Some(before.max(now)),
                (_, now) => now,
            });
        }
    })
}

/// Runs `f` on a thread, failing the test if it does not finish within `limit` (a hang
/// must fail, not stall the suite).
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test thread panicked"),
    }
}
