//! One side of a comparison: a standalone server or the masters of a cluster, with the reads
//! `verify` needs (key lists by `SCAN`, type, TTL, value) routed to the right node and db.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use redis_sync_commands::hash_slot;
use redis_sync_resp::Frame;

use super::Difference;
use crate::client::{self, Client, field, text};
use crate::url::Endpoint;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A server or a cluster's masters.
#[derive(Debug)]
pub struct Side {
    nodes: Vec<Client>,
    selected: Vec<Option<u32>>,
    /// `(first slot, last slot, node index)` for a cluster.
    slots: Vec<(u16, u16, usize)>,
    cluster: bool,
    version: String,
}

/// Where each node's `SCAN` is (`None`: done).
pub type Cursors = Vec<Option<Vec<u8>>>;

impl Side {
    /// Connects to `ep`, and to every master when it is a cluster node.
    pub async fn open(ep: &Endpoint) -> anyhow::Result<Side> {
        let mut first = Client::connect(ep, TIMEOUT).await?;
        let info = first.info("server").await?;
        let version = field(&info, "valkey_version")
            .map(|v| format!("valkey {v}"))
            .or_else(|| field(&info, "redis_version").map(|v| format!("redis {v}")))
            .unwrap_or_default();
        let cl = first.info("cluster").await?;
        let cluster = field(&cl, "cluster_enabled") == Some("1");
        if !cluster {
            return Ok(Side {
                nodes: vec![first],
                selected: vec![ep.db],
                slots: Vec::new(),
                cluster,
                version,
            });
        }
        let masters = client::cluster_masters(&mut first).await?;
        let mut nodes = Vec::new();
        for m in &masters {
            nodes.push(Client::connect_addr(ep, m, TIMEOUT).await?);
        }
        let mut slots = Vec::new();
        let map = first.ok(&["CLUSTER", "SLOTS"]).await?;
        for range in map.as_slice().unwrap_or(&[]) {
            let Some(p) = range.as_slice() else { continue };
            let (Some(a), Some(b)) = (
                p.first().and_then(Frame::as_integer),
                p.get(1).and_then(Frame::as_integer),
            ) else {
                continue;
            };
            let Some(node) = p.get(2).and_then(Frame::as_slice) else {
                continue;
            };
            let port = node.get(1).and_then(Frame::as_integer).unwrap_or(0);
            let Some(i) = masters
                .iter()
                .position(|m| m.ends_with(&format!(":{port}")))
            else {
                continue;
            };
            slots.push((
                u16::try_from(a).unwrap_or(0),
                u16::try_from(b).unwrap_or(0),
                i,
            ));
        }
        let n = nodes.len();
        Ok(Side {
            nodes,
            selected: vec![Some(0); n],
            slots,
            cluster,
            version,
        })
    }

    /// True when both run the same server version (value digests are then comparable).
    pub fn same_version(&self, other: &Side) -> bool {
        self.version == other.version
    }

    /// `DEBUG DIGEST` of a standalone server; `None` for a cluster or when refused.
    pub async fn digest(&mut self) -> Option<String> {
        if self.cluster {
            return None;
        }
        match self.nodes[0].call(&["DEBUG", "DIGEST"]).await.ok()? {
            f @ (Frame::SimpleString(_) | Frame::BulkString(_)) => text(&f),
            _ => None,
        }
    }

    /// True when `DEBUG DIGEST-VALUE` answers.
    pub async fn has_digest_value(&mut self) -> bool {
        matches!(
            self.nodes[0]
                .call(&["DEBUG", "DIGEST-VALUE", "redis-sync:verify:probe"])
                .await,
            Ok(Frame::Array(_))
        )
    }

