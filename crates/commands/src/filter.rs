//! Which commands (and which of their keys) to sync, and into which database.
//!
//! A [`Filter`] is built once from the user's configuration by a [`FilterBuilder`] and then
//! asked, for each command of the stream, for a [`Decision`]: keep it (in a target database),
//! rewrite it (drop some keys of a splittable multi-key command, or renumber a database
//! argument), or drop it with a [`DropReason`].
//!
//! **Offsets.** The filter only returns a decision; it never sees or counts bytes. The caller
//! must count every command it received towards the replication offset it acknowledges,
//! whatever the decision: a dropped command is still consumed.
//!
//! **Order of the checks** (the first that drops wins):
//! 1. `MULTI`, `EXEC`, `DISCARD` are always kept (the sink wraps what survives).
//! 2. `SELECT n`: dropped if `n` is excluded, else rewritten to the mapped number. The caller
//!    tracks the *source* database from every `SELECT` it receives, kept or not, and passes it
//!    to [`Filter::decide`].
//! 3. The current database: excluded → dropped; mapped; a cluster target needs database 0
//!    after mapping, otherwise [`Error::ClusterDb`].
//! 4. Command include / exclude (by name: `set`, or `function` for all its subcommands, or
//!    `function|load`).
//! 5. Data type include / exclude ([`DataType`] from the command's ACL categories; commands
//!    with no single data type, such as `DEL`, `EXPIRE`, `RENAME` or `SORT`, are not dropped
//!    by type filters: their key's type is not known from the command).
//! 6. Keys: the heartbeat prefix [`HEARTBEAT_PREFIX`] is always dropped; then key include
//!    patterns (a key must match one, if any are given) and exclude patterns (a key matching
//!    one is dropped): prefix, Redis glob ([`crate::glob_match`]) or regex. When a multi-key
//!    command has keys on both sides, `DEL`/`UNLINK`/`EXISTS`/`TOUCH`/`MSET` are rewritten to
//!    the kept keys; any other command is an [`Error::MixedKeys`].
//! 7. Database arguments (`SWAPDB a b`, `MOVE key db`, `COPY … DB db`) are mapped; a command
//!    that would move data between an included and an excluded database is an
//!    [`Error::DbFilterConflict`], and on a cluster target an [`Error::ClusterDb`].
//!
//! Keyless commands (`FLUSHALL`, `FUNCTION LOAD`, `SCRIPT LOAD`, …) pass the key filters.

use regex::bytes::Regex;

use crate::error::{Error, show};
use crate::glob::glob_match;
use crate::keys::{KeyPlan, KeyPos, key_positions};
use crate::table::{AclCategories, CommandDef, command, lookup};

/// The key prefix of redis-sync's heartbeat keys; commands on them are always dropped.
pub const HEARTBEAT_PREFIX: &[u8] = b"redis-sync:heartbeat:";

/// The data type a command works on, from its ACL categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// Strings, bitmaps and HyperLogLogs (`@string`, `@bitmap`, `@hyperloglog`).
    String,
    /// `@list`.
    List,
    /// `@hash`.
    Hash,
    /// `@set`.
    Set,
    /// Sorted sets and geo indexes (`@sortedset`, `@geo`).
    SortedSet,
    /// `@stream`.
    Stream,
}

