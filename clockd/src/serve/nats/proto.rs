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

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

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
pub struct OpReader<R> {
    input: R,
    max_payload: usize,
    line: Vec<u8>,
    payload: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> OpReader<R> {
    /// A reader of `input` that refuses payloads over `max_payload` bytes.
    pub fn new(input: R, max_payload: usize) -> Self {
        OpReader {
            input,
            max_payload,
            line: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// The next operation; `Ok(None)` at the end of the input; `Err` when the connection
    /// failed. Empty lines are skipped.
    pub async fn next(&mut self) -> std::io::Result<Option<Result<Op<'_>, ProtoError>>> {
        let parsed = loop {
            if !self.read_line().await? {
                return Ok(None);
            }
            if self.line.len() > MAX_CONTROL_LINE {
                return Ok(Some(Err(ProtoError::ControlLineTooLong)));
            }
            match parse(&self.line) {
                Ok(Parsed::Empty) => continue,
                Ok(parsed) => break parsed,
                Err(e) => return Ok(Some(Err(e))),
            }
        };
        if let Parsed::Pub { total_len, .. } = parsed {
            if total_len > self.max_payload {
                return Ok(Some(Err(ProtoError::PayloadTooLarge)));
            }
            self.payload.resize(total_len + 2, 0);
            self.input.read_exact(&mut self.payload).await?;
            if !self.payload.ends_with(b"\r\n") {
                return Ok(Some(Err(ProtoError::Syntax(
                    "the payload is followed by \\r\\n",
                ))));
            }
        }
        // Every argument was checked to be UTF-8 by `parse`.
        let text =
            |(from, to): (usize, usize)| std::str::from_utf8(&self.line[from..to]).unwrap_or("");
        let op = match parsed {
            Parsed::Connect(at) => Op::Connect(text((at, self.line.len()))),
            Parsed::Pub {
                subject,
                reply,
                header_len,
                total_len,
            } => {
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
            Parsed::Sub {
                subject,
                queue,
                sid,
            } => Op::Sub {
                subject: text(subject),
                queue: queue.map(text),
                sid: text(sid),
            },
            Parsed::Unsub { sid, max } => Op::Unsub {
                sid: text(sid),
                max,
            },
            Parsed::Ping => Op::Ping,
            Parsed::Pong => Op::Pong,
            Parsed::Empty => unreachable!("skipped above"),
        };
        Ok(Some(Ok(op)))
    }

    /// Reads one control line into `line`, without its `\r\n`; stops keeping bytes once it
    /// is past the limit (the caller then refuses it). `false` at the end of the input.
    async fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        loop {
            let buffered = self.input.fill_buf().await?;
            if buffered.is_empty() {
                return Ok(false);
            }
            let (taken, complete) = match buffered.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffered.len(), false),
            };
            let room = (MAX_CONTROL_LINE + 2).saturating_sub(self.line.len());
            self.line
                .extend_from_slice(&buffered[..taken.min(room + 1)]);
            self.input.consume(taken);
            if self.line.len() > MAX_CONTROL_LINE + 2 {
                return Ok(true); // too long: refused by the caller
            }
            if complete {
                self.line.pop();
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(true);
            }
        }
    }
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
