//! `clockd bench`: a pub/sub load generator for `clockd serve` and, for comparison, for
//! `redis-server` (RESP `PUBLISH`/`SUBSCRIBE`; see [`wire`]).
//!
//! Publishers publish as fast as the window lets them: a publisher waits while the messages
//! published and not yet delivered to every subscriber exceed `--window` (a closed loop), so
//! the figures are what the server sustains, not how much it can buffer, and latency is
//! measured under that load rather than in a queue that grows for the whole run. Each payload
//! carries its send time; each subscriber records every delivery's latency in an
//! HdrHistogram (microseconds, 3 significant figures), merged at the end.
//!
//! Message `i` of publisher `p` goes to topic `(i + p) % topics`; subscriber `s` follows
//! topic `s % topics`. So `--topics 1 --subscribers 8` is a 1 → 8 fan-out.

pub mod wire;

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Failure, Outcome};
use wire::{Protocol, Subscriber};

/// `clockd bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8889")]
    addr: SocketAddr,
    /// What the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Topics)]
    protocol: Protocol,
    /// Publishing connections.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribing connections.
    #[arg(long, default_value_t = 8)]
    subscribers: usize,
    /// Topics the messages are spread over.
    #[arg(long, default_value_t = 1)]
    topics: usize,
    /// Bytes per message payload (at least its 20-byte timestamp).
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Messages published and not yet delivered everywhere before publishers wait.
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Counters every task updates.
struct Shared {
    start: Instant,
    published: AtomicU64,
    delivered: AtomicU64,
    /// Set once publishing ended and the subscribers caught up (or stopped getting anything).
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn now_nanos(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// Runs the benchmark and prints its summary.
pub fn run(args: BenchArgs) -> Result<Outcome, Failure> {
    if args.publishers == 0 || args.subscribers == 0 || args.topics == 0 {
        return Err(Failure::new(
            "publishers, subscribers and topics must be at least 1",
        ));
    }
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        return Err(Failure::new(
            "--duration must be between 0 and 3600 seconds",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))?;
    let report = runtime.block_on(measure(&args))?;
    report.print(&args);
    Ok(Outcome::Done)
}

/// What a run measured.
struct Report {
    seconds: f64,
    published: u64,
    delivered: u64,
    errors: u64,
    latency: Histogram<u64>,
}

async fn measure(args: &BenchArgs) -> Result<Report, Failure> {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        published: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        stop: tokio::sync::watch::channel(false).0,
    });
    let failed = |what: &str, e: std::io::Error| Failure::new(format!("{what} {}: {e}", args.addr));
    let mut subscribers = Vec::new();
    for s in 0..args.subscribers {
        let topic = vec![format!("bench-{}", s % args.topics)];
        let subscriber = Subscriber::connect(args.protocol, args.addr, &topic)
            .await
            .map_err(|e| failed("cannot subscribe at", e))?;
        subscribers.push(tokio::spawn(subscribe(subscriber, shared.clone())));
    }
    // How many subscribers each message reaches, on average.
    let fanout = args.subscribers as f64 / args.topics.min(args.subscribers) as f64;
    let mut publishers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    for p in 0..args.publishers {
        let socket = TcpStream::connect(args.addr)
            .await
            .map_err(|e| failed("cannot connect to", e))?;
        let _ = socket.set_nodelay(true);
        let job = Publisher {
            id: p,
            topics: args.topics,
            payload: args.payload,
            window: args.window,
            fanout,
            protocol: args.protocol,
            deadline,
        };
        publishers.push(tokio::spawn(job.run(socket, shared.clone())));
    }
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(shared.clone())));
    let started = Instant::now();
    let mut errors = 0;
    for publisher in publishers {
        errors += publisher.await.unwrap_or(0);
    }
    let seconds = started.elapsed().as_secs_f64();
    settle(&shared).await;
    let _ = shared.stop.send(true);
    let mut latency = new_histogram();
    for subscriber in subscribers {
        if let Ok(histogram) = subscriber.await {
            let _ = latency.add(histogram);
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[K");
    }
    Ok(Report {
        seconds,
        published: shared.published.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        errors,
        latency,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant figures; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// One publishing connection.
struct Publisher {
    id: usize,
    topics: usize,
    payload: usize,
    window: u64,
    fanout: f64,
    protocol: Protocol,
    deadline: Instant,
}

impl Publisher {
    /// Publishes until the deadline; returns the error replies the server sent.
    async fn run(self, socket: TcpStream, shared: Arc<Shared>) -> u64 {
        let (read, mut write) = socket.into_split();
        let replies = tokio::spawn(wire::drain_replies(self.protocol, read));
        let names: Vec<String> = (0..self.topics).map(|t| format!("bench-{t}")).collect();
        let mut batch = Vec::new();
        if self.protocol == Protocol::Nats {
            batch.extend_from_slice(wire::NATS_CONNECT);
        }
        let mut i = 0usize;
        while Instant::now() < self.deadline {
            let published = shared.published.load(Ordering::Relaxed);
            let delivered = shared.delivered.load(Ordering::Relaxed) as f64 / self.fanout;
            let room = (self.window as f64 - (published as f64 - delivered)).max(0.0) as u64;
            if room == 0 {
                tokio::time::sleep(Duration::from_micros(50)).await;
                continue;
            }
            if !batch.starts_with(b"CONNECT") {
                batch.clear();
            }
            let count = room.min(64);
            for _ in 0..count {
                let topic = &names[(i + self.id) % self.topics];
                let payload = wire::payload(shared.now_nanos(), self.payload);
                wire::encode_publish(self.protocol, topic, &payload, &mut batch);
                i += 1;
            }
            shared.published.fetch_add(count, Ordering::Relaxed);
            if write.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
        }
        let _ = write.shutdown().await;
        drop(write);
        tokio::time::timeout(Duration::from_secs(5), replies)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
    }
}

/// After publishing: waits until deliveries stop coming (500 ms without one, 10 s at most).
async fn settle(shared: &Shared) {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last = shared.delivered.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(500) {
            return;
        }
    }
}

/// Reads deliveries until told to stop; returns the latencies it saw.
async fn subscribe(mut subscriber: Subscriber, shared: Arc<Shared>) -> Histogram<u64> {
    let mut latency = new_histogram();
    let mut stop = shared.stop.subscribe();
    loop {
        // Cancelling a read loses a partly read delivery: only done at the very end.
        let payload = tokio::select! {
            biased;
            _ = stop.changed() => break,
            payload = subscriber.next() => match payload {
                Ok(payload) => payload,
                Err(_) => break,
            },
        };
        if let Some(sent) = wire::sent_nanos(payload) {
            let micros = shared.now_nanos().saturating_sub(sent) / 1_000;
            let _ = latency.record(micros.max(1));
        }
        shared.delivered.fetch_add(1, Ordering::Relaxed);
    }
    latency
}

/// A progress line on stderr, once a second.
async fn progress(shared: Arc<Shared>) {
    let mut last = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (
            shared.published.load(Ordering::Relaxed),
            shared.delivered.load(Ordering::Relaxed),
        );
        eprint!(
            "\r\x1b[K[{:>5.1} s] published {:>9} msg/s   delivered {:>9} msg/s",
            shared.start.elapsed().as_secs_f64(),
            now.0 - last.0,
            now.1 - last.1
        );
        let _ = std::io::stderr().flush();
        last = now;
    }
}

impl Report {
    fn print(&self, args: &BenchArgs) {
        let rate = |n: u64| n as f64 / self.seconds;
        let q = |quantile: f64| self.latency.value_at_quantile(quantile);
        if args.json {
            let summary = serde_json::json!({
                "protocol": format!("{:?}", args.protocol).to_lowercase(),
                "publishers": args.publishers,
                "subscribers": args.subscribers,
                "topics": args.topics,
                "payload": args.payload,
                "seconds": self.seconds,
                "published_per_sec": rate(self.published),
                "delivered_per_sec": rate(self.delivered),
                "errors": self.errors,
                "p50_us": q(0.5),
                "p90_us": q(0.9),
                "p99_us": q(0.99),
                "p999_us": q(0.999),
                "max_us": self.latency.max(),
            });
            println!("{summary}");
            return;
        }
        println!(
            "clockd bench: {:?} at {}, {} publisher(s) -> {} subscriber(s) on {} topic(s), {}-byte payloads, {:.1} s",
            args.protocol, args.addr, args.publishers, args.subscribers, args.topics, args.payload, self.seconds
        );
        println!(
            "published  {:>12.0} msg/s  ({} messages)",
            rate(self.published),
            self.published
        );
        println!(
            "delivered  {:>12.0} msg/s  ({} deliveries, {:.1} MB/s)",
            rate(self.delivered),
            self.delivered,
            rate(self.delivered) * args.payload as f64 / 1e6
        );
        println!(
            "latency    p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            self.latency.max()
        );
        println!("errors     {}", self.errors);
    }
}
