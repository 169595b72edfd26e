//! After equal `DEBUG DIGEST`s: what the digest cannot see, compared key by key (see
//! [`super::keys`]).
//!
//! The digest hashes every key, its type and value, but not (measured on Redis 5.0.6, 7.0.15,
//! 7.4.1, 8.6.3, Valkey 9.1.2 and Redis Stack 7.4.1):
//! - when a key expires, only whether it does (`PEXPIRE k 100000` and `PEXPIRE k 900000` give
//!   one digest): in each db whose `INFO keyspace` counts keys with a TTL (`expires=`), every
//!   key's TTL is compared (one `SCAN` pass, `TYPE` and `PTTL` pipelined);
//! - when a hash field expires: Redis's digest changes only when a field gets or loses a TTL,
//!   Valkey's not even then. In each db where either side counts hashes with field TTLs
//!   (`subexpiry=` on Redis, `keys_with_volatile_items=` on Valkey), hashes are compared, found
//!   with `SCAN … TYPE hash`;
//! - a stream's metadata and consumer groups: every stream is compared, found with
//!   `SCAN … TYPE stream` per db (the server filters, so a keyspace without streams costs one
//!   cheap pass);
//! - the values of modules without a digest callback (RedisJSON, RedisBloom, RedisTimeSeries):
//!   when the source has any module loaded but Redis 8's `vectorset` (which has one), every
//!   key's `TYPE` is read (a module type's name is not known in advance) and module values are
//!   compared by `DUMP`.
//!
//! Redis 5 cannot filter `SCAN` by type: there every key's `TYPE` is read.

use bytes::Bytes;

use super::Difference;
use super::keys::{Plan, compare_meta, compare_page, compare_values};
use super::side::Side;

/// What the pass compared, and what differs.
#[derive(Debug, Default)]
pub struct Pass {
    /// Keys whose TTL was compared.
    pub ttls: u64,
    /// Streams compared (metadata and groups).
    pub streams: u64,
    /// Hashes compared (field TTLs).
    pub hashes: u64,
    /// Module values compared by `DUMP`.
    pub modules: u64,
    /// What differs.
    pub diffs: Vec<Difference>,
}

impl Pass {
    /// What was compared after the digest, for the report's method.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} streams' groups", self.streams)];
        if self.ttls > 0 {
            parts.push(format!("{} keys' TTLs", self.ttls));
        }
        if self.hashes > 0 {
            parts.push(format!("{} hashes' field TTLs", self.hashes));
        }
        if self.modules > 0 {
            parts.push(format!("{} module values by DUMP", self.modules));
        }
        format!(
            "then key by key what the digest does not cover: {}",
            parts.join(", ")
        )
    }
}

/// Compares what the digests cannot see. `src` and `dst` hold the same keys, of the same types,
/// with a TTL or not alike (their digests are equal), so the source's keys are the ones looked
/// at.
pub async fn compare(src: &mut Side, dst: &mut Side, plan: &Plan) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    let field_ttl_dbs = if plan.any_field_ttls() {
        let mut dbs = src.field_ttl_dbs().await?;
        dbs.extend(dst.field_ttl_dbs().await?);
        dbs
    } else {
        Vec::new()
    };
    let expiring = src.expiring_dbs().await?;
    let modules = src.has_undigested_modules().await;
    for db in src.dbs().await? {
        let hashes = field_ttl_dbs.contains(&db);
        let ttls = expiring.contains(&db);
        if ttls || modules || !src.has_scan_type() {
            let mut cursors = src.cursors();
            while let Some(keys) = src.scan_page(db, &mut cursors, None).await? {
                let keys = own(keys);
                let (diffs, typed) = if ttls {
                    pass.ttls += keys.len() as u64;
                    compare_meta(src, dst, db, &keys, plan).await?
                } else {
                    // Only the types are needed: the source's.
                    (Vec::new(), src.types(db, &keys).await?)
                };
                pass.diffs.extend(diffs);
                let wanted: Vec<(Bytes, String)> = typed
                    .into_iter()
                    .filter(|(_, t)| match t.as_str() {
                        "stream" => true,
                        "hash" => hashes,
                        "string" | "list" | "set" | "zset" | "vectorset" | "none" | "" => false,
                        _ => modules,
                    })
                    .collect();
                for (_, t) in &wanted {
                    match t.as_str() {
                        "stream" => pass.streams += 1,
                        "hash" => pass.hashes += 1,
                        _ => pass.modules += 1,
                    }
                }
                pass.diffs
                    .extend(compare_values(src, dst, db, &wanted, plan).await?);
            }
            continue;
        }
        let kinds: &[&str] = if hashes {
            &["stream", "hash"]
        } else {
            &["stream"]
        };
        for kind in kinds {
            let mut cursors = src.cursors();
            while let Some(keys) = src.scan_page(db, &mut cursors, Some(kind)).await? {
                let keys = own(keys);
                if *kind == "stream" {
                    pass.streams += keys.len() as u64;
                } else {
                    pass.hashes += keys.len() as u64;
                }
                pass.diffs
                    .extend(compare_page(src, dst, db, &keys, plan).await?);
            }
        }
    }
    Ok(pass)
}

/// The keys that are data (not redis-sync's own).
fn own(mut keys: Vec<Bytes>) -> Vec<Bytes> {
    keys.retain(|k| !super::own_key(k));
    keys
}
