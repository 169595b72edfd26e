//! RDB → commands: the idempotent command sequence that recreates each key of a file.
//!
//! A [`Rewriter`] takes the decoder's [`Event`]s one at a time and appends commands to a
//! caller-owned `Vec<Command>` (quinn style: the caller owns and reuses the output buffer, and
//! decides when to write it out). It is sans-IO like the decoder: no sockets, and time comes in
//! as an argument (`now_ms`), so keys already expired at that moment are skipped.
//!
//! # Why the commands look the way they do
//!
//! **Idempotence.** A full sync may be re-run (after a crash, or on a target that was not
//! empty), so replaying the output twice must not duplicate anything. Every aggregate starts with
//! `DEL key` before its `RPUSH` / `SADD` / `ZADD` / `HSET` / `XADD` chunks, strings use `SET`
//! (which overwrites), and `RESTORE` always carries `REPLACE`. Replaying twice gives the same
//! data set as replaying once.
//!
//! **Bounded memory.** Commands are produced per value chunk: a chunk of N list items becomes
//! one `RPUSH` of N items, never the whole list. The decoder's chunk budget bounds the command
//! size. Two things are held across chunks, both bounded:
//! - a string's first piece, until it is known whether more pieces follow (one chunk);
//! - the current consumer group's pending entries list (PEL): `XCLAIM` needs each pending ID's
//!   delivery time and count (stored in the group PEL) joined with its owner (stored later,
//!   per consumer). The held map is one group's PEL: 40 bytes per pending entry (the same order
//!   as the server's own memory for it). Entries leave the map as their owner claims them.
//!
//! In [`Mode::Restore`] a key's commands are additionally held back up to
//! [`RewriterBuilder::restore_hold_limit`] bytes, so that when the decoder supplies a RESTORE
//! payload at the key's end the native commands can be dropped; past the limit they are
//! flushed, the key is completed natively and its payload is ignored. Each key is written
//! once, one way or the other.
//!
//! **Any target version.** [`TargetVersion`] picks equivalent commands for older servers
//! (e.g. `SET` + `PEXPIREAT` where `SET … PXAT` is missing).
//!
//! # Per type
//!
//! | value | commands |
//! |---|---|
//! | string | `SET key v [PXAT ms]`; a string in several pieces: `SET` then `APPEND`s |
//! | list / set / sorted set | `DEL`, then per chunk `RPUSH` / `SADD` / `ZADD score member …` |
//! | hash | `DEL`, per chunk `HSET` (`HMSET` before 4.0), `HPEXPIREAT key ms FIELDS n f…` for field TTLs |
//! | stream | `DEL`, `XADD key id f v…` per entry, `XSETID key last [ENTRIESADDED n MAXDELETEDID id]`, `XGROUP CREATE key g id [ENTRIESREAD n]`, `XGROUP CREATECONSUMER`, `XCLAIM key g consumer 0 id… TIME ms RETRYCOUNT n FORCE JUSTID` |
//! | module value | `RESTORE key ttl payload REPLACE …` only (needs the decoder's payload) |
//! | function library | `FUNCTION LOAD REPLACE code` |
//! | key expiry | `PEXPIREAT key ms` after the value (or `PXAT` on `SET`) |
//!
//! Scores are printed so that they parse back to the same `f64` ([`score`]). A stream with no
//! entries (all deleted, or only groups) is created with `XGROUP CREATE … MKSTREAM` and a
//! temporary group that is destroyed at once, then `XSETID` restores its last ID.
//!
//! Known limit of the command path: a pending entry whose stream entry was deleted cannot be
//! recreated (`XCLAIM` ignores IDs that are not in the stream); [`Mode::Restore`] keeps it.
//!
//! ```
//! use bytes::Bytes;
//! use redis_sync_rdb::rewrite::{Command, Rewriter};
//! use redis_sync_rdb::{Event, Key, ValueChunk, ValueType};
//!
//! let key = Key {
//!     db: 0,
//!     key: Bytes::from_static(b"fruits"),
//!     value_type: ValueType::List,
//!     type_byte: 18,
//!     expire_ms: None,
//!     idle_secs: None,
//!     lfu_freq: None,
//!     offset: 9,
//! };
//! let items = vec![Bytes::from_static(b"apple"), Bytes::from_static(b"pear")];
//! let mut rw = Rewriter::builder().build();
//! let mut out: Vec<Command> = Vec::new();
//! let now_ms = 1_700_000_000_000;
//! for ev in [
//!     Event::Key(key),
//!     Event::Value(ValueChunk::ListItems(items)),
//!     Event::KeyEnd { restore_payload: None },
//! ] {
//!     rw.handle_event(&ev, now_ms, &mut out).expect("a list converts");
//! }
//! let text: Vec<String> = out
//!     .iter()
//!     .map(|c| c.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>().join(" "))
//!     .collect();
//! assert_eq!(text, ["SELECT 0", "DEL fruits", "RPUSH fruits apple pear"]);
//! ```

