//! The batch paths: `send_all` and `recv_many` behave as repeated single calls.

use std::sync::mpsc::RecvError;
use std::thread;

use clocked_dispatch::{Mode, SendErrorKind, SEND_ALL_CHUNK};

#[test]
fn send_all_gives_the_stamps_repeated_sends_give() {
    let n = 3 * SEND_ALL_CHUNK + 5;
    let one_by_one = {
        let d = clocked_dispatch::new(8);
        let (tx, rx) = d.new("tx", "rx");
        let t = thread::spawn(move || (0..n).for_each(|v| tx.send(v).unwrap()));
        let got: Vec<_> = rx.collect();
        t.join().unwrap();
        got
    };
    let batched = {
        let d = clocked_dispatch::new(8);
        let (tx, rx) = d.new("tx", "rx");
        let t = thread::spawn(move || assert_eq!(tx.send_all(0..n).unwrap(), n));
        let got: Vec<_> = rx.collect();
        t.join().unwrap();
        got
    };
    assert_eq!(one_by_one.len(), n);
    assert_eq!(batched, one_by_one);
}

#[test]
fn send_all_to_a_dropped_receiver_hands_back_the_chunk_and_leaves_the_rest() {
    let d = clocked_dispatch::new(8);
    let (tx, rx) = d.new("tx", "rx");
    drop(rx);
    let mut values = 0..100usize;
    let err = tx.send_all(values.by_ref()).unwrap_err();
    assert_eq!(err.kind(), SendErrorKind::ReceiverGone);
    assert_eq!(err.into_inner(), (0..SEND_ALL_CHUNK).collect::<Vec<_>>());
    assert_eq!(
        values.next(),
        Some(SEND_ALL_CHUNK),
        "the rest stays in the iterator"
    );
}

#[test]
fn send_all_in_forwarding_mode_is_a_mode_error() {
    let d = clocked_dispatch::new(8);
    let (tx, _rx) = d.new("tx", "rx");
    tx.forward(Some(1), 1).unwrap();
    let err = tx.send_all(vec![2, 3]).unwrap_err();
    assert_eq!(
        err.kind(),
        SendErrorKind::WrongMode {
            dispatcher: Mode::Forwarding
        }
    );
    assert_eq!(err.into_inner(), vec![2, 3]);
}

#[test]
fn recv_many_reads_what_recv_and_try_recv_would() {
    let d = clocked_dispatch::new(16);
    let (tx_a, rx_a) = d.new("atx", "arx");
    let (tx_b, rx_b) = d.new("btx", "brx");
    let n = 2_000usize;
    let sender = thread::spawn(move || {
        for v in 0..n {
            // Interleave a's data with b's traffic, which a sees as watermarks.
            tx_a.send(v).unwrap();
            tx_b.send(v).unwrap();
        }
    });
    let drain_b = thread::spawn(move || rx_b.count());
    let mut items = Vec::new();
    let mut calls = 0;
    while let Ok(k) = rx_a.recv_many(&mut items, 32) {
        assert!((1..=32).contains(&k));
        calls += 1;
    }
    assert_eq!(
        rx_a.recv_many(&mut items, 32),
        Err(RecvError),
        "closed for good"
    );
    sender.join().unwrap();
    assert!(drain_b.join().unwrap() >= n);
    assert!(items.windows(2).all(|w| w[0].1 < w[1].1), "stamps increase");
    let data: Vec<usize> = items.iter().filter_map(|&(v, _)| v).collect();
    assert_eq!(data, (0..n).collect::<Vec<_>>());
    assert!(calls <= items.len());
    assert_eq!(rx_a.recv_many(&mut items, 0), Ok(0));
}
