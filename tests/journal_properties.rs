//! A quickcheck model of the journal: random sequences of sends, reads, commits, rewinds and
//! restarts against an in-memory reference. After every step, what each receiver name reads is
//! exactly what the reference says: the messages sent to that name with a stamp above its
//! position when its receiver was created, in order, each once; stamps keep increasing across
//! restarts.

use std::path::Path;
use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver, ClockedSender, Dispatcher, JournalError};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const NAMES: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Send {
        to: usize,
        value: u32,
    },
    /// To every name (each has a receiver open at all times).
    Broadcast {
        value: u32,
    },
    Read {
        from: usize,
        count: usize,
    },
    Commit {
        of: usize,
    },
    /// Drop the name's receiver, rewind it `back` stamps below its position, create it again.
    Rewind {
        of: usize,
        back: usize,
    },
    /// Drop the name's receiver and create it again (it replays what it had not committed).
    Reopen {
        of: usize,
    },
    /// Drop everything, reopen the journal.
    Restart,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let name = |g: &mut Gen| usize::arbitrary(g) % NAMES;
        match u8::arbitrary(g) % 13 {
            12 => Op::Broadcast {
                value: u32::arbitrary(g),
            },
            0..=4 => Op::Send {
                to: name(g),
                value: u32::arbitrary(g),
            },
            5..=7 => Op::Read {
                from: name(g),
                count: usize::arbitrary(g) % 6,
            },
            8 => Op::Commit { of: name(g) },
            9 => Op::Rewind {
                of: name(g),
                back: usize::arbitrary(g) % 8,
            },
            10 => Op::Reopen { of: name(g) },
            _ => Op::Restart,
        }
    }
}

/// What the reference knows about one name.
#[derive(Default)]
struct Expected {
    /// Every message sent to it: (stamp, value).
    log: Vec<(usize, u32)>,
    /// Its position: everything up to it is committed.
    position: usize,
    /// What its current receiver still has to return, in order.
    pending: std::collections::VecDeque<(usize, u32)>,
    /// The last stamp its current receiver returned.
    last_read: Option<usize>,
}

impl Expected {
    fn recreate(&mut self) {
        self.pending = self
            .log
            .iter()
            .copied()
            .filter(|&(stamp, _)| stamp > self.position)
            .collect();
        self.last_read = None;
    }
}

struct Live {
    d: Dispatcher<u32>,
    pairs: Vec<Option<(ClockedSender<u32>, ClockedReceiver<u32>)>>,
    broadcaster: clocked_dispatch::ClockedBroadcaster<u32>,
}

fn open(dir: &Path) -> Live {
    let d = Builder::new()
        .bound(16)
        .inbox_capacity(4096)
        .journal(dir)
        .journal_segment_size(512)
        .build_journaled::<u32>()
        .unwrap();
    let pairs: Vec<_> = (0..NAMES).map(|i| Some(pair(&d, i))).collect();
    let broadcaster = pairs[0].as_ref().unwrap().0.clone("bc").into_broadcaster();
    Live {
        d,
        pairs,
        broadcaster,
    }
}

fn pair(d: &Dispatcher<u32>, i: usize) -> (ClockedSender<u32>, ClockedReceiver<u32>) {
    d.new(format!("tx{i}"), format!("rx{i}"))
}

fn close(live: Live) {
    drop(live.broadcaster);
    drop(live.pairs);
    live.d.join();
}

