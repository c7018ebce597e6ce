//! `fuse`: receivers of one dispatcher read as one stream in stamp order, with watermarks.

use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use clocked_dispatch::pipeline::windows;
use clocked_dispatch::{fuse, ClockedRead, FuseErrorKind};
use quickcheck::{quickcheck, TestResult};

const HANG: Duration = Duration::from_secs(30);

/// Checks the stream's guarantees on everything it returns until it closes, and returns the
/// data with stamps.
fn read_checked(stream: &impl ClockedRead<u32>) -> Vec<(u32, usize)> {
    let mut data = Vec::new();
    let mut last = stream.last_stamp();
    let mut watermark = 0;
    loop {
        match stream.recv_timeout(HANG) {
            Ok((value, stamp)) => {
                assert!(stamp > last, "stamp {stamp} after {last}");
                last = stamp;
                match value {
                    Some(value) => {
                        assert!(
                            stamp > watermark,
                            "data {stamp} at or below watermark {watermark}"
                        );
                        data.push((value, stamp));
                    }
                    None => watermark = stamp,
                }
            }
            Err(RecvTimeoutError::Disconnected) => return data,
            Err(RecvTimeoutError::Timeout) => panic!("the fused stream hung"),
        }
    }
}

#[test]
fn receivers_of_different_dispatchers_are_refused_and_given_back() {
    let d1 = clocked_dispatch::new::<u32>(4);
    let d2 = clocked_dispatch::new::<u32>(4);
    let (_t1, r1) = d1.new("t1", "r1");
    let (_t2, r2) = d2.new("t2", "r2");
    let err = fuse(vec![r1, r2]).unwrap_err();
    assert_eq!(err.kind(), FuseErrorKind::DifferentDispatchers);
    let back = err.into_receivers();
    assert_eq!(
        back.iter().map(|r| r.name()).collect::<Vec<_>>(),
        vec!["r1", "r2"]
    );
    assert_eq!(
        fuse::<u32>(Vec::new()).unwrap_err().kind(),
        FuseErrorKind::Empty
    );
}

#[test]
fn watermarks_wait_for_every_input_and_others_traffic_moves_them() {
    let d = clocked_dispatch::new::<u32>(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let (tx_c, _rx_c) = d.new("tx_c", "c"); // not fused: its stamps are watermarks for us
    let fused = fuse(vec![rx_a, rx_b]).unwrap();
    assert_eq!(fused.try_recv(), Err(TryRecvError::Empty));
    tx_c.send(0).unwrap(); // 1
    tx_a.send(2).unwrap(); // 2
    tx_c.send(0).unwrap(); // 3
    tx_b.send(4).unwrap(); // 4
    drop((tx_a, tx_b, tx_c));
    let data = read_checked(&fused);
    assert_eq!(data, vec![(2, 2), (4, 4)]);
}

#[test]
fn concurrent_senders_come_out_in_stamp_order_and_complete() {
    let d = clocked_dispatch::new::<u32>(64);
    let mut receivers = Vec::new();
    let mut threads = Vec::new();
    for k in 0..4u32 {
        let (tx, rx) = d.new(format!("tx{k}"), format!("rx{k}"));
        receivers.push(rx);
        threads.push(thread::spawn(move || {
            for i in 0..10_000 {
                tx.send(k * 10_000 + i).unwrap();
            }
        }));
    }
    let fused = fuse(receivers).unwrap();
    let data = read_checked(&fused);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(data.len(), 40_000);
    let mut values: Vec<u32> = data.iter().map(|&(v, _)| v).collect();
    values.sort_unstable();
    assert_eq!(values, (0..40_000).collect::<Vec<_>>());
}

#[test]
fn pipeline_windows_read_a_fused_stream() {
    let d = clocked_dispatch::new::<u64>(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    for i in 1..=6u64 {
        if i % 2 == 0 {
            tx_a.send(i).unwrap();
        } else {
            tx_b.send(i).unwrap();
        }
    }
    drop((tx_a, tx_b));
    let fused = fuse(vec![rx_a, rx_b]).unwrap();
    let sums: Vec<u64> = windows(fused, 3, || 0, |sum, x| sum + x)
        .map(|w| w.value)
        .collect();
    assert_eq!(sums, vec![1 + 2 + 3, 4 + 5 + 6]);
}

#[test]
fn broadcast_copies_come_out_under_one_stamp() {
    let d = clocked_dispatch::new::<u32>(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (_tx_b, rx_b) = d.new("tx_b", "b");
    let all = tx_a.clone("all").into_broadcaster();
    all.broadcast(9).unwrap();
    drop(all);
    let fused = fuse(vec![rx_a, rx_b]).unwrap();
    assert_eq!(fused.recv_timeout(HANG), Ok((Some(9), 1)));
    assert_eq!(fused.recv_timeout(HANG), Ok((Some(9), 1)));
    drop(tx_a);
}

/// Fusing any split of one dispatcher's receivers returns exactly the traffic of those
/// receivers, in stamp order, as one receiver that got it all would.
#[test]
fn fuse_equals_one_receiver_property() {
    fn property(targets: Vec<u8>, fused_count: u8) -> TestResult {
        let receivers = 1 + (fused_count % 4) as usize;
        let total = receivers + 1; // one more that is not fused
        let d = clocked_dispatch::new::<u32>(targets.len().max(1));
        let mut senders = Vec::new();
        let mut fused = Vec::new();
        let mut outsider = None;
        for k in 0..total {
            let (tx, rx) = d.new(format!("tx{k}"), format!("rx{k}"));
            senders.push(tx);
            if k < receivers {
                fused.push(rx);
            } else {
                outsider = Some(rx);
            }
        }
        let mut expected = Vec::new();
        for (i, &target) in targets.iter().enumerate() {
            let k = target as usize % total;
            senders[k].send(i as u32).unwrap();
            if k < receivers {
                expected.push((i as u32, i + 1));
            }
        }
        drop(senders);
        let fused = fuse(fused).unwrap();
        let got = read_checked(&fused);
        drop(outsider);
        TestResult::from_bool(got == expected)
    }
    quickcheck(property as fn(Vec<u8>, u8) -> TestResult);
}
