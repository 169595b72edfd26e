//! The full copy's progress bar, on a terminal.
//!
//! An operator watches a full copy for minutes or hours: a bar over the RDB's bytes says how
//! far it is and when it ends, where a status line every few seconds scrolls away. The bar is
//! drawn only when stderr is a terminal (and not with `--status-json` or `--no-progress`);
//! otherwise the plain status lines of [`report`](super::report) are the progress.
//!
//! The RDB's size is known on a disk-based sync (the `$<size>` preamble). On a diskless one the
//! source streams it without saying: the size is then estimated, first from the source's
//! `used_memory_dataset` (an RDB is usually well under the memory it loads into), and, once
//! some keys went by, from the bytes per key so far times the keys the source holds (`INFO
//! keyspace`). An estimate is shown with a `~`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::Client;
use crate::status::Snapshot;
use crate::url::Endpoint;

/// What the source said of its data when the copy began, for a diskless estimate.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SourceSize {
    /// Keys in all dbs (`INFO keyspace`).
    pub keys: u64,
    /// `used_memory_dataset` (or `used_memory` where the source lacks it).
    pub dataset_bytes: u64,
}

impl SourceSize {
    /// Asks the source (bounded: a slow or refusing source gives no estimate, never a wait).
    pub(super) async fn read(source: &Endpoint) -> Option<SourceSize> {
        let ask = async {
            let mut c = Client::connect(source, Duration::from_secs(2)).await.ok()?;
            let keyspace = c.info("keyspace").await.ok()?;
            let memory = c.info("memory").await.ok()?;
            let keys = keyspace
                .iter()
                .filter(|(name, _)| name.starts_with("db"))
                .filter_map(|(_, v)| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("keys="))?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            let field = |name: &str| {
                memory
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse::<u64>().ok())
            };
            let dataset_bytes = field("used_memory_dataset")
                .or_else(|| field("used_memory"))
                .unwrap_or(0);
            Some(SourceSize {
                keys,
                dataset_bytes,
            })
        };
        tokio::time::timeout(Duration::from_secs(3), ask)
            .await
            .ok()
            .flatten()
    }
}

/// The RDB's size: the source's word, or an estimate (`true`) from what it holds.
pub(super) fn rdb_total(s: &Snapshot, source: Option<SourceSize>) -> Option<(u64, bool)> {
    if let Some(size) = s.rdb_size {
        return Some((size, false));
    }
    let src = source?;
    // Keys so far tell the bytes per key of this data set; before that, half the dataset's
    // memory (small values take 2–4× their RDB size in memory).
    let guess = if s.rdb_keys_parsed >= 1000 && src.keys > 0 {
        (s.rdb_bytes_received as f64 / s.rdb_keys_parsed as f64 * src.keys as f64) as u64
    } else if src.dataset_bytes > 0 {
        src.dataset_bytes / 2
    } else {
        return None;
    };
    // Never below what came already (plus a little, so an estimate never shows 100 %).
    Some((
        guess.max(s.rdb_bytes_received + s.rdb_bytes_received / 50),
        true,
    ))
}

/// The bar, when one is drawn.
#[derive(Debug, Default)]
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    /// Draw one at all (a terminal, no `--status-json`, no `--no-progress`).
    enabled: bool,
}

impl Progress {
    /// A bar when stderr is a terminal and `wanted`.
    pub(super) fn new(wanted: bool) -> Progress {
        Progress {
            bar: None,
            enabled: wanted && std::io::stderr().is_terminal(),
        }
    }

    /// True when the bar stands in for the progress lines.
    pub(super) fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Shows the figures of a full copy under way (the bar starts on the first call).
    pub(super) fn update(&mut self, s: &Snapshot, source: Option<SourceSize>) {
        if !self.enabled {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} full copy [{bar:30}] {prefix}\n  {wide_msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(250));
            crate::logging::route_through(Some(bar.clone()));
            bar
        });
        let total = rdb_total(s, source);
        let (len, estimated) = total.unwrap_or((s.rdb_bytes_received, true));
        bar.set_length(len.max(1));
        bar.set_position(s.rdb_bytes_received.min(len));
        let keys_total = source
            .map(|src| format!("/~{}", indicatif::HumanCount(src.keys)))
            .unwrap_or_default();
        let eta = match (s.eta_secs, total) {
            (Some(e), _) => format!(", ETA {}", short(e)),
            (None, Some((len, _))) if s.rdb_bytes_received > 0 => {
                let rate = bar.per_sec().max(1.0);
                let left = len.saturating_sub(s.rdb_bytes_received) as f64 / rate;
                format!(", ETA ~{}", short(left))
            }
            _ => String::new(),
        };
        bar.set_prefix(format!(
            "{}/{}{} ({}%){eta}",
            indicatif::HumanBytes(s.rdb_bytes_received),
            if estimated { "~" } else { "" },
            indicatif::HumanBytes(len),
            (100 * s.rdb_bytes_received.min(len)) / len.max(1)
        ));
        bar.set_message(format!(
            "keys parsed {}{keys_total}, applied {}, {} keys/s, {}/s",
            indicatif::HumanCount(s.rdb_keys_parsed),
            indicatif::HumanCount(s.rdb_keys_written),
            indicatif::HumanCount(s.keys_per_sec as u64),
            indicatif::HumanBytes(bar.per_sec() as u64)
        ));
    }

    /// Removes the bar (the copy is over or stopped); logs go straight to stderr again.
    pub(super) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            crate::logging::route_through(None);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `42s`, `3m05s`, `2h10m`: an ETA that fits the line.
fn short(secs: f64) -> String {
    let s = if secs.is_finite() {
        secs.clamp(0.0, 1e7) as u64
    } else {
        0
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_the_sources_word_else_an_estimate_that_learns() {
        let mut s = Snapshot {
            rdb_size: Some(1000),
            ..Snapshot::default()
        };
        assert_eq!(rdb_total(&s, None), Some((1000, false)));
        s.rdb_size = None;
        assert_eq!(rdb_total(&s, None), None);
        let src = SourceSize {
            keys: 10_000,
            dataset_bytes: 800_000,
        };
        // Before 1000 keys: half the dataset's memory.
        assert_eq!(rdb_total(&s, Some(src)), Some((400_000, true)));
        // 2000 keys in 60,000 bytes: 30 bytes a key, 10,000 keys.
        s.rdb_keys_parsed = 2000;
        s.rdb_bytes_received = 60_000;
        assert_eq!(rdb_total(&s, Some(src)), Some((300_000, true)));
        // More came than the estimate: never below what came.
        s.rdb_keys_parsed = 20_000;
        s.rdb_bytes_received = 600_000;
        let (len, est) = rdb_total(&s, Some(src)).expect("estimate");
        assert!(est && len > 600_000, "{len}");
    }

    #[test]
    fn etas_are_short() {
        assert_eq!(short(42.4), "42s");
        assert_eq!(short(185.0), "3m05s");
        assert_eq!(short(7800.0), "2h10m");
        assert_eq!(short(f64::NAN), "0s");
    }
}
