//! What a stream holds besides its entries: its own metadata (last generated ID, entries added,
//! maximal deleted ID, first recorded ID) and its consumer groups, consumers and pending entries
//! (PEL). `DEBUG DIGEST` and `DEBUG DIGEST-VALUE` hash the entries alone (measured: an `XSETID`,
//! an `XACK` or a new consumer leave them unchanged), and `XRANGE` shows the entries alone, so
//! this is compared apart, for every stream whose entries are equal.
//!
//! Read with `XINFO STREAM key FULL COUNT n` (6.0+), `n` large enough for the longest PEL; on
//! Redis 5 (no `FULL`) from `XINFO STREAM`, `XINFO GROUPS`, `XINFO CONSUMERS` and `XPENDING`.
//! Both sides are read the same way. A native replica is the oracle of what a faithful copy
//! keeps; left out are what it does not:
//! - consumers' `seen-time` and `active-time` (and Redis 5's relative `idle`, `inactive`): a
//!   replica stamps them with its own clock when it applies `XCLAIM` or `XGROUP
//!   CREATECONSUMER` (1–4 ms off on 6.2.14, 7.2.4, 8.0.6 and Valkey 9.0.0, measured);
//! - a group's `entries-read` and `lag` when either side is Redis before 7.4, whose replicas
//!   do not keep them (see [`Side::replicates_entries_read`]);
//! - `radix-tree-keys` and `radix-tree-nodes`: memory layout, which depends on the server's
//!   `stream-node-max-*` settings and on the stream's history, not on its data.
//!
//! Everything else is compared exactly, pending entries' delivery times included: replicas
//! (`XCLAIM … TIME`) and `DUMP`/`RESTORE` keep them to the millisecond. A field one side's
//! version does not report at all (`active-time` before 7.2, the 8.6 `idmp-*` fields) is not
//! compared.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use redis_sync_resp::Frame;

use super::Difference;
use super::side::{Side, b};
use crate::client::text;

/// Differences named in a difference's detail.
const SHOWN: usize = 2;

/// Which fields are compared, and how the sides are read, decided from both versions.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Both sides answer `XINFO STREAM … FULL`.
    full: bool,
    /// Fields never compared.
    ignored: Vec<&'static str>,
}

impl Rules {
    /// The rules for `src` against `dst`.
    pub fn new(src: &Side, dst: &Side) -> Rules {
        let mut ignored = vec![
            "radix-tree-keys",
            "radix-tree-nodes",
            "seen-time",
            "active-time",
            "idle",
            "inactive",
            // Entries: compared as the value.
            "entries",
            "first-entry",
            "last-entry",
        ];
        if !(src.replicates_entries_read() && dst.replicates_entries_read()) {
            ignored.extend(["entries-read", "lag"]);
        }
        Rules {
            full: src.has_xinfo_full() && dst.has_xinfo_full(),
            ignored,
        }
    }
}

/// Where a field sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Stream,
    Group,
    Consumer,
}

/// One side's stream, besides its entries, as `path → value`: an entity (a group, a consumer,
/// a pending entry) or a field of one, in the order the server reports them (groups, consumers
/// and pending entries sorted by name or ID).
#[derive(Debug, Default)]
struct View {
    items: Vec<(String, Item)>,
    /// Where each path is in `items`.
    index: HashMap<String, usize>,
    /// The fields this side's version reports, by level.
    fields: BTreeSet<(Level, String)>,
}

#[derive(Debug)]
struct Item {
    value: String,
    /// `Some` for a field (which the other side's version might not report).
    field: Option<(Level, String)>,
}

impl View {
    fn push(&mut self, path: String, item: Item) {
        self.index.insert(path.clone(), self.items.len());
        self.items.push((path, item));
    }

    fn get(&self, path: &str) -> Option<&Item> {
        self.index
            .get(path)
            .and_then(|&i| self.items.get(i))
            .map(|(_, item)| item)
    }

    fn entity(&mut self, path: String, value: String) {
        self.push(path, Item { value, field: None });
    }

    fn field(&mut self, level: Level, owner: &str, name: &str, value: String) {
        self.fields.insert((level, name.to_string()));
        self.push(
            format!("{owner} {name}"),
            Item {
                value,
                field: Some((level, name.to_string())),
            },
        );
    }
}

/// The `(name, value)` pairs of a map reply (RESP2 flat array or RESP3 map).
fn pairs(f: &Frame) -> Vec<(String, &Frame)> {
    match f {
        Frame::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        other => other
            .as_slice()
            .unwrap_or(&[])
            .chunks(2)
            .filter_map(|p| Some((text(p.first()?)?, p.get(1)?)))
            .collect(),
    }
}

