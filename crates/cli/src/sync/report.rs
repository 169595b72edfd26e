//! What a run tells: the status (line, JSON, metrics), the state file's checkpoint, and the
//! heartbeat written to the source to measure the lag end to end.

use std::time::Duration;

use redis_sync_commands::HEARTBEAT_PREFIX;
use tokio::task::JoinHandle;

use super::{Run, unix_ms};
use crate::client::Client;
use crate::config::Settings;
use crate::status::State;

impl Run<'_> {
    /// Refreshes the figures from the replica's and the sink's metrics, for the status line
    /// and `--metrics`.
    pub(super) fn refresh_stats(&mut self) {
        let m = self.replica.metrics();
        let sm = self.sink.metrics();
        let st = &mut self.stats;
        st.rdb_size = m.rdb_size();
        st.rdb_size_estimate = super::progress::rdb_total(st, self.source_size)
            .filter(|&(_, estimated)| estimated)
            .map(|(size, _)| size);
        st.rdb_bytes_received = m.rdb_bytes();
        st.rdb_keys_parsed = m.rdb_keys();
        st.received_offset = m.received_offset();
        if let Some(o) = self.replica.acked_offset() {
            st.applied_offset = o;
        }
        st.lag_bytes = if st.state == State::Streaming {
            st.received_offset.saturating_sub(st.applied_offset)
        } else {
            0
        };
        st.lag_secs = self
            .ledger
            .oldest_unacked()
            .map_or(0.0, |at| at.elapsed().as_secs_f64());
        st.last_ack_secs_ago = self.last_ack.map(|t| t.elapsed().as_secs_f64());
        st.target_errors = sm.errors.iter().sum();
        st.skipped_to_dead_letter = sm.skipped;
        st.bytes_read = m.bytes_read();
        st.bytes_written = sm.bytes_sent;
        st.spooled_bytes = m.spooled_bytes();
        st.full_syncs = m.full_syncs();
        st.partial_syncs = m.partial_syncs();
        st.link_losses = m.link_losses();
        st.uptime_secs = self.started.elapsed().as_secs_f64();
        if let Some(t) = self.rdb_started
            && st.state == State::FullSync
        {
            let secs = t.elapsed().as_secs_f64().max(0.001);
            st.keys_per_sec = st.rdb_keys_written as f64 / secs;
            st.eta_secs = st
                .rdb_size
                .filter(|_| st.rdb_bytes_received > 0)
                .map(|size| {
                    let rate = st.rdb_bytes_received as f64 / secs;
                    (size.saturating_sub(st.rdb_bytes_received)) as f64 / rate.max(1.0)
                });
        } else {
            st.eta_secs = None;
        }
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = st.clone();
    }

    /// Draws the full copy's bar (on a terminal), and removes it once the copy is over.
    pub(super) fn show_progress(&mut self) {
        if let Some(rx) = &mut self.source_size_rx
            && let Ok(size) = rx.try_recv()
        {
            self.source_size = size;
            self.source_size_rx = None;
        }
        if self.stats.state == State::FullSync {
            self.progress.update(&self.stats, self.source_size);
        } else {
            self.progress.clear();
        }
    }

    /// Prints the status on stderr: a progress line during the full copy (unless the bar
    /// shows it), one JSON line with `--status-json`.
    pub(super) fn print_status(&self) {
        // One line per shard of a cluster source, each naming its shard (JSON: `source`).
        let who = match &self.s.shard {
            Some(link) => format!("redis-sync[{}]", link.name),
            None => "redis-sync".to_string(),
        };
        if self.s.status_json {
            eprintln!("{}", self.stats.json_line());
        } else if self.stats.state == State::FullSync {
            if self.progress.is_drawn() {
                return;
            }
            eprintln!("{who}: {}", self.stats.progress_line());
        } else {
            eprintln!("{who}: {}", self.stats.status_line());
        }
    }

    /// Saves the applied position in the state file when it moved. Not during a full copy:
    /// until it completes, no position describes the target.
    pub(super) fn checkpoint_if_moved(&mut self) -> anyhow::Result<()> {
        if self.copying {
            return Ok(());
        }
        let Some(p) = self.replica.resume_point() else {
            return Ok(());
        };
        if self.last_saved == Some(p.offset) {
            return Ok(());
        }
        self.cp.replid = Some(p.replid);
        self.cp.offset = Some(p.offset);
        self.cp.db = Some(p.db);
        self.save_checkpoint()?;
        self.last_saved = Some(p.offset);
        Ok(())
    }

    /// Writes the state file, stamped with the time.
    pub(super) fn save_checkpoint(&mut self) -> anyhow::Result<()> {
        self.cp.updated_ms = unix_ms();
        self.state_file.save(&self.cp)
    }
}

/// `--heartbeat`: starts writing the heartbeat key to the source (the stream brings it back,
/// and its age when applied is the lag end to end).
pub(super) fn start_heartbeat(s: &Settings) -> Option<JoinHandle<()>> {
    s.heartbeat.map(|every| {
        let id = s.target.addr();
        let key = format!("{}{id}", String::from_utf8_lossy(HEARTBEAT_PREFIX));
        tokio::spawn(heartbeat_task(s.source.clone(), key, every))
    })
}

/// Writes the heartbeat key to the source every `every`.
async fn heartbeat_task(source: crate::url::Endpoint, key: String, every: Duration) {
    let ttl = (every * 10)
        .max(Duration::from_secs(10))
        .as_millis()
        .to_string();
    let mut client: Option<Client> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if client.is_none() {
            match Client::connect(&source, Duration::from_secs(5)).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!("heartbeat: {e:#}");
                    continue;
                }
            }
        }
        if let Some(c) = &mut client {
            let now = unix_ms().to_string();
            let r = c
                .call(&["SET", key.as_str(), now.as_str(), "PX", ttl.as_str()])
                .await;
            match r {
                Ok(redis_sync_resp::Frame::Error(e)) => {
                    tracing::warn!(
                        "heartbeat: the source refused SET {key}: {} (give the user write \
                         access to redis-sync:heartbeat:*, or drop --heartbeat)",
                        String::from_utf8_lossy(&e)
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("heartbeat: {e:#}");
                    client = None;
                }
            }
        }
    }
}
