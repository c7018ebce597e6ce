//! `clockd journal cat DIR`: the journal's messages, one line each, in journal order.
//!
//! ```text
//! 17  orders  9  "order 17"
//! 18  *       3  0x02ff00
//! ```
//!
//! Tab-separated (shown with spaces above): the stamp, the receiver's name (`*` for a
//! broadcast), the payload's size in bytes, and the payload: quoted and escaped text if it is
//! a postcard string or byte string (a varint length, then exactly that many bytes) holding
//! valid UTF-8 without control characters (but tabs and line breaks), otherwise `0x` and hex.
//! Payloads are postcard encodings of the dispatcher's message type, which the journal does
//! not record: a `u64` 0 is one zero byte, which reads as the empty string.
//!
//! * `--json`: one JSON object per line instead (`text` or `hex` for the payload, with the
//!   segment and offset of the record);
//! * `--receiver NAME`: only the messages for NAME (its own, and the broadcasts made while it
//!   was open: what `status` counts);
//! * `--from STAMP`: only messages stamped STAMP or later;
//! * `--all`: the other records too (ticks, names, opens, closes, commits, rewinds), as lines
//!   starting with `#` (or JSON objects with their `kind`).
//!
//! Damage is never printed as data: each damaged place is reported on stderr, the exit code is
//! then 1. A torn tail (the dispatcher writing at that moment) is reported on stderr and is
//! not damage.

use std::io::IsTerminal;
use std::path::PathBuf;

use clocked_dispatch::journal::inspect::{self, Item, Record, RecordKind};
use serde_json::{json, Value};

use super::{describe, segments_of};
use crate::output::{printable, Out};
use crate::progress::Bar;
use crate::{Failure, Outcome};

/// `clockd journal cat`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal directory.
    pub dir: PathBuf,
    /// JSON lines instead of tab-separated text.
    #[arg(long)]
    pub json: bool,
    /// Only the messages for this receiver name (its own and the broadcasts it was open for).
    #[arg(long, value_name = "NAME")]
    pub receiver: Option<String>,
    /// Only messages stamped STAMP or later.
    #[arg(long, value_name = "STAMP")]
    pub from: Option<usize>,
    /// Also the records that carry no message (ticks, names, opens, closes, commits, rewinds).
    #[arg(long)]
    pub all: bool,
}

/// Prints the records.
pub fn run(args: &Args) -> Result<Outcome, Failure> {
    segments_of(&args.dir)?;
    let mut records = inspect::records(&args.dir).map_err(|e| describe(&e))?;
    let mut out = Out::stdout();
    let mut bar = Bar::new(!std::io::stdout().is_terminal());
    let mut damaged = false;
    let mut wanted_id = None;
    while let Some(item) = records.next() {
        bar.update(records.progress());
        let record = match item {
            Item::Record(record) => record,
            Item::Gap(gap) => {
                damaged = true;
                bar.finish();
                eprintln!(
                    "clockd: damaged: {} at byte {}: {}; {} bytes skipped",
                    gap.segment.display(),
                    gap.offset,
                    gap.kind,
                    gap.bytes
                );
                continue;
            }
            Item::TornTail(gap) => {
                bar.finish();
                eprintln!(
                    "clockd: note: torn tail: {} from byte {} ({} bytes): a write in progress, \
                     or cut by a crash",
                    gap.segment.display(),
                    gap.offset,
                    gap.bytes
                );
                continue;
            }
        };
        if let Some(name) = &args.receiver {
            if wanted_id.is_none() {
                wanted_id = records.id_of(name);
            }
            if !concerns(&record.kind, wanted_id, &records) {
                continue;
            }
        }
        if let (Some(from), Some(stamp)) = (args.from, message_stamp(&record.kind)) {
            if stamp < from {
                continue;
            }
        }
        let line = if args.json {
            json_line(&record, &records).map(|v| v.to_string())
        } else {
            text_line(&record.kind, &records)
        };
        let Some(line) = line.filter(|_| args.all || is_message(&record.kind)) else {
            continue;
        };
        if !out.line(format_args!("{line}"))? {
            break;
        }
    }
    bar.finish();
    out.finish()?;
    if let (Some(name), None) = (&args.receiver, wanted_id) {
        return Err(Failure::new(format!(
            "the journal has no receiver named {name:?}"
        )));
    }
    Ok(if damaged {
        Outcome::Damaged
    } else {
        Outcome::Done
    })
}