impl DataType {
    const ALL: [(DataType, &'static str); 6] = [
        (DataType::String, "string"),
        (DataType::List, "list"),
        (DataType::Hash, "hash"),
        (DataType::Set, "set"),
        (DataType::SortedSet, "zset"),
        (DataType::Stream, "stream"),
    ];

    /// The type called `name` as `TYPE` names it (`string`, `list`, `hash`, `set`, `zset`,
    /// `stream`; also `sortedset`, `geo`, `bitmap`, `hyperloglog`), case-insensitive.
    pub fn from_name(name: &str) -> Option<DataType> {
        let n = name.to_ascii_lowercase();
        match n.as_str() {
            "sortedset" | "geo" => return Some(DataType::SortedSet),
            "bitmap" | "hyperloglog" => return Some(DataType::String),
            _ => {}
        }
        DataType::ALL.iter().find(|(_, s)| *s == n).map(|(t, _)| *t)
    }

    /// The data type of a command, if it names exactly one.
    pub fn of(def: &CommandDef) -> Option<DataType> {
        let acl = def.acl();
        let mut found = None;
        for (cats, t) in [
            (
                AclCategories::STRING | AclCategories::BITMAP | AclCategories::HYPERLOGLOG,
                DataType::String,
            ),
            (AclCategories::LIST, DataType::List),
            (AclCategories::HASH, DataType::Hash),
            (AclCategories::SET, DataType::Set),
            (
                AclCategories::SORTEDSET | AclCategories::GEO,
                DataType::SortedSet,
            ),
            (AclCategories::STREAM, DataType::Stream),
        ] {
            if acl.intersects(cats) {
                if found.is_some() {
                    return None;
                }
                found = Some(t);
            }
        }
        found
    }
}

/// Why a command was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// It touches redis-sync's heartbeat key (the caller may time the round trip with it).
    Heartbeat,
    /// Its database is excluded.
    Db(u32),
    /// The command filter.
    Command,
    /// The data type filter.
    Type(DataType),
    /// The key filter dropped all its keys.
    Key,
}

/// What to do with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<A> {
    /// Apply it unchanged, in target database `db`.
    Keep {
        /// The target database (after mapping).
        db: u32,
    },
    /// Apply `args` instead, in target database `db`.
    Rewrite {
        /// The target database (after mapping).
        db: u32,
        /// The rewritten command.
        args: Vec<A>,
    },
    /// Do not apply it (still count its bytes).
    Drop(DropReason),
}

#[derive(Debug, Clone)]
enum Pattern {
    Prefix(Vec<u8>),
    Glob(Vec<u8>),
    Regex(Regex),
}

impl Pattern {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Pattern::Prefix(p) => key.starts_with(p),
            Pattern::Glob(g) => glob_match(g, key),
            Pattern::Regex(r) => r.is_match(key),
        }
    }
}

