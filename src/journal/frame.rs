//! The journal's records: how each entry is framed in a segment file, and read back.
//!
//! ```text
//! +----------+----------+---------+----------------------------------+
//! | len: u32 | crc: u32 | kind: u8| fields (little-endian), payload  |
//! +----------+----------+---------+----------------------------------+
//!              crc32 of ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^  len = that many bytes
//! ```
//!
//! | kind | entry      | fields                      | meaning                                     |
//! |------|------------|-----------------------------|---------------------------------------------|
//! | 1    | `Data`     | stamp u64, receiver u32, payload | a message for one receiver             |
//! | 2    | `Broadcast`| stamp u64, payload          | a message for every receiver open then      |
//! | 3    | `Tick`     | stamp u64                   | every stamp up to here is accounted for     |
//! | 4    | `Name`     | receiver u32, name (UTF-8)  | journal receiver id `receiver` is `name`    |
//! | 5    | `Open`     | receiver u32                | the name is subscribed to broadcasts        |
//! | 6    | `Closed`   | receiver u32                | the name unsubscribed (read, not written yet)|
//! | 7    | `Commit`   | receiver u32, stamp u64     | the receiver has processed up to `stamp`    |
//! | 8    | `Rewind`   | receiver u32, stamp u64     | its position is set to `stamp`              |
//! | 9    | `Expired`  | receiver u32, count u64     | retention deleted `count` of its messages   |
//! | 10   | `Multicast`| stamp u64, n u32, n ids u32, payload | a message for `n` receivers |
//!
//! A multicast to one receiver is written as `Data`; to several, as one `Multicast` record,
//! so its payload is stored once however many members its group has. Readers treat it as a
//! `Data` record for each receiver it lists. Kind 10 is newer than the rest: a build that
//! does not know it reads it as damage (and recovery would cut it from the newest segment as
//! a torn tail), so a journal with multicasts must not be opened by an older build.
//!
//! A `Commit` only moves a receiver's position forward (the highest wins); a `Rewind` sets it,
//! lower or not. Both apply in journal order. A segment's checkpoint restates every position
//! as a `Rewind`.
//!
//! The checksum covers everything after it, so a flipped bit anywhere in a record, or a length
//! that frames the wrong bytes, is caught before anything is decoded. A payload is the value's
//! postcard encoding (see [`crate::spill::codec`]).

use std::io::{self, Read};

use crate::spill::codec::EncodeFn;
use crate::spill::{record, FaultKind};

/// The largest record body accepted when reading: a longer length can only be corruption.
pub(crate) const MAX_BODY_LEN: usize = 1 << 30;

/// Bytes of a record before its body: length and checksum.
pub(crate) const HEAD_LEN: usize = record::FRAME_HEAD_LEN;

const DATA: u8 = 1;
const BROADCAST: u8 = 2;
const TICK: u8 = 3;
const NAME: u8 = 4;
const OPEN: u8 = 5;
const CLOSED: u8 = 6;
const COMMIT: u8 = 7;
const REWIND: u8 = 8;
const EXPIRED: u8 = 9;
const MULTICAST: u8 = 10;

/// A journal receiver id: stable across restarts for a receiver name (unlike the dispatcher's
/// slot ids, which are reused).
pub(crate) type JournalId = u32;

/// One record, as read back (payloads borrowed from the read buffer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    Data {
        stamp: u64,
        receiver: JournalId,
        payload: &'a [u8],
    },
    Broadcast {
        stamp: u64,
        payload: &'a [u8],
    },
    Tick {
        stamp: u64,
    },
    Name {
        receiver: JournalId,
        name: &'a str,
    },
    Open {
        receiver: JournalId,
    },
    Closed {
        receiver: JournalId,
    },
    Commit {
        receiver: JournalId,
        stamp: u64,
    },
    Rewind {
        receiver: JournalId,
        stamp: u64,
    },
    Expired {
        receiver: JournalId,
        count: u64,
    },
    Multicast {
        stamp: u64,
        receivers: Members<'a>,
        payload: &'a [u8],
    },
}

/// The receivers a `Multicast` record lists, as stored (`u32`s, little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Members<'a>(&'a [u8]);

