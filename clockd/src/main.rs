//! `clockd`: the operator tool for clocked-dispatch.
//!
//! ```text
//! clockd journal status DIR [--json]             the clock, segments, each receiver's backlog
//! clockd journal cat DIR [--json] [--receiver NAME] [--from STAMP] [--all]
//! clockd journal rewind DIR RECEIVER STAMP       replay RECEIVER from STAMP on its next start
//! clockd journal snapshot DIR OUT                a consistent copy while the dispatcher runs
//! clockd journal verify DIR                      every record's checksum
//! clockd serve [--listen ADDR] [--monitor ADDR]  the broker (see `serve`)
//! clockd status ADDR                             a running broker's metrics
//! clockd bench [--protocol topics|redis|nats] ... pub/sub throughput and latency percentiles
//! clockd replicate --from ADDR --to DIR --topic T  a follower journal of a broker's topics
//! ```
//!
//! Everything but `rewind` only reads the journal and takes no lock, so it works while a
//! dispatcher is running on it (it is built on `clocked_dispatch::journal::inspect`).
//!
//! Exit codes: 0 on success, 1 if `verify` found damage, 2 on a usage error or a failure (one
//! line on stderr, `clockd: ...`). Progress bars go to stderr, only when it is a terminal.
//!
//! This file parses the command line and maps outcomes to exit codes; each command lives in
//! its own module.

mod bench;
mod journal;
mod output;
mod progress;
mod replicate;
mod serve;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The operator tool for clocked-dispatch.
#[derive(Parser, Debug)]
#[command(name = "clockd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect, verify, copy and rewind a dispatcher's journal directory.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Run the broker: pub/sub over the topics telnet protocol, stamped by one dispatcher.
    Serve(Box<serve::ServeArgs>),
    /// Print a running broker's metrics (from its `--monitor` address).
    Status(status::StatusArgs),
    /// Load a pub/sub server (clockd, or redis for comparison) and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Keep a follower journal of a broker's topics, resuming where it stopped.
    Replicate(replicate::ReplicateArgs),
}

/// How a command ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing wrong found.
    Done,
    /// Done, and damage was found (exit code 1).
    Damaged,
}

/// A command that failed: the one line printed to stderr (exit code 2).
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

/// Exit code for damage found.
const EXIT_DAMAGED: u8 = 1;
/// Exit code for usage errors and failures (clap uses 2 for usage errors too).
const EXIT_FAILED: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that print to stdout and succeed.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_FAILED } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Journal(command) => journal::run(command),
        Command::Serve(args) => serve::run(*args),
        Command::Status(args) => status::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Replicate(args) => replicate::run(args),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Damaged) => ExitCode::from(EXIT_DAMAGED),
        Err(Failure(message)) => {
            eprintln!("clockd: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
