//! `clockd serve`: a pub/sub broker on the clocked dispatcher, speaking the telnet line
//! protocol of the `topics` demo (see [`command`] for the commands).
//!
//! The broker is a thin shell (DESIGN.md, "Beyond one process"): tokio does the network, the
//! synchronous library does the clock, ordering, fan-out and spill. The split follows
//! mini-redis:
//!
//! * [`lines`]: frames (lines with a length limit);
//! * [`command`]: a line into a [`command::Command`], or an `ERR` reason;
//! * [`broker`]: topics as multicast groups of one dispatcher, limits, counters;
//! * [`connection`]: one task reading commands; [`writer`]: one task writing deliveries,
//!   replies and replays;
//! * [`retained`]: a topic's retention and compaction, applied to replays;
//! * [`store`]: topics' options on disk (`--data`);
//! * [`monitor`]: `/metrics` and a status page.
//!
//! Every published message gets a global stamp; a connection receives its topics' messages
//! in stamp order. Without `--data`, the dispatcher spills a slow connection's backlog to a
//! directory (`--spill-dir`, by default a fresh one in the system's temporary directory,
//! removed on a clean shutdown) so that it never waits for one connection. With `--data DIR`
//! it is journaled instead: every message is written to `DIR/journal` before it is delivered,
//! the clock resumes after a restart, topics keep their history (replays, durable
//! subscriptions), and a slow connection reads its backlog back from the journal.

pub mod broker;
pub mod command;
pub mod connection;
pub mod lines;
pub mod monitor;
pub mod nats;
pub mod published;
pub mod retained;
pub mod store;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clocked_dispatch::{Builder, DiskFull, Dispatcher, Durability};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::{Failure, Outcome};
use broker::{Broker, Limits, Published, Storage};

/// `clockd serve`: run the broker.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8889")]
    listen: SocketAddr,
    /// Also speak the NATS core protocol on this address (see the README's "NATS" section).
    #[arg(long)]
    nats: Option<SocketAddr>,
    /// With `--nats`: the largest payload a NATS client may publish, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    nats_max_payload: usize,
    /// With `--nats`: seconds between keep-alive PINGs to a NATS client.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    nats_ping_interval: u64,
    /// With `--nats`: unanswered PINGs before a NATS client is closed as stale.
    #[arg(long, default_value_t = 2)]
    nats_max_pings_out: u32,
    /// Serve `/metrics` and a status page on this address.
    #[arg(long)]
    monitor: Option<SocketAddr>,
    /// Require `AUTH TOKEN` as every connection's first command.
    #[arg(long)]
    token: Option<String>,
    /// Seconds a connection may take to send `AUTH` when `--token` is set.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    auth_timeout: u64,
    /// Longest line accepted, in bytes; a longer one closes the connection.
    #[arg(long, default_value_t = 1 << 20)]
    max_line: usize,
    /// Connections open at once; more are refused with an ERR line.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Subscriptions per connection.
    #[arg(long, default_value_t = 10_000)]
    max_subscriptions: usize,
    /// Topics in all (topics are never deleted).
    #[arg(long, default_value_t = 1_000_000)]
    max_topics: usize,
    /// Durable subscriptions in all (`SUB topic AS name`; each is kept in the journal).
    #[arg(long, default_value_t = 100_000)]
    max_durable: usize,
    /// Messages waiting for one connection before it is disconnected.
    #[arg(long, default_value_t = 1_000_000)]
    max_backlog: u64,
    /// Seconds one write to a client may take before it is disconnected (at most a day).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    write_timeout: u64,
    /// Seconds of silence on a connection before TCP keepalive probes check its peer (a
    /// half-open connection is closed after 3 unanswered probes, 5 s apart).
    #[arg(long, default_value_t = 60)]
    keepalive: u64,
    /// Keep a journal in this directory (created): the clock and every topic's history
    /// survive a restart, `SUB topic FROM stamp`, `SUB topic AS name`, `COMMIT` and `CREATE`
    /// options work. Without it, nothing is kept and slow connections spill instead.
    #[arg(long)]
    data: Option<PathBuf>,
    /// With `--data`: when a message counts as stored. `none`: written to the operating
    /// system before it is delivered (survives the broker being killed, not a power loss);
    /// `batch`: also synced, once per dispatcher batch, before delivery; `always`: as
    /// `batch`.
    #[arg(long, value_enum, default_value_t = DurabilityArg::None)]
    durability: DurabilityArg,
    /// With `--data`: delete the oldest journal segments once the journal is over this many
    /// bytes (0: no limit).
    #[arg(long, default_value_t = 0)]
    retention_bytes: u64,
    /// With `--data`: delete journal segments older than this many seconds (0: no limit).
    #[arg(long, default_value_t = 0)]
    retention_age: u64,
    /// Where slow connections' backlogs spill (created; default: a fresh temporary one).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Bytes of spill files one connection may have; a connection is cut off at three
    /// quarters of it (past the budget, its oldest spilled messages would be dropped).
    #[arg(long, default_value_t = 1 << 30)]
    spill_limit: u64,
    /// Messages the dispatcher's intake holds, and each connection's in-memory queue.
    #[arg(long, default_value_t = 4096)]
    bound: usize,
}

