//! Unit tests of the intake queue; they also run under Miri
//! (`cargo +nightly miri test --lib intake::queue`).

use super::*;

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::Arc as StdArc;
use std::thread;

/// Counts its drops, to prove every value is dropped exactly once.
struct Counted(StdArc<StdAtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn messages() -> u32 {
    if cfg!(miri) {
        60
    } else {
        20_000
    }
}

#[test]
fn holds_exactly_its_bound() {
    for bound in [1, 3, 4, 5] {
        let (tx, mut rx) = intake_queue(bound);
        for i in 0..bound {
            tx.send(i, None).expect("room");
        }
        let past = std::time::Instant::now();
        assert_eq!(
            tx.send(99, Some(past)),
            Err(Refused::Timeout(99)),
            "bound {bound}"
        );
        assert_eq!(rx.len(), bound);
        assert_eq!(rx.try_recv(), Ok(0));
        tx.send(99, Some(past)).expect("room after a take");
        assert_eq!(rx.len(), bound);
    }
}

#[test]
fn keeps_order_across_laps() {
    let (tx, mut rx) = intake_queue(3);
    let mut next = 0;
    for i in 0..100u32 {
        if tx.send(i, Some(std::time::Instant::now())).is_err() {
            assert_eq!(rx.try_recv(), Ok(next));
            next += 1;
            tx.send(i, None).expect("room");
        }
    }
    while let Ok(value) = rx.try_recv() {
        assert_eq!(value, next);
        next += 1;
    }
    assert_eq!(next, 100);
}

#[test]
fn positions_wrap_around_usize() {
    let (tx, mut rx) = intake_queue::<u32>(2);
    let start = usize::MAX - 3;
    tx.queue.head.store(start, Ordering::Relaxed);
    tx.queue.tail.store(start, Ordering::Relaxed);
    rx.head = start;
    for round in 0..5u32 {
        tx.send(2 * round, None).expect("room");
        tx.send(2 * round + 1, None).expect("room");
        assert_eq!(rx.try_recv(), Ok(2 * round));
        assert_eq!(rx.try_recv(), Ok(2 * round + 1));
        assert_eq!(rx.try_recv(), Err(Taken::Empty));
    }
}

#[test]
fn disconnects_after_the_last_sender_once_drained() {
    let (tx, mut rx) = intake_queue(4);
    let second = tx.clone();
    tx.send(1, None).expect("room");
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(Taken::Empty), "a sender is left");
    second.send(2, None).expect("room");
    drop(second);
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(Taken::Disconnected));
}

#[test]
fn senders_get_their_value_back_when_the_dispatcher_is_gone() {
    let (tx, rx) = intake_queue(1);
    tx.send(1, None).expect("room");
    drop(rx);
    assert_eq!(tx.send(2, None), Err(Refused::Gone(2)));
}

#[test]
fn values_not_taken_are_dropped_once() {
    let drops = StdArc::new(StdAtomicUsize::new(0));
    let (tx, mut rx) = intake_queue(4);
    for _ in 0..3 {
        tx.send(Counted(drops.clone()), None).ok().expect("room");
    }
    drop(rx.try_recv());
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    drop(rx);
    drop(tx);
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}

#[test]
fn many_senders_one_consumer_nothing_lost_each_senders_order_kept() {
    let count = messages();
    let (tx, mut rx) = intake_queue::<(u32, u32)>(8);
    let senders: Vec<_> = (0..3)
        .map(|who| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..count {
                    tx.send((who, i), None).expect("consumer alive");
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u32; 3];
    loop {
        match rx.try_recv() {
            Ok((who, i)) => {
                assert_eq!(i, next[who as usize], "sender {who} out of order");
                next[who as usize] += 1;
            }
            Err(Taken::Empty) => {
                rx.wake_producers();
                rx.sleep(Some(std::time::Duration::from_millis(1)), || false);
            }
            Err(Taken::Disconnected) => break,
        }
    }
    for sender in senders {
        sender.join().expect("sender");
    }
    assert_eq!(next, [count; 3]);
}

#[test]
fn rendezvous_returns_only_once_taken() {
    let (tx, mut rx) = intake_queue::<u32>(0);
    let consumer = thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.try_recv() {
                Ok(value) => {
                    got.push(value);
                    rx.wake_producers();
                }
                Err(_) => rx.sleep(Some(std::time::Duration::from_millis(1)), || false),
            }
        }
        got
    });
    for value in 0..3u32 {
        tx.send(value, None).expect("consumer alive");
        // Returned only once the consumer's take moved `head` past this message.
        let head = tx.queue.head.load(Ordering::SeqCst);
        assert!(
            head > value as usize,
            "send of {value} returned at head {head}"
        );
    }
    assert_eq!(consumer.join().expect("consumer"), [0, 1, 2]);
}

#[test]
fn rendezvous_sender_takes_its_message_back_if_the_dispatcher_leaves() {
    let (tx, rx) = intake_queue::<u32>(0);
    let leaver = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(20));
        drop(rx);
    });
    assert_eq!(tx.send(7, None), Err(Refused::Gone(7)));
    leaver.join().expect("leaver");
}

#[test]
fn a_sender_waiting_for_room_is_woken_by_a_take() {
    let (tx, mut rx) = intake_queue::<u32>(1);
    tx.send(0, None).expect("room");
    let waiter = thread::spawn(move || tx.send(1, None));
    thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(rx.try_recv(), Ok(0));
    rx.wake_producers();
    assert_eq!(
        waiter.join().expect("waiter"),
        Ok(1),
        "its position: one message was queued before it"
    );
    assert_eq!(rx.try_recv(), Ok(1));
}
