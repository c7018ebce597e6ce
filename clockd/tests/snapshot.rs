//! `clockd journal snapshot` of a journal whose dispatcher keeps writing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

#[test]
fn a_snapshot_of_a_running_dispatcher_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let d = open::<u64>(dir.path(), 64 << 10);
    let (tx, rx) = d.new("tx", "rx");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut v = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tx.send(v).unwrap();
                v += 1;
                if v.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            v
        })
    };
    let reader = std::thread::spawn(move || while rx.recv().is_ok() {});
    let outs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut reports = Vec::new();
    for out in &outs {
        std::thread::sleep(Duration::from_millis(30));
        let copy = out.path().join("copy");
        let run = clockd([
            "journal".as_ref(),
            "snapshot".as_ref(),
            dir.path().as_os_str(),
            copy.as_os_str(),
        ]);
        assert_eq!(code(&run), 0, "{}", stderr(&run));
        reports.push(stdout(&run));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    reader.join().unwrap();
    d.join();

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
            clock >= last_clock && clock as u64 <= sent,
            "{clock} of {sent}"
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

        let d = open::<u64>(&copy, 64 << 10);
        let recovery = d.recovery().unwrap().clone();
        assert_eq!(recovery.truncated_bytes, 0, "{recovery:?}");
        assert!(recovery.gaps.is_empty(), "{recovery:?}");
        assert_eq!(recovery.last_stamp, clock);
        let (_tx, rx) = d.new("tx", "rx");
        let values: Vec<u64> = drain(&rx).into_iter().map(|g| g.0).collect();
        assert_eq!(values, (0..clock as u64).collect::<Vec<_>>());
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
