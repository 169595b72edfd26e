//! Reads the command tables of real servers and renders them as Rust source.
//!
//! [`fetch`] asks a running server for `COMMAND` (the same reply as `COMMAND INFO` for every
//! command) and `COMMAND DOCS`, and returns them as [`RawCommand`]s: plain strings and numbers,
//! exactly as the server said them. [`merge`] takes the readings of several servers and
//! [`render`] writes `crates/commands/src/table/generated.rs`.
//!
//! The same [`fetch`] is used by `crates/commands/tests/live_table.rs` to compare the checked-in
//! table with a live server, so the generator and the test read servers the same way.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use redis_sync_testkit::{Flavor, Reply, Server, ServerVersion};

/// The begin-search part of a key spec, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RawBegin {
    /// `index`: the first key is at this argument index.
    Index(i64),
    /// `keyword`: search `keyword` from `startfrom` (negative: from the end, backwards).
    Keyword(String, i64),
    /// `unknown`.
    Unknown,
}

/// The find-keys part of a key spec, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RawFind {
    /// `range`: `lastkey`, `keystep`, `limit`.
    Range(i64, i64, i64),
    /// `keynum`: `keynumidx`, `firstkey`, `keystep`.
    KeyNum(i64, i64, i64),
    /// `unknown`.
    Unknown,
}

/// One key spec (`flags`, `begin_search`, `find_keys`; `notes` are dropped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawKeySpec {
    /// Flags such as `RW`, `access`, `incomplete`, sorted.
    pub flags: Vec<String>,
    /// Where the search for the first key begins.
    pub begin: RawBegin,
    /// How the keys are found from there.
    pub find: RawFind,
}

/// What one server says about one command (or subcommand).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawCommand {
    /// Lower-case name; subcommands are `container|sub`.
    pub name: String,
    /// Arity (negative: at least `-arity` arguments).
    pub arity: i64,
    /// Command flags (`write`, `readonly`, …), sorted.
    pub flags: Vec<String>,
    /// Legacy first key, last key and step.
    pub legacy: (i64, i64, i64),
    /// ACL categories without the `@`, sorted.
    pub acl: Vec<String>,
    /// Command tips (`request_policy:all_shards`, …), sorted.
    pub tips: Vec<String>,
    /// Key specs, in the server's order.
    pub key_specs: Vec<RawKeySpec>,
    /// `since` from `COMMAND DOCS` (empty when the docs have none, e.g. module commands).
    pub since: String,
    /// `group` from `COMMAND DOCS` (`string`, `generic`, `module`, …).
    pub group: String,
    /// Subcommands, sorted by name.
    pub subcommands: Vec<RawCommand>,
}

/// What one server said about all its commands.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Install name, e.g. `redis-8.0.6`.
    pub server: String,
    /// Redis or Valkey.
    pub flavor: Flavor,
    /// `(major, minor, patch)`.
    pub version: (u32, u32, u32),
    /// Every command, sorted by name.
    pub commands: Vec<RawCommand>,
    /// A legacy reading: only its commands that no main reading has were merged.
    pub legacy: bool,
}

fn text(r: &Reply) -> String {
    match r {
        Reply::Status(s) | Reply::Error(s) => s.clone(),
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        other => text(other).parse().unwrap_or(0),
    }
}

fn items(r: &Reply) -> Vec<Reply> {
    match r {
        Reply::Array(Some(a)) => a.clone(),
        _ => Vec::new(),
    }
}

/// A RESP2 flat map (`k1 v1 k2 v2 …`) as a map from key to value.
fn flat_map(r: &Reply) -> BTreeMap<String, Reply> {
    let a = items(r);
    a.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (text(&c[0]), c[1].clone()))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn parse_key_spec(r: &Reply) -> RawKeySpec {
    let m = flat_map(r);
    let flags = sorted(
        m.get("flags")
            .map(items)
            .unwrap_or_default()
            .iter()
            .map(text)
            .collect(),
    );
    let begin = m.get("begin_search").map(flat_map).unwrap_or_default();
    let bspec = begin.get("spec").map(flat_map).unwrap_or_default();
    let begin = match begin.get("type").map(text).as_deref() {
        Some("index") => RawBegin::Index(bspec.get("index").map(int).unwrap_or(0)),
        Some("keyword") => RawBegin::Keyword(
            bspec.get("keyword").map(text).unwrap_or_default(),
            bspec.get("startfrom").map(int).unwrap_or(0),
        ),
        _ => RawBegin::Unknown,
    };
    let find = m.get("find_keys").map(flat_map).unwrap_or_default();
    let fspec = find.get("spec").map(flat_map).unwrap_or_default();
    let g = |k: &str| fspec.get(k).map(int).unwrap_or(0);
    let find = match find.get("type").map(text).as_deref() {
        Some("range") => RawFind::Range(g("lastkey"), g("keystep"), g("limit")),
        Some("keynum") => RawFind::KeyNum(g("keynumidx"), g("firstkey"), g("keystep")),
        _ => RawFind::Unknown,
    };
    RawKeySpec { flags, begin, find }
}

