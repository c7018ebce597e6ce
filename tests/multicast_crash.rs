//! Crash test for journaled multicast: a child process multicasts under `Durability::Always`,
//! to a group with no members (so no message record carries the stamps, only ticks) and, every
//! 8th message, to a group with two members (one `Multicast` record naming both), printing
//! `ack S` once multicast `S` is stored. The test kills it with SIGKILL at a random moment,
//! reopens the journal and checks that the clock resumes above every acknowledged stamp (no
//! stamp is handed out twice) and that both members replay every acknowledged message they
//! were sent.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::time::Duration;

use clocked_dispatch::{Builder, Dispatcher, Durability};

const DIR_VAR: &str = "CLOCKED_MULTICAST_CRASH_DIR";
const KILLS: u64 = 8;

fn open(dir: &Path) -> Dispatcher<u64> {
    Builder::new()
        .bound(64)
        .journal(dir)
        .durability(Durability::Always)
        .journal_segment_size(64 << 10)
        .build_journaled::<u64>()
        .expect("open the journal")
}

/// The child process's body: runs until killed.
#[test]
#[ignore = "run as a child process by the crash test"]
fn multicast_crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let d = open(Path::new(&dir));
    let (tx, _rx) = d.new("tx", "member");
    let (tx2, _rx2) = d.new("tx2", "member2");
    let nobody = d.multicaster("nobody").unwrap();
    let two = d.multicaster("two").unwrap();
    two.add(&tx).unwrap();
    two.add(&tx2).unwrap();
    for stamp in 1u64.. {
        // One publisher: multicast number `stamp` gets stamp `stamp`.
        if stamp % 8 == 0 {
            two.multicast(stamp).expect("multicast");
        } else {
            nobody.multicast(stamp).expect("multicast");
        }
        println!("ack {stamp}"); // stdout is line-buffered: one write per line
    }
}

#[test]
fn killed_multicasts_leave_the_clock_above_every_acknowledged_stamp() {
    for round in 0..KILLS {
        let dir = tempfile::tempdir().unwrap();
        let child = support::child::spawn(
            "multicast_crash_child",
            &[(DIR_VAR, dir.path().as_os_str())],
        );
        // Kill points spread over the first few hundred milliseconds.
        std::thread::sleep(Duration::from_millis(30 + round * 37));
        let output = child.kill(); // SIGKILL
        let acked: u64 = output
            .lines()
            .filter_map(|line| line.strip_prefix("ack "))
            .filter_map(|n| n.parse().ok())
            .max()
            .unwrap_or(0);

        let d = open(dir.path());
        let (tx, rx) = d.new("tx", "member");
        let (_tx2, rx2) = d.new("tx2", "member2");
        // Each member replays every acknowledged multicast of the group it was in; both the
        // same ones (one record names both).
        let replay = |rx: &clocked_dispatch::ClockedReceiver<u64>| {
            let mut replayed = Vec::new();
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok((Some(value), stamp)) => {
                        assert_eq!(value as usize, stamp, "round {round}");
                        replayed.push(value);
                    }
                    Ok((None, _)) => {}
                    Err(_) => break,
                }
            }
            replayed
        };
        let replayed = replay(&rx);
        let expected: Vec<u64> = (1..=acked).filter(|s| s % 8 == 0).collect();
        assert!(
            replayed.starts_with(&expected),
            "round {round}: acked up to {acked}, replayed {replayed:?}"
        );
        assert_eq!(replay(&rx2), replayed, "round {round}");
        tx.send(u64::MAX).unwrap();
        let stamp = loop {
            if let (Some(u64::MAX), stamp) = rx.recv_timeout(Duration::from_secs(60)).unwrap() {
                break stamp;
            }
        };
        assert!(
            stamp as u64 > acked,
            "round {round}: stamp {stamp} handed out again (acked up to {acked})"
        );
    }
}
