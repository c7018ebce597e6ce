//! clocked-dispatch 4.0.2's own tests, rewritten for this crate, plus the failure modes of
//! 4.0.2 that this crate removes (each test says which).

use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use clocked_dispatch::{HandleError, Mode, SendErrorKind};

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn can_send_after_recv_drop() {
    let d = clocked_dispatch::new(1);
    let (_tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    drop(rx_a);
    tx_b.send(10).unwrap();
    assert_eq!(rx_b.recv().unwrap().0, Some(10));
}

#[test]
fn send_after_recv_drop_returns_the_value() {
    let d = clocked_dispatch::new(1);
    let (tx_a, rx_a) = d.new("atx", "arx");
    drop(rx_a);
    let err = tx_a.send(7).unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::ReceiverGone);
    assert_eq!(err.into_inner(), 7);
    let err = tx_a.forward(Some(8), 1).unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::ReceiverGone);
}

#[test]
fn recv_drop_unblocks_broadcaster() {
    let d = clocked_dispatch::new(1);
    let (tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    let tx_a = tx_a.into_broadcaster();

    // Fill b's inbox and the intake, so the dispatcher blocks on b.
    let filler = thread::spawn(move || {
        for _ in 0..20 {
            if tx_b.send("b").is_err() {
                break;
            }
        }
    });
    thread::sleep(Duration::from_millis(100));
    drop(rx_b);

    tx_a.broadcast("a").unwrap();
    loop {
        let (value, _) = rx_a.recv_timeout(PATIENCE).expect("dispatcher stalled");
        if let Some(value) = value {
            assert_eq!(value, "a");
            break;
        }
    }
    filler.join().unwrap();
    assert!(
        d.stats().undeliverable >= 1,
        "b's payloads were dropped and counted"
    );
}

#[test]
fn can_forward_after_recv_drop() {
    let d = clocked_dispatch::new(1);
    let (_tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    drop(rx_a);
    tx_b.forward(Some(10), 1).unwrap();
    assert_eq!(rx_b.recv(), Ok((Some(10), 1)));
}

#[test]
fn forward_with_no_senders() {
    let d = clocked_dispatch::new(1);
    let (tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    tx_a.forward(Some(1), 1).unwrap();
    drop(tx_a);
    drop(tx_b);
    assert_eq!(rx_a.recv(), Ok((Some(1), 1)));
    assert_eq!(rx_b.recv(), Ok((None, 1)));
    assert_eq!(rx_a.recv(), Err(RecvError));
    assert_eq!(rx_b.recv(), Err(RecvError));
}

#[test]
fn broadcast_forward_then_drop() {
    let d = clocked_dispatch::new(1);
    let (tx, rx) = d.new("tx", "rx");
    let tx = tx.into_broadcaster();
    tx.broadcast_forward(Some("a"), 1).unwrap();
    tx.broadcast_forward(Some("b"), 2).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok((Some("a"), 1)));
    assert_eq!(rx.recv(), Ok((Some("b"), 2)));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn multisend_thread_interleaving() {
    for _ in 0..1000 {
        let d = clocked_dispatch::new(20);
        let (tx_a, rx) = d.new("tx_a", "rx");
        let tx_b = tx_a.clone("tx_b");
        let t_a = thread::spawn(move || {
            tx_a.forward(Some("c_1"), 1).unwrap();
            tx_a.forward(Some("c_3"), 3).unwrap();
            tx_a.forward(Some("a_1"), 5).unwrap();
        });
        let t_b = thread::spawn(move || {
            tx_b.forward(Some("c_2"), 2).unwrap();
            tx_b.forward(Some("b_1"), 4).unwrap();
            tx_b.forward(Some("a_2"), 6).unwrap();
        });
        let expected = ["c_1", "c_2", "c_3", "b_1", "a_1", "a_2"];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(rx.recv(), Ok((Some(*want), i + 1)));
        }
        assert_eq!(rx.recv(), Err(RecvError));
        t_a.join().unwrap();
        t_b.join().unwrap();
    }
}

#[test]
fn seeded_stamps() {
    let d = clocked_dispatch::new_with_seed(1, 69105);
    let (tx, rx) = d.new("tx", "rx");
    tx.send("a").unwrap();
    tx.send("b").unwrap();
    assert_eq!(rx.recv(), Ok((Some("a"), 69106)));
    assert_eq!(rx.recv(), Ok((Some("b"), 69107)));
}

#[test]
fn seeded_forwarding_starts_after_the_seed() {
    let d = clocked_dispatch::new_with_seed(4, 100);
    let (tx, rx) = d.new("tx", "rx");
    assert_eq!(
        tx.forward(Some('x'), 100).unwrap_err().kind(),
        SendErrorKind::StaleStamp {
            stamp: 100,
            released: 100
        }
    );
    tx.forward(Some('y'), 102).unwrap();
    tx.forward(Some('x'), 101).unwrap();
    assert_eq!(rx.recv(), Ok((Some('x'), 101)));
    assert_eq!(rx.recv(), Ok((Some('y'), 102)));
}

// ---- 4.0.2 failure modes that are gone ----

/// 4.0.2 deadlocks on any message with bound 0.
#[test]
fn bound_zero_delivers() {
    let d = clocked_dispatch::new(0);
    let (tx, rx) = d.new("tx", "rx");
    let (_tx_b, rx_b) = d.new("btx", "brx");
    let sender = thread::spawn(move || {
        for i in 0..100 {
            tx.send(i).unwrap();
        }
    });
    for i in 0..100 {
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap().0, Some(i));
    }
    sender.join().unwrap();
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(rx_b.recv_timeout(PATIENCE), Ok((None, 100)));
}

/// 4.0.2: dropping a sender with a full intake, before the receiver reads, deadlocks.
#[test]
fn dropping_a_sender_never_blocks() {
    let d = clocked_dispatch::new(1);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(1).unwrap(); // inbox (capacity 1) holds it
    tx.send(2).unwrap(); // the dispatcher blocks pushing it; intake empty again
    tx.send(3).unwrap(); // intake full
    drop(tx); // must return although nobody reads yet
    let got: Vec<_> = rx.map(|(v, _)| v.unwrap()).collect();
    assert_eq!(got, vec![1, 2, 3]);
}

/// 4.0.2: a closed receiver returns `(None, ts)` again when other pairs send.
#[test]
fn close_is_sticky() {
    let d = clocked_dispatch::new(4);
    let (tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, mut rx_b) = d.new("btx", "brx");
    tx_a.send(1).unwrap();
    drop(tx_a);
    assert_eq!(rx_a.recv(), Ok((Some(1), 1)));
    assert_eq!(rx_a.recv(), Err(RecvError));
    for i in 0..10 {
        tx_b.send(i).unwrap();
        let data = rx_b.find(|(v, _)| v.is_some());
        assert_eq!(data, Some((Some(i), i as usize + 2)));
    }
    assert_eq!(rx_a.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx_a.recv(), Err(RecvError));
}

/// 4.0.2: `clone` after the receiver's drop panics the dispatcher thread.
#[test]
fn clone_after_receiver_drop_is_an_error_not_a_panic() {
    let d = clocked_dispatch::new(4);
    let (tx, rx) = d.new("tx", "rx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    drop(rx);
    assert_eq!(
        tx.try_clone("again").unwrap_err(),
        HandleError::ReceiverGone
    );
    let clone = tx.clone("again");
    assert_eq!(
        clone.send(5).unwrap_err().kind(),
        SendErrorKind::ReceiverGone
    );
    // The dispatcher is alive and well.
    tx_b.send(6).unwrap();
    assert_eq!(rx_b.recv(), Ok((Some(6), 1)));
}

/// 4.0.2: mixing `send` and `forward` panics the dispatcher thread.
#[test]
fn mixed_modes_are_an_error() {
    let d = clocked_dispatch::new(4);
    let (tx, rx) = d.new("tx", "rx");
    assert_eq!(d.mode(), None);
    tx.forward(Some(1), 1).unwrap();
    assert_eq!(d.mode(), Some(Mode::Forwarding));
    let err = tx.send(2).unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::WrongMode {
            dispatcher: Mode::Forwarding
        }
    );
    assert_eq!(err.into_inner(), 2);
    let b = tx.clone("b").into_broadcaster();
    assert!(b.broadcast(3).is_err());
    tx.forward(Some(4), 2).unwrap();
    assert_eq!(rx.recv(), Ok((Some(1), 1)));
    assert_eq!(rx.recv(), Ok((Some(4), 2)));
}

/// 4.0.2 panics on its dispatcher thread for a duplicate receiver name.
#[test]
fn duplicate_receiver_name_is_an_error_and_freed_on_drop() {
    let d = clocked_dispatch::new::<u8>(4);
    let (_tx, rx) = d.new("tx", "rx");
    assert_eq!(
        d.try_new("tx2", "rx").unwrap_err(),
        HandleError::ReceiverNameInUse("rx".to_string())
    );
    drop(rx);
    let (tx2, rx2) = d.try_new("tx2", "rx").unwrap();
    tx2.send(9).unwrap();
    assert_eq!(rx2.recv().unwrap().0, Some(9));
}

#[test]
#[should_panic(expected = "already in use")]
fn new_panics_on_duplicate_receiver_name() {
    let d = clocked_dispatch::new::<u8>(4);
    let _pair = d.new("tx", "rx");
    let _again = d.new("tx2", "rx");
}

/// 4.0.2 tracks senders by name: two clones with one name close the channel early.
#[test]
fn duplicate_sender_names_are_harmless() {
    let d = clocked_dispatch::new(4);
    let (tx, rx) = d.new("tx", "rx");
    let twin = tx.clone("tx");
    drop(tx);
    twin.send(1).unwrap();
    assert_eq!(rx.recv(), Ok((Some(1), 1)));
    drop(twin);
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn stale_and_far_stamps_are_errors_and_duplicates_are_counted() {
    let d = clocked_dispatch::Builder::new()
        .bound(8)
        .reorder_window(10)
        .build();
    let (tx, rx) = d.new("tx", "rx");
    tx.forward(Some('a'), 1).unwrap();
    assert_eq!(rx.recv(), Ok((Some('a'), 1)));
    let err = tx.forward(Some('z'), 1).unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::StaleStamp {
            stamp: 1,
            released: 1
        }
    );
    // `forward` would wait for the window to reach 12; `try_forward` reports it at once.
    let err = tx.try_forward(Some('f'), 12).unwrap_err();
    assert!(matches!(
        err.kind(),
        SendErrorKind::StampTooFarAhead { stamp: 12, .. }
    ));
    assert_eq!(err.into_inner(), Some('f'));
    tx.forward(Some('c'), 3).unwrap();
    tx.forward(Some('C'), 3).unwrap(); // duplicate, held: dropped and counted
    tx.forward(None, 2).unwrap();
    assert_eq!(rx.recv(), Ok((Some('c'), 3)));
    // Counters are published at the end of a batch, and a reader may take a message from its
    // inbox before that: wait for the count rather than expect it with the delivery.
    let deadline = std::time::Instant::now() + PATIENCE;
    while d.stats().duplicate_stamps == 0 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(d.stats().duplicate_stamps, 1);
}

#[test]
fn recv_timeout_times_out_then_delivers() {
    let d = clocked_dispatch::new(4);
    let (tx, rx) = d.new("tx", "rx");
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.send(5).unwrap();
        tx
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok((Some(5), 1)));
    drop(t.join().unwrap());
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn watermarks_coalesce_and_last_stamp_tracks_them() {
    let d = clocked_dispatch::new(64);
    let (tx_a, rx_a) = d.new("atx", "arx");
    let (_tx_b, rx_b) = d.new("btx", "brx");
    assert_eq!(rx_b.last_stamp(), 0);
    for i in 0..50 {
        tx_a.send(i).unwrap();
    }
    for _ in 0..50 {
        rx_a.recv().unwrap();
    }
    // All 50 are delivered, so the clock is at 50 once a's last read returns.
    assert_eq!(rx_b.recv(), Ok((None, 50)));
    assert_eq!(rx_b.last_stamp(), 50);
    assert_eq!(rx_b.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx_a.try_iter().count(), 0);
}

#[test]
fn new_receiver_starts_at_the_current_clock() {
    let d = clocked_dispatch::new(8);
    let (tx, rx) = d.new("tx", "rx");
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.iter_n(5), vec![1, 2, 3, 4, 5]);
    let (_tx2, late) = d.new("tx2", "late");
    assert_eq!(late.last_stamp(), 5);
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn broadcast_needs_clone_plain_send_does_not() {
    struct NotClone(u32);
    let d = clocked_dispatch::new(4);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(NotClone(3)).unwrap();
    assert_eq!(rx.recv().unwrap().0.map(|v| v.0), Some(3));
}

/// Names of this process's live threads (Linux: `/proc/self/task/*/comm`).
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dispatcher_thread_is_named_and_exits_when_handles_are_gone() {
    let d = clocked_dispatch::Builder::new()
        .bound(4)
        .thread_name("cd-named-test")
        .build::<u8>();
    let (tx, rx) = d.new("tx", "rx");
    // The new thread names itself as it starts: wait for it.
    #[cfg(target_os = "linux")]
    wait_for(|| thread_names().iter().any(|n| n == "cd-named-test"));
    drop(d);
    drop(tx);
    assert_eq!(rx.recv(), Err(RecvError));
    // The receiver saw the close, which the thread sends on its way out; give it a moment to
    // finish exiting.
    #[cfg(target_os = "linux")]
    wait_for(|| !thread_names().iter().any(|n| n == "cd-named-test"));
}

/// Polls `condition` until it holds; fails the test after `PATIENCE`.
#[cfg(target_os = "linux")]
fn wait_for(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        thread::sleep(Duration::from_millis(5));
    }
}