fn is_message(kind: &RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::Data { .. } | RecordKind::Broadcast { .. } | RecordKind::Multicast { .. }
    )
}

/// The stamp `--from` filters on: a message's or a tick's.
fn message_stamp(kind: &RecordKind) -> Option<usize> {
    match *kind {
        RecordKind::Data { stamp, .. }
        | RecordKind::Broadcast { stamp, .. }
        | RecordKind::Multicast { stamp, .. }
        | RecordKind::Tick { stamp } => Some(stamp),
        _ => None,
    }
}

/// Whether a record is about receiver `id` (a broadcast is if it was open then).
fn concerns(kind: &RecordKind, id: Option<u32>, records: &inspect::Records) -> bool {
    let Some(id) = id else {
        return false;
    };
    match kind {
        RecordKind::Broadcast { .. } => records.is_open(id),
        RecordKind::Multicast { receivers, .. } => receivers.contains(&id),
        RecordKind::Data { receiver, .. }
        | RecordKind::Name { receiver, .. }
        | RecordKind::Open { receiver }
        | RecordKind::Closed { receiver }
        | RecordKind::Commit { receiver, .. }
        | RecordKind::Rewind { receiver, .. }
        | RecordKind::Expired { receiver, .. } => *receiver == id,
        _ => false,
    }
}

/// A receiver's name for output: `#id` if the journal has lost its name.
fn receiver_name(records: &inspect::Records, id: u32) -> String {
    records
        .name_of(id)
        .map_or_else(|| format!("#{id}"), |name| name.to_string())
}

/// The text line for a record; `None` for kinds this version does not know.
fn text_line(kind: &RecordKind, records: &inspect::Records) -> Option<String> {
    let name = |id| printable(&receiver_name(records, id));
    Some(match kind {
        RecordKind::Data {
            stamp,
            receiver,
            payload,
        } => format!(
            "{stamp}\t{}\t{}\t{}",
            name(*receiver),
            payload.len(),
            show(payload)
        ),
        RecordKind::Broadcast { stamp, payload } => {
            format!("{stamp}\t*\t{}\t{}", payload.len(), show(payload))
        }
        RecordKind::Multicast {
            stamp,
            receivers,
            payload,
        } => {
            let names: Vec<String> = receivers.iter().map(|&id| name(id)).collect();
            let names = names.join(",");
            format!("{stamp}\t{names}\t{}\t{}", payload.len(), show(payload))
        }
        RecordKind::Tick { stamp } => format!("# tick {stamp}"),
        RecordKind::Name { receiver, name } => format!("# name {receiver} {}", printable(name)),
        RecordKind::Open { receiver } => format!("# open {}", name(*receiver)),
        RecordKind::Closed { receiver } => format!("# closed {}", name(*receiver)),
        RecordKind::Commit { receiver, stamp } => {
            format!("# commit {} {stamp}", name(*receiver))
        }
        RecordKind::Rewind { receiver, stamp } => {
            format!("# rewind {} {stamp}", name(*receiver))
        }
        RecordKind::Expired { receiver, count } => {
            format!("# expired {} {count}", name(*receiver))
        }
        _ => return None,
    })
}