    /// Keys in all dbs, every node.
    pub async fn dbsize(&mut self) -> anyhow::Result<u64> {
        let mut n = 0;
        for c in &mut self.nodes {
            for (k, v) in c.info("keyspace").await? {
                if k.starts_with("db") {
                    n += v
                        .split(',')
                        .find_map(|p| p.strip_prefix("keys="))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        Ok(n)
    }

    /// The dbs that hold keys on some node, ascending.
    pub async fn dbs(&mut self) -> anyhow::Result<Vec<u32>> {
        let mut dbs = Vec::new();
        for c in &mut self.nodes {
            for (k, _) in c.info("keyspace").await? {
                if let Some(db) = k.strip_prefix("db").and_then(|d| d.parse::<u32>().ok())
                    && !dbs.contains(&db)
                {
                    dbs.push(db);
                }
            }
        }
        dbs.sort_unstable();
        Ok(dbs)
    }

    /// Fresh cursors for a scan of every node.
    pub fn cursors(&self) -> Cursors {
        vec![Some(b"0".to_vec()); self.nodes.len()]
    }

    async fn select(&mut self, i: usize, db: u32) -> anyhow::Result<()> {
        if self.selected[i] != Some(db) {
            self.nodes[i].ok(&["SELECT", &db.to_string()]).await?;
            self.selected[i] = Some(db);
        }
        Ok(())
    }

    /// The next page of keys of `db`; `None` when every node's scan is complete.
    pub async fn scan_page(
        &mut self,
        db: u32,
        cursors: &mut Cursors,
    ) -> anyhow::Result<Option<Vec<Bytes>>> {
        let Some(i) = cursors.iter().position(Option::is_some) else {
            return Ok(None);
        };
        let cursor = cursors[i].take().unwrap_or_default();
        self.select(i, db).await?;
        let page = self.nodes[i]
            .ok(&[&b"SCAN"[..], &cursor, b"COUNT", b"500"])
            .await?;
        let parts = page.as_slice().context("SCAN reply is not an array")?;
        let next = parts
            .first()
            .and_then(Frame::as_bytes)
            .context("SCAN reply without a cursor")?;
        if next.as_ref() != b"0" {
            cursors[i] = Some(next.to_vec());
        }
        let keys = parts
            .get(1)
            .and_then(Frame::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|k| k.as_bytes().cloned())
            .collect();
        Ok(Some(keys))
    }

    fn node_of(&self, key: &[u8]) -> usize {
        if !self.cluster {
            return 0;
        }
        let slot = hash_slot(key);
        self.slots
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&slot))
            .map_or(0, |(_, _, i)| *i)
    }

    /// Runs one command about `key` in `db` on the node that owns it.
    async fn on_key(&mut self, db: u32, key: &[u8], args: &[&[u8]]) -> anyhow::Result<Frame> {
        let i = self.node_of(key);
        self.select(i, db).await?;
        self.nodes[i].call(args).await
    }

    /// Makes `key` on `self` (the target) what it is on `src`: `DUMP` + `RESTORE … REPLACE`
    /// with the source's remaining TTL, or `DEL` when the source no longer has it.
    pub async fn repair_from(&mut self, src: &mut Side, db: u32, key: &[u8]) -> anyhow::Result<()> {
        let dump = src.on_key(db, key, &[b"DUMP", key]).await?;
        let Some(payload) = dump.as_bytes().cloned() else {
            self.on_key(db, key, &[b"DEL", key]).await?;
            return Ok(());
        };
        let ttl = src
            .on_key(db, key, &[b"PTTL", key])
            .await?
            .as_integer()
            .unwrap_or(0)
            .max(0)
            .to_string();
        let r = self
            .on_key(
                db,
                key,
                &[b"RESTORE", key, ttl.as_bytes(), &payload, b"REPLACE"],
            )
            .await?;
        if let Frame::Error(e) = r {
            anyhow::bail!(
                "RESTORE of {:?} refused: {} (a target older than the source cannot load its \
                 DUMP payloads; re-run the sync instead)",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&e)
            );
        }
        Ok(())
    }

    /// `EXISTS` of each key, pipelined.
    pub async fn exist_many(&mut self, db: u32, keys: &[Bytes]) -> anyhow::Result<Vec<bool>> {
        let r = self
            .batch(db, keys, |k| vec![vec![b(b"EXISTS"), k.clone()]])
            .await?;
        Ok(r.iter()
            .map(|f| f.first().and_then(Frame::as_integer) == Some(1))
            .collect())
    }

    /// True when `key` exists in `db`.
    pub async fn exists(&mut self, db: u32, key: &[u8]) -> anyhow::Result<bool> {
        Ok(self.on_key(db, key, &[b"EXISTS", key]).await?.as_integer() == Some(1))
    }

    /// Runs `cmds(key)` for every key, pipelined per node (one write and one read pass per
    /// node), and returns the replies per key, in key order.
    async fn batch(
        &mut self,
        db: u32,
        keys: &[Bytes],
        cmds: impl Fn(&Bytes) -> Vec<Vec<Bytes>>,
    ) -> anyhow::Result<Vec<Vec<Frame>>> {
        let mut out: Vec<Vec<Frame>> = vec![Vec::new(); keys.len()];
        let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, k) in keys.iter().enumerate() {
            by_node[self.node_of(k)].push(i);
        }
        for (n, idx) in by_node.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            self.select(n, db).await?;
            let per_key: Vec<Vec<Vec<Bytes>>> = idx.iter().map(|&i| cmds(&keys[i])).collect();
            let flat: Vec<Vec<Bytes>> = per_key.iter().flatten().cloned().collect();
            let mut replies = self.nodes[n].pipeline(&flat).await?.into_iter();
            for (&i, c) in idx.iter().zip(&per_key) {
                out[i] = replies.by_ref().take(c.len()).collect();
            }
        }
        Ok(out)
    }
}

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