/// Parses one entry of a `COMMAND` / `COMMAND INFO` reply (Redis 7+ / Valkey shape: ten fields;
/// older servers' six fields give empty tips, key specs and subcommands).
pub fn parse_info(r: &Reply) -> Option<RawCommand> {
    let f = items(r);
    if f.len() < 6 {
        return None;
    }
    let strs = |i: usize| -> Vec<String> {
        f.get(i)
            .map(items)
            .unwrap_or_default()
            .iter()
            .map(text)
            .collect()
    };
    let mut subcommands: Vec<RawCommand> = f
        .get(9)
        .map(items)
        .unwrap_or_default()
        .iter()
        .filter_map(parse_info)
        .collect();
    subcommands.sort_by(|a, b| a.name.cmp(&b.name));
    Some(RawCommand {
        name: text(&f[0]).to_ascii_lowercase(),
        arity: int(&f[1]),
        flags: sorted(strs(2)),
        legacy: (int(&f[3]), int(&f[4]), int(&f[5])),
        acl: sorted(
            strs(6)
                .into_iter()
                .map(|c| c.trim_start_matches('@').to_string())
                .collect(),
        ),
        tips: sorted(strs(7)),
        key_specs: f
            .get(8)
            .map(items)
            .unwrap_or_default()
            .iter()
            .map(parse_key_spec)
            .collect(),
        since: String::new(),
        group: String::new(),
        subcommands,
    })
}

/// `since` and `group` of every command and subcommand in a `COMMAND DOCS` reply.
fn parse_docs(r: &Reply, out: &mut BTreeMap<String, (String, String)>) {
    for (name, doc) in flat_map(r) {
        let d = flat_map(&doc);
        let since = d.get("since").map(text).unwrap_or_default();
        let group = d.get("group").map(text).unwrap_or_default();
        out.insert(name.to_ascii_lowercase(), (since, group));
        if let Some(subs) = d.get("subcommands") {
            parse_docs(subs, out);
        }
    }
}

fn apply_docs(c: &mut RawCommand, docs: &BTreeMap<String, (String, String)>) {
    if let Some((since, group)) = docs.get(&c.name) {
        c.since = since.clone();
        c.group = group.clone();
    }
    for s in &mut c.subcommands {
        apply_docs(s, docs);
    }
}

/// Reads `COMMAND` and (on 7.0+ / Valkey) `COMMAND DOCS` from a running server.
pub fn fetch(server: &Server) -> std::io::Result<Vec<RawCommand>> {
    let mut client = server.client();
    let info = client.call(&["COMMAND"])?;
    if let Reply::Error(e) = &info {
        return Err(std::io::Error::other(format!("COMMAND failed: {e}")));
    }
    let mut commands: Vec<RawCommand> = items(&info).iter().filter_map(parse_info).collect();
    let docs = client.call(&["COMMAND", "DOCS"])?;
    if !docs.is_error() {
        let mut map = BTreeMap::new();
        parse_docs(&docs, &mut map);
        for c in &mut commands {
            apply_docs(c, &map);
        }
    }
    commands.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(commands)
}

/// Starts `version` with the test kit and reads its command table.
pub fn read_server(version: &ServerVersion) -> std::io::Result<Reading> {
    let server = Server::builder(version).start();
    Ok(Reading {
        server: version.name().to_string(),
        flavor: version.flavor(),
        version: version.version(),
        commands: fetch(&server)?,
        legacy: false,
    })
}

