//! What the `resp` / `restore` conversion promises beyond the oracle's data set: expired keys
//! are left out, LFU counters travel with RESTORE, a module value without a payload is a clear
//! error, and the native commands load into a newer server than the one that wrote the file.

use std::time::Duration;

use redis_sync_testkit::{
    DatasetOptions, Flavor, Server, poll_until, unix_ms, versions, write_dataset,
};

use crate::util::{rdb, redis_sync, replay, server_with_modules};

#[test]
fn keys_expired_by_conversion_time_are_left_out() {
    let Some(v) = versions().pop() else { return };
    let source = Server::builder(&v).start();
    let expire_at = unix_ms() + 400;
    source
        .cmd(&["SET", "gone", "v", "PXAT", &expire_at.to_string()])
        .ok();
    source.cmd(&["SET", "kept", "v", "PX", "3600000"]).ok();
    let dump = source.save();
    poll_until(Duration::from_secs(5), "the key's expiry time", || {
        (unix_ms() > expire_at + 5).then_some(())
    });
    // The file still holds it …
    let keys = String::from_utf8(rdb(&dump, "keys")).unwrap();
    assert!(keys.lines().any(|k| k == "gone"), "{keys}");
    // … but the commands do not.
    let out = redis_sync(&["rdb", dump.to_str().unwrap(), "--format", "resp"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 keys already expired"));
    let target = Server::builder(&v).start();
    replay(&target, &out.stdout);
    assert_eq!(target.cmd(&["EXISTS", "gone"]).int(), 0);
    assert_eq!(target.cmd(&["EXISTS", "kept"]).int(), 1);
    let ttl = target.cmd(&["PTTL", "kept"]).int();
    assert!(ttl > 3_500_000, "expiry carried: {ttl}");
}

#[test]
fn restore_carries_the_lfu_counter() {
    let Some(v) = versions().into_iter().rfind(|v| v.at_least(5, 0)) else {
        return;
    };
    let lfu = |b: redis_sync_testkit::ServerBuilder| {
        b.arg("--maxmemory-policy").arg("allkeys-lfu").start()
    };
    let source = lfu(Server::builder(&v));
    source.cmd(&["SET", "hot", "v"]).ok();
    source.cmd(&["SET", "cold", "v"]).ok();
    let mut c = source.client();
    for _ in 0..200 {
        c.call(&["GET", "hot"]).unwrap();
    }
    let dump = source.save();
    let target = lfu(Server::builder(&v));
    replay(&target, &rdb(&dump, "restore"));
    for k in ["hot", "cold"] {
        let a = source.cmd(&["OBJECT", "FREQ", k]).int();
        let b = target.cmd(&["OBJECT", "FREQ", k]).int();
        assert_eq!(a, b, "{v}: OBJECT FREQ {k}");
    }
    assert!(source.cmd(&["OBJECT", "FREQ", "hot"]).int() > 5);
}

#[test]
fn module_value_beyond_the_payload_limit_is_an_error() {
    let Some(v) = versions()
        .into_iter()
        .rfind(|v| v.module("rejson").is_some())
    else {
        eprintln!("skipped: no server with the RedisJSON module");
        return;
    };
    let source = server_with_modules(&v);
    source
        .cmd(&["JSON.SET", "doc", "$", r#"{"a":[1,2,3],"b":"some text"}"#])
        .ok();
    source.cmd(&["SET", "plain", "v"]).ok();
    let dump = source.save();
    let out = redis_sync(&[
        "rdb",
        dump.to_str().unwrap(),
        "--format",
        "resp",
        "--payload-limit",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RESTORE") && err.contains("doc"), "{err}");
    assert!(
        err.contains("1 keys or libraries could not be converted"),
        "{err}"
    );
    // The rest of the data set is still there.
    let target = Server::builder(&v).start();
    replay(&target, &out.stdout);
    assert_eq!(target.cmd(&["GET", "plain"]).bulk(), Some(b"v".to_vec()));
}

#[test]
fn commands_from_the_oldest_server_load_into_the_newest() {
    let redis: Vec<_> = versions()
        .into_iter()
        .filter(|v| v.flavor() == Flavor::Redis)
        .collect();
    let (Some(old), Some(new)) = (redis.first(), redis.last()) else {
        return;
    };
    if old == new {
        return;
    }
    let source = Server::builder(old).start();
    let info = write_dataset(&source, &DatasetOptions::default());
    let out = rdb(&source.save(), "resp");
    let target = Server::builder(new).start();
    replay(&target, &out);
    for db in &info.dbs {
        let sel = ["SELECT".to_string(), db.to_string()];
        let mut a = source.client();
        let mut b = target.client();
        a.call(&sel).unwrap();
        b.call(&sel).unwrap();
        assert_eq!(
            a.call(&["DBSIZE"]).unwrap(),
            b.call(&["DBSIZE"]).unwrap(),
            "db {db}"
        );
        for k in info.keys.iter().filter(|k| k.db == *db) {
            let ta = a.call(&["TYPE", k.key.as_str()]).unwrap();
            let tb = b.call(&["TYPE", k.key.as_str()]).unwrap();
            assert_eq!(ta, tb, "TYPE {}", k.key);
        }
    }
    let mut a = source.client();
    let mut b = target.client();
    let mut differ = Vec::new();
    for k in &info.keys {
        let sel = ["SELECT".to_string(), k.db.to_string()];
        a.call(&sel).unwrap();
        b.call(&sel).unwrap();
        if k.kind == "zset" {
            // The digest of a score is its text, which changed between versions (5.0 prints
            // 0.1 as 0.10000000000000001): compare the parsed scores instead, with -0 == 0
            // (7.0+ store a -0 score in a listpack as the integer 0).
            let scores = |c: &mut redis_sync_testkit::Client| -> Vec<(String, f64)> {
                let r = c
                    .call(&["ZRANGE", k.key.as_str(), "0", "-1", "WITHSCORES"])
                    .unwrap();
                r.array()
                    .chunks(2)
                    .map(|p| (p[0].text(), p[1].text().parse::<f64>().unwrap()))
                    .collect()
            };
            if scores(&mut a) != scores(&mut b) {
                differ.push(k.key.clone());
            }
            continue;
        }
        let args = ["DEBUG", "DIGEST-VALUE", k.key.as_str()];
        if a.call(&args).unwrap() != b.call(&args).unwrap() {
            differ.push(k.key.clone());
        }
    }
    assert!(
        differ.is_empty(),
        "{old} → {new}: DEBUG DIGEST-VALUE differs for {differ:?}"
    );
}
