//! `Select`: waiting on several receivers, of one or several dispatchers, of any payload
//! types. Every blocking call is bounded (a watchdog or a timeout), so a lost wake-up fails a
//! test instead of hanging it.

use std::collections::HashMap;
use std::sync::mpsc::RecvError;
use std::thread;
use std::time::{Duration, Instant};

mod support;

use support::published::published;

use clocked_dispatch::{Builder, ClockedReceiver, Select, SelectTimeoutError};

const HANG: Duration = Duration::from_secs(30);

/// Selects until a data item arrives; returns its index and value.
fn next_data(
    sel: &mut Select<'_>,
    a: &ClockedReceiver<u64>,
    b: &ClockedReceiver<u64>,
) -> (usize, u64) {
    loop {
        let op = sel
            .select_timeout(HANG)
            .expect("a receiver with data never became ready");
        let index = op.index();
        let rx = if index == 0 { a } else { b };
        if let (Some(value), _) = op.recv(rx).expect("open") {
            return (index, value);
        }
    }
}

#[test]
fn a_parked_selector_wakes_for_data_from_another_thread() {
    let d = clocked_dispatch::new(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50)); // the selector is parked by then
        tx_b.send(7).unwrap();
        tx_b
    });
    let mut sel = Select::new();
    sel.recv(&rx_a);
    sel.recv(&rx_b);
    assert_eq!(next_data(&mut sel, &rx_a, &rx_b), (1, 7));
    drop((tx_a, sender.join().unwrap()));
}

#[test]
fn receivers_of_different_dispatchers_and_types() {
    let numbers = clocked_dispatch::new::<u64>(4);
    let words = clocked_dispatch::new::<String>(4);
    let (tx_n, rx_n) = numbers.new("tx", "n");
    let (tx_w, rx_w) = words.new("tx", "w");
    tx_w.send("hello".to_string()).unwrap();
    tx_n.send(42).unwrap();
    let mut sel = Select::new();
    let n = sel.recv(&rx_n);
    let w = sel.recv(&rx_w);
    let mut got = (None, None);
    while got.0.is_none() || got.1.is_none() {
        let op = sel.select_timeout(HANG).unwrap();
        match op.index() {
            i if i == n => got.0 = got.0.or(op.recv(&rx_n).unwrap().0),
            i if i == w => got.1 = got.1.or(op.recv(&rx_w).unwrap().0),
            _ => unreachable!(),
        }
    }
    assert_eq!(got, (Some(42), Some("hello".to_string())));
}

#[test]
fn try_select_and_timeouts_when_nothing_is_ready() {
    let d = clocked_dispatch::new::<u64>(4);
    let (_tx, rx) = d.new("tx", "rx");
    let mut sel = Select::new();
    sel.recv(&rx);
    assert!(sel.try_select().is_err());
    assert!(sel.try_ready().is_err());
    let started = Instant::now();
    assert_eq!(
        sel.select_timeout(Duration::from_millis(30)).unwrap_err(),
        SelectTimeoutError
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn watermarks_make_a_receiver_ready() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (_tx_b, rx_b) = d.new("tx_b", "b");
    tx_a.send(1).unwrap();
    let mut sel = Select::new();
    sel.recv(&rx_b);
    let op = sel.select_timeout(HANG).unwrap();
    assert_eq!(op.recv(&rx_b), Ok((None, 1)));
    assert!(sel.try_select().is_err(), "nothing new after the watermark");
    drop(rx_a);
}

/// Both receivers hold many messages: they take turns. One holds a thousand and the other
/// one: the one is chosen within two selections.
#[test]
fn a_receiver_that_always_has_data_cannot_starve_another() {
    let d = Builder::new().bound(2048).build::<u64>();
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    for i in 0..1_000 {
        tx_a.send(i).unwrap();
    }
    tx_b.send(1_000_000).unwrap();
    for i in 0..20 {
        tx_a.send(2_000 + i).unwrap();
        tx_b.send(3_000 + i).unwrap();
    }
    published(&d, 1_041);
    let mut sel = Select::new();
    sel.recv(&rx_a);
    sel.recv(&rx_b);
    let first_two = [
        next_data(&mut sel, &rx_a, &rx_b),
        next_data(&mut sel, &rx_a, &rx_b),
    ];
    assert!(
        first_two.contains(&(1, 1_000_000)),
        "b waited behind a: {first_two:?}"
    );
    let mut counts = HashMap::new();
    for _ in 0..20 {
        *counts
            .entry(next_data(&mut sel, &rx_a, &rx_b).0)
            .or_insert(0) += 1;
    }
    assert_eq!((counts[&0], counts[&1]), (10, 10), "not taking turns");
}

#[test]
fn a_dropped_selection_loses_nothing() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx, rx) = d.new("tx", "rx");
    tx.send(5).unwrap();
    let mut sel = Select::new();
    sel.recv(&rx);
    let index = sel.ready_timeout(HANG).unwrap();
    assert_eq!(index, 0);
    drop(sel);
    // The item the selector read to know the receiver was ready is the next one returned.
    let mut got = rx.try_recv().unwrap();
    while got.0.is_none() {
        got = rx.recv_timeout(HANG).unwrap();
    }
    assert_eq!(got, (Some(5), 1));
}

