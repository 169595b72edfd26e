//! `redis-sync verify`: does the target hold what the source holds?
//!
//! When both sides are standalone, answer `DEBUG DIGEST` and no sample is asked for, equal
//! digests settle it for everything the digest covers; what it does not (when keys and hash
//! fields expire, streams' metadata and groups, module values without a digest callback) is
//! then compared key by key ([`blind`]). Otherwise (or when the digests differ, to say which keys) the keys are
//! compared one by one, `SCAN` page by page ([`keys`]): type, TTL (within `--ttl-tolerance`),
//! and value — by `DEBUG DIGEST-VALUE` when both servers run the same version and allow it,
//! else by reading the value (`GET`, `LRANGE`, sorted `SMEMBERS`, `ZRANGE … WITHSCORES`,
//! sorted `HGETALL`, `XRANGE`); `DUMP` for module types — then hash field TTLs
//! ([`field_ttl`]) and streams' metadata and groups ([`stream`]). Then the target is scanned for
//! keys the source lacks. Differences found while a sync runs are checked once more once the
//! target has applied the source's stream that far, or after a pause ([`recheck`]), so keys
//! merely in flight are not reported; `--repair` rewrites what still differs from the source
//! (`DUMP`/`RESTORE`, which carries groups, PEL and field TTLs; extra keys deleted). A cluster
//! on either side is scanned master by master and keys are read from the master that owns
//! their slot.

mod blind;
mod field_ttl;
mod keys;
mod recheck;
mod side;
mod stream;

use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use crate::config::{ConnArgs, FileConfig};
use keys::{Plan, compare_page};
pub use recheck::Recheck;
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
    /// Largest TTL difference, in milliseconds, that still counts as equal (keys' TTLs and hash
    /// fields' TTLs).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub ttl_tolerance: i64,
    /// Always compare key by key, even when the digests are equal.
    #[arg(long)]
    pub keys: bool,
    /// Seconds to wait before re-checking the differences (a live sync may still be applying
    /// them) when the target holds no redis-sync checkpoint of this source; 0 reports the
    /// first pass as is (no re-check at all).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub recheck_after: f64,
    /// When the target holds a redis-sync checkpoint of this source (a sync runs): before
    /// re-checking the differences, wait until the target has applied the source's stream up
    /// to where it was after the first pass, at most this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub recheck_timeout: f64,
    /// Rewrite the differing keys on the target from the source (DUMP/RESTORE, which carries
    /// stream groups, pending entries and hash field TTLs; extra keys are deleted), then report
    /// what was repaired.
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
    /// `missing` (not on the target), `extra` (only on the target), `type`, `ttl`, `value`,
    /// `field-ttl` (a hash field's TTL), `stream-meta` (a stream's last ID, entries added, …),
    /// `stream-groups` (its consumer groups, consumers or pending entries).
    pub kind: &'static str,
    /// Details: the two types or TTLs; the fields, groups, consumers or entries that differ.
    pub detail: String,
    #[serde(skip)]
    raw: Bytes,
}

impl Difference {
    fn new(db: u32, key: &Bytes, kind: &'static str, detail: String) -> Difference {
        Difference {
            db,
            key: String::from_utf8_lossy(key).into_owned(),
            kind,
            detail,
            raw: key.clone(),
        }
    }
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
    /// How the differences of the first pass were re-checked (`None`: there were none, or
    /// `--recheck-after 0`).
    pub recheck: Option<Recheck>,
}

/// Runs `redis-sync verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (source, target) = args.conn.endpoints(&FileConfig::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (source, target) = rt.block_on(crate::sentinel::resolve_pair(source, target))?;
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
        if let Some(r) = &report.recheck {
            println!("re-check ({}): {}", r.way, r.detail);
        }
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
/// about `sample` keys, or all of them; differences re-checked once the target's checkpoint
/// reaches the source's offset (at most 10 s), else after `recheck_after` seconds (0: the
/// first pass as is).
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
        recheck_timeout: 10.0,
        repair: false,
        show: 10,
    };
    let mut src = Side::open(source).await.context("source")?;
    let mut dst = Side::open(target).await.context("target")?;
    compare(&mut src, &mut dst, &args).await
}

async fn compare(src: &mut Side, dst: &mut Side, args: &VerifyArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let plan = Plan::new(src, dst, args.ttl_tolerance).await;
    let mut diffs = Vec::new();
    let mut by_digest = None;
    if args.sample.is_none()
        && !args.keys
        && let (Some(a), Some(b)) = (src.digest().await, dst.digest().await)
    {
        if a == b {
            by_digest = Some(a);
        } else {
            tracing::debug!("digests differ: {a} vs {b}; comparing key by key");
        }
    }
    if let Some(digest) = by_digest {
        let pass = blind::compare(src, dst, &plan).await?;
        report.method = format!("DEBUG DIGEST ({digest}); {}", pass.describe());
        report.keys_compared = src.dbsize().await?;
        diffs = pass.diffs;
    } else {
        report.method = format!(
            "key by key ({}{})",
            if plan.by_digest {
                "DEBUG DIGEST-VALUE"
            } else {
                "values read"
            },
            args.sample
                .map(|n| format!(", sample of {n}"))
                .unwrap_or_default()
        );
        let limit = args.sample.unwrap_or(u64::MAX);
        let mut compared = 0u64;
        'dbs: for db in src.dbs().await? {
            let mut cursors = src.cursors();
            while let Some(mut keys) = src.scan_page(db, &mut cursors, None).await? {
                keys.retain(|k| !own_key(k));
                let left = usize::try_from(limit - compared).unwrap_or(usize::MAX);
                let full = keys.len() >= left;
                keys.truncate(left);
                compared += keys.len() as u64;
                diffs.extend(compare_page(src, dst, db, &keys, &plan).await?);
                if full {
                    break 'dbs;
                }
            }
        }
        report.keys_compared = compared;
        if args.sample.is_none() {
            diffs.extend(extra_keys(src, dst).await?);
        }
    }
    if !diffs.is_empty() && args.recheck_after > 0.0 {
        let r = recheck::wait(
            src,
            dst,
            diffs.len(),
            args.recheck_after,
            args.recheck_timeout,
        )
        .await;
        tracing::debug!("re-check: {}", r.detail);
        report.recheck = Some(r);
        let mut still = Vec::new();
        for d in diffs {
            if d.kind == "extra" {
                if !src.exists(d.db, &d.raw).await? {
                    still.push(d);
                }
            } else {
                let key = [d.raw.clone()];
                still.extend(compare_page(src, dst, d.db, &key, &plan).await?);
            }
        }
        diffs = still;
    }
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

/// The keys of the target that the source lacks.
async fn extra_keys(src: &mut Side, dst: &mut Side) -> anyhow::Result<Vec<Difference>> {
    let mut diffs = Vec::new();
    for db in dst.dbs().await? {
        let mut cursors = dst.cursors();
        while let Some(mut keys) = dst.scan_page(db, &mut cursors, None).await? {
            keys.retain(|k| !own_key(k));
            for (key, on_source) in keys.iter().zip(src.exist_many(db, &keys).await?) {
                if !on_source {
                    diffs.push(Difference::new(
                        db,
                        key,
                        "extra",
                        "only on the target".into(),
                    ));
                }
            }
        }
    }
    Ok(diffs)
}
