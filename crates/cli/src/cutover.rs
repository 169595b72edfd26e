//! `redis-sync cutover`: the few seconds in which an application switches from the source to
//! the target.
//!
//! It relies on what `redis-sync sync` keeps in the target (exactly-once, the default): the
//! checkpoint hash `redis-sync:checkpoint:<source>`, whose offset is the source's replication
//! offset up to which the target holds every write, committed with the data. So "caught up" is
//! read from the target itself, whichever machine runs the sync.
//!
//! 1. Read the source's replication ID and offset, and the target's checkpoint; they must be
//!    of the same history (a sync of this pair is running, or ran).
//! 2. Wait, without pausing anything, until the target is at most `--lag` bytes behind.
//! 3. Pause the source's writes (`CLIENT PAUSE <ms> WRITE`: reads go on, and the source itself
//!    lifts the pause after `--max-pause` whatever happens to this process), read the final
//!    offset, and wait until the target's checkpoint reaches it.
//! 4. Compare (a sample of keys by default, `--verify-full` for all) while nothing changes.
//! 5. Lift the pause (`CLIENT UNPAUSE`, on every path) and report: how long writes were
//!    paused, the offsets, the comparison. Exit 0 only when the target held everything and
//!    nothing differed: the moment to point the application at the target is right after.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::client::{Client, parse_version, server_version};
use crate::config::{ConnArgs, FileConfig};
use crate::lag::{self, SourcePosition, Unusable};
use crate::url::Endpoint;
use crate::verify;

/// How often the offsets are read while waiting.
const POLL: Duration = Duration::from_millis(20);
/// Timeout of each request to either server.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Kept free at the end of the pause for the comparison's start and the unpause.
const PAUSE_MARGIN: Duration = Duration::from_millis(500);

/// Arguments of `redis-sync cutover`.
#[derive(Debug, Args, Clone)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Longest time the source's writes stay paused, in seconds. The source lifts the pause by
    /// itself after it, even if this process dies.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub max_pause: f64,
    /// Pause only once the target is at most this many bytes of the stream behind, so the
    /// pause lasts about as long as applying them.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub lag: u64,
    /// How long to wait, in seconds, for the sync to come within `--lag` before pausing.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub catch_up_timeout: f64,
    /// Keys compared while the writes are paused (a sample); 0 compares none.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub verify_sample: u64,
    /// Compare every key while the writes are paused (raise `--max-pause` to match).
    #[arg(long)]
    pub verify_full: bool,
    /// Do not pause the source: wait until the target holds every write made so far, then
    /// compare while writes go on (differences still in flight are checked again).
    #[arg(long)]
    pub no_pause: bool,
    /// Check that a sync of this pair runs and comes within `--lag`, and report; pause
    /// nothing and compare nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `cutover` found and did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The source and the target, as given.
    pub source: String,
    pub target: String,
    /// The replication ID of the source's history.
    pub replid: String,
    /// The source's offset when the target was checked (after the pause began, if paused).
    pub source_offset: u64,
    /// The target's checkpoint offset then.
    pub target_offset: u64,
    /// Bytes the target was behind when the pause began (or when checked, without a pause).
    pub lag_at_pause: u64,
    /// How long the source's writes were paused, in milliseconds (`None`: not paused).
    pub paused_ms: Option<u64>,
    /// True when the target held every write up to `source_offset` (a dry run: when it came
    /// within `--lag`).
    pub caught_up: bool,
    /// The comparison (`None` when none was asked for).
    pub verify: Option<verify::Report>,
    /// True when this was a `--dry-run`.
    pub dry_run: bool,
}

impl Report {
    fn ok(&self) -> bool {
        self.caught_up && self.verify.as_ref().is_none_or(|v| v.equal)
    }
}

