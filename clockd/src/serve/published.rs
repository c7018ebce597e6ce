//! A published message as the dispatcher carries it: one shared buffer per publish, whatever
//! the protocol it came in by, copied (as an `Arc`) to every subscriber.
//!
//! # Encoding
//!
//! The buffer has one of two forms, told apart by its first byte:
//!
//! * **Line form**: `subject SP payload`. What the topics protocol's `PUB topic message`
//!   makes, and what a NATS `PUB` makes when its payload is one line of UTF-8 with no reply
//!   subject and no headers. The topics protocol delivers it as `UPDATED subject payload`
//!   with no decoding: the buffer is the line.
//! * **Framed form**: `0xFF`, a flags byte, the subject's length (u16 LE), the reply
//!   subject's length (u16 LE), the headers' length (u32 LE), then subject, reply subject,
//!   headers and payload. Everything else a NATS client can send: a reply subject (request and
//!   reply), a header block (`HPUB`), a payload that is binary or spans lines. `0xFF` never
//!   occurs in UTF-8, so it never starts a line-form buffer. Flag bit 0: the payload is one
//!   line of UTF-8 (the topics protocol can then deliver it verbatim).
//!
//! An empty buffer is a connection's *marker* (see `writer.rs`): never a publish.
//!
//! The journal stores the buffer as bytes and the publish time, the same postcard encoding
//! as the `(String, u64)` pair of earlier builds (a string and a byte string are both a length
//! and bytes), so a journal written before the framed form existed reads unchanged, and one
//! with only line-form messages reads in an earlier build too. Queue-group picks are not
//! stored: they only matter for the live delivery.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first byte of a framed-form buffer.
const FRAMED: u8 = 0xFF;
/// Flag: the payload is one line of UTF-8.
const PAYLOAD_IS_LINE: u8 = 1;
/// Tag, flags, subject length, reply length, headers length.
const FRAMED_HEADER: usize = 1 + 1 + 2 + 2 + 4;

/// Which queue-group member gets a message: `(connection, subscription)` of each group's
/// chosen member (NATS queue groups; see `nats/interest.rs`).
pub type Picks = Arc<[(u64, u64)]>;

/// A published message and when it was published (for a topic's retention and compaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    buffer: Arc<[u8]>,
    /// Publish time, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The members of the subject's queue groups chosen for this message (live only).
    pub picks: Option<Picks>,
}

/// Why a message cannot be framed.
#[derive(Debug, PartialEq, Eq)]
pub enum TooLarge {
    /// A subject or reply subject over 65,535 bytes.
    Subject,
    /// A header block over 4 GiB.
    Headers,
}

impl Published {
    /// `body` (`topic message`, the line form) published at `at_ms`.
    pub fn new(body: &str, at_ms: u64) -> Self {
        Published {
            buffer: body.as_bytes().into(),
            at_ms,
            picks: None,
        }
    }

    /// `body` (`topic message`) published now.
    pub fn now(body: &str) -> Self {
        Self::new(body, now_ms())
    }

    /// A message from a NATS client: the line form when it has no reply subject and no
    /// headers and its payload is one line of UTF-8, the framed form otherwise.
    pub fn message(
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        at_ms: u64,
    ) -> Result<Self, TooLarge> {
        let is_line = is_line(payload);
        if reply.is_none() && headers.is_none() && is_line {
            let mut buffer = Vec::with_capacity(subject.len() + 1 + payload.len());
            buffer.extend_from_slice(subject.as_bytes());
            buffer.push(b' ');
            buffer.extend_from_slice(payload);
            return Ok(Published {
                buffer: buffer.into(),
                at_ms,
                picks: None,
            });
        }
        let reply = reply.unwrap_or("");
        let headers = headers.unwrap_or(&[]);
        let subject_len = u16::try_from(subject.len()).map_err(|_| TooLarge::Subject)?;
        let reply_len = u16::try_from(reply.len()).map_err(|_| TooLarge::Subject)?;
        let headers_len = u32::try_from(headers.len()).map_err(|_| TooLarge::Headers)?;
        let mut buffer = Vec::with_capacity(
            FRAMED_HEADER + subject.len() + reply.len() + headers.len() + payload.len(),
        );
        buffer.push(FRAMED);
        buffer.push(if is_line { PAYLOAD_IS_LINE } else { 0 });
        buffer.extend_from_slice(&subject_len.to_le_bytes());
        buffer.extend_from_slice(&reply_len.to_le_bytes());
        buffer.extend_from_slice(&headers_len.to_le_bytes());
        buffer.extend_from_slice(subject.as_bytes());
        buffer.extend_from_slice(reply.as_bytes());
        buffer.extend_from_slice(headers);
        buffer.extend_from_slice(payload);
        Ok(Published {
            buffer: buffer.into(),
            at_ms,
            picks: None,
        })
    }

