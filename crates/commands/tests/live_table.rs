//! The checked-in command table against live servers.
//!
//! - For each server the table was generated from (`table::sources()`), start that version (or,
//!   when CI installed a newer patch of the same major, that one) and compare every command and
//!   subcommand of its `COMMAND` / `COMMAND DOCS` with the table's form for that server: arity,
//!   flags, ACL categories, legacy key triple, tips, key specs, `since`. Any difference, or a
//!   command one side has and the other lacks, fails with the list (regenerate the table).
//! - Every other installed server (5.0 … 9.x): every command it lists is known to the table.
//! - Key extraction equals `COMMAND GETKEYS` on the newest Redis and Valkey for a corpus of
//!   commands with every kind of key spec.

use redis_sync_commands::table::{self, CommandDef, Form};
use redis_sync_commands::{key_positions, lookup};
use redis_sync_commands_gen::{RawBegin, RawCommand, RawFind, RawKeySpec, fetch};
use redis_sync_testkit::{Flavor, Reply, SERVERS_HINT, Server, ServerVersion, in_ci, versions};

fn names<I: Iterator<Item = &'static str>>(it: I) -> Vec<String> {
    let mut v: Vec<String> = it.map(str::to_string).collect();
    v.sort();
    v
}

/// The table's form, in the shape the generator reads from a server.
fn to_raw(def: &CommandDef, f: &Form) -> RawCommand {
    use table::{BeginSearch, FindKeys};
    let key_specs = f
        .key_specs
        .iter()
        .map(|s| RawKeySpec {
            flags: names(s.flags.names()),
            begin: match s.begin {
                BeginSearch::Index(i) => RawBegin::Index(i.into()),
                BeginSearch::Keyword {
                    keyword,
                    start_from,
                } => RawBegin::Keyword(keyword.into(), start_from.into()),
                _ => RawBegin::Unknown,
            },
            find: match s.find {
                FindKeys::Range {
                    last_key,
                    step,
                    limit,
                } => RawFind::Range(last_key.into(), step.into(), limit.into()),
                FindKeys::KeyNum {
                    key_num_index,
                    first_key,
                    step,
                } => RawFind::KeyNum(key_num_index.into(), first_key.into(), step.into()),
                _ => RawFind::Unknown,
            },
        })
        .collect();
    RawCommand {
        name: def.name.to_string(),
        arity: f.arity.into(),
        flags: names(f.flags.names()),
        legacy: (
            f.legacy_keys.0.into(),
            f.legacy_keys.1.into(),
            f.legacy_keys.2.into(),
        ),
        acl: names(f.acl.names()),
        tips: names(f.tips.iter().copied()),
        key_specs,
        since: f.since.to_string(),
        group: def.group.to_string(),
        subcommands: Vec::new(),
    }
}

fn compare(source: &str, defs: &[CommandDef], live: &[RawCommand], diffs: &mut Vec<String>) {
    for l in live {
        let Some(def) = defs.iter().find(|d| d.name == l.name) else {
            diffs.push(format!("{}: missing from the table", l.name));
            continue;
        };
        match def.form_for(source) {
            None => diffs.push(format!(
                "{}: the table says {source} does not have it",
                l.name
            )),
            Some(form) => {
                let mut want = to_raw(def, form);
                let mut got = l.clone();
                got.subcommands.clear();
                // The docs group is stored once per command (from the primary form).
                want.group = got.group.clone();
                if want != got {
                    diffs.push(format!("{}:\n  table: {want:?}\n  live:  {got:?}", l.name));
                }
            }
        }
        compare(source, def.subcommands, &l.subcommands, diffs);
    }
    for d in defs {
        if d.servers.contains_name(source) && !live.iter().any(|l| l.name == d.name) {
            diffs.push(format!(
                "{}: in the table for {source} but not on the server",
                d.name
            ));
        }
    }
}

/// The installed server to check a table source against: the same version, else the newest
/// installed one of the same flavor and major version.
fn installed_for(source: &table::Source, all: &[ServerVersion]) -> Option<ServerVersion> {
    let flavor = match source.flavor {
        table::ServerFlavor::Redis => Flavor::Redis,
        _ => Flavor::Valkey,
    };
    all.iter()
        .find(|v| v.name() == source.name)
        .cloned()
        .or_else(|| {
            all.iter()
                .filter(|v| v.flavor() == flavor && v.version().0 == source.version.0)
                .max_by_key(|v| v.version())
                .cloned()
        })
}

#[test]
fn table_matches_live_servers() {
    let all = versions();
    let mut checked = 0;
    for source in table::sources() {
        let Some(v) = installed_for(source, &all) else {
            let msg = format!("no installed server for table source {}", source.name);
            assert!(!in_ci(), "{msg}: {SERVERS_HINT}");
            eprintln!("skipped: {msg}");
            continue;
        };
        if v.name() != source.name {
            eprintln!(
                "note: table source {} checked against installed {}",
                source.name,
                v.name()
            );
        }
        let server = Server::builder(&v).start();
        let mut live = fetch(&server).expect("COMMAND and COMMAND DOCS");
        if source.legacy {
            // Only the commands the newer sources lack were taken from a legacy source.
            live.retain(|c| {
                table::command(c.name.as_bytes())
                    .is_some_and(|d| d.servers.contains_name(source.name))
            });
        }
        let mut diffs = Vec::new();
        compare(source.name, table::commands(), &live, &mut diffs);
        assert!(
            diffs.is_empty(),
            "the checked-in table disagrees with {} in {} places (regenerate it: \
             cargo run -p redis-sync-commands-gen, see crates/commands/README.md):\n{}",
            v.name(),
            diffs.len(),
            diffs.join("\n")
        );
        checked += 1;
        eprintln!("{}: {} commands match", v.name(), live.len());
    }
    assert!(checked > 0 || !in_ci());
}

