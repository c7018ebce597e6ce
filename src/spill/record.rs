//! The on-disk record: how one stamped message is framed in a segment file.
//!
//! ```text
//! +----------+----------+-----------+---------------------+
//! | len: u32 | crc: u32 | stamp: u64| payload (postcard)  |
//! +----------+----------+-----------+---------------------+
//!              crc32 of ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^   len = 8 + payload length
//! ```
//!
//! All integers are little-endian. The checksum covers the stamp and the payload, so a flipped
//! bit anywhere in them, or a length that frames the wrong bytes, is caught before anything is
//! decoded. A record is either delivered whole and verified, or reported as a
//! [`Corruption`](crate::spill::FaultKind); never delivered as a wrong value.

use std::io::{self, Read};

use crate::spill::codec::EncodeFn;
use crate::spill::FaultKind;

/// The largest record accepted when reading. A length above it can only come from corruption
/// (a writer never produces one: see [`append`]), and refusing it keeps a corrupt length from
/// turning into a huge allocation.
pub(crate) const MAX_RECORD_LEN: usize = 1 << 30;

/// Why a value could not be framed.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The value's `Serialize` implementation failed.
    Serialize,
    /// The encoded value exceeds [`MAX_RECORD_LEN`].
    TooLarge,
}

/// Appends one framed record to `out`, encoding `value` with `encode`. On error `out` is left
/// as it was.
pub(crate) fn append<T>(
    out: &mut Vec<u8>,
    stamp: usize,
    value: &T,
    encode: EncodeFn<T>,
) -> Result<(), EncodeError> {
    let start = begin_frame(out);
    out.extend_from_slice(&(stamp as u64).to_le_bytes());
    if encode(value, out).is_err() {
        out.truncate(start);
        return Err(EncodeError::Serialize);
    }
    seal(out, start, MAX_RECORD_LEN).map_err(|BodyTooLarge| EncodeError::TooLarge)
}

/// Bytes of a frame before its body: the body's length (u32) and its crc32 (u32), both
/// little-endian. The spill's records and the journal's share this framing.
pub(crate) const FRAME_HEAD_LEN: usize = 8;

/// A body longer than the limit given to [`seal`].
#[derive(Debug)]
pub(crate) struct BodyTooLarge;

/// Starts a frame at the end of `out`: room for its head, which [`seal`] fills in once the
/// body is appended. Returns where the frame starts.
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD_LEN]);
    start
}

/// Finishes the frame that starts at `start` (as [`begin_frame`] left it, its body appended
/// up to the end of `out`): writes the body's length and crc32 into its head. A body longer
/// than `max` is refused and the frame removed, leaving `out` as it was before it.
pub(crate) fn seal(out: &mut Vec<u8>, start: usize, max: usize) -> Result<(), BodyTooLarge> {
    let body = &out[start + FRAME_HEAD_LEN..];
    if body.len() > max {
        out.truncate(start);
        return Err(BodyTooLarge);
    }
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_HEAD_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The stamp of the record that `record` starts with (a whole record, as `append` wrote it).
pub(crate) fn stamp_of(record: &[u8]) -> usize {
    let mut stamp = [0u8; 8];
    if let Some(bytes) = record.get(8..16) {
        stamp.copy_from_slice(bytes);
    }
    usize::try_from(u64::from_le_bytes(stamp)).unwrap_or(usize::MAX)
}

/// Reads one record from `input`: verifies its length and checksum and returns its stamp,
/// leaving the payload in `scratch`.
pub(crate) fn read(input: &mut impl Read, scratch: &mut Vec<u8>) -> Result<usize, FaultKind> {
    let mut head = [0u8; 8];
    input.read_exact(&mut head).map_err(truncated_or_io)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(8..=MAX_RECORD_LEN).contains(&len) {
        return Err(FaultKind::BadLength(len as u64));
    }
    // `read_exact` overwrites all `len` bytes: only growth needs zeroing, not every record.
    scratch.truncate(len);
    scratch.resize(len, 0);
    input.read_exact(scratch).map_err(truncated_or_io)?;
    if crc32fast::hash(scratch) != crc {
        return Err(FaultKind::Checksum);
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&scratch[..8]);
    let stamp = u64::from_le_bytes(stamp);
    usize::try_from(stamp).map_err(|_| FaultKind::BadStamp(stamp))
}

/// The payload of the record [`read`] left in `scratch`.
pub(crate) fn payload(scratch: &[u8]) -> &[u8] {
    &scratch[8..]
}

fn truncated_or_io(e: io::Error) -> FaultKind {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FaultKind::Truncated
    } else {
        FaultKind::Io(e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_u32(v: &u32, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        postcard::to_io(v, out).map(|_| ())
    }

    #[test]
    fn round_trip_and_every_single_bit_flip_is_caught() {
        let mut bytes = Vec::new();
        append(&mut bytes, 42, &0xdead_beef_u32, encode_u32).unwrap();
        let mut scratch = Vec::new();
        assert_eq!(read(&mut &bytes[..], &mut scratch).unwrap(), 42);
        assert_eq!(
            postcard::from_bytes::<u32>(payload(&scratch)).unwrap(),
            0xdead_beef
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let got = read(&mut &flipped[..], &mut scratch);
            assert!(got.is_err(), "bit {bit} flipped went unnoticed: {got:?}");
        }
    }

    #[test]
    fn the_scratch_buffer_is_reused_across_lengths_without_stale_bytes() {
        fn encode_bytes(v: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
            postcard::to_io(v, out).map(|_| ())
        }
        let values = [
            vec![1u8; 300],
            vec![2; 3],
            vec![],
            vec![4; 40],
            vec![5; 300],
        ];
        let mut bytes = Vec::new();
        for (stamp, value) in values.iter().enumerate() {
            append(&mut bytes, stamp, value, encode_bytes).unwrap();
        }
        let mut input = &bytes[..];
        let mut scratch = Vec::new();
        for (stamp, value) in values.iter().enumerate() {
            assert_eq!(read(&mut input, &mut scratch).unwrap(), stamp);
            assert_eq!(
                postcard::from_bytes::<Vec<u8>>(payload(&scratch)).unwrap(),
                *value
            );
        }
        assert!(input.is_empty());
    }

    #[test]
    fn a_torn_record_is_truncated_not_data() {
        let mut bytes = Vec::new();
        append(&mut bytes, 7, &1u32, encode_u32).unwrap();
        let mut scratch = Vec::new();
        for cut in 0..bytes.len() {
            assert!(matches!(
                read(&mut &bytes[..cut], &mut scratch),
                Err(FaultKind::Truncated)
            ));
        }
    }
}
