//! The NATS core protocol on a second listener (`clockd serve --nats ADDR`), so that any NATS
//! client can publish and subscribe, next to the telnet protocol's clients and in one order
//! with them: both go through the same dispatcher, so a NATS subscriber and a telnet
//! subscriber of one subject see the same messages with the same stamps.
//!
//! What is implemented (see the README's "NATS" section for a client's view):
//!
//! | protocol part | here |
//! |---|---|
//! | `INFO`, `CONNECT`, `PING`/`PONG`, `+OK` (verbose), `-ERR` | yes |
//! | `PUB`, `HPUB` (headers), reply subjects, `max_payload` | yes |
//! | `SUB` with `*` and `>`, queue groups, `UNSUB` with `max-msgs` | yes |
//! | `pedantic` (publish subjects checked) | yes |
//! | "no responders" (status 503 to a request nobody serves) | yes |
//! | token authorization (`--token`, `auth_token` in `CONNECT`) | yes |
//! | keep-alive `PING`s, stale connections closed | yes |
//! | `echo: false` | no (refused with `-ERR`) |
//! | TLS, user/password, nkeys, JWT, clustering, leaf nodes, JetStream | no |
//!
//! Beyond NATS: each message carries its global stamp in a `Clocked-Stamp` header (for a
//! client that takes headers), and the subject `$CLOCK` carries the connection's watermark.
//!
//! * [`proto`]: operations off the wire; [`subject`]: subjects and wildcards;
//! * [`interest`]: which connections want which topic, queue groups; [`routing`]: the
//!   broker's side of it (subscribing, and where a publish goes);
//! * [`session`]: a connection's reader; [`writer`]: its writer.

pub mod interest;
pub mod proto;
pub mod routing;
pub mod session;
pub mod subject;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::broker::Broker;

/// The listener's settings (`--nats-…` options).
pub struct Options {
    /// The address clients reach it on (in `INFO`).
    pub addr: SocketAddr,
    /// The largest payload a client may publish.
    pub max_payload: usize,
    /// How often an idle connection is pinged.
    pub ping_interval: Duration,
    /// Unanswered pings before a connection is closed as stale.
    pub max_pings_out: u32,
}

impl Options {
    /// The `INFO` line a new connection `client_id` gets first.
    pub fn info(&self, client_id: u64, auth_required: bool) -> Vec<u8> {
        let info = serde_json::json!({
            "server_id": format!("clockd-{}", std::process::id()),
            "server_name": "clockd",
            "version": env!("CARGO_PKG_VERSION"),
            "proto": 1,
            "go": "none (clockd, Rust)",
            "host": self.addr.ip().to_string(),
            "port": self.addr.port(),
            "headers": true,
            "max_payload": self.max_payload,
            "client_id": client_id,
            "auth_required": auth_required,
        });
        format!("INFO {info}\r\n").into_bytes()
    }
}

/// Accepts NATS connections on `listener` until the runtime ends.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, options: Arc<Options>) {
    loop {
        let Ok((socket, _peer)) = listener.accept().await else {
            // Out of file descriptors, say: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let counters = &broker.counters;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if counters.connections.load(Ordering::Relaxed) >= broker.limits.max_connections {
            tokio::spawn(refuse(socket, options.clone()));
            continue;
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        let options = options.clone();
        tokio::spawn(async move {
            session::serve(broker.clone(), socket, options).await;
            broker.counters.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Tells a connection over `--max-connections` why, and closes it.
async fn refuse(mut socket: tokio::net::TcpStream, options: Arc<Options>) {
    // INFO first, as every NATS client expects, then the reason.
    let mut reply = options.info(0, false);
    reply.extend_from_slice(b"-ERR 'maximum connections exceeded'\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&reply)).await;
}
