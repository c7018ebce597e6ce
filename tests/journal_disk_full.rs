//! A journal that cannot write: `Always` senders get a typed error with their value back,
//! nothing acknowledged is lost, and the dispatcher keeps serving.
//!
//! The disk is "full" for one child process: this test binary run again with
//! `setrlimit(RLIMIT_FSIZE)` at 8 KiB and SIGXFSZ ignored, so a write that would make a file
//! larger fails with `EFBIG`. Messages of 1 KiB fit (a full segment is retried in a fresh
//! one); messages of 16 KiB can never be written. The child sends both kinds and prints what
//! happened to each; the test then reopens the journal with no limit and checks it.

#![cfg(unix)]

use std::process::Command;
use std::time::Duration;

use clocked_dispatch::{Builder, Durability, SendErrorKind};

mod support;

const DIR_VAR: &str = "CLOCKED_DISK_FULL_DIR";
const MESSAGES: u64 = 60;

/// Message `n`: 16 KiB when `n % 3 == 2` (never fits), else 1 KiB; its first 8 bytes are `n`.
fn message(n: u64) -> Vec<u8> {
    let len = if n % 3 == 2 { 16 << 10 } else { 1 << 10 };
    let mut bytes = vec![(n % 251) as u8; len];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}

fn number(bytes: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(n)
}

#[test]
#[ignore = "run as a child process by the disk-full test"]
fn disk_full_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    // Before any journal file is opened.
    support::rlimit::limit_file_size(8 << 10);
    let d = Builder::new()
        .bound(8)
        .inbox_capacity(1024)
        .journal(&dir)
        .durability(Durability::Always)
        .build_journaled::<Vec<u8>>()
        .expect("open");
    let (tx, rx) = d.new("tx", "rx");
    for n in 0..MESSAGES {
        match tx.send(message(n)) {
            Ok(()) => println!("ack {n}"),
            Err(e) => {
                let SendErrorKind::JournalFailed { kind } = e.kind() else {
                    panic!("message {n}: unexpected {e}");
                };
                let back = e.into_inner();
                assert_eq!(back, message(n), "the value comes back whole");
                println!("refused {n} {kind:?}");
            }
        }
    }
    // Still serving: what was stored was delivered, in order.
    drop(tx);
    let mut delivered = Vec::new();
    while let Ok((value, _)) = rx.recv_timeout(Duration::from_secs(5)) {
        if let Some(bytes) = value {
            delivered.push(number(&bytes));
        }
    }
    println!(
        "delivered {}",
        delivered
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("unjournaled {}", d.stats().unjournaled);
}

#[test]
fn a_journal_that_cannot_write_refuses_with_the_value_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "disk_full_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    let mut delivered = Vec::new();
    let mut unjournaled = None;
    for line in stdout.lines() {
        // The harness prints "test disk_full_child ... " before the child's first line.
        let line = line.rsplit("... ").next().unwrap_or(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ack", n] => acked.push(n.parse::<u64>().unwrap()),
            ["refused", n, kind] => {
                assert!(kind.contains("FileTooLarge"), "{line}");
                refused.push(n.parse::<u64>().unwrap());
            }
            ["delivered", list] => {
                delivered = list.split(',').map(|n| n.parse::<u64>().unwrap()).collect()
            }
            ["unjournaled", n] => unjournaled = Some(n.parse::<u64>().unwrap()),
            _ => {}
        }
    }
    let expected_acked: Vec<u64> = (0..MESSAGES).filter(|n| n % 3 != 2).collect();
    let expected_refused: Vec<u64> = (0..MESSAGES).filter(|n| n % 3 == 2).collect();
    assert_eq!(acked, expected_acked, "{stdout}");
    assert_eq!(refused, expected_refused);
    assert_eq!(
        delivered, expected_acked,
        "refused messages are never delivered"
    );
    assert_eq!(unjournaled, Some(refused.len() as u64));

    // With the limit gone: every acknowledged message is in the journal, nothing else.
    let d = Builder::new()
        .bound(8)
        .inbox_capacity(1024)
        .journal(dir.path())
        .build_journaled::<Vec<u8>>()
        .unwrap();
    let report = d.recovery().unwrap().clone();
    assert!(report.gaps.is_empty(), "{report:?}");
    let (tx, rx) = d.new("tx", "rx");
    tx.send(vec![0xff; 8]).unwrap();
    let mut replayed = Vec::new();
    loop {
        let (value, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        match value {
            Some(bytes) if bytes == vec![0xff; 8] => break,
            Some(bytes) => {
                assert_eq!(bytes, message(number(&bytes)), "whole and intact");
                replayed.push(number(&bytes));
            }
            None => {}
        }
    }
    assert_eq!(replayed, expected_acked);
}
