//! Commands learned at run time from a server's own `COMMAND` / `COMMAND INFO` reply.
//!
//! The generated [table](crate::table) knows the commands of the servers it was read from,
//! not those of the modules a given server loads (RedisJSON's `JSON.SET`, RedisBloom's
//! `BF.ADD`, RedisTimeSeries' `TS.ADD`, RediSearch's `FT.*`, …): their names, arities and key
//! specs are only known to that server. Without their key positions a cluster target cannot
//! route them, a key filter cannot judge them, and a cross-slot `TS.MADD` goes unnoticed.
//!
//! Two steps: [`CommandSpecs::parse`] reads a decoded reply ([`ReplyValue`], RESP2 or RESP3
//! shapes) into owned specs (sans-IO, pure): name, arity, flags, ACL categories, tips, key
//! specs (`begin_search` index/keyword, `find_keys` range/keynum) and, for servers without key
//! specs (before 7.0), the legacy first/last/step triple. [`learn_commands`] then builds
//! `&'static` [`CommandDef`]s and [`Plan`]s for the usable ones and adds them to the
//! extension that [`crate::table`]'s look-up consults after the generated index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use bytes::Bytes;

use crate::error::{Error, show};
use crate::plan::Plan;
use crate::table::{
    self, AclCategories, BeginSearch, CommandDef, FindKeys, Flags, Form, KeySpec, KeySpecFlags,
    ServerSet,
};

/// One value of an already decoded reply: as much of RESP2 and RESP3 as `COMMAND` replies use.
/// The caller converts its own reply type into this (the crate has no RESP codec).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyValue {
    /// An integer.
    Int(i64),
    /// A bulk string, simple string or verbatim string.
    Text(Bytes),
    /// An array (or a RESP3 set).
    Array(Vec<ReplyValue>),
    /// A RESP3 map, pairs in wire order (RESP2 sends the same as a flat array).
    Map(Vec<(ReplyValue, ReplyValue)>),
    /// A null (`COMMAND INFO` of a name the server does not know), or anything else.
    Nil,
}

impl ReplyValue {
    fn text(&self) -> Option<&[u8]> {
        match self {
            ReplyValue::Text(b) => Some(b),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            ReplyValue::Int(i) => Some(*i),
            // Some proxies turn integers into strings; accept a decimal one.
            ReplyValue::Text(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    fn items(&self) -> &[ReplyValue] {
        match self {
            ReplyValue::Array(a) => a,
            _ => &[],
        }
    }

    /// The value of `key` in a map: a RESP3 map, or a RESP2 flat `k1 v1 k2 v2 …` array.
    fn get(&self, key: &str) -> Option<&ReplyValue> {
        let hit = |k: &ReplyValue| {
            k.text()
                .is_some_and(|t| t.eq_ignore_ascii_case(key.as_bytes()))
        };
        match self {
            ReplyValue::Map(pairs) => pairs.iter().find(|(k, _)| hit(k)).map(|(_, v)| v),
            ReplyValue::Array(a) => a.chunks_exact(2).find(|p| hit(&p[0])).map(|p| &p[1]),
            _ => None,
        }
    }

    fn lossy(&self) -> String {
        self.text().map(show).unwrap_or_default()
    }
}

/// One key spec as read from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawSpec {
    flags: KeySpecFlags,
    begin: RawBegin,
    find: FindKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RawBegin {
    Index(i32),
    Keyword { keyword: String, start_from: i32 },
    Unknown,
}

/// One command (or subcommand) as read from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawCommand {
    /// Lower case; a subcommand is `container|sub`.
    name: String,
    arity: i32,
    flags: Flags,
    acl: AclCategories,
    legacy: (i32, i32, i32),
    tips: Vec<String>,
    /// `None` when the server sends no key-spec field (before 7.0).
    key_specs: Option<Vec<RawSpec>>,
    subcommands: Vec<RawCommand>,
}

/// The commands of a `COMMAND` or `COMMAND INFO name…` reply, parsed (sans-IO, pure). Feed
/// them to [`learn_commands`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpecs {
    commands: Vec<RawCommand>,
}

impl CommandSpecs {
    /// Parses a whole `COMMAND` / `COMMAND INFO` reply: an array with one entry per command
    /// (null entries, for names the server does not know, are left out).
    ///
    /// Errors: [`Error::BadCommandReply`] when the reply or an entry does not have the shape
    /// every server since 2.8.13 sends (name, arity, flags, first key, last key, step, then
    /// from 6.0 ACL categories and from 7.0 tips, key specs and subcommands).
    pub fn parse(reply: &ReplyValue) -> Result<CommandSpecs, Error> {
        let ReplyValue::Array(entries) = reply else {
            return Err(bad("the reply is not an array".into()));
        };
        let commands = entries
            .iter()
            .filter(|e| !matches!(e, ReplyValue::Nil))
            .map(parse_command)
            .collect::<Result<_, _>>()?;
        Ok(CommandSpecs { commands })
    }