/// Runs `redis-sync cutover`.
pub fn run(args: &CutoverArgs) -> anyhow::Result<ExitCode> {
    let (source, target) = args.conn.endpoints(&FileConfig::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (source, target) = rt.block_on(crate::sentinel::resolve_pair(source, target))?;
    let report = rt.block_on(cutover(&source, &target, args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &Report) {
    println!("source {} (replication ID {})", r.source, r.replid);
    println!("target {}", r.target);
    match r.paused_ms {
        Some(ms) => println!(
            "writes paused for {ms} ms (the target was {} bytes behind when the pause began)",
            r.lag_at_pause
        ),
        None if r.dry_run => {
            println!(
                "dry run: READY, the target is {} bytes behind the source (within --lag); \
                 nothing was paused or compared",
                r.lag_at_pause
            );
            return;
        }
        None => println!("the source was not paused (--no-pause)"),
    }
    println!(
        "{}: the target holds the stream up to offset {} of {}",
        if r.caught_up { "CAUGHT UP" } else { "BEHIND" },
        r.target_offset,
        r.source_offset
    );
    match &r.verify {
        Some(v) if v.equal => println!(
            "EQUAL: {} keys compared ({}), no difference",
            v.keys_compared, v.method
        ),
        Some(v) => {
            println!(
                "DIFFERENT: {} keys compared; {} missing on the target, {} extra, {} differing",
                v.keys_compared, v.missing, v.extra, v.different
            );
            for d in &v.examples {
                println!("  db {} {:?}: {} {}", d.db, d.key, d.kind, d.detail);
            }
        }
        None => println!("no comparison (--verify-sample 0)"),
    }
    if r.ok() && !r.dry_run {
        println!("OK: point the application at the target now");
    }
}

/// The source's replication position, which must be a master's: the server the application
/// writes to.
async fn source_position(c: &mut Client) -> anyhow::Result<SourcePosition> {
    let pos = lag::source_position(c).await?;
    if pos.role != "master" {
        bail!(
            "{} is not a master (role {}): cut over from the server the application writes to",
            c.addr(),
            pos.role
        );
    }
    Ok(pos)
}

/// The target's checkpoint offset, checked against the source's history.
async fn target_offset(target: &Endpoint, key: &str, src: &SourcePosition) -> anyhow::Result<u64> {
    match lag::applied_offset(target, key, src).await? {
        Ok(offset) => Ok(offset),
        Err(Unusable::Missing) => bail!(
            "the target holds no checkpoint {key}: is `redis-sync sync` (exactly-once, the \
             default) running from this source into this target? cutover reads how far the \
             target is from that checkpoint"
        ),
        Err(Unusable::Copying(state)) => {
            bail!("the sync into the target is still in its full copy (checkpoint state {state})")
        }
        Err(Unusable::OtherHistory(replid)) => bail!(
            "the target's checkpoint is of replication ID {replid}, the source is at {}: the \
             target was synced from another history (a source restarted without its data, \
             or another server); run `redis-sync sync` again first",
            src.replid
        ),
    }
}

async fn cutover(
    source: &Endpoint,
    target: &Endpoint,
    args: &CutoverArgs,
) -> anyhow::Result<Report> {
    let key = lag::checkpoint_key(source);
    let mut src = Client::connect(source, TIMEOUT).await.context("source")?;
    if crate::client::field(&src.info("cluster").await?, "cluster_enabled") == Some("1") {
        // Pausing one master and reading one shard's checkpoint would report a cut-over that
        // did not happen for the other shards.
        bail!(
            "{source} is a cluster node: cutover handles a single source server only (each \
             shard has its own checkpoint and its own writes to pause). Stop the \
             application's writes, run `redis-sync sync … --until-caught-up` against the \
             cluster, then `redis-sync verify`"
        );
    }
    let (flavor, version) = server_version(&src.info("server").await?);
    let pause = !(args.no_pause || args.dry_run);
    if pause && flavor == "redis" && version < parse_version("6.2.0") {
        bail!(
            "the source runs Redis {}.{}.{}: pausing only its writes (CLIENT PAUSE … WRITE) \
             needs 6.2 or later; use --no-pause and stop the application's writes yourself",
            version.0,
            version.1,
            version.2
        );
    }
    let mut report = Report {
        source: source.to_string(),
        target: target.to_string(),
        dry_run: args.dry_run,
        ..Report::default()
    };

    // 2. Close the gap while the application still writes.
    let deadline = Instant::now() + secs(args.catch_up_timeout);
    let mut last_said = Instant::now();
    loop {
        let pos = source_position(&mut src).await?;
        let at = target_offset(target, &key, &pos).await?;
        report.replid = pos.replid.clone();
        let lag = pos.offset.saturating_sub(at);
        if lag <= args.lag {
            report.lag_at_pause = lag;
            report.source_offset = pos.offset;
            report.target_offset = at;
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the target stayed {lag} bytes behind the source for {:.0} s (more than --lag \
                 {}): is `redis-sync sync` running and keeping up? Nothing was paused",
                args.catch_up_timeout,
                args.lag
            );
        }
        if last_said.elapsed() >= Duration::from_secs(2) {
            last_said = Instant::now();
            eprintln!("cutover: waiting for the target, {lag} bytes behind");
        }
        tokio::time::sleep(POLL).await;
    }

    if args.dry_run {
        // Ready to pause: that is all a dry run can tell (a comparison while the application
        // writes would find the keys in flight).
        report.caught_up = true;
        return Ok(report);
    }

    // 3. Pause, wait for the final offset, compare; unpause whatever happened.
    if pause {
        let max = secs(args.max_pause);
        let ms = max.as_millis().max(1).to_string();
        src.ok(&["CLIENT", "PAUSE", &ms, "WRITE"])
            .await
            .context("pausing the source's writes")?;
        let paused = Instant::now();
        let ends = paused + max;
        let result = paused_phase(&mut src, source, target, &key, args, ends, &mut report).await;
        let unpaused = src.ok(&["CLIENT", "UNPAUSE"]).await;
        report.paused_ms = Some(paused.elapsed().as_millis() as u64);
        result?;
        unpaused.context(
            "lifting the pause (CLIENT UNPAUSE) failed: the source lifts it by itself after \
             --max-pause",
        )?;
    } else {
        let end = Instant::now() + secs(args.catch_up_timeout);
        wait_for_final_offset(&mut src, target, &key, end, &mut report).await?;
        if report.caught_up {
            report.verify = compare(source, target, args, 1.0).await?;
        }
    }
    Ok(report)
}

/// With the writes paused: the final offset, then the comparison, within the pause.
async fn paused_phase(
    src: &mut Client,
    source: &Endpoint,
    target: &Endpoint,
    key: &str,
    args: &CutoverArgs,
    pause_ends: Instant,
    report: &mut Report,
) -> anyhow::Result<()> {
    let end = pause_ends.checked_sub(PAUSE_MARGIN).unwrap_or(pause_ends);
    wait_for_final_offset(src, target, key, end, report).await?;
    if report.caught_up {
        report.verify = compare(source, target, args, 0.0).await?;
    }
    if Instant::now() >= pause_ends {
        tracing::warn!(
            "the comparison outlasted --max-pause: the source's writes resumed before it ended"
        );
    }
    Ok(())
}

/// Waits until the target's checkpoint reaches the source's offset (read again each time: the
/// source's own `PING`s move it), or `end`.
async fn wait_for_final_offset(
    src: &mut Client,
    target: &Endpoint,
    key: &str,
    end: Instant,
    report: &mut Report,
) -> anyhow::Result<()> {
    loop {
        let pos = source_position(src).await?;
        let at = target_offset(target, key, &pos).await?;
        report.source_offset = pos.offset;
        report.target_offset = at;
        if at >= pos.offset {
            report.caught_up = true;
            return Ok(());
        }
        if Instant::now() >= end {
            return Ok(()); // reported as BEHIND
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The comparison `verify` makes, a sample or all keys (`None` when none is asked for).
async fn compare(
    source: &Endpoint,
    target: &Endpoint,
    args: &CutoverArgs,
    recheck_after: f64,
) -> anyhow::Result<Option<verify::Report>> {
    if !args.verify_full && args.verify_sample == 0 {
        return Ok(None);
    }
    let sample = (!args.verify_full).then_some(args.verify_sample);
    verify::compare_endpoints(source, target, sample, recheck_after)
        .await
        .map(Some)
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}
