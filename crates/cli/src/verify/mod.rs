//! `redis-sync verify`: does the target hold what the source holds?
//!
//! When both sides are standalone, answer `DEBUG DIGEST` and no sample is asked for, equal
//! digests settle it at once. Otherwise (or when they differ, to say which keys) the keys are
//! compared one by one, `SCAN` page by page: type, TTL (within `--ttl-tolerance`), and value —
//! by `DEBUG DIGEST-VALUE` when both servers run the same version and allow it, else by
//! reading the value (`GET`, `LRANGE`, sorted `SMEMBERS`, `ZRANGE … WITHSCORES`, sorted
//! `HGETALL`, `XRANGE`; `DUMP` for module types). Then the target is scanned for keys the
//! source lacks. Differences found while a sync runs are checked once more after a pause, so
//! keys merely in flight are not reported; `--repair` rewrites what still differs from the
//! source (`DUMP`/`RESTORE`, extra keys deleted). A cluster on either side is scanned master by
//! master and keys are read from the master that owns their slot.

mod side;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use crate::config::{ConnArgs, FileConfig};
use side::Side;

/// Arguments of `redis-sync verify`.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compare only about this many keys of the source (and skip the search for extra keys).
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Largest TTL difference, in milliseconds, that still counts as equal.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub ttl_tolerance: i64,
    /// Always compare key by key, even when the digests are equal.
    #[arg(long)]
    pub keys: bool,
    /// Seconds to wait before re-checking the differences (a live sync may still be applying
    /// them); 0 reports the first pass as is.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub recheck_after: f64,
    /// Rewrite the differing keys on the target from the source (DUMP/RESTORE; extra keys
    /// are deleted), then report what was repaired.
    #[arg(long)]
    pub repair: bool,
    /// How many differing keys to name in the report.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub show: usize,
}

/// One key that differs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    /// The db.
    pub db: u32,
    /// The key (lossy UTF-8).
    pub key: String,
    /// `missing` (not on the target), `extra` (only on the target), `type`, `ttl`, `value`.
    pub kind: &'static str,
    /// Details (the two types or TTLs).
    pub detail: String,
    #[serde(skip)]
    raw: Bytes,
}

/// The whole result.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// How the comparison was made.
    pub method: String,
    /// Keys compared.
    pub keys_compared: u64,
    /// Keys on the source but not on the target.
    pub missing: u64,
    /// Keys on the target but not on the source.
    pub extra: u64,
    /// Keys on both sides that differ (type, TTL or value).
    pub different: u64,
    /// The first differences, named.
    pub examples: Vec<Difference>,
    /// True when nothing differs.
    pub equal: bool,
    /// Keys rewritten by `--repair`.
    pub repaired: u64,
    /// Keys `--repair` could not fix (with the reason in the log).
    pub repair_failed: u64,
}

