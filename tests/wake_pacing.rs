//! Paced wake-ups (`Builder::watermark_wake_interval`): a receiver asleep in `recv` is woken
//! for clock-only moves at most once per interval, never for data later than at once, and never
//! later than the interval, even while the dispatcher is stalled on another receiver's full
//! inbox. (With few readers asleep, as here, the interval is not stretched.) The pacing rules
//! themselves, the stretch for many readers included, are unit-tested in
//! `src/engine/waking.rs`; these run real threads against a real dispatcher.

use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver};

/// Generous: a wake-up owed for longer than this is a lost one.
const PATIENCE: Duration = Duration::from_secs(10);

/// Reads `rx` with blocking `recv`s, on a thread of its own, until a watermark or data at or
/// past `stamp`; what it read, or a failure if that takes longer than `PATIENCE` (a `recv`
/// nobody wakes would block for ever; a `recv_timeout` would find the clock by itself when its
/// own timeout ends, and so hide a lost wake-up).
fn read_until(rx: ClockedReceiver<u32>, stamp: usize) -> Vec<(Option<u32>, usize)> {
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(item) = rx.recv() {
            seen.push(item);
            if item.1 >= stamp {
                break;
            }
        }
        // The test may have given up already.
        let _ = done.send(seen);
    });
    result
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("no wake-up for stamp {stamp} within {PATIENCE:?}"))
}

/// `b` sleeps in `recv` and is woken by stamp 1 (the first wake-up, at once); stamp 2 then
/// comes within the interval, so its wake-up is owed. It must be paid by the deadline whatever
/// the dispatcher does next: wait for the intake (`stall: false`), or block on `a`'s full inbox
/// (`stall: true`: stamps 1 and 2 fill it, 3 stalls the dispatcher with the clock at 2, 4 waits
/// in the intake, 5 blocks the sender).
fn owed_wake_up_is_paid(interval: Duration, stall: bool) {
    let d = Builder::new()
        .bound(1)
        .inbox_capacity(2)
        .watermark_wake_interval(interval)
        .build::<u32>();
    let (tx_a, rx_a) = d.new("tx_a", "rx_a");
    let (_tx_b, rx_b) = d.new("tx_b", "rx_b");
    let reader = thread::spawn(move || read_until(rx_b, 2));
    let sender = thread::spawn(move || {
        // The pauses let b fall asleep before each stamp, so the paced path is the one taken.
        thread::sleep(Duration::from_millis(50));
        tx_a.send(1).expect("a alive");
        thread::sleep(Duration::from_millis(50));
        let last = if stall { 5 } else { 2 };
        for value in 2..=last {
            if tx_a.send(value).is_err() {
                break;
            }
        }
    });
    let seen = reader.join().expect("reader");
    assert_eq!(
        seen.last(),
        Some(&(None, 2)),
        "{interval:?} {stall}: {seen:?}"
    );
    assert!(seen.iter().all(|(data, _)| data.is_none()));
    // Unstall: with a's receiver gone the dispatcher drops what was for it.
    drop(rx_a);
    sender.join().expect("sender");
}

#[test]
fn an_owed_wake_up_is_paid_while_the_dispatcher_waits_for_work() {
    owed_wake_up_is_paid(Duration::from_millis(300), false);
    owed_wake_up_is_paid(Duration::ZERO, false);
}

#[test]
fn an_owed_wake_up_is_paid_while_the_dispatcher_is_stalled_on_a_full_inbox() {
    owed_wake_up_is_paid(Duration::from_millis(300), true);
    owed_wake_up_is_paid(Duration::ZERO, true);
}

/// With an interval of an hour, clock-only wake-ups are held back after the first, but data
/// still wakes its receiver at once, round after round.
#[test]
fn data_is_never_paced() {
    let d = Builder::new()
        .bound(4)
        .watermark_wake_interval(Duration::from_secs(3600))
        .build::<u32>();
    let (tx_a, rx_a) = d.new("tx_a", "rx_a");
    let (tx_b, rx_b) = d.new("tx_b", "rx_b");
    let (got, data) = std::sync::mpsc::channel();
    thread::spawn(move || {
        // Blocking reads: see `read_until` for why not `recv_timeout`.
        while let Ok(item) = rx_b.recv() {
            if let (Some(value), _) = item {
                if got.send(value).is_err() {
                    return;
                }
            }
        }
    });
    for round in 0..20 {
        // A clock-only move for b (paced after the first), then data for b (never paced).
        tx_a.send(round).expect("a alive");
        // (a sees b's stamps as watermarks: read on to its own data.)
        let own = loop {
            if let (Some(value), _) = rx_a.recv_timeout(PATIENCE).expect("a") {
                break value;
            }
        };
        assert_eq!(own, round);
        // Let b fall asleep again.
        thread::sleep(Duration::from_millis(5));
        tx_b.send(round).expect("b alive");
        let value = data
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("round {round}: b was not woken for its data"));
        assert_eq!(value, round);
    }
}

/// Receivers asleep in `recv` while another pair streams: each keeps learning of the clock
/// (liveness under pacing), in increasing order, and sees the final clock before its close.
#[test]
fn sleepers_keep_up_with_a_stream() {
    const READERS: usize = 8;
    const MESSAGES: u32 = 20_000;
    let d = Builder::new()
        .bound(64)
        .watermark_wake_interval(Duration::from_millis(1))
        .build::<u32>();
    let (tx, rx) = d.new("tx", "rx");
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for i in 0..READERS {
        let (etx, erx) = d.new(format!("etx{i}"), format!("erx{i}"));
        senders.push(etx);
        readers.push(thread::spawn(move || {
            let mut stamps = Vec::new();
            loop {
                match erx.recv_timeout(PATIENCE) {
                    Ok((None, stamp)) => stamps.push(stamp),
                    Ok((Some(_), _)) => panic!("no data was sent to a sleeper"),
                    Err(RecvTimeoutError::Disconnected) => return stamps,
                    Err(RecvTimeoutError::Timeout) => panic!("a sleeper was never woken"),
                }
            }
        }));
    }
    let stream = thread::spawn(move || {
        for value in 0..MESSAGES {
            tx.send(value).expect("receiver alive");
        }
    });
    let mut got = 0;
    while got < MESSAGES {
        if let (Some(value), _) = rx.recv_timeout(PATIENCE).expect("the stream flows") {
            assert_eq!(value, got);
            got += 1;
        }
    }
    stream.join().expect("stream");
    drop(senders);
    for reader in readers {
        let stamps = reader.join().expect("reader");
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "increasing");
        assert_eq!(stamps.last(), Some(&(MESSAGES as usize)), "the final clock");
    }
}
