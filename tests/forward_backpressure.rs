//! Issue 11, point 5: `forward` waits (parked) while its stamp is beyond the reorder window,
//! `try_forward` fails at once, `forward_timeout` waits a bounded time, and a waiting forwarder
//! is released with an error if the dispatcher thread stops.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clocked_dispatch::{Builder, SendErrorKind};

/// Long enough for a thread to reach its wait on a loaded machine; the tests are correct
/// whatever the actual interleaving, this only makes the interesting one likely.
const SETTLE: Duration = Duration::from_millis(50);

/// A bound on every wait that should end; reaching it means a hang.
const HANG: Duration = Duration::from_secs(30);

/// Two forwarders share a receiver; the even one runs ahead of a window of 8 (the odd one
/// starts late and sleeps now and then). Every message arrives once, in order, and neither
/// forwarder sees an error. Before `forward` waited, the even forwarder's sixth call (stamp
/// 10, with the clock still at 0) failed with `StampTooFarAhead`.
#[test]
fn a_forwarder_far_ahead_waits_for_the_window() {
    const LAST: usize = 10_000;
    let d = Builder::new().bound(16).reorder_window(8).build::<usize>();
    let (even, rx) = d.new("even", "rx");
    let odd = even.clone("odd");
    drop(d);
    let fast = thread::spawn(move || {
        for stamp in (2..=LAST).step_by(2) {
            even.forward(Some(stamp), stamp)?;
        }
        Ok::<_, clocked_dispatch::SendError<Option<usize>>>(())
    });
    let slow = thread::spawn(move || {
        thread::sleep(SETTLE); // `even` is now far ahead of the window, waiting
        for stamp in (1..LAST).step_by(2) {
            if stamp % 1000 == 1 {
                thread::sleep(Duration::from_millis(1));
            }
            odd.forward(Some(stamp), stamp)?;
        }
        Ok::<_, clocked_dispatch::SendError<Option<usize>>>(())
    });
    let mut expected = 1;
    let mut last_stamp = 0;
    while let Ok((value, stamp)) = rx.recv() {
        assert!(stamp > last_stamp, "stamp {stamp} after {last_stamp}");
        last_stamp = stamp;
        if let Some(value) = value {
            assert_eq!((value, stamp), (expected, expected));
            expected += 1;
        }
    }
    assert_eq!(expected, LAST + 1, "every message delivered");
    fast.join()
        .unwrap()
        .expect("the fast forwarder saw no error");
    slow.join()
        .unwrap()
        .expect("the slow forwarder saw no error");
}

/// The same with a broadcaster running ahead of a unicast forwarder.
#[test]
fn a_broadcaster_far_ahead_waits_for_the_window() {
    const LAST: usize = 2_000;
    let d = Builder::new().bound(4).reorder_window(3).build::<usize>();
    let (tx, rx) = d.new("tx", "rx");
    let all = tx.clone("all").into_broadcaster();
    drop(d);
    let fast = thread::spawn(move || {
        for stamp in (2..=LAST).step_by(2) {
            all.broadcast_forward(Some(stamp), stamp)?;
        }
        Ok::<_, clocked_dispatch::SendError<Option<usize>>>(())
    });
    let slow = thread::spawn(move || {
        thread::sleep(SETTLE);
        for stamp in (1..LAST).step_by(2) {
            tx.forward(Some(stamp), stamp)?;
        }
        Ok::<_, clocked_dispatch::SendError<Option<usize>>>(())
    });
    let got: Vec<(usize, usize)> = rx
        .filter_map(|(value, stamp)| Some((value?, stamp)))
        .collect();
    assert_eq!(got, (1..=LAST).map(|s| (s, s)).collect::<Vec<_>>());
    fast.join().unwrap().unwrap();
    slow.join().unwrap().unwrap();
}

#[test]
fn try_forward_still_reports_a_stamp_too_far_ahead() {
    let d = Builder::new().bound(4).reorder_window(4).build::<char>();
    let (tx, rx) = d.new("tx", "rx");
    let err = tx.try_forward(Some('x'), 5).unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::StampTooFarAhead {
            stamp: 5,
            released: 0,
            window: 4
        }
    );
    assert_eq!(err.into_inner(), Some('x'));
    tx.try_forward(Some('a'), 1).unwrap();
    assert_eq!(rx.recv(), Ok((Some('a'), 1)));
    tx.try_forward(Some('x'), 5).unwrap(); // 5 - 1 <= 4: in the window now

    let all = tx.clone("all").into_broadcaster();
    let err = all.try_broadcast_forward(Some('y'), 10).unwrap_err();
    assert!(matches!(
        err.kind(),
        SendErrorKind::StampTooFarAhead { stamp: 10, .. }
    ));
    assert_eq!(err.into_inner(), Some('y'));
}

