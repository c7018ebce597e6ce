//! Crash tests run this test binary again as a child process (one ignored test, selected
//! with `--ignored --exact`), read what it prints, and kill it with SIGKILL.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

/// A running child: this test binary, running only the test `name`.
pub struct Child {
    process: std::process::Child,
    output: JoinHandle<String>,
}

/// Starts the ignored test `name` of this binary in a child process, with `env` set; its
/// stdout is collected as it runs.
pub fn spawn(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> Child {
    let mut process = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let mut stdout = process.stdout.take().expect("piped stdout");
    let output = std::thread::spawn(move || {
        let mut output = String::new();
        let _ = stdout.read_to_string(&mut output);
        output
    });
    Child { process, output }
}

impl Child {
    /// Kills the child with SIGKILL and returns everything it printed.
    pub fn kill(mut self) -> String {
        self.process.kill().expect("SIGKILL");
        let status = self.process.wait().expect("the child is reaped");
        assert!(!status.success(), "the child must have been killed");
        self.output.join().expect("the output reader")
    }
}
