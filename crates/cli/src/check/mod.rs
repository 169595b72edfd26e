//! `redis-sync check`: the prechecks a migration service runs before a sync, as a table (or
//! JSON). Every row is `ok`, `warn` or `fail`; a `fail` is blocking (exit status 1) and its
//! text says what to change.
//!
//! The rows: connectivity and auth on both sides; the source lets this user replicate
//! (`ACL DRYRUN … PSYNC` on 7.0+); versions (an older target means the command-rewrite path)
//! and features the target lacks (functions, modules, hash field TTLs); the target is empty;
//! the full-copy estimate (duration and RDB size, from rates measured on this machine and
//! both links: [`estimate`]); the target's `maxmemory` against what the copy needs (the
//! source's `used_memory_dataset` + 10 %, what the target holds already, and the stream's
//! writes during the copy); its eviction policy; the source's `client-output-buffer-limit
//! replica` against the estimated copy time and the write rate; `repl-backlog-size` against
//! the write rate; `repl-diskless-sync` and where the RDB would go; `proto-max-bulk-len` on
//! both sides; the biggest keys (sampled, or every key of `--rdb FILE`: [`keys`]) against the
//! target's `proto-max-bulk-len` and `--value-budget`; a cluster target's slot coverage, the
//! source's use of dbs other than 0, and the writes of a few seconds of the source's stream
//! whose keys would span slots there, with how each is applied (or that it stops the sync).
//!
//! The measurements (the write rate over `--sample-secs`, this machine's decode rate, the
//! key sample, the pipelined rates of both links) cost the source a few thousand read-only
//! commands (`SCAN`, `MEMORY USAGE`, `TYPE`, `STRLEN`, `DUMP` of small keys, `ECHO`) and the
//! target 20,000 `EXISTS` and a few `ECHO`s.

mod estimate;
mod keys;
mod rows;
mod stream_sample;

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::config::{ConnArgs, DEFAULT_VALUE_BUDGET, FileConfig};

/// `redis-sync help check`'s examples.
pub const EXAMPLES: &str = "\
Examples:
  Before a sync (exit status 1 when a row fails; each failing row says what to change):
    redis-sync check --source redis://10.0.0.1:6379 --target redis://10.0.0.2:6379

  Every key's size from the source's latest dump instead of a sample, as JSON for a script:
    redis-sync check --source redis://10.0.0.1:6379 --target redis://10.0.0.2:6379 \\
        --rdb /var/lib/redis/dump.rdb --json

  A longer look at the write rate and a bigger sample of keys, for a sync with a bigger
  --value-budget:
    redis-sync check --source redis://10.0.0.1:6379 --target redis://10.0.0.2:6379 \\
        --sample-secs 10 --sample-keys 10000 --value-budget 67108864

The full-copy estimate is an estimate: it shows the rates it was made of (this machine's
decoder, the pipelined rates of both links, the target's RESTORE cost when it has one).";

/// Arguments of `redis-sync check`.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// A non-empty target is a warning, not a failure (the sync will overwrite keys of the
    /// same name; other keys stay).
    #[arg(long)]
    pub allow_nonempty: bool,
    /// Where `sync` will spool the stream when the target is slow (checked for free space;
    /// default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Seconds to watch the source: its replication offset (the write rate) and, with a
    /// cluster target, its stream (the writes whose keys span slots).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub sample_secs: f64,
    /// How many of the source's keys to measure for the biggest keys and the RDB size: SCAN
    /// pages, each key's MEMORY USAGE and TYPE pipelined (STRLEN for big strings, DUMP for
    /// small keys), spread over the dbs; 0 measures none. A big key outside the sample goes
    /// unseen: --rdb reads every key.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub sample_keys: u64,
    /// An RDB file of the source (its dump.rdb, or one written by `sync --tee-rdb`): the
    /// biggest keys are read from it, every key with its exact length, instead of sampled
    /// live, and its size is the full copy's RDB size in the estimate. The older the file,
    /// the less it says about today's data.
    #[arg(long, value_name = "FILE")]
    pub rdb: Option<std::path::PathBuf>,
    /// The --value-budget the sync will run with: keys bigger than this go as chunked
    /// commands instead of one RESTORE, and a module value bigger than this cannot go at all.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_VALUE_BUDGET)]
    pub value_budget: u64,
}

/// The outcome of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but read the advice.
    Warn,
    /// Blocking: the sync would fail or lose data.
    Fail,
    /// Could not be checked (an earlier failure, or the server refused to say).
    Skip,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was checked.
    pub check: &'static str,
    /// The outcome.
    pub level: Level,
    /// What was found, and for warn/fail what to change.
    pub detail: String,
}

/// Runs `redis-sync check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (source, target) = args.conn.endpoints(&FileConfig::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (source, target) = rt.block_on(crate::sentinel::resolve_pair(source, target))?;
    let rows = rt.block_on(rows::all(&source, &target, args));
    if args.json {
        let blocking = rows.iter().any(|r| r.level == Level::Fail);
        let out = serde_json::json!({
            "source": source.to_string(),
            "target": target.to_string(),
            "ok": !blocking,
            "checks": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("source {source}\ntarget {target}\n");
        let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(10);
        println!("{:width$}  {:6}  DETAIL", "CHECK", "STATUS");
        for r in &rows {
            println!("{:width$}  {:6}  {}", r.check, r.level.name(), r.detail);
        }
        let fails = rows.iter().filter(|r| r.level == Level::Fail).count();
        let warns = rows.iter().filter(|r| r.level == Level::Warn).count();
        println!(
            "\n{}: {fails} blocking, {warns} warnings",
            if fails == 0 { "ready" } else { "NOT READY" }
        );
    }
    Ok(if rows.iter().any(|r| r.level == Level::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
