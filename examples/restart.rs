//! A journaled dispatcher that crashes and resumes.
//!
//! ```text
//! cargo run --release --example restart
//! ```
//!
//! The program runs itself as a child process that journals 1,000 orders, processes (and
//! commits) the first 600, then dies with `abort()`: no destructor runs, nothing is flushed
//! or closed. The parent then opens the same journal: the clock resumes above the last stamp,
//! and a receiver created under the same name gets the 400 orders that were not committed,
//! first, then new traffic.

use std::process::Command;

use clocked_dispatch::{Builder, Durability};

const ORDERS: u64 = 1_000;
const PROCESSED: u64 = 600;

fn child(dir: &str) {
    let d = Builder::new()
        .bound(64)
        .inbox_capacity(ORDERS as usize)
        .journal(dir)
        .durability(Durability::Batch)
        .build_journaled::<String>()
        .expect("open the journal");
    let (tx, orders) = d.new("shop", "billing");
    for n in 0..ORDERS {
        tx.send(format!("order {n}")).expect("send");
    }
    tx.flush().expect("every order is on disk");
    for _ in 0..PROCESSED {
        let (order, stamp) = orders.recv().expect("an order");
        assert!(order.is_some());
        orders.commit(stamp).expect("commit");
    }
    println!("child: journaled {ORDERS} orders, billed and committed {PROCESSED}, crashing now");
    std::process::abort();
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let (Some(flag), Some(dir)) = (args.next(), args.next()) {
        if flag == "--child" {
            return child(&dir);
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_str().expect("a UTF-8 path").to_string();
    let status = Command::new(std::env::current_exe().expect("this program"))
        .args(["--child", &path])
        .status()
        .expect("run the child");
    println!("child exited: {status}");

    let d = Builder::new()
        .bound(64)
        .journal(&path)
        .durability(Durability::Batch)
        .build_journaled::<String>()
        .expect("reopen the journal");
    let report = d.recovery().expect("journaled");
    println!(
        "recovered: clock at {}, {} messages in {} segment(s), {} torn bytes cut",
        report.last_stamp, report.messages, report.segments, report.truncated_bytes
    );
    let (tx, billing) = d.new("shop", "billing");
    tx.send("order after the restart".to_string())
        .expect("send");
    let mut replayed = 0;
    loop {
        let (order, stamp) = billing.recv().expect("an order");
        let Some(order) = order else { continue };
        if order == "order after the restart" {
            println!("then live traffic: {order:?} at stamp {stamp}");
            assert_eq!(stamp as u64, ORDERS + 1, "stamps go on from the journal's");
            break;
        }
        if replayed == 0 {
            println!("replay starts with {order:?} at stamp {stamp}");
        }
        replayed += 1;
    }
    println!("replayed {replayed} orders that were not committed");
    assert_eq!(replayed, ORDERS - PROCESSED);
}
