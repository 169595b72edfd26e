//! A standalone source whose application renames and copies keys across what are different
//! slots of a cluster target (`RENAME tmp:pool:1 pool:1`), runs scripts and transactions over
//! several slots and every kind of multi-key write, which the cluster refuses (`CROSSSLOT`):
//! the sync applies their effect and ends equal, expiries to the millisecond,
//! with the checkpoints in place, on Redis 7.0, the newest Redis and the newest Valkey.

use redis_sync_testkit::{Cluster, Flavor, Server, ServerVersion, versions_where};

use crate::util::sync_until_caught_up;

/// Redis 7.0 and the newest Redis and Valkey (the commands below need 7.0+).
fn matrix() -> Vec<ServerVersion> {
    let mut redis = versions_where("Redis 7+", |v| {
        v.flavor() == Flavor::Redis && v.at_least(7, 0)
    });
    let newest = redis.pop();
    let seven = redis.into_iter().find(|v| !v.at_least(7, 1));
    let valkey = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey).pop();
    seven.into_iter().chain(newest).chain(valkey).collect()
}

/// A standalone source (no diskless delay), a 3-master cluster target and a directory for the
/// state file.
struct Pair {
    src: Server,
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Pair {
    fn start(v: &ServerVersion) -> Pair {
        let src = Server::builder(v).start();
        src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        let cluster = Cluster::builder(v).masters(3).start();
        let dir = tempfile::tempdir().expect("tempdir");
        Pair { src, cluster, dir }
    }

    /// `sync --until-caught-up` from the source into the cluster.
    fn sync(&self) -> std::process::Output {
        let s = format!("redis://{}", self.src.addr());
        let t = format!("redis://{}", self.cluster.masters()[0].addr());
        sync_until_caught_up(&s, &t, &self.dir.path().join("state.json"), &[])
    }
}

#[test]
fn cross_slot_renames_and_copies_into_a_cluster_end_equal() {
    for v in matrix() {
        eprintln!("cross-slot moves into a cluster on {v}");
        let pair = Pair::start(&v);
        let (src, cluster) = (&pair.src, &pair.cluster);
        let sync = || pair.sync();
        src.cmd(&["SET", "before", "1"]);
        let first = sync();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );

        // The stream: moves whose keys are in different slots, among non-idempotent writes.
        let mut crossing = 0;
        let mut c = src.client();
        for i in 0..40 {
            let (tmp, pool) = (format!("tmp:pool:{i}"), format!("pool:{i}"));
            let slot = |k: &str| cluster.masters()[0].cmd(&["CLUSTER", "KEYSLOT", k]).int();
            crossing += usize::from(slot(&tmp) != slot(&pool));
            c.call(&["INCR", "counter"]).expect("INCR");
            c.call(&["RPUSH", &tmp, "a", "b", &i.to_string()])
                .expect("RPUSH");
            if i % 2 == 0 {
                c.call(&["PEXPIRE", &tmp, "3600000"]).expect("PEXPIRE");
            }
            c.call(&["RENAME", &tmp, &pool]).expect("RENAME");
            c.call(&["SET", &format!("nx:{i}"), "v"]).expect("SET");
            c.call(&["RENAMENX", &format!("nx:{i}"), &format!("nx-done:{i}")])
                .expect("RENAMENX");
            c.call(&["COPY", &pool, &format!("copy:{i}")])
                .expect("COPY");
            c.call(&["LPUSH", &pool, "after"]).expect("LPUSH");
            c.call(&["COPY", &pool, &format!("copy:{i}"), "REPLACE"])
                .expect("COPY REPLACE");
        }
        // A script over several slots: replicated as its effects, in MULTI … EXEC.
        let script = "redis.call('SET', KEYS[1], ARGV[1]) redis.call('INCR', KEYS[2]) \
                      redis.call('RPUSH', KEYS[3], ARGV[1]) \
                      redis.call('LMOVE', KEYS[3], KEYS[4], 'LEFT', 'RIGHT') return 1";
        for i in 0..5 {
            let v = i.to_string();
            c.call(&["EVAL", script, "4", "lua:a", "lua:b", "lua:c", "lua:d", &v])
                .expect("EVAL");
        }
        // Inside a source transaction too.
        c.call(&["MULTI"]).expect("MULTI");
        c.call(&["SET", "m:1", "x"]).expect("queued");
        c.call(&["RENAME", "m:1", "m:2"]).expect("queued");
        c.call(&["INCR", "counter"]).expect("queued");
        c.call(&["EXEC"]).expect("EXEC");
        assert!(crossing > 20, "only {crossing} renames cross slots");

        let out = sync();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{v}: {err}");
        assert!(err.contains("partial resync"), "{err}");
        // The five scripts and the transaction were committed per slot, and said so.
        assert!(err.contains("tx_split=6"), "{err}");
        cluster.drop_checkpoints();
        assert_eq!(cluster.dbsize(), src.dbsize(), "{v}");
        // DEBUG DIGEST includes expiry times: equal means the expiries are exact too.
        assert_eq!(cluster.xor_digest(), src.digest(), "{v}");
        eprintln!("ok {v}: {crossing} cross-slot renames, equal");
    }
}