/// Builds a [`Filter`]; every method adds to what is there.
///
/// ```
/// use redis_sync_commands::{Decision, DropReason, FilterBuilder};
/// use bytes::Bytes;
///
/// let f = FilterBuilder::default()
///     .exclude_key_prefix("tmp:")
///     .map_db(3, 0)
///     .cluster_target(true)
///     .build()
///     .expect("valid filter");
/// let cmd = |a: &[&str]| a.iter().map(|s| Bytes::from(s.to_string())).collect::<Vec<_>>();
/// assert_eq!(f.decide(3, &cmd(&["SET", "a", "1"])).unwrap(), Decision::Keep { db: 0 });
/// assert_eq!(f.decide(3, &cmd(&["SET", "tmp:a", "1"])).unwrap(), Decision::Drop(DropReason::Key));
/// assert_eq!(
///     f.decide(3, &cmd(&["DEL", "a", "tmp:b"])).unwrap(),
///     Decision::Rewrite { db: 0, args: cmd(&["DEL", "a"]) }
/// );
/// assert!(f.decide(1, &cmd(&["SET", "a", "1"])).is_err()); // db 1 has no place on a cluster
/// ```
#[derive(Debug, Clone, Default)]
pub struct FilterBuilder {
    db_include: Vec<u32>,
    db_exclude: Vec<u32>,
    db_map: Vec<(u32, u32)>,
    cluster: bool,
    keys: Vec<(bool, &'static str, String)>,
    types: Vec<(bool, String)>,
    commands: Vec<(bool, String)>,
}

impl FilterBuilder {
    /// Sync only these databases (may be called repeatedly).
    pub fn include_db(mut self, db: u32) -> Self {
        self.db_include.push(db);
        self
    }
    /// Never sync this database.
    pub fn exclude_db(mut self, db: u32) -> Self {
        self.db_exclude.push(db);
        self
    }
    /// Write source database `from` into target database `to`.
    pub fn map_db(mut self, from: u32, to: u32) -> Self {
        self.db_map.retain(|(f, _)| *f != from);
        self.db_map.push((from, to));
        self
    }
    /// The target is a cluster: only database 0 exists there.
    pub fn cluster_target(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }
    /// Keep only keys starting with `prefix` (or matching another include pattern).
    pub fn include_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys.push((true, "prefix", prefix.into()));
        self
    }
    /// Drop keys starting with `prefix`.
    pub fn exclude_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys.push((false, "prefix", prefix.into()));
        self
    }
    /// Keep only keys matching the Redis glob (or another include pattern).
    pub fn include_key_glob(mut self, glob: impl Into<String>) -> Self {
        self.keys.push((true, "glob", glob.into()));
        self
    }
    /// Drop keys matching the Redis glob.
    pub fn exclude_key_glob(mut self, glob: impl Into<String>) -> Self {
        self.keys.push((false, "glob", glob.into()));
        self
    }
    /// Keep only keys matching the regex (unanchored; use `^…$` to anchor).
    pub fn include_key_regex(mut self, regex: impl Into<String>) -> Self {
        self.keys.push((true, "regex", regex.into()));
        self
    }
    /// Drop keys matching the regex.
    pub fn exclude_key_regex(mut self, regex: impl Into<String>) -> Self {
        self.keys.push((false, "regex", regex.into()));
        self
    }
    /// Keep only commands of this data type (see [`DataType::from_name`]).
    pub fn include_type(mut self, name: impl Into<String>) -> Self {
        self.types.push((true, name.into()));
        self
    }
    /// Drop commands of this data type.
    pub fn exclude_type(mut self, name: impl Into<String>) -> Self {
        self.types.push((false, name.into()));
        self
    }
    /// Keep only these commands (`set`, `function` or `function|load`; case-insensitive).
    pub fn include_command(mut self, name: impl Into<String>) -> Self {
        self.commands.push((true, name.into()));
        self
    }
    /// Drop these commands.
    pub fn exclude_command(mut self, name: impl Into<String>) -> Self {
        self.commands.push((false, name.into()));
        self
    }

    /// Checks every name and pattern and builds the filter.
    pub fn build(self) -> Result<Filter, Error> {
        let mut f = Filter {
            db_include: self.db_include,
            db_exclude: self.db_exclude,
            db_map: self.db_map,
            cluster: self.cluster,
            ..Filter::default()
        };
        for (include, what, text) in self.keys {
            let p = match what {
                "prefix" => Pattern::Prefix(text.into_bytes()),
                "glob" => Pattern::Glob(text.into_bytes()),
                _ => Pattern::Regex(Regex::new(&text).map_err(|e| Error::BadPattern {
                    what: "regex",
                    pattern: text.clone(),
                    reason: e.to_string(),
                })?),
            };
            if include {
                f.key_include.push(p)
            } else {
                f.key_exclude.push(p)
            }
        }
        for (include, name) in self.types {
            let t = DataType::from_name(&name).ok_or_else(|| Error::BadFilterName {
                what: "data type",
                name: name.clone(),
                valid: "string, list, hash, set, zset, stream (also sortedset, geo, bitmap, hyperloglog)".into(),
            })?;
            if include {
                f.type_include.push(t)
            } else {
                f.type_exclude.push(t)
            }
        }
        for (include, name) in self.commands {
            let lower = name.to_ascii_lowercase();
            let (top, sub) = match lower.split_once(['|', ' ']) {
                Some((t, s)) => (t, Some(s)),
                None => (lower.as_str(), None),
            };
            let known = command(top.as_bytes())
                .is_some_and(|c| sub.is_none_or(|s| c.subcommand(s.as_bytes()).is_some()));
            if !known {
                return Err(Error::BadFilterName {
                    what: "command",
                    name,
                    valid: "a command name as COMMAND INFO lists it, e.g. set, function or function|load".into(),
                });
            }
            let full = match sub {
                Some(s) => format!("{top}|{s}"),
                None => top.to_string(),
            };
            if include {
                f.cmd_include.push(full)
            } else {
                f.cmd_exclude.push(full)
            }
        }
        Ok(f)
    }
}

