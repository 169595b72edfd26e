//! The comparison of a page of keys on both sides: type, TTL, value, then what the value does
//! not show (hash field TTLs, stream metadata and consumer groups).

use std::collections::HashMap;

use bytes::Bytes;
use redis_sync_resp::Frame;

use super::Difference;
use super::side::{Side, b};
use super::{field_ttl, stream};
use crate::client::text;

/// The types whose values every server can read with a core command; any other `TYPE` reply
/// is a module type (`ReJSON-RL`, `MBbloom--`, Redis 8's `vectorset`, …).
const CORE_TYPES: [&str; 6] = ["string", "list", "set", "zset", "hash", "stream"];

/// How keys are compared, decided once from what both sides support.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Values by `DEBUG DIGEST-VALUE` (same version on both sides, and both allow it).
    pub by_digest: bool,
    /// Largest TTL difference (keys and hash fields), in milliseconds, that counts as equal.
    pub ttl_tolerance: i64,
    /// `HPEXPIRETIME` exists on the source, on the target.
    pub field_ttls: (bool, bool),
    /// What of a stream's groups is compared.
    pub streams: stream::Rules,
}

impl Plan {
    /// The plan for `src` and `dst`.
    pub async fn new(src: &mut Side, dst: &mut Side, ttl_tolerance: i64) -> Plan {
        let by_digest =
            src.same_version(dst) && src.has_digest_value().await && dst.has_digest_value().await;
        Plan {
            by_digest,
            ttl_tolerance,
            field_ttls: (src.has_field_ttls(), dst.has_field_ttls()),
            streams: stream::Rules::new(src, dst),
        }
    }

    /// True when either side may hold hash field TTLs.
    pub fn any_field_ttls(&self) -> bool {
        self.field_ttls.0 || self.field_ttls.1
    }
}

/// How the value of a type is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueBy {
    /// `DEBUG DIGEST-VALUE` on both sides.
    Digest,
    /// Read with a core command and normalised (`GET`, `LRANGE`, …).
    Read,
    /// `DUMP` payloads, for module types (see [`modules_equal`]).
    Dump,
}

/// How values of type `kind` are compared under `plan`; `None`: not at all.
fn value_by(kind: &str, plan: &Plan) -> Option<ValueBy> {
    Some(match kind {
        // Redis's DIGEST-VALUE changes when a field has a TTL (not with the time: measured on
        // 7.4.1 and 8.6.3), Valkey's does not: hashes are read, and their field TTLs compared
        // apart (by time, within --ttl-tolerance), wherever a side has field expiration.
        "hash" if plan.any_field_ttls() => ValueBy::Read,
        // A vector set's DUMP is not canonical (its HNSW graph depends on the insertion
        // order: a native replica's DUMP differs from its master's, measured on 8.6.3), but
        // it has a digest callback: comparable by digest only.
        "vectorset" if plan.by_digest => ValueBy::Digest,
        "vectorset" => return None,
        k if !CORE_TYPES.contains(&k) => ValueBy::Dump,
        _ if plan.by_digest => ValueBy::Digest,
        _ => ValueBy::Read,
    })
}

/// The command that reads a value of type `kind` in a comparable form.
fn value_cmd(kind: &str, by: ValueBy, key: &Bytes) -> Option<Vec<Bytes>> {
    let k = key.clone();
    Some(match by {
        ValueBy::Digest => vec![b(b"DEBUG"), b(b"DIGEST-VALUE"), k],
        ValueBy::Dump => vec![b(b"DUMP"), k],
        ValueBy::Read => match kind {
            "string" => vec![b(b"GET"), k],
            "list" => vec![b(b"LRANGE"), k, b(b"0"), b(b"-1")],
            "set" => vec![b(b"SMEMBERS"), k],
            "zset" => vec![b(b"ZRANGE"), k, b(b"0"), b(b"-1"), b(b"WITHSCORES")],
            "hash" => vec![b(b"HGETALL"), k],
            "stream" => vec![b(b"XRANGE"), k, b(b"-"), b(b"+")],
            _ => return None,
        },
    })
}

