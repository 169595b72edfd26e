//! `redis-sync check`: prechecks before a sync.

use std::process::ExitCode;

use clap::Args;

use crate::config::ConnArgs;

/// Arguments of `redis-sync check`.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `redis-sync check`.
pub fn run(_args: &CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