mod format;
mod target;

use std::collections::HashMap;

use bytes::Bytes;

pub use format::{score, to_resp, write_resp};
pub use target::TargetVersion;

use crate::event::{
    Event, HashField, Key, ModuleType, PendingEntry, StreamConsumer, StreamGroup, StreamId,
    StreamMeta, ValueChunk, ValueType,
};
use format::int;

/// One command: its name and arguments, each a binary-safe string.
pub type Command = Vec<Bytes>;

/// Which commands to produce for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Native data commands (`SET`, `RPUSH`, `XADD`, …): loadable by any server of the target
    /// version, whatever the source's version. Module values still need `RESTORE`.
    #[default]
    Commands,
    /// `RESTORE … REPLACE` with the payload sliced from the file whenever the decoder supplied
    /// one (`Event::KeyEnd::restore_payload`), native commands otherwise. Faster to load and
    /// exact (LRU/LFU, PEL of deleted entries), but the target must accept the source's RDB
    /// version.
    Restore,
}

/// Why a key could not be converted. The [`Rewriter`] stays usable: the next key converts
/// normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// A module value has no command form; only `RESTORE` of its raw payload recreates it.
    #[error(
        "key {key:?} (db {db}, record at byte offset {offset}) holds a {module} module value, which can only be copied with RESTORE, but the decoder gave no payload for it; enable RESTORE payloads (DecoderBuilder::restore_payloads) with a limit above the value's size"
    )]
    ModuleNeedsPayload {
        /// The database.
        db: u64,
        /// The key, lossily as text.
        key: String,
        /// The module type name, e.g. `ReJSON-RL`.
        module: String,
        /// Byte offset of the key record.
        offset: u64,
    },
    /// The target version lacks a command the data needs. The rest of the key (or nothing,
    /// for a function library) was written.
    #[error(
        "{what} cannot be recreated on a Redis {target} target (needs {needs}); the output leaves it out; if the target server is newer, say so (TargetVersion, redis-sync --target-version)"
    )]
    TargetTooOld {
        /// What was left out, e.g. `field TTLs of key "h" (db 0)`.
        what: String,
        /// The target version in use.
        target: TargetVersion,
        /// The version that has the command.
        needs: &'static str,
    },
    /// The events did not come in the order the decoder guarantees (a value chunk outside a
    /// key, or a chunk of the wrong type).
    #[error("event out of order: {what}; feed the Rewriter every event of one decoder, in order")]
    OutOfOrder {
        /// What was wrong.
        what: String,
    },
}

