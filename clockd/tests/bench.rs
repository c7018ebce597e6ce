//! `clockd bench` against a real `clockd serve`: every message published reaches every
//! subscriber of its topic, and the summary says so.

mod server;

use std::process::Command;

fn bench(broker: &server::Broker, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(["bench", "--json", "--duration", "0.5", "--addr"])
        .arg(broker.addr.to_string())
        .args(args)
        .output()
        .expect("clockd bench runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn a_fan_out_run_delivers_every_message_to_every_subscriber() {
    let broker = server::Broker::start(&[]);
    let summary = bench(
        &broker,
        &["--subscribers", "4", "--topics", "1", "--payload", "100"],
    );
    assert_eq!(summary["errors"], 0);
    let seconds = summary["seconds"].as_f64().unwrap();
    let published = (summary["published_per_sec"].as_f64().unwrap() * seconds).round();
    let delivered = (summary["delivered_per_sec"].as_f64().unwrap() * seconds).round();
    assert!(published > 0.0);
    assert_eq!(
        delivered,
        4.0 * published,
        "each of 4 subscribers got every message"
    );
    let p50 = summary["p50_us"].as_u64().unwrap();
    let p99 = summary["p99_us"].as_u64().unwrap();
    assert!(
        p50 >= 1 && p50 <= p99,
        "percentiles in order: {p50} <= {p99}"
    );
    assert_eq!(broker.metric("clockd_messages_in_total"), published as u64);
}

#[test]
fn messages_spread_over_topics_reach_only_their_subscribers() {
    let broker = server::Broker::start(&[]);
    // Two publishers over 4 topics, one subscriber per topic: each message reaches one.
    let summary = bench(
        &broker,
        &[
            "--publishers",
            "2",
            "--subscribers",
            "4",
            "--topics",
            "4",
            "--payload",
            "32",
        ],
    );
    let seconds = summary["seconds"].as_f64().unwrap();
    let published = (summary["published_per_sec"].as_f64().unwrap() * seconds).round();
    let delivered = (summary["delivered_per_sec"].as_f64().unwrap() * seconds).round();
    assert!(published > 0.0);
    assert_eq!(delivered, published);
}

#[test]
fn bad_arguments_and_an_absent_server_fail_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(["bench", "--subscribers", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("clockd: "), "{stderr}");
    // Nothing listens on port 1 of loopback.
    let output = Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(["bench", "--addr", "127.0.0.1:1", "--duration", "0.1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot subscribe at 127.0.0.1:1"),
        "{stderr}"
    );
}