/// Every kind of multi-key write whose keys span slots, applied on copies of its keys that
/// share one slot: moves between lists and sets, stores of set, sorted-set, bitmap, HyperLogLog
/// and geo results, `MSETNX`, `SORT … STORE`; several rounds, so a move applied twice or lost
/// would show.
#[test]
fn every_kind_of_cross_slot_write_into_a_cluster_ends_equal() {
    for v in matrix() {
        eprintln!("cross-slot writes of every kind into a cluster on {v}");
        let pair = Pair::start(&v);
        let (src, cluster) = (&pair.src, &pair.cluster);
        let sync = || pair.sync();
        let mut c = src.client();
        for (i, m) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            c.call(&["SADD", "set:1", m]).expect("SADD");
            c.call(&["SADD", "set:2", &format!("{m}{i}")])
                .expect("SADD");
            c.call(&["RPUSH", "list:1", m]).expect("RPUSH");
            c.call(&["ZADD", "zset:1", &i.to_string(), m])
                .expect("ZADD");
            c.call(&["ZADD", "zset:2", &(i * 2).to_string(), m])
                .expect("ZADD");
            c.call(&["PFADD", "hll:1", m]).expect("PFADD");
        }
        // Eight pops a round take from list:1 and four from zset:2: enough for the first.
        c.call(&["RPUSH", "list:1", "g", "h", "i", "j", "k", "l"])
            .expect("RPUSH");
        c.call(&["SET", "bits:1", "abc"]).expect("SET");
        c.call(&["SET", "bits:2", "xyz"]).expect("SET");
        c.call(&["GEOADD", "geo:1", "13.361389", "38.115556", "Palermo"])
            .expect("GEOADD");
        c.call(&["GEOADD", "geo:1", "15.087269", "37.502669", "Catania"])
            .expect("GEOADD");
        let first = sync();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );

        let writes: &[&[&str]] = &[
            &["SMOVE", "set:1", "set:3", "a"],
            &["LMOVE", "list:1", "list:2", "LEFT", "RIGHT"],
            &["RPOPLPUSH", "list:1", "list:3"],
            &["SUNIONSTORE", "set:u", "set:1", "set:2"],
            &["SINTERSTORE", "set:i", "set:1", "set:3"],
            &["SDIFFSTORE", "set:d", "set:2", "set:1"],
            &[
                "ZUNIONSTORE",
                "zset:u",
                "2",
                "zset:1",
                "zset:2",
                "WEIGHTS",
                "1",
                "3",
            ],
            &["ZINTERSTORE", "zset:i", "2", "zset:1", "zset:2"],
            &["ZDIFFSTORE", "zset:d", "2", "zset:2", "zset:1"],
            &["ZRANGESTORE", "zset:r", "zset:2", "0", "2"],
            &["BITOP", "XOR", "bits:x", "bits:1", "bits:2"],
            &["PFMERGE", "hll:m", "hll:1"],
            &["MSETNX", "nx:1", "1", "nx:2", "2"],
            &["SORT", "list:2", "ALPHA", "STORE", "sorted:1"],
            &[
                "GEOSEARCHSTORE",
                "geo:s",
                "geo:1",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &[
                "GEORADIUS",
                "geo:1",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "geo:r",
            ],
            &[
                "GEORADIUSBYMEMBER",
                "geo:1",
                "Palermo",
                "300",
                "km",
                "STOREDIST",
                "geo:m",
            ],
            // Blocking and multi-key pops: the source replicates them as one-key pops, but
            // they run here as an application would.
            &["BLMOVE", "list:1", "list:4", "RIGHT", "LEFT", "0"],
            &["BRPOPLPUSH", "list:1", "list:5", "0"],
            &["LMPOP", "2", "list:6", "list:1", "LEFT"],
            &["BLMPOP", "0", "2", "list:7", "list:1", "RIGHT"],
            &["ZMPOP", "2", "zset:9", "zset:2", "MIN"],
            &["BZMPOP", "0", "2", "zset:8", "zset:2", "MAX"],
            &["BLPOP", "list:9", "list:1", "0"],
            &["BZPOPMIN", "zset:7", "zset:2", "0"],
            &["BRPOP", "list:8", "list:1", "0"],
            &["BZPOPMAX", "zset:6", "zset:2", "0"],
        ];
        // MSETEX is Redis 8.4+.
        let msetex: &[&[&str]] = &[&["MSETEX", "2", "ex:1", "a", "ex:2", "b", "PX", "3600000"]];
        let writes: Vec<&[&str]> = if v.flavor() == Flavor::Redis && v.at_least(8, 4) {
            writes.iter().chain(msetex).copied().collect()
        } else {
            writes.to_vec()
        };
        let mut crossing = 0;
        for round in 0..3 {
            for w in &writes {
                let keys: Vec<&str> = w.iter().filter(|a| a.contains(':')).copied().collect();
                let slot = |k: &str| cluster.masters()[0].cmd(&["CLUSTER", "KEYSLOT", k]).int();
                crossing += usize::from(keys.iter().any(|k| slot(k) != slot(keys[0])));
                let r = c
                    .call(w)
                    .unwrap_or_else(|e| panic!("{w:?} in round {round}: {e}"));
                assert!(!r.is_error(), "{w:?}: {r:?}");
            }
            // New members for the next round's moves.
            c.call(&["SADD", "set:1", "a", &format!("r{round}")])
                .expect("SADD");
            let (r, z) = (format!("r{round}"), format!("z{round}"));
            c.call(&[
                "RPUSH", "list:1", &r, "x", "y", "z", "w", "v", "u", "t", "s",
            ])
            .expect("RPUSH");
            let y = format!("y{round}");
            c.call(&["ZADD", "zset:2", "50", &r, "51", &z, "52", &y])
                .expect("ZADD");
            c.call(&["DEL", "nx:1", "nx:2"]).expect("DEL");
        }
        assert!(
            crossing > writes.len(),
            "only {crossing} writes cross slots"
        );

        let out = sync();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{v}: {err}");
        assert!(err.contains("partial resync"), "{err}");
        cluster.drop_checkpoints();
        assert_eq!(cluster.dbsize(), src.dbsize(), "{v}");
        assert_eq!(cluster.xor_digest(), src.digest(), "{v}");
        eprintln!(
            "ok {v}: {crossing} cross-slot writes of {} kinds, equal",
            writes.len()
        );
    }
}

