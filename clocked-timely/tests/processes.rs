//! The word count example as two processes on loopback (timely's `-n 2 -p 0` / `-p 1` with a
//! hostfile of free ports): process 0 prints what the sequential computation over both
//! processes' logs gives. Both children are killed if they do not finish in time.

#[path = "../examples/wordcount/input.rs"]
mod input;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const EVENTS: usize = 20_000;
const WINDOW: u64 = 1_000;
const LIMIT: Duration = Duration::from_secs(90);

/// The example binary, built next to this test (`cargo test` builds examples; a run of this
/// test file alone builds it here).
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/processes-<hash> -> target/<profile>/examples/wordcount
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("wordcount{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "clocked-timely", "--example", "wordcount"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the example failed");
    }
    binary
}

/// Two loopback ports that were free a moment ago.
fn free_ports() -> [u16; 2] {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    [
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ]
}

struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Waits for `child` until `deadline`; kills it then.
fn finish(mut child: Child, deadline: Instant) -> Finished {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let success = loop {
        match child.try_wait().expect("wait for the child") {
            Some(status) => break status.success(),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Finished {
        success,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs both processes once; `None` if a port was taken in the meantime (try again).
fn run_pair(binary: &PathBuf, dir: &tempfile::TempDir) -> Option<(Finished, Finished)> {
    let [p0, p1] = free_ports();
    let hostfile = dir.path().join(format!("hosts-{p0}-{p1}"));
    std::fs::write(&hostfile, format!("127.0.0.1:{p0}\n127.0.0.1:{p1}\n"))
        .expect("write the hostfile");
    let spawn = |process: usize| {
        Command::new(binary)
            .args(["-w", "1", "-n", "2", "-p", &process.to_string(), "-h"])
            .arg(&hostfile)
            .args([
                "--events",
                &EVENTS.to_string(),
                "--window",
                &WINDOW.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the example")
    };
    let deadline = Instant::now() + LIMIT;
    let (first, second) = (spawn(0), spawn(1));
    let second = thread::spawn(move || finish(second, deadline));
    let first = finish(first, deadline);
    let second = second.join().expect("the waiting thread");
    let port_taken = |f: &Finished| {
        f.stderr.contains("Address already in use") || f.stderr.contains("AddrInUse")
    };
    if !(first.success && second.success) && (port_taken(&first) || port_taken(&second)) {
        return None;
    }
    Some((first, second))
}

#[test]
fn two_processes_match_the_sequential_count() {
    let binary = example();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (first, second) = (0..3)
        .find_map(|_| run_pair(&binary, &dir))
        .expect("free ports in three tries");
    assert!(
        first.success,
        "process 0 failed or timed out:\n{}\n{}",
        first.stdout, first.stderr
    );
    assert!(
        second.success,
        "process 1 failed or timed out:\n{}\n{}",
        second.stdout, second.stderr
    );
    let windows: Vec<String> = first
        .stdout
        .lines()
        .filter(|line| line.starts_with("window "))
        .map(str::to_owned)
        .collect();
    assert_eq!(windows, input::expected(2, EVENTS, WINDOW));
    assert!(first
        .stdout
        .contains(&format!("process 0: {} windows", windows.len())));
    assert!(second
        .stdout
        .contains("process 1: the counts are printed by process 0"));
    assert!(
        !second.stdout.contains("window "),
        "only process 0 prints counts"
    );
}
