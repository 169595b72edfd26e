//! Module commands learned from a live server's own replies: Redis Stack with RedisJSON,
//! RedisBloom, RedisTimeSeries (and RediSearch when installed).
//!
//! - `COMMAND INFO JSON.SET BF.ADD TS.ADD …`, captured from the started server, parses and is
//!   learned; the learned key positions equal the server's `COMMAND GETKEYS`.
//! - Property: for every module command of the server's whole `COMMAND` reply that is learned,
//!   on argument lists built from keys, counts and the keywords of its key specs, the learned
//!   key positions equal `COMMAND GETKEYS` (or both find none).
//!
//! Without a server that has the modules the tests skip, and fail under `CI=true` with the
//! install hint.

use redis_sync_commands::table::{BeginSearch, Flags};
use redis_sync_commands::{
    Classifier, CommandSpecs, ReplyValue, Route, hash_slot, key_positions, learn_commands, lookup,
};
use redis_sync_testkit::{Reply, Server, ServerVersion, versions_where};

/// The installed servers with RedisJSON, RedisBloom and RedisTimeSeries (Redis Stack).
fn module_versions() -> Vec<ServerVersion> {
    versions_where(
        "a Redis Stack with RedisJSON, RedisBloom and RedisTimeSeries",
        |v| {
            ["rejson", "redisbloom", "redistimeseries"]
                .iter()
                .all(|m| v.module(m).is_some())
        },
    )
}

fn start(v: &ServerVersion) -> Server {
    let mut b = Server::builder(v)
        .module("rejson")
        .module("redisbloom")
        .module("redistimeseries");
    if v.module("redisearch").is_some() {
        b = b.module("redisearch");
    }
    b.start()
}

/// The test kit's RESP2 reply as the commands crate's decoded reply.
fn value(r: &Reply) -> ReplyValue {
    match r {
        Reply::Int(i) => ReplyValue::Int(*i),
        Reply::Status(s) => ReplyValue::Text(s.clone().into_bytes().into()),
        Reply::Bulk(Some(b)) => ReplyValue::Text(b.clone().into()),
        Reply::Array(Some(a)) => ReplyValue::Array(a.iter().map(value).collect()),
        _ => ReplyValue::Nil,
    }
}

/// The server's `COMMAND GETKEYS` for `args` (no keys when it refuses: "no key arguments",
/// "Invalid arguments").
fn getkeys(c: &mut redis_sync_testkit::Client, args: &[String]) -> Vec<String> {
    let mut req: Vec<&str> = vec!["COMMAND", "GETKEYS"];
    req.extend(args.iter().map(String::as_str));
    match c.call(&req).expect("COMMAND GETKEYS") {
        Reply::Array(Some(a)) => a.iter().map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

fn ours(args: &[String]) -> Option<Vec<String>> {
    let def = lookup(args).filter(|d| d.arity_ok(args.len()))?;
    let mut pos = Vec::new();
    key_positions(def, args, &mut pos).ok()?;
    Some(pos.iter().map(|k| args[k.index].clone()).collect())
}

#[test]
fn captured_command_info_is_learned_and_agrees_with_getkeys() {
    for v in module_versions() {
        let server = start(&v);
        let mut c = server.client();
        let names = [
            "JSON.SET",
            "BF.ADD",
            "TS.ADD",
            "TS.MADD",
            "JSON.MSET",
            "BF.MADD",
        ];
        let mut req = vec!["COMMAND", "INFO"];
        req.extend(names);
        let reply = c.call(&req).expect("COMMAND INFO");
        let specs = CommandSpecs::parse(&value(&reply)).expect("a COMMAND INFO reply");
        let want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        assert_eq!(specs.names().collect::<Vec<_>>(), want, "{}", v.name());
        let learned = learn_commands(&specs);
        assert!(learned.keys_unknown.is_empty(), "{}: {learned:?}", v.name());
        assert_eq!(learned.learned.len() + learned.known, names.len());

        let corpus: &[&[&str]] = &[
            &["JSON.SET", "doc:1", "$", "{\"a\":1}"],
            &["BF.ADD", "bloom:1", "x"],
            &["TS.ADD", "ts:1", "1000", "2.5"],
            &[
                "TS.MADD", "ts:1", "1000", "1", "ts:2", "1000", "2", "ts:3", "5", "3",
            ],
            &["JSON.MSET", "a", "$", "1", "b", "$", "2"],
            &["BF.MADD", "bloom:2", "x", "y"],
        ];
        for args in corpus {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                ours(&args),
                Some(getkeys(&mut c, &args)),
                "{}: {args:?}",
                v.name()
            );
        }
        let mut cl = Classifier::default();
        let got = cl
            .classify(&["JSON.SET", "doc:1", "$", "1"])
            .expect("learned");
        assert_eq!(got.route, Route::Slot(hash_slot(b"doc:1")));
        assert!(got.command.is_learned());
        let got = cl
            .classify(&["TS.MADD", "a", "1", "1", "b", "1", "2"])
            .expect("learned");
        assert_eq!(
            got.route,
            Route::CrossSlot,
            "a and b are in different slots"
        );
    }
}

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

#[test]
fn every_learned_module_command_agrees_with_getkeys() {
    for v in module_versions() {
        let server = start(&v);
        let mut c = server.client();
        let reply = c.call(&["COMMAND"]).expect("COMMAND");
        let specs = CommandSpecs::parse(&value(&reply)).expect("a COMMAND reply");
        let learned = learn_commands(&specs);
        let module: Vec<String> = specs
            .names()
            .filter(|n| {
                lookup(&[*n]).is_some_and(|d| d.is_learned() && d.flags().contains(Flags::MODULE))
            })
            .map(str::to_string)
            .collect();
        assert!(
            module.iter().any(|n| n == "json.set") && module.iter().any(|n| n == "ts.add"),
            "{}: learned {module:?}",
            v.name()
        );
        eprintln!(
            "{}: {} commands in COMMAND, {} module commands learned, keys unknown: {:?}",
            v.name(),
            specs.len(),
            module.len(),
            learned.keys_unknown
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for name in &module {
            let Some(def) = lookup(&[name.as_str()]) else {
                continue;
            };
            let keywords: Vec<&str> = def
                .key_specs()
                .iter()
                .filter_map(|s| match s.begin {
                    BeginSearch::Keyword { keyword, .. } => Some(keyword),
                    _ => None,
                })
                .collect();
            let mut tokens = vec!["k1", "{t}k2", "k3", "1", "2", "0", "$", "x"];
            tokens.extend(keywords);
            for _ in 0..40 {
                let argc = 1 + rng.below(9);
                let mut args = vec![name.to_ascii_uppercase()];
                args.extend((1..argc).map(|_| tokens[rng.below(tokens.len())].to_string()));
                let Some(mine) = ours(&args) else {
                    // Our error (arity, key count): the server cannot find keys either.
                    assert_eq!(getkeys(&mut c, &args), Vec::<String>::new(), "{args:?}");
                    continue;
                };
                assert_eq!(mine, getkeys(&mut c, &args), "{}: {args:?}", v.name());
                checked += 1;
            }
        }
        assert!(checked > 500, "{}: only {checked} checked", v.name());
    }
}
