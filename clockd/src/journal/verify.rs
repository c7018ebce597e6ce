//! `clockd journal verify DIR`: reads every record and checks its checksum
//! (`clocked_dispatch::journal::inspect::verify`), then prints the counts and each damaged
//! place. Exit code 0 if there is no damage, 1 if there is, 2 if the journal cannot be read
//! at all.
//!
//! A torn tail (the newest segment's end after its last good record: a write in progress, or
//! one cut by a crash, which the next open cuts off) is shown but is not damage.

use std::path::PathBuf;

use clocked_dispatch::journal::inspect;

use super::{describe, segments_of};
use crate::output::{bytes, count, Out};
use crate::progress::Bar;
use crate::{Failure, Outcome};

/// `clockd journal verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory.
    pub dir: PathBuf,
}

/// Verifies the journal.
pub fn run(args: &Args) -> Result<Outcome, Failure> {
    segments_of(&args.dir)?;
    let mut bar = Bar::new(true);
    let verified = inspect::verify_with(&args.dir, |p| bar.update(p));
    bar.finish();
    let report = verified.map_err(|e| describe(&e))?;
    let mut out = Out::stdout();
    out.line(format_args!(
        "{}, {}, {} ({}): {}",
        count(report.segments, "segment"),
        bytes(report.bytes),
        count(report.records, "record"),
        count(report.messages, "message"),
        if report.is_clean() {
            "no damage".to_string()
        } else {
            count(report.gaps.len() as u64, "damaged place")
        }
    ))?;
    for gap in &report.gaps {
        out.line(format_args!(
            "damaged: {} at byte {}: {}; {} bytes lost",
            gap.segment.display(),
            gap.offset,
            gap.kind,
            gap.bytes
        ))?;
    }
    if let Some(tail) = &report.torn_tail {
        out.line(format_args!(
            "torn tail (not damage): {} from byte {} ({} bytes, {}): a write in progress, or \
             cut by a crash; the next open cuts it off",
            tail.segment.display(),
            tail.offset,
            tail.bytes,
            tail.kind
        ))?;
    }
    out.finish()?;
    Ok(if report.is_clean() {
        Outcome::Done
    } else {
        Outcome::Damaged
    })
}