/// A built filter; see the module docs for what it decides and in which order.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    db_include: Vec<u32>,
    db_exclude: Vec<u32>,
    db_map: Vec<(u32, u32)>,
    cluster: bool,
    key_include: Vec<Pattern>,
    key_exclude: Vec<Pattern>,
    type_include: Vec<DataType>,
    type_exclude: Vec<DataType>,
    cmd_include: Vec<String>,
    cmd_exclude: Vec<String>,
}

fn parse_db(command: &CommandDef, arg: &[u8]) -> Result<u32, Error> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::BadDb {
            command: command.display_name(),
            value: show(arg),
        })
}

impl Filter {
    /// A filter that keeps everything but the heartbeat key.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// True when source database `db` is synced.
    pub fn db_included(&self, db: u32) -> bool {
        (self.db_include.is_empty() || self.db_include.contains(&db))
            && !self.db_exclude.contains(&db)
    }

    /// The target database for source database `db`: `Ok(None)` when it is excluded,
    /// [`Error::ClusterDb`] when a cluster target has no such database (for the RDB phase too).
    pub fn target_db(&self, db: u32) -> Result<Option<u32>, Error> {
        if !self.db_included(db) {
            return Ok(None);
        }
        let to = self
            .db_map
            .iter()
            .find(|(f, _)| *f == db)
            .map_or(db, |(_, t)| *t);
        if self.cluster && to != 0 {
            return Err(Error::ClusterDb {
                command: "data".into(),
                db,
            });
        }
        Ok(Some(to))
    }

    /// True when `key` is synced (heartbeat prefix and key patterns; for RDB entries too).
    pub fn key_passes(&self, key: &[u8]) -> bool {
        if key.starts_with(HEARTBEAT_PREFIX) {
            return false;
        }
        (self.key_include.is_empty() || self.key_include.iter().any(|p| p.matches(key)))
            && !self.key_exclude.iter().any(|p| p.matches(key))
    }

    /// True when values of type `t` are synced (for RDB entries).
    pub fn type_passes(&self, t: DataType) -> bool {
        (self.type_include.is_empty() || self.type_include.contains(&t))
            && !self.type_exclude.contains(&t)
    }

    fn command_passes(&self, def: &CommandDef) -> bool {
        let top = def.name.split('|').next().unwrap_or(def.name);
        let hit = |list: &[String]| list.iter().any(|n| n == def.name || n == top);
        (self.cmd_include.is_empty() || hit(&self.cmd_include)) && !hit(&self.cmd_exclude)
    }

    fn map_db_arg(&self, command: &CommandDef, db: u32) -> Result<Option<u32>, Error> {
        self.target_db(db).map_err(|_| Error::ClusterDb {
            command: command.display_name(),
            db,
        })
    }

