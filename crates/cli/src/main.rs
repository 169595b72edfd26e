//! The `redis-sync` binary: CLI definition and glue over the workspace's library crates.
//!
//! `main` only parses the flags and calls [`run`]; every error comes back here, is printed with
//! its whole cause chain and exits with status 2. A closed stdout (`redis-sync rdb … | head`)
//! is not an error.

use std::process::ExitCode;

mod check;
mod client;
mod config;
mod cutover;
mod flags;
mod lag;
mod logging;
mod metrics;
mod rdb;
mod sentinel;
mod source_mode;
mod status;
mod sync;
mod url;
mod verify;

fn main() -> ExitCode {
    match run(flags::parse()) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("redis-sync: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one parsed command line.
fn run(cli: flags::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        flags::Command::Rdb(args) => rdb::run(&args),
        flags::Command::Sync(args) => sync::run(args.as_ref()),
        flags::Command::Check(args) => check::run(&args),
        flags::Command::Verify(args) => verify::run(&args),
        flags::Command::Cutover(args) => cutover::run(&args),
    }
}

/// True when the error is a write to a closed pipe: the reader is gone, which is how `head`
/// and friends say "enough".
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
