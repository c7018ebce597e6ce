//! quickcheck properties over random operation sequences, checking DESIGN.md's invariants 1–5
//! on what real receiver threads observe.

use std::collections::BTreeMap;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::Duration;

use clocked_dispatch::{ClockedReceiver, ClockedSender, SendErrorKind};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// Longer than any legitimate wait in these tests; reaching it means a lost wake-up or a hang.
const HANG: Duration = Duration::from_secs(20);

/// Everything one receiver returned, and how it ended.
struct Log {
    items: Vec<(Option<u64>, usize)>,
    closed: bool,
}

/// Reads until closed, or until `stop_after` items if given (then drops the receiver).
fn drain(rx: ClockedReceiver<u64>, stop_after: Option<usize>) -> thread::JoinHandle<Log> {
    thread::spawn(move || {
        let mut items = Vec::new();
        loop {
            if Some(items.len()) == stop_after {
                return Log {
                    items,
                    closed: false,
                };
            }
            match rx.recv_timeout(HANG) {
                Ok(item) => items.push(item),
                Err(RecvTimeoutError::Disconnected) => {
                    // Invariant 5: closed for good.
                    assert_eq!(
                        rx.try_recv(),
                        Err(std::sync::mpsc::TryRecvError::Disconnected)
                    );
                    return Log {
                        items,
                        closed: true,
                    };
                }
                Err(RecvTimeoutError::Timeout) => panic!("receiver hung (lost wake-up?)"),
            }
        }
    })
}

/// Invariants 1 and 2 on one receiver's log: stamps strictly increase (so no data stamp falls
/// at or below an earlier watermark).
fn stamps_increase(log: &Log) -> bool {
    log.items.windows(2).all(|w| w[0].1 < w[1].1)
}

fn data_of(log: &Log) -> Vec<(u64, usize)> {
    log.items
        .iter()
        .filter_map(|&(v, ts)| v.map(|v| (v, ts)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Serializing mode

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Broadcast,
    Clone(usize),
    DropSender(usize),
}

#[derive(Clone, Debug)]
struct Scenario {
    receivers: usize,
    bound: usize,
    /// Per receiver: read everything, or stop (and drop) after this many items.
    stop_after: Vec<Option<usize>>,
    ops: Vec<Op>,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        let receivers = 1 + usize::arbitrary(g) % 4;
        let bound = usize::arbitrary(g) % 4;
        let stop_after = (0..receivers)
            .map(|_| {
                if u8::arbitrary(g) % 4 == 0 {
                    Some(usize::arbitrary(g) % 8)
                } else {
                    None
                }
            })
            .collect();
        let len = usize::arbitrary(g) % 60;
        let ops = (0..len)
            .map(|_| {
                let r = usize::arbitrary(g) % receivers;
                match u8::arbitrary(g) % 10 {
                    0 => Op::Broadcast,
                    1 => Op::Clone(r),
                    2 => Op::DropSender(r),
                    _ => Op::Send(r),
                }
            })
            .collect();
        Scenario {
            receivers,
            bound,
            stop_after,
            ops,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Shorter sequences: drop one operation at a time.
        let base = self.clone();
        Box::new((0..self.ops.len()).rev().map(move |skip| {
            let mut smaller = base.clone();
            smaller.ops.remove(skip);
            smaller
        }))
    }
}

fn serializing_holds(s: Scenario) -> bool {
    let d = clocked_dispatch::new::<u64>(s.bound);
    let mut senders: Vec<Vec<ClockedSender<u64>>> = Vec::new();
    let mut readers = Vec::new();
    for r in 0..s.receivers {
        let (tx, rx) = d.new(format!("tx{r}"), format!("rx{r}"));
        senders.push(vec![tx]);
        readers.push(drain(rx, s.stop_after[r]));
    }
    let broadcaster = d.new("btx", "brx-unused");
    let (btx, brx) = broadcaster;
    let btx = btx.into_broadcaster();
    drop(brx);

    // What each receiver must get, in order: (value, stamp). One producer thread, so stamps
    // follow the order of accepted operations.
    let mut expected: Vec<Vec<(u64, usize)>> = vec![Vec::new(); s.receivers];
    let mut stamp = 0usize;
    let mut value = 0u64;
    for op in &s.ops {
        value += 1;
        match *op {
            Op::Send(r) => {
                let Some(tx) = senders[r].last() else {
                    continue;
                };
                match tx.send(value) {
                    Ok(()) => {
                        stamp += 1;
                        expected[r].push((value, stamp));
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), SendErrorKind::ReceiverGone);
                        assert_eq!(e.into_inner(), value);
                    }
                }
            }
            Op::Broadcast => {
                btx.broadcast(value).unwrap();
                stamp += 1;
                for exp in expected.iter_mut() {
                    exp.push((value, stamp));
                }
            }
            Op::Clone(r) => {
                if let Some(tx) = senders[r].last() {
                    let clone = tx.clone(format!("tx{r}-{value}"));
                    senders[r].push(clone);
                }
            }
            Op::DropSender(r) => {
                senders[r].pop();
            }
        }
    }
    drop(senders);
    drop(btx);
    drop(d);

    readers.into_iter().enumerate().all(|(r, reader)| {
        let log = reader.join().expect("reader panicked");
        let got = data_of(&log);
        let ok_order = stamps_increase(&log);
        // Exactly once, in order: everything if it read to the end, a prefix if it stopped.
        let ok_data = if s.stop_after[r].is_none() {
            log.closed && got == expected[r]
        } else {
            expected[r].starts_with(&got)
        };
        if !(ok_order && ok_data) {
            eprintln!(
                "receiver {r}: got {:?}\nexpected {:?}",
                log.items, expected[r]
            );
        }
        ok_order && ok_data
    })
}

