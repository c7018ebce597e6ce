//! `clockd journal status DIR [--json]`: the journal as a whole (clock, oldest stamp, segments,
//! bytes, damage) and, per receiver name, its committed stamp, its backlog (what a receiver
//! created under that name now would replay), the percentage of its messages consumed, the
//! bytes of its backlog and the stamps of its oldest and newest messages held. Like kvspool's
//! `kvsp-status`; read without a lock, so it works while the dispatcher runs.
//!
//! ```text
//! journal /var/lib/orders/journal
//! clock 1041, oldest stamp 1, 3 segments, 40.6 KiB, 1041 messages, no damage
//! receiver   committed  backlog  consumed  backlog bytes  oldest  newest
//! audit              0     1041      0.0%       22.4 KiB       1    1041
//! orders          1000       41     96.1%          902 B       1    1041
//! ```

use std::path::PathBuf;

use clocked_dispatch::journal::inspect::{self, JournalStatus};
use serde_json::json;

use super::{describe, segments_of};
use crate::output::{bytes, count, printable, Out};
use crate::{Failure, Outcome};

/// `clockd journal status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory.
    pub dir: PathBuf,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status of the journal.
pub fn run(args: &Args) -> Result<Outcome, Failure> {
    segments_of(&args.dir)?;
    let status = inspect::status(&args.dir).map_err(|e| describe(&e))?;
    let mut out = Out::stdout();
    if args.json {
        out.line(format_args!("{}", to_json(args, &status)))?;
    } else {
        for line in table(args, &status) {
            out.line(format_args!("{line}"))?;
        }
    }
    out.finish()?;
    Ok(Outcome::Done)
}

fn to_json(args: &Args, status: &JournalStatus) -> serde_json::Value {
    let receivers: Vec<_> = status
        .receivers
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "id": r.id,
                "committed": r.committed,
                "messages": r.messages,
                "consumed": r.consumed,
                "backlog": r.backlog,
                "expired": r.expired,
                "backlog_bytes": r.backlog_bytes,
                "percent_consumed": r.percent_consumed(),
                "oldest": r.oldest,
                "newest": r.newest,
            })
        })
        .collect();
    json!({
        "dir": args.dir.display().to_string(),
        "clock": status.clock,
        "oldest": status.oldest,
        "first_message": status.first_message,
        "segments": status.segments,
        "bytes": status.bytes,
        "messages": status.messages,
        "unnamed_messages": status.unnamed_messages,
        "gaps": status.gaps,
        "torn_tail_bytes": status.torn_tail_bytes,
        "receivers": receivers,
        "follower": follower(status).map(|(leader, lag)| json!({"leader_clock": leader, "lag": lag})),
    })
}

/// A follower journal's (`clockd replicate`) leader clock as last saved, and how far this
/// journal's clock is behind it.
fn follower(status: &JournalStatus) -> Option<(usize, usize)> {
    let leader = status
        .receivers
        .iter()
        .find(|r| r.name == crate::replicate::LEADER_CLOCK)?
        .committed;
    Some((leader, leader.saturating_sub(status.clock)))
}

/// The table, one string per line.
fn table(args: &Args, status: &JournalStatus) -> Vec<String> {
    let damage = match (status.gaps, status.torn_tail_bytes) {
        (0, 0) => "no damage".to_string(),
        (0, torn) => format!("torn tail {torn} B"),
        (gaps, 0) => format!(
            "{} (run `clockd journal verify`)",
            count(gaps, "damaged place")
        ),
        (gaps, torn) => {
            format!(
                "{} (run `clockd journal verify`), torn tail {torn} B",
                count(gaps, "damaged place")
            )
        }
    };
    let mut lines = vec![
        format!("journal {}", args.dir.display()),
        format!(
            "clock {}, oldest stamp {}, {}, {}, {}, {damage}",
            status.clock,
            status.oldest,
            count(status.segments, "segment"),
            bytes(status.bytes),
            count(status.messages, "message"),
        ),
    ];
    if let Some((leader, lag)) = follower(status) {
        lines.push(format!(
            "follower (clockd replicate): leader at stamp {leader} when last asked, this journal at {}, {lag} behind",
            status.clock
        ));
    }
    if status.unnamed_messages > 0 {
        lines.push(format!(
            "{} messages for receivers whose name record is lost",
            status.unnamed_messages
        ));
    }
    if status.receivers.is_empty() {
        lines.push("no receivers".to_string());
        return lines;
    }
    let width = status
        .receivers
        .iter()
        .map(|r| printable(&r.name).chars().count())
        .max()
        .unwrap_or(0)
        .max("receiver".len());
    let stamp = |s: Option<usize>| s.map_or_else(|| "-".to_string(), |s| s.to_string());
    lines.push(format!(
        "{:<width$}  {:>9}  {:>7}  {:>8}  {:>13}  {:>6}  {:>6}",
        "receiver", "committed", "backlog", "consumed", "backlog bytes", "oldest", "newest"
    ));
    for r in &status.receivers {
        lines.push(format!(
            "{:<width$}  {:>9}  {:>7}  {:>7.1}%  {:>13}  {:>6}  {:>6}",
            printable(&r.name),
            r.committed,
            r.backlog,
            r.percent_consumed(),
            bytes(r.backlog_bytes),
            stamp(r.oldest),
            stamp(r.newest),
        ));
    }
    lines
}
