//! The two links of a run: the sink to the target (standalone or cluster, detected) and the
//! replica on the source (manual ACKs: the source hears an offset only once the target holds
//! it).

use std::path::Path;

use redis_sync_replica::{AckMode, Replica, ReplicaBuilder, ResumePoint};
use redis_sync_sink::Sink;
use tokio::sync::watch;

use crate::config::{Settings, TARGET_TLS_FLAGS};

// Memory: every buffer between the source's socket and the target's is bounded in bytes, so
// the process stays within a few tens of MiB whatever the data (a 1 GiB key streams through):
// the spool's memory part (8 MiB, then disk), decoded events waiting for the loop
// (`EVENTS_QUEUED` events of at most one 64 KiB value chunk), one key's RESTORE payload and its
// held commands (`--value-budget` each), the sink's queue and its in-flight window.

/// Decoded events queued between the replica and the loop.
const EVENTS_QUEUED: usize = 128;
/// Bytes of commands queued in the sink, not yet sent.
const SINK_QUEUE_BYTES: usize = 8 << 20;
/// Bytes of commands sent to a target node and not yet answered.
const SINK_WINDOW_BYTES: usize = 8 << 20;

/// Connects a sink to the target. Also used when a new full copy replaces the history the
/// sink's offsets belong to.
pub(super) async fn connect_sink(s: &Settings) -> anyhow::Result<Sink> {
    let mut b = Sink::builder();
    b = match s.target_cluster {
        Some(true) => b.cluster([s.target.addr()]),
        _ => b.target(s.target.addr()),
    };
    if let Some(locate) = crate::sentinel::locator(&s.target) {
        // A sentinel target: the sink starts at the master the sentinels name now and, after
        // a lost connection or a READONLY, asks them again (a failover).
        b = b.locate(locate);
    }
    if let Some(pw) = &s.target.password {
        b = match &s.target.user {
            Some(u) => b.user(u.clone(), pw.clone()),
            None => b.password(pw.clone()),
        };
    }
    b = b
        .policy(s.policy)
        .conflict(s.conflict)
        .rate(s.rate)
        .window(65_536, SINK_WINDOW_BYTES)
        .queue_bytes(SINK_QUEUE_BYTES);
    if let Some(dl) = &s.dead_letter {
        b = b.dead_letter(dl.clone());
    }
    if let Some(tls) = &s.target.tls {
        b = b.tls(tls.clone());
    }
    b.connect().await.map_err(|e| {
        let tls = matches!(e, redis_sync_sink::Error::Tls { .. });
        anyhow::Error::from(e).context(if tls {
            format!(
                "connecting to the target {} over TLS (options: {TARGET_TLS_FLAGS})",
                s.target
            )
        } else {
            format!("connecting to the target {}", s.target)
        })
    })
}

/// Logs what the target is.
pub(super) fn log_target(s: &Settings, sink: &Sink) {
    let target = sink.target();
    tracing::info!(
        "target {} ({} {}.{}.{}{})",
        s.target,
        target.flavor,
        target.version.0,
        target.version.1,
        target.version.2,
        if target.cluster { ", cluster" } else { "" }
    );
}

/// Starts the replica on the source, resuming with `PSYNC` at `resume` when there is one
/// (`state_file` only names where the position came from). It stops once `shutdown` turns
/// `true`; the loop drains the target first, then exits.
pub(super) fn start_replica(
    s: &Settings,
    resume: Option<&ResumePoint>,
    state_file: &Path,
    shutdown: watch::Receiver<bool>,
) -> Replica {
    let mut builder = ReplicaBuilder::new(s.source.addr())
        .ack_mode(AckMode::Manual)
        .rdb_restore_payloads(true)
        .rdb_restore_limit(s.value_budget)
        .event_capacity(EVENTS_QUEUED)
        .idle_timeout(s.source_timeout)
        .spool(s.spool.clone());
    if let Some(pw) = &s.source.password {
        builder = builder.password(s.source.user.as_deref(), pw);
    }
    if let Some(tls) = &s.source.tls {
        builder = builder.tls(tls.clone());
    }
    if let Some(locate) = crate::sentinel::locator(&s.source) {
        // A sentinel source: after a lost link, replicate from the master the sentinels name
        // (a promoted replica continues the old master's history: a partial resync).
        builder = builder.locate(locate);
    }
    if let Some(link) = &s.shard {
        // A shard of a cluster: after a lost link, connect where its master is now.
        let link = link.clone();
        builder = builder.locate(move || {
            let link = link.clone();
            async move { link.locate().await }
        });
    }
    if let Some(path) = &s.tee_rdb {
        builder = builder.tee_rdb(path);
    }
    if let Some(scan) = &s.scan {
        crate::source_mode::explain(scan);
        builder = builder.from_scan(scan.clone());
    }
    if let Some((rdb, aof)) = &s.files {
        builder = builder.from_files(rdb.as_ref(), aof.as_ref());
        if let Some(t) = s.until_time {
            builder = builder.until_time(t);
        }
    }
    match resume {
        Some(p) => {
            tracing::info!(
                "checkpoint ({}): replid {} offset {}; asking the source for a partial resync",
                if s.transactions {
                    "in the target".to_string()
                } else {
                    state_file.display().to_string()
                },
                p.replid,
                p.offset
            );
            builder = builder.resume_from(p.clone());
        }
        None => tracing::info!("no checkpoint: starting with a full copy"),
    }
    let mut stop = shutdown;
    builder.start(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
}
