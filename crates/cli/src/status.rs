//! What `sync` shows: one [`Snapshot`] of every figure, taken by the data path about once a
//! second, printed as a progress line during the full copy and a status line afterwards
//! (text or `--status-json`), and served as Prometheus metrics (`metrics`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The phase of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Connecting and handshaking.
    #[default]
    Connecting,
    /// Receiving and applying the snapshot.
    FullSync,
    /// Removing target keys that the new snapshot does not have.
    Sweeping,
    /// Applying the command stream.
    Streaming,
    /// The link to the source is down; reconnecting.
    Reconnecting,
    /// Draining and checkpointing before exit.
    Stopping,
    /// Done.
    Stopped,
}

impl State {
    /// The name shown in status lines and metrics.
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::FullSync => "full-sync",
            State::Sweeping => "sweeping",
            State::Streaming => "streaming",
            State::Reconnecting => "reconnecting",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

/// Every figure of a running sync at one moment. Never holds a password.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub state: State,
    /// `full` or `partial`: how the current session started.
    pub sync_kind: Option<&'static str>,
    /// `exactly-once` (transactions with the checkpoint in the target) or `at-least-once`.
    pub delivery: &'static str,
    pub source: String,
    pub target: String,
    pub master_replid: Option<String>,
    /// RDB payload size when the source said it (disk-based replication).
    pub rdb_size: Option<u64>,
    /// The RDB's estimated size on a diskless sync (from the bytes per key so far and the
    /// source's `INFO keyspace`, or its dataset memory).
    pub rdb_size_estimate: Option<u64>,
    pub rdb_bytes_received: u64,
    pub rdb_keys_parsed: u64,
    pub rdb_keys_written: u64,
    pub rdb_keys_skipped: u64,
    /// Keys per second during the full copy.
    pub keys_per_sec: f64,
    /// Estimated seconds left in the full copy (when the RDB size is known).
    pub eta_secs: Option<f64>,
    pub keys_swept: u64,
    /// Replication offset of the last byte received from the source.
    pub received_offset: u64,
    /// Replication offset the target has applied.
    pub applied_offset: u64,
    pub commands_received: u64,
    pub commands_applied: u64,
    pub commands_filtered: u64,
    /// Writes whose keys span slots of a cluster target, applied by their effect.
    pub cross_slot_emulated: u64,
    /// Source transactions spanning slots of a cluster target, committed per slot.
    pub transactions_split: u64,
    /// Keys copied afresh from the source by `--on-error repair`.
    pub keys_repaired: u64,
    pub lag_bytes: u64,
    pub lag_secs: f64,
    /// Heartbeat round trip source → target, when `--heartbeat` is on.
    pub heartbeat_lag_secs: Option<f64>,
    /// Seconds since the target last acknowledged something.
    pub last_ack_secs_ago: Option<f64>,
    pub target_errors: u64,
    pub skipped_to_dead_letter: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub spooled_bytes: u64,
    pub full_syncs: u64,
    pub partial_syncs: u64,
    pub link_losses: u64,
    pub uptime_secs: f64,
}

/// The latest snapshot, shared with the metrics server.
pub type Shared = Arc<Mutex<Snapshot>>;

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

impl Snapshot {
    /// The one-line progress of the full copy.
    pub fn progress_line(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "full sync: received {}", mib(self.rdb_bytes_received));
        let size = self
            .rdb_size
            .map(|s| (s, ""))
            .or(self.rdb_size_estimate.map(|s| (s, "~")));
        if let Some((size, about)) = size {
            let pct = if size > 0 {
                (100.0 * self.rdb_bytes_received as f64 / size as f64).min(100.0)
            } else {
                100.0
            };
            let _ = write!(s, " of {about}{} ({about}{pct:.0}%)", mib(size));
        }
        let _ = write!(
            s,
            ", parsed {} keys, applied {} keys, {:.0} keys/s",
            self.rdb_keys_parsed, self.rdb_keys_written, self.keys_per_sec
        );
        if let Some(eta) = self.eta_secs {
            let _ = write!(s, ", ETA {eta:.0}s");
        }
        s
    }

    /// The periodic status line (text).
    pub fn status_line(&self) -> String {
        let mut s = format!(
            "state={} sync={} delivery={} replid={} offset={} applied={} lag={}B/{:.1}s \
             cmds={}/{} filtered={} rdb={} keys_parsed={} keys_applied={}",
            self.state.name(),
            self.sync_kind.unwrap_or("-"),
            if self.delivery.is_empty() {
                "-"
            } else {
                self.delivery
            },
            self.master_replid.as_deref().unwrap_or("-"),
            self.received_offset,
            self.applied_offset,
            self.lag_bytes,
            self.lag_secs,
            self.commands_received,
            self.commands_applied,
            self.commands_filtered,
            self.rdb_size
                .map_or_else(|| mib(self.rdb_bytes_received), mib),
            self.rdb_keys_parsed,
            self.rdb_keys_written,
        );
        if let Some(h) = self.heartbeat_lag_secs {
            let _ = write!(s, " heartbeat_lag={h:.3}s");
        }
        match self.last_ack_secs_ago {
            Some(a) => {
                let _ = write!(s, " last_ack={a:.1}s_ago");
            }
            None => s.push_str(" last_ack=never"),
        }
        let _ = write!(
            s,
            " errors={} dead_letter={} swept={} spooled={}",
            self.target_errors, self.skipped_to_dead_letter, self.keys_swept, self.spooled_bytes
        );
        if self.keys_repaired > 0 {
            let _ = write!(s, " repaired={}", self.keys_repaired);
        }
        // Cluster targets only, once there is something to say.
        if self.cross_slot_emulated > 0 || self.transactions_split > 0 {
            let _ = write!(
                s,
                " cross_slot={} tx_split={}",
                self.cross_slot_emulated, self.transactions_split
            );
        }
        s
    }

    /// The JSON form (one line).
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_the_figures() {
        let s = Snapshot {
            state: State::Streaming,
            sync_kind: Some("partial"),
            delivery: "exactly-once",
            master_replid: Some("abc".into()),
            received_offset: 100,
            applied_offset: 90,
            lag_bytes: 10,
            rdb_size: Some(2 << 20),
            rdb_bytes_received: 1 << 20,
            eta_secs: Some(3.0),
            ..Snapshot::default()
        };
        let line = s.status_line();
        assert!(
            line.contains(
                "state=streaming sync=partial delivery=exactly-once replid=abc offset=100 applied=90"
            ),
            "{line}"
        );
        assert!(s.progress_line().contains("(50%)"), "{}", s.progress_line());
        let j: serde_json::Value = serde_json::from_str(&s.json_line()).expect("json");
        assert_eq!(j["state"], "streaming");
        assert_eq!(j["applied_offset"], 90);
        assert_eq!(j["delivery"], "exactly-once");
    }
}
