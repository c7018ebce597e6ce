//! Two receivers of one dispatcher, fused into one stream in stamp order, summed in windows
//! of 100 stamps by the pipeline's window sink.
//!
//! Two sender threads write readings to two receivers ("left" and "right"); `fuse` merges
//! them, and `windows` closes each window as soon as both inputs have passed its end (the fused
//! watermark), whichever input the last readings went to. The windows are checked to tile the
//! stamps with every reading counted once.
//!
//! ```text
//! cargo run --release --example fuse_windows
//! ```

use std::thread;

use clocked_dispatch::pipeline::windows;

const READINGS: u64 = 10_000;
const WIDTH: usize = 100;

fn main() {
    let d = clocked_dispatch::new::<(u64, u64)>(256);
    let (left_tx, left) = d.new("left_tx", "left");
    let (right_tx, right) = d.new("right_tx", "right");
    let writers: Vec<_> = [(left_tx, 0u64), (right_tx, 1u64)]
        .into_iter()
        .map(|(tx, side)| {
            thread::spawn(move || {
                for i in (side..READINGS).step_by(2) {
                    tx.send((i, i % 7)).expect("the sink is reading");
                }
            })
        })
        .collect();
    let fused = clocked_dispatch::fuse(vec![left, right]).expect("one dispatcher");

    let mut sums = Vec::new();
    for window in windows(fused, WIDTH, || 0u64, |sum, (_, value)| sum + value) {
        sums.push((window.first, window.last, window.value, window.count));
    }
    for writer in writers {
        writer.join().expect("writer");
    }

    // Every stamp carries one reading (the dispatcher serves only these two receivers), so
    // every window holds exactly WIDTH readings, the windows tile the stamps 1..=READINGS, and
    // together they sum to the sum of all readings, whichever receiver each reading took.
    let mut next = 1;
    for &(first, last, _, count) in &sums {
        assert_eq!(first, next, "windows must tile the stamps");
        assert_eq!(count as usize, WIDTH, "window {first}..={last}");
        next = last + 1;
    }
    assert_eq!(next as u64, READINGS + 1);
    let total: u64 = sums.iter().map(|w| w.2).sum();
    assert_eq!(total, (0..READINGS).map(|i| i % 7).sum::<u64>());
    println!(
        "{} windows of {WIDTH} stamps over {READINGS} readings from two receivers; first: {:?}",
        sums.len(),
        sums.first()
    );
}