/// How a multi-key write whose keys span slots is applied on a cluster target.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Split per slot by the sink (each part means the same).
    Split,
    /// A move (`RENAME`, `RENAMENX`, `COPY`): `DUMP`/`RESTORE`, then the deletion.
    Move,
    /// Run on copies of its keys in one slot; the keys it writes get the results.
    OnCopies,
    /// Refused with `CROSSSLOT` and a hint; the README's "Cluster targets" says why.
    Refused(&'static str),
}

/// Commands refused across slots, and why (the README repeats this list).
const REFUSED: &[(&str, &str)] = &[
    (
        "eval",
        "a script may touch keys it was not given; Redis 5+ replicates its effects instead",
    ),
    ("evalsha", "as EVAL"),
    ("eval_ro", "read-only"),
    ("evalsha_ro", "read-only"),
    (
        "fcall",
        "as EVAL: a function may touch keys it was not given",
    ),
    ("fcall_ro", "read-only"),
    (
        "migrate",
        "never in a replication stream (the receiving server gets RESTORE)",
    ),
    (
        "xreadgroup",
        "never in a replication stream: the source replicates its effect per stream (XCLAIM, \
         XGROUP SETID), each one key",
    ),
];

/// The verdict for one write command with more than one key, the way `sync` decides it.
fn applied(name: &str, written: bool) -> Applied {
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
        return Applied::Refused(why);
    }
    match name {
        "del" | "unlink" | "mset" | "touch" => Applied::Split,
        "rename" | "renamenx" | "copy" => Applied::Move,
        _ if written => Applied::OnCopies,
        _ => Applied::Refused("its key specs name no key it writes"),
    }
}

