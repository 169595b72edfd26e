//! One side of a comparison: a standalone server or the masters of a cluster, with the reads
//! `verify` needs (key lists by `SCAN`, type, TTL, value) routed to the right node and db, and
//! what its server version can answer.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use redis_sync_commands::hash_slot;
use redis_sync_resp::Frame;

use crate::client::{self, Client, field, server_version, text};
use crate::lag::SourcePosition;
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
    /// `redis 7.4.1`, `valkey 9.1.2`: equal strings mean value digests are comparable.
    version: String,
    /// `redis` or `valkey`, and the version as numbers.
    flavor: &'static str,
    release: (u32, u32, u32),
    /// `HPEXPIRETIME` exists (hash field expiration: Redis 7.4+, Valkey 9.0+).
    field_ttls: bool,
    endpoint: Endpoint,
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
        let (flavor, release) = server_version(&info);
        // `COMMAND INFO` answers a nil for an unknown command, on every version (2.8.13+).
        let field_ttls = matches!(
            first
                .call(&["COMMAND", "INFO", "HPEXPIRETIME"])
                .await?
                .as_slice(),
            Some([Frame::Array(_)])
        );
        let cl = first.info("cluster").await?;
        let cluster = field(&cl, "cluster_enabled") == Some("1");
        if !cluster {
            return Ok(Side {
                nodes: vec![first],
                selected: vec![ep.db],
                slots: Vec::new(),
                cluster,
                version,
                flavor,
                release,
                field_ttls,
                endpoint: ep.clone(),
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
            flavor,
            release,
            field_ttls,
            endpoint: ep.clone(),
        })
    }

    /// True when both run the same server version (value digests are then comparable).
    pub fn same_version(&self, other: &Side) -> bool {
        self.version == other.version
    }

    /// The address given for this side.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn redis_before(&self, major: u32, minor: u32) -> bool {
        self.flavor == "redis" && (self.release.0, self.release.1) < (major, minor)
    }

    /// True when the server has hash field expiration (`HPEXPIRETIME` answers).
    pub fn has_field_ttls(&self) -> bool {
        self.field_ttls
    }

    /// True when `XINFO STREAM key FULL` exists (6.0+; Redis 5 has only the summaries).
    pub fn has_xinfo_full(&self) -> bool {
        !self.redis_before(6, 0)
    }

    /// True when `SCAN … TYPE` exists (6.0+).
    pub fn has_scan_type(&self) -> bool {
        !self.redis_before(6, 0)
    }

    /// True when the server's replicas keep a consumer group's `entries-read` (and so its
    /// `lag`): Redis before 7.4 propagates `XREADGROUP` as `XCLAIM … LASTID` alone (7.4 adds
    /// `XGROUP SETID … ENTRIESREAD`), so a native replica of 7.0.15 or 7.2.4 shows another
    /// `entries-read` than its master (measured); Valkey 8.0+ keeps it.
    pub fn replicates_entries_read(&self) -> bool {
        !self.redis_before(7, 4)
    }

    /// True when modules whose values `DEBUG DIGEST` cannot see may be loaded: any module but
    /// Redis 8's built-in `vectorset` (it has a digest callback; RedisJSON, RedisBloom and
    /// RedisTimeSeries have none: their values all digest to one constant, measured on Redis
    /// Stack 7.4.1). A refused `MODULE LIST` counts as yes.
    pub async fn has_undigested_modules(&mut self) -> bool {
        let Ok(reply) = self.nodes[0].call(&["MODULE", "LIST"]).await else {
            return true;
        };
        let Some(modules) = reply.as_slice() else {
            return true;
        };
        modules.iter().any(|m| {
            let fields: Vec<Option<String>> = match m {
                Frame::Map(items) => items.iter().flat_map(|(k, v)| [text(k), text(v)]).collect(),
                other => other.as_slice().unwrap_or(&[]).iter().map(text).collect(),
            };
            let name = fields
                .chunks(2)
                .find(|p| p.first().and_then(Option::as_deref) == Some("name"))
                .and_then(|p| p.get(1).cloned().flatten());
            name.as_deref() != Some("vectorset")
        })
    }

    /// The replication position of a standalone server (`None` for a cluster: each master
    /// has its own stream).
    pub async fn position(&mut self) -> anyhow::Result<Option<SourcePosition>> {
        if self.cluster {
            return Ok(None);
        }
        crate::lag::source_position(&mut self.nodes[0])
            .await
            .map(Some)
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

    /// The dbs where some node counts keys with field TTLs (`subexpiry` on Redis 7.4+,
    /// `keys_with_volatile_items` on Valkey 9), ascending.
    pub async fn field_ttl_dbs(&mut self) -> anyhow::Result<Vec<u32>> {
        self.dbs_counting(&["subexpiry", "keys_with_volatile_items"])
            .await
    }

    /// The dbs where some node counts keys with a TTL (`expires`), ascending.
    pub async fn expiring_dbs(&mut self) -> anyhow::Result<Vec<u32>> {
        self.dbs_counting(&["expires"]).await
    }

    /// The dbs whose `INFO keyspace` line has one of `counters` above 0 on some node.
    async fn dbs_counting(&mut self, counters: &[&str]) -> anyhow::Result<Vec<u32>> {
        let mut dbs = Vec::new();
        for c in &mut self.nodes {
            for (k, v) in c.info("keyspace").await? {
                let Some(db) = k.strip_prefix("db").and_then(|d| d.parse::<u32>().ok()) else {
                    continue;
                };
                let counted = v.split(',').any(|p| {
                    p.split_once('=').is_some_and(|(name, n)| {
                        counters.contains(&name) && n.parse::<u64>().is_ok_and(|n| n > 0)
                    })
                });
                if counted && !dbs.contains(&db) {
                    dbs.push(db);
                }
            }
        }
        dbs.sort_unstable();
        Ok(dbs)
    }

    /// The type of each key (`TYPE`, pipelined).
    pub async fn types(&mut self, db: u32, keys: &[Bytes]) -> anyhow::Result<Vec<(Bytes, String)>> {
        let r = self
            .batch(db, keys, |k| vec![vec![b(b"TYPE"), k.clone()]])
            .await?;
        Ok(keys
            .iter()
            .zip(r)
            .map(|(k, t)| (k.clone(), t.first().and_then(text).unwrap_or_default()))
            .collect())
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

    /// The next page of keys of `db` (of type `kind` only, when given: the server filters with
    /// `SCAN … TYPE`, which the caller checks with [`Side::has_scan_type`]); `None` when every
    /// node's scan is complete. A page may be empty.
    pub async fn scan_page(
        &mut self,
        db: u32,
        cursors: &mut Cursors,
        kind: Option<&str>,
    ) -> anyhow::Result<Option<Vec<Bytes>>> {
        let Some(i) = cursors.iter().position(Option::is_some) else {
            return Ok(None);
        };
        let cursor = cursors[i].take().unwrap_or_default();
        self.select(i, db).await?;
        let mut cmd: Vec<&[u8]> = vec![b"SCAN", &cursor, b"COUNT", b"500"];
        if let Some(kind) = kind {
            cmd.extend([&b"TYPE"[..], kind.as_bytes()]);
        }
        let page = self.nodes[i].ok(&cmd).await?;
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
    pub(super) async fn on_key(
        &mut self,
        db: u32,
        key: &[u8],
        args: &[&[u8]],
    ) -> anyhow::Result<Frame> {
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
    pub(super) async fn batch(
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

/// An owned argument.
pub(super) fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}
