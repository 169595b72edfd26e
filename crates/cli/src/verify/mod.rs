//! `redis-sync verify`: compare source and target.

use std::process::ExitCode;

use clap::Args;

use crate::config::ConnArgs;

/// Arguments of `redis-sync verify`.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `redis-sync verify`.
pub fn run(_args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