/// Counters of what a [`Rewriter`] produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewriteStats {
    /// Keys converted (natively or by RESTORE).
    pub keys: u64,
    /// Keys skipped because they had expired at `now_ms`.
    pub expired_skipped: u64,
    /// Hash fields skipped because their own TTL had passed at `now_ms`.
    pub expired_fields_skipped: u64,
    /// Keys written with `RESTORE`.
    pub restored: u64,
    /// Keys that failed ([`RewriteError`]).
    pub failed: u64,
    /// Function libraries (`FUNCTION LOAD`).
    pub functions: u64,
    /// Commands appended to the output.
    pub commands: u64,
}

/// Configures a [`Rewriter`].
#[derive(Debug, Clone)]
pub struct RewriterBuilder {
    target: TargetVersion,
    mode: Mode,
    restore_hold_limit: usize,
    plain_strings: bool,
}

impl RewriterBuilder {
    /// The oldest server the commands must run on (default [`TargetVersion::LATEST`]).
    pub fn target(mut self, target: TargetVersion) -> Self {
        self.target = target;
        self
    }
    /// Native commands or RESTORE payloads (default [`Mode::Commands`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// In [`Mode::Restore`], how many bytes of one key's native commands to hold back while
    /// waiting to see whether a RESTORE payload comes (default 8 MiB). A key whose commands
    /// outgrow it is written natively and its payload ignored; set it near the decoder's
    /// payload limit so that keys with a payload are restored.
    pub fn restore_hold_limit(mut self, bytes: usize) -> Self {
        self.restore_hold_limit = bytes;
        self
    }
    /// In [`Mode::Restore`], write a string of one piece as `SET key value` (with `PXAT`
    /// for a TTL, on 6.2+) rather than `RESTORE` of its payload (default off). The result is
    /// the same; a server executes a `SET` without checking a CRC-64 and decoding a payload,
    /// and a writer can merge runs of them into `MSET`s, far cheaper per key. Strings that
    /// carry LRU/LFU data (`IDLETIME`/`FREQ`, which only `RESTORE` sets) keep `RESTORE`.
    pub fn plain_strings(mut self, yes: bool) -> Self {
        self.plain_strings = yes;
        self
    }
    /// The converter.
    pub fn build(self) -> Rewriter {
        Rewriter {
            target: self.target,
            mode: self.mode,
            plain_strings: self.plain_strings,
            hold_limit: self.restore_hold_limit,
            db: None,
            key: None,
            stats: RewriteStats::default(),
        }
    }
}

/// What is known about the key being converted.
#[derive(Debug)]
struct KeyState {
    key: Key,
    /// Expired at `now_ms`: swallow its events.
    skip: bool,
    /// String: the first piece, held until we know whether it is the only one.
    string_first: Option<Bytes>,
    /// String: pieces seen.
    string_pieces: u64,
    /// Stream: entries written.
    stream_entries: u64,
    /// Stream: the current group and its PEL (see the module docs for the bound).
    group: Option<Bytes>,
    pel: HashMap<StreamId, (i64, u64)>,
    consumer: Option<Bytes>,
    module: Option<ModuleType>,
    /// Stream: its metadata, once seen (for estimating v1 groups' entries-read).
    meta: Option<StreamMeta>,
    /// Hash: some fields had TTLs the target cannot set.
    lost_field_ttls: bool,
    /// Value chunks seen (an aggregate with none is empty: servers skip it on load).
    chunks: u64,
    /// Hash: some fields had expired at `now_ms` (left out of the native commands; a RESTORE
    /// payload would bring them back until the target expires them).
    expired_fields: bool,
    /// Restore mode: commands held back, their size, and whether the hold overflowed.
    held: Vec<Command>,
    held_bytes: usize,
    flushed: bool,
}

/// Converts decoder events into commands; see the [module docs](self).
///
/// Call [`handle_event`](Self::handle_event) with every event of a decoder, in order. Commands
/// are appended to the caller's buffer; the caller drains it when it likes.
#[derive(Debug)]
pub struct Rewriter {
    target: TargetVersion,
    mode: Mode,
    plain_strings: bool,
    hold_limit: usize,
    db: Option<u64>,
    key: Option<KeyState>,
    stats: RewriteStats,
}

