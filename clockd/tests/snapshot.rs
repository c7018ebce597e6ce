//! `clockd journal snapshot` of a journal whose dispatcher keeps writing.

mod common;

use std::time::Duration;

use common::*;

/// How many messages the live sender sends: paced at 64 per millisecond, it writes for half
/// a second or more.
const LIVE_MESSAGES: u64 = 30_000;

#[test]
fn a_snapshot_of_a_running_dispatcher_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let d = open::<u64>(dir.path(), 16 << 10);
    let (tx, rx) = d.new("tx", "rx");
    let sender = std::thread::spawn(move || {
        for v in 0..LIVE_MESSAGES {
            tx.send(v).unwrap();
            if (v + 1).is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let reader = std::thread::spawn(move || while rx.recv().is_ok() {});
    let mut outs = Vec::new();
    let mut reports = Vec::new();
    let mut while_sending = 0;
    while !sender.is_finished() && outs.len() < 6 {
        std::thread::sleep(Duration::from_millis(20));
        let out = tempfile::tempdir().unwrap();
        let copy = out.path().join("copy");
        let running = !sender.is_finished();
        let run = clockd([
            "journal".as_ref(),
            "snapshot".as_ref(),
            dir.path().as_os_str(),
            copy.as_os_str(),
        ]);
        if running && !sender.is_finished() {
            while_sending += 1;
        }
        assert_eq!(code(&run), 0, "{}", stderr(&run));
        reports.push(stdout(&run));
        outs.push(out);
    }
    sender.join().unwrap();
    reader.join().unwrap();
    d.join();
    assert!(
        while_sending >= 2,
        "{while_sending} snapshots while sending"
    );

    let mut last_clock = 0;
    for (out, report) in outs.iter().zip(&reports) {
        // "copied N segments (..) of DIR to OUT, clock C"
        let clock: usize = report
            .lines()
            .next()
            .and_then(|l| l.rsplit("clock ").next())
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("{report}"));
        assert!(
            clock >= last_clock && clock as u64 <= LIVE_MESSAGES,
            "{clock}"
        );
        last_clock = clock;
        let copy = out.path().join("copy");
        let verify = clockd(["journal".as_ref(), "verify".as_ref(), copy.as_os_str()]);
        assert_eq!(code(&verify), 0, "{}", stdout(&verify));
        assert!(
            !stdout(&verify).contains("torn tail"),
            "{}",
            stdout(&verify)
        );

        let d = open::<u64>(&copy, 16 << 10);
        let recovery = d.recovery().unwrap().clone();
        assert_eq!(recovery.truncated_bytes, 0, "{recovery:?}");
        assert!(recovery.gaps.is_empty(), "{recovery:?}");
        assert_eq!(recovery.last_stamp, clock);
        let (_tx, rx) = d.new("tx", "rx");
        // One message per stamp, replayed in order: the copy is a prefix of what was sent.
        let values = take(&rx, clock);
        assert!(values.iter().enumerate().all(|(i, &v)| v == i as u64));
    }
    assert!(last_clock > 0);
}

#[test]
fn a_destination_that_is_not_empty_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let known = known_journal(dir.path(), 1);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("precious"), b"keep me").unwrap();
    let err = failed(&clockd([
        "journal".as_ref(),
        "snapshot".as_ref(),
        dir.path().as_os_str(),
        out.path().as_os_str(),
    ]));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(out.path().join("precious")).unwrap(),
        b"keep me"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    known.stop();
}
