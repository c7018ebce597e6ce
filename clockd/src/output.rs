//! Writing results: stdout buffered, a closed pipe (`clockd journal cat DIR | head`) ending
//! the output quietly instead of failing, and numbers for people.

use std::fmt;
use std::io::{self, BufWriter, Stdout, Write};

use crate::Failure;

/// Buffered stdout. Once the reader has gone (a broken pipe), writes are dropped.
pub struct Out {
    inner: BufWriter<Stdout>,
    closed: bool,
}

impl Out {
    /// Standard output.
    pub fn stdout() -> Self {
        Out {
            inner: BufWriter::with_capacity(64 << 10, io::stdout()),
            closed: false,
        }
    }

    /// Writes one line. `Ok(false)` once the reader has gone: the caller can stop.
    pub fn line(&mut self, args: fmt::Arguments<'_>) -> Result<bool, Failure> {
        if self.closed {
            return Ok(false);
        }
        let written = self
            .inner
            .write_fmt(args)
            .and_then(|()| self.inner.write_all(b"\n"));
        self.check(written)
    }

    /// Flushes what is buffered.
    pub fn finish(mut self) -> Result<(), Failure> {
        if self.closed {
            return Ok(());
        }
        let flushed = self.inner.flush();
        self.check(flushed).map(|_| ())
    }

    fn check(&mut self, result: io::Result<()>) -> Result<bool, Failure> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(false)
            }
            Err(e) => Err(Failure::new(format!("cannot write the output: {e}"))),
        }
    }
}

/// A byte count for people: `512 B`, `1.9 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `n` and a noun, plural unless `n` is 1: `1 segment`, `3 segments`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A name as it can go on one line of a table: quoted and escaped if it holds control
/// characters (a newline, a tab) or is empty.
pub fn printable(name: &str) -> String {
    if name.is_empty() || name.chars().any(char::is_control) {
        format!("{name:?}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1023), "1023 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn counts_are_plural_unless_one() {
        assert_eq!(super::count(0, "segment"), "0 segments");
        assert_eq!(super::count(1, "segment"), "1 segment");
        assert_eq!(super::count(2, "record"), "2 records");
    }

    #[test]
    fn names_with_control_characters_are_quoted() {
        assert_eq!(super::printable("orders"), "orders");
        assert_eq!(super::printable("a\tb"), "\"a\\tb\"");
        assert_eq!(super::printable(""), "\"\"");
    }
}
