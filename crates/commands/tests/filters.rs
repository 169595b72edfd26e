//! Table-driven tests of [`Filter`]: databases, keys (prefix, glob, regex), types, commands,
//! the heartbeat key, mixed multi-key commands, and database arguments.

use bytes::Bytes;
use redis_sync_commands::{DataType, Decision, DropReason, Error, Filter, FilterBuilder};

fn cmd(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

/// What a case expects.
#[derive(Debug)]
enum Want {
    Keep(u32),
    Rewrite(u32, &'static [&'static str]),
    Drop(DropReason),
    Err(&'static str),
}

fn check(filter: &Filter, name: &str, cases: &[(u32, &[&str], Want)]) {
    for (db, args, want) in cases {
        let got = filter.decide(*db, &cmd(args));
        let ok = match (&got, want) {
            (Ok(Decision::Keep { db }), Want::Keep(w)) => db == w,
            (Ok(Decision::Rewrite { db, args }), Want::Rewrite(w, a)) => db == w && *args == cmd(a),
            (Ok(Decision::Drop(r)), Want::Drop(w)) => r == w,
            (Err(e), Want::Err(text)) => e.to_string().contains(text),
            _ => false,
        };
        assert!(ok, "{name}: db {db} {args:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn default_filter_keeps_all_but_the_heartbeat() {
    let f = Filter::new();
    check(
        &f,
        "default",
        &[
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (7, &["HSET", "h", "f", "v"], Want::Keep(7)),
            (
                0,
                &["SET", "redis-sync:heartbeat:shard-1", "123", "PXAT", "9"],
                Want::Drop(DropReason::Heartbeat),
            ),
            (
                0,
                &["DEL", "redis-sync:heartbeat:x"],
                Want::Drop(DropReason::Heartbeat),
            ),
            (
                0,
                &["DEL", "a", "redis-sync:heartbeat:x"],
                Want::Rewrite(0, &["DEL", "a"]),
            ),
            (
                0,
                &["MSET", "redis-sync:heartbeat:x", "1", "b", "2"],
                Want::Rewrite(0, &["MSET", "b", "2"]),
            ),
            (
                0,
                &["RENAME", "redis-sync:heartbeat:x", "b"],
                Want::Err("keeps ('b')"),
            ),
            (0, &["SET", "redis-sync:heartbeat", "1"], Want::Keep(0)),
            (0, &["FLUSHALL"], Want::Keep(0)),
            (0, &["FUNCTION", "LOAD", "code"], Want::Keep(0)),
            (3, &["SELECT", "3"], Want::Keep(3)),
            (0, &["MULTI"], Want::Keep(0)),
            (0, &["SWAPDB", "0", "1"], Want::Keep(0)),
            (0, &["NOSUCH", "x"], Want::Err("unknown command")),
            (0, &["SELECT", "x"], Want::Err("not a number")),
        ],
    );
}

#[test]
fn databases() {
    let f = FilterBuilder::default()
        .include_db(0)
        .include_db(2)
        .include_db(5)
        .exclude_db(5)
        .map_db(2, 9)
        .build()
        .expect("filter");
    check(
        &f,
        "db include/exclude/map",
        &[
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (1, &["SET", "a", "1"], Want::Drop(DropReason::Db(1))),
            (5, &["SET", "a", "1"], Want::Drop(DropReason::Db(5))),
            (2, &["SET", "a", "1"], Want::Keep(9)),
            (0, &["SELECT", "2"], Want::Rewrite(9, &["SELECT", "9"])),
            (0, &["SELECT", "1"], Want::Drop(DropReason::Db(1))),
            (0, &["SELECT", "0"], Want::Keep(0)),
            (
                0,
                &["SWAPDB", "0", "2"],
                Want::Rewrite(0, &["SWAPDB", "0", "9"]),
            ),
            (0, &["SWAPDB", "1", "3"], Want::Drop(DropReason::Db(1))),
            (
                0,
                &["SWAPDB", "0", "1"],
                Want::Err("one of the two databases is excluded"),
            ),
            (
                0,
                &["MOVE", "k", "2"],
                Want::Rewrite(0, &["MOVE", "k", "9"]),
            ),
            (
                0,
                &["MOVE", "k", "1"],
                Want::Err("moves data between database 0 and 1"),
            ),
            (2, &["COPY", "a", "b", "DB", "0", "REPLACE"], Want::Keep(9)),
            (
                0,
                &["COPY", "a", "b", "DB", "2"],
                Want::Rewrite(0, &["COPY", "a", "b", "DB", "9"]),
            ),
            (0, &["MULTI"], Want::Keep(0)),
        ],
    );
    assert_eq!(f.target_db(2), Ok(Some(9)));
    assert_eq!(f.target_db(1), Ok(None));
}

#[test]
fn cluster_target_has_only_db_0() {
    let f = FilterBuilder::default()
        .cluster_target(true)
        .map_db(4, 0)
        .exclude_db(6)
        .build()
        .expect("filter");
    check(
        &f,
        "cluster",
        &[
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (4, &["SET", "a", "1"], Want::Keep(0)),
            (6, &["SET", "a", "1"], Want::Drop(DropReason::Db(6))),
            (
                1,
                &["SET", "a", "1"],
                Want::Err("uses database 1, but a cluster target only has database 0"),
            ),
            (0, &["SELECT", "1"], Want::Err("--db-map 1=0")),
            (0, &["SELECT", "4"], Want::Rewrite(0, &["SELECT", "0"])),
            (
                0,
                &["SWAPDB", "0", "1"],
                Want::Err("SWAPDB uses database 1"),
            ),
            (0, &["MOVE", "k", "3"], Want::Err("MOVE uses database 3")),
        ],
    );
    assert!(matches!(
        f.target_db(1),
        Err(Error::ClusterDb { db: 1, .. })
    ));
}

#[test]
fn keys_by_prefix_glob_and_regex() {
    let f = FilterBuilder::default()
        .include_key_prefix("user:")
        .include_key_glob("order:[0-9]*")
        .include_key_regex("^cart:[a-f]+$")
        .exclude_key_glob("*:tmp")
        .exclude_key_prefix("user:secret")
        .build()
        .expect("filter");
    check(
        &f,
        "keys",
        &[
            (0, &["SET", "user:1", "x"], Want::Keep(0)),
            (0, &["SET", "order:42", "x"], Want::Keep(0)),
            (0, &["SET", "order:x42", "x"], Want::Drop(DropReason::Key)),
            (0, &["SET", "cart:abc", "x"], Want::Keep(0)),
            (0, &["SET", "cart:abcz", "x"], Want::Drop(DropReason::Key)),
            (0, &["SET", "other", "x"], Want::Drop(DropReason::Key)),
            (0, &["SET", "user:1:tmp", "x"], Want::Drop(DropReason::Key)),
            (
                0,
                &["SET", "user:secret:1", "x"],
                Want::Drop(DropReason::Key),
            ),
            (
                0,
                &["DEL", "user:1", "other", "order:7"],
                Want::Rewrite(0, &["DEL", "user:1", "order:7"]),
            ),
            (
                0,
                &["UNLINK", "other", "user:2"],
                Want::Rewrite(0, &["UNLINK", "user:2"]),
            ),
            (0, &["EXISTS", "other", "zzz"], Want::Drop(DropReason::Key)),
            (
                0,
                &["TOUCH", "user:1", "x:tmp"],
                Want::Rewrite(0, &["TOUCH", "user:1"]),
            ),
            (
                0,
                &["MSET", "a", "1", "user:1", "2", "b", "3"],
                Want::Rewrite(0, &["MSET", "user:1", "2"]),
            ),
            (0, &["MSET", "user:1", "1", "user:2", "2"], Want::Keep(0)),
            (
                0,
                &["MSETNX", "user:1", "1", "other", "2"],
                Want::Err(
                    "MSETNX touches keys the filter keeps ('user:1') and keys it drops ('other')",
                ),
            ),
            (
                0,
                &["RENAME", "user:1", "other"],
                Want::Err("cannot be split"),
            ),
            (
                0,
                &["SUNIONSTORE", "user:d", "user:a", "x"],
                Want::Err("SUNIONSTORE"),
            ),
            (0, &["EVAL", "s", "2", "user:1", "other"], Want::Err("EVAL")),
            (0, &["EVAL", "s", "0"], Want::Keep(0)),
            (0, &["XADD", "user:s", "*", "f", "v"], Want::Keep(0)),
            (0, &["SPUBLISH", "other", "m"], Want::Keep(0)),
            (0, &["FLUSHDB"], Want::Keep(0)),
        ],
    );
}

#[test]
fn types_and_commands() {
    let f = FilterBuilder::default()
        .exclude_type("stream")
        .exclude_type("geo")
        .build()
        .expect("filter");
    check(
        &f,
        "exclude types",
        &[
            (
                0,
                &["XADD", "s", "*", "f", "v"],
                Want::Drop(DropReason::Type(DataType::Stream)),
            ),
            (
                0,
                &["GEOADD", "g", "0", "0", "m"],
                Want::Drop(DropReason::Type(DataType::SortedSet)),
            ),
            (
                0,
                &["ZADD", "z", "1", "m"],
                Want::Drop(DropReason::Type(DataType::SortedSet)),
            ),
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (0, &["DEL", "s"], Want::Keep(0)),
            (0, &["PEXPIREAT", "s", "1"], Want::Keep(0)),
        ],
    );
    let f = FilterBuilder::default()
        .include_type("string")
        .include_type("hash")
        .build()
        .expect("filter");
    check(
        &f,
        "include types",
        &[
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (0, &["SETBIT", "a", "1", "1"], Want::Keep(0)),
            (0, &["PFADD", "h", "x"], Want::Keep(0)),
            (0, &["HSET", "h", "f", "v"], Want::Keep(0)),
            (
                0,
                &["LPUSH", "l", "x"],
                Want::Drop(DropReason::Type(DataType::List)),
            ),
            (0, &["SORT", "l", "STORE", "d"], Want::Keep(0)),
            (0, &["RENAME", "a", "b"], Want::Keep(0)),
        ],
    );
    let f = FilterBuilder::default()
        .exclude_command("flushall")
        .exclude_command("FUNCTION")
        .exclude_command("script|load")
        .build()
        .expect("filter");
    check(
        &f,
        "exclude commands",
        &[
            (0, &["FLUSHALL"], Want::Drop(DropReason::Command)),
            (0, &["flushdb"], Want::Keep(0)),
            (
                0,
                &["FUNCTION", "LOAD", "x"],
                Want::Drop(DropReason::Command),
            ),
            (0, &["FUNCTION", "FLUSH"], Want::Drop(DropReason::Command)),
            (0, &["SCRIPT", "LOAD", "x"], Want::Drop(DropReason::Command)),
            (0, &["SCRIPT", "FLUSH"], Want::Keep(0)),
            (0, &["MULTI"], Want::Keep(0)),
        ],
    );
    let f = FilterBuilder::default()
        .include_command("set")
        .include_command("del")
        .build()
        .expect("filter");
    check(
        &f,
        "include commands",
        &[
            (0, &["SET", "a", "1"], Want::Keep(0)),
            (0, &["DEL", "a"], Want::Keep(0)),
            (0, &["HSET", "h", "f", "v"], Want::Drop(DropReason::Command)),
            (0, &["EXEC"], Want::Keep(0)),
            (2, &["SELECT", "2"], Want::Keep(2)),
        ],
    );
}

#[test]
fn bad_filter_settings_say_what() {
    let cases: Vec<(FilterBuilder, &str)> = vec![
        (
            FilterBuilder::default().include_key_regex("(unclosed"),
            "bad regex pattern \"(unclosed\"",
        ),
        (
            FilterBuilder::default().exclude_type("tree"),
            "unknown data type \"tree\"",
        ),
        (
            FilterBuilder::default().include_command("sett"),
            "unknown command \"sett\"",
        ),
        (
            FilterBuilder::default().exclude_command("function|nope"),
            "unknown command \"function|nope\"",
        ),
    ];
    for (b, want) in cases {
        let e = b.build().expect_err(want).to_string();
        assert!(e.contains(want), "{e}");
    }
}
