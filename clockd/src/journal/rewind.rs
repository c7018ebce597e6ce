//! `clockd journal rewind DIR RECEIVER STAMP`: sets receiver RECEIVER's position so that the
//! next receiver created under that name replays its messages from STAMP on (commits after
//! that move it forward again). Calls `clocked_dispatch::journal::rewind`, which opens the
//! journal: it refuses one a dispatcher has open (use `Dispatcher::rewind` in that process
//! instead), and like any open it cuts a torn tail and starts a new segment.
//!
//! STAMP must be one the journal still holds (`status` shows the oldest) and at most one
//! above its clock.

use std::path::PathBuf;

use clocked_dispatch::JournalError;

use super::{describe, segments_of};
use crate::output::printable;
use crate::{Failure, Outcome};

/// `clockd journal rewind`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory (no dispatcher may have it open).
    pub dir: PathBuf,
    /// The receiver name.
    pub receiver: String,
    /// The first stamp its next incarnation gets again.
    pub stamp: usize,
}

/// Rewinds the receiver.
pub fn run(args: &Args) -> Result<Outcome, Failure> {
    // Opening a journal creates its directory: a mistyped path must not become a journal.
    segments_of(&args.dir)?;
    match clocked_dispatch::journal::rewind(&args.dir, &args.receiver, args.stamp) {
        Ok(()) => {
            println!(
                "rewound {} in {}: its next receiver replays from stamp {}",
                printable(&args.receiver),
                args.dir.display(),
                args.stamp
            );
            Ok(Outcome::Done)
        }
        Err(JournalError::InUse { path }) => Err(Failure::new(format!(
            "{}: a dispatcher has the journal open; stop it, or call Dispatcher::rewind in it",
            path.display()
        ))),
        Err(e) => Err(describe(&e)),
    }
}