    /// The names of the parsed commands (lower case), in reply order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.commands.iter().map(|c| c.name.as_str())
    }

    /// Number of commands parsed (subcommands not counted).
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// True when the reply held no command.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

fn bad(detail: String) -> Error {
    Error::BadCommandReply { detail }
}

fn int32(v: Option<&ReplyValue>, what: &str, name: &str) -> Result<i32, Error> {
    v.and_then(ReplyValue::int)
        .and_then(|i| i32::try_from(i).ok())
        .ok_or_else(|| bad(format!("{name}: {what} is not a small integer")))
}

fn parse_command(entry: &ReplyValue) -> Result<RawCommand, Error> {
    let f = entry.items();
    let name = f
        .first()
        .and_then(ReplyValue::text)
        .ok_or_else(|| bad("an entry without a command name".into()))?;
    let name = std::str::from_utf8(name)
        .map_err(|_| bad(format!("command name {} is not UTF-8", show(name))))?
        .to_ascii_lowercase();
    if f.len() < 6 {
        return Err(bad(format!(
            "{name}: {} fields, expected at least 6",
            f.len()
        )));
    }
    let words = |i: usize| f.get(i).map_or(&[][..], ReplyValue::items).iter();
    let flags = words(2)
        .filter_map(|w| Flags::from_name(&w.lossy()))
        .fold(Flags::EMPTY, Flags::union);
    let acl = words(6)
        .filter_map(|w| AclCategories::from_name(&w.lossy()))
        .fold(AclCategories::EMPTY, AclCategories::union);
    let tips = words(7).map(ReplyValue::lossy).collect();
    let key_specs = match f.get(8) {
        Some(specs) => Some(
            specs
                .items()
                .iter()
                .map(|s| parse_key_spec(s, &name))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let subcommands = words(9).map(parse_command).collect::<Result<_, _>>()?;
    Ok(RawCommand {
        arity: int32(f.get(1), "arity", &name)?,
        legacy: (
            int32(f.get(3), "first key", &name)?,
            int32(f.get(4), "last key", &name)?,
            int32(f.get(5), "key step", &name)?,
        ),
        name,
        flags,
        acl,
        tips,
        key_specs,
        subcommands,
    })
}

fn parse_key_spec(spec: &ReplyValue, name: &str) -> Result<RawSpec, Error> {
    let flags = spec
        .get("flags")
        .map_or(&[][..], ReplyValue::items)
        .iter()
        .filter_map(|w| KeySpecFlags::from_name(&w.lossy()))
        .fold(KeySpecFlags::EMPTY, KeySpecFlags::union);
    let kind = |part: Option<&ReplyValue>| {
        part.and_then(|p| p.get("type"))
            .map(ReplyValue::lossy)
            .unwrap_or_default()
    };
    let begin_part = spec.get("begin_search");
    let b = begin_part.and_then(|p| p.get("spec"));
    let field =
        |part: Option<&ReplyValue>, key: &str| int32(part.and_then(|p| p.get(key)), key, name);
    let begin = match kind(begin_part).as_str() {
        "index" => RawBegin::Index(field(b, "index")?),
        "keyword" => RawBegin::Keyword {
            keyword: b
                .and_then(|s| s.get("keyword"))
                .map(ReplyValue::lossy)
                .ok_or_else(|| bad(format!("{name}: a keyword key spec without its keyword")))?,
            start_from: field(b, "startfrom")?,
        },
        _ => RawBegin::Unknown,
    };
    let find_part = spec.get("find_keys");
    let s = find_part.and_then(|p| p.get("spec"));
    let find = match kind(find_part).as_str() {
        "range" => FindKeys::Range {
            last_key: field(s, "lastkey")?,
            step: field(s, "keystep")?,
            limit: field(s, "limit")?,
        },
        "keynum" => FindKeys::KeyNum {
            key_num_index: field(s, "keynumidx")?,
            first_key: field(s, "firstkey")?,
            step: field(s, "keystep")?,
        },
        _ => FindKeys::Unknown,
    };
    Ok(RawSpec { flags, begin, find })
}

impl RawCommand {
    /// The key specs to learn, or `None` when the reply cannot say where the keys are.
    fn usable_specs(&self) -> Option<Vec<RawSpec>> {
        let movable = self.flags.contains(Flags::MOVABLEKEYS);
        let specs = match &self.key_specs {
            Some(specs) => specs.clone(),
            // Before 7.0: the legacy triple, as Redis 7 itself turns it into a range spec
            // (`populateCommandLegacyRangeSpec`): last key relative to the first, or from the
            // end when negative.
            None => {
                let (first, last, step) = self.legacy;
                if first <= 0 {
                    Vec::new()
                } else {
                    vec![RawSpec {
                        flags: KeySpecFlags::EMPTY,
                        begin: RawBegin::Index(first),
                        find: FindKeys::Range {
                            last_key: if last >= 0 { last - first } else { last },
                            step,
                            limit: 0,
                        },
                    }]
                }
            }
        };
        if specs.is_empty() && movable {
            return None; // only the module's getkeys callback knows
        }
        let complete = specs.iter().all(|s| {
            s.begin != RawBegin::Unknown
                && s.find != FindKeys::Unknown
                && !s.flags.contains(KeySpecFlags::INCOMPLETE)
        });
        complete.then_some(specs)
    }

    /// True when this command and every subcommand have findable keys and a name the
    /// look-up can hold.
    fn usable(&self) -> bool {
        self.name.len() <= MAX_NAME
            && !self.name.is_empty()
            && self.usable_specs().is_some()
            && self.subcommands.iter().all(RawCommand::usable)
    }

    /// The definition, allocated for the rest of the process (see the module docs).
    fn leak(&self) -> CommandDef {
        let leak_str = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        let key_specs: Vec<KeySpec> = self
            .usable_specs()
            .unwrap_or_default()
            .into_iter()
            .map(|s| KeySpec {
                flags: s.flags,
                begin: match s.begin {
                    RawBegin::Index(i) => BeginSearch::Index(i),
                    RawBegin::Keyword {
                        keyword,
                        start_from,
                    } => BeginSearch::Keyword {
                        keyword: leak_str(&keyword),
                        start_from,
                    },
                    RawBegin::Unknown => BeginSearch::Unknown,
                },
                find: s.find,
            })
            .collect();
        let tips: Vec<&'static str> = self.tips.iter().map(|t| leak_str(t)).collect();
        let form = Form {
            // No source of the generated table has it: this is how a learned command is told
            // apart (see `CommandDef::is_learned`).
            servers: ServerSet(0),
            arity: self.arity,
            flags: self.flags,
            acl: self.acl,
            legacy_keys: self.legacy,
            tips: Box::leak(tips.into_boxed_slice()),
            since: "",
            key_specs: Box::leak(key_specs.into_boxed_slice()),
        };
        let mut subcommands: Vec<CommandDef> = self.subcommands.iter().map(Self::leak).collect();
        subcommands.sort_by_key(|c| c.name);
        CommandDef {
            name: leak_str(&self.name),
            group: "module",
            servers: ServerSet(0),
            forms: Box::leak(Box::new([form])),
            subcommands: Box::leak(subcommands.into_boxed_slice()),
        }
    }
}

/// What [`learn_commands`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Learned {
    /// The commands learned now (lower-case names), in reply order.
    pub learned: Vec<String>,
    /// Commands already known, from the generated table or an earlier call: left as they are.
    pub known: usize,
    /// Commands whose keys the reply cannot say (an `unknown` or `incomplete` key spec, or
    /// `movablekeys` without key specs): left unknown.
    pub keys_unknown: Vec<String>,
}

/// Longest name the extension holds (module command names are short; the look-up lowers a
/// name into a buffer of this size rather than allocating).
const MAX_NAME: usize = 64;

/// Lower-case name to the plan of a learned command. Plans are allocated once and never
/// freed, so look-ups hand out `&'static` references.
type Extension = HashMap<Box<[u8]>, &'static Plan>;

static EXTENSION: RwLock<Option<Extension>> = RwLock::new(None);
/// Set once anything is learned: look-ups of unknown names skip the lock until then.
static ANY: AtomicBool = AtomicBool::new(false);

/// Adds the commands of `specs` that the generated table lacks to the process-wide extension
/// of the table, and says which were learned.
///
/// From then on [`lookup`](crate::lookup), [`command`](crate::command), the
/// [`Classifier`](crate::Classifier), [`Filter::decide`](crate::Filter::decide) and the
/// cluster splitters know them after the generated table's commands; their definitions say
/// [`CommandDef::is_learned`]. Names the generated table has, and names learned before, are
/// never replaced: a server (or a module) cannot change what a core command's keys are, and a
/// definition handed out earlier never changes meaning.
///
/// Process-wide rather than a value passed around, because every place that resolves a
/// command name (the classifier, the filter, a sink's cluster routing, the cross-slot checks)
/// must agree on a module command's keys, as the server's own command table is one per
/// process. Learned definitions live until the process ends (a few hundred small entries at
/// most).
///
/// Not learned ([`Learned::keys_unknown`]): a command whose keys the reply cannot say — a key
/// spec whose search or find is `unknown` or that is marked `incomplete`, or `movablekeys`
/// without key specs (a module's `getkeys-api` callback, which only the server can run).
/// Callers keep treating those as unknown commands.
///
/// A learned command is always applied by a replica ([`SyncAction::Apply`](crate::SyncAction)),
/// whatever its flags: a master sends a module command only because the module replicated it.
///
/// ```
/// use redis_sync_commands::{CommandSpecs, ReplyValue, learn_commands, lookup, key_positions};
///
/// // What `COMMAND INFO MYMOD.PUT` answers (RESP2: key specs as flat key/value arrays).
/// let t = |s: &str| ReplyValue::Text(s.as_bytes().to_vec().into());
/// let a = ReplyValue::Array;
/// let spec = a(vec![
///     t("flags"), a(vec![t("RW"), t("update")]),
///     t("begin_search"), a(vec![t("type"), t("index"), t("spec"), a(vec![t("index"), ReplyValue::Int(1)])]),
///     t("find_keys"), a(vec![
///         t("type"), t("range"),
///         t("spec"), a(vec![t("lastkey"), ReplyValue::Int(0), t("keystep"), ReplyValue::Int(1), t("limit"), ReplyValue::Int(0)]),
///     ]),
/// ]);
/// let entry = a(vec![
///     t("mymod.put"), ReplyValue::Int(-3), a(vec![t("write"), t("module")]),
///     ReplyValue::Int(1), ReplyValue::Int(1), ReplyValue::Int(1),
///     a(vec![]), a(vec![]), a(vec![spec]), a(vec![]),
/// ]);
/// let specs = CommandSpecs::parse(&a(vec![entry])).expect("a COMMAND INFO reply");
/// let learned = learn_commands(&specs);
/// assert_eq!(learned.learned, ["mymod.put"]);
///
/// let args = ["MYMOD.PUT", "user:1", "x"];
/// let mut keys = Vec::new();
/// key_positions(lookup(&args).expect("learned"), &args, &mut keys).expect("keys");
/// assert_eq!(keys[0].index, 1);
/// ```
pub fn learn_commands(specs: &CommandSpecs) -> Learned {
    let mut out = Learned::default();
    let mut guard = EXTENSION.write().unwrap_or_else(PoisonError::into_inner);
    let ext = guard.get_or_insert_with(HashMap::new);
    for c in &specs.commands {
        let key = c.name.as_bytes();
        if table::static_plan(key).is_some() || ext.contains_key(key) {
            out.known += 1;
            continue;
        }
        if !c.usable() {
            out.keys_unknown.push(c.name.clone());
            continue;
        }
        let def: &'static CommandDef = Box::leak(Box::new(c.leak()));
        let plan: &'static Plan = Box::leak(Box::new(Plan::of(def)));
        ext.insert(key.into(), plan);
        out.learned.push(c.name.clone());
    }
    if !ext.is_empty() {
        ANY.store(true, Ordering::Release);
    }
    out
}

/// The plan of a learned command called `name` (ASCII case-insensitive).
#[inline(never)]
pub(crate) fn plan(name: &[u8]) -> Option<&'static Plan> {
    if !ANY.load(Ordering::Acquire) || name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let guard = EXTENSION.read().unwrap_or_else(PoisonError::into_inner);
    guard.as_ref()?.get(&*lower).copied()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Classifier, Route, SyncAction, hash_slot, key_positions, lookup};