/// Runs `redis-sync verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (source, target) = args.conn.endpoints(&FileConfig::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let mut src = Side::open(&source).await.context("source")?;
        let mut dst = Side::open(&target).await.context("target")?;
        compare(&mut src, &mut dst, args).await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("source {source}\ntarget {target}");
        println!("method: {}", report.method);
        if report.equal {
            println!(
                "EQUAL: {} keys compared, no difference",
                report.keys_compared
            );
        } else {
            println!(
                "DIFFERENT: {} keys compared; {} missing on the target, {} extra on the target, \
                 {} differing",
                report.keys_compared, report.missing, report.extra, report.different
            );
            for d in &report.examples {
                println!("  db {} {:?}: {} {}", d.db, d.key, d.kind, d.detail);
            }
            if args.repair {
                println!(
                    "repaired {} keys ({} could not be repaired)",
                    report.repaired, report.repair_failed
                );
            }
        }
    }
    let fixed = args.repair && report.repair_failed == 0;
    Ok(if report.equal || fixed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// redis-sync's own keys (the heartbeat on the source, `--checkpoint-in-target` on the
/// target) are not data: never reported.
fn own_key(key: &[u8]) -> bool {
    key.starts_with(redis_sync_commands::HEARTBEAT_PREFIX)
        || key.starts_with(crate::sync::TARGET_CHECKPOINT_PREFIX.as_bytes())
}

/// The comparison of `verify` with its defaults, for another command (`cutover`): a sample of
/// about `sample` keys, or all of them; differences re-checked after `recheck_after` seconds
/// (0: the first pass as is).
pub async fn compare_endpoints(
    source: &crate::url::Endpoint,
    target: &crate::url::Endpoint,
    sample: Option<u64>,
    recheck_after: f64,
) -> anyhow::Result<Report> {
    let args = VerifyArgs {
        conn: ConnArgs::default(),
        json: false,
        sample,
        ttl_tolerance: 2000,
        keys: false,
        recheck_after,
        repair: false,
        show: 10,
    };
    let mut src = Side::open(source).await.context("source")?;
    let mut dst = Side::open(target).await.context("target")?;
    compare(&mut src, &mut dst, &args).await
}

async fn compare(src: &mut Side, dst: &mut Side, args: &VerifyArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if args.sample.is_none()
        && !args.keys
        && let (Some(a), Some(b)) = (src.digest().await, dst.digest().await)
    {
        if a == b {
            report.method = format!("DEBUG DIGEST ({a})");
            report.keys_compared = src.dbsize().await?;
            report.equal = true;
            return Ok(report);
        }
        tracing::debug!("digests differ: {a} vs {b}; comparing key by key");
    }
    let by_digest =
        src.same_version(dst) && src.has_digest_value().await && dst.has_digest_value().await;
    report.method = format!(
        "key by key ({}{})",
        if by_digest {
            "DEBUG DIGEST-VALUE"
        } else {
            "values read"
        },
        args.sample
            .map(|n| format!(", sample of {n}"))
            .unwrap_or_default()
    );
    let mut diffs = Vec::new();
    let limit = args.sample.unwrap_or(u64::MAX);
    let mut compared = 0u64;
    'dbs: for db in src.dbs().await? {
        let mut cursors = src.cursors();
        while let Some(mut keys) = src.scan_page(db, &mut cursors).await? {
            keys.retain(|k| !own_key(k));
            let left = usize::try_from(limit - compared).unwrap_or(usize::MAX);
            let full = keys.len() >= left;
            keys.truncate(left);
            compared += keys.len() as u64;
            diffs.extend(
                side::compare_page(src, dst, db, &keys, by_digest, args.ttl_tolerance).await?,
            );
            if full {
                break 'dbs;
            }
        }
    }
    if args.sample.is_none() {
        for db in dst.dbs().await? {
            let mut cursors = dst.cursors();
            while let Some(mut keys) = dst.scan_page(db, &mut cursors).await? {
                keys.retain(|k| !own_key(k));
                for (key, on_source) in keys.iter().zip(src.exist_many(db, &keys).await?) {
                    if !on_source {
                        diffs.push(Difference {
                            db,
                            key: String::from_utf8_lossy(key).into_owned(),
                            kind: "extra",
                            detail: "only on the target".into(),
                            raw: key.clone(),
                        });
                    }
                }
            }
        }
    }
    if !diffs.is_empty() && args.recheck_after > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.recheck_after.min(600.0))).await;
        let mut still = Vec::new();
        for d in diffs {
            if d.kind == "extra" {
                if !src.exists(d.db, &d.raw).await? {
                    still.push(d);
                }
            } else {
                let key = [d.raw.clone()];
                still.extend(
                    side::compare_page(src, dst, d.db, &key, by_digest, args.ttl_tolerance).await?,
                );
            }
        }
        diffs = still;
    }
    report.keys_compared = compared;
    report.missing = diffs.iter().filter(|d| d.kind == "missing").count() as u64;
    report.extra = diffs.iter().filter(|d| d.kind == "extra").count() as u64;
    report.different = diffs.len() as u64 - report.missing - report.extra;
    report.equal = diffs.is_empty();
    if args.repair {
        for d in &diffs {
            match dst.repair_from(src, d.db, &d.raw).await {
                Ok(()) => report.repaired += 1,
                Err(e) => {
                    report.repair_failed += 1;
                    eprintln!("redis-sync: repair of {:?} (db {}): {e:#}", d.key, d.db);
                }
            }
        }
    }
    report.examples = diffs.into_iter().take(args.show).collect();
    Ok(report)
}
