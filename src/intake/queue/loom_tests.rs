//! Loom models of the intake queue (see `crate::intake::queue`): every interleaving of its
//! producers and its consumer (bounded by `LOOM_MAX_PREEMPTIONS`). A lost wake-up shows as a
//! deadlock, which loom reports; a slot accessed without a happens-before edge shows as a race.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib intake::queue::loom
//! ```

use super::*;

use loom::thread;

/// The dispatcher's loop in miniature: take, wake producers after each take, sleep when
/// empty, stop when every producer is gone.
fn consume(rx: &mut IntakeReceiver<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(value) => {
                got.push(value);
                rx.wake_producers();
            }
            Err(Taken::Empty) => rx.sleep(None, || false),
            Err(Taken::Disconnected) => return got,
        }
    }
}

/// Two producers and a sleeping consumer: both values arrive, the consumer is woken for each,
/// and it learns when the producers are gone.
#[test]
fn two_producers_wake_a_sleeping_consumer() {
    loom::model(|| {
        let (tx, mut rx) = intake_queue::<u32>(2);
        let other = tx.clone();
        let first = thread::spawn(move || tx.send(1, None).expect("consumer alive"));
        let second = thread::spawn(move || other.send(2, None).expect("consumer alive"));
        let mut got = consume(&mut rx);
        first.join().expect("first");
        second.join().expect("second");
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// A producer that must wait for room (bound 1, two values) is woken by the consumer's take.
#[test]
fn a_producer_waits_for_room_and_is_woken() {
    loom::model(|| {
        let (tx, mut rx) = intake_queue::<u32>(1);
        let producer = thread::spawn(move || {
            tx.send(1, None).expect("consumer alive");
            tx.send(2, None).expect("consumer alive");
        });
        assert_eq!(consume(&mut rx), [1, 2]);
        producer.join().expect("producer");
    });
}

/// Bound 0: `send` returns only after the consumer took the message.
#[test]
fn rendezvous_returns_after_the_take() {
    loom::model(|| {
        let (tx, mut rx) = intake_queue::<u32>(0);
        let producer = thread::spawn(move || {
            tx.send(5, None).expect("consumer alive");
            // The take's `head` store happened-before this return.
            assert_eq!(tx.queue.head.load(Ordering::Relaxed), 1);
        });
        assert_eq!(consume(&mut rx), [5]);
        producer.join().expect("producer");
    });
}

/// A producer waiting for room learns that the consumer is gone, and keeps its value.
#[test]
fn consumer_leaving_wakes_a_waiting_producer() {
    loom::model(|| {
        let (tx, rx) = intake_queue::<u32>(1);
        tx.send(1, None).expect("room");
        let leaver = thread::spawn(move || drop(rx));
        assert_eq!(tx.send(2, None), Err(Refused::Gone(2)));
        leaver.join().expect("leaver");
    });
}

/// A control message announced and rung wakes the sleeping consumer (the doorbell the
/// control channel shares with the data queue).
#[test]
fn a_control_announcement_wakes_the_consumer() {
    loom::model(|| {
        let (tx, rx) = intake_queue::<u32>(1);
        let announcer = thread::spawn(move || {
            tx.announce_control();
            tx.ring();
            // Keep a producer alive, so only the announcement can end the wait.
            tx
        });
        while !rx.control_pending() {
            rx.sleep(None, || rx.control_pending());
        }
        rx.control_taken();
        drop(announcer.join().expect("announcer"));
    });
}
