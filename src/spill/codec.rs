//! How values become record payloads and back.
//!
//! Every spilled value is stored as its [postcard](https://docs.rs/postcard) encoding. For most
//! types that is serde driving postcard, through two plain function pointers, so that the
//! dispatcher, senders and receivers stay generic over any `T` and only
//! [`Builder::build_spilling`](crate::Builder::build_spilling) asks for serde.
//!
//! # The byte path
//!
//! Serde hands a `Vec<u8>` (or a `Box<[u8]>`) to a serializer as a sequence of `u8`, one call
//! per byte, and builds it back the same way: for a 1 KiB payload that is most of the cost of
//! a spill. postcard writes a byte sequence, a byte string and a string identically: the length
//! as a varint, then the bytes. So for the payload types in [`Bytes`] (`Vec<u8>`, `Box<[u8]>`,
//! `String`, `Box<str>`) the codec writes exactly those bytes with one length and one copy, and
//! reads them back with one copy (and a UTF-8 check for strings).
//!
//! The choice is made once, in [`Codec::postcard`]: stable Rust has no specialization, so it
//! compares `TypeId::of::<T>()` with each byte type's, and on a match picks functions that
//! reach the value through [`Any`]: `downcast_ref::<B>()` to encode, and to decode, a `None`
//! of type `Option<T>` filled through `downcast_mut::<Option<B>>()`. The downcasts cannot fail
//! once the `TypeId`s matched; if one did, it would be an encode or decode error, not a panic.
//!
//! Both halves delegate the framing to postcard itself (a byte string is written with
//! `serialize_bytes` and read back as a borrowed `&[u8]` or `&str`), so the on-disk format
//! is postcard's on either path: a record written by one decodes by the other, and a string
//! that is not UTF-8 is a decode error ([`FaultKind::Decode`](crate::spill::FaultKind::Decode)).
//! Users keep their types; `serde_bytes::ByteBuf` and other types that serialize as one byte
//! string already take postcard's one-copy path through serde.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

/// Encodes a value, appending its payload to the buffer.
pub(crate) type EncodeFn<T> = fn(&T, &mut Vec<u8>) -> Result<(), postcard::Error>;

/// Decodes a payload (the whole slice, as written by the matching [`EncodeFn`]).
pub(crate) type DecodeFn<T> = fn(&[u8]) -> Result<T, postcard::Error>;

/// How values become records and back: two plain function pointers chosen once per
/// dispatcher (see the module doc).
pub(crate) struct Codec<T> {
    pub(crate) encode: EncodeFn<T>,
    pub(crate) decode: DecodeFn<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> {
    /// The postcard encoding: compact (varints), and stable across platforms. Byte payloads
    /// take the [byte path](self#the-byte-path); everything else goes through serde.
    pub(crate) fn postcard() -> Self {
        Self::byte_path().unwrap_or_else(Self::serde)
    }

    /// The postcard encoding through serde, for any type.
    pub(crate) fn serde() -> Self {
        fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
            postcard::to_io(value, out).map(|_| ())
        }
        fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
            postcard::from_bytes(bytes)
        }
        Codec {
            encode: encode::<T>,
            decode: decode::<T>,
        }
    }

    /// The byte path if `T` is one of the [`Bytes`] types.
    fn byte_path() -> Option<Self> {
        Self::bytes_as::<Vec<u8>>()
            .or_else(Self::bytes_as::<Box<[u8]>>)
            .or_else(Self::bytes_as::<String>)
            .or_else(Self::bytes_as::<Box<str>>)
    }

    /// The byte path for `B`, if `T` is `B`.
    fn bytes_as<B: Bytes>() -> Option<Self> {
        (TypeId::of::<T>() == TypeId::of::<B>()).then_some(Codec {
            encode: encode_bytes::<T, B>,
            decode: decode_bytes::<T, B>,
        })
    }
}

/// A payload type whose postcard encoding is a varint length and then its bytes.
trait Bytes: Sized + 'static {
    /// The bytes postcard writes after the length.
    fn as_payload(&self) -> &[u8];
    /// Reads a value from a postcard encoding, with one copy.
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error>;
}

impl Bytes for Vec<u8> {
    fn as_payload(&self) -> &[u8] {
        self
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes::<&[u8]>(bytes).map(<[u8]>::to_vec)
    }
}

impl Bytes for Box<[u8]> {
    fn as_payload(&self) -> &[u8] {
        self
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes::<&[u8]>(bytes).map(Box::from)
    }
}

impl Bytes for String {
    fn as_payload(&self) -> &[u8] {
        self.as_bytes()
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        // postcard checks the UTF-8 (`DeserializeBadUtf8`).
        postcard::from_bytes::<&str>(bytes).map(str::to_owned)
    }
}

impl Bytes for Box<str> {
    fn as_payload(&self) -> &[u8] {
        self.as_bytes()
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes::<&str>(bytes).map(Box::from)
    }
}

/// A byte slice that serializes as one byte string (as `serde_bytes` does).
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The byte path's encoder for `T`, which [`Codec::bytes_as`] checked is `B`.
fn encode_bytes<T: 'static, B: Bytes>(value: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    let value = (value as &dyn Any)
        .downcast_ref::<B>()
        .ok_or(postcard::Error::SerdeSerCustom)?;
    postcard::to_io(&ByteString(value.as_payload()), out).map(|_| ())
}

