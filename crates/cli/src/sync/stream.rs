//! The stream: the commands after the copy (or after a partial resynchronisation), and the
//! checkpoints written into the target with them.
//!
//! Exactly-once: each command goes into the [`Batch`](super::batch::Batch), which commits as
//! one `MULTI … EXEC` with the checkpoint of its last offset. At-least-once
//! (`--no-transactions`): each command goes to the sink as it comes.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use redis_sync_commands::{Decision, DropReason, Route};
use redis_sync_replica::Replay;
use redis_sync_sink::{CLUSTER_SLOTS, TxCommand, slot_checkpoint_key};

use super::cross_slot::{self, Way};
use super::target_checkpoint::{CopyState, TargetCheckpoint};
use super::{Run, target_checkpoint_key};
use crate::client::Client;
use crate::status::State;

impl Run<'_> {
    /// `Continued`: the source continues from the resume point (a partial
    /// resynchronisation), so the stream starts with no full copy.
    pub(super) fn continued(&mut self, replid: String, offset: u64) {
        tracing::info!("partial resync: continuing {replid} after offset {offset} (no full copy)");
        self.tee_continue(offset);
        self.stats.sync_kind = Some("partial");
        self.stats.master_replid = Some(replid.clone());
        self.stats.state = State::Streaming;
        self.cp.replid = Some(replid.clone());
        self.ledger.handle_continued(replid, offset, self.resume_db);
        if self.s.until_caught_up && self.goal.is_none() {
            self.ask_goal(0);
        }
    }

    /// `Command`: a command of the stream ending at source `offset`, through the filter.
    /// Exactly-once: into the batch (committed when full); at-least-once: straight to the
    /// sink.
    pub(super) async fn command(
        &mut self,
        db: u32,
        args: Vec<Bytes>,
        offset: u64,
    ) -> anyhow::Result<()> {
        self.stats.commands_received += 1;
        if let Some(t) = &mut self.tee_aof {
            t.command(db, &args, offset)?;
        }
        if self.ledger.is_replayed(offset) {
            // The target committed it before the last stop (see `TargetCheckpoint::replay`).
            self.replayed += 1;
            self.ledger.handle_settled(offset, db);
            return Ok(());
        }
        let decision = match self.filter.decide(db, &args) {
            Ok(d) => d,
            Err(redis_sync_commands::Error::UnknownCommand { .. }) => {
                if !self.warned_unknown {
                    self.warned_unknown = true;
                    tracing::warn!(
                        "command {:?} is not in the command table (a module's?): passed on \
                         unchanged",
                        String::from_utf8_lossy(args.first().map_or(&b""[..], |a| a))
                    );
                }
                Decision::Keep { db }
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("command at source offset {offset} cannot be applied to the target")
                });
            }
        };
        let (tdb, mut args) = match decision {
            Decision::Keep { db } => (db, args),
            Decision::Rewrite { db, args } => (db, args),
            Decision::Drop(reason) => {
                if reason == DropReason::Heartbeat
                    && let Some(ms) = args
                        .get(2)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<i64>().ok())
                {
                    self.heartbeat_pending.push_back((offset, ms));
                    if self.heartbeat_pending.len() > 1000 {
                        self.heartbeat_pending.pop_front();
                    }
                }
                self.stats.commands_filtered += 1;
                self.ledger.handle_settled(offset, db);
                return Ok(());
            }
            _ => (db, args),
        };
        if let Some(link) = self.s.shard.clone() {
            let name = args.first().map_or(&b""[..], |a| a);
            if name.eq_ignore_ascii_case(b"FLUSHALL") || name.eq_ignore_ascii_case(b"FLUSHDB") {
                return self.flush_shard(&link, offset, db).await;
            }
            // A shard of a cluster source: a resharding's moves, the cluster's bookkeeping.
            let keys: Vec<Bytes> = if link.needs_keys() {
                match self.classifier.classify(&args) {
                    Ok(c) => c
                        .keys
                        .iter()
                        .filter(|k| k.is_key())
                        .filter_map(|k| args.get(k.index).cloned())
                        .collect(),
                    Err(_) => Vec::new(),
                }
            } else {
                Vec::new()
            };
            let review = link
                .review(&args, &keys, self.now_ms)
                .await
                .with_context(|| format!("command at source offset {offset}"))?;
            if let Some(why) = review.note {
                tracing::info!("offset {offset}: {why}");
            }
            if let Some(mut commands) = review.commands {
                let Some(last) = commands.pop() else {
                    self.stats.commands_filtered += 1;
                    self.ledger.handle_settled(offset, db);
                    return Ok(());
                };
                // Records of the move go with the command, in the same transaction.
                for extra in commands {
                    self.write_extra(tdb, extra, offset).await?;
                }
                args = last;
            }
        }
        if !self.repairs.is_empty() && self.repaired(db, &args, offset) {
            // `--on-error repair` copied this key afresh from the source after this command.
            self.stats.commands_filtered += 1;
            self.ledger.handle_settled(offset, db);
            return Ok(());
        }
        if self.cluster {
            self.source_transaction_slots(&args);
        }
        // A cluster refuses writes whose keys span slots (but those the sink splits per slot,
        // `DEL`, `MSET`, …): apply their effect instead.
        if self.cluster {
            match cross_slot::way(&mut self.classifier, &args) {
                Some(Way::Move(plan)) => return self.emulate_move(plan, db, offset).await,
                Some(Way::OnCopies(keys)) => {
                    return self.emulate_cross_slot(args, keys, db, offset).await;
                }
                _ => {}
            }
        }
        if self.exactly_once {
            // A source transaction stays whole inside one of ours, so its MULTI/EXEC go.
            let name = args.first().map_or(&b""[..], |a| a);
            if name.eq_ignore_ascii_case(b"MULTI") {
                self.batch.begin_source_transaction();
            } else if name.eq_ignore_ascii_case(b"EXEC") {
                self.batch.end_source_transaction();
            } else {
                self.batch.push(TxCommand {
                    db: tdb,
                    args,
                    offset,
                });
            }
            self.batch.mark(offset, db);
            self.ledger.handle_written(offset, db, Instant::now());
            if self.batch.full() {
                if self.batch.in_source_transaction() {
                    tracing::warn!(
                        "a source transaction at offset {offset} is larger than the batch \
                         limit: it is committed in parts (each part atomic)"
                    );
                }
                self.flush_batch().await?;
            }
            return Ok(());
        }
        self.write_in_db(tdb, args, Some(offset)).await?;
        self.ledger.handle_written(offset, db, Instant::now());
        Ok(())
    }

    /// `FLUSHALL`/`FLUSHDB` on one master of a cluster source: it emptied that shard only, so
    /// in the target only the keys of the shard's slots go (a sweep that keeps nothing), after
    /// everything before it is applied. Exactly-once: the position moves past it only with the
    /// next commit, so a restart in between flushes again, which changes nothing.
    async fn flush_shard(
        &mut self,
        link: &super::ShardLink,
        offset: u64,
        db: u32,
    ) -> anyhow::Result<()> {
        self.flush_batch().await?;
        self.sink.flush().await.context("writing to the target")?;
        let mut none = super::keyset::SnapshotKeys::new(self.s.spool.dir.as_deref())
            .and_then(|mut k| k.finish().map(|()| k))
            .context("creating a temporary file")?;
        let removed =
            super::sweep::sweep(self.s, &self.filter, self.cluster, &self.sink, &mut none)
                .await
                .context("removing the shard's keys from the target")?;
        tracing::info!(
            "offset {offset}: a FLUSH of shard {}: removed the {removed} target keys of its slots",
            link.name
        );
        self.stats.keys_swept += removed;
        self.ledger.handle_settled(offset, db);
        Ok(())
    }

    /// A command the stream did not carry, applied with the next one (in its transaction).
    async fn write_extra(&mut self, tdb: u32, args: Vec<Bytes>, offset: u64) -> anyhow::Result<()> {
        if self.exactly_once {
            self.batch.push(TxCommand {
                db: tdb,
                args,
                offset,
            });
            return Ok(());
        }
        self.write_in_db(tdb, args, None).await
    }

    /// At-least-once: `args` to the sink in target db `tdb` (a `SELECT` first when the sink's
    /// stream is in another db), ending at source `offset` when it is the stream's command.
    async fn write_in_db(
        &mut self,
        tdb: u32,
        args: Vec<Bytes>,
        offset: Option<u64>,
    ) -> anyhow::Result<()> {
        if self.sink_db != Some(tdb) && !self.cluster {
            let select = vec![Bytes::from_static(b"SELECT"), Bytes::from(tdb.to_string())];
            self.sink
                .write(select, None)
                .await
                .context("writing to the target")?;
            self.sink_db = Some(tdb);
        }
        self.sink
            .write(args, offset)
            .await
            .context("writing to the target")
    }

    /// Commits the batch: its commands and the checkpoint of its last offset, in one
    /// transaction.
    pub(super) async fn flush_batch(&mut self) -> anyhow::Result<()> {
        let Some((commands, (offset, db))) = self.batch.take() else {
            return Ok(());
        };
        // Past this batch the target may still hold commands of an earlier run's batch (see
        // `resume_at_failed_command`): the checkpoint carries what a restart must skip.
        let replay = self
            .ledger
            .replay()
            .filter(|r| r.through > offset)
            .map(|r| Replay {
                through: r.through,
                retry: r.retry.iter().copied().filter(|&o| o > offset).collect(),
            });
        let cp = TargetCheckpoint {
            state: CopyState::Streaming,
            replid: self.stats.master_replid.clone().unwrap_or_default(),
            offset,
            db,
            replay,
            repairs: self.repairs.clone(),
        };
        if !self.cluster {
            self.position_written = Some((Instant::now(), offset));
        }
        self.last_commit = Some((offset, db));
        self.commit(commands, &cp).await
    }

    /// Writes the checkpoint `cp` outside the stream's batches: the start and the end of a
    /// full copy, and on a cluster the cluster-wide position every second (an offset every
    /// slot has reached, so slots the stream does not touch do not hold a restart back).
    pub(super) async fn write_marker(&mut self, cp: &TargetCheckpoint) -> anyhow::Result<()> {
        self.tee_flush()?;
        if !self.cluster {
            return self.commit(Vec::new(), cp).await;
        }
        let key = target_checkpoint_key(self.s);
        if cp.state == CopyState::Copying {
            // The slots' checkpoints of the earlier history would skip the new one.
            for slot in 0..CLUSTER_SLOTS {
                let k = slot_checkpoint_key(key.as_bytes(), slot);
                self.sink
                    .write(vec![Bytes::from_static(b"DEL"), k], None)
                    .await
                    .context("writing to the target")?;
            }
        }
        let w = cp.write(&key, &self.s.source.to_string());
        let mut hset = vec![
            Bytes::from_static(b"HSET"),
            w.key,
            Bytes::from_static(b"offset"),
            Bytes::from(w.offset.to_string()),
        ];
        for (f, v) in w.fields {
            hset.push(f);
            hset.push(v);
        }
        self.sink
            .write(hset, None)
            .await
            .context("writing to the target")?;
        Ok(())
    }

    /// Cluster: counts the source transactions whose commands span slots. A cluster runs a
    /// transaction within one slot only, so each is committed as one transaction per slot:
    /// each part atomic, not the whole (said once, counted in `transactions_split`).
    fn source_transaction_slots(&mut self, args: &[Bytes]) {
        let name = args.first().map_or(&b""[..], |a| a);
        if name.eq_ignore_ascii_case(b"MULTI") {
            self.tx_slots = Some((None, false));
            return;
        }
        if name.eq_ignore_ascii_case(b"EXEC") {
            if let Some((_, true)) = self.tx_slots.take() {
                self.stats.transactions_split += 1;
                if self.stats.transactions_split == 1 {
                    tracing::warn!(
                        "a source transaction spans slots of the cluster target: it is \
                         committed as one transaction per slot, each atomic but not together \
                         (counted as transactions_split)"
                    );
                }
            }
            return;
        }
        let Some((first, split)) = &mut self.tx_slots else {
            return;
        };
        match self.classifier.classify(args).map(|c| c.route) {
            Ok(Route::Slot(s)) => match first {
                Some(f) if *f != s => *split = true,
                Some(_) => {}
                None => *first = Some(s),
            },
            Ok(Route::CrossSlot) => *split = true,
            _ => {}
        }
    }

    /// The position alone, at most once a second, once it moved past the last checkpoint.
    ///
    /// On a cluster: the cluster-wide position (an offset every slot has reached). On a
    /// standalone target: when the stream carried only frames with nothing to apply since the
    /// last batch (the source's `PING`s), so that the target's checkpoint reaches the source's
    /// offset when it is idle; `cutover` waits for exactly that. Only the applied position is
    /// written (everything up to it is on the target), so it is exact.
    pub(super) async fn position_write(&mut self, now: bool) -> anyhow::Result<()> {
        if !self.exactly_once || self.copying {
            return Ok(());
        }
        for marker in std::mem::take(&mut self.stale_markers) {
            self.sink
                .write(vec![Bytes::from_static(b"DEL"), marker], None)
                .await
                .context("writing to the target")?;
        }
        if !self.cluster && (!self.batch.is_empty() || self.sink.transactions_open() > 0) {
            return Ok(()); // the next commit carries the position
        }
        let Some((offset, db)) = self.ledger.applied_offset() else {
            return Ok(());
        };
        if let Some((at, o)) = self.position_written
            && (o >= offset || (!now && at.elapsed() < Duration::from_secs(1)))
        {
            return Ok(());
        }
        let cp = self.streaming_checkpoint(offset, db);
        self.write_marker(&cp).await?;
        self.position_written = Some((Instant::now(), offset));
        Ok(())
    }

    /// The checkpoint at `(offset, db)` of the stream, with what it carries now (the replay
    /// of an earlier run on a standalone target, the repairs).
    fn streaming_checkpoint(&self, offset: u64, db: u32) -> TargetCheckpoint {
        TargetCheckpoint {
            state: CopyState::Streaming,
            replid: self.stats.master_replid.clone().unwrap_or_default(),
            offset,
            db,
            replay: self.ledger.replay().cloned().filter(|_| !self.cluster),
            repairs: self.repairs.clone(),
        }
    }

    /// Queues `commands` (in target db `target_db`) as one transaction with the checkpoint at
    /// `(offset, db)` and what it carries now (replay, repairs): a step outside the stream's
    /// batches (an emulated cross-slot write, a repaired key) that moves no position.
    pub(super) async fn commit_step(
        &mut self,
        commands: Vec<Vec<Bytes>>,
        target_db: u32,
        (offset, db): (u64, u32),
    ) -> anyhow::Result<()> {
        let cp = self.streaming_checkpoint(offset, db);
        let commands = commands
            .into_iter()
            .map(|args| TxCommand {
                db: target_db,
                args,
                offset,
            })
            .collect();
        self.commit(commands, &cp).await
    }

    /// Queues `commands` and the checkpoint `cp` as one transaction.
    pub(super) async fn commit(
        &mut self,
        commands: Vec<TxCommand>,
        cp: &TargetCheckpoint,
    ) -> anyhow::Result<()> {
        // The backup holds what the target is told it has (a restart resumes from there).
        self.tee_flush()?;
        let write = cp.write(&target_checkpoint_key(self.s), &self.s.source.to_string());
        self.sink
            .write_transaction(commands, write)
            .await
            .context("writing to the target")?;
        // The sink sends `SELECT`s as it needs; the next plain write re-selects.
        self.sink_db = None;
        Ok(())
    }

    /// After a stop on a command that failed inside one of our transactions: Redis applied
    /// the rest of it (there is no rollback) and its checkpoint says the whole batch. Rewrite
    /// the checkpoint so the next run applies the failed commands again (once the target is
    /// fixed) and skips the ones the target holds.
    pub(super) async fn resume_at_failed_command(&mut self) {
        let Some(redis_sync_sink::Error::Rejected {
            committed: Some(c), ..
        }) = self.sink.error()
        else {
            return;
        };
        if self.cluster {
            tracing::warn!(
                "the failed command was not applied and the rest of its slot's transaction \
                 was: a cluster target resumes after it (it is named above; apply it by hand \
                 once the target is fixed)"
            );
            return;
        }
        let Some(&first) = c.failed.first() else {
            return;
        };
        let Some((offset, db)) = self.ledger.position_before(first) else {
            return;
        };
        // The failed commands, and any left of an earlier run's replay that this run had not
        // passed yet.
        let mut retry = c.failed.clone();
        let mut through = c.through;
        if let Some(r) = self.ledger.replay() {
            through = through.max(r.through);
            retry.extend(r.retry.iter().copied().filter(|&o| o > offset));
        }
        retry.sort_unstable();
        retry.dedup();
        let cp = TargetCheckpoint {
            state: CopyState::Streaming,
            replid: self.stats.master_replid.clone().unwrap_or_default(),
            offset,
            db,
            replay: Some(Replay { through, retry }),
            repairs: self.repairs.clone(),
        };
        let key = target_checkpoint_key(self.s);
        let w = cp.write(&key, &self.s.source.to_string());
        let mut hset: Vec<Bytes> = vec![
            Bytes::from_static(b"HSET"),
            w.key.clone(),
            Bytes::from_static(b"offset"),
            Bytes::from(w.offset.to_string()),
        ];
        for (f, v) in w.fields {
            hset.push(f);
            hset.push(v);
        }
        let written = async {
            let mut client = Client::connect(&self.s.target, Duration::from_secs(10)).await?;
            client.ok(&["SELECT", "0"]).await?;
            client.ok(&hset).await?;
            anyhow::Ok(())
        }
        .await;
        match written {
            Ok(()) => tracing::warn!(
                "the next run resumes at the failed command (source offset {first}); the \
                 commands after it in the same batch are on the target and are not applied \
                 again"
            ),
            Err(e) => tracing::error!(
                "could not write the checkpoint of the failed command into the target ({e:#}): \
                 the next run resumes after it"
            ),
        }
    }
}

