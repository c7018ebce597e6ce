//! `clockd journal rewind`: a rewound receiver replays from the stamp on its next start.

mod common;

use common::*;

fn rewind(dir: &std::path::Path, receiver: &str, stamp: &str) -> std::process::Output {
    clockd([
        "journal".as_ref(),
        "rewind".as_ref(),
        dir.as_os_str(),
        receiver.as_ref(),
        stamp.as_ref(),
    ])
}

#[test]
fn a_rewound_receiver_replays_from_the_stamp_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = open::<String>(dir.path(), 64 << 20);
        let (tx, rx) = d.new("tx", "rx");
        tx.send_all((0..8).map(|i| format!("m{i}"))).unwrap();
        let got = (0..8).map(|_| next(&rx)).collect::<Vec<_>>();
        rx.commit(got[7].1).unwrap(); // everything processed
        drop((tx, rx));
        d.join();
    }
    let out = rewind_closed(dir.path(), "rx", "3");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("its next receiver replays from stamp 3"),
        "{}",
        stdout(&out)
    );
    let d = open::<String>(dir.path(), 64 << 20);
    let (_tx, rx) = d.new("tx", "rx");
    let replayed = drain(&rx);
    let expected: Vec<(String, usize)> = (2..8).map(|i| (format!("m{i}"), i + 1)).collect();
    assert_eq!(replayed, expected);
}

#[test]
fn refused_rewinds_are_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 64 << 20);
    // The dispatcher (this process) has the journal open.
    let err = failed(&rewind(dir.path(), "orders", "2"));
    assert!(err.contains("a dispatcher has the journal open"), "{err}");
    known.stop();

    let err = failed(&rewind_closed(dir.path(), "nobody", "2"));
    assert!(err.contains("no receiver named \"nobody\""), "{err}");
    let err = failed(&rewind_closed(dir.path(), "orders", "0"));
    assert!(err.contains("oldest stamp the journal holds is 1"), "{err}");
    let err = failed(&rewind_closed(dir.path(), "orders", "99"));
    assert!(err.contains("clock is only at 10"), "{err}");
    let usage = rewind(dir.path(), "orders", "-3");
    assert_eq!(code(&usage), 2);
    assert!(!stderr(&usage).contains("panicked"));

    // A mistyped directory is not turned into a journal.
    let typo = dir.path().join("jorunal");
    let err = failed(&rewind(&typo, "orders", "2"));
    assert!(err.contains("no such file or directory"), "{err}");
    assert!(!typo.exists());
}