/// One distinct description of a command and the servers (bit `i` = `readings[i]`) giving it.
#[derive(Debug, Clone)]
pub struct MergedForm {
    /// Bit mask over the readings.
    pub servers: u32,
    /// The description (its `subcommands` are not used; see [`Merged::subcommands`]).
    pub cmd: RawCommand,
}

/// A command as known to all readings.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Lower-case name.
    pub name: String,
    /// Bit mask over the readings of the servers that have it.
    pub servers: u32,
    /// Distinct descriptions, the first one from the first reading that has it.
    pub forms: Vec<MergedForm>,
    /// Subcommands, merged the same way, sorted by name.
    pub subcommands: Vec<Merged>,
}

fn merge_list(lists: &[(usize, &[RawCommand])]) -> Vec<Merged> {
    let mut names: Vec<&str> = lists
        .iter()
        .flat_map(|(_, l)| l.iter().map(|c| c.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let mut m = Merged {
            name: name.to_string(),
            servers: 0,
            forms: Vec::new(),
            subcommands: Vec::new(),
        };
        let mut subs: Vec<(usize, &[RawCommand])> = Vec::new();
        for (idx, list) in lists {
            let Some(c) = list.iter().find(|c| c.name == name) else {
                continue;
            };
            m.servers |= 1 << idx;
            let mut bare = c.clone();
            bare.subcommands.clear();
            match m.forms.iter_mut().find(|f| f.cmd == bare) {
                Some(f) => f.servers |= 1 << idx,
                None => m.forms.push(MergedForm {
                    servers: 1 << idx,
                    cmd: bare,
                }),
            }
            subs.push((*idx, &c.subcommands));
        }
        m.subcommands = merge_list(&subs);
        out.push(m);
    }
    out
}

/// Merges the readings: the union of their commands, each with its distinct descriptions.
/// A legacy reading contributes only the commands no main reading has.
pub fn merge(readings: &[Reading]) -> Vec<Merged> {
    let main: Vec<&str> = readings
        .iter()
        .filter(|r| !r.legacy)
        .flat_map(|r| r.commands.iter().map(|c| c.name.as_str()))
        .collect();
    let kept: Vec<Vec<RawCommand>> = readings
        .iter()
        .map(|r| {
            r.commands
                .iter()
                .filter(|c| !r.legacy || (!is_pseudo(&c.name) && !main.contains(&c.name.as_str())))
                .cloned()
                .collect()
        })
        .collect();
    let lists: Vec<(usize, &[RawCommand])> = kept
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.as_slice()))
        .collect();
    merge_list(&lists)
}

/// `host:` and `post`: pseudo-commands of Redis < 7 that only drop HTTP requests.
fn is_pseudo(name: &str) -> bool {
    name == "host:" || name == "post"
}

/// Commands of `reading` that none of `main` has (never-replicated pseudo-commands of
/// Redis < 7, `host:` and `post`, are left out).
pub fn missing_from(reading: &Reading, main: &[Reading]) -> Vec<String> {
    reading
        .commands
        .iter()
        .map(|c| c.name.clone())
        .filter(|n| !is_pseudo(n))
        .filter(|n| !main.iter().any(|m| m.commands.iter().any(|c| &c.name == n)))
        .collect()
}

/// A flag / category name as a Rust constant name (`may_replicate` → `MAY_REPLICATE`).
pub fn const_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn list_macro(mac: &str, names: &[String]) -> String {
    let inner: Vec<String> = names.iter().map(|n| const_name(n)).collect();
    format!("{mac}!({})", inner.join(", "))
}

fn render_spec(s: &RawKeySpec) -> String {
    let begin = match &s.begin {
        RawBegin::Index(i) => format!("BeginSearch::Index({i})"),
        RawBegin::Keyword(k, f) => {
            format!("BeginSearch::Keyword {{ keyword: {k:?}, start_from: {f} }}")
        }
        RawBegin::Unknown => "BeginSearch::Unknown".to_string(),
    };
    let find = match &s.find {
        RawFind::Range(l, st, li) => {
            format!("FindKeys::Range {{ last_key: {l}, step: {st}, limit: {li} }}")
        }
        RawFind::KeyNum(k, f, st) => {
            format!("FindKeys::KeyNum {{ key_num_index: {k}, first_key: {f}, step: {st} }}")
        }
        RawFind::Unknown => "FindKeys::Unknown".to_string(),
    };
    format!(
        "KeySpec {{ flags: {}, begin: {begin}, find: {find} }}",
        list_macro("ksf", &s.flags)
    )
}

