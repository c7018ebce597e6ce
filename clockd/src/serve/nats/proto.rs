//! The client side of the NATS core protocol: operations read off a connection.
//!
//! ```text
//! CONNECT {json}
//! PUB <subject> [reply-to] <#bytes>\r\n<payload>\r\n
//! HPUB <subject> [reply-to] <#header bytes> <#total bytes>\r\n<headers><payload>\r\n
//! SUB <subject> [queue group] <sid>
//! UNSUB <sid> [max-msgs]
//! PING | PONG
//! ```
//!
//! Operation names are case-insensitive; arguments are separated by spaces or tabs; a control
//! line ends with `\r\n` (a bare `\n` is taken too). A control line is at most
//! [`MAX_CONTROL_LINE`] bytes and a payload at most the broker's `max_payload`; a client past
//! either, or one that sends something that is not an operation, gets an error that closes
//! the connection (as `nats-server` does: after a framing error nothing that follows can be
//! trusted). Buffers are reused from one operation to the next.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest control line accepted (`nats-server`'s default `max_control_line`).
pub const MAX_CONTROL_LINE: usize = 4096;

/// One operation from a client; borrows the reader's buffers.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// `CONNECT {json}`.
    Connect(&'a str),
    /// `PUB` or `HPUB`.
    Pub {
        /// Where it goes.
        subject: &'a str,
        /// Where replies go.
        reply: Option<&'a str>,
        /// `HPUB`'s header block.
        headers: Option<&'a [u8]>,
        /// The payload.
        payload: &'a [u8],
    },
    /// `SUB`.
    Sub {
        /// A subject, with wildcards.
        subject: &'a str,
        /// Its queue group.
        queue: Option<&'a str>,
        /// The client's name for it.
        sid: &'a str,
    },
    /// `UNSUB`.
    Unsub {
        /// The subscription.
        sid: &'a str,
        /// Unsubscribe once this many messages were delivered in all.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// A protocol violation: sent as `-ERR '{self}'`, then the connection is closed.
#[derive(Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// A control line over [`MAX_CONTROL_LINE`].
    ControlLineTooLong,
    /// A payload over `max_payload`.
    PayloadTooLarge,
    /// An operation we do not know.
    Unknown,
    /// An operation with arguments it does not take.
    Syntax(&'static str),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::ControlLineTooLong => f.write_str("Maximum Control Line Exceeded"),
            ProtoError::PayloadTooLarge => f.write_str("Maximum Payload Violation"),
            ProtoError::Unknown => f.write_str("Unknown Protocol Operation"),
            ProtoError::Syntax(usage) => write!(f, "Parser Error: usage: {usage}"),
        }
    }
}

/// What a control line says, before its payload is read (positions into the line).
#[derive(Clone, Copy)]
enum Parsed {
    Connect(usize),
    Pub {
        subject: (usize, usize),
        reply: Option<(usize, usize)>,
        header_len: Option<usize>,
        total_len: usize,
    },
    Sub {
        subject: (usize, usize),
        queue: Option<(usize, usize)>,
        sid: (usize, usize),
    },
    Unsub {
        sid: (usize, usize),
        max: Option<u64>,
    },
    Ping,
    Pong,
    Empty,
}

/// Reads operations from a client.
///
/// [`next`](OpReader::next) is cancel-safe: a connection's reader races it against other
/// events in a `select!`, so a call dropped halfway keeps what it read (the control line so
/// far, the parsed line waiting for its payload, the payload so far) for the next call. Every
/// byte is taken from the input (`consume`) in the same step that stores it, with no await
/// between. A payload's buffer grows with the bytes that arrive, not with the size announced.
pub struct OpReader<R> {
    input: R,
    max_payload: usize,
    /// The control line so far, with its `\r\n` once complete.
    line: Vec<u8>,
    /// The control line parsed, once complete.
    parsed: Option<Parsed>,
    /// The payload (with its `\r\n`) so far.
    payload: Vec<u8>,
    /// The last call returned an operation: the next one starts afresh.
    returned: bool,
}

/// Payload buffers bigger than this are given back after use.
const KEEP_PAYLOAD: usize = 64 * 1024;

impl<R: AsyncBufRead + Unpin> OpReader<R> {
    /// A reader of `input` that refuses payloads over `max_payload` bytes.
    pub fn new(input: R, max_payload: usize) -> Self {
        OpReader {
            input,
            max_payload,
            line: Vec::new(),
            parsed: None,
            payload: Vec::new(),
            returned: false,
        }
    }

