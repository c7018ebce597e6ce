//! Loom models of the ring: every interleaving of one writer and one reader (bounded by
//! `LOOM_MAX_PREEMPTIONS`), with loom checking each slot access for data races.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib ring::loom
//! ```

use super::*;

use loom::thread;

/// Pops until `count` values came (yielding while empty), then returns them and what the
/// next pop says.
fn drain(reader: &RingReader<u32>, count: usize) -> (Vec<u32>, Result<u32, Popped>) {
    let mut got = Vec::new();
    while got.len() < count {
        match reader.try_pop() {
            Ok(value) => got.push(value),
            Err(Popped::Empty) => thread::yield_now(),
            Err(Popped::Disconnected) => break,
        }
    }
    (got, reader.try_pop())
}

/// A writer that must park twice (capacity 1, three values) and a reader: everything arrives,
/// in order, and no wake-up is lost (a lost one deadlocks, which loom reports).
#[test]
fn blocking_writer_delivers_in_order() {
    loom::model(|| {
        let (mut writer, reader) = ring::<u32>(1);
        let producer = thread::spawn(move || {
            for value in 0..3 {
                writer.push_blocking(value, None).expect("reader alive");
            }
        });
        let (got, _) = drain(&reader, 3);
        assert_eq!(got, [0, 1, 2]);
        producer.join().expect("producer");
        assert_eq!(reader.try_pop(), Err(Popped::Disconnected));
    });
}

/// The reader takes runs while the writer pushes: order holds and each value comes once.
#[test]
fn runs_against_a_pushing_writer() {
    loom::model(|| {
        let (mut writer, reader) = ring::<u32>(2);
        let producer = thread::spawn(move || {
            for value in 0..3 {
                writer.push_blocking(value, None).expect("reader alive");
            }
        });
        let mut got = Vec::new();
        loop {
            match reader.pop_run(2, |value| got.push(value)) {
                Ok(_) => {}
                Err(Popped::Empty) => thread::yield_now(),
                Err(Popped::Disconnected) => break,
            }
        }
        producer.join().expect("producer");
        assert_eq!(got, [0, 1, 2]);
    });
}

/// A writer parked on a full ring is woken when the reader leaves, and gets its value back.
#[test]
fn reader_leaving_wakes_a_parked_writer() {
    loom::model(|| {
        let (mut writer, reader) = ring::<u32>(1);
        writer.try_push(0).expect("room");
        let leaver = thread::spawn(move || drop(reader));
        assert_eq!(writer.push_blocking(1, None), Err(Refused::Gone(1)));
        leaver.join().expect("leaver");
    });
}

/// The writer leaving while the reader looks: the reader sees every value, then
/// `Disconnected`, never `Disconnected` with a value still inside.
#[test]
fn writer_leaving_is_seen_after_its_values() {
    loom::model(|| {
        let (mut writer, reader) = ring::<u32>(2);
        let producer = thread::spawn(move || {
            writer.try_push(7).expect("room");
            writer.try_push(8).expect("room");
        });
        let mut got = Vec::new();
        loop {
            match reader.try_pop() {
                Ok(value) => got.push(value),
                Err(Popped::Empty) => thread::yield_now(),
                Err(Popped::Disconnected) => break,
            }
        }
        producer.join().expect("producer");
        assert_eq!(got, [7, 8]);
    });
}