impl<'a> Members<'a> {
    /// Each receiver's journal id, in the order written.
    pub(crate) fn iter(self) -> impl Iterator<Item = JournalId> + 'a {
        self.0
            .chunks_exact(4)
            .map(|id| u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
    }

    /// Whether `id` is one of them.
    pub(crate) fn contains(self, id: JournalId) -> bool {
        self.iter().any(|member| member == id)
    }

    /// How many there are.
    pub(crate) fn len(self) -> usize {
        self.0.len() / 4
    }
}

impl Entry<'_> {
    /// The stamp this entry carries a message or tick for, if any.
    pub(crate) fn stamp(&self) -> Option<u64> {
        match *self {
            Entry::Data { stamp, .. }
            | Entry::Broadcast { stamp, .. }
            | Entry::Multicast { stamp, .. }
            | Entry::Tick { stamp } => Some(stamp),
            _ => None,
        }
    }
}

/// Why a value could not be framed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// The value's `Serialize` implementation failed.
    Serialize,
    /// The encoded record exceeds [`MAX_BODY_LEN`].
    TooLarge,
}

/// Appends a message record (for `receiver`, or a broadcast if `None`) encoding `value`. On
/// error `out` is left as it was.
pub(crate) fn append_message<T>(
    out: &mut Vec<u8>,
    stamp: usize,
    receiver: Option<JournalId>,
    value: &T,
    encode: EncodeFn<T>,
) -> Result<(), EncodeError> {
    let start = begin(out);
    match receiver {
        Some(receiver) => {
            out.push(DATA);
            out.extend_from_slice(&(stamp as u64).to_le_bytes());
            out.extend_from_slice(&receiver.to_le_bytes());
        }
        None => {
            out.push(BROADCAST);
            out.extend_from_slice(&(stamp as u64).to_le_bytes());
        }
    }
    if encode(value, out).is_err() {
        out.truncate(start);
        return Err(EncodeError::Serialize);
    }
    finish(out, start)
}