/// A value reply flattened, sets and hashes sorted, zset scores as numbers.
fn normalise(kind: &str, by: ValueBy, f: &Frame) -> Vec<Bytes> {
    let mut flat = Vec::new();
    flatten(f, &mut flat);
    if by != ValueBy::Read {
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

/// Bytes at the end of a `DUMP` payload that are not the value: the RDB version (2) and the
/// CRC-64 (8), which differ between server versions holding the same value.
const DUMP_FOOTER: usize = 10;
/// Bytes at the start of a module value's serialisation that name its encoding: the RDB type
/// (`RDB_TYPE_MODULE_2`), then the 64-bit module ID (`0x81` and 8 bytes: type name and
/// encoding version).
const MODULE_HEADER: usize = 10;

/// Compares two module values by their `DUMP` payloads, without the footer; `None` when they
/// are not comparable (gone meanwhile, or written by different encoding versions of the
/// module, which may serialise one value differently).
fn modules_equal(a: &Frame, b: &Frame) -> Option<bool> {
    let (a, b) = (a.as_bytes()?, b.as_bytes()?);
    let (a, b) = (
        &a[..a.len().saturating_sub(DUMP_FOOTER)],
        &b[..b.len().saturating_sub(DUMP_FOOTER)],
    );
    if a.get(..MODULE_HEADER) != b.get(..MODULE_HEADER) {
        return None;
    }
    Some(a == b)
}

/// Compares a page of keys of `db` (pipelined: type and TTL on both sides, then values, then
/// hash field TTLs and streams' groups); returns the keys that differ, one difference each.
/// Keys gone from the source meanwhile are not differences.
pub async fn compare_page(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    keys: &[Bytes],
    plan: &Plan,
) -> anyhow::Result<Vec<Difference>> {
    let (mut diffs, same) = compare_meta(src, dst, db, keys, plan).await?;
    diffs.extend(compare_values(src, dst, db, &same, plan).await?);
    Ok(diffs)
}

/// Compares the type and TTL of a page of keys of `db`; returns the differences and the keys
/// whose type and TTL are the same, with their type.
pub async fn compare_meta(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    keys: &[Bytes],
    plan: &Plan,
) -> anyhow::Result<(Vec<Difference>, Vec<(Bytes, String)>)> {
    let meta = |k: &Bytes| vec![vec![b(b"TYPE"), k.clone()], vec![b(b"PTTL"), k.clone()]];
    let ms = src.batch(db, keys, meta).await?;
    let md = dst.batch(db, keys, meta).await?;
    let kind = |r: &[Frame]| r.first().and_then(text).unwrap_or_default();
    let ttl = |r: &[Frame]| r.get(1).and_then(Frame::as_integer).unwrap_or(-2);
    let mut diffs = Vec::new();
    let mut same = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (ts, td) = (kind(&ms[i]), kind(&md[i]));
        if ts == "none" || ts.is_empty() {
            continue;
        }
        if td == "none" {
            diffs.push(Difference::new(
                db,
                key,
                "missing",
                format!("{ts} on the source only"),
            ));
            continue;
        }
        if ts != td {
            diffs.push(Difference::new(
                db,
                key,
                "type",
                format!("source {ts}, target {td}"),
            ));
            continue;
        }
        let (ps, pd) = (ttl(&ms[i]), ttl(&md[i]));
        if (ps < 0) != (pd < 0) || (ps >= 0 && (ps - pd).abs() > plan.ttl_tolerance) {
            let show = |t: i64| {
                if t < 0 {
                    "none".to_string()
                } else {
                    format!("{t} ms")
                }
            };
            diffs.push(Difference::new(
                db,
                key,
                "ttl",
                format!("source TTL {}, target TTL {}", show(ps), show(pd)),
            ));
            continue;
        }
        same.push((key.clone(), ts));
    }
    Ok((diffs, same))
}

/// Compares the values of `keys` (`(key, type)`, of the same type and TTL on both sides) in
/// `db`, then what the values do not show: hash field TTLs, streams' metadata and groups.
pub async fn compare_values(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    keys: &[(Bytes, String)],
    plan: &Plan,
) -> anyhow::Result<Vec<Difference>> {
    let mut same: HashMap<Bytes, (String, ValueBy)> = HashMap::new();
    let mut order = Vec::new();
    for (key, t) in keys {
        if let Some(by) = value_by(t, plan) {
            order.push(key.clone());
            same.insert(key.clone(), (t.clone(), by));
        }
    }
    let mut diffs = Vec::new();
    let cmd = |k: &Bytes| {
        same.get(k)
            .and_then(|(t, by)| value_cmd(t, *by, k))
            .into_iter()
            .collect()
    };
    let vs = src.batch(db, &order, cmd).await?;
    let vd = dst.batch(db, &order, cmd).await?;
    let mut hashes = Vec::new();
    let mut streams = Vec::new();
    for (i, key) in order.iter().enumerate() {
        let Some((t, by)) = same.get(key) else {
            continue;
        };
        let (Some(a), Some(bb)) = (vs[i].first(), vd[i].first()) else {
            continue;
        };
        let equal = match by {
            ValueBy::Dump => modules_equal(a, bb).unwrap_or_else(|| {
                tracing::debug!(
                    "{t} value of {:?} not compared: gone, or of another encoding version of \
                     the module on each side",
                    String::from_utf8_lossy(key)
                );
                true
            }),
            _ => normalise(t, *by, a) == normalise(t, *by, bb),
        };
        if !equal {
            let how = if *by == ValueBy::Dump {
                " (DUMP payloads)"
            } else {
                ""
            };
            diffs.push(Difference::new(
                db,
                key,
                "value",
                format!("{t} values differ{how}"),
            ));
        } else if t == "hash" && plan.any_field_ttls() {
            let fields = normalise(t, *by, a).into_iter().step_by(2).collect();
            hashes.push((key.clone(), fields));
        } else if t == "stream" {
            streams.push(key.clone());
        }
    }
    diffs.extend(field_ttl::compare(src, dst, db, &hashes, plan).await?);
    diffs.extend(stream::compare(src, dst, db, &streams, &plan.streams).await?);
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(header: u8, body: &[u8], rdb_version: u8) -> Frame {
        let mut p = vec![7, 0x81, header, 2, 3, 4, 5, 6, 7, 8];
        p.extend_from_slice(body);
        p.extend_from_slice(&[rdb_version, 0]);
        p.extend_from_slice(&[rdb_version; 8]); // a CRC that differs with the version
        Frame::BulkString(Bytes::from(p))
    }

    #[test]
    fn module_values_compare_without_the_footer_and_only_within_one_encoding() {
        assert_eq!(
            modules_equal(&dump(1, b"abc", 11), &dump(1, b"abc", 12)),
            Some(true)
        );
        assert_eq!(
            modules_equal(&dump(1, b"abc", 11), &dump(1, b"abd", 11)),
            Some(false)
        );
        assert_eq!(
            modules_equal(&dump(1, b"abc", 11), &dump(2, b"abc", 11)),
            None
        );
        assert_eq!(
            modules_equal(&dump(1, b"abc", 11), &Frame::NullBulkString),
            None
        );
    }
}