#[test]
fn a_stale_stamp_fails_at_once_whichever_call() {
    let d = Builder::new().bound(4).reorder_window(4).build::<char>();
    let (tx, rx) = d.new("tx", "rx");
    tx.forward(Some('a'), 1).unwrap();
    assert_eq!(rx.recv(), Ok((Some('a'), 1)));
    // The receiver can take stamp 1 before the dispatcher publishes it at the end of its
    // batch; senders check against the published clock, so wait for it.
    let started = Instant::now();
    while d.stats().clock < 1 {
        assert!(started.elapsed() < HANG, "stamp 1 never published");
        std::thread::yield_now();
    }
    let stale = SendErrorKind::StaleStamp {
        stamp: 1,
        released: 1,
    };
    assert_eq!(tx.forward(Some('b'), 1).unwrap_err().kind(), stale);
    assert_eq!(tx.try_forward(Some('b'), 1).unwrap_err().kind(), stale);
    let err = tx.forward_timeout(Some('b'), 1, HANG).unwrap_err();
    assert_eq!(err.kind(), stale);
    assert_eq!(err.into_inner(), Some('b'));
}

#[test]
fn forward_timeout_times_out_and_hands_the_value_back() {
    let d = Builder::new().bound(4).reorder_window(2).build::<String>();
    let (tx, rx) = d.new("tx", "rx");
    let started = Instant::now();
    let err = tx
        .forward_timeout(Some("late".to_string()), 3, Duration::from_millis(30))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(err.kind(), SendErrorKind::Timeout);
    assert_eq!(err.into_inner(), Some("late".to_string()));

    let all = tx.clone("all").into_broadcaster();
    let err = all
        .broadcast_forward_timeout(Some("all".to_string()), 3, Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::Timeout);
    assert_eq!(err.into_inner(), Some("all".to_string()));

    // Once the window reaches the stamp, the same call goes through.
    tx.forward(None, 1).unwrap();
    tx.forward_timeout(Some("late".to_string()), 3, HANG)
        .unwrap();
    tx.forward(None, 2).unwrap();
    let data = rx.filter_map(|(value, stamp)| Some((value?, stamp))).next();
    assert_eq!(data, Some(("late".to_string(), 3)));
}

/// A forwarder waiting far ahead of the window when another forwarder fills the gap from a
/// thread that starts later: `forward_timeout` with a long timeout succeeds, woken by the
/// publish, well before the timeout.
#[test]
fn forward_timeout_is_woken_by_the_window_moving() {
    let d = Builder::new().bound(4).reorder_window(1).build::<u32>();
    let (tx, rx) = d.new("tx", "rx");
    let other = tx.clone("other");
    let filler = thread::spawn(move || {
        thread::sleep(SETTLE);
        other.forward(None, 1).unwrap();
    });
    let started = Instant::now();
    tx.forward_timeout(Some(2), 2, HANG).unwrap();
    assert!(started.elapsed() < HANG);
    filler.join().unwrap();
    let mut rx = rx;
    assert_eq!(rx.find(|(v, _)| v.is_some()), Some((Some(2), 2)));
}

/// A payload whose `Clone` panics: broadcasting it makes the dispatcher thread panic.
#[derive(Debug, PartialEq)]
struct Bomb(u32);

impl Clone for Bomb {
    fn clone(&self) -> Self {
        panic!("Bomb({}) cloned (this panic is part of the test)", self.0)
    }
}

/// The dispatcher thread stops (here: a user's `Clone` panics on it) while a forwarder waits
/// far ahead of the window: the forwarder wakes with `DispatcherGone` and its value, instead
/// of hanging. Everything else is dropped first, so nothing else can end the wait.
#[test]
fn a_waiting_forwarder_is_released_when_the_dispatcher_stops() {
    let d = Builder::new().bound(4).reorder_window(2).build::<Bomb>();
    let (tx_a, rx_a) = d.new("tx_a", "rx_a");
    let (tx_b, rx_b) = d.new("tx_b", "rx_b");
    let all = tx_b.into_broadcaster();
    drop(d);
    let (result_tx, result) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let outcome = tx_a.forward(Some(Bomb(5)), 5);
        // Hand the outcome over before dropping the sender.
        let _ = result_tx.send(outcome.map_err(|e| (e.kind(), e.into_inner())));
    });
    thread::sleep(SETTLE); // the waiter is parked: stamp 5 is beyond 0 + 2
    assert!(
        result.try_recv().is_err(),
        "forward returned before the window reached it"
    );
    // Stamp 1 is released at once, and cloning it for rx_a panics the dispatcher thread.
    all.broadcast_forward(Some(Bomb(1)), 1).unwrap();
    drop(all);
    let outcome = result
        .recv_timeout(HANG)
        .expect("the waiting forwarder was not released");
    assert_eq!(outcome, Err((SendErrorKind::DispatcherGone, Some(Bomb(5)))));
    waiter.join().unwrap();
    drop((rx_a, rx_b));
}
