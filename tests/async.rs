//! The `async` feature: `recv_async`, `Stream`, `send_async`, `forward_async`, under tokio's
//! multi-threaded runtime and under a minimal executor (`futures::executor::block_on`).
//! Run with `cargo test --release --features async`.
#![cfg(all(feature = "async", not(loom)))]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use clocked_dispatch::{fuse, Builder};
use futures::executor::block_on;
use futures::StreamExt;

const HANG: Duration = Duration::from_secs(30);

/// A waker that counts its wake-ups.
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let count = Arc::new(Counting(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_tasks_send_and_receive_in_order() {
    let d = clocked_dispatch::new::<u64>(4);
    let mut consumers = Vec::new();
    let mut producers = Vec::new();
    for k in 0..3u64 {
        let (tx, mut rx) = d.new(format!("tx{k}"), format!("rx{k}"));
        producers.push(tokio::spawn(async move {
            for i in 0..5_000 {
                tx.send_async(k * 10_000 + i).await.unwrap();
            }
        }));
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut last = 0;
            while let Ok((value, stamp)) = rx.recv_async().await {
                assert!(stamp > last);
                last = stamp;
                got.extend(value);
            }
            got
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    for (k, consumer) in consumers.into_iter().enumerate() {
        let got = tokio::time::timeout(HANG, consumer).await.unwrap().unwrap();
        let k = k as u64;
        assert_eq!(got, (k * 10_000..k * 10_000 + 5_000).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_parked_receivers_cost_no_thread_each() {
    let d = clocked_dispatch::new::<u64>(4);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for k in 0..2_000u64 {
        let (tx, mut rx) = d.new(format!("tx{k}"), format!("rx{k}"));
        senders.push(tx);
        tasks.push(tokio::spawn(async move {
            loop {
                if let (Some(value), _) = rx.recv_async().await.unwrap() {
                    return value;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // let them park
    for (k, tx) in senders.iter().enumerate() {
        tx.send_async(k as u64).await.unwrap();
    }
    for (k, task) in tasks.into_iter().enumerate() {
        let value = tokio::time::timeout(HANG, task).await.unwrap().unwrap();
        assert_eq!(value, k as u64);
    }
}

#[test]
fn streams_under_a_minimal_executor() {
    let d = clocked_dispatch::new::<u64>(16);
    let (tx_a, rx_a) = d.new("tx_a", "a");
    let (tx_b, rx_b) = d.new("tx_b", "b");
    let sender = std::thread::spawn(move || {
        for i in 1..=100u64 {
            if i % 3 == 0 {
                tx_a.send(i).unwrap()
            } else {
                tx_b.send(i).unwrap()
            }
        }
    });
    let fused = fuse(vec![rx_a, rx_b]).unwrap();
    let stream = fused.into_stream();
    let data: Vec<u64> = block_on(
        stream
            .filter_map(|(value, _)| async move { value })
            .collect(),
    );
    sender.join().unwrap();
    assert_eq!(data, (1..=100).collect::<Vec<_>>());
}

#[test]
fn a_dropped_recv_future_loses_nothing_and_leaves_no_waker() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx, mut rx) = d.new("tx", "rx");
    let (count, waker) = counting();
    {
        let mut future = pin!(rx.recv_async());
        let mut cx = Context::from_waker(&waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
    } // dropped while registered
    tx.send(7).unwrap();
    let started = std::time::Instant::now();
    while d.stats().clock < 1 {
        assert!(started.elapsed() < HANG);
        std::thread::yield_now();
    }
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        0,
        "a dropped future's waker was woken"
    );
    assert_eq!(block_on(rx.recv_async()), Ok((Some(7), 1)));
}

#[test]
fn a_pending_recv_is_woken_by_a_send_and_by_a_close() {
    let d = clocked_dispatch::new::<u64>(4);
    let (tx, mut rx) = d.new("tx", "rx");
    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    {
        let mut future = pin!(rx.recv_async());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        tx.send(1).unwrap();
        let started = std::time::Instant::now();
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < HANG, "the send never woke the task");
            std::thread::yield_now();
        }
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(Ok((Some(1), 1))));
    }
    {
        let mut future = pin!(rx.recv_async());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        let before = count.0.load(Ordering::SeqCst);
        drop(tx); // a close moves no clock: the inbox's slot wakes the task
        let started = std::time::Instant::now();
        while count.0.load(Ordering::SeqCst) == before {
            assert!(started.elapsed() < HANG, "the close never woke the task");
            std::thread::yield_now();
        }
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    }
}

#[test]
fn a_dropped_send_future_sends_nothing_and_the_next_send_goes_through() {
    let d = Builder::new().bound(1).build::<u64>();
    let (tx, rx) = d.new("tx", "rx");
    // Fill the intake and the inbox: the dispatcher waits on the inbox, the intake is full.
    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let mut sent = 0;
    loop {
        let mut future = pin!(tx.send_async(sent));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => {
                result.unwrap();
                sent += 1;
            }
            Poll::Pending => break, // dropped here, unsent
        }
        assert!(sent < 100, "the intake never filled");
    }
    let reader = std::thread::spawn(move || rx.filter_map(|(v, _)| v).collect::<Vec<u64>>());
    let started = std::time::Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < HANG,
            "room in the intake never woke the task"
        );
        std::thread::yield_now();
    }
    block_on(tx.send_async(1_000)).unwrap();
    drop(tx);
    let got = reader.join().unwrap();
    let mut expected: Vec<u64> = (0..sent).collect();
    expected.push(1_000);
    assert_eq!(got, expected, "the dropped send must not arrive");
}

#[test]
fn forward_async_waits_for_the_window_without_a_thread() {
    let d = Builder::new().bound(4).reorder_window(2).build::<u64>();
    let (tx, rx) = d.new("tx", "rx");
    let other = tx.clone("other");
    let far = std::thread::spawn(move || block_on(other.forward_async(Some(5), 5)));
    for stamp in 1..=4 {
        block_on(tx.forward_async(Some(stamp as u64), stamp)).unwrap();
    }
    far.join().unwrap().unwrap();
    drop(tx);
    let got: Vec<(u64, usize)> = rx.filter_map(|(v, s)| Some((v?, s))).collect();
    assert_eq!(got, (1..=5).map(|s| (s as u64, s)).collect::<Vec<_>>());
}