impl Run<'_> {
    /// `--tee-aof` on a partial resync at `offset`: the file (of this run, or an earlier one)
    /// is cut back to there. When it cannot be continued exactly, it is set aside and a new
    /// one starts, which pairs with no snapshot: said loudly.
    fn tee_continue(&mut self, offset: u64) {
        let Some(path) = self.s.tee_aof.clone() else {
            return;
        };
        if let Some(t) = &mut self.tee_aof
            && t.end() == offset
        {
            return;
        }
        if let Some(mut t) = self.tee_aof.take() {
            let _ = t.flush();
        }
        match super::tee_aof::TeeAof::resume(&path, offset) {
            Ok(t) => {
                tracing::info!(
                    "--tee-aof: appending to {} from offset {offset}",
                    path.display()
                );
                self.tee_aof = Some(t);
            }
            Err(e) => {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".before-{offset}"));
                let _ = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "--tee-aof: {} cannot be continued at offset {offset} ({e:#}); set aside as \
                     {} and a new file starts here. It pairs with no snapshot: for a \
                     restorable backup, run once with --mode full --tee-rdb",
                    path.display(),
                    std::path::Path::new(&aside).display()
                );
                let replid = self.stats.master_replid.clone().unwrap_or_default();
                match super::tee_aof::TeeAof::create(&path, &replid, offset) {
                    Ok(t) => self.tee_aof = Some(t),
                    Err(e) => tracing::error!("{e:#}; no AOF is written"),
                }
            }
        }
    }

    /// Hands the AOF's buffer to the OS (before any commit); fsyncs it once a second.
    pub(super) fn tee_flush(&mut self) -> anyhow::Result<()> {
        let Some(t) = &mut self.tee_aof else {
            return Ok(());
        };
        if self.tee_synced.elapsed() >= Duration::from_secs(1) {
            self.tee_synced = Instant::now();
            t.sync()
        } else {
            t.flush()
        }
    }
}
