//! Byte payloads through the spill: `Vec<u8>`, `Box<[u8]>`, `String` and `Box<str>` take the
//! codec's byte path (one length, one copy); a struct of bytes stays on serde. Each comes back
//! from disk whole and in order, and a string record that is intact but not UTF-8 is a decode
//! fault, never a panic nor a wrong value.

use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, FaultKind, RecvCheckedError};
use quickcheck::QuickCheck;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Header bytes at the start of a segment file (see `src/spill/segment.rs`).
const SEGMENT_HEADER: usize = 16;

/// Sends `values` to a receiver keeping one message in memory, so all but the first go to
/// disk (in small segments), and reads them back. True if they came back equal, in order.
fn spilled_back<T>(values: Vec<T>) -> bool
where
    T: Serialize + DeserializeOwned + Send + Clone + PartialEq + Debug + 'static,
{
    let spilled = values.len().saturating_sub(1) as u64;
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let d = Builder::new()
        .bound(64)
        .spill_to(tmp.path())
        .memory_capacity(1)
        .segment_size(4096)
        .build_spilling::<T>()
        .expect("a spilling dispatcher");
    let (tx, rx) = d.new("tx", "rx");
    for value in &values {
        tx.send(value.clone()).expect("rx is alive");
    }
    drop(tx);
    // Everything but the first on disk before reading, so nothing goes back to memory early.
    wait_until(|| rx.spill_stats().expect("spilling").on_disk == spilled);
    let mut got = Vec::new();
    loop {
        match rx.recv_checked() {
            Ok((Some(value), _)) => got.push(value),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => panic!("undamaged disk reported {fault}"),
            Err(RecvCheckedError::Disconnected) => break,
        }
    }
    assert_eq!(rx.spill_stats().expect("spilling").spilled, spilled);
    assert_eq!(got, values);
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Blob {
    id: u32,
    bytes: Vec<u8>,
}

/// Sizes around the varint length boundaries (1, 2, 3 bytes) and past a segment.
fn boundary_sizes() -> Vec<Vec<u8>> {
    [0, 1, 127, 128, 4095, 4096, 16_383, 16_384, 70_000]
        .iter()
        .map(|&len| (0..len).map(|i| (i * 7) as u8).collect())
        .collect()
}

#[test]
fn byte_payloads_of_every_kind_come_back_whole_and_in_order() {
    let mut qc = QuickCheck::new().tests(40);
    qc.quickcheck(spilled_back::<Vec<u8>> as fn(Vec<Vec<u8>>) -> bool);
    qc.quickcheck(spilled_back::<String> as fn(Vec<String>) -> bool);
    qc.quickcheck(
        (|v: Vec<Vec<u8>>| spilled_back(v.into_iter().map(Vec::into_boxed_slice).collect()))
            as fn(Vec<Vec<u8>>) -> bool,
    );
    qc.quickcheck(
        (|v: Vec<String>| spilled_back(v.into_iter().map(String::into_boxed_str).collect()))
            as fn(Vec<String>) -> bool,
    );
    qc.quickcheck(
        (|v: Vec<(u32, Vec<u8>)>| {
            spilled_back(
                v.into_iter()
                    .map(|(id, bytes)| Blob { id, bytes })
                    .collect(),
            )
        }) as fn(Vec<(u32, Vec<u8>)>) -> bool,
    );
}

#[test]
fn byte_payloads_across_length_boundaries_come_back_whole() {
    let sizes = boundary_sizes();
    assert!(spilled_back(sizes.clone()));
    assert!(spilled_back(
        sizes.iter().cloned().map(Vec::into_boxed_slice).collect()
    ));
    let strings: Vec<String> = sizes.iter().map(|b| "é".repeat(b.len() / 2)).collect();
    assert!(spilled_back(strings));
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for the spill");
        thread::sleep(Duration::from_millis(1));
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for rx_dir in fs::read_dir(dir).expect("the spill directory").flatten() {
        if rx_dir.path().is_dir() {
            for file in fs::read_dir(rx_dir.path())
                .expect("rx's directory")
                .flatten()
            {
                if file.file_name().to_string_lossy().ends_with(".spill") {
                    files.push(file.path());
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_string_record_that_is_not_utf8_is_a_decode_fault() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let d = Builder::new()
        .bound(64)
        .spill_to(tmp.path())
        .memory_capacity(1)
        .segment_size(4096)
        .build_spilling::<String>()
        .expect("a spilling dispatcher");
    let (tx, rx) = d.new("tx", "rx");
    let value = |i: usize| format!("{i:0>40}");
    for i in 0..200 {
        tx.send(value(i)).expect("rx is alive");
    }
    drop(tx);
    wait_until(|| rx.spill_stats().expect("spilling").on_disk == 199);
    // The first record of the first segment: len | crc | stamp | varint(40) | 40 bytes. Make
    // its text invalid UTF-8 and fix the checksum, so only the decoder can notice.
    let first = &segment_files(tmp.path())[0];
    let mut bytes = fs::read(first).expect("the segment");
    let record = SEGMENT_HEADER;
    let text = record + 8 + 8 + 1;
    assert_eq!(bytes[text - 1], 40, "the string's length");
    bytes[text] = 0xff;
    let body_len = u32::from_le_bytes(bytes[record..record + 4].try_into().expect("4 bytes"));
    let crc = crc32fast::hash(&bytes[record + 8..record + 8 + body_len as usize]);
    bytes[record + 4..record + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(first, bytes).expect("the segment rewritten");

    let mut got = Vec::new();
    let mut faults = Vec::new();
    loop {
        match rx.recv_checked() {
            Ok((Some(v), stamp)) => got.push((v, stamp)),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => faults.push(fault),
            Err(RecvCheckedError::Disconnected) => break,
        }
    }
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].kind, FaultKind::Decode);
    for (v, stamp) in &got {
        assert_eq!(*v, value(stamp - 1), "a wrong value was delivered");
    }
    assert_eq!(got.len() as u64 + faults[0].messages_lost, 200);
}
