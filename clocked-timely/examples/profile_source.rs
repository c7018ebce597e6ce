//! One workload of `benches/source.rs`, for `benches/instructions.sh` to run under callgrind:
//!
//! ```text
//! profile_source <handle | handle-batched | source | source-batched> <messages>
//! ```

#[path = "../benches/support/workloads.rs"]
mod workloads;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(workload), Some(Ok(n))) = (args.get(1), args.get(2).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: profile_source <handle|handle-batched|source|source-batched> <messages>");
        return ExitCode::FAILURE;
    };
    let elapsed = match workload.as_str() {
        "handle" => workloads::input_handle(n, true),
        "handle-batched" => workloads::input_handle(n, false),
        "source" => workloads::source(n, false),
        "source-batched" => workloads::source(n, true),
        other => {
            eprintln!("unknown workload {other}");
            return ExitCode::FAILURE;
        }
    };
    println!("{workload}: {n} messages in {elapsed:?}");
    ExitCode::SUCCESS
}