fn cmd<const N: usize>(parts: [&[u8]; N]) -> Command {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

fn size(c: &Command) -> usize {
    c.iter().map(|a| a.len() + 16).sum()
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl Rewriter {
    /// A builder with the defaults: latest target, native commands.
    pub fn builder() -> RewriterBuilder {
        RewriterBuilder {
            target: TargetVersion::LATEST,
            mode: Mode::Commands,
            restore_hold_limit: 8 << 20,
            plain_strings: false,
        }
    }

    /// What has been produced so far.
    pub fn stats(&self) -> RewriteStats {
        self.stats
    }

    /// The target version the commands are written for.
    pub fn target(&self) -> TargetVersion {
        self.target
    }

    /// Converts one event, appending its commands (possibly none) to `out`. `now_ms` is the
    /// current Unix time in milliseconds: keys expiring at or before it are skipped.
    ///
    /// On error the offending key is abandoned (its commands so far may be in `out`) and the
    /// converter continues with the next key.
    pub fn handle_event(
        &mut self,
        event: &Event,
        now_ms: i64,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        let before = out.len();
        let r = self.dispatch(event, now_ms, out);
        self.stats.commands += (out.len() - before) as u64;
        if r.is_err() {
            self.stats.failed += 1;
        }
        r
    }

    fn dispatch(
        &mut self,
        event: &Event,
        now_ms: i64,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        match event {
            Event::Key(k) => {
                self.start_key(k, now_ms, out);
                Ok(())
            }
            Event::Value(chunk) => self.value(chunk, now_ms, out),
            Event::KeyEnd { restore_payload } => {
                self.end_key(restore_payload.as_ref(), now_ms, out)
            }
            Event::Function { code } => {
                if !self.target.at_least(7, 0) {
                    let name = code.split(|&b| b == b'\n').next().unwrap_or_default();
                    return Err(RewriteError::TargetTooOld {
                        what: format!("function library {:?}", String::from_utf8_lossy(name)),
                        target: self.target,
                        needs: "7.0, FUNCTION LOAD",
                    });
                }
                out.push(vec![
                    Bytes::from_static(b"FUNCTION"),
                    Bytes::from_static(b"LOAD"),
                    Bytes::from_static(b"REPLACE"),
                    code.clone(),
                ]);
                self.stats.functions += 1;
                Ok(())
            }
            // Header, AUX, module AUX, SELECTDB (keys carry their db), RESIZEDB, slot info
            // and the end produce no commands.
            _ => Ok(()),
        }
    }

    fn start_key(&mut self, k: &Key, now_ms: i64, out: &mut Vec<Command>) {
        let skip = k.expire_ms.is_some_and(|t| t <= now_ms);
        if skip {
            self.stats.expired_skipped += 1;
        } else if self.db != Some(k.db) {
            // SELECT goes out directly (not held): it is right whatever form the key takes.
            out.push(vec![Bytes::from_static(b"SELECT"), int(k.db)]);
            self.db = Some(k.db);
        }
        self.key = Some(KeyState {
            key: k.clone(),
            skip,
            string_first: None,
            string_pieces: 0,
            stream_entries: 0,
            group: None,
            pel: HashMap::new(),
            consumer: None,
            module: None,
            lost_field_ttls: false,
            meta: None,
            chunks: 0,
            expired_fields: false,
            held: Vec::new(),
            held_bytes: 0,
            flushed: false,
        });
        if !skip && !matches!(k.value_type, ValueType::String | ValueType::Module) {
            let del = vec![Bytes::from_static(b"DEL"), k.key.clone()];
            self.emit(del, out);
        }
    }

    /// Appends a command of the current key: straight to `out`, or held in restore mode.
    fn emit(&mut self, c: Command, out: &mut Vec<Command>) {
        let hold = self.mode == Mode::Restore;
        let limit = self.hold_limit;
        let Some(st) = self.key.as_mut() else {
            out.push(c);
            return;
        };
        if !hold || st.flushed {
            out.push(c);
            return;
        }
        st.held_bytes += size(&c);
        st.held.push(c);
        if st.held_bytes > limit {
            out.append(&mut st.held);
            st.held_bytes = 0;
            st.flushed = true;
        }
    }

    fn state(&mut self, what: &str) -> Result<&mut KeyState, RewriteError> {
        self.key.as_mut().ok_or_else(|| RewriteError::OutOfOrder {
            what: format!("{what} outside a key"),
        })
    }

    fn value(
        &mut self,
        chunk: &ValueChunk,
        now_ms: i64,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        let st = self.state("a value chunk")?;
        if st.skip {
            return Ok(());
        }
        st.chunks += 1;
        let key = st.key.key.clone();
        match chunk {
            ValueChunk::String(piece) => {
                st.string_pieces += 1;
                if st.string_pieces == 1 {
                    st.string_first = Some(piece.clone());
                    return Ok(());
                }
                if let Some(first) = st.string_first.take() {
                    self.emit(vec![Bytes::from_static(b"SET"), key.clone(), first], out);
                }
                self.emit(vec![Bytes::from_static(b"APPEND"), key, piece.clone()], out);
            }
            ValueChunk::ListItems(items) => self.many(b"RPUSH", key, items.iter().cloned(), out),
            ValueChunk::SetMembers(members) => {
                self.many(b"SADD", key, members.iter().cloned(), out)
            }
            ValueChunk::SortedSetMembers(pairs) => {
                let args = pairs
                    .iter()
                    .flat_map(|(m, s)| [Bytes::from(score(*s)), m.clone()]);
                self.many(b"ZADD", key, args, out);
            }
            ValueChunk::HashFields(fields) => self.hash_fields(key, fields, now_ms, out),
            ValueChunk::StreamEntries(entries) => {
                for e in entries {
                    let mut c = Vec::with_capacity(3 + 2 * e.fields.len());
                    c.extend([Bytes::from_static(b"XADD"), key.clone(), id(e.id)]);
                    for (f, v) in &e.fields {
                        c.push(f.clone());
                        c.push(v.clone());
                    }
                    self.emit(c, out);
                }
                self.state("stream entries")?.stream_entries += entries.len() as u64;
            }
            ValueChunk::StreamMeta(m) => self.stream_meta(key, m, out),
            ValueChunk::StreamGroup(g) => self.stream_group(key, g, out),
            ValueChunk::StreamPending(pel) => {
                let st = self.state("stream pending entries")?;
                for PendingEntry {
                    id,
                    delivery_time_ms,
                    delivery_count,
                } in pel
                {
                    st.pel.insert(*id, (*delivery_time_ms, *delivery_count));
                }
            }
            ValueChunk::StreamConsumer(c) => self.stream_consumer(key, c, out)?,
            ValueChunk::StreamConsumerPending(ids) => {
                self.consumer_pending(key, ids, now_ms, out)?
            }
            ValueChunk::Module { module, .. } => st.module = Some(module.clone()),
            // Redis 8.6 idempotent-producer state has no command that sets it; RESTORE keeps it.
            ValueChunk::StreamIdmp(_) => {}
        }
        Ok(())
    }

    /// `NAME key args…` unless there are no args.
    fn many(
        &mut self,
        name: &'static [u8],
        key: Bytes,
        args: impl Iterator<Item = Bytes>,
        out: &mut Vec<Command>,
    ) {
        let mut c = vec![Bytes::from_static(name), key];
        c.extend(args);
        if c.len() > 2 {
            self.emit(c, out);
        }
    }

    fn hash_fields(
        &mut self,
        key: Bytes,
        fields: &[HashField],
        now_ms: i64,
        out: &mut Vec<Command>,
    ) {
        let live: Vec<&HashField> = fields
            .iter()
            .filter(|f| f.expire_ms.is_none_or(|t| t > now_ms))
            .collect();
        let expired = (fields.len() - live.len()) as u64;
        self.stats.expired_fields_skipped += expired;
        if expired > 0
            && let Some(st) = self.key.as_mut()
        {
            st.expired_fields = true;
        }
        let name: &'static [u8] = if self.target.at_least(4, 0) {
            b"HSET"
        } else {
            b"HMSET"
        };
        self.many(
            name,
            key.clone(),
            live.iter().flat_map(|f| [f.field.clone(), f.value.clone()]),
            out,
        );
        if !self.target.at_least(7, 4) {
            if live.iter().any(|f| f.expire_ms.is_some())
                && let Some(st) = self.key.as_mut()
            {
                st.lost_field_ttls = true;
            }
            return;
        }
        // One HPEXPIREAT per distinct expiry time in the chunk (fields sharing a time are
        // common: HEXPIRE sets many fields at once).
        let mut by_time: Vec<(i64, Bytes)> = live
            .iter()
            .filter_map(|f| f.expire_ms.map(|t| (t, f.field.clone())))
            .collect();
        by_time.sort_by_key(|(t, _)| *t);
        for group in by_time.chunk_by(|a, b| a.0 == b.0) {
            let mut c = vec![
                Bytes::from_static(b"HPEXPIREAT"),
                key.clone(),
                int(group[0].0),
                Bytes::from_static(b"FIELDS"),
                int(group.len()),
            ];
            c.extend(group.iter().map(|(_, f)| f.clone()));
            self.emit(c, out);
        }
    }

    fn stream_meta(&mut self, key: Bytes, m: &StreamMeta, out: &mut Vec<Command>) {
        if let Some(st) = self.key.as_mut() {
            st.meta = Some(m.clone());
        }
        let empty = self.key.as_ref().is_some_and(|s| s.stream_entries == 0);
        if empty {
            // XSETID needs an existing stream and XADD cannot add 0-0: create it through a
            // throw-away group (its name cannot clash: no real group exists yet).
            let tmp: &[u8] = b"redis-sync:tmp-group";
            self.emit(
                cmd([b"XGROUP", b"CREATE", &key, tmp, b"0", b"MKSTREAM"]),
                out,
            );
            self.emit(cmd([b"XGROUP", b"DESTROY", &key, tmp]), out);
        }
        let mut c = vec![Bytes::from_static(b"XSETID"), key, id(m.last_id)];
        if self.target.at_least(7, 0) {
            // Stream v1 files have no counter; the server's loader then takes the length.
            let added = m.entries_added.unwrap_or(m.length);
            c.extend([Bytes::from_static(b"ENTRIESADDED"), int(added)]);
            if let Some(d) = m.max_deleted_id {
                c.extend([Bytes::from_static(b"MAXDELETEDID"), id(d)]);
            }
        }
        self.emit(c, out);
    }

    fn stream_group(&mut self, key: Bytes, g: &StreamGroup, out: &mut Vec<Command>) {
        if let Some(st) = self.key.as_mut() {
            st.group = Some(g.name.clone());
            st.pel.clear();
            st.consumer = None;
        }
        let mut c = vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"CREATE"),
            key,
            g.name.clone(),
            id(g.last_id),
        ];
        if self.target.at_least(7, 0) {
            let n = match g.entries_read {
                // The server stores "unknown" as -1 (SCG_INVALID_ENTRIES_READ), which the RDB
                // writes as a 64-bit length; ENTRIESREAD accepts -1 back.
                Some(n) => i64::try_from(n).unwrap_or(-1),
                // No counter: in a stream v1 file (which has no entries-added either) the
                // server's loader estimates it; in v2+ it was stored as "unknown".
                None => match self.key.as_ref().and_then(|st| st.meta.as_ref()) {
                    Some(m) if m.entries_added.is_none() => estimate_entries_read(m, g.last_id),
                    _ => -1,
                },
            };
            c.extend([Bytes::from_static(b"ENTRIESREAD"), int(n)]);
        }
        self.emit(c, out);
    }

    fn stream_consumer(
        &mut self,
        key: Bytes,
        c: &StreamConsumer,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        let st = self.state("a stream consumer")?;
        let group = st.group.clone().ok_or_else(|| RewriteError::OutOfOrder {
            what: "a stream consumer before its group".into(),
        })?;
        st.consumer = Some(c.name.clone());
        let create = if self.target.at_least(6, 2) {
            cmd([b"XGROUP", b"CREATECONSUMER", &key, &group, &c.name])
        } else {
            // Before 6.2 a consumer is created by reading; reading its own (empty) history
            // from 0 delivers nothing.
            cmd([
                b"XREADGROUP",
                b"GROUP",
                &group,
                &c.name,
                b"COUNT",
                b"1",
                b"STREAMS",
                &key,
                b"0-0",
            ])
        };
        self.emit(create, out);
        Ok(())
    }

    fn consumer_pending(
        &mut self,
        key: Bytes,
        ids: &[StreamId],
        now_ms: i64,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        let st = self.state("consumer pending IDs")?;
        let (Some(group), Some(consumer)) = (st.group.clone(), st.consumer.clone()) else {
            return Err(RewriteError::OutOfOrder {
                what: "consumer pending IDs before their group and consumer".into(),
            });
        };
        // Each ID is owned by exactly one consumer: take it out of the held group PEL.
        let claims: Vec<(StreamId, (i64, u64))> = ids
            .iter()
            .map(|i| (*i, st.pel.remove(i).unwrap_or((now_ms, 1))))
            .collect();
        // One XCLAIM per run of IDs sharing delivery time and count.
        for run in claims.chunk_by(|a, b| a.1 == b.1) {
            let (time, count) = run[0].1;
            let mut c = vec![
                Bytes::from_static(b"XCLAIM"),
                key.clone(),
                group.clone(),
                consumer.clone(),
                Bytes::from_static(b"0"),
            ];
            c.extend(run.iter().map(|(i, _)| id(*i)));
            c.extend([
                Bytes::from_static(b"TIME"),
                int(time),
                Bytes::from_static(b"RETRYCOUNT"),
                int(count),
                Bytes::from_static(b"FORCE"),
                Bytes::from_static(b"JUSTID"),
            ]);
            self.emit(c, out);
        }
        Ok(())
    }

    fn end_key(
        &mut self,
        payload: Option<&Bytes>,
        now_ms: i64,
        out: &mut Vec<Command>,
    ) -> Result<(), RewriteError> {
        let Some(mut st) = self.key.take() else {
            return Err(RewriteError::OutOfOrder {
                what: "a key end outside a key".into(),
            });
        };
        if st.skip {
            return Ok(());
        }
        let k = &st.key;
        let is_module = k.value_type == ValueType::Module || st.module.is_some();
        // An empty list/set/zset/hash: the server skips it when loading a file, and RESTORE
        // refuses its payload. Only the DEL remains.
        let empty_aggregate = st.chunks == 0
            && matches!(
                k.value_type,
                ValueType::List | ValueType::Set | ValueType::SortedSet | ValueType::Hash
            );
        // In restore mode the native commands are used instead of the payload when they are
        // already out (the hold overflowed: they are complete by now) or when the payload
        // holds hash fields that have expired.
        let plain_string = self.plain_strings
            && k.value_type == ValueType::String
            && st.string_pieces <= 1
            && k.idle_secs.is_none()
            && k.lfu_freq.is_none()
            && (k.expire_ms.is_none() || self.target.at_least(6, 2));
        let use_payload = is_module
            || (self.mode == Mode::Restore
                && !empty_aggregate
                && !st.flushed
                && !st.expired_fields
                && !plain_string);
        if let (true, Some(p)) = (use_payload, payload) {
            out.push(self.restore(k, p.clone(), now_ms));
            self.stats.restored += 1;
            self.stats.keys += 1;
            return Ok(());
        }
        if is_module {
            return Err(RewriteError::ModuleNeedsPayload {
                db: k.db,
                key: String::from_utf8_lossy(&k.key).into_owned(),
                module: st
                    .module
                    .as_ref()
                    .map_or_else(|| "unknown".into(), |m| m.name.clone()),
                offset: k.offset,
            });
        }
        out.append(&mut st.held);
        let key = k.key.clone();
        let expire = k.expire_ms;
        if k.value_type == ValueType::String && st.string_pieces <= 1 {
            let value = st.string_first.take().unwrap_or_default();
            let mut c = vec![Bytes::from_static(b"SET"), key.clone(), value];
            if let Some(t) = expire.filter(|_| self.target.at_least(6, 2)) {
                c.extend([Bytes::from_static(b"PXAT"), int(t)]);
                out.push(c);
                self.stats.keys += 1;
                return Ok(());
            }
            out.push(c);
        }
        if let Some(t) = expire {
            out.push(vec![Bytes::from_static(b"PEXPIREAT"), key, int(t)]);
        }
        self.stats.keys += 1;
        if st.lost_field_ttls {
            return Err(RewriteError::TargetTooOld {
                what: format!(
                    "field TTLs of hash {:?} (db {})",
                    String::from_utf8_lossy(&k.key),
                    k.db
                ),
                target: self.target,
                needs: "7.4 or Valkey 9, HPEXPIREAT",
            });
        }
        Ok(())
    }

    fn restore(&self, k: &Key, payload: Bytes, now_ms: i64) -> Command {
        let abs = self.target.at_least(5, 0);
        let ttl = match k.expire_ms {
            None => 0,
            Some(t) if abs => t,
            // Relative TTL for servers without ABSTTL; never 0 (that would mean "no expiry").
            Some(t) => (t - now_ms).max(1),
        };
        let mut c = vec![
            Bytes::from_static(b"RESTORE"),
            k.key.clone(),
            int(ttl),
            payload,
            Bytes::from_static(b"REPLACE"),
        ];
        if abs {
            if k.expire_ms.is_some() {
                c.push(Bytes::from_static(b"ABSTTL"));
            }
            if let Some(idle) = k.idle_secs {
                c.extend([Bytes::from_static(b"IDLETIME"), int(idle)]);
            } else if let Some(freq) = k.lfu_freq {
                c.extend([Bytes::from_static(b"FREQ"), int(freq)]);
            }
        }
        c
    }
}

