//! `clockd journal verify`: exit code 0 when clean, 1 on damage, 2 when it cannot run.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use common::*;

fn verify(dir: &std::path::Path) -> std::process::Output {
    clockd(["journal".as_ref(), "verify".as_ref(), dir.as_os_str()])
}

/// Six messages, each in a segment of its own (value `v` at stamp `v + 1`).
fn six_segments(dir: &std::path::Path) {
    let d = open::<u64>(dir, 1);
    let (tx, rx) = d.new("tx", "rx");
    for v in 0..6 {
        tx.send(v).unwrap();
        assert_eq!(next(&rx).0, v);
    }
    drop((tx, rx));
    d.join();
}

#[test]
fn clean_is_0_a_flipped_byte_is_1_and_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let clean = verify(dir.path());
    assert_eq!(code(&clean), 0, "{}", stdout(&clean));
    let summary = stdout(&clean);
    assert!(summary.contains("6 messages): no damage"), "{summary}");
    // Not a terminal: no progress bar, nothing on stderr, over many segments.
    assert!(segments(dir.path()).len() >= 6);
    assert!(clean.stderr.is_empty(), "{}", stderr(&clean));

    // The last byte of the segment holding value 2 is that message's payload.
    let target = segments(dir.path())
        .into_iter()
        .find(|p| {
            let b = fs::read(p).unwrap();
            b.len() > 30 && b[b.len() - 1] == 2 && b[b.len() - 14] == 1
        })
        .expect("the segment of value 2");
    let mut bytes = fs::read(&target).unwrap();
    let at = bytes.len() - 1;
    bytes[at] ^= 0x08;
    fs::write(&target, &bytes).unwrap();

    let damaged = verify(dir.path());
    assert_eq!(code(&damaged), 1, "{}", stdout(&damaged));
    let text = stdout(&damaged);
    assert!(text.contains("5 messages): 1 damaged place"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("damaged: "))
        .expect("the damaged place");
    let record_start = bytes.len() - 22; // a data record of a one-byte payload is 22 bytes
    assert!(
        line.contains(&format!("{} at byte {record_start}", target.display())),
        "{line}"
    );
    assert!(line.contains("checksum mismatch"), "{line}");
}

#[test]
fn a_torn_tail_is_shown_but_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    six_segments(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    let mut file = OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(file);
    let out = verify(dir.path());
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("no damage"), "{text}");
    assert!(text.contains("torn tail (not damage)"), "{text}");
    assert!(text.contains("(7 bytes, record cut short)"), "{text}");
}

#[test]
fn a_journal_that_cannot_be_read_is_2() {
    let dir = tempfile::tempdir().unwrap();
    let err = failed(&verify(&dir.path().join("missing")));
    assert!(err.contains("missing: no such file or directory"), "{err}");
    let err = failed(&verify(dir.path()));
    assert!(err.contains("not a journal"), "{err}");
    let usage = clockd(["journal", "verify"]);
    assert_eq!(code(&usage), 2);
    let unknown = clockd(["journal", "frobnicate"]);
    assert_eq!(code(&unknown), 2);
    assert!(
        stderr(&unknown).contains("unrecognized subcommand"),
        "{}",
        stderr(&unknown)
    );
}
