//! `redis-sync verify` on equal and on different pairs, standalone and cluster.

use std::process::{Command, Output};

use crate::util::usual_version;
use redis_sync_testkit::{Cluster, DatasetOptions, Server, find, versions, write_dataset};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .arg("verify")
        .args(args)
        .args(["--recheck-after", "0", "--json"])
        .output()
        .expect("run redis-sync verify")
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn equal_pairs_pass_and_differences_are_named() {
    let Some(v) = usual_version() else {
        return;
    };
    let a = Server::builder(&v).start();
    let b = Server::builder(&v).start();
    write_dataset(&a, &DatasetOptions::default());
    write_dataset(&b, &DatasetOptions::default());
    let (ua, ub) = (
        format!("redis://{}", a.addr()),
        format!("redis://{}", b.addr()),
    );

    // Equal: by digest, and key by key.
    let out = verify(&["--source", &ua, "--target", &ub]);
    let r = report(&out);
    assert!(out.status.success(), "{r:#}");
    assert!(r["method"].as_str().expect("method").contains("DIGEST"));
    let out = verify(&["--source", &ua, "--target", &ub, "--keys"]);
    let r = report(&out);
    assert!(out.status.success(), "{r:#}");
    assert!(r["keys_compared"].as_u64().expect("n") > 10);

    // Different: one missing, one extra, one value, one TTL.
    let victim = a.cmd(&["RANDOMKEY"]).bulk().expect("a key");
    b.cmd(&[&b"DEL"[..], &victim]);
    b.cmd(&["SET", "only-on-target", "1"]);
    a.cmd(&["SET", "changed", "1"]);
    b.cmd(&["SET", "changed", "2"]);
    a.cmd(&["SET", "ttl", "1", "EX", "1000"]);
    b.cmd(&["SET", "ttl", "1"]);
    let out = verify(&["--source", &ua, "--target", &ub]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["missing"], 1, "{r:#}");
    assert_eq!(r["extra"], 1, "{r:#}");
    assert_eq!(r["different"], 2, "{r:#}");
    let named: Vec<&str> = r["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .filter_map(|d| d["key"].as_str())
        .collect();
    for k in ["only-on-target", "changed", "ttl"] {
        assert!(named.contains(&k), "{k} not named: {r:#}");
    }
    // A sample compares fewer keys.
    let out = verify(&["--source", &ua, "--target", &ub, "--sample", "5"]);
    let r = report(&out);
    assert_eq!(r["keys_compared"], 5, "{r:#}");
    // --repair fixes all four; afterwards the digests agree.
    let out = verify(&["--source", &ua, "--target", &ub, "--repair"]);
    let r = report(&out);
    assert!(out.status.success(), "{r:#}");
    assert_eq!(r["repaired"], 4, "{r:#}");
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn standalone_against_cluster() {
    let Some(v) =
        find("redis-7.0.15").or_else(|| versions().into_iter().find(|v| v.at_least(7, 0)))
    else {
        eprintln!("skipped: no 7.0+ server installed");
        return;
    };
    let a = Server::builder(&v).start();
    let cluster = Cluster::builder(&v).masters(3).start();
    for i in 0..200 {
        let k = format!("k{i}");
        a.cmd(&["SET", &k, "v"]);
        cluster.master_for_slot(slot(&k)).cmd(&["SET", &k, "v"]);
    }
    let ua = format!("redis://{}", a.addr());
    let uc = format!("redis://{}", cluster.masters()[0].addr());
    let out = verify(&["--source", &ua, "--target", &uc]);
    let r = report(&out);
    assert!(out.status.success(), "{r:#}");
    assert_eq!(r["keys_compared"], 200);
    cluster.master_for_slot(slot("k7")).cmd(&["DEL", "k7"]);
    let out = verify(&["--source", &ua, "--target", &uc]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["missing"], 1);
}

fn slot(key: &str) -> u16 {
    redis_sync_commands::hash_slot(key.as_bytes())
}