#[test]
fn serializing_random_operations_keep_every_invariant() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(serializing_holds as fn(Scenario) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Forwarding mode

#[derive(Clone, Debug)]
struct Forwarding {
    receivers: usize,
    forwarders: usize,
    bound: usize,
    /// For stamp i+1: who gets it (None: a forward(None)), and which forwarder sends it.
    stamps: Vec<(Option<usize>, usize)>,
    /// The order each forwarder sends its stamps in: a permutation key per stamp.
    keys: Vec<u32>,
}

impl Arbitrary for Forwarding {
    fn arbitrary(g: &mut Gen) -> Self {
        let receivers = 1 + usize::arbitrary(g) % 3;
        let forwarders = 1 + usize::arbitrary(g) % 3;
        let len = usize::arbitrary(g) % 50;
        let stamps = (0..len)
            .map(|_| {
                let to = if u8::arbitrary(g) % 4 == 0 {
                    None
                } else {
                    Some(usize::arbitrary(g) % receivers)
                };
                (to, usize::arbitrary(g) % forwarders)
            })
            .collect();
        let keys = (0..len).map(|_| u32::arbitrary(g)).collect();
        Forwarding {
            receivers,
            forwarders,
            bound: usize::arbitrary(g) % 4,
            stamps,
            keys,
        }
    }
}

fn forwarding_holds(f: Forwarding) -> bool {
    // Each forwarder sends out of order, but a forwarder's stamps that share a receiver must
    // not wait on each other in a way that needs more buffer than `bound` gives a single
    // thread: every forwarder runs on its own thread, and receivers drain on theirs.
    let d = clocked_dispatch::new::<u64>(f.bound);
    let mut pairs = Vec::new();
    let mut readers = Vec::new();
    for r in 0..f.receivers {
        let (tx, rx) = d.new(format!("tx{r}"), format!("rx{r}"));
        pairs.push(tx);
        readers.push(drain(rx, None));
    }
    let mut expected: Vec<Vec<(u64, usize)>> = vec![Vec::new(); f.receivers];
    let mut work: Vec<Vec<(u32, usize, Option<usize>)>> = vec![Vec::new(); f.forwarders];
    for (i, &(to, by)) in f.stamps.iter().enumerate() {
        let stamp = i + 1;
        if let Some(r) = to {
            expected[r].push((stamp as u64 * 10, stamp));
        }
        work[by].push((f.keys[i], stamp, to));
    }
    let threads: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(k, mut items)| {
            items.sort();
            let txs: Vec<_> = pairs.iter().map(|tx| tx.clone(format!("fwd{k}"))).collect();
            thread::spawn(move || {
                for (_, stamp, to) in items {
                    let (tx, value) = match to {
                        Some(r) => (&txs[r], Some(stamp as u64 * 10)),
                        None => (&txs[0], None),
                    };
                    tx.forward(value, stamp).unwrap();
                }
            })
        })
        .collect();
    drop(pairs);
    drop(d);
    for t in threads {
        t.join().unwrap();
    }
    readers.into_iter().enumerate().all(|(r, reader)| {
        let log = reader.join().expect("reader panicked");
        let ok = log.closed && stamps_increase(&log) && data_of(&log) == expected[r];
        if !ok {
            eprintln!(
                "receiver {r}: got {:?}\nexpected {:?}",
                log.items, expected[r]
            );
        }
        ok
    })
}

#[test]
fn forwarding_out_of_order_is_released_in_order() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(forwarding_holds as fn(Forwarding) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Watermark safety across receivers, in a busy dispatcher

/// Every watermark a receiver reports is a promise: collect all promises and all deliveries,
/// and check no delivery to a receiver is at or below a promise it made earlier, and that
/// every receiver's final watermark covers every stamp (it missed nothing).
#[test]
fn final_watermark_covers_every_stamp() {
    let d = clocked_dispatch::new::<u64>(2);
    let mut txs = Vec::new();
    let mut readers = Vec::new();
    for r in 0..4 {
        let (tx, rx) = d.new(format!("tx{r}"), format!("rx{r}"));
        txs.push(tx);
        readers.push(drain(rx, None));
    }
    let total = 2_000u64;
    for i in 0..total {
        txs[(i % 4) as usize].send(i).unwrap();
    }
    drop(txs);
    let mut by_stamp = BTreeMap::new();
    for reader in readers {
        let log = reader.join().unwrap();
        assert!(log.closed && stamps_increase(&log));
        let last = log.items.last().map(|&(_, ts)| ts).unwrap_or(0);
        assert_eq!(
            last, total as usize,
            "the last thing seen is the final clock"
        );
        for (v, ts) in data_of(&log) {
            assert!(
                by_stamp.insert(ts, v).is_none(),
                "stamp {ts} delivered twice"
            );
        }
    }
    assert_eq!(by_stamp.len(), total as usize);
    assert!(by_stamp.iter().all(|(&ts, &v)| ts == v as usize + 1));
}