#[test]
fn closed_receivers_and_a_stopped_dispatcher_are_ready() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        tx_a.send(1).unwrap();
        drop((tx_a, tx_b)); // every sender gone: the dispatcher stops
        d.join();
    });
    let mut sel = Select::new();
    sel.recv(&rx_a);
    sel.recv(&rx_b);
    let mut closed = [false, false];
    let mut data = Vec::new();
    while closed != [true, true] {
        let op = sel.select_timeout(HANG).expect("a close was never seen");
        let index = op.index();
        let rx = if index == 0 { &rx_a } else { &rx_b };
        match op.recv(rx) {
            Ok((Some(value), _)) => data.push(value),
            Ok((None, _)) => {}
            Err(RecvError) => {
                closed[index] = true;
                sel.remove(index);
            }
        }
    }
    assert_eq!(data, vec![1]);
    closer.join().unwrap();
}

#[test]
fn spilling_receivers_deliver_everything_in_order_through_select() {
    let dir = tempfile::tempdir().unwrap();
    let d = Builder::new()
        .bound(64)
        .spill_to(dir.path())
        .memory_capacity(4)
        .segment_size(4096)
        .build_spilling::<u64>()
        .unwrap();
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    for i in 0..2_000 {
        tx_a.send(i).unwrap();
        tx_b.send(10_000 + i).unwrap();
    }
    drop((tx_a, tx_b));
    let mut sel = Select::new();
    sel.recv(&rx_a);
    sel.recv(&rx_b);
    let mut got = [Vec::new(), Vec::new()];
    let mut open = 2;
    while open > 0 {
        let op = sel.select_timeout(HANG).unwrap();
        let index = op.index();
        let rx = if index == 0 { &rx_a } else { &rx_b };
        match op.recv(rx) {
            Ok((Some(value), _)) => got[index].push(value),
            Ok((None, _)) => {}
            Err(RecvError) => {
                sel.remove(index);
                open -= 1;
            }
        }
    }
    assert_eq!(got[0], (0..2_000).collect::<Vec<_>>());
    assert_eq!(got[1], (10_000..12_000).collect::<Vec<_>>());
}

#[test]
#[should_panic(expected = "not the receiver selected")]
fn completing_with_another_receiver_panics() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx, rx) = d.new("tx", "rx");
    let (_tx2, other) = d.new("tx2", "other");
    tx.send(1).unwrap();
    let mut sel = Select::new();
    sel.recv(&rx);
    let op = sel.select_timeout(HANG).unwrap();
    let _ = op.recv(&other);
}

/// 8 receivers of 2 dispatchers, selected by 2 threads (4 each) while 4 senders run: every
/// message read exactly once, in stamp order per receiver.
#[test]
fn stress_two_selectors_eight_receivers_four_senders() {
    const PER_SENDER: u64 = 20_000;
    let dispatchers = [
        clocked_dispatch::new::<u64>(64),
        clocked_dispatch::new::<u64>(64),
    ];
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for r in 0..8 {
        let (tx, rx) = dispatchers[r % 2].new(format!("tx{r}"), format!("rx{r}"));
        senders.push(tx);
        receivers.push(rx);
    }
    // Sender s sends to receivers s and s + 4; value = s * PER_SENDER + i.
    let mut threads = Vec::new();
    for s in 0..4 {
        let a = senders[s].clone(format!("s{s}a"));
        let b = senders[s + 4].clone(format!("s{s}b"));
        threads.push(thread::spawn(move || {
            for i in 0..PER_SENDER {
                let target = if i % 2 == 0 { &a } else { &b };
                target.send(s as u64 * PER_SENDER + i).unwrap();
            }
        }));
    }
    drop(senders);
    let mut selectors = Vec::new();
    let mut rest = receivers;
    for _ in 0..2 {
        let mine: Vec<ClockedReceiver<u64>> = rest.drain(..4).collect();
        selectors.push(thread::spawn(move || {
            let mut sel = Select::new();
            for rx in &mine {
                sel.recv(rx);
            }
            let mut got: Vec<Vec<u64>> = vec![Vec::new(); 4];
            let mut last = [0usize; 4];
            let mut open = 4;
            while open > 0 {
                let op = sel.select_timeout(HANG).expect("a selector stalled");
                let index = op.index();
                match op.recv(&mine[index]) {
                    Ok((value, stamp)) => {
                        assert!(stamp > last[index], "stamps went backwards");
                        last[index] = stamp;
                        got[index].extend(value);
                    }
                    Err(RecvError) => {
                        sel.remove(index);
                        open -= 1;
                    }
                }
            }
            got
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut all: Vec<u64> = Vec::new();
    for selector in selectors {
        for values in selector.join().unwrap() {
            assert!(values.windows(2).all(|w| w[0] < w[1]), "out of order");
            all.extend(values);
        }
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..4 * PER_SENDER).collect::<Vec<_>>(),
        "lost or doubled"
    );
}

/// Data comes first, but a receiver with only a watermark to return is chosen after at most
/// 16 selections of data elsewhere.
#[test]
fn data_first_and_watermarks_are_not_starved() {
    let d = Builder::new().bound(256).build::<u64>();
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (_tx_b, rx_b) = d.new("tx_b", "b");
    for i in 0..100 {
        tx_a.send(i).unwrap();
    }
    published(&d, 100);
    let mut sel = Select::new();
    let b = sel.recv(&rx_b); // scanned first, but has only a watermark
    let a = sel.recv(&rx_a);
    let mut order = Vec::new();
    for _ in 0..20 {
        let op = sel.select_timeout(HANG).unwrap();
        let index = op.index();
        let (value, _) = op.recv(if index == a { &rx_a } else { &rx_b }).unwrap();
        order.push((index, value.is_some()));
    }
    assert_eq!(order[0], (a, true), "data before a watermark");
    let first_b = order
        .iter()
        .position(|&(i, _)| i == b)
        .expect("b was starved");
    assert!(first_b <= 16, "b waited {first_b} selections");
    assert_eq!(order[first_b], (b, false));
}
