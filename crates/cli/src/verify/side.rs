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
        let ttl = src.pttl(db, key).await?.max(0).to_string();
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

    /// True when `key` exists in `db`.
    pub async fn exists(&mut self, db: u32, key: &[u8]) -> anyhow::Result<bool> {
        Ok(self.on_key(db, key, &[b"EXISTS", key]).await?.as_integer() == Some(1))
    }

    async fn type_of(&mut self, db: u32, key: &[u8]) -> anyhow::Result<String> {
        Ok(text(&self.on_key(db, key, &[b"TYPE", key]).await?).unwrap_or_default())
    }

    async fn pttl(&mut self, db: u32, key: &[u8]) -> anyhow::Result<i64> {
        Ok(self
            .on_key(db, key, &[b"PTTL", key])
            .await?
            .as_integer()
            .unwrap_or(-2))
    }

    /// The value in a comparable form: by digest, or read and flattened (sets and hashes
    /// sorted).
    async fn value(
        &mut self,
        db: u32,
        key: &[u8],
        kind: &str,
        by_digest: bool,
    ) -> anyhow::Result<Option<Vec<Bytes>>> {
        let f = if by_digest {
            self.on_key(db, key, &[b"DEBUG", b"DIGEST-VALUE", key])
                .await?
        } else {
            match kind {
                "string" => self.on_key(db, key, &[b"GET", key]).await?,
                "list" => self.on_key(db, key, &[b"LRANGE", key, b"0", b"-1"]).await?,
                "set" => self.on_key(db, key, &[b"SMEMBERS", key]).await?,
                "zset" => {
                    self.on_key(db, key, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])
                        .await?
                }
                "hash" => self.on_key(db, key, &[b"HGETALL", key]).await?,
                "stream" => self.on_key(db, key, &[b"XRANGE", key, b"-", b"+"]).await?,
                // Module values have no generic read: nothing to compare across versions.
                _ => return Ok(None),
            }
        };
        let mut flat = Vec::new();
        flatten(&f, &mut flat);
        match kind {
            "set" if !by_digest => flat.sort(),
            // Servers print the same double differently (6.x `%.17g`, 7.x shortest form):
            // compare the numbers.
            "zset" if !by_digest => {
                for score in flat.iter_mut().skip(1).step_by(2) {
                    if let Some(x) = std::str::from_utf8(score)
                        .ok()
                        .and_then(|t| t.parse::<f64>().ok())
                    {
                        *score = Bytes::from(format!("{x:?}"));
                    }
                }
            }
            "hash" if !by_digest => {
                let mut pairs: Vec<(Bytes, Bytes)> = flat
                    .chunks(2)
                    .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
                    .collect();
                pairs.sort();
                flat = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
            }
            _ => {}
        }
        Ok(Some(flat))
    }
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

/// Compares one key; `None` when equal (or gone from the source meanwhile).
pub async fn compare_key(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    key: &Bytes,
    by_digest: bool,
    ttl_tolerance: i64,
) -> anyhow::Result<Option<Difference>> {
    let diff = |kind: &'static str, detail: String| Difference {
        db,
        key: String::from_utf8_lossy(key).into_owned(),
        kind,
        detail,
        raw: key.clone(),
    };
    let ts = src.type_of(db, key).await?;
    if ts == "none" {
        return Ok(None);
    }
    let td = dst.type_of(db, key).await?;
    if td == "none" {
        return Ok(Some(diff("missing", format!("{ts} on the source only"))));
    }
    if ts != td {
        return Ok(Some(diff("type", format!("source {ts}, target {td}"))));
    }
    let (ps, pd) = (src.pttl(db, key).await?, dst.pttl(db, key).await?);
    if (ps < 0) != (pd < 0) || (ps >= 0 && (ps - pd).abs() > ttl_tolerance) {
        let show = |t: i64| {
            if t < 0 {
                "none".to_string()
            } else {
                format!("{t} ms")
            }
        };
        return Ok(Some(diff(
            "ttl",
            format!("source TTL {}, target TTL {}", show(ps), show(pd)),
        )));
    }
    let (vs, vd) = (
        src.value(db, key, &ts, by_digest).await?,
        dst.value(db, key, &td, by_digest).await?,
    );
    if vs != vd {
        return Ok(Some(diff("value", format!("{ts} values differ"))));
    }
    Ok(None)
}