    /// The next operation; `Ok(None)` at the end of the input; `Err` when the connection
    /// failed. Empty lines are skipped.
    pub async fn next(&mut self) -> std::io::Result<Option<Result<Op<'_>, ProtoError>>> {
        if self.returned {
            self.returned = false;
            self.line.clear();
            self.parsed = None;
            self.payload.clear();
            if self.payload.capacity() > KEEP_PAYLOAD {
                self.payload.shrink_to(KEEP_PAYLOAD);
            }
        }
        while self.parsed.is_none() {
            if !self.read_line().await? {
                return Ok(None);
            }
            if self.line.len() > MAX_CONTROL_LINE + 2 {
                return Ok(Some(Err(ProtoError::ControlLineTooLong)));
            }
            match parse(trim_line_end(&self.line)) {
                Ok(Parsed::Empty) => self.line.clear(),
                Ok(parsed) => self.parsed = Some(parsed),
                Err(e) => return Ok(Some(Err(e))),
            }
        }
        if let Some(Parsed::Pub { total_len, .. }) = self.parsed {
            if total_len > self.max_payload {
                return Ok(Some(Err(ProtoError::PayloadTooLarge)));
            }
            let wanted = total_len + 2;
            while self.payload.len() < wanted {
                let buffered = self.input.fill_buf().await?;
                if buffered.is_empty() {
                    return Ok(None); // the client went away mid-payload
                }
                let taken = buffered.len().min(wanted - self.payload.len());
                self.payload.extend_from_slice(&buffered[..taken]);
                self.input.consume(taken);
            }
            if !self.payload.ends_with(b"\r\n") {
                return Ok(Some(Err(ProtoError::Syntax(
                    "the payload is followed by \\r\\n",
                ))));
            }
        }
        self.returned = true;
        let line = trim_line_end(&self.line);
        // Every argument was checked to be UTF-8 by `parse`.
        let text = |(from, to): (usize, usize)| std::str::from_utf8(&line[from..to]).unwrap_or("");
        let op = match self.parsed.as_ref() {
            Some(&Parsed::Connect(at)) => Op::Connect(text((at, line.len()))),
            Some(&Parsed::Pub {
                subject,
                reply,
                header_len,
                total_len,
            }) => {
                let body = &self.payload[..total_len];
                let (headers, payload) = match header_len {
                    Some(n) => (Some(&body[..n]), &body[n..]),
                    None => (None, body),
                };
                Op::Pub {
                    subject: text(subject),
                    reply: reply.map(text),
                    headers,
                    payload,
                }
            }
            Some(&Parsed::Sub {
                subject,
                queue,
                sid,
            }) => Op::Sub {
                subject: text(subject),
                queue: queue.map(text),
                sid: text(sid),
            },
            Some(&Parsed::Unsub { sid, max }) => Op::Unsub {
                sid: text(sid),
                max,
            },
            Some(Parsed::Ping) => Op::Ping,
            Some(Parsed::Pong) => Op::Pong,
            Some(Parsed::Empty) | None => unreachable!("parsed above, empty lines skipped"),
        };
        Ok(Some(Ok(op)))
    }

    /// Reads into `line` until it holds a `\n`, or more than the limit (which the caller
    /// refuses). `false` at the end of the input.
    async fn read_line(&mut self) -> std::io::Result<bool> {
        while self.line.last() != Some(&b'\n') && self.line.len() <= MAX_CONTROL_LINE + 2 {
            let buffered = self.input.fill_buf().await?;
            if buffered.is_empty() {
                return Ok(false);
            }
            let taken = match buffered.iter().position(|&b| b == b'\n') {
                Some(at) => at + 1,
                None => buffered.len(),
            };
            let room = MAX_CONTROL_LINE + 3 - self.line.len();
            self.line.extend_from_slice(&buffered[..taken.min(room)]);
            self.input.consume(taken);
        }
        Ok(true)
    }
}

/// Whether `block` is a header block a client can parse: `NATS/1.0`, optionally a status
/// code and a description, `\r\n`; then `Name: value` lines of printable ASCII (a name
/// without spaces or colons), each ended by `\r\n`; then an empty line. What is passed on
/// to subscribers must not break their client's parser.
pub fn valid_headers(block: &[u8]) -> bool {
    let Some(body) = block.strip_suffix(b"\r\n\r\n") else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let Some(status) = status_line.strip_prefix("NATS/1.0") else {
        return false;
    };
    let status_ok = status.is_empty()
        || status.strip_prefix(' ').is_some_and(|rest| {
            let code = rest.split(' ').next().unwrap_or("");
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) && printable(rest)
        });
    status_ok
        && lines.all(|line| match line.split_once(':') {
            Some((name, value)) => {
                !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                    && printable(value)
            }
            None => false,
        })
}