/// A scalar reply as text (`nil` for a null).
fn scalar(f: &Frame) -> String {
    if f.is_null() {
        return "nil".into();
    }
    match f.as_bytes() {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => text(f).unwrap_or_else(|| format!("{f:?}")),
    }
}

/// The name field of a map reply, quoted.
fn name_of(f: &Frame) -> String {
    let name = pairs(f)
        .into_iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| scalar(v))
        .unwrap_or_default();
    format!("{name:?}")
}

impl Rules {
    fn ignored(&self, field: &str) -> bool {
        self.ignored.contains(&field)
    }

    /// The view of an `XINFO STREAM key FULL` reply.
    fn full_view(&self, f: &Frame) -> View {
        let mut v = View::default();
        for (k, val) in pairs(f) {
            if self.ignored(&k) {
                continue;
            }
            if k != "groups" {
                v.field(Level::Stream, "stream", &k, scalar(val));
                continue;
            }
            for g in val.as_slice().unwrap_or(&[]) {
                let gp = format!("group {}", name_of(g));
                v.entity(gp.clone(), "present".into());
                for (k, val) in pairs(g) {
                    match k.as_str() {
                        "name" => {}
                        "pending" => {
                            // [id, consumer, delivery time, delivery count]
                            for e in val.as_slice().unwrap_or(&[]) {
                                let e: Vec<String> =
                                    e.as_slice().unwrap_or(&[]).iter().map(scalar).collect();
                                let (Some(id), Some(c), Some(t), Some(n)) =
                                    (e.first(), e.get(1), e.get(2), e.get(3))
                                else {
                                    continue;
                                };
                                v.entity(
                                    format!("{gp} pending entry {id}"),
                                    format!(
                                        "consumer {c:?}, delivered at {t} (Unix ms), {n} deliveries"
                                    ),
                                );
                            }
                        }
                        "consumers" => {
                            for c in val.as_slice().unwrap_or(&[]) {
                                let cp = format!("{gp} consumer {}", name_of(c));
                                v.entity(cp.clone(), "present".into());
                                for (k, val) in pairs(c) {
                                    // A consumer's own PEL repeats the group's, which names
                                    // each entry's consumer.
                                    if k != "name" && k != "pending" && !self.ignored(&k) {
                                        v.field(Level::Consumer, &cp, &k, scalar(val));
                                    }
                                }
                            }
                        }
                        k if self.ignored(k) => {}
                        k => v.field(Level::Group, &gp, k, scalar(val)),
                    }
                }
            }
        }
        v
    }

    /// The view of a stream read without `FULL` (Redis 5): `None` when the key is gone.
    async fn summary_view(
        &self,
        side: &mut Side,
        db: u32,
        key: &[u8],
    ) -> anyhow::Result<Option<View>> {
        let mut v = View::default();
        let info = side.on_key(db, key, &[b"XINFO", b"STREAM", key]).await?;
        if info.is_error() {
            return Ok(None);
        }
        for (k, val) in pairs(&info) {
            if !self.ignored(&k) {
                v.field(Level::Stream, "stream", &k, scalar(val));
            }
        }
        let groups = side.on_key(db, key, &[b"XINFO", b"GROUPS", key]).await?;
        for g in groups.as_slice().unwrap_or(&[]) {
            let name = pairs(g)
                .into_iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, n)| n.as_bytes().cloned())
                .unwrap_or_default();
            let gp = format!("group {:?}", String::from_utf8_lossy(&name));
            v.entity(gp.clone(), "present".into());
            let mut pending = 0;
            for (k, val) in pairs(g) {
                if k == "pending" {
                    pending = val.as_integer().unwrap_or(0);
                }
                if k != "name" && !self.ignored(&k) {
                    v.field(Level::Group, &gp, &k, scalar(val));
                }
            }
            let consumers = side
                .on_key(db, key, &[b"XINFO", b"CONSUMERS", key, &name])
                .await?;
            for c in consumers.as_slice().unwrap_or(&[]) {
                let cp = format!("{gp} consumer {}", name_of(c));
                v.entity(cp.clone(), "present".into());
                for (k, val) in pairs(c) {
                    if k != "name" && !self.ignored(&k) {
                        v.field(Level::Consumer, &cp, &k, scalar(val));
                    }
                }
            }
            let count = pending.max(1).to_string();
            let pel = side
                .on_key(
                    db,
                    key,
                    &[b"XPENDING", key, &name, b"-", b"+", count.as_bytes()],
                )
                .await?;
            // [id, consumer, idle ms (relative to now: left out), delivery count]
            for e in pel.as_slice().unwrap_or(&[]) {
                let e: Vec<String> = e.as_slice().unwrap_or(&[]).iter().map(scalar).collect();
                let (Some(id), Some(c), Some(n)) = (e.first(), e.get(1), e.get(3)) else {
                    continue;
                };
                v.entity(
                    format!("{gp} pending entry {id}"),
                    format!("consumer {c:?}, {n} deliveries"),
                );
            }
        }
        Ok(Some(v))
    }
}