    /// Decides what to do with `args` (name first), received while source database `db` was
    /// selected. Unknown commands are [`Error::UnknownCommand`] (the caller may pass them on).
    pub fn decide<A>(&self, db: u32, args: &[A]) -> Result<Decision<A>, Error>
    where
        A: AsRef<[u8]> + Clone + From<Vec<u8>>,
    {
        let Some(name) = args.first() else {
            return Err(Error::Empty);
        };
        let unknown = || Error::UnknownCommand {
            name: show(name.as_ref()),
            sources: crate::classify::source_names(),
        };
        let plan = crate::table::plan(name.as_ref()).ok_or_else(unknown)?;
        // Most writes have one key at a fixed place: no key vector (and no allocation).
        if let (false, KeyPlan::One { index, flags }) = (plan.container, plan.keys) {
            let one = [KeyPos {
                index: index as usize,
                flags,
            }];
            let keys = if one[0].index < args.len() {
                &one[..]
            } else {
                &[]
            };
            return self.decide_with_keys(db, plan.def, args, keys);
        }
        let def = lookup(args).ok_or_else(unknown)?;
        let mut keys = Vec::new();
        key_positions(def, args, &mut keys)?;
        self.decide_with_keys(db, def, args, &keys)
    }

    /// [`decide`](Self::decide) for a command already classified (definition and key positions).
    pub fn decide_with_keys<A>(
        &self,
        db: u32,
        def: &CommandDef,
        args: &[A],
        keys: &[KeyPos],
    ) -> Result<Decision<A>, Error>
    where
        A: AsRef<[u8]> + Clone + From<Vec<u8>>,
    {
        // Names for messages are built only on the error paths (no allocation per command).
        let cmd = def;
        match def.name {
            "multi" | "exec" | "discard" => {
                return Ok(Decision::Keep {
                    db: self.target_db(db).ok().flatten().unwrap_or(0),
                });
            }
            "select" => {
                let Some(arg) = args.get(1) else {
                    return Ok(Decision::Keep { db });
                };
                let n = parse_db(cmd, arg.as_ref())?;
                return match self.map_db_arg(cmd, n)? {
                    None => Ok(Decision::Drop(DropReason::Db(n))),
                    Some(to) if to == n => Ok(Decision::Keep { db: to }),
                    Some(to) => Ok(Decision::Rewrite {
                        db: to,
                        args: vec![args[0].clone(), A::from(to.to_string().into_bytes())],
                    }),
                };
            }
            "swapdb" => return self.swapdb(cmd, args),
            _ => {}
        }
        let Some(target) = self.map_db_arg(cmd, db)? else {
            return Ok(Decision::Drop(DropReason::Db(db)));
        };
        if !self.command_passes(def) {
            return Ok(Decision::Drop(DropReason::Command));
        }
        if let Some(t) = DataType::of(def)
            && !self.type_passes(t)
        {
            return Ok(Decision::Drop(DropReason::Type(t)));
        }
        let mut out = None;
        let (mut total, mut passing) = (0, 0);
        for k in keys.iter().filter(|k| k.is_key()) {
            total += 1;
            passing += usize::from(self.key_passes(args[k.index].as_ref()));
        }
        if passing < total {
            let real: Vec<&KeyPos> = keys.iter().filter(|k| k.is_key()).collect();
            if passing == 0 {
                let heartbeat = real
                    .iter()
                    .any(|k| args[k.index].as_ref().starts_with(HEARTBEAT_PREFIX));
                return Ok(Decision::Drop(if heartbeat {
                    DropReason::Heartbeat
                } else {
                    DropReason::Key
                }));
            }
            let per_key = match def.name {
                "del" | "unlink" | "exists" | "touch" => 1,
                "mset" => 2,
                _ => {
                    let (kept, dropped): (Vec<&&KeyPos>, Vec<&&KeyPos>) = real
                        .iter()
                        .partition(|k| self.key_passes(args[k.index].as_ref()));
                    let names =
                        |v: Vec<&&KeyPos>| v.iter().map(|k| show(args[k.index].as_ref())).collect();
                    return Err(Error::MixedKeys {
                        command: cmd.display_name(),
                        kept: names(kept),
                        dropped: names(dropped),
                    });
                }
            };
            let kept: Vec<KeyPos> = real
                .iter()
                .filter(|k| self.key_passes(args[k.index].as_ref()))
                .map(|k| **k)
                .collect();
            // The kept keys (with their values), in their original order.
            let mut rebuilt = vec![args[0].clone()];
            for k in &kept {
                rebuilt.extend_from_slice(&args[k.index..(k.index + per_key).min(args.len())]);
            }
            out = Some(rebuilt);
        }
        let db_arg = match def.name {
            "move" => Some(2),
            "copy" => (3..args.len().saturating_sub(1))
                .find(|&i| args[i].as_ref().eq_ignore_ascii_case(b"db"))
                .map(|i| i + 1),
            _ => None,
        };
        if let Some(i) = db_arg.filter(|&i| i < args.len()) {
            let other = parse_db(cmd, args[i].as_ref())?;
            match self.map_db_arg(cmd, other)? {
                None => {
                    return Err(Error::DbFilterConflict {
                        command: cmd.display_name(),
                        from: db,
                        to: other,
                        why: "the other database is excluded by the filter",
                    });
                }
                Some(to) if to == other => {}
                Some(to) => {
                    let mut v = out.take().unwrap_or_else(|| args.to_vec());
                    v[i] = A::from(to.to_string().into_bytes());
                    out = Some(v);
                }
            }
        }
        Ok(match out {
            Some(args) => Decision::Rewrite { db: target, args },
            None => Decision::Keep { db: target },
        })
    }