fn run(ops: Vec<Op>) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut live = open(dir.path());
    let mut names: Vec<Expected> = (0..NAMES).map(|_| Expected::default()).collect();
    let mut clock = 0;
    for op in ops {
        match op {
            Op::Send { to, value } => {
                let (tx, _) = live.pairs[to].as_ref().unwrap();
                tx.send(value).unwrap();
                clock += 1;
                names[to].log.push((clock, value));
                names[to].pending.push_back((clock, value));
            }
            Op::Broadcast { value } => {
                live.broadcaster.broadcast(value).unwrap();
                clock += 1;
                for name in &mut names {
                    name.log.push((clock, value));
                    name.pending.push_back((clock, value));
                }
            }
            Op::Read { from, count } => {
                let (_, rx) = live.pairs[from].as_ref().unwrap();
                let count = count.min(names[from].pending.len());
                for _ in 0..count {
                    let got = loop {
                        match rx.recv_timeout(Duration::from_secs(10)) {
                            Ok((Some(value), stamp)) => break (stamp, value),
                            Ok((None, _)) => {}
                            Err(e) => panic!("rx{from}: {e:?}, expected {:?}", names[from].pending),
                        }
                    };
                    let want = names[from].pending.pop_front().unwrap();
                    assert_eq!(got, want, "rx{from}");
                    names[from].last_read = Some(got.0);
                }
            }
            Op::Commit { of } => {
                if let Some(stamp) = names[of].last_read {
                    let (_, rx) = live.pairs[of].as_ref().unwrap();
                    rx.commit(stamp).unwrap();
                    names[of].position = names[of].position.max(stamp);
                }
            }
            Op::Rewind { of, back } => {
                live.pairs[of] = None;
                let to = (names[of].position + 1).saturating_sub(back).max(1);
                match live.d.rewind(&format!("rx{of}"), to) {
                    Ok(()) => names[of].position = to - 1,
                    Err(JournalError::RewindAhead { .. }) => assert!(to > clock + 1),
                    Err(e) => panic!("rewind rx{of} to {to}: {e}"),
                }
                live.pairs[of] = Some(pair(&live.d, of));
                names[of].recreate();
            }
            Op::Reopen { of } => {
                live.pairs[of] = None;
                live.pairs[of] = Some(pair(&live.d, of));
                names[of].recreate();
            }
            Op::Restart => {
                close(live);
                live = open(dir.path());
                assert_eq!(live.d.recovery().unwrap().last_stamp, clock);
                for name in &mut names {
                    name.recreate();
                }
            }
        }
    }
    // Everything left is still there, in order.
    for (i, name) in names.iter_mut().enumerate() {
        let count = name.pending.len();
        if count > 0 {
            let (_, rx) = live.pairs[i].as_ref().unwrap();
            for _ in 0..count {
                let got = loop {
                    if let (Some(value), stamp) = rx.recv_timeout(Duration::from_secs(10)).unwrap()
                    {
                        break (stamp, value);
                    }
                };
                assert_eq!(Some(got), name.pending.pop_front(), "rx{i} at the end");
            }
        }
    }
    close(live);
    true
}

#[test]
fn the_journal_agrees_with_an_in_memory_reference() {
    QuickCheck::new()
        .tests(200)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}

/// Found by the model: a broadcast stamped after a name's receiver was dropped and before the
/// name was made again is the name's (a durable subscription), whatever the timing.
#[test]
fn a_broadcast_between_two_receivers_of_a_name_is_the_names() {
    use Op::*;
    let ops = vec![
        Send { to: 0, value: 1 },
        Broadcast { value: 618653715 },
        Read { from: 1, count: 5 },
        Send {
            to: 0,
            value: 2685045717,
        },
        Send {
            to: 0,
            value: 1337893308,
        },
        Broadcast { value: 2760354212 },
        Rewind { of: 1, back: 6 },
        Send {
            to: 1,
            value: 1126568611,
        },
        Send {
            to: 1,
            value: 1519182475,
        },
        Rewind { of: 2, back: 7 },
        Send { to: 0, value: 1 },
        Send {
            to: 2,
            value: 3735267095,
        },
        Commit { of: 2 },
        Send {
            to: 2,
            value: 327631948,
        },
        Send {
            to: 0,
            value: 2515508609,
        },
        Send {
            to: 2,
            value: 347777488,
        },
        Send {
            to: 1,
            value: 2693989594,
        },
        Reopen { of: 2 },
        Broadcast { value: 640915009 },
        Read { from: 0, count: 2 },
        Send {
            to: 2,
            value: 205026335,
        },
        Send {
            to: 1,
            value: 3651470844,
        },
        Read { from: 1, count: 0 },
        Send {
            to: 0,
            value: 3412104465,
        },
        Send {
            to: 1,
            value: 1982575868,
        },
        Send {
            to: 2,
            value: 1223588450,
        },
        Send {
            to: 0,
            value: 4294967295,
        },
        Broadcast { value: 206723701 },
        Broadcast { value: 805738392 },
        Read { from: 1, count: 0 },
        Send {
            to: 2,
            value: 3012943129,
        },
        Send {
            to: 2,
            value: 2250760331,
        },
        Rewind { of: 1, back: 5 },
        Read { from: 1, count: 1 },
        Commit { of: 1 },
    ];
    run(ops);
}