    fn t(s: &str) -> ReplyValue {
        ReplyValue::Text(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn a(v: Vec<ReplyValue>) -> ReplyValue {
        ReplyValue::Array(v)
    }
    fn i(n: i64) -> ReplyValue {
        ReplyValue::Int(n)
    }

    fn index_range(first: i64, last: i64, step: i64) -> ReplyValue {
        a(vec![
            t("flags"),
            a(vec![t("RW"), t("update")]),
            t("begin_search"),
            a(vec![
                t("type"),
                t("index"),
                t("spec"),
                a(vec![t("index"), i(first)]),
            ]),
            t("find_keys"),
            a(vec![
                t("type"),
                t("range"),
                t("spec"),
                a(vec![
                    t("lastkey"),
                    i(last),
                    t("keystep"),
                    i(step),
                    t("limit"),
                    i(0),
                ]),
            ]),
        ])
    }

    fn entry(
        name: &str,
        flags: &[&str],
        legacy: (i64, i64, i64),
        specs: Option<Vec<ReplyValue>>,
    ) -> ReplyValue {
        let mut f = vec![
            t(name),
            i(-2),
            a(flags.iter().map(|f| t(f)).collect()),
            i(legacy.0),
            i(legacy.1),
            i(legacy.2),
        ];
        if let Some(specs) = specs {
            f.extend([a(vec![]), a(vec![]), a(specs), a(vec![])]);
        }
        a(f)
    }

    #[test]
    fn learns_module_commands_and_never_core_ones() {
        let reply = a(vec![
            entry(
                "tmod.set",
                &["write", "module"],
                (1, 1, 1),
                Some(vec![index_range(1, 0, 1)]),
            ),
            entry(
                "TMOD.MSET",
                &["write", "module"],
                (1, -1, 2),
                Some(vec![index_range(1, -1, 2)]),
            ),
            ReplyValue::Nil,
            // A core name with different keys must not change the core command.
            entry(
                "get",
                &["readonly"],
                (2, 2, 1),
                Some(vec![index_range(2, 0, 1)]),
            ),
        ]);
        let specs = CommandSpecs::parse(&reply).unwrap();
        assert_eq!(
            specs.names().collect::<Vec<_>>(),
            ["tmod.set", "tmod.mset", "get"]
        );
        let got = learn_commands(&specs);
        assert_eq!(got.learned, ["tmod.set", "tmod.mset"]);
        assert_eq!(got.known, 1);
        let again = learn_commands(&specs);
        assert!(again.learned.is_empty() && again.known == 3);

        let mut keys = Vec::new();
        let args = ["GET", "k"];
        key_positions(lookup(&args).unwrap(), &args, &mut keys).unwrap();
        assert_eq!(keys[0].index, 1, "core GET unchanged");

        let mut c = Classifier::default();
        let got = c
            .classify(&["TMOD.MSET", "{a}1", "x", "{a}2", "y"])
            .unwrap();
        assert_eq!(got.keys.iter().map(|k| k.index).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(got.route, Route::Slot(hash_slot(b"a")));
        assert_eq!(got.sync, SyncAction::Apply);
        assert!(got.command.is_learned());
        let got = c.classify(&["tmod.mset", "a", "x", "b", "y"]).unwrap();
        assert_eq!(got.route, Route::CrossSlot);
        assert!(!lookup(&["get"]).unwrap().is_learned());
    }

    #[test]
    fn unknown_keys_are_not_learned() {
        let unknown = a(vec![
            t("flags"),
            a(vec![t("RO")]),
            t("begin_search"),
            a(vec![t("type"), t("unknown"), t("spec"), a(vec![])]),
            t("find_keys"),
            a(vec![t("type"), t("unknown"), t("spec"), a(vec![])]),
        ]);
        let reply = a(vec![
            entry(
                "umod.a",
                &["write", "module"],
                (0, 0, 0),
                Some(vec![unknown]),
            ),
            entry(
                "umod.b",
                &["write", "module", "movablekeys"],
                (0, 0, 0),
                Some(vec![]),
            ),
            entry(
                "umod.c",
                &["write", "module", "movablekeys"],
                (0, 0, 0),
                None,
            ),
            // No keys at all: learned, keyless.
            entry("umod.d", &["write", "module"], (0, 0, 0), Some(vec![])),
        ]);
        let got = learn_commands(&CommandSpecs::parse(&reply).unwrap());
        assert_eq!(got.keys_unknown, ["umod.a", "umod.b", "umod.c"]);
        assert_eq!(got.learned, ["umod.d"]);
        assert!(lookup(&["umod.a"]).is_none());
        assert_eq!(crate::classify(&["umod.d", "x"]).unwrap().route, Route::Any);
    }

    /// Before 7.0 there is no key-spec field: the legacy triple is the spec.
    #[test]
    fn legacy_triples() {
        let reply = a(vec![
            entry("lmod.one", &["write", "module"], (1, 1, 1), None),
            entry("lmod.pairs", &["write", "module"], (1, -1, 2), None),
            entry("lmod.two", &["write", "module"], (2, 3, 1), None),
        ]);
        learn_commands(&CommandSpecs::parse(&reply).unwrap());
        let keys = |args: &[&str]| -> Vec<usize> {
            let mut out = Vec::new();
            key_positions(lookup(args).unwrap(), args, &mut out).unwrap();
            out.iter().map(|k| k.index).collect()
        };
        assert_eq!(keys(&["lmod.one", "k", "v"]), [1]);
        assert_eq!(keys(&["lmod.pairs", "a", "1", "b", "2"]), [1, 3]);
        assert_eq!(keys(&["lmod.two", "x", "a", "b", "y"]), [2, 3]);
    }

    #[test]
    fn resp3_maps_and_keywords() {
        let m = |pairs: Vec<(&str, ReplyValue)>| {
            ReplyValue::Map(pairs.into_iter().map(|(k, v)| (t(k), v)).collect())
        };
        let spec = m(vec![
            ("flags", a(vec![t("RO"), t("access")])),
            (
                "begin_search",
                m(vec![
                    ("type", t("keyword")),
                    ("spec", m(vec![("keyword", t("KEYS")), ("startfrom", i(1))])),
                ]),
            ),
            (
                "find_keys",
                m(vec![
                    ("type", t("keynum")),
                    (
                        "spec",
                        m(vec![
                            ("keynumidx", i(0)),
                            ("firstkey", i(1)),
                            ("keystep", i(1)),
                        ]),
                    ),
                ]),
            ),
        ]);
        let reply = a(vec![entry(
            "kmod.get",
            &["readonly", "module", "movablekeys"],
            (0, 0, 0),
            Some(vec![spec]),
        )]);
        assert_eq!(
            learn_commands(&CommandSpecs::parse(&reply).unwrap()).learned,
            ["kmod.get"]
        );
        let args = ["KMOD.GET", "x", "KEYS", "2", "a", "b", "z"];
        let mut out = Vec::new();
        key_positions(lookup(&args).unwrap(), &args, &mut out).unwrap();
        assert_eq!(out.iter().map(|k| k.index).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(CommandSpecs::parse(&i(3)).is_err());
        assert!(CommandSpecs::parse(&a(vec![a(vec![t("x"), i(1)])])).is_err());
        assert!(CommandSpecs::parse(&a(vec![a(vec![i(1); 6])])).is_err());
        let huge = a(vec![entry("hmod.x", &[], (1, 1, 1), None)]);
        let ReplyValue::Array(mut e) = huge else {
            unreachable!()
        };
        let ReplyValue::Array(f) = &mut e[0] else {
            unreachable!()
        };
        f[1] = i(i64::MAX);
        assert!(CommandSpecs::parse(&a(e)).is_err());
        assert!(CommandSpecs::parse(&a(vec![])).unwrap().is_empty());
    }

    /// Whatever the key specs say (any indices, steps, counts, keywords) and whatever the
    /// arguments, a learned command's key positions are real arguments and nothing panics.
    #[test]
    fn any_learned_spec_is_safe() {
        let values = [
            -3i64,
            -1,
            0,
            1,
            2,
            5,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ];
        let tokens = ["k", "2", "0", "KW", "-1", "", "99999"];
        let mut n = 0usize;
        let mut out = Vec::new();
        for (x, &b) in values.iter().enumerate() {
            for &l in &values {
                for &s in &values[..6] {
                    n += 1;
                    let name = format!("pmod.c{n}");
                    let keynum = a(vec![
                        t("flags"),
                        a(vec![]),
                        t("begin_search"),
                        a(vec![
                            t("type"),
                            t("keyword"),
                            t("spec"),
                            a(vec![t("keyword"), t("KW"), t("startfrom"), i(b)]),
                        ]),
                        t("find_keys"),
                        a(vec![
                            t("type"),
                            t("keynum"),
                            t("spec"),
                            a(vec![
                                t("keynumidx"),
                                i(l),
                                t("firstkey"),
                                i(s),
                                t("keystep"),
                                i(values[x % 6]),
                            ]),
                        ]),
                    ]);
                    let reply = a(vec![entry(
                        &name,
                        &["write"],
                        (0, 0, 0),
                        Some(vec![index_range(b, l, s), keynum]),
                    )]);
                    learn_commands(&CommandSpecs::parse(&reply).unwrap());
                    let def = lookup(&[name.as_str()]).unwrap();
                    for argc in 1..8usize {
                        for seed in 0..tokens.len() {
                            let args: Vec<&str> = (0..argc)
                                .map(|j| {
                                    if j == 0 {
                                        name.as_str()
                                    } else {
                                        tokens[(seed + j * j) % tokens.len()]
                                    }
                                })
                                .collect();
                            if key_positions(def, &args, &mut out).is_ok() {
                                assert!(
                                    out.iter().all(|k| k.index > 0 && k.index < argc),
                                    "{name} {args:?}"
                                );
                            }
                            let _ = crate::split_for_cluster(&args);
                        }
                    }
                }
            }
        }
    }
}