/// `--durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// Written before delivered, never synced.
    None,
    /// Synced once per batch, before delivery.
    Batch,
    /// As `batch`.
    Always,
}

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<Outcome, Failure> {
    let spill_dir = args.spill_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("clockd-spill-{}", std::process::id()))
    });
    let (dispatcher, storage) = match &args.data {
        Some(data) => {
            let (dispatcher, storage) = journaled(&args, data)?;
            (dispatcher, Some(storage))
        }
        None => (spilling(&args, &spill_dir)?, None),
    };
    let limits = Limits {
        max_line: args.max_line,
        max_connections: args.max_connections,
        max_subscriptions: args.max_subscriptions,
        max_topics: args.max_topics,
        max_durable: args.max_durable,
        max_backlog: args.max_backlog,
        max_spilled_bytes: args.spill_limit / 4 * 3,
        write_timeout: Duration::from_secs(args.write_timeout),
        token: args.token.clone(),
        keepalive: Duration::from_secs(args.keepalive.clamp(1, 86_400)),
        auth_timeout: Duration::from_secs(args.auth_timeout),
    };
    let broker = Broker::new(dispatcher, limits, storage)
        .map_err(|e| Failure::new(format!("cannot start the broker: {e}")))?;
    let broker = Arc::new(broker);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("clockd-io")
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(serve(broker, &args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if args.data.is_none() {
        let _ = std::fs::remove_dir_all(&spill_dir);
    }
    result
}

/// The dispatcher of a broker with `--data`, and its topics file.
fn journaled(
    args: &ServeArgs,
    data: &std::path::Path,
) -> Result<(Dispatcher<Published>, Storage), Failure> {
    let failed =
        |e: &dyn std::fmt::Display| Failure::new(format!("cannot open {}: {e}", data.display()));
    std::fs::create_dir_all(data).map_err(|e| failed(&e))?;
    let durability = match args.durability {
        DurabilityArg::None => Durability::None,
        DurabilityArg::Batch => Durability::Batch,
        DurabilityArg::Always => Durability::Always,
    };
    let mut builder = Builder::new()
        .bound(args.bound)
        .thread_name("clockd-dispatcher")
        .journal(data.join("journal"))
        .durability(durability);
    if args.retention_bytes > 0 {
        builder = builder.journal_retention_bytes(args.retention_bytes);
    }
    if args.retention_age > 0 {
        builder = builder.journal_retention_age(Duration::from_secs(args.retention_age));
    }
    let dispatcher = builder
        .build_journaled::<Published>()
        .map_err(|e| failed(&e))?;
    let storage = Storage::open(data, &dispatcher).map_err(|e| failed(&e))?;
    Ok((dispatcher, storage))
}

/// The dispatcher of a broker without `--data`: slow connections spill.
fn spilling(
    args: &ServeArgs,
    spill_dir: &std::path::Path,
) -> Result<Dispatcher<Published>, Failure> {
    Builder::new()
        .bound(args.bound)
        .thread_name("clockd-dispatcher")
        .spill_to(spill_dir)
        .disk_limit(args.spill_limit)
        // A connection at its disk budget loses its oldest spilled messages rather than
        // hold up publishers (`Reject` would refuse every publish, to every topic, while any
        // one connection sits at its limit; `Block` would stall them). It is cut off at three
        // quarters of the budget anyway (see `connection`), so this is a last resort; small
        // segments keep what stays on disk above that mark once a segment was dropped.
        .when_disk_full(DiskFull::DropOldest)
        .segment_size((args.spill_limit / 16).max(64 * 1024))
        .build_spilling::<Published>()
        .map_err(|e| Failure::new(format!("cannot start the dispatcher: {e}")))
}

async fn serve(broker: Arc<Broker>, args: &ServeArgs) -> Result<Outcome, Failure> {
    let listener = listen(args.listen)
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot read the listening address: {e}")))?;
    if let Some(addr) = args.monitor {
        let monitor =
            listen(addr).map_err(|e| Failure::new(format!("cannot listen on {addr}: {e}")))?;
        let monitor_addr = monitor
            .local_addr()
            .map_err(|e| Failure::new(format!("cannot read the monitor address: {e}")))?;
        println!("clockd: monitor on http://{monitor_addr}/");
        tokio::spawn(monitor::serve(broker.clone(), monitor));
    }
    if let Some(addr) = args.nats {
        let nats =
            listen(addr).map_err(|e| Failure::new(format!("cannot listen on {addr}: {e}")))?;
        let nats_addr = nats
            .local_addr()
            .map_err(|e| Failure::new(format!("cannot read the NATS address: {e}")))?;
        let options = nats::Options {
            addr: nats_addr,
            max_payload: args.nats_max_payload,
            ping_interval: Duration::from_secs(args.nats_ping_interval),
            max_pings_out: args.nats_max_pings_out,
        };
        println!("clockd: nats on {nats_addr}");
        tokio::spawn(nats::serve(broker.clone(), nats, Arc::new(options)));
    }
    // Tests and scripts read this line to learn the port (printed last).
    println!("clockd: listening on {local}");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return Ok(Outcome::Done),
        };
        let Ok((socket, _peer)) = accepted else {
            // Out of file descriptors, say: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let counters = &broker.counters;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if counters.connections.load(Ordering::Relaxed) >= broker.limits.max_connections {
            tokio::spawn(refuse(socket, broker.limits.max_connections));
            continue;
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        tokio::spawn(async move {
            let authenticated = broker.limits.token.is_none();
            connection::serve(broker.clone(), socket, authenticated).await;
            broker.counters.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// How many connections the kernel may queue before we accept them. `TcpListener::bind`
/// asks for 128, which a burst of connects overflows on loopback (the client's SYN is then
/// dropped and retried a second later).
const ACCEPT_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`ACCEPT_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Tells a connection over the limit why, and closes it.
async fn refuse(mut socket: tokio::net::TcpStream, limit: usize) {
    let line = format!("ERR too many connections (limit {limit})\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(line.as_bytes())).await;
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
