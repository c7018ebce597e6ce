//! `clockd status ADDR`: a running broker's metrics in a terminal.
//!
//! Fetches `http://ADDR/metrics` (the broker's `--monitor` address) and prints each sample as
//! `name value`, aligned, without the `# HELP` and `# TYPE` lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Failure, Outcome};

/// `clockd status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The broker's monitor address (`clockd serve --monitor ADDR`).
    addr: SocketAddr,
}

/// Prints the broker's metrics.
pub fn run(args: StatusArgs) -> Result<Outcome, Failure> {
    let body = fetch(args.addr)?;
    let samples: Vec<(&str, &str)> = body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .collect();
    let width = samples
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (name, value) in samples {
        let _ = writeln!(out, "{name:<width$}  {value}");
    }
    Ok(Outcome::Done)
}

/// The body of `GET /metrics`.
fn fetch(addr: SocketAddr) -> Result<String, Failure> {
    let failed = |e: std::io::Error| Failure::new(format!("cannot read metrics from {addr}: {e}"));
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(failed)?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(failed)?;
    socket
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: clockd\r\n\r\n")
        .map_err(failed)?;
    let mut response = String::new();
    socket.read_to_string(&mut response).map_err(failed)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::new(format!("{addr} did not answer with HTTP")))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or("");
        return Err(Failure::new(format!("{addr} answered {status:?}")));
    }
    Ok(body.to_string())
}
