//! Helpers shared by the churn tests.

use std::time::Duration;

use clocked_dispatch::{ClockedReceiver, ClockedSender, Dispatcher};

/// The value [`settle`] sends to itself.
pub const MARKER: u64 = u64::MAX;

/// Makes every join, leave and close queued before it settled: the dispatcher applies control
/// messages before the data message that follows them, and settles closes at the end of the
/// batch; the second round trip starts after that batch ended. Returns how many other data
/// messages it read on the way.
pub fn settle(tx: &ClockedSender<u64>, rx: &ClockedReceiver<u64>) -> usize {
    let mut others = 0;
    for _ in 0..2 {
        tx.send(MARKER).unwrap();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
                (Some(MARKER), _) => break,
                (Some(_), _) => others += 1,
                (None, _) => {}
            }
        }
    }
    others
}

/// Creates and drops `cycles` pairs (half dropping the sender first), settling every 1,000.
pub fn churn(
    d: &Dispatcher<u64>,
    live: (&ClockedSender<u64>, &ClockedReceiver<u64>),
    cycles: usize,
    send_first: bool,
) {
    for i in 0..cycles {
        let (tx, rx) = d.new("churn-tx", format!("churn-{i}"));
        if send_first {
            tx.send(i as u64).unwrap();
        }
        if i % 2 == 0 {
            drop(tx);
            drop(rx);
        } else {
            drop(rx);
            drop(tx);
        }
        if i % 1_000 == 999 {
            settle(live.0, live.1);
        }
    }
    settle(live.0, live.1);
}
