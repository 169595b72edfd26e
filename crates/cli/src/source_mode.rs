//! `--source-mode scan`: the flags of the SCAN source (for servers that refuse `SYNC`/`PSYNC`)
//! and what they resolve to. Kept apart from `config.rs` so the SCAN source's rules (which
//! flags it cannot honour, what it says about its limits) live in one place.

use anyhow::bail;
use clap::{Args, ValueEnum};
use redis_sync_replica::ScanOptions;

use crate::config::{Mode, Settings};
use redis_sync_sink::ErrorPolicy;

/// `--source-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SourceMode {
    /// Replicate (`PSYNC`, or `SYNC`): the source's snapshot, then its exact stream of writes;
    /// exactly-once and resumable.
    #[default]
    Replication,
    /// Read the keyspace with ordinary commands (`SCAN`, `DUMP`, `PTTL`), for servers that
    /// refuse replication (several managed services). See --scan-notify for changes.
    Scan,
}

/// The SCAN source's flags (command line only).
#[derive(Debug, Args, Clone, Default)]
pub struct ScanArgs {
    /// Where the data comes from. `replication` (default): the source's snapshot and its
    /// exact stream of writes, as a replica gets them. `scan`, for sources that refuse
    /// SYNC/PSYNC (several managed services): SCAN each db, then DUMP + PTTL each key,
    /// pipelined, written with RESTORE (or native commands). Its limits: no point-in-time
    /// snapshot (each key is copied as it is when read; a key changed during the scan is right
    /// only with --scan-notify); no replication offset, so no resume and no exactly-once:
    /// each run is a full copy (then a sweep of keys the source no longer has, when the target
    /// was synced before). Without --scan-notify the run ends after the copy.
    #[arg(long = "source-mode", value_enum, value_name = "MODE")]
    pub source_mode: Option<SourceMode>,
    /// With --source-mode scan: follow changes with keyspace notifications. Turns
    /// `notify-keyspace-events` on (adds `KA`) with CONFIG SET for the run and sets it back at
    /// the end (if CONFIG is refused, enable it in the service's settings). The subscription
    /// (PSUBSCRIBE __keyspace@*__:*) starts before the SCAN; each key it names is read again
    /// (DUMP) after the copy and written with RESTORE … REPLACE, or DEL when gone (del,
    /// expired, evicted). Key level, not command level: a key written many times is read once,
    /// at its value then. Pub/sub is fire-and-forget: if the subscription drops, the sync stops
    /// with an error (run it again: a full copy). FLUSHDB/FLUSHALL/SWAPDB on the source name
    /// no key: their effect is not copied. With --until-caught-up the run ends once no
    /// changed key has waited for 0.5 s.
    #[arg(long = "scan-notify")]
    pub scan_notify: bool,
    /// With --source-mode scan: SCAN's COUNT (keys per page, a hint). Default 1000.
    #[arg(long = "scan-count", value_name = "N")]
    pub scan_count: Option<u32>,
    /// With --source-mode scan: keys whose DUMP/PTTL are in flight at once. Default 64.
    #[arg(long = "scan-pipeline", value_name = "N")]
    pub scan_pipeline: Option<usize>,
    /// With --source-mode scan: largest DUMP payload accepted (default 512 MiB); a bigger key
    /// stops the run and is named. It bounds the memory one key can take (a key read again
    /// after a change is held whole once).
    #[arg(long = "scan-max-value", value_name = "BYTES")]
    pub scan_max_value: Option<u64>,
    /// With --scan-notify: most changed keys waiting to be read again (default 1,000,000);
    /// past it the run stops: the source changes faster than it is read.
    #[arg(long = "scan-max-pending", value_name = "N")]
    pub scan_max_pending: Option<usize>,
}

/// Resolves the SCAN source's options into `s` (after the other settings), and refuses the
/// flags that need a replication position.
pub fn apply(a: &ScanArgs, s: &mut Settings) -> anyhow::Result<()> {
    let scan = a.source_mode == Some(SourceMode::Scan);
    if !scan {
        let given = a.scan_notify
            || a.scan_count.is_some()
            || a.scan_pipeline.is_some()
            || a.scan_max_value.is_some()
            || a.scan_max_pending.is_some();
        if given {
            bail!("the --scan-* flags need --source-mode scan");
        }
        return Ok(());
    }
    let refuse = |flag: &str, why: &str| -> anyhow::Result<()> {
        bail!("--source-mode scan cannot honour {flag}: {why}")
    };
    if s.files.is_some() {
        refuse(
            "--source-rdb/--source-aof",
            "a backup file is its own source",
        )?;
    }
    if s.tee_rdb.is_some() || s.tee_aof.is_some() {
        refuse(
            "--tee-rdb/--tee-aof",
            "there is no RDB stream or command stream from the source to keep",
        )?;
    }
    if s.heartbeat.is_some() {
        refuse(
            "--heartbeat",
            "it measures the lag of the replication stream, which a SCAN source has not",
        )?;
    }
    if s.policy == ErrorPolicy::Repair {
        refuse(
            "--on-error repair",
            "it skips the stream's commands up to the source's replication offset, which a \
             SCAN source has not; use --on-error skip --dead-letter FILE",
        )?;
    }
    if a.scan_notify && s.mode == Mode::Full {
        bail!(
            "--scan-notify follows changes after the copy, --mode full stops after it: give \
             one of them"
        );
    }
    let mut o = ScanOptions::default();
    o.notify = a.scan_notify;
    o.enable_notify = a.scan_notify;
    o.until_idle = s.until_caught_up;
    if let Some(n) = a.scan_count {
        o.count = n.max(1);
    }
    if let Some(n) = a.scan_pipeline {
        o.pipeline = n.clamp(1, 100_000);
    }
    if let Some(n) = a.scan_max_value {
        o.max_value = n.max(1024);
    }
    if let Some(n) = a.scan_max_pending {
        o.max_pending = n.max(1);
    }
    // Nothing can resume a SCAN run: no checkpoint is asked of the source.
    s.resume = false;
    s.scan = Some(o);
    Ok(())
}

/// Says, once at the start, what a SCAN run guarantees and what it does not.
pub fn explain(o: &ScanOptions) {
    tracing::warn!(
        "--source-mode scan: no replication offset, so no resume and no exactly-once: this \
         run copies everything (and a target synced before is swept of keys the source no \
         longer has); the copy is no point-in-time snapshot: each key is copied as it is when \
         read"
    );
    if o.notify {
        tracing::info!(
            "--scan-notify: keys changed during and after the copy are read again (key level: \
             their value at that time); a lost subscription stops the sync"
        );
    } else {
        tracing::warn!(
            "one-shot copy (no --scan-notify): keys written during the scan may be copied \
             at an older value or missed, and later writes are not followed"
        );
    }
}
