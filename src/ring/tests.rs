//! Unit tests of the ring; they also run under Miri (`cargo +nightly miri test --lib ring`),
//! which checks every `unsafe` access against Rust's aliasing and initialisation rules.

use super::*;

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::Arc as StdArc;

/// Counts its drops, to prove every value is dropped exactly once.
struct Counted(StdArc<StdAtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Moves `count` values through many laps of a ring of `capacity`, in order.
fn laps(capacity: usize, count: u32) {
    let (mut writer, reader) = ring(capacity);
    let mut next_out = 0;
    for value in 0..count {
        if let Err(Refused::Full(value)) = writer.try_push(value) {
            assert_eq!(reader.try_pop(), Ok(next_out));
            next_out += 1;
            writer.try_push(value).expect("room after a pop");
        }
    }
    while let Ok(value) = reader.try_pop() {
        assert_eq!(value, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, count);
}

#[test]
fn holds_exactly_its_capacity_not_its_buffer_length() {
    for capacity in [1, 2, 3, 5, 8] {
        let (mut writer, reader) = ring(capacity);
        for value in 0..capacity {
            writer.try_push(value).expect("room");
        }
        assert_eq!(
            writer.try_push(99),
            Err(Refused::Full(99)),
            "capacity {capacity}"
        );
        assert_eq!(reader.try_pop(), Ok(0));
        writer.try_push(99).expect("one slot freed");
        assert_eq!(writer.try_push(100), Err(Refused::Full(100)));
    }
}

#[test]
fn keeps_order_across_many_laps() {
    for capacity in [1, 3, 4, 7] {
        laps(capacity, 200);
    }
}

#[test]
fn indices_wrap_around_usize() {
    // Start both indices just below the wrap point and run several laps across it.
    let (mut writer, reader) = ring::<u32>(3);
    let start = usize::MAX - 4;
    writer.ring.head.store(start, Ordering::Relaxed);
    writer.ring.tail.store(start, Ordering::Relaxed);
    writer.tail = start;
    writer.head_seen = start;
    reader.head.set(start);
    reader.tail_seen.set(start);
    for round in 0..5u32 {
        for i in 0..3 {
            writer.try_push(round * 3 + i).expect("room");
        }
        assert!(matches!(writer.try_push(7), Err(Refused::Full(7))));
        for i in 0..3 {
            assert_eq!(reader.try_pop(), Ok(round * 3 + i));
        }
        assert_eq!(reader.try_pop(), Err(Popped::Empty));
    }
}

#[test]
fn pop_run_takes_at_most_max_in_order() {
    let (mut writer, reader) = ring(8);
    for value in 0..6 {
        writer.try_push(value).expect("room");
    }
    let mut got = Vec::new();
    assert_eq!(reader.pop_run(4, |v| got.push(v)), Ok(4));
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(reader.pop_run(10, |v| got.push(v)), Ok(2));
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert_eq!(reader.pop_run(10, |v| got.push(v)), Err(Popped::Empty));
}

#[test]
fn pop_run_that_panics_moves_each_value_out_once() {
    let drops = StdArc::new(StdAtomicUsize::new(0));
    let (mut writer, reader) = ring(4);
    for i in 0..4 {
        writer
            .try_push(Counted(drops.clone(), i))
            .ok()
            .expect("room");
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.pop_run(4, |value| {
            if value.1 == 1 {
                panic!("a reader's closure panics");
            }
        })
    }));
    assert!(caught.is_err());
    // 0 and 1 were handed out (and dropped); 2 and 3 are still there, in order.
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    assert_eq!(reader.try_pop().ok().map(|v| v.1), Some(2));
    assert_eq!(drops.load(Ordering::Relaxed), 3);
    drop(writer);
    drop(reader);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        4,
        "the value left is dropped once"
    );
}

#[test]
fn values_left_behind_are_dropped_once() {
    let drops = StdArc::new(StdAtomicUsize::new(0));
    let (mut writer, reader) = ring(5);
    for lap in 0..4 {
        writer
            .try_push(Counted(drops.clone(), lap))
            .ok()
            .expect("room");
        writer
            .try_push(Counted(drops.clone(), lap))
            .ok()
            .expect("room");
        drop(reader.try_pop());
    }
    // 8 pushed, 4 popped and dropped, 4 left in the ring.
    assert_eq!(drops.load(Ordering::Relaxed), 4);
    drop(reader);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        4,
        "the writer still holds the ring"
    );
    drop(writer);
    assert_eq!(drops.load(Ordering::Relaxed), 8);
}

#[test]
fn reader_gone_refuses_pushes() {
    let (mut writer, reader) = ring(2);
    writer.try_push(1).expect("room");
    drop(reader);
    assert_eq!(writer.try_push(2), Err(Refused::Gone(2)));
    assert_eq!(writer.push_blocking(3, None), Err(Refused::Gone(3)));
}

#[test]
fn a_deadline_gives_the_value_back_while_the_ring_stays_full() {
    let (mut writer, reader) = ring(1);
    writer.try_push(1).expect("room");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(20);
    assert_eq!(
        writer.push_blocking(2, Some(deadline)),
        Err(Refused::Full(2))
    );
    assert!(std::time::Instant::now() >= deadline);
    // Room made before the deadline: the push goes through.
    assert_eq!(reader.try_pop(), Ok(1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    assert_eq!(writer.push_blocking(2, Some(deadline)), Ok(()));
    assert_eq!(reader.try_pop(), Ok(2));
}

#[test]
fn writer_gone_leaves_what_it_pushed_then_disconnects() {
    let (mut writer, reader) = ring(2);
    writer.try_push(1).expect("room");
    writer.try_push(2).expect("room");
    drop(writer);
    assert_eq!(reader.try_pop(), Ok(1));
    let mut got = Vec::new();
    assert_eq!(reader.pop_run(5, |v| got.push(v)), Ok(1));
    assert_eq!(got, [2]);
    assert_eq!(reader.try_pop(), Err(Popped::Disconnected));
    assert_eq!(
        reader.pop_run(5, |v| got.push(v)),
        Err(Popped::Disconnected)
    );
}

#[test]
fn blocking_writer_and_a_reader_thread_move_everything_in_order() {
    let count: u32 = if cfg!(miri) { 200 } else { 100_000 };
    let (mut writer, reader) = ring(4);
    let consumer = std::thread::spawn(move || {
        let mut next = 0;
        while next < count {
            match reader.try_pop() {
                Ok(value) => {
                    assert_eq!(value, next);
                    next += 1;
                }
                Err(Popped::Empty) => std::thread::yield_now(),
                Err(Popped::Disconnected) => panic!("writer gone early"),
            }
        }
        // The writer may not have been dropped yet: wait for it. What comes next must be
        // `Disconnected`, never another value.
        loop {
            match reader.try_pop() {
                Err(Popped::Empty) => std::thread::yield_now(),
                other => return other,
            }
        }
    });
    for value in 0..count {
        writer.push_blocking(value, None).expect("reader alive");
    }
    drop(writer);
    assert_eq!(
        consumer.join().expect("consumer"),
        Err(Popped::Disconnected)
    );
}

#[test]
fn a_writer_parked_for_room_wakes_when_the_reader_leaves() {
    let (mut writer, reader) = ring(1);
    writer.try_push(1).expect("room");
    let leaver = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(reader);
    });
    assert_eq!(writer.push_blocking(2, None), Err(Refused::Gone(2)));
    leaver.join().expect("leaver");
}
