//! Receivers created and dropped by the thousand (as a broker does per connection) must cost
//! nothing once they are gone: their slots and ids are reused, their names freed, their
//! memory returned. Everything here is counted (slots, bytes, messages), never timed.
//! The memory check is `tests/churn_memory.rs`, alone in its process.

mod common;

use common::{churn, settle};

#[test]
fn slots_are_reused_after_a_hundred_thousand_receivers() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("live-tx", "live");
    churn(&d, (&tx, &rx), 100_000, false);
    // The live pair, and at most one slot of a churned receiver whose close is not yet due.
    let stats = d.stats();
    assert!(
        stats.receiver_slots <= 2,
        "100k receivers created and dropped left a table of {} slots",
        stats.receiver_slots
    );
    // The names were freed: every churned name can be taken again.
    for i in (0..100_000).step_by(9_973) {
        let (_tx, _rx) = d
            .try_new("again", format!("churn-{i}"))
            .expect("a dropped receiver's name is free");
    }
}

#[test]
fn slots_are_reused_when_messages_were_in_flight() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("live-tx", "live");
    churn(&d, (&tx, &rx), 20_000, true);
    let stats = d.stats();
    assert!(stats.receiver_slots <= 2, "{} slots", stats.receiver_slots);
    // Every message sent to a churned receiver was either delivered (none were read) or
    // counted as undeliverable: nothing vanished silently.
    assert!(stats.undeliverable <= 20_000);
}

#[test]
fn broadcasters_do_not_pin_dropped_receivers() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("live-tx", "live");
    let broadcaster = tx.clone("b").into_broadcaster();
    let mut broadcasts_seen = 0;
    for i in 0..5_000 {
        let (ctx, crx) = d.new("churn-tx", format!("churn-{i}"));
        drop(ctx);
        drop(crx);
        // The broadcast finds the dropped receiver gone; its slot is freed while the
        // broadcaster lives.
        broadcaster.broadcast(i).unwrap();
        if i % 50 == 49 {
            broadcasts_seen += settle(&tx, &rx);
        }
    }
    broadcasts_seen += settle(&tx, &rx);
    let stats = d.stats();
    assert!(stats.receiver_slots <= 2, "{} slots", stats.receiver_slots);
    // The live receiver got every broadcast.
    assert_eq!(broadcasts_seen, 5_000);
}

#[test]
fn closes_held_behind_a_forwarded_broadcast_settle_once_it_is_released() {
    let d = clocked_dispatch::new::<u64>(64);
    let (tx, rx) = d.new("live-tx", "live");
    let broadcaster = tx.clone("b").into_broadcaster();
    // Stamp 2 is a broadcast held in the reorder window until stamp 1 is accounted for.
    broadcaster.broadcast_forward(Some(2), 2).unwrap();
    for i in 0..2_000 {
        let (ctx, crx) = d.new("churn-tx", format!("churn-{i}"));
        drop((ctx, crx));
    }
    tx.forward(None, 1).unwrap();
    assert_eq!(rx.recv(), Ok((Some(2), 2)));
    // Two more round trips: the closes queued behind the broadcast have settled after them.
    for stamp in 3..5 {
        tx.forward(Some(stamp as u64), stamp).unwrap();
        assert_eq!(rx.recv(), Ok((Some(stamp as u64), stamp)));
    }
    let stats = d.stats();
    assert!(stats.receiver_slots <= 2, "{} slots", stats.receiver_slots);
}
