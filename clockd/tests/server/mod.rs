//! Running the real `clockd serve` on ephemeral loopback ports, and talking to it the way a
//! telnet user would: lines over TCP.

#![allow(dead_code)] // each test file uses some of these

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single read may wait before the test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A running broker, killed when dropped. Its spill directory is a temporary one of the test.
pub struct Broker {
    child: Child,
    /// The topics protocol's address.
    pub addr: SocketAddr,
    /// The monitor's address.
    pub monitor: SocketAddr,
    /// The NATS listener's address, when started with `--nats`.
    pub nats: Option<SocketAddr>,
    _spill: tempfile::TempDir,
}

impl Broker {
    /// Starts `clockd serve` on port 0 with `extra` arguments and waits for its addresses.
    pub fn start(extra: &[&str]) -> Broker {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts `clockd serve` listening on `listen` (to restart one on the same port).
    pub fn start_on(listen: &str, extra: &[&str]) -> Broker {
        let spill = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(env!("CARGO_BIN_EXE_clockd"))
            .args(["serve", "--listen", listen, "--monitor", "127.0.0.1:0"])
            .arg("--spill-dir")
            .arg(spill.path().join("spill"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clockd starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut monitor = None;
        let mut nats = None;
        while addr.is_none() || monitor.is_none() {
            let line = lines
                .next()
                .expect("clockd prints its addresses")
                .expect("stdout is UTF-8");
            if let Some(rest) = line.strip_prefix("clockd: listening on ") {
                addr = Some(rest.parse().expect("an address"));
            } else if let Some(rest) = line.strip_prefix("clockd: nats on ") {
                nats = Some(rest.parse().expect("an address"));
            } else if let Some(rest) = line.strip_prefix("clockd: monitor on http://") {
                monitor = Some(rest.trim_end_matches('/').parse().expect("an address"));
            }
        }
        Broker {
            child,
            addr: addr.unwrap_or_else(|| unreachable!()),
            monitor: monitor.unwrap_or_else(|| unreachable!()),
            nats,
            _spill: spill,
        }
    }

    /// A new client connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `GET path` on the monitor: (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let mut socket = TcpStream::connect(self.monitor).expect("the monitor accepts");
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        write!(socket, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).expect("a response");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        (
            head.lines().next().unwrap_or("").to_string(),
            body.to_string(),
        )
    }

    /// The value of an unlabelled metric.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name} in\n{body}"))
            .parse()
            .expect("a number")
    }

    /// Waits (up to 20 s) until `metric` satisfies `ok`; returns its last value.
    pub fn wait_for_metric(&self, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let value = self.metric(name);
            if ok(value) || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (up to 20 s) for the exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "clockd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The spill directory the broker was given.
    pub fn spill_dir(&self) -> std::path::PathBuf {
        self._spill.path().join("spill")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection, read line by line.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let socket = TcpStream::connect(addr).expect("the broker accepts");
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            writer: socket.try_clone().unwrap(),
            reader: BufReader::new(socket),
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("the broker reads");
    }

    /// Sends `line` and a `\n`.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// The next line, with its `\n`; panics on a timeout, `None` at the end of the stream.
    pub fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no line from the broker: {e}"),
        }
    }

    /// The next line, which must be there.
    pub fn expect_line(&mut self) -> String {
        self.line().expect("a line, not the end of the connection")
    }

    /// Sends PING and reads up to PONG: every command sent before has been carried out.
    /// Returns the lines that came before the PONG.
    pub fn sync(&mut self) -> Vec<String> {
        self.send("PING");
        let mut before = Vec::new();
        loop {
            let line = self.expect_line();
            if line == "PONG\n" {
                return before;
            }
            before.push(line);
        }
    }

    /// Whether the broker closed the connection (reads until the end, which must come).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}