/// The byte path's decoder for `T`, which [`Codec::bytes_as`] checked is `B`.
fn decode_bytes<T: 'static, B: Bytes>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let mut slot: Option<T> = None;
    let target = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .ok_or(postcard::Error::SerdeDeCustom)?;
    *target = Some(B::decode(bytes)?);
    slot.ok_or(postcard::Error::SerdeDeCustom)
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use quickcheck::{QuickCheck, TestResult};

    use super::*;

    fn encode<T>(codec: Codec<T>, value: &T) -> Vec<u8> {
        let mut out = vec![0xee]; // appends, never overwrites
        (codec.encode)(value, &mut out).expect("encodes");
        assert_eq!(out.remove(0), 0xee);
        out
    }

    /// The byte path writes postcard's bytes, and each path reads what the other wrote.
    fn same_as_serde<T>(value: T) -> bool
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let fast = Codec::<T>::byte_path().expect("a byte type");
        let serde = Codec::<T>::serde();
        let bytes = encode(fast, &value);
        assert_eq!(bytes, postcard::to_allocvec(&value).expect("encodes"));
        assert_eq!(bytes, encode(serde, &value));
        assert_eq!((fast.decode)(&bytes).as_ref(), Ok(&value));
        assert_eq!((serde.decode)(&bytes).as_ref(), Ok(&value));
        true
    }

    /// On any input, even garbage, the byte path decodes what serde decodes and fails where
    /// serde fails.
    fn decodes_as_serde<T>(input: &[u8]) -> bool
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let fast = (Codec::<T>::byte_path().expect("a byte type").decode)(input);
        let serde = (Codec::<T>::serde().decode)(input);
        match (&fast, &serde) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => true,
            _ => panic!("byte path {fast:?}, serde {serde:?} on {input:?}"),
        }
    }

    #[test]
    fn byte_types_take_the_byte_path_and_others_do_not() {
        assert!(Codec::<Vec<u8>>::byte_path().is_some());
        assert!(Codec::<Box<[u8]>>::byte_path().is_some());
        assert!(Codec::<String>::byte_path().is_some());
        assert!(Codec::<Box<str>>::byte_path().is_some());
        assert!(Codec::<u8>::byte_path().is_none());
        assert!(Codec::<Vec<u16>>::byte_path().is_none());
        assert!(Codec::<Vec<i8>>::byte_path().is_none());
        assert!(Codec::<Option<Vec<u8>>>::byte_path().is_none());
        assert!(Codec::<(Vec<u8>,)>::byte_path().is_none());
    }

    #[test]
    fn byte_path_is_postcard_for_random_values() {
        let mut qc = QuickCheck::new().tests(500);
        qc.quickcheck(same_as_serde::<Vec<u8>> as fn(Vec<u8>) -> bool);
        qc.quickcheck(same_as_serde::<String> as fn(String) -> bool);
        qc.quickcheck((|v: Vec<u8>| same_as_serde(v.into_boxed_slice())) as fn(Vec<u8>) -> bool);
        qc.quickcheck((|s: String| same_as_serde(s.into_boxed_str())) as fn(String) -> bool);
    }

    #[test]
    fn byte_path_is_postcard_across_varint_widths() {
        // Lengths on each side of a varint byte boundary (1, 2 and 3 length bytes).
        for len in [0, 1, 127, 128, 129, 16_383, 16_384, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            same_as_serde(bytes.clone());
            same_as_serde(bytes.into_boxed_slice());
            same_as_serde("é".repeat(len / 2));
        }
    }

    #[test]
    fn byte_path_decodes_any_input_as_serde_does() {
        fn check(input: Vec<u8>) -> TestResult {
            TestResult::from_bool(
                decodes_as_serde::<Vec<u8>>(&input)
                    && decodes_as_serde::<Box<[u8]>>(&input)
                    && decodes_as_serde::<String>(&input)
                    && decodes_as_serde::<Box<str>>(&input),
            )
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(check as fn(Vec<u8>) -> TestResult);
        // Short, truncated, oversized and non-canonical lengths.
        for input in [
            &[][..],
            &[3, b'a', b'b'],
            &[0x80],
            &[0xff; 11],
            &[0x80, 0x00],
            &[0x81, 0x00, b'a'],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ] {
            check(input.to_vec());
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_is_a_decode_error() {
        let decode = Codec::<String>::postcard().decode;
        for bad in [&[1, 0xff][..], &[2, 0xc3, 0x28], &[3, b'a', 0xed, 0xa0]] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
        assert!((Codec::<Box<str>>::postcard().decode)(&[1, 0x80]).is_err());
        assert_eq!(decode(&[2, 0xc3, 0xa9]), Ok("é".to_owned()));
    }

    #[test]
    fn the_byte_path_appends_after_what_is_in_the_buffer() {
        let mut out = b"head".to_vec();
        (Codec::<Vec<u8>>::postcard().encode)(&vec![1, 2, 3], &mut out).expect("encodes");
        assert_eq!(out, b"head\x03\x01\x02\x03");
    }
}
