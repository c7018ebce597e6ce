//! The word count example, in this process with 1 and 2 workers: its output equals the
//! sequential computation over the same input, and no record reaches the counting operator
//! at a time the frontier had passed.

mod support;

#[path = "../examples/wordcount/dataflow.rs"]
mod dataflow;
#[path = "../examples/wordcount/input.rs"]
mod input;
#[path = "../examples/wordcount/run.rs"]
mod run;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use input::{expected, format_window};
use run::{run, Options};
use support::{check_frontier, within, FrontierLog};

fn word_count(workers: usize, options: Options) -> (Vec<String>, FrontierLog<u64, String>) {
    let log = Arc::new(Mutex::new(FrontierLog::default()));
    let checked = Arc::clone(&log);
    let mut lines = Vec::new();
    let windows = run(
        timely::Config::process(workers),
        options,
        move |words| check_frontier(words, Arc::clone(&checked)),
        |end, counts| lines.push(format_window(end, &counts)),
    )
    .expect("the word count runs");
    assert_eq!(windows, lines.len());
    let log = std::mem::take(&mut *log.lock().unwrap());
    (lines, log)
}

fn check(workers: usize, options: Options) {
    let (lines, log) = within(Duration::from_secs(120), move || {
        word_count(workers, options)
    });
    assert_eq!(lines, expected(1, options.events, options.window));
    assert!(
        log.violations.is_empty(),
        "late records: {:?}",
        &log.violations[..]
    );
    let mut words = log.records.clone();
    words.sort();
    let sent: Vec<(u64, String)> = (1..=options.events)
        .map(|position| (position as u64, input::word(0, position).to_owned()))
        .collect();
    assert_eq!(
        words, sent,
        "every word reached timely once, at its position"
    );
    assert_eq!(
        log.frontiers.last(),
        Some(&None),
        "the computation finished"
    );
}

#[test]
fn one_worker_matches_the_sequential_count() {
    check(
        1,
        Options {
            events: 50_000,
            producers: 4,
            window: 1_000,
        },
    );
}

#[test]
fn two_workers_match_the_sequential_count() {
    check(
        2,
        Options {
            events: 50_000,
            producers: 4,
            window: 1_000,
        },
    );
}

#[test]
fn a_last_partial_window_and_one_producer() {
    check(
        2,
        Options {
            events: 12_345,
            producers: 1,
            window: 1_000,
        },
    );
}

#[test]
fn windows_of_one_stamp() {
    check(
        2,
        Options {
            events: 2_000,
            producers: 3,
            window: 1,
        },
    );
}
