//! Exactly once, in stamp order, across every memory → disk → memory transition: quickcheck
//! drives random interleavings of sends, broadcasts and reads through receivers with tiny
//! memory queues and tiny segments, so that nearly every message crosses a boundary.

use std::thread;
use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const RECEIVERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Broadcast,
    Read(usize, u8),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0 => Op::Broadcast,
            1..=5 => Op::Send(usize::arbitrary(g) % RECEIVERS),
            _ => Op::Read(usize::arbitrary(g) % RECEIVERS, u8::arbitrary(g) % 8),
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    memory: usize,
    segment_size: u64,
    ops: Vec<Op>,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        Case {
            memory: 1 + usize::arbitrary(g) % 3,
            segment_size: 32 + u64::arbitrary(g) % 256,
            ops: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let (memory, segment_size) = (self.memory, self.segment_size);
        Box::new(self.ops.shrink().map(move |ops| Case {
            memory,
            segment_size,
            ops,
        }))
    }
}

/// Everything one receiver returned, data and watermarks.
type Seen = Vec<(Option<u64>, usize)>;

/// Checks one receiver's view: strictly increasing stamps, and exactly the values sent to it.
/// Values are their own stamps (the test sends from one thread, so the k-th message gets k).
fn check(seen: &Seen, expected: &[u64]) -> bool {
    let increasing = seen.windows(2).all(|w| w[0].1 < w[1].1);
    let data: Vec<u64> = seen.iter().filter_map(|item| item.0).collect();
    let stamped_right = seen
        .iter()
        .all(|item| item.0.is_none_or(|v| v as usize == item.1));
    increasing && stamped_right && data == expected
}

fn interleaved(case: Case) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(4)
        .spill_to(tmp.path())
        .memory_capacity(case.memory)
        .segment_size(case.segment_size)
        .build_spilling::<u64>()
        .unwrap();
    let mut senders = Vec::new();
    let mut receivers: Vec<ClockedReceiver<u64>> = Vec::new();
    for r in 0..RECEIVERS {
        let (tx, rx) = d.new(format!("tx{r}"), format!("rx{r}"));
        senders.push(tx);
        receivers.push(rx);
    }
    let broadcaster = senders[0].clone("b").into_broadcaster();
    let mut expected = vec![Vec::new(); RECEIVERS];
    let mut seen: Vec<Seen> = vec![Vec::new(); RECEIVERS];
    let mut stamp = 0u64;
    for op in case.ops {
        match op {
            Op::Send(r) => {
                stamp += 1;
                senders[r].send(stamp).unwrap();
                expected[r].push(stamp);
            }
            Op::Broadcast => {
                stamp += 1;
                broadcaster.broadcast(stamp).unwrap();
                expected.iter_mut().for_each(|e| e.push(stamp));
            }
            Op::Read(r, n) => {
                for _ in 0..n {
                    match receivers[r].try_recv() {
                        Ok(item) => seen[r].push(item),
                        Err(_) => break,
                    }
                }
            }
        }
    }
    drop((senders, broadcaster));
    for (r, rx) in receivers.iter().enumerate() {
        seen[r].extend(rx.iter_until_closed());
        if !check(&seen[r], &expected[r]) {
            return false;
        }
        let stats = rx.spill_stats().unwrap();
        if stats.on_disk != 0 || stats.corrupted != 0 || stats.dropped != 0 {
            return false;
        }
    }
    true
}

/// A reader on its own thread, pausing at random, while one thread sends.
fn concurrent(pauses: Vec<u8>, memory: u8) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(16)
        .spill_to(tmp.path())
        .memory_capacity(1 + memory as usize % 4)
        .segment_size(128)
        .build_spilling::<u64>()
        .unwrap();
    let (tx, rx) = d.new("tx", "rx");
    let (other_tx, other_rx) = d.new("otx", "orx");
    let n = 3000u64;
    let reader = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut pauses = pauses.into_iter().cycle();
        while let Ok(item) = rx.recv() {
            seen.push(item);
            match pauses.next() {
                Some(p) if p < 8 => thread::sleep(Duration::from_micros(p as u64 * 50)),
                Some(p) if p < 64 => thread::yield_now(),
                _ => {}
            }
        }
        seen
    });
    let mut expected = Vec::new();
    for stamp in 1..=n {
        if stamp % 3 == 0 {
            other_tx.send(stamp).unwrap();
        } else {
            tx.send(stamp).unwrap();
            expected.push(stamp);
        }
    }
    drop((tx, other_tx));
    let seen = reader.join().unwrap();
    drop(other_rx);
    check(&seen, &expected)
}

trait UntilClosed<T> {
    fn iter_until_closed(&self) -> Vec<(Option<T>, usize)>;
}

impl<T> UntilClosed<T> for ClockedReceiver<T> {
    fn iter_until_closed(&self) -> Vec<(Option<T>, usize)> {
        let mut items = Vec::new();
        while let Ok(item) = self.recv() {
            items.push(item);
        }
        items
    }
}

#[test]
fn exactly_once_in_order_across_spill_transitions() {
    QuickCheck::new()
        .tests(150)
        .quickcheck(interleaved as fn(Case) -> bool);
}

#[test]
fn a_concurrent_reader_sees_exactly_once_in_order() {
    QuickCheck::new()
        .tests(40)
        .quickcheck(concurrent as fn(Vec<u8>, u8) -> bool);
}