trait RecvN {
    fn iter_n(&self, n: usize) -> Vec<usize>;
}

impl<T> RecvN for clocked_dispatch::ClockedReceiver<T> {
    fn iter_n(&self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.recv().unwrap().1).collect()
    }
}

/// A watermark never blocks the sender nor the dispatcher: receivers that never read do not
/// hold up a busy pair (their watermarks coalesce into one clock; nothing queues for them).
#[test]
fn idle_receivers_never_block_anyone() {
    let d = clocked_dispatch::new(8);
    let idle: Vec<_> = (0..10)
        .map(|i| d.new(format!("itx{i}"), format!("irx{i}")))
        .collect();
    let (tx, rx) = d.new("tx", "rx");
    let producer = thread::spawn(move || {
        for i in 0..100_000u32 {
            tx.send(i).unwrap();
        }
    });
    for i in 0..100_000u32 {
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap().0, Some(i));
    }
    producer.join().unwrap();
    for (_, irx) in &idle {
        // The last batch may not be published yet: at most one earlier watermark, then the
        // final one. 100,000 stamps passed this receiver by; nothing queued up for it.
        let mut reads = 0;
        loop {
            let (value, stamp) = irx.recv_timeout(PATIENCE).unwrap();
            assert_eq!(value, None);
            reads += 1;
            if stamp == 100_000 {
                break;
            }
        }
        assert!(reads <= 2, "{reads} reads: watermarks did not coalesce");
        assert_eq!(irx.try_recv(), Err(TryRecvError::Empty));
    }
}
