//! The full copy: from `FullResync` to the snapshot applied on the target.
//!
//! `FullResync` marks the target's checkpoint `copying` (a restart redoes the copy) and
//! resets what belonged to the old history; each `Rdb` event goes through the filter and the
//! [`RdbLoader`] into the sink; `RdbDone` waits for the target to acknowledge the snapshot,
//! sweeps the keys it does not have and writes the checkpoint `streaming` at its offset.

use std::time::{Duration, Instant};

use anyhow::Context;
use redis_sync_commands::DataType;
use redis_sync_rdb::{Event, ValueType};
use redis_sync_sink::RdbLoader;

use super::batch::Batch;
use super::connect::connect_sink;
use super::target_checkpoint::{CopyState, TargetCheckpoint};
use super::{Run, Stop, keyset, sweep};
use crate::config::Mode;
use crate::status::State;

impl Run<'_> {
    /// Exactly-once: the target's checkpoint says `copying`: a restart redoes the copy and
    /// sweeps.
    async fn mark_copying(&mut self, replid: &str, offset: u64) -> anyhow::Result<()> {
        if !self.exactly_once {
            return Ok(());
        }
        let marker = TargetCheckpoint {
            state: CopyState::Copying,
            replid: replid.to_string(),
            offset,
            db: 0,
            replay: None,
            repairs: Default::default(),
        };
        self.write_marker(&marker).await?;
        self.sink
            .flush()
            .await
            .context("marking the copy in progress in the target")
    }

    /// `FullResync`: a full copy of the source's snapshot at `offset` starts. What belonged
    /// to the old history goes (batch, slot floors, positions; on a second copy in this run
    /// the sink too), and the target's checkpoint says `copying` before the first key.
    pub(super) async fn full_sync_start(
        &mut self,
        replid: String,
        offset: u64,
        rdb_size: Option<u64>,
        forced: bool,
    ) -> anyhow::Result<()> {
        self.full_syncs += 1;
        if let Some(path) = &self.s.tee_aof {
            // A new snapshot: the stream after it starts a new file.
            self.tee_aof = Some(super::tee_aof::TeeAof::create(path, &replid, offset)?);
        }
        if forced || self.resume_asked {
            tracing::warn!(
                "full resync: the source refused a partial resync (its backlog no longer \
                 covers the checkpoint, or its replication ID changed); copying everything \
                 again"
            );
        }
        tracing::info!(
            "full sync from {replid} at offset {offset} ({})",
            rdb_size.map_or("diskless".to_string(), |n| format!("{n} bytes"))
        );
        if self.full_syncs > 1 || self.resume_asked {
            // A new snapshot after data of another history went through this sink (an earlier
            // copy, or the stream this run resumed): start from a fresh sink so no offset
            // the old one acknowledged is taken for one of the new history.
            self.sink.flush().await.ok();
            let new = connect_sink(self.s).await?;
            let old = std::mem::replace(&mut self.sink, new);
            self.acked = self.sink.acked_offset();
            let _ = old.shutdown().await;
        }
        self.batch = Batch::default();
        self.ledger.handle_full_resync(Some(replid.clone()), offset);
        if self.cluster {
            // What the slots held belongs to the old history.
            self.sink
                .set_slot_floors(Vec::new())
                .await
                .context("writing to the target")?;
        }
        self.last_applied = None;
        self.sink_db = None;
        let sweep = self.s.sweep || self.had_checkpoint || self.full_syncs > 1 || self.resume_asked;
        // Until the copy completes the target is neither the old state nor the new one.
        self.cp.replid = None;
        self.cp.offset = None;
        self.cp.db = None;
        self.save_checkpoint()?;
        self.last_saved = None;
        // Before anything on the target changes, a restart must find no `streaming`
        // checkpoint: it would resume a stream over a target that holds part of a copy (or
        // less, after `--flush-target`). A flush of db 0 removes the checkpoint itself, which
        // is as safe (no checkpoint: copy everything); otherwise the mark goes first.
        let flushes_db0 =
            self.s.flush_target && sweep::target_dbs(&self.filter, self.cluster).contains(&0);
        if !flushes_db0 {
            self.mark_copying(&replid, offset).await?;
        }
        if self.s.flush_target {
            let removed = sweep::flush_target(self.s, &self.filter, self.cluster).await?;
            tracing::info!("--flush-target: removed {removed} keys from the synced target dbs");
            if flushes_db0 {
                self.mark_copying(&replid, offset).await?;
            }
        }
        self.snapshot_keys = if sweep && !self.s.flush_target {
            Some(
                keyset::SnapshotKeys::new(self.s.spool.dir.as_deref())
                    .context("creating the temporary file of the snapshot's keys")?,
            )
        } else {
            None
        };
        self.loader = RdbLoader::new().hold_limit(self.s.value_budget);
        self.skip_key = false;
        self.goal = None;
        self.goal_rx = None;
        self.stats.state = State::FullSync;
        self.stats.sync_kind = Some("full");
        self.stats.master_replid = Some(replid.clone());
        self.stats.rdb_keys_written = 0;
        self.stats.rdb_keys_skipped = 0;
        self.rdb_started = Some(Instant::now());
        self.copying = true;
        // What the source holds, for the size of a diskless RDB (asked aside: never a wait).
        // A backup's size is known.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let source = self.s.source.clone();
        let file = self.s.files.is_some();
        tokio::spawn(async move {
            let size = if file {
                None
            } else {
                super::progress::SourceSize::read(&source).await
            };
            let _ = tx.send(size);
        });
        self.source_size = None;
        self.source_size_rx = Some(rx);
        Ok(())
    }

    /// One `Rdb` event: a key that passes the filter goes, in its mapped db, through the
    /// loader into the sink; the events of a filtered-out key are skipped up to its `KeyEnd`.
    pub(super) async fn rdb_event(&mut self, event: Event) -> anyhow::Result<()> {
        let event = match event {
            Event::Key(mut k) => {
                let db = u32::try_from(k.db).unwrap_or(u32::MAX);
                let target_db = self
                    .filter
                    .target_db(db)
                    .with_context(|| format!("source db {db}"))?;
                let passes = target_db.is_some()
                    && self.filter.key_passes(&k.key)
                    && data_type(k.value_type).is_none_or(|t| self.filter.type_passes(t));
                let Some(tdb) = target_db.filter(|_| passes) else {
                    self.skip_key = true;
                    self.stats.rdb_keys_skipped += 1;
                    return Ok(());
                };
                self.skip_key = false;
                if let Some(keys) = &mut self.snapshot_keys {
                    keys.insert(tdb, &k.key)
                        .context("writing the snapshot's keys to a temporary file")?;
                }
                k.db = u64::from(tdb);
                Event::Key(k)
            }
            Event::Value(_) | Event::KeyEnd { .. } if self.skip_key => {
                if matches!(event, Event::KeyEnd { .. }) {
                    self.skip_key = false;
                }
                return Ok(());
            }
            other => other,
        };
        let key_end = matches!(event, Event::KeyEnd { .. });
        self.loader
            .handle_event(&self.sink, &event, self.now_ms)
            .await
            .context("writing the snapshot to the target")?;
        if let Event::Header(h) = &event
            && self.s.scan.as_ref().is_some_and(|o| o.notify)
            && self.loader.uses_restore() == Some(false)
        {
            // The SCAN source writes changed keys with RESTORE of the source's payloads.
            anyhow::bail!(
                "the target cannot load the source's DUMP payloads (RDB version {}), which                  --scan-notify writes changed keys with: use a target at least as new as the                  source, or drop --scan-notify for a one-shot copy (native commands)",
                h.version
            );
        }
        if key_end {
            self.stats.rdb_keys_written += 1;
        }
        Ok(())
    }

    /// `RdbDone`: the whole snapshot is read. Once the target holds it (acknowledged, swept),
    /// the checkpoint `streaming` at `offset` completes the copy and the stream starts.
    pub(super) async fn full_sync_done(
        &mut self,
        offset: u64,
        rdb_bytes: u64,
    ) -> anyhow::Result<Option<Stop>> {
        // Waiting for the target and sweeping it can take minutes, inside the loop's handler
        // of this event: a stop request ends them. The copy is not complete then (the target's
        // checkpoint says `copying`, the state file holds no position), so the next run copies
        // again, as after a stop in the middle of the keys.
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return Ok(Some(Stop::Signal)),
            applied = self.snapshot_applied(rdb_bytes) => applied?,
        }
        self.sink_db = None;
        if self.exactly_once {
            let done = TargetCheckpoint {
                state: CopyState::Streaming,
                replid: self.stats.master_replid.clone().unwrap_or_default(),
                offset,
                db: 0,
                replay: None,
                repairs: Default::default(),
            };
            self.write_marker(&done).await?;
            self.sink
                .flush()
                .await
                .context("writing the checkpoint of the full copy into the target")?;
        }
        // Only now (snapshot, sweep and checkpoint on the target) is the copy complete: a
        // stop before this line redoes it.
        let secs = self.rdb_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        tracing::info!(
            "full copy applied: {} keys in {secs:.1}s; streaming from offset {offset}",
            self.stats.rdb_keys_written,
        );
        self.ledger.handle_snapshot_applied(offset);
        self.advance();
        self.cp.synced = true;
        self.copying = false;
        self.stats.state = State::Streaming;
        self.last_ack = Some(Instant::now());
        self.checkpoint_if_moved()?;
        if self.s.mode == Mode::Full {
            return Ok(Some(Stop::FullDone));
        }
        if self.s.until_caught_up {
            self.ask_goal(offset);
        }
        Ok(None)
    }

    /// Waits until the target acknowledged the whole snapshot, then sweeps the keys it does
    /// not have, when `FullResync` decided on a sweep. Dropping it halfway leaves the copy
    /// incomplete, which the next run redoes.
    async fn snapshot_applied(&mut self, rdb_bytes: u64) -> anyhow::Result<()> {
        // The sink's queue may hold much of the snapshot still (a slow or rate-limited
        // target): keep the bar and the status lines going while it drains.
        let mut last_status = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(250), self.sink.flush()).await {
                Ok(done) => {
                    done.context("writing the snapshot to the target")?;
                    break;
                }
                Err(_) => {
                    self.refresh_stats();
                    self.show_progress();
                    if last_status.elapsed() >= self.s.status_interval {
                        last_status = Instant::now();
                        self.print_status();
                    }
                }
            }
        }
        tracing::info!(
            "snapshot written: {} keys ({} filtered out, {} expired) from {rdb_bytes} RDB bytes",
            self.stats.rdb_keys_written,
            self.stats.rdb_keys_skipped,
            self.loader.skipped()
        );
        if let Some(mut keys) = self.snapshot_keys.take() {
            keys.finish()
                .context("sorting the snapshot's keys in a temporary file")?;
            self.stats.state = State::Sweeping;
            let removed = sweep::sweep(self.s, &self.filter, self.cluster, &self.sink, &mut keys)
                .await
                .context("removing target keys the source no longer has")?;
            self.stats.keys_swept += removed;
            tracing::info!(
                "sweep: removed {removed} target keys that are not in the source's snapshot \
                 ({} keys)",
                keys.len()
            );
        }
        Ok(())
    }
}

fn data_type(v: ValueType) -> Option<DataType> {
    match v {
        ValueType::String => Some(DataType::String),
        ValueType::List => Some(DataType::List),
        ValueType::Set => Some(DataType::Set),
        ValueType::SortedSet => Some(DataType::SortedSet),
        ValueType::Hash => Some(DataType::Hash),
        ValueType::Stream => Some(DataType::Stream),
        _ => None,
    }
}