/// The JSON object for a record; `None` for kinds this version does not know.
fn json_line(record: &Record, records: &inspect::Records) -> Option<Value> {
    let name = |id| receiver_name(records, id);
    let mut value = match &record.kind {
        RecordKind::Data {
            stamp,
            receiver,
            payload,
        } => {
            let mut v = json!({"kind": "data", "stamp": stamp, "receiver": name(*receiver),
                "receiver_id": receiver, "size": payload.len()});
            add_payload(&mut v, payload);
            v
        }
        RecordKind::Broadcast { stamp, payload } => {
            let mut v = json!({"kind": "broadcast", "stamp": stamp, "receiver": null,
                "size": payload.len()});
            add_payload(&mut v, payload);
            v
        }
        RecordKind::Multicast {
            stamp,
            receivers,
            payload,
        } => {
            let names: Vec<String> = receivers.iter().map(|&id| name(id)).collect();
            let mut v = json!({"kind": "multicast", "stamp": stamp, "receivers": names,
                "receiver_ids": receivers, "size": payload.len()});
            add_payload(&mut v, payload);
            v
        }
        RecordKind::Tick { stamp } => json!({"kind": "tick", "stamp": stamp}),
        RecordKind::Name { receiver, name } => {
            json!({"kind": "name", "receiver": name, "receiver_id": receiver})
        }
        RecordKind::Open { receiver } => {
            json!({"kind": "open", "receiver": name(*receiver), "receiver_id": receiver})
        }
        RecordKind::Closed { receiver } => {
            json!({"kind": "closed", "receiver": name(*receiver), "receiver_id": receiver})
        }
        RecordKind::Commit { receiver, stamp } => json!({"kind": "commit",
            "receiver": name(*receiver), "receiver_id": receiver, "stamp": stamp}),
        RecordKind::Rewind { receiver, stamp } => json!({"kind": "rewind",
            "receiver": name(*receiver), "receiver_id": receiver, "stamp": stamp}),
        RecordKind::Expired { receiver, count } => json!({"kind": "expired",
            "receiver": name(*receiver), "receiver_id": receiver, "count": count}),
        _ => return None,
    };
    value["segment"] = json!(record.segment.display().to_string());
    value["offset"] = json!(record.offset);
    Some(value)
}

fn add_payload(value: &mut Value, payload: &[u8]) {
    match as_text(payload) {
        Some(text) => value["text"] = json!(text),
        None => value["hex"] = json!(hex(payload)),
    }
}

/// A payload for a text line: quoted text, or `0x` and hex.
fn show(payload: &[u8]) -> String {
    match as_text(payload) {
        Some(text) => format!("{text:?}"),
        None => format!("0x{}", hex(payload)),
    }
}

/// The payload as text, if it is a postcard string or byte string (a varint length, then
/// exactly that many bytes) of valid UTF-8 with no control characters but tabs and line
/// breaks (binary that happens to be valid UTF-8, zero bytes say, reads better as hex).
fn as_text(payload: &[u8]) -> Option<&str> {
    let mut len: u64 = 0;
    for (i, &byte) in payload.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = &payload[i + 1..];
            if rest.len() as u64 != len {
                return None;
            }
            let text = std::str::from_utf8(rest).ok()?;
            let binary = text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
            return if binary { None } else { Some(text) };
        }
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_strings_of_utf8_are_text_and_the_rest_is_hex() {
        assert_eq!(as_text(b"\x05hello"), Some("hello"));
        assert_eq!(as_text(b"\x00"), Some(""));
        let long = "é".repeat(100); // 200 bytes: a two-byte varint length
        let mut encoded = vec![0xc8, 0x01];
        encoded.extend_from_slice(long.as_bytes());
        assert_eq!(as_text(&encoded), Some(long.as_str()));
        assert_eq!(as_text(b"\x05hell"), None, "too short");
        assert_eq!(as_text(b"\x02\xff\xfe"), None, "not UTF-8");
        assert_eq!(as_text(b"\x03\x00\x01a"), None, "control characters");
        assert_eq!(as_text(b"\x04a\tb\n"), Some("a\tb\n"));
        assert_eq!(as_text(b""), None);
        assert_eq!(as_text(&[0x80; 12]), None, "an endless varint");
        assert_eq!(show(b"\x02\xff\xfe"), "0x02fffe");
        assert_eq!(show(b"\x03a\tb"), "\"a\\tb\"");
    }
}