    /// A connection's marker: never a publish (a publish's buffer holds at least a subject).
    pub fn marker() -> Self {
        Self::new("", 0)
    }

    /// Whether this is a marker.
    pub fn is_marker(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The line form's `subject payload`, if this message has it: what the topics protocol
    /// writes after `UPDATED `.
    pub fn line(&self) -> Option<&[u8]> {
        (self.buffer.first() != Some(&FRAMED)).then_some(&self.buffer[..])
    }

    /// The framed form's parts.
    fn framed(&self) -> Option<Parts<'_>> {
        let buffer = &self.buffer[..];
        if buffer.first() != Some(&FRAMED) || buffer.len() < FRAMED_HEADER {
            return None;
        }
        let subject_len = usize::from(u16::from_le_bytes([buffer[2], buffer[3]]));
        let reply_len = usize::from(u16::from_le_bytes([buffer[4], buffer[5]]));
        let headers_len = u32::from_le_bytes([buffer[6], buffer[7], buffer[8], buffer[9]]) as usize;
        // A damaged buffer (from a journal) reads as a message with what fits.
        let mut rest = &buffer[FRAMED_HEADER..];
        Some(Parts {
            flags: buffer[1],
            subject: take(&mut rest, subject_len),
            reply: take(&mut rest, reply_len),
            headers: take(&mut rest, headers_len),
            payload: rest,
        })
    }

    /// Its subject (topic).
    pub fn subject(&self) -> &str {
        let bytes = match self.framed() {
            Some(parts) => parts.subject,
            None => {
                let line = &self.buffer[..];
                let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
                &line[..end]
            }
        };
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// Its payload (the topics protocol's message).
    pub fn payload(&self) -> &[u8] {
        match self.framed() {
            Some(parts) => parts.payload,
            None => {
                let line = &self.buffer[..];
                match line.iter().position(|&b| b == b' ') {
                    Some(space) => &line[space + 1..],
                    None => &[],
                }
            }
        }
    }

    /// Its reply subject, if it has one (NATS request and reply).
    pub fn reply(&self) -> Option<&str> {
        let reply = self.framed()?.reply;
        (!reply.is_empty()).then(|| std::str::from_utf8(reply).unwrap_or(""))
    }

    /// Its header block (`NATS/1.0\r\n…\r\n\r\n`), if it has one.
    pub fn headers(&self) -> Option<&[u8]> {
        let headers = self.framed()?.headers;
        (!headers.is_empty()).then_some(headers)
    }

    /// Whether the payload is one line of UTF-8 (no `\r` or `\n`).
    pub fn payload_is_line(&self) -> bool {
        match self.framed() {
            Some(parts) => parts.flags & PAYLOAD_IS_LINE != 0,
            None => true,
        }
    }

    /// Its compaction key: the payload's first word.
    pub fn key(&self) -> &[u8] {
        let payload = self.payload();
        let end = payload
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(payload.len());
        &payload[..end]
    }

    /// The same message with queue-group picks.
    pub fn with_picks(mut self, picks: Option<Picks>) -> Self {
        self.picks = picks;
        self
    }
}

/// The parts of a framed-form buffer.
struct Parts<'a> {
    flags: u8,
    subject: &'a [u8],
    reply: &'a [u8],
    headers: &'a [u8],
    payload: &'a [u8],
}

