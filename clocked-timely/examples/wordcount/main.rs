//! Event-time windowed word count: several producer threads feed a dispatcher, timely counts
//! words per window of stamps with 2 workers (or more, or across processes), and the counts
//! come back through a sink into a second dispatcher, whose reader prints them in order.
//!
//! ```text
//! producers ─forward(word, position)─► dispatcher ─► one receiver per worker
//!     ─► Source ─► exchange by word ─► WindowedCount ─► Sink (worker 0)
//!     ─forward(counts, window end)─► dispatcher ─► printer (in stamp order)
//! ```
//!
//! The words' times are their positions in a log (event time): each producer forwards its
//! share of the positions (producer `i` of `k` has `i + 1, i + 1 + k, ...`), so they reach
//! the dispatcher out of order; it releases them in order, and its watermarks are what tells
//! timely that a window is complete.
//!
//! One process, two workers:
//!
//! ```text
//! cargo run --release -p clocked-timely --example wordcount -- -w 2
//! ```
//!
//! Two processes on this machine (timely's default ports 2101 and 2102, or `-h hostfile`),
//! each with its own dispatcher and log; process 0 prints:
//!
//! ```text
//! cargo run --release -p clocked-timely --example wordcount -- -w 1 -n 2 -p 0
//! cargo run --release -p clocked-timely --example wordcount -- -w 1 -n 2 -p 1
//! ```
//!
//! Options of the example (timely's own `-w`, `-n`, `-p`, `-h` go through): `--events N`
//! words per process (default 100000), `--producers K` threads per process (default 4),
//! `--window W` stamps per window (default 10000).

mod dataflow;
mod input;

use std::error::Error;
use std::process::ExitCode;
use std::thread;

use clocked_timely::{per_worker, Sink, WorkerSlots, Workers};

use dataflow::windowed_counts;
use input::{format_window, word, word_hash};

struct Options {
    events: usize,
    producers: usize,
    window: u64,
    timely: Vec<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        events: 100_000,
        producers: 4,
        window: 10_000,
        timely: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse().map_err(|e| format!("{name} {text}: {e}"))
        };
        match arg.as_str() {
            "--events" => options.events = value("--events")? as usize,
            "--producers" => options.producers = (value("--producers")? as usize).max(1),
            "--window" => options.window = value("--window")?.max(1),
            _ => options.timely.push(arg),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wordcount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let options = parse(std::env::args())?;
    let config = timely::Config::from_args(options.timely.into_iter())?;
    let workers = Workers::from_config(&config);
    let process = workers.process();

    // In: this process's dispatcher, one receiver per local worker.
    let words = clocked_dispatch::new::<String>(1024);
    let (senders, readers) = per_worker(&words, workers, "words")?;

    // Out: worker 0 forwards the counts into a dispatcher that process 0 has.
    let counts = clocked_dispatch::new::<Vec<(String, u64)>>(1024);
    let (sink_tx, printer) = if process == 0 {
        let (tx, rx) = counts.try_new("timely", "printer")?;
        (WorkerSlots::on_worker(0, tx), Some(rx))
    } else {
        (WorkerSlots::none(), None)
    };

    let (events, producers) = (options.events, options.producers);
    let mut threads = Vec::new();
    for i in 0..producers {
        let tx = senders.try_clone(&format!("producer{i}"))?;
        threads.push(thread::spawn(move || {
            for position in (i + 1..=events).step_by(producers) {
                let word = word(process, position);
                tx.for_key(word_hash(word))
                    .forward(Some(word.to_owned()), position)
                    .map_err(|e| format!("forward {word} at {position}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    drop(senders); // the producers hold their own; the receivers close when they finish

    let window = options.window;
    let guards = timely::execute(config, move |worker| {
        worker.dataflow::<u64, _, _>(|scope| -> Result<(), String> {
            let (words, _) = readers.source(scope).map_err(|e| e.to_string())?;
            let counts = windowed_counts(words, window);
            let sender = sink_tx.take(scope.index()).map_err(|e| e.to_string())?;
            Sink::new(0, sender)
                .build(counts)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    })?;

    if let Some(printer) = printer {
        let mut windows = 0;
        // In stamp order; closes once the sink has forwarded everything and dropped its sender.
        for (counts, end) in printer {
            if let Some(mut counts) = counts {
                counts.sort();
                println!("{}", format_window(end as u64, &counts));
                windows += 1;
            }
        }
        println!("process 0: {windows} windows");
    } else {
        println!("process {process}: the counts are printed by process 0");
    }
    for result in guards.join() {
        result??;
    }
    for producer in threads {
        producer.join().map_err(|_| "a producer panicked")??;
    }
    Ok(())
}
