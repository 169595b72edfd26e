//! The reference data set and its oracle, checked with the server's own replication: a replica
//! that did a full sync must compare equal to its master, and a changed key must not.
#![allow(clippy::unwrap_used)]

use redis_sync_testkit::{
    DatasetOptions, Server, ServerVersion, assert_same_data, compare_data, versions, write_dataset,
};

fn source(v: &ServerVersion) -> Server {
    let mut b = Server::builder(v)
        .arg("--repl-diskless-sync-delay")
        .arg("0");
    for m in ["rejson", "redisbloom"] {
        if v.module(m).is_some() {
            b = b.module(m);
        }
    }
    b.start()
}

#[test]
fn replica_equals_master_on_every_version() {
    for v in versions() {
        let master = source(&v);
        let info = write_dataset(&master, &DatasetOptions::default());
        assert!(
            info.keys.len() > 20,
            "{v}: only {} keys written",
            info.keys.len()
        );
        assert_eq!(info.dbs, vec![0, 3]);
        let total: i64 = info.dbs.iter().map(|&d| info.keys_in(d) as i64).sum();
        assert_eq!(total as usize, info.keys.len());
        assert_eq!(
            master.dbsize(),
            info.keys_in(0) as i64,
            "{v}: DBSIZE of db 0"
        );
        if v.at_least(5, 0) {
            assert_eq!(info.streams.len(), 4, "{v}");
        }
        if v.module("rejson").is_some() {
            assert_eq!(info.module_keys.len(), 2, "{v}: JSON and bloom keys");
        }
        let mut replica = Server::builder(&v);
        for m in ["rejson", "redisbloom"] {
            if v.module(m).is_some() {
                replica = replica.module(m);
            }
        }
        let replica = replica.replica_of(&master).start();
        replica.wait_replica_synced();
        assert_same_data(&master, &replica, &info);
        eprintln!("{v}: {} keys, replica equal", info.keys.len());
    }
}

#[test]
fn oracle_sees_a_difference_in_stream_groups() {
    // DEBUG DIGEST ignores consumer groups: the XINFO part of the oracle must catch them.
    let Some(v) = versions().into_iter().rfind(|v| v.at_least(6, 0)) else {
        return;
    };
    let a = Server::builder(&v)
        .arg("--repl-diskless-sync-delay")
        .arg("0")
        .start();
    let info = write_dataset(&a, &DatasetOptions::with_prefix("p:"));
    let b = Server::builder(&v).replica_of(&a).start();
    b.wait_replica_synced();
    assert_same_data(&a, &b, &info);
    b.cmd(&["REPLICAOF", "NO", "ONE"]).ok();
    let (_, key) = &info.streams[0];
    let digest = b.digest();
    b.cmd(&["XGROUP", "CREATE", key, "extra-group", "0"]).ok();
    assert_eq!(
        b.digest(),
        digest,
        "the digest is blind to groups (else this test is moot)"
    );
    let err = compare_data(&a, &b, &info).expect_err("an extra consumer group must be reported");
    assert!(err.contains("extra-group"), "{err}");
}

#[test]
fn describe_finds_what_was_written() {
    let Some(v) = versions().pop() else { return };
    let s = source(&v);
    let written = write_dataset(&s, &DatasetOptions::default());
    let found = redis_sync_testkit::describe(&s);
    let sorted = |i: &redis_sync_testkit::DatasetInfo| {
        let mut k: Vec<_> = i
            .keys
            .iter()
            .map(|k| (k.db, k.key.clone(), k.kind.clone()))
            .collect();
        k.sort();
        let mut st = i.streams.clone();
        st.sort();
        let mut m = i.module_keys.clone();
        m.sort();
        (k, st, m, i.functions.clone(), i.dbs.clone())
    };
    assert_eq!(sorted(&found), sorted(&written));
}