/// The command that reads a value of type `kind` in a comparable form.
fn value_cmd(kind: &str, by_digest: bool, key: &Bytes) -> Option<Vec<Bytes>> {
    let k = key.clone();
    Some(if by_digest {
        vec![b(b"DEBUG"), b(b"DIGEST-VALUE"), k]
    } else {
        match kind {
            "string" => vec![b(b"GET"), k],
            "list" => vec![b(b"LRANGE"), k, b(b"0"), b(b"-1")],
            "set" => vec![b(b"SMEMBERS"), k],
            "zset" => vec![b(b"ZRANGE"), k, b(b"0"), b(b"-1"), b(b"WITHSCORES")],
            "hash" => vec![b(b"HGETALL"), k],
            "stream" => vec![b(b"XRANGE"), k, b(b"-"), b(b"+")],
            // Module values have no generic read: nothing to compare across versions.
            _ => return None,
        }
    })
}

/// A value reply flattened, sets and hashes sorted, zset scores as numbers.
fn normalise(kind: &str, by_digest: bool, f: &Frame) -> Vec<Bytes> {
    let mut flat = Vec::new();
    flatten(f, &mut flat);
    if by_digest {
        return flat;
    }
    match kind {
        "set" => flat.sort(),
        // Servers print the same double differently (6.x `%.17g`, 7.x the shortest form):
        // compare the numbers.
        "zset" => {
            for score in flat.iter_mut().skip(1).step_by(2) {
                if let Some(x) = std::str::from_utf8(score)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                {
                    *score = Bytes::from(format!("{x:?}"));
                }
            }
        }
        "hash" => {
            let mut pairs: Vec<(Bytes, Bytes)> = flat
                .chunks(2)
                .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
                .collect();
            pairs.sort();
            flat = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
        }
        _ => {}
    }
    flat
}

fn flatten(f: &Frame, out: &mut Vec<Bytes>) {
    match f {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            for i in items {
                flatten(i, out);
            }
        }
        Frame::Map(items) => {
            for (k, v) in items {
                flatten(k, out);
                flatten(v, out);
            }
        }
        other => out.push(match other.as_bytes() {
            Some(b) => b.clone(),
            None => Bytes::from(format!("{other:?}")),
        }),
    }
}

/// Compares a page of keys of `db` (pipelined: type and TTL on both sides, then values);
/// returns the keys that differ. Keys gone from the source meanwhile are not differences.
pub async fn compare_page(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    keys: &[Bytes],
    by_digest: bool,
    ttl_tolerance: i64,
) -> anyhow::Result<Vec<Difference>> {
    let meta = |k: &Bytes| vec![vec![b(b"TYPE"), k.clone()], vec![b(b"PTTL"), k.clone()]];
    let ms = src.batch(db, keys, meta).await?;
    let md = dst.batch(db, keys, meta).await?;
    let kind = |r: &[Frame]| r.first().and_then(text).unwrap_or_default();
    let ttl = |r: &[Frame]| r.get(1).and_then(Frame::as_integer).unwrap_or(-2);
    let mut diffs = Vec::new();
    let mut same = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let diff = |kind: &'static str, detail: String| Difference {
            db,
            key: String::from_utf8_lossy(key).into_owned(),
            kind,
            detail,
            raw: key.clone(),
        };
        let (ts, td) = (kind(&ms[i]), kind(&md[i]));
        if ts == "none" || ts.is_empty() {
            continue;
        }
        if td == "none" {
            diffs.push(diff("missing", format!("{ts} on the source only")));
            continue;
        }
        if ts != td {
            diffs.push(diff("type", format!("source {ts}, target {td}")));
            continue;
        }
        let (ps, pd) = (ttl(&ms[i]), ttl(&md[i]));
        if (ps < 0) != (pd < 0) || (ps >= 0 && (ps - pd).abs() > ttl_tolerance) {
            let show = |t: i64| {
                if t < 0 {
                    "none".to_string()
                } else {
                    format!("{t} ms")
                }
            };
            diffs.push(diff(
                "ttl",
                format!("source TTL {}, target TTL {}", show(ps), show(pd)),
            ));
            continue;
        }
        if value_cmd(&ts, by_digest, key).is_some() {
            same.push((key.clone(), ts));
        }
    }
    let keys2: Vec<Bytes> = same.iter().map(|(k, _)| k.clone()).collect();
    let kinds: std::collections::HashMap<Bytes, String> = same.into_iter().collect();
    let cmd = |k: &Bytes| {
        kinds
            .get(k)
            .and_then(|t| value_cmd(t, by_digest, k))
            .into_iter()
            .collect()
    };
    let vs = src.batch(db, &keys2, cmd).await?;
    let vd = dst.batch(db, &keys2, cmd).await?;
    for (i, key) in keys2.iter().enumerate() {
        let t = kinds.get(key).map_or("", String::as_str);
        let (a, bb) = match (vs[i].first(), vd[i].first()) {
            (Some(a), Some(bb)) => (a, bb),
            _ => continue,
        };
        if normalise(t, by_digest, a) != normalise(t, by_digest, bb) {
            diffs.push(Difference {
                db,
                key: String::from_utf8_lossy(key).into_owned(),
                kind: "value",
                detail: format!("{t} values differ"),
                raw: key.clone(),
            });
        }
    }
    Ok(diffs)
}
