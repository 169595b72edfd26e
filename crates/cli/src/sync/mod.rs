//! `redis-sync sync`: the data path, top to bottom. [`sync`] runs the phases in order:
//!
//! 1. Resolve the settings (flags over `--config`). Connect the sink to the target
//!    (standalone or cluster, detected) ([`connect`]).
//! 2. Read where to resume ([`position`]). Exactly-once (the default): from the checkpoint the
//!    target holds ([`target_checkpoint`]; one per slot on a cluster), committed with the data
//!    and so trusted over the state file ([`checkpoint`]). At-least-once
//!    (`--no-transactions`): from the state file. `--mode full` never resumes.
//!    Learn the source's module commands, so filters and cluster routing know their keys
//!    ([`module_commands`]).
//! 3. Start the replica on the source with manual ACKs, resuming with `PSYNC` when there is a
//!    position ([`connect`]).
//! 4. The loop ([`event_loop`]) handles each replica event, in order:
//!    - `FullResync` ([`copy`]): a full copy starts. The target's checkpoint says `copying`
//!      until it completes (a restart redoes it); with `--flush-target` the synced dbs are
//!      emptied.
//!    - `Rdb` events ([`copy`]): each key goes through the filter (db, key patterns, type; db
//!      mapping) and then `RdbLoader` (RESTORE for values within `--value-budget`, chunked
//!      native commands otherwise) into the sink.
//!    - `RdbDone` ([`copy`]): wait until the target acknowledged the whole snapshot, sweep the
//!      keys the snapshot does not have (when a copy is redone over an earlier one), write the
//!      checkpoint `streaming` at the snapshot's offset. A stop request ends the wait and the
//!      sweep: the copy is then incomplete and the next run redoes it.
//!    - `Continued` ([`stream`]): a partial resynchronisation: no full copy.
//!    - `Command` ([`stream`]): filter and map, then into the [`Batch`](batch::Batch); a batch
//!      commits as one `MULTI … EXEC` with the checkpoint of its last offset when it is full or
//!      nothing more is ready from the source.
//!
//!    Between events a tick refreshes the status and saves the state file ([`report`]).
//! 5. The [`Ledger`](redis_sync_replica::Ledger) owns the position: told what was written,
//!    filtered, acknowledged, it gives the applied offset the replica ACKs to the source and
//!    the state file records.
//! 6. On SIGINT/SIGTERM (the `shutdown` future [`run`] passes), `--until-caught-up` reached, or
//!    `--mode full` done: commit the batch, drain the sink, checkpoint, exit 0
//!    ([`Run::finish`]).

mod batch;
mod checkpoint;
mod cluster_topology;
mod connect;
mod copy;
pub(crate) mod cross_slot;
mod event_loop;
mod keyset;
mod module_commands;
mod position;
mod progress;
mod repair;
mod report;
mod resharding;
mod shards;
mod stream;
mod sweep;
mod target_checkpoint;
mod tee_aof;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::{Settings, SyncArgs};
use crate::status;
pub use checkpoint::{Checkpoint, StateFile};
use connect::connect_sink;
use event_loop::Run;
pub use shards::{ShardLink, ShardSelect};

/// Runs `redis-sync sync`.
pub fn run(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(args)?;
    crate::logging::init(settings.log_format);
    // Two threads: the loop (`block_on`, this thread) and one worker for the replica's and
    // the sink's tasks. A second worker made tasks hop between cores: 1.16 CPU-s per million
    // keys of a full copy against 1.01 with one (scripts/bench-full-copy.sh).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sync(settings, wait_for_signal()))
}

/// Why the main loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    CaughtUp,
    FullDone,
    SourceGone,
}

/// The run, from the settings to the exit: `shutdown` resolves when the run must stop
/// (`run` passes SIGINT/SIGTERM); the loop then drains the target and exits 0. A cluster
/// source runs one [`sync_one`] per shard ([`shards`]).
async fn sync(
    s: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    // One stop flag for the replicas, the loops and the long phases inside them. The signal
    // handlers are installed on the first poll of `wait_for_signal`: from here on SIGINT and
    // SIGTERM stop the run cleanly.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    {
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
    }
    // Sentinel addresses: start at the masters the sentinels name now.
    let mut s = s;
    (s.source, s.target) = crate::sentinel::resolve_pair(s.source, s.target).await?;
    if shards::is_cluster_source(&s).await? {
        return shards::run(s, shutdown_tx, shutdown_rx).await;
    }
    let shared: status::Shared = Arc::default();
    if let Some(addr) = s.metrics {
        let bound = crate::metrics::serve(addr, vec![(None, shared.clone())]).await?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    // A sentinel target whose failover lost writes it had acknowledged (asynchronous
    // replication): the run stops with `Regressed`, and starts again from the checkpoint the
    // new master holds (the source's backlog still has what was lost when it is big enough).
    let mut regressions = 0;
    loop {
        match sync_one(&s, shared.clone(), shutdown_rx.clone()).await {
            Err(e) if target_regressed(&e) && regressions < MAX_REGRESSIONS => {
                regressions += 1;
                tracing::warn!("{e:#}: resuming from the new master's checkpoint");
            }
            other => return other,
        }
    }
}