/// Appends one message record for every receiver in `receivers` (at least two: one is a
/// `Data` record, see [`append_message`]) encoding `value` once. On error `out` is left as it
/// was.
pub(crate) fn append_multicast<T>(
    out: &mut Vec<u8>,
    stamp: usize,
    receivers: &[JournalId],
    value: &T,
    encode: EncodeFn<T>,
) -> Result<(), EncodeError> {
    let count = u32::try_from(receivers.len()).map_err(|_| EncodeError::TooLarge)?;
    let start = begin(out);
    out.push(MULTICAST);
    out.extend_from_slice(&(stamp as u64).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for receiver in receivers {
        out.extend_from_slice(&receiver.to_le_bytes());
    }
    if encode(value, out).is_err() {
        out.truncate(start);
        return Err(EncodeError::Serialize);
    }
    finish(out, start)
}

/// Appends a record with no payload (every kind but `Data`, `Broadcast` and `Multicast`).
pub(crate) fn append_entry(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let start = begin(out);
    match *entry {
        Entry::Tick { stamp } => {
            out.push(TICK);
            out.extend_from_slice(&stamp.to_le_bytes());
        }
        Entry::Name { receiver, name } => {
            out.push(NAME);
            out.extend_from_slice(&receiver.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        Entry::Open { receiver } => {
            out.push(OPEN);
            out.extend_from_slice(&receiver.to_le_bytes());
        }
        Entry::Closed { receiver } => {
            out.push(CLOSED);
            out.extend_from_slice(&receiver.to_le_bytes());
        }
        Entry::Commit { receiver, stamp } => {
            out.push(COMMIT);
            out.extend_from_slice(&receiver.to_le_bytes());
            out.extend_from_slice(&stamp.to_le_bytes());
        }
        Entry::Rewind { receiver, stamp } => {
            out.push(REWIND);
            out.extend_from_slice(&receiver.to_le_bytes());
            out.extend_from_slice(&stamp.to_le_bytes());
        }
        Entry::Expired { receiver, count } => {
            out.push(EXPIRED);
            out.extend_from_slice(&receiver.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        Entry::Data { .. } | Entry::Broadcast { .. } | Entry::Multicast { .. } => {
            // Messages carry a typed value: `append_message`. Nothing is written.
            out.truncate(start);
            return;
        }
    }
    // Names are bounded by the registry; a body this small always fits.
    let _ = finish(out, start);
}

/// Starts a record (the framing is the spill's: `spill::record::seal`).
fn begin(out: &mut Vec<u8>) -> usize {
    record::begin_frame(out)
}

fn finish(out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    record::seal(out, start, MAX_BODY_LEN).map_err(|record::BodyTooLarge| EncodeError::TooLarge)
}

/// Why a record could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The input ended cleanly before a new record: the end of the segment.
    End,
    /// The record is damaged; `resumable` if its length was plausible, so the next record
    /// starts right after it (a checksum or content error), else the rest of the segment
    /// cannot be framed.
    Damaged { kind: FaultKind, resumable: bool },
}

/// Reads one record's body into `body`, verifying its length and checksum. Returns the
/// record's whole length on disk.
pub(crate) fn read_body(input: &mut impl Read, body: &mut Vec<u8>) -> Result<u64, Bad> {
    let mut head = [0u8; HEAD_LEN];
    let mut filled = 0;
    while filled < HEAD_LEN {
        match input.read(&mut head[filled..]) {
            Ok(0) if filled == 0 => return Err(Bad::End),
            Ok(0) => return Err(damaged(FaultKind::Truncated, false)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(damaged(FaultKind::Io(e.kind()), false)),
        }
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(1..=MAX_BODY_LEN).contains(&len) {
        return Err(damaged(FaultKind::BadLength(len as u64), false));
    }
    body.clear();
    body.resize(len, 0);
    input.read_exact(body).map_err(|e| {
        let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
            FaultKind::Truncated
        } else {
            FaultKind::Io(e.kind())
        };
        damaged(kind, false)
    })?;
    if crc32fast::hash(body) != crc {
        return Err(damaged(FaultKind::Checksum, true));
    }
    Ok((HEAD_LEN + len) as u64)
}

fn damaged(kind: FaultKind, resumable: bool) -> Bad {
    Bad::Damaged { kind, resumable }
}

/// Parses a verified body (one [`read_body`] returned).
///
/// # Errors
///
/// [`FaultKind::Decode`] for a body whose checksum matched but whose contents make no sense
/// (an unknown kind, a field too short or too long, a name that is not UTF-8): written by a
/// newer version, or damaged before its checksum was computed.
pub(crate) fn parse(body: &[u8]) -> Result<Entry<'_>, FaultKind> {
    let (&kind, rest) = body.split_first().ok_or(FaultKind::Decode)?;
    let u64_at = |at: usize| -> Result<u64, FaultKind> {
        let bytes = rest.get(at..at + 8).ok_or(FaultKind::Decode)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    };
    let u32_at = |at: usize| -> Result<u32, FaultKind> {
        let bytes = rest.get(at..at + 4).ok_or(FaultKind::Decode)?;
        let mut word = [0u8; 4];
        word.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(word))
    };
    let exact = |len: usize| {
        if rest.len() == len {
            Ok(())
        } else {
            Err(FaultKind::Decode)
        }
    };
    match kind {
        DATA => Ok(Entry::Data {
            stamp: u64_at(0)?,
            receiver: u32_at(8)?,
            payload: &rest[12..],
        }),
        BROADCAST => Ok(Entry::Broadcast {
            stamp: u64_at(0)?,
            payload: &rest[8..],
        }),
        TICK => exact(8).and(Ok(Entry::Tick { stamp: u64_at(0)? })),
        NAME => Ok(Entry::Name {
            receiver: u32_at(0)?,
            name: std::str::from_utf8(&rest[4..]).map_err(|_| FaultKind::Decode)?,
        }),
        OPEN => exact(4).and(Ok(Entry::Open {
            receiver: u32_at(0)?,
        })),
        CLOSED => exact(4).and(Ok(Entry::Closed {
            receiver: u32_at(0)?,
        })),
        COMMIT => exact(12).and(Ok(Entry::Commit {
            receiver: u32_at(0)?,
            stamp: u64_at(4)?,
        })),
        REWIND => exact(12).and(Ok(Entry::Rewind {
            receiver: u32_at(0)?,
            stamp: u64_at(4)?,
        })),
        EXPIRED => exact(12).and(Ok(Entry::Expired {
            receiver: u32_at(0)?,
            count: u64_at(4)?,
        })),
        MULTICAST => {
            let count = u32_at(8)? as usize;
            let payload_at = count
                .checked_mul(4)
                .and_then(|ids| ids.checked_add(12))
                .filter(|&at| at <= rest.len())
                .ok_or(FaultKind::Decode)?;
            Ok(Entry::Multicast {
                stamp: u64_at(0)?,
                receivers: Members(&rest[12..payload_at]),
                payload: &rest[payload_at..],
            })
        }
        _ => Err(FaultKind::Decode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_u32(v: &u32, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        postcard::to_io(v, out).map(|_| ())
    }

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        append_message(&mut out, 7, Some(3), &99u32, encode_u32).unwrap();
        append_message(&mut out, 8, None, &5u32, encode_u32).unwrap();
        for entry in [
            Entry::Tick { stamp: 9 },
            Entry::Name {
                receiver: 3,
                name: "rx-é",
            },
            Entry::Open { receiver: 3 },
            Entry::Closed { receiver: 3 },
            Entry::Commit {
                receiver: 3,
                stamp: 8,
            },
            Entry::Rewind {
                receiver: 3,
                stamp: 2,
            },
        ] {
            append_entry(&mut out, &entry);
        }
        out
    }

    #[test]
    fn a_multicast_stores_its_payload_once_for_every_member() {
        let mut out = Vec::new();
        append_multicast(&mut out, 12, &[4, 1 << 31, 9], &77u32, encode_u32).unwrap();
        let mut body = Vec::new();
        read_body(&mut &out[..], &mut body).unwrap();
        let Entry::Multicast {
            stamp,
            receivers,
            payload,
        } = parse(&body).unwrap()
        else {
            panic!("not a multicast");
        };
        assert_eq!(stamp, 12);
        assert_eq!(receivers.iter().collect::<Vec<_>>(), [4, 1 << 31, 9]);
        assert!(receivers.contains(9) && !receivers.contains(5));
        assert_eq!(receivers.len(), 3);
        assert_eq!(postcard::from_bytes::<u32>(payload).unwrap(), 77);
        // A count that runs past the body is not a record.
        let mut bad = vec![MULTICAST];
        bad.extend_from_slice(&12u64.to_le_bytes());
        bad.extend_from_slice(&1000u32.to_le_bytes());
        bad.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&bad), Err(FaultKind::Decode));
        bad.truncate(1 + 8 + 2);
        assert_eq!(parse(&bad), Err(FaultKind::Decode));
    }

    #[test]
    fn every_kind_round_trips() {
        let bytes = sample();
        let mut input = &bytes[..];
        let mut body = Vec::new();
        let mut entries = Vec::new();
        loop {
            match read_body(&mut input, &mut body) {
                Ok(_) => entries.push(format!("{:?}", parse(&body).unwrap())),
                Err(Bad::End) => break,
                Err(bad) => panic!("{bad:?}"),
            }
        }
        assert_eq!(entries.len(), 8);
        assert!(entries[0].contains("stamp: 7, receiver: 3"));
        assert!(entries[1].starts_with("Broadcast { stamp: 8"));
        assert_eq!(entries[3], "Name { receiver: 3, name: \"rx-é\" }");
        assert_eq!(entries[6], "Commit { receiver: 3, stamp: 8 }");
        assert_eq!(entries[7], "Rewind { receiver: 3, stamp: 2 }");
    }

    #[test]
    fn every_single_bit_flip_of_a_record_is_caught() {
        let mut bytes = Vec::new();
        append_message(&mut bytes, 42, Some(1), &0xdead_beef_u32, encode_u32).unwrap();
        let mut body = Vec::new();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let got = read_body(&mut &flipped[..], &mut body);
            assert!(
                matches!(got, Err(Bad::Damaged { .. })),
                "bit {bit} flipped went unnoticed: {got:?}"
            );
        }
    }

    #[test]
    fn a_torn_record_is_truncated_and_a_clean_end_is_the_end() {
        let bytes = sample();
        let mut body = Vec::new();
        assert_eq!(read_body(&mut &bytes[..0], &mut body), Err(Bad::End));
        for cut in 1..20 {
            let got = read_body(&mut &bytes[..cut], &mut body);
            assert_eq!(
                got,
                Err(Bad::Damaged {
                    kind: FaultKind::Truncated,
                    resumable: false
                }),
                "cut at {cut}"
            );
        }
    }
}
