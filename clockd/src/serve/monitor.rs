//! `--monitor ADDR`: `/metrics` in the Prometheus text format, and `/`, a status page that
//! refreshes itself every two seconds. A minimal HTTP/1.0 responder: one request per
//! connection, `GET` only, a request head of at most 8 KiB read within 5 seconds.
//!
//! Everything is read from counters and [`Dispatcher::status`](clocked_dispatch::Dispatcher::status),
//! which takes no lock the dispatcher thread waits on, so scraping never slows delivery.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::broker::Broker;

/// The longest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves monitor requests until the runtime stops.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(&broker, socket)).await;
        });
    }
}

async fn answer(broker: &Broker, mut socket: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST {
            return respond(
                &mut socket,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too long\n",
            )
            .await;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/metrics") => {
            let body = metrics(broker);
            respond(&mut socket, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/") => {
            let body = page(broker);
            respond(&mut socket, "200 OK", "text/html; charset=utf-8", &body).await
        }
        ("GET", _) => respond(&mut socket, "404 Not Found", "text/plain", "not found\n").await,
        _ => {
            respond(
                &mut socket,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

/// The resident set size of this process, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric with its HELP and TYPE lines.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The Prometheus text exposition.
pub fn metrics(broker: &Broker) -> String {
    let counters = &broker.counters;
    let stats = broker.dispatcher().stats();
    let status = broker.dispatcher().status();
    let mut out = String::new();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    metric(
        &mut out,
        "clockd_connections",
        "gauge",
        "Connections open now.",
        counters.connections.load(Ordering::Relaxed),
    );
    metric(
        &mut out,
        "clockd_connections_accepted_total",
        "counter",
        "Connections accepted.",
        load(&counters.accepted),
    );
    metric(
        &mut out,
        "clockd_topics",
        "gauge",
        "Topics.",
        broker.topic_count(),
    );
    metric(
        &mut out,
        "clockd_nats_wildcard_subscriptions",
        "gauge",
        "NATS subscriptions with * or > (each joins every topic it matches).",
        broker.wildcard_count(),
    );
    metric(
        &mut out,
        "clockd_messages_in_total",
        "counter",
        "Messages published.",
        load(&counters.messages_in),
    );
    metric(
        &mut out,
        "clockd_messages_out_total",
        "counter",
        "Messages written to subscribers.",
        load(&counters.messages_out),
    );
    metric(
        &mut out,
        "clockd_slow_disconnects_total",
        "counter",
        "Connections cut off for reading too slowly.",
        load(&counters.slow_disconnects),
    );
    metric(
        &mut out,
        "clockd_errors_total",
        "counter",
        "ERR lines sent.",
        load(&counters.errors),
    );
    metric(
        &mut out,
        "clockd_clock",
        "gauge",
        "The dispatcher's published clock (last stamp).",
        stats.clock,
    );
    metric(
        &mut out,
        "clockd_receivers",
        "gauge",
        "Live receivers (one per subscribed connection).",
        status.receivers.len(),
    );
    metric(
        &mut out,
        "clockd_receiver_slots",
        "gauge",
        "The dispatcher's receiver table size.",
        stats.receiver_slots,
    );
    metric(
        &mut out,
        "clockd_resident_memory_bytes",
        "gauge",
        "Resident set size of the broker.",
        resident_bytes(),
    );
    let _ = writeln!(out, "# HELP clockd_subscriber_backlog Messages waiting for a connection, in memory and spilled.\n# TYPE clockd_subscriber_backlog gauge");
    for r in &status.receivers {
        let _ = writeln!(
            out,
            "clockd_subscriber_backlog{{receiver=\"{}\"}} {}",
            label(&r.name),
            r.backlog()
        );
    }
    let _ = writeln!(out, "# HELP clockd_subscriber_lag Stamps published past what a connection has read.\n# TYPE clockd_subscriber_lag gauge");
    for r in &status.receivers {
        let _ = writeln!(
            out,
            "clockd_subscriber_lag{{receiver=\"{}\"}} {}",
            label(&r.name),
            r.lag
        );
    }
    let topics = broker.topic_table();
    let _ = writeln!(out, "# HELP clockd_topic_subscribers Subscribers of a topic.\n# TYPE clockd_topic_subscribers gauge");
    for (name, subscribers, _) in &topics {
        let _ = writeln!(
            out,
            "clockd_topic_subscribers{{topic=\"{}\"}} {subscribers}",
            label(name)
        );
    }
    let _ = writeln!(out, "# HELP clockd_topic_messages_total Messages published to a topic.\n# TYPE clockd_topic_messages_total counter");
    for (name, _, published) in &topics {
        let _ = writeln!(
            out,
            "clockd_topic_messages_total{{topic=\"{}\"}} {published}",
            label(name)
        );
    }
    out
}

/// Text made safe to put in HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The status page: the counters, then a table per topic and per subscriber.
fn page(broker: &Broker) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>clockd</title><style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style></head><body><h1>clockd</h1><table>",
    );
    for line in metrics(broker).lines() {
        if line.starts_with('#') || line.contains('{') {
            continue;
        }
        if let Some((name, value)) = line.split_once(' ') {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                html(name),
                html(value)
            );
        }
    }
    out.push_str("</table><h2>Topics</h2><table><tr><th>topic</th><th>subscribers</th><th>messages</th></tr>");
    for (name, subscribers, published) in broker.topic_table() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{subscribers}</td><td>{published}</td></tr>",
            html(&name)
        );
    }
    out.push_str(
        "</table><h2>Subscribers</h2><table><tr><th>receiver</th><th>backlog</th><th>lag</th></tr>",
    );
    for r in broker.dispatcher().status().receivers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&r.name),
            r.backlog(),
            r.lag
        );
    }
    out.push_str("</table></body></html>\n");
    out
}
