//! Frames of the topics protocol: lines, read with a length limit.
//!
//! A line ends in `\n`; a `\r` before it is dropped (telnet sends `\r\n`). A line longer than
//! the limit is not buffered past it: the reader reports [`Frame::TooLong`] as soon as the
//! limit is passed, and the connection is closed (a client that sends megabytes without a
//! newline is not one to keep talking to). A line that is not UTF-8 is reported as
//! [`Frame::NotUtf8`] and the connection goes on.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One frame read from a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, without its `\r\n` or `\n` (borrowed from the reader's buffer, which
    /// is reused for the next line: no allocation per line).
    Line(&'a str),
    /// A complete line that is not valid UTF-8.
    NotUtf8,
    /// More than the limit without a newline; the rest was not read.
    TooLong,
}

/// Reads lines from `input`, none longer than `limit` bytes.
pub struct LineReader<R> {
    input: R,
    limit: usize,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader of lines of at most `limit` bytes (the `\r\n` not counted).
    pub fn new(input: R, limit: usize) -> Self {
        LineReader {
            input,
            limit,
            line: Vec::new(),
        }
    }

    /// The next frame; `None` at the end of the input (a last line without a newline is
    /// dropped: the client went away mid-line).
    pub async fn next(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        self.line.clear();
        loop {
            let buffered = self.input.fill_buf().await?;
            if buffered.is_empty() {
                return Ok(None);
            }
            let (taken, complete) = match buffered.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffered.len(), false),
            };
            // At most the limit, a `\r` and the `\n` are kept; more is too long already.
            let room = (self.limit + 2).saturating_sub(self.line.len());
            if taken > room {
                self.input.consume(taken);
                return Ok(Some(Frame::TooLong));
            }
            self.line.extend_from_slice(&buffered[..taken]);
            self.input.consume(taken);
            if complete {
                self.line.pop(); // the '\n'
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                if self.line.len() > self.limit {
                    return Ok(Some(Frame::TooLong));
                }
                return Ok(Some(match std::str::from_utf8(&self.line) {
                    Ok(text) => Frame::Line(text),
                    Err(_) => Frame::NotUtf8,
                }));
            }
            // `\r` may still come before the `\n`: one byte of grace beyond the limit.
            if self.line.len() > self.limit + 1 {
                return Ok(Some(Frame::TooLong));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the frames were, as text: `Line(x)` as `x`, the others by name.
    async fn frames(input: &[u8], limit: usize) -> Vec<String> {
        let mut reader = LineReader::new(input, limit);
        let mut got = Vec::new();
        while let Some(frame) = reader.next().await.unwrap() {
            let (text, stop) = match frame {
                Frame::Line(text) => (text.to_string(), false),
                Frame::NotUtf8 => ("<not utf-8>".to_string(), false),
                Frame::TooLong => ("<too long>".to_string(), true),
            };
            got.push(text);
            if stop {
                break;
            }
        }
        got
    }

    fn line(text: &str) -> String {
        text.to_string()
    }

    #[tokio::test]
    async fn lines_end_in_lf_or_crlf_and_a_partial_last_line_is_dropped() {
        let got = frames(b"SUB a\nPUB a x y\r\n\r\nPUB a partial", 64).await;
        assert_eq!(got, vec![line("SUB a"), line("PUB a x y"), line("")]);
    }

    #[tokio::test]
    async fn a_line_at_the_limit_passes_and_one_byte_more_does_not() {
        let got = frames(b"12345\r\n123456\n", 5).await;
        assert_eq!(got, vec![line("12345"), line("<too long>")]);
    }

    #[tokio::test]
    async fn a_line_cut_at_a_carriage_return_is_still_too_long() {
        // The byte at the limit is a `\r` that does not end the line.
        let got = frames(b"12345\rX\n", 5).await;
        assert_eq!(got, vec![line("<too long>")]);
    }

    #[tokio::test]
    async fn a_long_line_without_newline_stops_at_the_limit() {
        let input = vec![b'x'; 10_000];
        assert_eq!(frames(&input, 100).await, vec![line("<too long>")]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_reported_and_reading_goes_on() {
        let got = frames(b"PUB a \xff\xfe\nPING\n", 64).await;
        assert_eq!(got, vec![line("<not utf-8>"), line("PING")]);
    }
}
