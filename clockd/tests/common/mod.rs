//! What the `clockd` tests share: running the real binary, and journals written by the
//! library with known contents.

#![allow(dead_code)] // each test file uses some of these

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clocked_dispatch::{Builder, ClockedReceiver, Dispatcher, JournalError};

/// Runs `clockd` with `args`.
pub fn clockd<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_clockd"))
        .args(args)
        .output()
        .expect("clockd runs")
}

/// Stdout of a run, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("clockd prints UTF-8")
}

/// Stderr of a run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("clockd prints UTF-8")
}

/// The exit code of a run (panics if it was killed by a signal).
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("clockd exits, not killed")
}

/// A failed run: exit code 2, one line on stderr starting `clockd: `, nothing on stdout, no
/// panic. Returns the line.
pub fn failed(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(code(output), 2, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("clockd: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(output.stdout.is_empty(), "{}", stdout(output));
    err
}

/// Retries `f` while it fails with [`JournalError::InUse`], for up to 5 s.
///
/// A journal's lock is an `flock` on a file of its directory. While a process forks (any
/// `Command::spawn`: here the tests of one file run `clockd` from parallel threads), the child
/// holds a copy of every descriptor until it execs, lock files included. For that moment a
/// journal this process has just closed still reads as locked by someone else, and the
/// library's in-process wait for its own journals does not cover it.
pub fn retry_in_use<T>(mut f: impl FnMut() -> Result<T, JournalError>) -> Result<T, JournalError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Err(JournalError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Runs `clockd journal rewind DIR RECEIVER STAMP`, again while it fails only because the
/// journal reads as open (see [`retry_in_use`]: this process's journal, just closed).
pub fn rewind_closed(dir: &Path, receiver: &str, stamp: &str) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = clockd([
            "journal".as_ref(),
            "rewind".as_ref(),
            dir.as_os_str(),
            receiver.as_ref(),
            stamp.as_ref(),
        ]);
        let in_use = code(&out) == 2 && stderr(&out).contains("a dispatcher has the journal open");
        if !in_use || std::time::Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A journaled dispatcher on `dir`.
pub fn open<T>(dir: &Path, segment_size: u64) -> Dispatcher<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    retry_in_use(|| {
        Builder::new()
            .bound(16)
            .inbox_capacity(1 << 16)
            .journal(dir)
            .journal_segment_size(segment_size)
            .build_journaled::<T>()
    })
    .expect("the journal opens")
}

/// The next data message, skipping watermarks.
pub fn next<T>(rx: &ClockedReceiver<T>) -> (T, usize) {
    loop {
        if let (Some(v), stamp) = rx.recv().expect("the dispatcher runs") {
            return (v, stamp);
        }
    }
}

/// Everything the receiver holds now: data until it has been quiet for 200 ms.
pub fn drain<T>(rx: &ClockedReceiver<T>) -> Vec<(T, usize)> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((Some(v), stamp)) => got.push((v, stamp)),
            Ok((None, _)) => {}
            Err(_) => return got,
        }
    }
}

/// The first `n` data values `rx` gets (each within 10 s), then checks that no more follow.
pub fn take<T: std::fmt::Debug>(rx: &ClockedReceiver<T>, n: usize) -> Vec<T> {
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((Some(v), _)) => values.push(v),
            Ok((None, _)) => {}
            Err(e) => panic!("{e:?} after {} of {n} values", values.len()),
        }
    }
    while let Ok((value, _)) = rx.recv_timeout(Duration::from_millis(100)) {
        assert!(value.is_none(), "more than {n} values: {value:?}");
    }
    values
}

/// The segment files of a journal, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    clocked_dispatch::journal::inspect::segments(dir)
        .expect("the journal lists")
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// A journal with known contents, its dispatcher still running (returned with its handles):
///
/// | stamps | what                                            |
/// |--------|-------------------------------------------------|
/// | 1-5    | data for `orders`: "order 0" .. "order 4"       |
/// | 6-8    | data for `audit`: "audit 0" .. "audit 2"        |
/// | 9-10   | broadcasts "tick 0", "tick 1" (both open)       |
///
/// `orders` commits 4 and `audit` nothing. `segment_size` 1 puts each batch in a segment.
pub struct Known {
    pub dispatcher: Dispatcher<String>,
    pub handles: Vec<Box<dyn std::any::Any>>,
}

/// Writes [`Known`]'s journal into `dir`.
pub fn known_journal(dir: &Path, segment_size: u64) -> Known {
    let d = open::<String>(dir, segment_size);
    let (tx_o, rx_o) = d.new("tx_orders", "orders");
    let (tx_a, rx_a) = d.new("tx_audit", "audit");
    let bc = tx_o.clone("bc").into_broadcaster();
    tx_o.send_all((0..5).map(|i| format!("order {i}"))).unwrap();
    tx_a.send_all((0..3).map(|i| format!("audit {i}"))).unwrap();
    bc.broadcast("tick 0".to_string()).unwrap();
    bc.broadcast("tick 1".to_string()).unwrap();
    let got: Vec<_> = (0..7).map(|_| next(&rx_o)).collect();
    assert_eq!(got[6], ("tick 1".to_string(), 10));
    rx_o.commit(4).unwrap();
    // Everything before stamp 10 is written before it is delivered; `audit` has all of it.
    assert_eq!(next(&rx_a).1, 6);
    Known {
        dispatcher: d,
        handles: vec![
            Box::new(tx_o),
            Box::new(rx_o),
            Box::new(tx_a),
            Box::new(rx_a),
            Box::new(bc),
        ],
    }
}

impl Known {
    /// Stops the dispatcher and waits for its thread.
    pub fn stop(self) {
        drop(self.handles);
        self.dispatcher.join();
    }
}
