//! The wire protocols the load generator speaks: the topics lines of `clockd serve`, RESP
//! `PUBLISH`/`SUBSCRIBE` for `redis-server` (`redis-benchmark` does not measure pub/sub), and
//! NATS core (`PUB`, `SUB`, `MSG`) for `clockd serve --nats` and `nats-server`.
//!
//! A payload is `SENT_NANOS:` then `x` up to the payload size: one printable line, so it
//! passes every protocol unchanged, and the subscriber can tell each message's latency. NATS
//! subscribers connect with `"headers": false`, so both NATS servers send the same `MSG`
//! frames (clockd leaves its stamp header out).

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Which server is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// `clockd serve`'s topics lines.
    Topics,
    /// Redis pub/sub (RESP).
    Redis,
    /// NATS core protocol.
    Nats,
}

/// A payload of `size` bytes (at least the timestamp) carrying `sent_nanos`.
pub fn payload(sent_nanos: u64, size: usize) -> String {
    let mut text = format!("{sent_nanos}:");
    while text.len() < size {
        text.push('x');
    }
    text
}

/// The send time carried by a payload.
pub fn sent_nanos(payload: &[u8]) -> Option<u64> {
    let end = payload.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&payload[..end]).ok()?.parse().ok()
}

/// Appends one publish of `payload` to `topic` to `out`.
pub fn encode_publish(protocol: Protocol, topic: &str, payload: &str, out: &mut Vec<u8>) {
    match protocol {
        Protocol::Topics => {
            out.extend_from_slice(format!("PUB {topic} {payload}\n").as_bytes());
        }
        Protocol::Redis => {
            let command = format!(
                "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{topic}\r\n${}\r\n{payload}\r\n",
                topic.len(),
                payload.len()
            );
            out.extend_from_slice(command.as_bytes());
        }
        Protocol::Nats => {
            let command = format!("PUB {topic} {}\r\n{payload}\r\n", payload.len());
            out.extend_from_slice(command.as_bytes());
        }
    }
}

/// What a NATS client says first (no verbose `+OK`s, no headers).
pub const NATS_CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false}\r\n";

/// Reads and drops a publisher's replies (redis answers each PUBLISH with `:n`; clockd only
/// answers errors). Returns how many error replies it saw when the connection ends.
pub async fn drain_replies(protocol: Protocol, read: OwnedReadHalf) -> u64 {
    let mut lines = BufReader::new(read).lines();
    let mut errors = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let error = match protocol {
            Protocol::Topics => line.starts_with("ERR"),
            Protocol::Redis => line.starts_with('-'),
            Protocol::Nats => line.starts_with("-ERR"),
        };
        errors += u64::from(error);
    }
    errors
}

/// A subscriber connection, reading deliveries' payloads.
pub struct Subscriber {
    protocol: Protocol,
    input: BufReader<OwnedReadHalf>,
    output: OwnedWriteHalf,
    line: Vec<u8>,
}

impl Subscriber {
    /// Connects and subscribes to `topics`; returns once the server confirmed.
    pub async fn connect(
        protocol: Protocol,
        addr: std::net::SocketAddr,
        topics: &[String],
    ) -> io::Result<Subscriber> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let (read, mut write) = socket.into_split();
        let mut request = Vec::new();
        if protocol == Protocol::Nats {
            request.extend_from_slice(NATS_CONNECT);
        }
        for (sid, topic) in topics.iter().enumerate() {
            match protocol {
                Protocol::Topics => request.extend_from_slice(format!("SUB {topic}\n").as_bytes()),
                Protocol::Redis => request.extend_from_slice(
                    format!("*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{topic}\r\n", topic.len()).as_bytes(),
                ),
                Protocol::Nats => {
                    request.extend_from_slice(format!("SUB {topic} {sid}\r\n").as_bytes())
                }
            }
        }
        if protocol != Protocol::Redis {
            request.extend_from_slice(b"PING\r\n");
        }
        write.write_all(&request).await?;
        let mut subscriber = Subscriber {
            protocol,
            input: BufReader::with_capacity(256 * 1024, read),
            output: write,
            line: Vec::new(),
        };
        match protocol {
            Protocol::Topics => {
                subscriber.read_line().await?;
                if subscriber.line != b"PONG" {
                    return Err(refused(&subscriber.line));
                }
            }
            Protocol::Nats => loop {
                // INFO first, then PONG once the subscriptions are in place.
                subscriber.read_line().await?;
                if subscriber.line == b"PONG" {
                    break;
                }
                if !subscriber.line.starts_with(b"INFO ") {
                    return Err(refused(&subscriber.line));
                }
            },
            Protocol::Redis => {
                // Each SUBSCRIBE is confirmed by a three-element array.
                for _ in topics {
                    subscriber.read_array().await?;
                }
            }
        }
        Ok(subscriber)
    }

    /// The next delivery's payload.
    pub async fn next(&mut self) -> io::Result<&[u8]> {
        match self.protocol {
            Protocol::Topics => {
                self.read_line().await?;
                // `UPDATED topic payload`
                let mut fields = self.line.splitn(3, |&b| b == b' ');
                match (fields.next(), fields.next(), fields.next()) {
                    (Some(b"UPDATED"), Some(_), Some(payload)) => Ok(payload),
                    _ => Err(refused(&self.line)),
                }
            }
            Protocol::Redis => {
                let start = self.read_array().await?;
                Ok(&self.line[start..])
            }
            Protocol::Nats => loop {
                self.read_line().await?;
                if self.line == b"PING" {
                    self.output.write_all(b"PONG\r\n").await?;
                    continue;
                }
                // `MSG subject sid [reply] size`, then the payload and `\r\n`.
                if !self.line.starts_with(b"MSG ") {
                    return Err(refused(&self.line));
                }
                let size = self.line.rsplit(|&b| b == b' ').next().unwrap_or_default();
                let size: usize = std::str::from_utf8(size)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| refused(&self.line))?;
                self.line.resize(size + 2, 0);
                self.input.read_exact(&mut self.line).await?;
                self.line.truncate(size);
                return Ok(&self.line);
            },
        }
    }

    async fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        if self.input.read_until(b'\n', &mut self.line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(())
    }

    /// Reads a RESP array of bulk strings into `line` (concatenated); returns where its last
    /// element starts.
    async fn read_array(&mut self) -> io::Result<usize> {
        let mut header = Vec::new();
        self.input.read_until(b'\n', &mut header).await?;
        let count = resp_number(&header, b'*')?;
        self.line.clear();
        let mut last = 0;
        for _ in 0..count {
            header.clear();
            self.input.read_until(b'\n', &mut header).await?;
            last = self.line.len();
            if header.first() == Some(&b':') {
                self.line
                    .extend_from_slice(&header[1..header.len().saturating_sub(2)]);
                continue;
            }
            let len = resp_number(&header, b'$')?;
            let start = self.line.len();
            self.line.resize(start + len + 2, 0);
            self.input.read_exact(&mut self.line[start..]).await?;
            self.line.truncate(start + len);
        }
        Ok(last)
    }
}

/// The number after a RESP type byte.
fn resp_number(header: &[u8], kind: u8) -> io::Result<usize> {
    if header.first() != Some(&kind) {
        return Err(refused(header));
    }
    std::str::from_utf8(&header[1..])
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| refused(header))
}

fn refused(what: &[u8]) -> io::Error {
    let shown: String = String::from_utf8_lossy(what).chars().take(80).collect();
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply {shown:?}"),
    )
}
