//! `redis-sync sync`: the data path, top to bottom.
//!
//! 1. Resolve the settings (flags over `--config`). Connect the sink to the target (standalone
//!    or cluster, detected). On a standalone target the position is read from the target's
//!    checkpoint hash ([`target_checkpoint`]), trusted over the state file ([`checkpoint`]);
//!    elsewhere (cluster, `--no-transactions`) from the state file (at-least-once).
//! 2. Start the replica on the source with manual ACKs, resuming with `PSYNC` when there is a
//!    position.
//! 3. For each replica event, in order:
//!    - `FullResync`: a full copy starts. The target's checkpoint says `copying` until it
//!      completes (a restart redoes it); with `--flush-target` the synced dbs are emptied.
//!    - `Rdb` events: each key goes through the filter (db, key patterns, type; db mapping)
//!      and then `RdbLoader` (RESTORE for values within `--value-budget`, chunked native
//!      commands otherwise) into the sink.
//!    - `RdbDone`: wait until the target acknowledged the whole snapshot, sweep the keys the
//!      snapshot does not have (when a copy is redone over an earlier one), write the
//!      checkpoint `streaming` at the snapshot's offset.
//!    - `Continued`: a partial resynchronisation: no full copy.
//!    - `Command`: filter and map, then into the [`Batch`]; a batch commits as one
//!      `MULTI … EXEC` with the checkpoint of its last offset when it is full or nothing more
//!      is ready from the source.
//! 4. The [`Ledger`] owns the position: told what was written, filtered, acknowledged, it
//!    gives the applied offset the replica ACKs to the source and the state file records.
//! 5. On SIGINT/SIGTERM, `--until-caught-up` reached, or `--mode full` done: commit the batch,
//!    drain the sink, checkpoint, exit 0.

mod batch;
mod checkpoint;
mod connect;
mod copy;
mod keyset;
mod position;
mod report;
mod stream;
mod sweep;
mod target_checkpoint;

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis_sync_commands::Filter;
use redis_sync_replica::{Ledger, Replica, ReplicaEvent};
use redis_sync_sink::{RdbLoader, Sink};
use tokio::sync::watch;

use crate::client::{self, Client};
use crate::config::{Settings, SyncArgs};
use crate::status::{self, Snapshot, State};
use batch::Batch;
pub use checkpoint::{Checkpoint, StateFile};
use connect::connect_sink;

/// Runs `redis-sync sync`.
pub fn run(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(args)?;
    crate::logging::init(settings.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sync(settings))
}

/// Why the main loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    CaughtUp,
    FullDone,
    SourceGone,
}

async fn sync(s: Settings) -> anyhow::Result<ExitCode> {
    let state_file = StateFile::new(s.state_file.clone());
    let saved = state_file.load()?;
    let shared: status::Shared = Arc::default();
    if let Some(addr) = s.metrics {
        let bound = crate::metrics::serve(addr, shared.clone()).await?;
        tracing::info!("metrics on http://{bound}/metrics");
    }

    let sink = connect_sink(&s).await?;
    let start = position::read(&s, &sink, &state_file, saved).await?;
    connect::log_target(&s, &sink);
    // The filter knows the target's mode (a cluster has only db 0), detected or given.
    let cluster = sink.target().cluster;
    let filter = s
        .filter_builder
        .clone()
        .cluster_target(cluster)
        .build()
        .context("invalid filter")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = shutdown_tx.send(true);
    });
    // The replica stops on the same signal (the loop drains the target first, then exits).
    let replica = connect::start_replica(
        &s,
        start.resume.as_ref(),
        state_file.path(),
        shutdown_rx.clone(),
    );
    let heartbeat = report::start_heartbeat(&s);

    let exactly_once = s.transactions;
    let resume = start.resume;
    let mut run = Run {
        s: &s,
        filter,
        cluster,
        state_file,
        cp: start.cp,
        had_checkpoint: start.had_checkpoint,
        resume_asked: resume.is_some(),
        resume_db: resume.as_ref().map_or(0, |p| p.db),
        exactly_once,
        ledger: match start.replay {
            Some(r) => Ledger::new().with_replay(r),
            None => Ledger::new(),
        },
        batch: Batch::default(),
        replayed: 0,
        last_applied: None,
        cluster_position: None,
        acked: sink.acked_offset(),
        sink,
        sink_db: None,
        replica,
        loader: RdbLoader::new().hold_limit(s.value_budget),
        skip_key: false,
        snapshot_keys: None,
        full_syncs: 0,
        copying: false,
        goal: None,
        goal_rx: None,
        stats: Snapshot {
            delivery: if exactly_once {
                "exactly-once"
            } else {
                "at-least-once"
            },
            source: s.source.to_string(),
            target: s.target.to_string(),
            ..Snapshot::default()
        },
        started: Instant::now(),
        rdb_started: None,
        last_ack: None,
        last_saved: None,
        heartbeat_pending: VecDeque::new(),
        shared,
        warned_unknown: false,
    };
    let result = run.main_loop(shutdown_rx).await;
    let finished = run.finish().await;
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