/// The longest PEL of any group in an `XINFO STREAM … FULL` reply.
fn longest_pel(f: &Frame) -> i64 {
    pairs(f)
        .into_iter()
        .filter(|(k, _)| k == "groups")
        .flat_map(|(_, g)| g.as_slice().unwrap_or(&[]).iter())
        .flat_map(|g| pairs(g).into_iter())
        .filter(|(k, _)| k == "pel-count")
        .filter_map(|(_, n)| n.as_integer())
        .max()
        .unwrap_or(0)
}

/// The differences between two views, described (`path: what`): the stream's own fields
/// first, then groups, consumers and pending entries present on one side only, then their
/// fields, each in the order the server reports them.
fn differences(a: &View, bv: &View) -> Vec<String> {
    let mut out: Vec<(u8, String)> = Vec::new();
    let rank = |item: &Item| match item.field {
        Some((Level::Stream, _)) => 0,
        None => 1,
        Some(_) => 2,
    };
    // A field the other version never reports is not a difference.
    let absent = |item: &Item, other: &View| match &item.field {
        Some(f) => other.fields.contains(f),
        None => true,
    };
    for (path, x) in &a.items {
        match bv.get(path) {
            Some(y) if x.value == y.value => {}
            Some(y) => out.push((
                rank(x),
                format!(
                    "{path}: {} on the source, {} on the target",
                    x.value, y.value
                ),
            )),
            None if absent(x, bv) => out.push((rank(x), format!("{path}: on the source only"))),
            None => {}
        }
    }
    for (path, y) in &bv.items {
        if a.get(path).is_none() && absent(y, a) {
            out.push((rank(y), format!("{path}: on the target only")));
        }
    }
    out.sort_by_key(|(r, _)| *r);
    out.into_iter().map(|(_, d)| d).collect()
}

