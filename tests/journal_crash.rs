//! Crash tests: a child process sends through a journaled dispatcher and prints what it had
//! acknowledged; the test kills it with SIGKILL at a random moment, reopens the journal and
//! checks that nothing acknowledged is lost, nothing is duplicated or invented, the clock
//! resumes above every acknowledged stamp and the receiver resumes after its last commit.
//!
//! The child is this test binary run again with `--ignored --exact crash_child` and the mode
//! and directory in the environment. It has one sender (so message `v` gets stamp `v + 1`) and
//! one receiver thread, and prints, each line written out at once:
//!
//! * `got V S` when the receiver got message `V` at stamp `S`: it was written before it was
//!   delivered (synced too, under `Batch` and `Always`);
//! * `commit S` once `commit(S)` returned (every 7th stamp);
//! * `ack V` once the sender's message `V` counts as stored: after each `send` under `Always`,
//!   after a `flush` every 16 messages under `Batch` (under `None` only `got` lines count).

#![cfg(unix)]

mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, Dispatcher, Durability};

const MODE_VAR: &str = "CLOCKED_CRASH_MODE";
const DIR_VAR: &str = "CLOCKED_CRASH_DIR";
const KILLS_PER_MODE: usize = 20;
const COMMIT_EVERY: usize = 7;

fn durability(name: &str) -> Durability {
    match name {
        "batch" => Durability::Batch,
        "always" => Durability::Always,
        _ => Durability::None,
    }
}