#[test]
fn older_servers_commands_are_all_known() {
    let sources: Vec<&str> = table::sources().iter().map(|s| s.name).collect();
    for v in versions() {
        if sources.contains(&v.name()) {
            continue;
        }
        let server = Server::builder(&v).start();
        let reply = server.cmd(&["COMMAND"]).ok();
        let mut unknown = Vec::new();
        let mut n = 0;
        for c in reply.array() {
            let name = c.array()[0].text().to_ascii_lowercase();
            n += 1;
            // Redis < 7 lists two pseudo-commands that only exist to drop HTTP requests
            // ("host:", "post"); they are never replicated.
            if table::command(name.as_bytes()).is_none() && name != "host:" && name != "post" {
                unknown.push(name);
            }
        }
        assert!(
            unknown.is_empty(),
            "{}: commands unknown to the table: {unknown:?}",
            v.name()
        );
        eprintln!("{}: all {n} commands known", v.name());
    }
}

const GETKEYS_CORPUS: &[&[&str]] = &[
    &["GET", "k"],
    &["SET", "k", "v", "PX", "10"],
    &["DEL", "a", "b", "c"],
    &["MSET", "a", "1", "b", "2", "c", "3"],
    &["MSETNX", "a", "1", "b", "2"],
    &["EVAL", "return 1", "2", "k1", "k2", "arg"],
    &[
        "EVALSHA",
        "0000000000000000000000000000000000000000",
        "1",
        "k1",
    ],
    &["FCALL", "f", "2", "k1", "k2", "a", "b"],
    &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "STREAMS",
        "s1",
        "s2",
        ">",
        ">",
    ],
    &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"],
    &["ZINTERCARD", "2", "a", "b"],
    &["LMPOP", "2", "l1", "l2", "LEFT", "COUNT", "3"],
    &["BLMPOP", "0", "2", "l1", "l2", "LEFT"],
    &["BZMPOP", "0", "2", "z1", "z2", "MIN"],
    &["SINTERCARD", "2", "a", "b", "LIMIT", "1"],
    &["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "dst"],
    &["GEORADIUS", "g", "0", "0", "1", "km", "STOREDIST", "dst"],
    &["GEORADIUSBYMEMBER", "g", "m", "1", "km", "STORE", "dst"],
    &[
        "GEOSEARCHSTORE",
        "dst",
        "src",
        "FROMMEMBER",
        "m",
        "BYRADIUS",
        "1",
        "km",
    ],
    &["SORT", "k", "BY", "w_*", "GET", "store", "STORE", "dst"],
    &["SORT", "k", "LIMIT", "0", "10", "STORE", "a", "STORE", "b"],
    &["MIGRATE", "h", "1", "k", "0", "100"],
    &[
        "MIGRATE", "h", "1", "", "0", "100", "COPY", "AUTH", "keys", "KEYS", "a", "b",
    ],
    &["RENAME", "a", "b"],
    &["COPY", "a", "b", "REPLACE"],
    &["LMOVE", "a", "b", "LEFT", "RIGHT"],
    &["BITOP", "AND", "dst", "a", "b"],
    &["XGROUP", "CREATE", "s", "g", "$"],
    &["OBJECT", "ENCODING", "k"],
    &["PFMERGE", "dst", "a", "b"],
    &["BLPOP", "a", "b", "0"],
    &["SMOVE", "a", "b", "m"],
    &["XADD", "s", "*", "f", "v"],
    &["HSET", "h", "f", "v", "g", "w"],
    &["MSETEX", "2", "a", "1", "b", "2", "EX", "10"],
];

#[test]
fn keys_match_command_getkeys() {
    let all = versions();
    let newest = |f: Flavor| {
        all.iter()
            .filter(|v| v.flavor() == f && v.at_least(7, 0))
            .max_by_key(|v| v.version())
    };
    for v in [newest(Flavor::Redis), newest(Flavor::Valkey)]
        .into_iter()
        .flatten()
    {
        let server = Server::builder(v).start();
        let mut c = server.client();
        let mut checked = 0;
        for args in GETKEYS_CORPUS {
            let Some(def) = lookup(args) else { continue };
            if !def
                .servers
                .iter()
                .any(|s| s.flavor == to_flavor(v.flavor()))
            {
                continue;
            }
            let mut req = vec!["COMMAND", "GETKEYS"];
            req.extend_from_slice(args);
            let reply = c.call(&req).expect("GETKEYS");
            let theirs: Vec<String> = match &reply {
                Reply::Error(_) => Vec::new(),
                r => r.array().iter().map(Reply::text).collect(),
            };
            let mut pos = Vec::new();
            key_positions(def, args, &mut pos).expect("keys");
            let ours: Vec<String> = pos.iter().map(|k| args[k.index].to_string()).collect();
            assert_eq!(ours, theirs, "{}: {args:?} ({reply:?})", v.name());
            checked += 1;
        }
        assert!(
            checked >= 30,
            "{}: only {checked} commands checked",
            v.name()
        );
        eprintln!(
            "{}: {checked} commands' keys equal COMMAND GETKEYS",
            v.name()
        );
    }
}

fn to_flavor(f: Flavor) -> table::ServerFlavor {
    match f {
        Flavor::Redis => table::ServerFlavor::Redis,
        Flavor::Valkey => table::ServerFlavor::Valkey,
    }
}
