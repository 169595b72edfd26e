//! The state of one run and its loop: replica events in order, the ticks (status,
//! checkpoints, `--until-caught-up`), the batch committed when nothing more is ready, until
//! a [`Stop`]; then [`finish`](Run::finish) drains the target.
//!
//! The handlers of the phases live with their phase: [`copy`](super::copy) (the full copy),
//! [`stream`](super::stream) (commands and checkpoints), [`report`](super::report) (status and
//! state file).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis_sync_commands::Filter;
use redis_sync_replica::{Ledger, Replica, ReplicaEvent};
use redis_sync_sink::{RdbLoader, Sink};
use tokio::sync::watch;

use super::batch::Batch;
use super::position::Start;
use super::{Checkpoint, StateFile, Stop, keyset, unix_ms};
use crate::client::{self, Client};
use crate::config::Settings;
use crate::status::{self, Snapshot, State};

/// The state of one `sync` run.
pub(super) struct Run<'a> {
    pub(super) s: &'a Settings,
    /// Which dbs, keys and types are synced, and into which target db.
    pub(super) filter: Filter,
    /// The target is a cluster (exactly-once commits per slot).
    pub(super) cluster: bool,
    pub(super) state_file: StateFile,
    /// What the state file holds: source, target, position, whether a copy completed.
    pub(super) cp: Checkpoint,
    /// The state file says an earlier run completed a full copy into this target.
    pub(super) had_checkpoint: bool,
    /// The run asked the source to continue from a checkpoint (`PSYNC`).
    pub(super) resume_asked: bool,
    /// The db at the resume point (the stream may not `SELECT` again).
    pub(super) resume_db: u32,
    /// Each batch commits in `MULTI … EXEC` with the checkpoint in the target.
    pub(super) exactly_once: bool,
    /// The one owner of the position: what is handed out, acknowledged, filtered.
    pub(super) ledger: Ledger,
    /// The commands of the next transaction (exactly-once mode).
    pub(super) batch: Batch,
    /// Commands skipped because the target held them already (after a stop mid-transaction).
    pub(super) replayed: u64,
    /// The last position given to the replica (to ACK and checkpoint).
    pub(super) last_applied: Option<(u64, u32)>,
    /// When and at which offset the position was last written to the target (by a commit on a
    /// standalone target, or alone: see `position_write`).
    pub(super) position_written: Option<(Instant, u64)>,
    /// The sink's acknowledged offset, to wake the loop when a batch is done.
    pub(super) acked: watch::Receiver<u64>,
    pub(super) sink: Sink,
    /// The db the sink's command stream is in (`SELECT` sent through it).
    pub(super) sink_db: Option<u32>,
    pub(super) replica: Replica,
    /// Turns the snapshot's keys into commands (RESTORE, or native commands for big values).
    pub(super) loader: RdbLoader,
    /// The current RDB key is filtered out: skip its events up to its `KeyEnd`.
    pub(super) skip_key: bool,
    /// Hashes of `(target db, key)` of the snapshot, when a sweep follows the full copy.
    pub(super) snapshot_keys: Option<keyset::SnapshotKeys>,
    /// Full copies this run began (after the first, a new copy starts with a fresh sink).
    pub(super) full_syncs: u64,
    /// A full copy is under way (the checkpoint is invalid until it completes).
    pub(super) copying: bool,
    /// `--until-caught-up`: the source offset to reach.
    pub(super) goal: Option<u64>,
    /// The answer of [`ask_goal`](Run::ask_goal), on its way.
    pub(super) goal_rx: Option<tokio::sync::oneshot::Receiver<u64>>,
    /// The figures of the status line and `--metrics`.
    pub(super) stats: Snapshot,
    pub(super) started: Instant,
    /// When the current full copy began.
    pub(super) rdb_started: Option<Instant>,
    /// When the applied position last moved.
    pub(super) last_ack: Option<Instant>,
    /// The offset the state file holds.
    pub(super) last_saved: Option<u64>,
    /// Heartbeat commands seen in the stream: (offset, written at unix ms).
    pub(super) heartbeat_pending: VecDeque<(u64, i64)>,
    /// Turns `true` on a stop request: the loop's first arm, and what a long phase inside
    /// a handler races so that a stop does not wait for it.
    pub(super) shutdown: watch::Receiver<bool>,
    /// The status the metrics endpoint serves.
    pub(super) shared: status::Shared,
    /// An unknown command (a module's) was warned about once.
    pub(super) warned_unknown: bool,
    /// Finds the writes whose keys span slots of a cluster target.
    pub(super) classifier: redis_sync_commands::Classifier,
    /// Inside a source transaction (cluster): the slot of its first keyed command, and
    /// whether another slot came.
    pub(super) tx_slots: Option<(Option<u16>, bool)>,
    /// `--on-error repair`: keys copied afresh from the source, and the refused commands
    /// whose keys want it (see `repair`).
    pub(super) repairs: super::repair::Repairs,
    pub(super) repairs_rx: Option<tokio::sync::mpsc::UnboundedReceiver<redis_sync_sink::Repair>>,
    /// A connection to the source for repairs, opened on the first.
    pub(super) source_client: Option<crate::client::Client>,
    /// The position of the last batch committed (exactly-once).
    pub(super) last_commit: Option<(u64, u32)>,
    /// Cluster: marker keys of repairs the stream has passed, to delete.
    pub(super) stale_markers: Vec<bytes::Bytes>,
    /// The full copy's bar on a terminal.
    pub(super) progress: super::progress::Progress,
    /// What the source holds, asked when a full copy begins (for a diskless size estimate).
    pub(super) source_size: Option<super::progress::SourceSize>,
    /// `--tee-aof`: the stream appended to an AOF (open once a full copy or a resume began).
    pub(super) tee_aof: Option<super::tee_aof::TeeAof>,
    /// Unix milliseconds at the start of this turn of the loop: which snapshot keys are
    /// expired (read once per turn, not per event).
    pub(super) now_ms: i64,
    /// When `tee_aof` was last fsynced.
    pub(super) tee_synced: Instant,
    /// The answer to that question, on its way.
    pub(super) source_size_rx:
        Option<tokio::sync::oneshot::Receiver<Option<super::progress::SourceSize>>>,
}

