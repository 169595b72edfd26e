//! `check`'s look at the source's keys: the biggest ones, measured on the live source or read
//! from an RDB of it, against what the target and the sync accept; and, from the same sample,
//! how many bytes of RDB a byte of the source's memory makes (for the full-copy estimate).
//!
//! What a big key meets on its way, as the sync's code stands (`RdbLoader` and the rewriter):
//! - a key whose `RESTORE` payload fits both `--value-budget` and the target's
//!   `proto-max-bulk-len` goes as one `RESTORE`;
//! - a bigger one is copied as native commands of one decoder chunk each (`RPUSH`, `HSET`, …,
//!   or `SET` then `APPEND`s for a string) into a temporary key renamed into place: it works,
//!   in bounded memory, only slower;
//! - but a string longer than the target's `proto-max-bulk-len` cannot exist there at all
//!   (`APPEND` answers "string exceeds maximum allowed size"), nor can a collection element
//!   longer than it; and a module value has no command form, so it needs one `RESTORE` within
//!   both limits.
//!
//! Those last cases are the `fail`s of the row.

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_sync_resp::Frame;

use super::rows::row;
use super::{Level, Row};
use crate::client::{Client, text};

/// How many of the biggest keys are kept (by size, and by largest argument).
const TOP: usize = 10;
/// Strings whose `MEMORY USAGE` is at least this big get a `STRLEN`: smaller ones cannot
/// exceed a `proto-max-bulk-len`, whose minimum is 1 MiB.
const STRLEN_FROM: u64 = 512 << 10;
/// Keys at most this big (by `MEMORY USAGE`) are `DUMP`ed to measure the RDB-to-memory ratio,
/// up to [`DUMP_TOTAL`] bytes of memory in all: enough keys for a ratio, never a big transfer.
const DUMP_MAX: u64 = 256 << 10;
const DUMP_TOTAL: u64 = 16 << 20;
/// The sampling stops after this long, however few keys it found (a sparse keyspace makes
/// `SCAN` return many empty pages).
const SAMPLE_TIME: Duration = Duration::from_secs(3);

/// One key and its sizes.
#[derive(Debug, Clone)]
pub(super) struct KeyInfo {
    pub db: u64,
    pub key: Vec<u8>,
    /// `TYPE`'s answer (a module type's name for module values).
    pub kind: String,
    /// Approximate size: `MEMORY USAGE` when sampled, decoded bytes from an RDB.
    pub bytes: u64,
    /// The largest single argument a copy by commands needs (a string's length, a
    /// collection's largest element, a module value's size), when known.
    pub largest: Option<u64>,
}

impl KeyInfo {
    fn is_module(&self) -> bool {
        !matches!(
            self.kind.as_str(),
            "string" | "list" | "set" | "zset" | "hash" | "stream"
        )
    }

    fn name(&self) -> String {
        format!("{} (db {}, {})", show_key(&self.key), self.db, self.kind)
    }
}

/// Where the sizes came from.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// `SCAN` + `MEMORY USAGE` on the source: `measured` keys of `total`.
    Sampled { measured: u64, total: u64 },
    /// Every key of an RDB file of `size` bytes.
    Rdb { path: String, size: u64, keys: u64 },
    /// Not looked at (`--sample-keys 0`, or the source refused).
    None { why: String },
}

/// What was learned about the source's keys.
#[derive(Debug, Clone)]
pub(super) struct KeySizes {
    /// The biggest keys by size and by largest argument, each key once, biggest first.
    pub keys: Vec<KeyInfo>,
    pub origin: Origin,
    /// RDB bytes per byte of the source's memory, measured by `DUMP`ing small sampled keys.
    pub rdb_per_memory: Option<f64>,
}

impl KeySizes {
    /// Nothing learned, and why.
    pub(super) fn none(why: String) -> Self {
        KeySizes {
            keys: Vec::new(),
            origin: Origin::None { why },
            rdb_per_memory: None,
        }
    }
}