fn open(dir: &Path, durability: Durability) -> Dispatcher<u64> {
    Builder::new()
        .bound(64)
        .inbox_capacity(1 << 16)
        .journal(dir)
        .durability(durability)
        // Small segments: kills land in rolls too.
        .journal_segment_size(64 << 10)
        .build_journaled::<u64>()
        .expect("open the journal")
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // Unbuffered enough: stdout is line-buffered, and the flush makes sure.
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The child process's body: runs until killed.
#[test]
#[ignore = "run as a child process by the crash tests"]
fn crash_child() {
    let (Ok(mode), Ok(dir)) = (std::env::var(MODE_VAR), std::env::var(DIR_VAR)) else {
        return;
    };
    let durability = durability(&mode);
    let d = open(Path::new(&dir), durability);
    let (tx, rx) = d.new("tx", "rx");
    std::thread::spawn(move || {
        while let Ok((value, stamp)) = rx.recv() {
            let Some(value) = value else { continue };
            say(format_args!("got {value} {stamp}"));
            if stamp % COMMIT_EVERY == 0 {
                rx.commit(stamp).expect("commit");
                say(format_args!("commit {stamp}"));
            }
        }
    });
    for value in 0u64.. {
        tx.send(value).expect("send");
        match durability {
            Durability::Always => say(format_args!("ack {value}")),
            Durability::Batch if value % 16 == 15 => {
                tx.flush().expect("flush");
                say(format_args!("ack {value}"));
            }
            _ => {}
        }
        if value % 1024 == 1023 {
            // Let the receiver keep up now and then, so that commits happen.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// What a killed child had printed.
#[derive(Debug, Default)]
struct Claims {
    /// (value, stamp) for every message acknowledged as stored.
    acked: Vec<(u64, usize)>,
    /// Stamps the receiver got, in order.
    got: Vec<usize>,
    last_commit: usize,
}

fn parse(output: &str) -> Claims {
    let mut claims = Claims::default();
    for line in output.lines() {
        // The harness prints "test crash_child ... " before the child's first line.
        let line = line.rsplit("... ").next().unwrap_or(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["got", value, stamp] => {
                let (value, stamp): (u64, usize) = (value.parse().unwrap(), stamp.parse().unwrap());
                assert_eq!(stamp as u64, value + 1, "one sender: stamp = value + 1");
                claims.acked.push((value, stamp));
                claims.got.push(stamp);
            }
            ["ack", value] => {
                let value: u64 = value.parse().unwrap();
                claims.acked.push((value, value as usize + 1));
            }
            ["commit", stamp] => claims.last_commit = stamp.parse().unwrap(),
            // A line cut by the kill, or the test harness's own output.
            _ => {}
        }
    }
    claims
}

/// A small xorshift, seeded from the clock: the seed is in every failure message.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn crash_and_check(mode: &str, rng: &mut Rng, seed: u64, round: usize) {
    let dir = tempfile::tempdir().unwrap();
    let child = support::child::spawn(
        "crash_child",
        &[(MODE_VAR, mode.as_ref()), (DIR_VAR, dir.path().as_os_str())],
    );
    std::thread::sleep(Duration::from_millis(20 + rng.below(250)));
    let output = child.kill(); // SIGKILL
    let claims = parse(&output);
    let context = format!(
        "mode {mode}, seed {seed}, round {round}, last commit {}",
        claims.last_commit
    );

    let d = open(dir.path(), durability(mode));
    let report = d.recovery().unwrap().clone();
    assert!(
        report.gaps.is_empty(),
        "{context}: a kill never damages the middle: {report:?}"
    );
    assert_eq!(
        report.messages as usize, report.last_stamp,
        "{context}: every stamp up to the last holds its message"
    );
    let max_acked = claims.acked.iter().map(|a| a.1).max().unwrap_or(0);
    assert!(
        report.last_stamp >= max_acked,
        "{context}: {report:?}, acked up to {max_acked}"
    );

    let (tx, rx) = d.new("tx", "rx");
    tx.send(u64::MAX).unwrap();
    let mut replayed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let sentinel_stamp = loop {
        assert!(Instant::now() < deadline, "{context}: replay stalled");
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok((Some(u64::MAX), stamp)) => break stamp,
            Ok((Some(value), stamp)) => replayed.push((value, stamp)),
            Ok((None, _)) | Err(_) => {}
        }
    };
    assert_eq!(
        sentinel_stamp,
        report.last_stamp + 1,
        "{context}: the clock resumes above the journal"
    );
    assert!(sentinel_stamp > max_acked, "{context}");
    for pair in replayed.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "{context}: in order, no duplicate, no gap"
        );
    }
    for &(value, stamp) in &replayed {
        assert_eq!(
            stamp as u64,
            value + 1,
            "{context}: nothing that was never sent"
        );
    }
    // Where the replay starts is the receiver's commit: the last one it printed, or the next
    // one it made before being killed in the middle of printing it.
    let resumed_after = replayed
        .first()
        .map_or(report.last_stamp, |first| first.1 - 1);
    let next_commit = claims
        .got
        .iter()
        .copied()
        .find(|&s| s > claims.last_commit && s % COMMIT_EVERY == 0);
    assert!(
        resumed_after == claims.last_commit || Some(resumed_after) == next_commit,
        "{context}: resumed after {resumed_after}, next commit {next_commit:?}"
    );
    let replayed_stamps: std::collections::HashSet<usize> = replayed.iter().map(|r| r.1).collect();
    for &(value, stamp) in &claims.acked {
        if stamp > resumed_after {
            assert!(
                replayed_stamps.contains(&stamp),
                "{context}: acknowledged message {value} (stamp {stamp}) lost"
            );
        }
    }
    if replayed.is_empty() {
        assert!(resumed_after >= max_acked, "{context}");
    } else {
        assert_eq!(
            replayed.last().unwrap().1,
            report.last_stamp,
            "{context}: the whole backlog"
        );
    }
}

fn crash_mode(mode: &str) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    for round in 0..KILLS_PER_MODE {
        crash_and_check(mode, &mut rng, seed, round);
    }
}

#[test]
fn killed_with_durability_none_loses_nothing_it_delivered() {
    crash_mode("none");
}

#[test]
fn killed_with_durability_batch_loses_nothing_it_flushed() {
    crash_mode("batch");
}

#[test]
fn killed_with_durability_always_loses_nothing_it_acknowledged() {
    crash_mode("always");
}
