//! A standalone source whose application renames and copies keys across what are different
//! slots of a cluster target (`RENAME tmp:pool:1 pool:1`), which the cluster refuses
//! (`CROSSSLOT`): the sync applies their effect and ends equal, expiries to the millisecond,
//! with the checkpoints in place, on the newest Redis and Valkey.

use redis_sync_testkit::{Cluster, Flavor, Server, ServerVersion, versions_where};

use crate::util::redis_sync;

fn matrix() -> Vec<ServerVersion> {
    let redis = versions_where("Redis 7+", |v| {
        v.flavor() == Flavor::Redis && v.at_least(7, 0)
    })
    .pop();
    let valkey = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey).pop();
    redis.into_iter().chain(valkey).collect()
}

#[test]
fn cross_slot_renames_and_copies_into_a_cluster_end_equal() {
    for v in matrix() {
        eprintln!("cross-slot moves into a cluster on {v}");
        let src = Server::builder(&v).start();
        src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        let cluster = Cluster::builder(&v).masters(3).start();
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let (s, t) = (
            format!("redis://{}", src.addr()),
            format!("redis://{}", cluster.masters()[0].addr()),
        );
        let args = [
            "sync",
            "--until-caught-up",
            "--source",
            &s,
            "--target",
            &t,
            "--state-file",
            state.to_str().expect("utf-8"),
        ];
        src.cmd(&["SET", "before", "1"]);
        let first = redis_sync(&args);
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
        // Inside a source transaction too.
        c.call(&["MULTI"]).expect("MULTI");
        c.call(&["SET", "m:1", "x"]).expect("queued");
        c.call(&["RENAME", "m:1", "m:2"]).expect("queued");
        c.call(&["INCR", "counter"]).expect("queued");
        c.call(&["EXEC"]).expect("EXEC");
        assert!(crossing > 20, "only {crossing} renames cross slots");

        let out = redis_sync(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{v}: {err}");
        assert!(err.contains("partial resync"), "{err}");
        cluster.drop_checkpoints();
        assert_eq!(cluster.dbsize(), src.dbsize(), "{v}");
        // DEBUG DIGEST includes expiry times: equal means the expiries are exact too.
        assert_eq!(cluster.xor_digest(), src.digest(), "{v}");
        eprintln!("ok {v}: {crossing} cross-slot renames, equal");
    }
}
