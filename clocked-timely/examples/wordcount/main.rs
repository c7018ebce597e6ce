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
mod run;

use std::error::Error;
use std::process::ExitCode;

use input::format_window;
use run::{run, Options};

/// The example's options, and the arguments left for timely.
fn parse(mut args: impl Iterator<Item = String>) -> Result<(Options, Vec<String>), String> {
    let mut options = Options {
        events: 100_000,
        producers: 4,
        window: 10_000,
    };
    let mut timely = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse().map_err(|e| format!("{name} {text}: {e}"))
        };
        match arg.as_str() {
            "--events" => options.events = value("--events")? as usize,
            "--producers" => options.producers = (value("--producers")? as usize).max(1),
            "--window" => options.window = value("--window")?.max(1),
            _ => timely.push(arg),
        }
    }
    Ok((options, timely))
}

fn main() -> ExitCode {
    match main_result() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wordcount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_result() -> Result<(), Box<dyn Error>> {
    let (options, timely_args) = parse(std::env::args())?;
    let config = timely::Config::from_args(timely_args.into_iter())?;
    let process = clocked_timely::Workers::from_config(&config).process();
    let windows = run(
        config,
        options,
        |words| words,
        |end, counts| {
            println!("{}", format_window(end, &counts));
        },
    )?;
    if process == 0 {
        println!("process 0: {windows} windows");
    } else {
        println!("process {process}: the counts are printed by process 0");
    }
    Ok(())
}