/// A group's entries-read counter where the file has none (stream v1), the way Redis's loader
/// derives it (`streamEstimateDistanceFromFirstEverEntry` in t_stream.c, with the v1 loader's
/// entries-added = length and max-deleted = 0-0): exact at the ends of the stream, -1
/// ("unknown") in between.
fn estimate_entries_read(m: &StreamMeta, group_id: StreamId) -> i64 {
    let added = i64::try_from(m.entries_added.unwrap_or(m.length)).unwrap_or(i64::MAX);
    let length = i64::try_from(m.length).unwrap_or(i64::MAX);
    let first = m.first_id.unwrap_or_default();
    let max_deleted = m.max_deleted_id.unwrap_or_default();
    let zero = StreamId::default();
    if added == 0 {
        return 0;
    }
    if length == 0 && group_id <= m.last_id {
        return added;
    }
    if group_id != zero && group_id < max_deleted {
        return -1;
    }
    if group_id == m.last_id {
        return added;
    }
    if group_id > m.last_id {
        return -1;
    }
    if max_deleted == zero || max_deleted < first {
        if group_id < first {
            return added - length;
        }
        if group_id == first {
            return added - length + 1;
        }
    }
    -1
}

fn id(i: StreamId) -> Bytes {
    Bytes::from(i.to_string())
}

#[cfg(test)]
mod tests;
