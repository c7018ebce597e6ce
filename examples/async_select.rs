//! An async operator (tokio) that waits on three clocked receivers and a timer at once.
//!
//! Three sources stamp readings through one dispatcher; the operator `select!`s over
//! `recv_async` on each receiver and a 10 ms tick, keeps a running total per source, and
//! prints the totals on every tick. Watermarks tell it how far time has moved for a source
//! that is quiet. It ends when every source is closed, and checks its totals against what was
//! sent.
//!
//! ```text
//! cargo run --release --features async --example async_select
//! ```

use std::time::Duration;

use clocked_dispatch::ClockedReceiver;

/// What one receiver's read means to the operator.
fn take(
    read: Result<(Option<u64>, usize), std::sync::mpsc::RecvError>,
    total: &mut u64,
    open: &mut bool,
    seen: &mut usize,
) {
    match read {
        Ok((value, stamp)) => {
            *total += value.unwrap_or(0);
            *seen = stamp;
        }
        Err(_) => *open = false,
    }
}

async fn operator(mut receivers: [ClockedReceiver<u64>; 3]) -> [u64; 3] {
    let mut totals = [0u64; 3];
    let mut open = [true; 3];
    let mut seen = [0usize; 3];
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let [a, b, c] = &mut receivers;
    while open.iter().any(|&o| o) {
        // `recv_async` is cancel-safe: the branches that lose lose nothing.
        tokio::select! {
            read = a.recv_async(), if open[0] => take(read, &mut totals[0], &mut open[0], &mut seen[0]),
            read = b.recv_async(), if open[1] => take(read, &mut totals[1], &mut open[1], &mut seen[1]),
            read = c.recv_async(), if open[2] => take(read, &mut totals[2], &mut open[2], &mut seen[2]),
            _ = tick.tick() => println!("tick: totals {totals:?}, stamps seen {seen:?}"),
        }
    }
    totals
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let d = clocked_dispatch::new::<u64>(64);
    let mut receivers = Vec::new();
    let mut sources = Vec::new();
    for k in 0..3u64 {
        let (tx, rx) = d.new(format!("source{k}"), format!("in{k}"));
        receivers.push(rx);
        sources.push(tokio::spawn(async move {
            for i in 1..=2_000u64 {
                tx.send_async(i * (k + 1))
                    .await
                    .expect("the operator is reading");
                if i % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    let receivers: [ClockedReceiver<u64>; 3] = match receivers.try_into() {
        Ok(receivers) => receivers,
        Err(_) => unreachable!("three receivers were made"),
    };
    let totals = operator(receivers).await;
    for source in sources {
        source.await.expect("source");
    }
    let expected: Vec<u64> = (1..=3u64).map(|k| k * 2_000 * 2_001 / 2).collect();
    println!("final totals {totals:?}");
    assert_eq!(totals.to_vec(), expected);
}
