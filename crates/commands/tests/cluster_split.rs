//! Every split rule against a real 3-master cluster and a standalone server.
//!
//! For each case: FLUSHALL both, write the same seed data on both, apply the original command
//! to the standalone and the split commands to the cluster (each to the master of its slot),
//! then compare the cluster's XOR of master digests with the standalone's digest. Keys use the
//! tags `{a}` (slot 15495, third master), `{b}` (3300, first) and `{c}` (7365, second), and
//! every case keeps a key on each master, so three (an odd number of) masters are non-empty,
//! which is when the XOR equals the standalone digest.
//!
//! One cluster and one standalone of the newest Redis serve all cases, to keep CI short.

use std::collections::HashMap;

use bytes::Bytes;
use redis_sync_commands::{
    ClusterPlan, Error, Route, classify, cross_slot_move, hash_slot, split_for_cluster,
    split_transaction,
};
use redis_sync_testkit::{Client, Cluster, Flavor, Reply, Server, versions_where};

struct Harness {
    cluster: Cluster,
    standalone: Server,
    /// Master port per slot.
    owner: Vec<u16>,
    clients: HashMap<u16, Client>,
    single: Client,
}

fn b(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

impl Harness {
    /// The newest installed server of `flavor` (Redis 7.0+ or any Valkey), as a 3-master
    /// cluster and a standalone server.
    fn start(flavor: Flavor) -> Option<Harness> {
        let v = versions_where(
            &format!("{flavor:?} (7.0+ for Redis) for cluster tests"),
            |v| v.flavor() == flavor && (flavor == Flavor::Valkey || v.at_least(7, 0)),
        )
        .pop()?;
        let cluster = Cluster::builder(&v).masters(3).start();
        let standalone = Server::builder(&v).start();
        let mut owner = vec![0u16; 16384];
        for range in cluster.masters()[0].cmd(&["CLUSTER", "SLOTS"]).ok().array() {
            let r = range.array();
            let port = u16::try_from(r[2].array()[1].int()).expect("port");
            for s in r[0].int()..=r[1].int() {
                owner[usize::try_from(s).expect("slot")] = port;
            }
        }
        let clients = cluster
            .masters()
            .iter()
            .map(|m| (m.port(), m.client()))
            .collect();
        let single = standalone.client();
        eprintln!("cluster split tests on {}", v.name());
        Some(Harness {
            cluster,
            standalone,
            owner,
            clients,
            single,
        })
    }

    fn node(&mut self, slot: u16) -> &mut Client {
        let port = self.owner[usize::from(slot)];
        self.clients
            .get_mut(&port)
            .expect("a master for every slot")
    }

    fn on_slot(&mut self, slot: u16, args: &[Bytes]) -> Reply {
        let r = self.node(slot).call(args).expect("cluster I/O");
        assert!(
            !r.is_error(),
            "cluster refused {args:?} on slot {slot}: {r:?}"
        );
        r
    }

    /// A single-slot command, routed by its keys.
    fn cluster_cmd(&mut self, args: &[Bytes]) -> Reply {
        let c = classify(args).expect("known command");
        let Route::Slot(slot) = c.route else {
            panic!("{args:?} is not single-slot: {:?}", c.route)
        };
        self.on_slot(slot, args)
    }

    fn reset(&mut self, seed: &[&[&str]]) {
        self.single.call(&["FLUSHALL"]).expect("flush").ok();
        for c in self.clients.values_mut() {
            c.call(&["FLUSHALL"]).expect("flush").ok();
        }
        let base: [&[&str]; 3] = [
            &["SET", "{a}keep", "1"],
            &["SET", "{b}keep", "2"],
            &["SET", "{c}keep", "3"],
        ];
        for cmd in base.iter().chain(seed) {
            let args = b(cmd);
            self.single.call(&args).expect("seed").ok();
            self.cluster_cmd(&args);
        }
    }

    fn assert_same(&mut self, case: &str) {
        let non_empty = self
            .cluster
            .masters()
            .iter()
            .filter(|m| m.dbsize() > 0)
            .count();
        assert_eq!(
            non_empty, 3,
            "{case}: every master must hold data for the XOR oracle"
        );
        assert_eq!(
            self.cluster.dbsize(),
            self.standalone.dbsize(),
            "{case}: key counts"
        );
        assert_eq!(
            self.cluster.xor_digest(),
            self.standalone.digest(),
            "{case}: data differs"
        );
    }

    /// Applies `original` to the standalone and its split to the cluster; returns both replies
    /// (the cluster's as the list of part replies).
    fn split_case(
        &mut self,
        case: &str,
        seed: &[&[&str]],
        original: &[&str],
    ) -> (Reply, Vec<Reply>) {
        self.reset(seed);
        let args = b(original);
        let want = self.single.call(&args).expect("standalone I/O");
        let ClusterPlan::Split(parts) = split_for_cluster(&args).expect("splittable") else {
            panic!("{case}: expected a split")
        };
        assert!(parts.len() >= 2, "{case}: expected keys in several slots");
        let got = parts
            .iter()
            .map(|p| self.on_slot(p.slot, &p.args))
            .collect();
        self.assert_same(case);
        (want, got)
    }
}

fn sum(replies: &[Reply]) -> i64 {
    replies.iter().map(Reply::int).sum()
}

#[test]
fn split_rules_against_a_real_redis_cluster() {
    split_rules_against_a_real_cluster(Flavor::Redis);
}

#[test]
fn split_rules_against_a_real_valkey_cluster() {
    split_rules_against_a_real_cluster(Flavor::Valkey);
}

fn split_rules_against_a_real_cluster(flavor: Flavor) {
    let Some(mut h) = Harness::start(flavor) else {
        return;
    };
    refused_commands_really_fail(&mut h);
    let far = "4102444800000"; // 2100-01-01 in ms: a fixed absolute expiry on both sides

    // DEL / UNLINK: per slot; the replies add up to the original's.
    let seed: &[&[&str]] = &[
        &["SET", "{a}1", "x"],
        &["HSET", "{b}1", "f", "v"],
        &["RPUSH", "{c}1", "a", "b"],
        &["SET", "{b}2", "y"],
    ];
    for cmd in ["DEL", "UNLINK"] {
        let (want, got) = h.split_case(
            cmd,
            seed,
            &[cmd, "{a}1", "{b}1", "{c}1", "{a}missing", "{b}2"],
        );
        assert_eq!(want.int(), 4);
        assert_eq!(sum(&got), want.int(), "{cmd} replies");
    }

    // EXISTS / TOUCH: no data change; the replies add up (duplicates counted each time).
    for cmd in ["EXISTS", "TOUCH"] {
        let (want, got) =
            h.split_case(cmd, seed, &[cmd, "{a}1", "{b}1", "{a}1", "{c}none", "{c}1"]);
        assert_eq!(sum(&got), want.int(), "{cmd} replies");
    }

    // MSET: per slot, a repeated key keeps its last value, and an overwritten TTL is cleared.
    let (want, got) = h.split_case(
        "MSET",
        &[&["SET", "{b}1", "old", "PXAT", far]],
        &[
            "MSET", "{a}1", "x", "{b}1", "y", "{c}1", "z", "{a}1", "w", "{b}new", "n",
        ],
    );
    assert_eq!(want.text(), "OK");
    assert!(got.iter().all(|r| r.text() == "OK"));

    // MULTI/EXEC: one transaction per slot, each atomic, same final data.
    let block: Vec<Vec<Bytes>> = [
        &["SET", "{a}t", "1"][..],
        &["INCR", "{b}n"],
        &["DEL", "{a}keep", "{c}x", "{b}t"],
        &["HSET", "{c}h", "f", "v"],
        &["LPUSH", "{b}l", "a", "b"],
        &["PEXPIREAT", "{c}h", far],
        &["MSET", "{a}m", "1", "{c}m", "2"],
        &["SET", "{a}keep", "again"],
    ]
    .iter()
    .map(|c| b(c))
    .collect();
    h.reset(&[&["SET", "{b}t", "1"]]);
    h.single.call(&["MULTI"]).expect("multi").ok();
    for c in &block {
        h.single.call(c).expect("queue");
    }
    let exec = h.single.call(&["EXEC"]).expect("exec");
    assert!(
        !exec.array().iter().any(Reply::is_error),
        "standalone EXEC: {exec:?}"
    );
    let plan = split_transaction(&block).expect("transaction splits");
    assert_eq!(plan.parts.len(), 3, "{plan:?}");
    assert!(plan.warning.is_some());
    for part in &plan.parts {
        let Route::Slot(slot) = part.route else {
            panic!("{:?}", part.route)
        };
        let node = h.node(slot);
        node.call(&["MULTI"]).expect("multi").ok();
        for c in &part.commands {
            let r = node.call(c).expect("queue");
            assert_eq!(r, Reply::Status("QUEUED".into()), "{c:?}");
        }
        let r = node.call(&["EXEC"]).expect("exec");
        assert!(
            !r.array().iter().any(Reply::is_error),
            "cluster EXEC: {r:?}"
        );
    }
    h.assert_same("MULTI/EXEC");

    // Cross-slot RENAME / RENAMENX / COPY emulated with DUMP + RESTORE (+ DEL).
    let seed: &[&[&str]] = &[
        &["HSET", "{a}src", "f", "v", "g", "w"],
        &["PEXPIREAT", "{a}src", far],
        &["SET", "{b}dst", "old"],
        &["SET", "{c}src2", "s"],
    ];
    let moves: &[&[&str]] = &[
        &["RENAME", "{a}src", "{b}dst"],
        &["RENAME", "{a}src", "{c}fresh"],
        &["RENAMENX", "{a}src", "{b}dst"],
        &["RENAMENX", "{c}src2", "{b}fresh"],
        &["COPY", "{a}src", "{b}dst"],
        &["COPY", "{a}src", "{b}dst", "REPLACE"],
        &["COPY", "{c}src2", "{a}fresh"],
    ];
    for original in moves {
        let case = original.join(" ");
        h.reset(seed);
        let args = b(original);
        assert!(
            matches!(split_for_cluster(&args), Err(Error::CrossSlot { .. })),
            "{case}"
        );
        h.single.call(&args).expect("standalone").ok();
        let plan = cross_slot_move(&args).expect("a move plan");
        let payload = h
            .on_slot(plan.source_slot, &plan.dump_args())
            .bulk()
            .expect("source exists");
        let at = h.on_slot(plan.source_slot, &plan.pexpiretime_args()).int();
        let exists = h
            .on_slot(
                plan.destination_slot,
                &b(&["EXISTS", &String::from_utf8_lossy(&plan.destination)]),
            )
            .int();
        if !(plan.only_if_absent() && exists == 1) {
            h.on_slot(
                plan.destination_slot,
                &plan.restore_abs_args(at, Bytes::from(payload)),
            );
            if plan.deletes_source() {
                h.on_slot(plan.source_slot, &plan.del_args());
            }
        }
        h.assert_same(&case);
    }
}

/// Each command the splitter refuses gets CROSSSLOT from the cluster itself, so refusing is
/// needed; and the error names every key with its slot.
fn refused_commands_really_fail(h: &mut Harness) {
    h.reset(&[&["SADD", "{a}s", "m"], &["RPUSH", "{a}l", "x"]]);
    let refused: &[&[&str]] = &[
        &["MSETNX", "{a}1", "1", "{b}1", "2"],
        &["RENAME", "{a}s", "{b}s"],
        &["RENAMENX", "{a}s", "{b}s"],
        &["COPY", "{a}s", "{b}s"],
        &["SMOVE", "{a}s", "{b}s", "m"],
        &["LMOVE", "{a}l", "{b}l", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "{a}l", "{b}l"],
        &["BLMOVE", "{a}l", "{b}l", "LEFT", "LEFT", "0"],
        &["SINTERSTORE", "{a}d", "{b}s", "{c}s"],
        &["SUNIONSTORE", "{a}d", "{b}s"],
        &["SDIFFSTORE", "{a}d", "{b}s"],
        &["ZUNIONSTORE", "{a}d", "2", "{b}z", "{c}z"],
        &["ZINTERSTORE", "{a}d", "1", "{b}z"],
        &["PFMERGE", "{a}d", "{b}h"],
        &["BITOP", "OR", "{a}d", "{b}x"],
        &["EVAL", "return 1", "2", "{a}k", "{b}k"],
        &["FCALL", "nosuchfunction", "2", "{a}k", "{b}k"],
    ];
    for original in refused {
        let args = b(original);
        let err = split_for_cluster(&args).expect_err("must be refused");
        let msg = err.to_string();
        let Error::CrossSlot { keys, .. } = &err else {
            panic!("{original:?}: {err}")
        };
        assert!(keys.len() >= 2, "{msg}");
        for k in keys {
            assert_eq!(k.slot, hash_slot(k.key.as_bytes()), "{msg}");
            assert!(
                msg.contains(&format!("'{}' (slot {})", k.key, k.slot)),
                "{msg}"
            );
        }
        let first = hash_slot(original[1].as_bytes())
            .min(hash_slot(original.last().unwrap_or(&"").as_bytes()));
        let reply = h.node(first).call(&args).expect("cluster I/O");
        let text = match &reply {
            Reply::Error(e) => e.clone(),
            other => panic!("{original:?}: the cluster accepted it: {other:?}"),
        };
        assert!(
            text.starts_with("CROSSSLOT") || text.starts_with("MOVED"),
            "{original:?}: {text}"
        );
    }
}
