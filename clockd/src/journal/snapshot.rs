//! `clockd journal snapshot DIR OUT`: a consistent copy of the journal, taken while its
//! dispatcher may be writing it (`clocked_dispatch::journal::inspect::snapshot`): the segments
//! oldest first, the newest only up to its last whole record, every file and OUT synced. The
//! copy opens as a journal and recovers with nothing to cut. OUT must not exist, or be an
//! empty directory.

use std::path::PathBuf;

use clocked_dispatch::journal::inspect;

use super::{describe, segments_of};
use crate::output::{bytes, count};
use crate::progress::Bar;
use crate::{Failure, Outcome};

/// `clockd journal snapshot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory.
    pub dir: PathBuf,
    /// Where the copy goes: a new or empty directory.
    pub out: PathBuf,
}

/// Copies the journal.
pub fn run(args: &Args) -> Result<Outcome, Failure> {
    segments_of(&args.dir)?;
    let mut bar = Bar::new(true);
    let copied = inspect::snapshot_with(&args.dir, &args.out, |p| bar.update(p));
    bar.finish();
    let report = copied.map_err(|e| describe(&e))?;
    println!(
        "copied {} ({}) of {} to {}, clock {}",
        count(report.segments, "segment"),
        bytes(report.bytes),
        args.dir.display(),
        args.out.display(),
        report.clock
    );
    if report.left_out_bytes > 0 {
        println!(
            "left out {} B at the newest segment's end: a write in progress, or torn",
            report.left_out_bytes
        );
    }
    Ok(Outcome::Done)
}