/// `key` printable: escaped, and cut after 100 bytes.
fn show_key(key: &[u8]) -> String {
    let mut s: String = key
        .iter()
        .take(100)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if key.len() > 100 {
        s.push_str(&format!("…({} bytes)", key.len()));
    }
    s
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// The keys of an RDB file of the source (`check --rdb`): every key, read with the code of
/// `rdb --format memory`.
pub(super) fn from_rdb(path: &std::path::Path) -> anyhow::Result<KeySizes> {
    let (biggest, size) = crate::rdb::biggest_keys(path, TOP)?;
    let info = |b: crate::rdb::Big| KeyInfo {
        db: b.db,
        key: b.key,
        kind: b.kind,
        bytes: b.bytes,
        largest: Some(b.largest),
    };
    let mut keys: Vec<KeyInfo> = biggest.by_bytes().into_iter().map(info).collect();
    for b in biggest.by_largest() {
        if !keys.iter().any(|k| k.db == b.db && k.key == b.key) {
            keys.push(info(b));
        }
    }
    Ok(KeySizes {
        keys,
        origin: Origin::Rdb {
            path: path.display().to_string(),
            size,
            keys: biggest.keys(),
        },
        rdb_per_memory: None,
    })
}

/// Samples up to `limit` keys of the source, spread over its dbs (`dbs`: db and key count
/// from `INFO keyspace`): `SCAN` pages, each page's `MEMORY USAGE` and `TYPE` pipelined, then
/// `STRLEN` for big strings and `DUMP` for small keys.
///
/// `MEMORY USAGE` runs with its default of 5 sampled elements per collection: exact sizes
/// (`SAMPLES 0`) walk a whole collection and would block a production source on a big one.
/// The sizes of collections are therefore estimates; a string's length is exact (`STRLEN`).
pub(super) async fn sample(c: &mut Client, dbs: &[(u32, u64)], limit: u64) -> KeySizes {
    if limit == 0 {
        return KeySizes::none("not sampled (--sample-keys 0)".into());
    }
    let dbs: Vec<(u32, u64)> = dbs.iter().copied().filter(|(_, n)| *n > 0).collect();
    if dbs.is_empty() {
        return KeySizes {
            keys: Vec::new(),
            origin: Origin::Sampled {
                measured: 0,
                total: 0,
            },
            rdb_per_memory: None,
        };
    }
    let quota = (limit / dbs.len() as u64).max(1);
    let start = Instant::now();
    let mut all: Vec<KeyInfo> = Vec::new();
    let (mut dumped_memory, mut dumped_bytes) = (0u64, 0u64);
    for (db, _) in &dbs {
        match sample_db(c, *db, quota, start).await {
            Ok(mut keys) => {
                let (m, b) = dump_ratio(c, &keys).await;
                dumped_memory += m;
                dumped_bytes += b;
                all.append(&mut keys);
            }
            Err(e) => return KeySizes::none(format!("{e:#}")),
        }
        if start.elapsed() > SAMPLE_TIME {
            break;
        }
    }
    let measured = all.len() as u64;
    let mut keys = top(&mut all, |k| k.bytes);
    for k in top(&mut all, |k| k.largest.unwrap_or(0)) {
        if k.largest.is_some() && !keys.iter().any(|x| x.db == k.db && x.key == k.key) {
            keys.push(k);
        }
    }
    KeySizes {
        keys,
        origin: Origin::Sampled {
            measured,
            total: dbs.iter().map(|(_, n)| n).sum(),
        },
        rdb_per_memory: (dumped_memory > 0).then(|| dumped_bytes as f64 / dumped_memory as f64),
    }
}

/// The [`TOP`] keys of `all` by `by`, biggest first.
fn top(all: &mut [KeyInfo], by: impl Fn(&KeyInfo) -> u64) -> Vec<KeyInfo> {
    all.sort_by_key(|k| std::cmp::Reverse(by(k)));
    all.iter().take(TOP).cloned().collect()
}

fn cmd(parts: &[&[u8]]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

/// Up to `quota` keys of `db` with their `MEMORY USAGE`, `TYPE` and, for big strings, length.
async fn sample_db(
    c: &mut Client,
    db: u32,
    quota: u64,
    start: Instant,
) -> anyhow::Result<Vec<KeyInfo>> {
    c.ok(&["SELECT", &db.to_string()]).await?;
    let mut out = Vec::new();
    let mut cursor = Bytes::from_static(b"0");
    loop {
        let page = c.ok(&[&b"SCAN"[..], &cursor, b"COUNT", b"1000"]).await?;
        let parts = page.as_slice().unwrap_or(&[]);
        cursor = parts
            .first()
            .and_then(Frame::as_bytes)
            .cloned()
            .unwrap_or_else(|| Bytes::from_static(b"0"));
        let names: Vec<Bytes> = parts
            .get(1)
            .and_then(Frame::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|k| k.as_bytes().cloned())
            .take(usize::try_from(quota.saturating_sub(out.len() as u64)).unwrap_or(usize::MAX))
            .collect();
        let mut cmds = Vec::with_capacity(names.len() * 2);
        for k in &names {
            cmds.push(cmd(&[b"MEMORY", b"USAGE", k]));
            cmds.push(cmd(&[b"TYPE", k]));
        }
        let replies = c.pipeline(&cmds).await?;
        if let Some(Frame::Error(e)) = replies.iter().find(|f| f.is_error()) {
            anyhow::bail!(
                "the source refused MEMORY USAGE or TYPE ({}): grant +memory|usage +type, or \
                 give check --rdb FILE",
                String::from_utf8_lossy(e)
            );
        }
        for (k, pair) in names.iter().zip(replies.chunks(2)) {
            let (Some(mem), Some(kind)) = (pair.first(), pair.get(1).and_then(text)) else {
                continue;
            };
            // A key deleted since SCAN answers nil and "none".
            let Some(bytes) = mem.as_integer().and_then(|m| u64::try_from(m).ok()) else {
                continue;
            };
            out.push(KeyInfo {
                db: u64::from(db),
                key: k.to_vec(),
                kind,
                bytes,
                largest: None,
            });
        }
        if cursor.as_ref() == b"0" || out.len() as u64 >= quota || start.elapsed() > SAMPLE_TIME {
            break;
        }
    }
    // Exact lengths for the strings that could matter; a module value's size is its
    // MEMORY USAGE (the module's own estimate).
    let big: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].kind == "string" && out[i].bytes >= STRLEN_FROM)
        .collect();
    let cmds: Vec<Vec<Bytes>> = big
        .iter()
        .map(|&i| cmd(&[b"STRLEN", &out[i].key]))
        .collect();
    let lens = c.pipeline(&cmds).await?;
    for (&i, len) in big.iter().zip(&lens) {
        out[i].largest = len.as_integer().and_then(|n| u64::try_from(n).ok());
    }
    for k in out.iter_mut().filter(|k| k.is_module()) {
        k.largest = Some(k.bytes);
    }
    Ok(out)
}