/// Printable: no control characters but the tab.
fn printable(text: &str) -> bool {
    text.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic() || b >= 0x80)
}

/// A complete line without its `\r\n` (or bare `\n`).
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a control line into its operation and arguments.
fn parse(line: &[u8]) -> Result<Parsed, ProtoError> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(ProtoError::Unknown);
    };
    // Positions of the arguments, which are separated by spaces or tabs.
    let mut args: Vec<(usize, usize)> = Vec::with_capacity(5);
    let mut start = None;
    for (at, byte) in text.bytes().enumerate() {
        let blank = byte == b' ' || byte == b'\t';
        match (blank, start) {
            (true, Some(from)) => {
                args.push((from, at));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(from) = start {
        args.push((from, text.len()));
    }
    let Some(&(verb_from, verb_to)) = args.first() else {
        return Ok(Parsed::Empty);
    };
    let verb = &text[verb_from..verb_to];
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    let rest = &args[1..];
    let number = |(from, to): (usize, usize)| text[from..to].parse::<usize>().ok();
    if is("PUB") {
        let usage = ProtoError::Syntax("PUB <subject> [reply-to] <#bytes>");
        let (subject, reply, size) = match rest {
            [subject, size] => (*subject, None, *size),
            [subject, reply, size] => (*subject, Some(*reply), *size),
            _ => return Err(usage),
        };
        let total_len = number(size).ok_or(usage)?;
        return Ok(Parsed::Pub {
            subject,
            reply,
            header_len: None,
            total_len,
        });
    }
    if is("HPUB") {
        let usage = ProtoError::Syntax("HPUB <subject> [reply-to] <#header bytes> <#total bytes>");
        let (subject, reply, header, total) = match rest {
            [subject, header, total] => (*subject, None, *header, *total),
            [subject, reply, header, total] => (*subject, Some(*reply), *header, *total),
            _ => return Err(usage),
        };
        let (Some(header_len), Some(total_len)) = (number(header), number(total)) else {
            return Err(usage);
        };
        if header_len > total_len {
            return Err(usage);
        }
        return Ok(Parsed::Pub {
            subject,
            reply,
            header_len: Some(header_len),
            total_len,
        });
    }
    if is("SUB") {
        let (subject, queue, sid) = match rest {
            [subject, sid] => (*subject, None, *sid),
            [subject, queue, sid] => (*subject, Some(*queue), *sid),
            _ => return Err(ProtoError::Syntax("SUB <subject> [queue group] <sid>")),
        };
        return Ok(Parsed::Sub {
            subject,
            queue,
            sid,
        });
    }
    if is("UNSUB") {
        let usage = ProtoError::Syntax("UNSUB <sid> [max-msgs]");
        return match rest {
            [sid] => Ok(Parsed::Unsub {
                sid: *sid,
                max: None,
            }),
            [sid, max] => {
                let max = number(*max).ok_or(usage)? as u64;
                Ok(Parsed::Unsub {
                    sid: *sid,
                    max: Some(max),
                })
            }
            _ => Err(usage),
        };
    }
    if is("CONNECT") {
        return match rest.first() {
            Some(&(from, _)) => Ok(Parsed::Connect(from)),
            None => Err(ProtoError::Syntax("CONNECT {json}")),
        };
    }
    match rest {
        [] if is("PING") => Ok(Parsed::Ping),
        [] if is("PONG") => Ok(Parsed::Pong),
        _ => Err(ProtoError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ops(input: &[u8], max_payload: usize) -> Vec<Result<String, ProtoError>> {
        let mut reader = OpReader::new(input, max_payload);
        let mut out = Vec::new();
        while let Ok(Some(op)) = reader.next().await {
            let failed = op.is_err();
            out.push(op.map(|op| format!("{op:?}")));
            if failed {
                break;
            }
        }
        out
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn operations_parse_with_their_payloads() {
        let input = b"connect {\"verbose\":false}\r\nPUB a.b 5\r\nhello\r\n\
                      pub a.b  _INBOX.1\t2\r\nhi\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nok\r\n\
                      \r\nSUB a.* q 7\nUNSUB 7 10\r\nPING\r\npong\r\n";
        let got = run(ops(input, 1024));
        let want = [
            Op::Connect("{\"verbose\":false}"),
            Op::Pub {
                subject: "a.b",
                reply: None,
                headers: None,
                payload: b"hello",
            },
            Op::Pub {
                subject: "a.b",
                reply: Some("_INBOX.1"),
                headers: None,
                payload: b"hi",
            },
            Op::Pub {
                subject: "a",
                reply: None,
                headers: Some(b"NATS/1.0\r\n\r\n"),
                payload: b"ok",
            },
            Op::Sub {
                subject: "a.*",
                queue: Some("q"),
                sid: "7",
            },
            Op::Unsub {
                sid: "7",
                max: Some(10),
            },
            Op::Ping,
            Op::Pong,
        ];
        let want: Vec<_> = want.iter().map(|op| Ok(format!("{op:?}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn violations_are_reported() {
        assert_eq!(
            run(ops(b"PUB a 2000\r\n", 1024)),
            [Err(ProtoError::PayloadTooLarge)]
        );
        assert_eq!(run(ops(b"FOO\r\n", 1024)), [Err(ProtoError::Unknown)]);
        assert_eq!(run(ops(b"PING x\r\n", 1024)), [Err(ProtoError::Unknown)]);
        assert!(matches!(
            run(ops(b"PUB a\r\n", 1024))[..],
            [Err(ProtoError::Syntax(_))]
        ));
        assert!(matches!(
            run(ops(b"PUB a x\r\n", 1024))[..],
            [Err(ProtoError::Syntax(_))]
        ));
        assert!(matches!(
            run(ops(b"HPUB a 5 2\r\n", 1024))[..],
            [Err(ProtoError::Syntax(_))]
        ));
        assert!(matches!(
            run(ops(b"PUB a 2\r\nabcd\r\n", 1024))[..],
            [Err(ProtoError::Syntax(_))]
        ));
        assert!(matches!(
            run(ops(b"SUB a\r\n", 1024))[..],
            [Err(ProtoError::Syntax(_))]
        ));
        let long = format!("SUB {} 1\r\n", "a".repeat(MAX_CONTROL_LINE));
        assert_eq!(
            run(ops(long.as_bytes(), 1024)),
            [Err(ProtoError::ControlLineTooLong)]
        );
        assert_eq!(run(ops(b"\xff\xfe\r\n", 1024)), [Err(ProtoError::Unknown)]);
    }

    #[test]
    fn header_blocks_are_checked() {
        for good in [
            &b"NATS/1.0\r\n\r\n"[..],
            b"NATS/1.0\r\nA: b\r\nTrace-Id: x y\r\n\r\n",
            b"NATS/1.0 503\r\n\r\n",
            b"NATS/1.0 408 Request Timeout\r\nA:b\r\n\r\n",
        ] {
            assert!(valid_headers(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"NATS/1.0\r\n"[..],
            b"NATS/1.0\r\nbad\r\n\r\n",
            b"NATS/1.0 abc\r\n\r\n",
            b"NATS/2.0\r\n\r\n",
            b"NATS/1.0\r\nA b: c\r\n\r\n",
            b"NATS/1.0\r\n: c\r\n\r\n",
            b"NATS/1.0\r\nA: \x01\r\n\r\n",
            b"NATS/1.0\r\nA: b\nC: d\r\n\r\n",
        ] {
            assert!(!valid_headers(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_call_cut_off_halfway_loses_nothing() {
        // The client sends a publish in three pieces, pausing between them; each call is cut
        // off (as a `select!` drops the losing branch) while it waits for the next piece.
        run(async {
            let (client, server) = tokio::io::duplex(64);
            let mut reader = OpReader::new(tokio::io::BufReader::new(server), 1024);
            let (_, mut client) = tokio::io::split(client);
            use tokio::io::AsyncWriteExt;
            for piece in [&b"PUB a.b 1"[..], b"1\r\nhello ", b"world\r\nPING\r\n"] {
                client.write_all(piece).await.unwrap();
                let cut = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
                if let Ok(got) = cut.await {
                    let op = format!("{:?}", got.unwrap().unwrap().unwrap());
                    assert!(op.contains("[104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100]"));
                }
            }
            let next = reader.next().await.unwrap().unwrap().unwrap();
            assert_eq!(next, Op::Ping, "the stream is still in step");
        });
    }

    #[test]
    fn a_control_line_split_across_reads_is_whole() {
        // A reader that hands out 3 bytes at a time.
        let input = b"SUB foo.bar 1\r\nPUB foo.bar 3\r\nabc\r\n";
        let slow = tokio::io::BufReader::with_capacity(3, &input[..]);
        let got = run(async move {
            let mut reader = OpReader::new(slow, 1024);
            let mut out = Vec::new();
            while let Ok(Some(Ok(op))) = reader.next().await {
                out.push(format!("{op:?}"));
            }
            out
        });
        assert_eq!(got.len(), 2);
        assert!(
            got[1].contains("foo.bar") && got[1].contains("[97, 98, 99]"),
            "{got:?}"
        );
    }
}