/// The first `n` bytes of `rest` (fewer if it is shorter), taken off it.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Whether `payload` is one line of UTF-8.
fn is_line(payload: &[u8]) -> bool {
    !payload.iter().any(|&b| b == b'\n' || b == b'\r') && std::str::from_utf8(payload).is_ok()
}

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (Bytes(&self.buffer), self.at_ms).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Published {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <(ByteBuf, u64)>::deserialize(deserializer).map(|(ByteBuf(buffer), at_ms)| Published {
            buffer: buffer.into(),
            at_ms,
            picks: None,
        })
    }
}

/// Serialized as a byte string (postcard: a length, then the bytes, as a `str`).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Deserialized from a byte string or a string.
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.as_bytes().to_vec()))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: &Published) -> Published {
        let bytes = postcard::to_allocvec(message).unwrap();
        postcard::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn the_line_form_is_the_topics_line() {
        let m = Published::new("prices EURUSD 1.09", 7);
        assert_eq!(m.line(), Some(&b"prices EURUSD 1.09"[..]));
        assert_eq!(m.subject(), "prices");
        assert_eq!(m.payload(), b"EURUSD 1.09");
        assert_eq!(m.key(), b"EURUSD");
        assert_eq!((m.reply(), m.headers()), (None, None));
        assert!(m.payload_is_line());
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn a_plain_nats_message_takes_the_line_form() {
        let m = Published::message("a.b", None, None, b"hello world", 1).unwrap();
        assert_eq!(m.line(), Some(&b"a.b hello world"[..]));
        let empty = Published::message("a.b", None, None, b"", 1).unwrap();
        assert_eq!((empty.subject(), empty.payload()), ("a.b", &b""[..]));
        assert!(!empty.is_marker());
    }

    #[test]
    fn the_framed_form_keeps_every_part() {
        let headers = b"NATS/1.0\r\nA: b\r\n\r\n";
        let m =
            Published::message("a.b", Some("_INBOX.x"), Some(headers), b"\x00\xff\n", 9).unwrap();
        assert_eq!(m.line(), None);
        assert_eq!(m.subject(), "a.b");
        assert_eq!(m.reply(), Some("_INBOX.x"));
        assert_eq!(m.headers(), Some(&headers[..]));
        assert_eq!(m.payload(), b"\x00\xff\n");
        assert!(!m.payload_is_line());
        assert_eq!(round_trip(&m), m);
        let with_reply = Published::message("a", Some("r"), None, b"one line", 9).unwrap();
        assert!(with_reply.payload_is_line());
        assert_eq!(with_reply.headers(), None);
    }

    #[test]
    fn a_journal_of_string_pairs_reads_as_line_form_messages() {
        let old = postcard::to_allocvec(&("topic message", 5u64)).unwrap();
        let m: Published = postcard::from_bytes(&old).unwrap();
        assert_eq!(
            (m.subject(), m.payload(), m.at_ms),
            ("topic", &b"message"[..], 5)
        );
        // And an earlier build reads a line-form message as its pair.
        let new = postcard::to_allocvec(&m).unwrap();
        assert_eq!(new, old);
    }

    #[test]
    fn a_damaged_framed_buffer_reads_without_panicking() {
        let mut m = Published::message("a", Some("r"), None, b"x", 1).unwrap();
        m.buffer = m.buffer[..FRAMED_HEADER + 1].into();
        assert_eq!(m.subject(), "a");
        assert_eq!(m.payload(), b"");
        m.buffer = vec![FRAMED, 0, 9].into();
        assert_eq!(m.subject(), "");
    }

    #[test]
    fn picks_are_not_stored() {
        let m = Published::new("t x", 1).with_picks(Some(vec![(1, 2)].into()));
        assert_eq!(round_trip(&m).picks, None);
    }
}
