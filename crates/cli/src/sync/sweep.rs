//! After a full copy over an earlier one: remove the target keys that the new snapshot does
//! not have (the source deleted them meanwhile), or empty the synced dbs before the copy
//! (`--flush-target`). Only keys that pass the key and type filters are touched: the rest of
//! the target belongs to someone else.
//!
//! The sweep runs after the sink acknowledged the whole snapshot and before the first command
//! of the stream is applied (the replica spools the stream meanwhile), so every key on the
//! target that passes the filter and is not in the snapshot is stale.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use redis_sync_commands::{DataType, Filter};
use redis_sync_resp::Frame;
use redis_sync_sink::Sink;

use crate::client::{self, Client, text};
use crate::config::Settings;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Most `SCAN` pages read per db (a bound on the loop, far above any real db: 10^7 pages of
/// about 1000 keys); reaching it is said, never silent.
const MAX_PAGES: usize = 10_000_000;
/// How often a long sweep says how far it is.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The target nodes to scan: the masters of a cluster, or the one server.
async fn nodes(s: &Settings, cluster: bool) -> anyhow::Result<Vec<String>> {
    if !cluster {
        return Ok(vec![s.target.addr()]);
    }
    let mut c = Client::connect(&s.target, TIMEOUT).await?;
    client::cluster_masters(&mut c).await
}

/// The target dbs some synced source db writes into.
pub fn target_dbs(filter: &Filter, cluster: bool) -> Vec<u32> {
    if cluster {
        return vec![0];
    }
    let mut dbs: Vec<u32> = (0..256)
        .filter_map(|db| filter.target_db(db).ok().flatten())
        .collect();
    dbs.sort_unstable();
    dbs.dedup();
    dbs
}

/// Dbs of a node that hold keys (`INFO keyspace`).
async fn nonempty_dbs(c: &mut Client) -> anyhow::Result<Vec<u32>> {
    Ok(c.info("keyspace")
        .await?
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("db")?.parse().ok())
        .collect())
}

/// Deletes, through the sink, every key of the synced target dbs that passes the filter and
/// is not in `keep` (hashes of `(db, key)`). Returns how many were deleted.
pub async fn sweep(
    s: &Settings,
    filter: &Filter,
    cluster: bool,
    sink: &Sink,
    keep: &mut super::keyset::SnapshotKeys,
) -> anyhow::Result<u64> {
    let dbs = target_dbs(filter, cluster);
    let mut removed = 0u64;
    let mut scanned = 0u64;
    let mut last_report = std::time::Instant::now();
    // A shard of a cluster source sweeps only its own slots: the rest are other shards'.
    let slots = match &s.shard {
        Some(link) => Some(link.slots().await.context("the shard's slots")?),
        None => None,
    };
    for node in nodes(s, cluster).await? {
        let mut c = Client::connect_addr(&s.target, &node, TIMEOUT).await?;
        let present = nonempty_dbs(&mut c).await?;
        for &db in dbs.iter().filter(|d| present.contains(d)) {
            if !cluster {
                c.ok(&["SELECT", &db.to_string()]).await?;
            }
            let mut cursor = b"0".to_vec();
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > MAX_PAGES {
                    tracing::warn!(
                        "sweep: stopped after {MAX_PAGES} SCAN pages of db {db} on {node}: keys \
                         the source deleted may remain there (check with `redis-sync verify`)"
                    );
                    break;
                }
                let page = c
                    .ok(&[&b"SCAN"[..], &cursor, b"COUNT", b"1000"])
                    .await
                    .with_context(|| format!("SCAN of db {db} on {node}"))?;
                let (next, keys) = scan_page(&page)?;
                scanned += keys.len() as u64;
                let mut stale = Vec::new();
                for key in keys {
                    if !filter.key_passes(&key)
                        || key.starts_with(super::TARGET_CHECKPOINT_PREFIX.as_bytes())
                        || slots.as_ref().is_some_and(|own| {
                            !own[usize::from(redis_sync_commands::hash_slot(&key))]
                        })
                        || keep
                            .contains(db, &key)
                            .context("reading the snapshot's keys from a temporary file")?
                    {
                        continue;
                    }
                    stale.push(key);
                }
                // The type filter needs each stale key's type: one pipelined round trip per
                // page, not one per key.
                let types: Vec<Frame> = if stale.is_empty() {
                    Vec::new()
                } else {
                    let asks: Vec<Vec<Bytes>> = stale
                        .iter()
                        .map(|k| vec![Bytes::from_static(b"TYPE"), k.clone()])
                        .collect();
                    c.pipeline(&asks).await?
                };
                for (key, t) in stale.into_iter().zip(types) {
                    if let Some(t) = text(&t).as_deref().and_then(DataType::from_name)
                        && !filter.type_passes(t)
                    {
                        continue;
                    }
                    if !cluster {
                        sink.write(
                            vec![Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())],
                            None,
                        )
                        .await?;
                    }
                    sink.write(vec![Bytes::from_static(b"DEL"), key], None)
                        .await?;
                    removed += 1;
                }
                if last_report.elapsed() >= REPORT_EVERY {
                    last_report = std::time::Instant::now();
                    tracing::info!(
                        "sweep: {scanned} target keys scanned, {removed} not in the snapshot \
                         removed so far (db {db} on {node})"
                    );
                }
                if next == b"0" {
                    break;
                }
                cursor = next;
            }
        }
    }
    sink.flush().await?;
    Ok(removed)
}

/// `SCAN` reply: the next cursor and the keys.
fn scan_page(f: &Frame) -> anyhow::Result<(Vec<u8>, Vec<Bytes>)> {
    let parts = f.as_slice().context("SCAN: not an array")?;
    let next = parts
        .first()
        .and_then(Frame::as_bytes)
        .context("SCAN: no cursor")?
        .to_vec();
    let keys = parts
        .get(1)
        .and_then(Frame::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|k| k.as_bytes().cloned())
        .collect();
    Ok((next, keys))
}

/// `--flush-target`: `FLUSHDB` on every synced target db (every master of a cluster). Returns
/// how many keys were there.
pub async fn flush_target(s: &Settings, filter: &Filter, cluster: bool) -> anyhow::Result<u64> {
    let dbs = target_dbs(filter, cluster);
    let mut removed = 0u64;
    for node in nodes(s, cluster).await? {
        let mut c = Client::connect_addr(&s.target, &node, TIMEOUT).await?;
        let present = nonempty_dbs(&mut c).await?;
        for &db in dbs.iter().filter(|d| present.contains(d)) {
            if !cluster {
                c.ok(&["SELECT", &db.to_string()]).await?;
            }
            removed += c
                .ok(&["DBSIZE"])
                .await?
                .as_integer()
                .map_or(0, |n| n.max(0) as u64);
            c.ok(&["FLUSHDB"]).await.with_context(|| {
                format!("--flush-target: FLUSHDB of db {db} on {node} was refused")
            })?;
        }
    }
    Ok(removed)
}