/// `DUMP`s the small keys of `keys` (see [`DUMP_MAX`]) and returns (their memory, their RDB
/// bytes): a `DUMP` payload is the key's RDB record (plus 10 bytes of version and CRC, and
/// without the key name, which are about even). `(0, 0)` when `DUMP` is refused.
async fn dump_ratio(c: &mut Client, keys: &[KeyInfo]) -> (u64, u64) {
    let mut memory = 0;
    let mut picked = Vec::new();
    for k in keys.iter().filter(|k| k.bytes <= DUMP_MAX) {
        if memory + k.bytes > DUMP_TOTAL {
            break;
        }
        memory += k.bytes;
        picked.push(k);
    }
    let cmds: Vec<Vec<Bytes>> = picked.iter().map(|k| cmd(&[b"DUMP", &k.key])).collect();
    let Ok(replies) = c.pipeline(&cmds).await else {
        return (0, 0);
    };
    let (mut m, mut b) = (0, 0);
    for (k, r) in picked.iter().zip(&replies) {
        if let Frame::BulkString(p) = r {
            m += k.bytes;
            b += (p.len() + k.key.len()) as u64;
        }
    }
    (m, b)
}

/// The "biggest keys" row: `fail` for a key the target cannot hold or the sync cannot send,
/// naming the key and the setting to change.
pub(super) fn row_for(sizes: &KeySizes, max_bulk: Option<u64>, value_budget: u64) -> Row {
    const NAME: &str = "biggest keys";
    let scope = match &sizes.origin {
        Origin::None { why } => return row(NAME, Level::Skip, why.clone()),
        Origin::Sampled { measured, total } if measured >= total => {
            format!("all {measured} keys measured with MEMORY USAGE")
        }
        Origin::Sampled { measured, total } => format!(
            "{measured} of {total} keys sampled with MEMORY USAGE (a bigger key may be \
             outside the sample: check --rdb FILE reads every key)"
        ),
        Origin::Rdb { path, keys, .. } => format!("all {keys} keys of {path}"),
    };
    let Some(biggest) = sizes.keys.first() else {
        return row(NAME, Level::Ok, format!("no keys; {scope}"));
    };
    // The target's limit; 512 MiB (Redis's default) when CONFIG GET is refused.
    let bulk = max_bulk.unwrap_or(512 << 20);
    let restore_max = bulk.min(value_budget);
    let mut fails = Vec::new();
    let mut need_bulk = 0u64;
    let mut need_budget = 0u64;
    for k in &sizes.keys {
        let largest = k.largest.unwrap_or(0);
        if k.is_module() && k.bytes > restore_max {
            fails.push(format!(
                "{} is a module value of ~{}: it copies only as one RESTORE, which must fit \
                 --value-budget ({}) and the target's proto-max-bulk-len ({})",
                k.name(),
                mb(k.bytes),
                mb(value_budget),
                mb(bulk)
            ));
            need_budget = need_budget.max(k.bytes);
            need_bulk = need_bulk.max(k.bytes);
        } else if k.kind == "string" && largest > bulk {
            fails.push(format!(
                "{} is {largest} bytes long, more than the target's proto-max-bulk-len \
                 {bulk}: the target refuses a string that long (RESTORE, SET and APPEND alike)",
                k.name()
            ));
            need_bulk = need_bulk.max(largest);
        } else if largest > bulk {
            fails.push(format!(
                "{} has an element of {largest} bytes, more than the target's \
                 proto-max-bulk-len {bulk}",
                k.name()
            ));
            need_bulk = need_bulk.max(largest);
        }
    }
    if !fails.is_empty() {
        let mut fixes = Vec::new();
        if need_bulk > bulk {
            fixes.push(format!(
                "on the target CONFIG SET proto-max-bulk-len {}mb (and the same in its config \
                 file)",
                need_bulk.div_ceil(1 << 20)
            ));
        }
        if need_budget > value_budget {
            fixes.push(format!(
                "sync --value-budget {} (one such key is held in memory)",
                need_budget.div_ceil(1 << 20) << 20
            ));
        }
        return row(
            NAME,
            Level::Fail,
            format!(
                "{}; fix: {}; {scope}",
                fails.join("; "),
                if fixes.is_empty() {
                    "exclude the key (sync --exclude-key-glob)".to_string()
                } else {
                    fixes.join(", and ")
                }
            ),
        );
    }
    let chunked: Vec<String> = sizes
        .keys
        .iter()
        .filter(|k| k.bytes > restore_max)
        .map(|k| k.name())
        .collect();
    let note = if chunked.is_empty() {
        String::new()
    } else {
        format!(
            "; {} above {} (the smaller of --value-budget and the target's \
             proto-max-bulk-len) go as chunked commands through a temporary key instead of \
             one RESTORE: slower, same memory (sync --value-budget raises it, at the cost of \
             holding one such key in memory)",
            chunked.join(", "),
            mb(restore_max)
        )
    };
    row(
        NAME,
        Level::Ok,
        format!(
            "biggest {} ~{}{}{note}; {scope}",
            biggest.name(),
            mb(biggest.bytes),
            biggest
                .largest
                .filter(|l| *l > 0 && biggest.kind == "string")
                .map(|l| format!(", {l} bytes long"))
                .unwrap_or_default(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, kind: &str, bytes: u64, largest: Option<u64>) -> KeyInfo {
        KeyInfo {
            db: 2,
            key: name.as_bytes().to_vec(),
            kind: kind.into(),
            bytes,
            largest,
        }
    }

    fn sizes(keys: Vec<KeyInfo>) -> KeySizes {
        KeySizes {
            keys,
            origin: Origin::Sampled {
                measured: 5,
                total: 50,
            },
            rdb_per_memory: None,
        }
    }

    #[test]
    fn a_long_string_fails_with_the_config_set() {
        let r = row_for(
            &sizes(vec![key("big", "string", 3_200_000, Some(3_000_000))]),
            Some(1 << 20),
            8 << 20,
        );
        assert_eq!(r.level, Level::Fail, "{}", r.detail);
        assert!(r.detail.contains("big (db 2, string)"), "{}", r.detail);
        assert!(
            r.detail.contains("CONFIG SET proto-max-bulk-len 3mb"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_big_hash_only_goes_slower_and_a_big_module_value_fails() {
        let r = row_for(
            &sizes(vec![key("h", "hash", 20 << 20, None)]),
            Some(1 << 20),
            8 << 20,
        );
        assert_eq!(r.level, Level::Ok, "{}", r.detail);
        assert!(r.detail.contains("chunked commands"), "{}", r.detail);
        let r = row_for(
            &sizes(vec![key("j", "ReJSON-RL", 9 << 20, Some(9 << 20))]),
            Some(512 << 20),
            8 << 20,
        );
        assert_eq!(r.level, Level::Fail, "{}", r.detail);
        assert!(r.detail.contains("--value-budget 9437184"), "{}", r.detail);
        assert!(!r.detail.contains("proto-max-bulk-len 9mb"), "{}", r.detail);
    }

    #[test]
    fn binary_key_names_are_escaped() {
        assert_eq!(show_key(b"a\x00\xffb"), "a\\x00\\xffb");
        assert!(show_key(&[b'k'; 150]).ends_with("…(150 bytes)"));
    }
}
