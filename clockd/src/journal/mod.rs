//! `clockd journal ...`: one module per command, each a clap `Args` and a `run`.
//!
//! All but `rewind` read through `clocked_dispatch::journal::inspect`, which takes no lock;
//! `rewind` opens the journal (so it refuses one a dispatcher has open).

mod cat;
mod rewind;
mod snapshot;
mod status;
mod verify;

use std::io;
use std::path::Path;

use clap::Subcommand;
use clocked_dispatch::journal::inspect;
use clocked_dispatch::JournalError;

use crate::{Failure, Outcome};

/// The journal commands.
#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// The clock, the segments, and each receiver's commit and backlog.
    Status(status::Args),
    /// Print the journal's messages, one line each.
    Cat(cat::Args),
    /// Set a receiver's position: its next incarnation replays from STAMP on. The journal must
    /// not be open in a dispatcher.
    Rewind(rewind::Args),
    /// Copy the journal consistently, even while a dispatcher writes it.
    Snapshot(snapshot::Args),
    /// Check every record's checksum (exit code 1 if damage is found).
    Verify(verify::Args),
}

/// Runs one journal command.
pub fn run(command: JournalCommand) -> Result<Outcome, Failure> {
    match command {
        JournalCommand::Status(args) => status::run(&args),
        JournalCommand::Cat(args) => cat::run(&args),
        JournalCommand::Rewind(args) => rewind::run(&args),
        JournalCommand::Snapshot(args) => snapshot::run(&args),
        JournalCommand::Verify(args) => verify::run(&args),
    }
}

/// The segments of the journal at `dir`; a failure if it is not a journal directory with at
/// least one segment (so that a mistyped path says so instead of showing an empty journal).
fn segments_of(dir: &Path) -> Result<Vec<inspect::SegmentFile>, Failure> {
    let listed = inspect::segments(dir).map_err(|e| describe(&e))?;
    if listed.is_empty() {
        return Err(Failure::new(format!(
            "{}: not a journal (no journal-*.cdj segment files)",
            dir.display()
        )));
    }
    Ok(listed)
}

/// One line for a journal error.
fn describe(err: &JournalError) -> Failure {
    match err {
        JournalError::Io { path, source } => {
            Failure::new(format!("{}: {}", path.display(), io_message(source)))
        }
        other => Failure::new(other.to_string()),
    }
}

/// An I/O error without the "(os error N)" suffix where the kind says it all.
fn io_message(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}