    fn swapdb<A>(&self, cmd: &CommandDef, args: &[A]) -> Result<Decision<A>, Error>
    where
        A: AsRef<[u8]> + Clone + From<Vec<u8>>,
    {
        let (Some(a), Some(b)) = (args.get(1), args.get(2)) else {
            return Ok(Decision::Keep { db: 0 });
        };
        let (a, b) = (parse_db(cmd, a.as_ref())?, parse_db(cmd, b.as_ref())?);
        match (self.map_db_arg(cmd, a)?, self.map_db_arg(cmd, b)?) {
            (None, None) => Ok(Decision::Drop(DropReason::Db(a))),
            (Some(ta), Some(tb)) if (ta, tb) == (a, b) => Ok(Decision::Keep { db: 0 }),
            (Some(ta), Some(tb)) => Ok(Decision::Rewrite {
                db: 0,
                args: vec![
                    args[0].clone(),
                    A::from(ta.to_string().into_bytes()),
                    A::from(tb.to_string().into_bytes()),
                ],
            }),
            _ => Err(Error::DbFilterConflict {
                command: cmd.display_name(),
                from: a,
                to: b,
                why: "one of the two databases is excluded by the filter",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::commands;

    /// `decide` (which takes the one-key plans without a key vector) gives what
    /// `decide_with_keys` gives with the table's key positions, for every command and
    /// subcommand and argument lists with kept, dropped and heartbeat keys.
    #[test]
    fn decide_agrees_with_decide_with_keys() {
        let filter = FilterBuilder::default()
            .exclude_key_prefix("tmp:")
            .exclude_key_glob("*{x}*")
            .map_db(1, 2)
            .build()
            .unwrap();
        let tokens = [
            "k",
            "tmp:a",
            "a{x}b",
            "redis-sync:heartbeat:1",
            "2",
            "1",
            "0",
            "STREAMS",
        ];
        let mut checked = 0;
        for def in commands()
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        {
            let name: Vec<&str> = def.name.split('|').collect();
            for extra in 0..5usize {
                for seed in 0..tokens.len() {
                    let mut args: Vec<Vec<u8>> =
                        name.iter().map(|n| n.as_bytes().to_vec()).collect();
                    args.extend(
                        (0..extra)
                            .map(|i| tokens[(seed + i * 5) % tokens.len()].as_bytes().to_vec()),
                    );
                    for db in [0, 1] {
                        let got = filter.decide(db, &args);
                        let d = lookup(&args).unwrap();
                        let mut keys = Vec::new();
                        let want = key_positions(d, &args, &mut keys)
                            .and_then(|()| filter.decide_with_keys(db, d, &args, &keys));
                        assert_eq!(got, want, "{db} {args:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