/// The state of one `sync` run.
struct Run<'a> {
    s: &'a Settings,
    filter: Filter,
    cluster: bool,
    state_file: StateFile,
    cp: Checkpoint,
    /// The state file says an earlier run completed a full copy into this target.
    had_checkpoint: bool,
    resume_asked: bool,
    /// The db at the resume point (the stream may not `SELECT` again).
    resume_db: u32,
    /// Each batch commits in `MULTI … EXEC` with the checkpoint in the target.
    exactly_once: bool,
    /// The one owner of the position: what is handed out, acknowledged, filtered.
    ledger: Ledger,
    /// The commands of the next transaction (exactly-once mode).
    batch: Batch,
    /// Commands skipped because the target held them already (after a stop mid-transaction).
    replayed: u64,
    /// The last position given to the replica (to ACK and checkpoint).
    last_applied: Option<(u64, u32)>,
    /// Cluster: when and at which offset the cluster-wide position was last written.
    cluster_position: Option<(Instant, u64)>,
    /// The sink's acknowledged offset, to wake the loop when a batch is done.
    acked: watch::Receiver<u64>,
    sink: Sink,
    /// The db the sink's command stream is in (`SELECT` sent through it).
    sink_db: Option<u32>,
    replica: Replica,
    loader: RdbLoader,
    /// The current RDB key is filtered out: skip its events up to its `KeyEnd`.
    skip_key: bool,
    /// Hashes of `(target db, key)` of the snapshot, when a sweep follows the full copy.
    snapshot_keys: Option<keyset::SnapshotKeys>,
    full_syncs: u64,
    /// A full copy is under way (the checkpoint is invalid until it completes).
    copying: bool,
    /// `--until-caught-up`: the source offset to reach.
    goal: Option<u64>,
    /// The answer of [`ask_goal`](Run::ask_goal), on its way.
    goal_rx: Option<tokio::sync::oneshot::Receiver<u64>>,
    stats: Snapshot,
    started: Instant,
    rdb_started: Option<Instant>,
    last_ack: Option<Instant>,
    last_saved: Option<u64>,
    /// Heartbeat commands seen in the stream: (offset, written at unix ms).
    heartbeat_pending: VecDeque<(u64, i64)>,
    shared: status::Shared,
    warned_unknown: bool,
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Run<'_> {
    async fn main_loop(&mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<Stop> {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(Stop::Signal),
                _ = tick.tick() => {
                    self.advance();
                    self.refresh_stats();
                    if last_status.elapsed() >= self.s.status_interval {
                        last_status = Instant::now();
                        self.print_status();
                    }
                    self.checkpoint_if_moved()?;
                    self.cluster_position_write(false).await?;
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                    if let Some(e) = self.sink.error() {
                        return Err(e).context("the target stopped the sync");
                    }
                }
                ev = self.replica.next_event() => {
                    let Some(ev) = ev else { return Ok(Stop::SourceGone) };
                    let ev = ev.context("replication from the source failed")?;
                    if let Some(stop) = self.handle(ev).await? {
                        return Ok(stop);
                    }
                    self.advance();
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                }
                goal = answer(self.goal_rx.as_mut()), if self.goal_rx.is_some() => {
                    self.goal_rx = None;
                    if let Ok(goal) = goal {
                        tracing::info!("--until-caught-up: waiting until offset {goal} is applied");
                        self.goal = Some(goal);
                    }
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                }
                // Nothing more is ready from the source and the target is done with the last
                // batch: commit what this one holds (while the target is busy, it grows).
                () = std::future::ready(()), if self.batch.ready() && self.sink.transactions_open() == 0 => {
                    self.flush_batch().await?;
                }
                // The target is busy: its next acknowledgement (the last batch done) wakes the
                // loop, as does more from the source.
                _ = self.acked.changed(), if self.batch.ready() => {
                    self.acked.borrow_and_update();
                }
            }
        }
    }

    async fn handle(&mut self, ev: ReplicaEvent) -> anyhow::Result<Option<Stop>> {
        match ev {
            ReplicaEvent::Connected { addr, server } => {
                tracing::info!(
                    "connected to source {addr} ({})",
                    server.as_deref().unwrap_or("version unknown")
                );
                self.stats.state = State::Connecting;
            }
            ReplicaEvent::FullResync {
                replid,
                offset,
                rdb_size,
                forced,
            } => {
                self.full_sync_start(replid, offset, rdb_size, forced)
                    .await?
            }
            ReplicaEvent::Rdb(event) => self.rdb_event(event).await?,
            ReplicaEvent::RdbDone { offset, rdb_bytes } => {
                return self.full_sync_done(offset, rdb_bytes).await;
            }
            ReplicaEvent::Continued { replid, offset } => {
                tracing::info!(
                    "partial resync: continuing {replid} after offset {offset} (no full copy)"
                );
                self.stats.sync_kind = Some("partial");
                self.stats.master_replid = Some(replid.clone());
                self.stats.state = State::Streaming;
                self.cp.replid = Some(replid.clone());
                self.ledger.handle_continued(replid, offset, self.resume_db);
                if self.s.until_caught_up && self.goal.is_none() {
                    self.ask_goal(0);
                }
            }
            ReplicaEvent::Command {
                db, args, offset, ..
            } => self.command(db, args, offset).await?,
            ReplicaEvent::LinkLost { reason } => {
                tracing::warn!("link to the source lost: {reason}; reconnecting");
                self.stats.state = State::Reconnecting;
            }
            other => tracing::debug!("replica event {other:?}"),
        }
        Ok(None)
    }

    /// Moves the applied offset over everything the target acknowledged (and the filtered
    /// commands between).
    fn advance(&mut self) {
        let acked = *self.sink.acked_offset().borrow();
        self.ledger.handle_acked(acked);
        self.stats.commands_applied = self.ledger.applied_commands();
        if let Some(p) = self.ledger.applied_offset()
            && self.last_applied != Some(p)
        {
            self.replica.applied().set(p.0, p.1);
            self.last_applied = Some(p);
            self.last_ack = Some(Instant::now());
        }
        let applied = self
            .replica
            .resume_point()
            .map_or(self.stats.applied_offset, |p| p.offset);
        while let Some(&(off, ms)) = self.heartbeat_pending.front() {
            if off > applied {
                break;
            }
            self.heartbeat_pending.pop_front();
            self.stats.heartbeat_lag_secs = Some((unix_ms() - ms).max(0) as f64 / 1000.0);
        }
    }

    fn caught_up(&self) -> bool {
        let Some(goal) = self.goal else {
            return false;
        };
        self.stats.state == State::Streaming
            && self
                .replica
                .resume_point()
                .is_some_and(|p| p.offset >= goal)
    }

    /// `--until-caught-up`: asks the source for its `master_repl_offset` (what it has
    /// written so far) on a separate connection, in a task of its own so the loop goes on;
    /// the answer (at least `floor`) becomes the goal. When the source does not answer, the
    /// offset received by then is the goal.
    fn ask_goal(&mut self, floor: u64) {
        let source = self.s.source.clone();
        let metrics = self.replica.metrics();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let ask = async {
                let mut c = Client::connect(&source, Duration::from_secs(5)).await?;
                let info = c.info("replication").await?;
                client::field(&info, "master_repl_offset")
                    .and_then(|v| v.parse::<u64>().ok())
                    .context("no master_repl_offset in INFO replication")
            };
            let offset = match ask.await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(
                        "cannot read the source's offset ({e:#}); using the received one"
                    );
                    metrics.received_offset()
                }
            };
            let _ = tx.send(offset.max(floor));
        });
        self.goal_rx = Some(rx);
    }

    /// Drains the sink and writes the last checkpoint, whatever ended the loop.
    async fn finish(&mut self) -> anyhow::Result<()> {
        self.stats.state = State::Stopping;
        if self.sink.error().is_none() && !self.batch.in_source_transaction() {
            // A source transaction cut by the stop is not committed half: it comes again.
            self.flush_batch().await.ok();
        }
        let drained = tokio::time::timeout(Duration::from_secs(60), self.sink.flush()).await;
        self.advance();
        if self.sink.error().is_none() {
            self.cluster_position_write(true).await.ok();
            let _ = tokio::time::timeout(Duration::from_secs(10), self.sink.flush()).await;
        }
        self.resume_at_failed_command().await;
        if self.replayed > 0 {
            tracing::info!(
                "{} commands the target held already were not applied again",
                self.replayed
            );
        }
        self.checkpoint_if_moved()?;
        self.stats.state = State::Stopped;
        self.refresh_stats();
        self.print_status();
        if self.copying {
            tracing::warn!(
                "stopped during the full copy: the next run starts a new full copy (and sweeps \
                 the target)"
            );
        }
        match drained {
            Ok(r) => r.context("draining the target's pipeline"),
            Err(_) => bail!("the target did not acknowledge the last writes within 60 s"),
        }
    }
}

/// The target key of `--checkpoint-in-target`.
pub fn target_checkpoint_key(s: &Settings) -> String {
    format!("{}{}", TARGET_CHECKPOINT_PREFIX, s.source.addr())
}

/// Prefix of the checkpoint keys kept in targets (never swept).
pub const TARGET_CHECKPOINT_PREFIX: &str = "redis-sync:checkpoint:";

/// The answer on `rx`; never, when there is no question out.
async fn answer<T>(
    rx: Option<&mut tokio::sync::oneshot::Receiver<T>>,
) -> Result<T, tokio::sync::oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

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

  Run again after a stop or a crash: it resumes from the checkpoint kept in the target
  (exactly-once on a standalone target) with a partial resync when the source's backlog still
  covers the gap, else it copies everything again and removes the keys the source deleted
  meanwhile.";
