//! Real threads, many messages: 8 sender threads each send 100k messages spread over 8
//! receivers, each read on its own thread. Checks order, completeness, stamp uniqueness and
//! watermark safety on everything observed. Run time is bounded: every read has a deadline.

use std::collections::HashSet;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

const SENDERS: usize = 8;
const RECEIVERS: usize = 8;
const PER_SENDER: usize = 100_000;
const HANG: Duration = Duration::from_secs(60);

#[test]
fn eight_by_eight_by_100k() {
    let start = Instant::now();
    let d = clocked_dispatch::new::<(usize, usize)>(256);
    let mut txs = Vec::new();
    let mut readers = Vec::new();
    for r in 0..RECEIVERS {
        let (tx, rx) = d.new(format!("tx{r}"), format!("rx{r}"));
        txs.push(tx);
        readers.push(thread::spawn(move || {
            let mut data = Vec::new();
            let mut last = 0usize;
            let mut watermarks = 0usize;
            loop {
                match rx.recv_timeout(HANG) {
                    Ok((value, stamp)) => {
                        // Invariants 1 and 2: strictly increasing, data never at or below a
                        // watermark already returned.
                        assert!(stamp > last, "rx{r}: stamp {stamp} after {last}");
                        last = stamp;
                        match value {
                            Some(v) => data.push((v, stamp)),
                            None => watermarks += 1,
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return (data, last, watermarks),
                    Err(RecvTimeoutError::Timeout) => panic!("rx{r} hung"),
                }
            }
        }));
    }
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let mine: Vec<_> = txs.iter().map(|tx| tx.clone(format!("s{s}"))).collect();
            thread::spawn(move || {
                for k in 0..PER_SENDER {
                    mine[(s + k) % RECEIVERS].send((s, k)).unwrap();
                }
            })
        })
        .collect();
    drop(txs);
    drop(d);
    for s in senders {
        s.join().unwrap();
    }

    let total = SENDERS * PER_SENDER;
    let mut stamps = HashSet::with_capacity(total);
    let mut watermarks_seen = 0;
    for (r, reader) in readers.into_iter().enumerate() {
        let (data, last, watermarks) = reader.join().unwrap();
        watermarks_seen += watermarks;
        // The final watermark covers every stamp: the receiver missed no clock movement.
        assert_eq!(last, total, "rx{r}'s final stamp");
        // Exactly once, each sender's messages in the order sent.
        let mut next_k = [None::<usize>; SENDERS];
        for &((s, k), stamp) in &data {
            assert_eq!((s + k) % RECEIVERS, r, "misrouted");
            if let Some(prev) = next_k[s] {
                assert_eq!(k, prev + RECEIVERS, "sender {s} out of order at rx{r}");
            }
            next_k[s] = Some(k);
            assert!(stamps.insert(stamp), "stamp {stamp} delivered twice");
        }
        assert_eq!(data.len(), total / RECEIVERS, "rx{r} lost messages");
    }
    assert_eq!(stamps.len(), total);
    assert_eq!(stamps.iter().max(), Some(&total));
    assert!(
        watermarks_seen > 0,
        "other pairs' traffic shows up as watermarks"
    );
    eprintln!(
        "{total} messages, {watermarks_seen} watermarks, {:?}",
        start.elapsed()
    );
}