/// Every write command of the generated table that takes more than one key has a way to be
/// applied across slots, or is in the documented refusal list: a new multi-key command in a
/// new server version fails here until it is one or the other.
#[test]
fn every_multi_key_write_in_the_table_is_applied_or_refused_with_a_reason() {
    use redis_sync_commands::table::{FindKeys, KeySpecFlags};
    let written_flags = KeySpecFlags::RW
        .union(KeySpecFlags::OW)
        .union(KeySpecFlags::RM);
    let mut seen = Vec::new();
    let mut undecided = Vec::new();
    for def in redis_sync_commands::commands() {
        let all = std::iter::once(def).chain(def.subcommands.iter());
        for def in all {
            let specs = def.form().key_specs;
            let multi = specs.len() > 1
                || specs.iter().any(|k| match k.find {
                    FindKeys::Range { last_key, .. } => last_key != 0,
                    _ => true, // a count of keys, or unknown
                });
            if !def.is_write() || !multi {
                continue;
            }
            let written = specs.iter().any(|k| k.flags.intersects(written_flags));
            let verdict = applied(def.name, written);
            if let Applied::Refused(why) = &verdict
                && !REFUSED.iter().any(|(n, _)| *n == def.name)
            {
                undecided.push(format!("{} ({why})", def.name));
            }
            seen.push((def.name, verdict));
        }
    }
    assert!(
        undecided.is_empty(),
        "multi-key writes with neither a way across slots nor a documented refusal: {undecided:?}"
    );
    // The table is read: the commands the stream tests above run are all in it.
    for name in [
        "smove",
        "lmove",
        "sunionstore",
        "zunionstore",
        "bitop",
        "pfmerge",
        "msetnx",
    ] {
        assert!(
            seen.iter()
                .any(|(n, v)| *n == name && *v == Applied::OnCopies),
            "{name}: {seen:?}"
        );
    }
    eprintln!(
        "on copies: {:?}",
        seen.iter()
            .filter(|(_, v)| *v == Applied::OnCopies)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "{} multi-key writes: {} split, {} moves, {} on copies, {} refused",
        seen.len(),
        seen.iter().filter(|(_, v)| *v == Applied::Split).count(),
        seen.iter().filter(|(_, v)| *v == Applied::Move).count(),
        seen.iter().filter(|(_, v)| *v == Applied::OnCopies).count(),
        seen.iter()
            .filter(|(_, v)| matches!(v, Applied::Refused(_)))
            .count(),
    );
}
