//! A composed pipeline with windowed aggregation, checked against a sequential computation.
//!
//! ```text
//!  source ─► serializing dispatcher ─► 4 workers ─► forwarding dispatcher ─► sink
//!            (stamps every input)      (parse,        (back in stamp order)   (sum per window
//!                                       filter)                                of 1,000 stamps)
//! ```
//!
//! Each input is a reading; the workers drop invalid ones (their stamps still flow on as
//! `None`); the sink sums the valid readings per window of 1,000 stamps and closes each window
//! as soon as its watermark passes the window's end, even when the window's last readings were
//! invalid. Then the same is computed sequentially and compared.
//!
//! ```text
//! cargo run --release --example pipeline
//! ```

use std::thread;
use std::time::Instant;

use clocked_dispatch::pipeline::{spawn_stage, windows, Window};
use clocked_dispatch::Builder;

const READINGS: u64 = 2_000_000;
const WORKERS: usize = 4;
const WINDOW: usize = 1_000;

/// The raw input: a sensor id and a value, valid unless the value is a multiple of 7.
fn reading(i: u64) -> (u32, u64) {
    ((i % 97) as u32, i.wrapping_mul(2_654_435_761) % 10_000)
}

/// What a worker does to one reading: the value in tenths if valid.
fn process((sensor, value): (u32, u64)) -> Option<u64> {
    (value % 7 != 0).then(|| value * 10 + sensor as u64 % 10)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let top = Builder::new().bound(1024).build::<Option<(u32, u64)>>();
    let bottom = Builder::new().bound(1024).build::<Option<u64>>();
    let (to_sink, sink) = bottom.new("to-sink", "sink");

    let mut inputs = Vec::new();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (input, worker_rx) = top.new(format!("source-{w}"), format!("worker-{w}"));
        inputs.push(input);
        let output = to_sink.clone(format!("worker-{w}"));
        workers.push(spawn_stage(worker_rx, vec![output], |r| {
            process(r).map(|v| (0, v))
        })?);
    }
    drop((to_sink, top, bottom));

    let start = Instant::now();
    let source = thread::spawn(move || {
        for i in 0..READINGS {
            let worker = (i as usize) % WORKERS;
            inputs[worker]
                .send(Some(reading(i)))
                .expect("workers outlive the source");
        }
        start.elapsed()
    });

    let sink_start = Instant::now();
    let closed: Vec<Window<u64>> = windows(
        sink,
        WINDOW,
        || 0u64,
        |sum, v: Option<u64>| sum + v.unwrap_or(0),
    )
    .collect();
    let sink_time = sink_start.elapsed();
    let source_time = source.join().expect("source panicked");

    println!(
        "source:  {READINGS} readings stamped in {source_time:.2?} ({:.2} M/s)",
        READINGS as f64 / source_time.as_secs_f64() / 1e6
    );
    for (w, worker) in workers.into_iter().enumerate() {
        let report = worker.join()?;
        println!(
            "worker {w}: {} passed, {} filtered ({:.2} M/s)",
            report.passed,
            report.filtered,
            (report.passed + report.filtered) as f64 / sink_time.as_secs_f64() / 1e6
        );
    }
    println!(
        "sink:    {} windows of {WINDOW} stamps in {sink_time:.2?} ({:.2} M stamps/s end to end)",
        closed.len(),
        READINGS as f64 / sink_time.as_secs_f64() / 1e6
    );

    // The same, sequentially.
    let mut expected = vec![0u64; (READINGS as usize).div_ceil(WINDOW)];
    for i in 0..READINGS {
        if let Some(v) = process(reading(i)) {
            expected[i as usize / WINDOW] += v; // stamp i + 1 is in window i / WINDOW
        }
    }
    let got: Vec<u64> = closed.iter().map(|w| w.value).collect();
    let in_order = closed
        .iter()
        .enumerate()
        .all(|(k, w)| w.first == k * WINDOW + 1 && w.last == (k + 1) * WINDOW && w.complete);
    assert!(in_order, "windows out of order or incomplete");
    assert_eq!(
        got, expected,
        "the pipeline disagrees with the sequential computation"
    );
    println!(
        "verified: {} window sums equal the sequential computation, in order",
        got.len()
    );
    Ok(())
}