/// Compares the metadata and groups of `keys` (streams whose entries are equal) in `db`;
/// returns one difference per stream that differs: `stream-meta` when the stream's own fields
/// differ, else `stream-groups`.
pub async fn compare(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    keys: &[Bytes],
    rules: &Rules,
) -> anyhow::Result<Vec<Difference>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut views: Vec<(Bytes, View, View)> = Vec::new();
    if rules.full {
        let full = |count: i64| {
            move |k: &Bytes| {
                vec![vec![
                    b(b"XINFO"),
                    b(b"STREAM"),
                    k.clone(),
                    b(b"FULL"),
                    b(b"COUNT"),
                    Bytes::from(count.max(1).to_string()),
                ]]
            }
        };
        // A first read with COUNT 1 says how long the PELs are; streams with longer ones are
        // read again with a COUNT that takes their whole PEL (COUNT 0 would be every entry).
        let fs = src.batch(db, keys, full(1)).await?;
        let fd = dst.batch(db, keys, full(1)).await?;
        let mut longer: HashMap<Bytes, i64> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let (Some(a), Some(bb)) = (fs[i].first(), fd[i].first()) else {
                continue;
            };
            let n = longest_pel(a).max(longest_pel(bb));
            if n > 1 {
                longer.insert(key.clone(), n);
            } else if !a.is_error() && !bb.is_error() {
                views.push((key.clone(), rules.full_view(a), rules.full_view(bb)));
            }
        }
        let again: Vec<Bytes> = keys
            .iter()
            .filter(|k| longer.contains_key(*k))
            .cloned()
            .collect();
        let cmd = |k: &Bytes| full(longer.get(k).copied().unwrap_or(1))(k);
        let fs = src.batch(db, &again, cmd).await?;
        let fd = dst.batch(db, &again, cmd).await?;
        for (i, key) in again.iter().enumerate() {
            if let (Some(a), Some(bb)) = (fs[i].first(), fd[i].first())
                && !a.is_error()
                && !bb.is_error()
            {
                views.push((key.clone(), rules.full_view(a), rules.full_view(bb)));
            }
        }
    } else {
        for key in keys {
            if let (Some(a), Some(bb)) = (
                rules.summary_view(src, db, key).await?,
                rules.summary_view(dst, db, key).await?,
            ) {
                views.push((key.clone(), a, bb));
            }
        }
    }
    let mut diffs = Vec::new();
    for (key, a, bb) in views {
        let found = differences(&a, &bb);
        let Some(first) = found.first() else {
            continue;
        };
        let kind = if first.starts_with("group ") {
            "stream-groups"
        } else {
            "stream-meta"
        };
        let mut detail = found[..found.len().min(SHOWN)].join("; ");
        if found.len() > SHOWN {
            detail.push_str(&format!(" (and {} more)", found.len() - SHOWN));
        }
        diffs.push(Difference::new(db, &key, kind, detail));
    }
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::BulkString(Bytes::from(s.to_string()))
    }

    fn map(items: Vec<(&str, Frame)>) -> Frame {
        Frame::Array(items.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
    }

    fn rules(entries_read: bool) -> Rules {
        let mut ignored = vec!["radix-tree-keys", "seen-time", "active-time", "entries"];
        if !entries_read {
            ignored.extend(["entries-read", "lag"]);
        }
        Rules {
            full: true,
            ignored,
        }
    }

    /// A FULL reply: one group `g1` with a PEL entry for `consumer`, read `entries_read`.
    fn full(consumer: &str, seen: i64, entries_read: i64, extra: bool) -> Frame {
        let mut stream = vec![
            ("length", Frame::Integer(2)),
            ("radix-tree-keys", Frame::Integer(seen)),
            ("last-generated-id", bulk("2-1")),
        ];
        if extra {
            stream.push(("idmp-duration", Frame::Integer(100)));
        }
        stream.extend([
            ("entries", Frame::Array(vec![])),
            (
                "groups",
                Frame::Array(vec![map(vec![
                    ("name", bulk("g1")),
                    ("last-delivered-id", bulk("2-1")),
                    ("entries-read", Frame::Integer(entries_read)),
                    (
                        "pending",
                        Frame::Array(vec![Frame::Array(vec![
                            bulk("1-1"),
                            bulk(consumer),
                            Frame::Integer(1000),
                            Frame::Integer(1),
                        ])]),
                    ),
                    (
                        "consumers",
                        Frame::Array(vec![map(vec![
                            ("name", bulk(consumer)),
                            ("seen-time", Frame::Integer(seen)),
                            ("pel-count", Frame::Integer(1)),
                        ])]),
                    ),
                ])]),
            ),
        ]);
        map(stream)
    }

    #[test]
    fn clocks_and_layout_are_left_out() {
        let r = rules(true);
        let (a, b) = (
            r.full_view(&full("bob", 1, 2, false)),
            r.full_view(&full("bob", 9, 2, false)),
        );
        assert!(differences(&a, &b).is_empty());
    }

    #[test]
    fn a_pending_entry_of_another_consumer_is_named() {
        let r = rules(true);
        let (a, b) = (
            r.full_view(&full("bob", 1, 2, false)),
            r.full_view(&full("alice", 1, 2, false)),
        );
        let d = differences(&a, &b);
        assert!(
            d.iter()
                .any(|d| d.contains("group \"g1\" pending entry 1-1: consumer \"bob\"")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|d| d == "group \"g1\" consumer \"bob\": on the source only"),
            "{d:?}"
        );
    }

    #[test]
    fn entries_read_only_where_replicas_keep_it() {
        let (a, b) = (full("bob", 1, 2, false), full("bob", 1, 1, false));
        let r = rules(true);
        assert_eq!(
            differences(&r.full_view(&a), &r.full_view(&b)),
            vec!["group \"g1\" entries-read: 2 on the source, 1 on the target".to_string()]
        );
        let r = rules(false);
        assert!(differences(&r.full_view(&a), &r.full_view(&b)).is_empty());
    }

    #[test]
    fn fields_of_a_newer_version_alone_are_not_compared() {
        let r = rules(true);
        let (a, b) = (
            r.full_view(&full("bob", 1, 2, false)),
            r.full_view(&full("bob", 1, 2, true)),
        );
        assert!(differences(&a, &b).is_empty());
    }

    #[test]
    fn the_longest_pel_is_found() {
        assert_eq!(longest_pel(&full("bob", 1, 2, false)), 0);
        let f = map(vec![(
            "groups",
            Frame::Array(vec![
                map(vec![("pel-count", Frame::Integer(3))]),
                map(vec![("pel-count", Frame::Integer(7))]),
            ]),
        )]);
        assert_eq!(longest_pel(&f), 7);
    }
}