/// How many times in a run a target failover that lost acknowledged writes is resumed from
/// (more in one run means something else is wrong: stop and say so).
const MAX_REGRESSIONS: u32 = 10;

/// True when the run stopped because the target's new master lacks acknowledged writes.
fn target_regressed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<redis_sync_sink::Error>(),
            Some(redis_sync_sink::Error::Regressed { .. })
        )
    })
}

/// One source (a server, a backup, or one shard of a cluster) into the target, until
/// `shutdown` turns `true` or the run ends by itself.
async fn sync_one(
    s: &Settings,
    shared: status::Shared,
    shutdown_rx: watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let state_file = StateFile::new(s.state_file.clone());
    let saved = state_file.load()?;

    let sink = connect_sink(s).await?;
    let start = position::read(s, &sink, state_file, saved).await?;
    connect::log_target(s, &sink);
    // Before the filter and the stream: module commands' keys, from the source's COMMAND.
    module_commands::learn(s).await;
    // The filter knows the target's mode (a cluster has only db 0), detected or given.
    let cluster = sink.target().cluster;
    let filter = s
        .filter_builder
        .clone()
        .cluster_target(cluster)
        .build()
        .context("invalid filter")?;

    // The replica stops on the same signal (the loop drains the target first, then exits).
    let replica = connect::start_replica(
        s,
        start.resume.as_ref(),
        start.state_file.path(),
        shutdown_rx.clone(),
    );
    let heartbeat = report::start_heartbeat(s);

    let mut run = Run::new(s, filter, start, sink, replica, shutdown_rx, shared);
    let result = run.main_loop().await;
    let finished = run.finish().await;
    // The source's tasks end before the process does (the SCAN source sets
    // `notify-keyspace-events` back).
    run.replica.close(std::time::Duration::from_secs(15)).await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    let stop = result?;
    finished?;
    tracing::info!(
        "stopped ({}): applied offset {}",
        match stop {
            Stop::Signal => "signal",
            Stop::CaughtUp => "caught up",
            Stop::FullDone => "full copy done",
            Stop::SourceGone => "source stream ended",
        },
        run.stats.applied_offset
    );
    Ok(ExitCode::SUCCESS)
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The target key of `--checkpoint-in-target`.
pub fn target_checkpoint_key(s: &Settings) -> String {
    format!(
        "{}{}",
        TARGET_CHECKPOINT_PREFIX,
        crate::sentinel::checkpoint_name(&s.source)
    )
}

/// Prefix of the checkpoint keys kept in targets (never swept).
pub const TARGET_CHECKPOINT_PREFIX: &str = "redis-sync:checkpoint:";

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Examples shown by `redis-sync sync --help`.
pub const EXAMPLES: &str = "\
Examples:

  Copy a server into another and keep it in step until Ctrl-C:
    redis-sync sync --source redis://10.0.0.1:6379 --target redis://10.0.0.2:6379

  Copy, catch up, exit (for scripts and cutovers); passwords from the environment:
    REDIS_SYNC_SOURCE_PASSWORD=... redis-sync sync --source 10.0.0.1:6379 \\
        --target 10.0.0.2:6379 --until-caught-up

  Source db 3 into db 0 of a cluster, only the session keys, metrics for Prometheus:
    redis-sync sync --source 10.0.0.1:6379 --target 10.0.0.5:7000 --target-cluster \\
        --db 3 --db-map 3:0 --key-prefix session: --metrics 127.0.0.1:9121

  A cluster as the source (any node; every shard found and followed), split over two
  processes, this one taking the first half of the shards:
    redis-sync sync --source 10.0.0.1:7000 --target 10.0.0.9:6379 --shards 1/2

  Over TLS on both sides (each side's CA; every node of a TLS cluster target too):
    redis-sync sync --source rediss://10.0.0.1:6380 --tls-ca source-ca.pem \\
        --target rediss://10.0.0.2:6380 --target-tls-ca target-ca.pem

  Run again after a stop or a crash: it resumes from the checkpoint kept in the target
  (exactly-once on a standalone target) with a partial resync when the source's backlog still
  covers the gap, else it copies everything again and removes the keys the source deleted
  meanwhile.";