fn render_cmd(m: &Merged, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let group = m.forms.first().map(|f| f.cmd.group.as_str()).unwrap_or("");
    let _ = writeln!(out, "{pad}CommandDef {{");
    let _ = writeln!(out, "{pad}    name: {:?},", m.name);
    let _ = writeln!(out, "{pad}    group: {group:?},");
    let _ = writeln!(out, "{pad}    servers: ServerSet({:#05b}),", m.servers);
    let _ = writeln!(out, "{pad}    forms: &[");
    for f in &m.forms {
        let c = &f.cmd;
        let _ = writeln!(out, "{pad}        Form {{");
        let _ = writeln!(
            out,
            "{pad}            servers: ServerSet({:#05b}),",
            f.servers
        );
        let _ = writeln!(out, "{pad}            arity: {},", c.arity);
        let _ = writeln!(
            out,
            "{pad}            flags: {},",
            list_macro("flags", &c.flags)
        );
        let _ = writeln!(out, "{pad}            acl: {},", list_macro("acl", &c.acl));
        let _ = writeln!(
            out,
            "{pad}            legacy_keys: ({}, {}, {}),",
            c.legacy.0, c.legacy.1, c.legacy.2
        );
        let _ = writeln!(out, "{pad}            tips: &{:?},", c.tips);
        let _ = writeln!(out, "{pad}            since: {:?},", c.since);
        if c.key_specs.is_empty() {
            let _ = writeln!(out, "{pad}            key_specs: &[],");
        } else {
            let _ = writeln!(out, "{pad}            key_specs: &[");
            for s in &c.key_specs {
                let _ = writeln!(out, "{pad}                {},", render_spec(s));
            }
            let _ = writeln!(out, "{pad}            ],");
        }
        let _ = writeln!(out, "{pad}        }},");
    }
    let _ = writeln!(out, "{pad}    ],");
    if m.subcommands.is_empty() {
        let _ = writeln!(out, "{pad}    subcommands: &[],");
    } else {
        let _ = writeln!(out, "{pad}    subcommands: &[");
        for s in &m.subcommands {
            render_cmd(s, indent + 8, out);
        }
        let _ = writeln!(out, "{pad}    ],");
    }
    let _ = writeln!(out, "{pad}}},");
}

/// Renders the merged table as the Rust source of `generated.rs`.
pub fn render(readings: &[Reading], merged: &[Merged]) -> String {
    let mut out = String::new();
    out.push_str(
        "// @generated by `cargo run -p redis-sync-commands-gen` from live servers' COMMAND and\n\
         // COMMAND DOCS replies. Do not edit by hand: regenerate (see crates/commands/README.md).\n\n\
         use super::*;\n\n",
    );
    out.push_str(
        "/// The servers this table was read from; bit `i` of a [`ServerSet`] is `SOURCES[i]`.\n",
    );
    out.push_str("pub(crate) static SOURCES: &[Source] = &[\n");
    for r in readings {
        let flavor = match r.flavor {
            Flavor::Redis => "Redis",
            Flavor::Valkey => "Valkey",
        };
        let (a, b, c) = r.version;
        let _ = writeln!(
            out,
            "    Source {{ name: {:?}, flavor: ServerFlavor::{flavor}, version: ({a}, {b}, {c}), legacy: {} }},",
            r.server, r.legacy
        );
    }
    out.push_str("];\n\n");
    out.push_str("/// Every command, sorted by name.\n");
    out.push_str("pub(crate) static COMMANDS: &[CommandDef] = &[\n");
    for m in merged {
        render_cmd(m, 4, &mut out);
    }
    out.push_str("];\n");
    out
}

/// The versions the table is generated from: the newest installed Redis 8.x, Redis 7.x and
/// Valkey 9.x, in that order (the first is the primary description of a command).
pub fn table_versions(all: &[ServerVersion]) -> Vec<ServerVersion> {
    let pick = |flavor: Flavor, major: u32| {
        all.iter()
            .filter(|v| v.flavor() == flavor && v.version().0 == major)
            .max_by_key(|v| v.version())
            .cloned()
    };
    [
        pick(Flavor::Redis, 8),
        pick(Flavor::Redis, 7),
        pick(Flavor::Valkey, 9),
    ]
    .into_iter()
    .flatten()
    .collect()
}
