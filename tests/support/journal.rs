//! Reading a journal directory and a receiver's replay, for the journal tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clocked_dispatch::{
    ClockedReceiver, ClockedSender, Dispatcher, DispatcherStats, RecvCheckedError, SpillFault,
};

/// The segment files in `dir`, in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the journal directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "cdj"))
        .collect();
    files.sort();
    files
}

/// Everything `rx` holds now: data until the first 200 ms without any.
pub fn drain(rx: &ClockedReceiver<u64>) -> Vec<(u64, usize)> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((Some(v), stamp)) => got.push((v, stamp)),
            Ok((None, _)) => {}
            Err(_) => return got,
        }
    }
}

/// What [`read_through`] read.
pub struct Read {
    /// The values before the sentinel, in order.
    pub values: Vec<u64>,
    /// Each fault reported on the way, with how many values had been read before it.
    pub faults: Vec<(usize, SpillFault)>,
}

impl Read {
    /// The kinds of the faults, in order.
    pub fn fault_kinds(&self) -> Vec<clocked_dispatch::FaultKind> {
        self.faults.iter().map(|(_, fault)| fault.kind).collect()
    }
}

/// Sends `sentinel` on `tx` and reads `rx` (a replay, then live messages) until it arrives;
/// fails the test after 30 s.
pub fn read_through(tx: &ClockedSender<u64>, rx: &ClockedReceiver<u64>, sentinel: u64) -> Read {
    tx.send(sentinel).expect("send the sentinel");
    let mut read = Read {
        values: Vec::new(),
        faults: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the sentinel never arrived");
        match rx.recv_checked() {
            Ok((Some(v), _)) if v == sentinel => return read,
            Ok((Some(v), _)) => read.values.push(v),
            Ok((None, _)) => {}
            Err(RecvCheckedError::Spill(fault)) => read.faults.push((read.values.len(), fault)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The dispatcher's counters once they show `handled` messages (they are published at the end
/// of each batch, just after its delivery), or after 10 s.
pub fn stats_after<T: Send>(d: &Dispatcher<T>, handled: u64) -> DispatcherStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stats = d.stats();
    while stats.handled < handled && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        stats = d.stats();
    }
    stats
}