impl<'a> Run<'a> {
    /// The state before the first event: `start` says where the run resumes.
    pub(super) fn new(
        s: &'a Settings,
        filter: Filter,
        start: Start,
        sink: Sink,
        replica: Replica,
        shutdown: watch::Receiver<bool>,
        shared: status::Shared,
    ) -> Self {
        let exactly_once = s.transactions;
        let resume = start.resume;
        let mut sink = sink;
        let repairs_rx = sink.take_repairs();
        Run {
            s,
            filter,
            cluster: sink.target().cluster,
            state_file: start.state_file,
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
            position_written: None,
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
                delivery: if s.scan.is_some() {
                    // No replication offset: each run is a full copy (see source_mode).
                    "scan"
                } else if exactly_once {
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
            shutdown,
            shared,
            warned_unknown: false,
            classifier: redis_sync_commands::Classifier::default(),
            tx_slots: None,
            repairs: start.repairs,
            repairs_rx,
            source_client: None,
            last_commit: None,
            stale_markers: Vec::new(),
            progress: super::progress::Progress::new(s.progress && !s.status_json),
            source_size: None,
            source_size_rx: None,
            tee_aof: None,
            tee_synced: Instant::now(),
            now_ms: super::unix_ms(),
        }
    }
}

/// Most replica events handled in one turn of the main loop.
const EVENTS_PER_TURN: usize = 256;

impl Run<'_> {
    /// Handles replica events until something ends the run: a stop request, the goal of
    /// `--until-caught-up`, the end of `--mode full`'s copy, the source's stream, or an error.
    pub(super) async fn main_loop(&mut self) -> anyhow::Result<Stop> {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return Ok(Stop::Signal),
                _ = tick.tick() => {
                    self.tee_flush()?;
                    self.advance();
                    self.refresh_stats();
                    self.show_progress();
                    if last_status.elapsed() >= self.s.status_interval {
                        last_status = Instant::now();
                        self.print_status();
                    }
                    self.checkpoint_if_moved()?;
                    self.position_write(false).await?;
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                    if let Some(e) = self.sink.error() {
                        return Err(e).context("the target stopped the sync");
                    }
                }
                ev = self.replica.next_event() => {
                    let Some(mut ev) = ev else { return Ok(Stop::SourceGone) };
                    self.now_ms = super::unix_ms();
                    // The events already there go in one turn of the loop (a full copy hands
                    // out millions): the other arms wait at most EVENTS_PER_TURN events.
                    let mut handled = 0;
                    loop {
                        let item = ev.context("replication from the source failed")?;
                        if let Some(stop) = self.handle(item).await? {
                            return Ok(stop);
                        }
                        handled += 1;
                        if handled == EVENTS_PER_TURN || self.batch.full() || self.goal.is_some() {
                            break;
                        }
                        match self.replica.try_next_event() {
                            Some(next) => ev = next,
                            None => break,
                        }
                    }
                    self.advance();
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                }
                // `--on-error repair`: a key the target refused a command on.
                Some(r) = recv(self.repairs_rx.as_mut()), if self.repairs_rx.is_some() => {
                    self.repair(r).await?;
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
                // An acknowledgement from the target: the position moves (and the last batch
                // may be done, so the next can go). `--until-caught-up` ends right then, not on
                // the next tick.
                changed = self.acked.changed() => {
                    if changed.is_err() {
                        // The sink's task ended: only an error ends it while its input is open.
                        return Err(match self.sink.error() {
                            Some(e) => anyhow::Error::from(e),
                            None => anyhow::anyhow!("the sink stopped"),
                        })
                        .context("the target stopped the sync");
                    }
                    self.acked.borrow_and_update();
                    self.advance();
                    if self.caught_up() {
                        return Ok(Stop::CaughtUp);
                    }
                }
            }
        }
    }

    /// Handles one replica event; `Some` when it ends the run.
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
            ReplicaEvent::Continued { replid, offset } => self.continued(replid, offset),
            ReplicaEvent::Command {
                db, args, offset, ..
            } => self.command(db, args, offset).await?,
            // PINGs and the like: applied once everything before them is.
            ReplicaEvent::Position { offset, db } => {
                if let Some(t) = &mut self.tee_aof {
                    t.position(offset)?;
                }
                self.ledger.handle_position(offset, db)
            }
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
    pub(super) fn advance(&mut self) {
        let acked = *self.sink.acked_offset().borrow();
        self.ledger.handle_acked(acked);
        if !self.repairs.is_empty()
            && let Some((o, _)) = self.ledger.applied_offset()
        {
            let passed = self.repairs.retire(o);
            if self.cluster {
                let base = super::target_checkpoint_key(self.s);
                self.stale_markers.extend(
                    passed
                        .iter()
                        .map(|(_, key)| super::repair::Repairs::marker(&base, key)),
                );
            }
        }
        self.stats.commands_applied = self.ledger.applied_commands();
        if let (Some(link), Some((o, _))) = (&self.s.shard, self.ledger.applied_offset()) {
            link.publish_applied(o);
        }
        if let Some(p) = self.ledger.applied_offset()
            && self.last_applied != Some(p)
        {
            self.replica.applied().set(p.0, p.1);
            self.last_applied = Some(p);
            self.last_ack = Some(Instant::now());
        }
        let applied = self
            .replica
            .acked_offset()
            .unwrap_or(self.stats.applied_offset);
        while let Some(&(off, ms)) = self.heartbeat_pending.front() {
            if off > applied {
                break;
            }
            self.heartbeat_pending.pop_front();
            self.stats.heartbeat_lag_secs = Some((unix_ms() - ms).max(0) as f64 / 1000.0);
        }
    }

    /// `--until-caught-up`: streaming, and the applied offset reached the goal.
    pub(super) fn caught_up(&self) -> bool {
        let Some(goal) = self.goal else {
            return false;
        };
        self.stats.state == State::Streaming
            && self.replica.acked_offset().is_some_and(|o| o >= goal)
            // A key refused on the way is repaired before the run ends.
            && self.repairs_rx.as_ref().is_none_or(|rx| rx.is_empty())
    }

    /// `--until-caught-up`: asks the source for its `master_repl_offset` (what it has
    /// written so far) on a separate connection, in a task of its own so the loop goes on;
    /// the answer (at least `floor`) becomes the goal. When the source does not answer, the
    /// offset received by then is the goal.
    pub(super) fn ask_goal(&mut self, floor: u64) {
        if self.s.files.is_some() || self.s.scan.is_some() {
            // A backup's stream ends at the end of its AOF, a SCAN source's once nothing
            // waits (it has no offset to ask for): the run stops there anyway.
            return;
        }
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
    pub(super) async fn finish(&mut self) -> anyhow::Result<()> {
        self.stats.state = State::Stopping;
        if self.sink.error().is_none() && !self.batch.in_source_transaction() {
            // A source transaction cut by the stop is not committed half: it comes again.
            self.flush_batch().await.ok();
        }
        let mut drained = tokio::time::timeout(Duration::from_secs(60), self.sink.flush()).await;
        // `--on-error repair`: the keys refused on the way are copied afresh before the run
        // ends (a few rounds: a repair's own write could be refused too).
        for _ in 0..3 {
            let mut pending = Vec::new();
            if let Some(rx) = self.repairs_rx.as_mut() {
                while let Ok(r) = rx.try_recv() {
                    pending.push(r);
                }
            }
            if pending.is_empty() || self.sink.error().is_some() {
                break;
            }
            for r in pending {
                self.repair(r).await?;
            }
            drained = tokio::time::timeout(Duration::from_secs(60), self.sink.flush()).await;
        }
        self.advance();
        if self.sink.error().is_none() {
            self.position_write(true).await.ok();
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
        self.progress.clear();
        if let Some(t) = &mut self.tee_aof {
            t.sync()?;
        }
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

/// The answer on `rx`; never, when there is no question out.
async fn answer<T>(
    rx: Option<&mut tokio::sync::oneshot::Receiver<T>>,
) -> Result<T, tokio::sync::oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// The next item of an optional channel (pending for ever without one).
async fn recv<T>(rx: Option<&mut tokio::sync::mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
