//! The kit itself against every installed server: start, authenticate, replicate, cluster.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use redis_sync_testkit::{Cluster, Flavor, Reply, Server, poll_until, versions, versions_where};

#[test]
fn every_version_starts_and_digests() {
    let all = versions();
    assert!(!all.is_empty() || !redis_sync_testkit::in_ci());
    for v in &all {
        let s = Server::builder(v).start();
        let empty = s.digest();
        assert_eq!(empty, "0".repeat(40), "{v}: empty keyspace digest");
        s.cmd(&["SET", "k", "v"]).ok();
        assert_ne!(s.digest(), empty, "{v}: digest must change with data");
        assert_eq!(s.dbsize(), 1);
        let info = s.info("server");
        let field = if v.flavor() == Flavor::Valkey && v.at_least(8, 0) {
            info.get("valkey_version")
                .or_else(|| info.get("redis_version"))
        } else {
            info.get("redis_version")
        };
        let reported = field.cloned().unwrap_or_default();
        let expected = format!("{}.{}", v.version().0, v.version().1);
        assert!(reported.starts_with(&expected), "{v}: INFO says {reported}");
        let rdb = std::fs::read(s.save()).unwrap();
        let magic = if v.rdb_version() == 80 {
            "VALKEY080".to_string()
        } else {
            format!("REDIS{:04}", v.rdb_version())
        };
        assert_eq!(&rdb[..9], magic.as_bytes(), "{v}: RDB magic");
    }
}

#[test]
fn password_is_required_and_used() {
    let Some(v) = versions().pop() else { return };
    let s = Server::builder(&v).password("s3cret").start();
    assert_eq!(s.cmd(&["PING"]), Reply::Status("PONG".into()));
    let mut raw = redis_sync_testkit::Client::connect(s.port()).unwrap();
    let r = raw.call(&["GET", "x"]).unwrap();
    assert!(r.is_error(), "unauthenticated GET must fail, got {r:?}");
}

#[test]
fn replica_follows_master() {
    let Some(v) = versions().into_iter().next() else {
        return;
    };
    let master = Server::builder(&v).password("pw").start();
    let replica = Server::builder(&v).replica_of(&master).start();
    replica.wait_replica_synced();
    master.cmd(&["SET", "a", "1"]).ok();
    poll_until(
        Duration::from_secs(10),
        "the replica to get the write",
        || (replica.digest() == master.digest()).then_some(()),
    );
}

#[test]
fn cluster_forms_and_routes() {
    let vs = versions_where("a cluster-capable server (any)", |_| true);
    let Some(v) = vs.last() else { return };
    let cluster = Cluster::builder(v).masters(3).replicas(1).start();
    assert_eq!(cluster.nodes().count(), 6);
    // Slot 0 is on the first master, slot 16383 on the last.
    assert_eq!(
        cluster.master_for_slot(0).port(),
        cluster.masters()[0].port()
    );
    assert_eq!(
        cluster.master_for_slot(16383).port(),
        cluster.masters()[2].port()
    );
    // "{a}" hashes to slot 15495, on the last master.
    let node = cluster.master_for_slot(15495);
    node.cmd(&["SET", "{a}x", "1"]).ok();
    assert_eq!(cluster.dbsize(), 1);
    let standalone = Server::builder(v).start();
    standalone.cmd(&["SET", "{a}x", "1"]).ok();
    assert_eq!(cluster.xor_digest(), standalone.digest());
}
