//! `redis-sync verify` on equal and on different pairs, standalone and cluster.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{server_with_modules, usual_version};
use redis_sync_testkit::{
    Cluster, DatasetOptions, Flavor, Server, ServerVersion, find, poll_until, versions,
    versions_where, write_dataset, xinfo_view,
};

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
    a.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
        .ok();
    write_dataset(&a, &DatasetOptions::default());
    // A faithful copy: a replica, promoted. (The same commands written to another server at
    // another time are not one: its pending entries' delivery times differ.)
    let b = Server::builder(&v).replica_of(&a).start();
    b.wait_replica_synced();
    b.cmd(&["REPLICAOF", "NO", "ONE"]).ok();
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

// ---------------------------------------------------------------------------------------------
// What values and DEBUG DIGEST do not show: stream groups, hash field TTLs, module values.

/// `redis://` URL of a server.
fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
}

/// Copies `key` from `a` to `b` exactly: `DUMP` + `RESTORE … REPLACE` with its remaining TTL.
fn copy(a: &Server, b: &Server, key: &str) {
    let payload = a.cmd(&["DUMP", key]).bulk().expect("a key to copy");
    let ttl = a.cmd(&["PTTL", key]).int().max(0).to_string();
    let args: [&[u8]; 5] = [
        b"RESTORE",
        key.as_bytes(),
        ttl.as_bytes(),
        &payload,
        b"REPLACE",
    ];
    b.cmd(&args).ok();
}

/// The kinds and details of the differences a report names, by key.
fn named(r: &serde_json::Value) -> Vec<(String, String, String)> {
    r["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|d| {
            let s = |f: &str| d[f].as_str().unwrap_or_default().to_string();
            (s("key"), s("kind"), s("detail"))
        })
        .collect()
}

/// The difference named for `key`, which must be there.
#[track_caller]
fn difference_of(r: &serde_json::Value, key: &str) -> (String, String) {
    named(r)
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, kind, detail)| (kind, detail))
        .unwrap_or_else(|| panic!("{key} not named: {r:#}"))
}

/// Runs verify (`extra` flags) and asserts its exit status; returns the report.
#[track_caller]
fn verify_expecting(a: &Server, b: &Server, extra: &[&str], code: i32) -> serde_json::Value {
    let (ua, ub) = (url(a), url(b));
    let mut args = vec!["--source", ua.as_str(), "--target", ub.as_str()];
    args.extend(extra);
    let out = verify(&args);
    let r = report(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "verify {extra:?} on {}: {r:#}\n{}",
        a.version(),
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

/// Redis 5 (no `XINFO STREAM FULL`: the summaries), Redis 7.0–7.3 (replicas lose a group's
/// `entries-read`), the newest Redis and the newest Valkey.
fn stream_matrix() -> Vec<ServerVersion> {
    let redis = |v: &ServerVersion| v.flavor() == Flavor::Redis;
    let mut out = Vec::new();
    out.extend(versions_where("Redis 5", |v| redis(v) && !v.at_least(6, 0)).pop());
    out.extend(
        versions_where("Redis 7.0 to 7.3", |v| {
            redis(v) && v.at_least(7, 0) && !v.at_least(7, 4)
        })
        .pop(),
    );
    out.extend(versions_where("Redis", redis).pop());
    out.extend(versions_where("Valkey", |v| v.flavor() == Flavor::Valkey).pop());
    out
}

/// A stream `key` with entries 1-1…4-1, group `g1` (alice holds 1-1 and 2-1, bob 3-1) and an
/// empty group `g2`.
fn stream_with_groups(s: &Server, key: &str) {
    for id in ["1-1", "2-1", "3-1", "4-1"] {
        s.cmd(&["XADD", key, id, "f", id]).ok();
    }
    s.cmd(&["XGROUP", "CREATE", key, "g1", "0"]).ok();
    s.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "2",
        "STREAMS",
        key,
        ">",
    ])
    .ok();
    s.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "1",
        "STREAMS",
        key,
        ">",
    ])
    .ok();
    s.cmd(&["XGROUP", "CREATE", key, "g2", "$"]).ok();
}

#[test]
fn stream_groups_behind_equal_digests_are_reported_and_repaired() {
    for v in stream_matrix() {
        let t = Instant::now();
        let a = Server::builder(&v).start();
        let b = Server::builder(&v).start();
        for k in ["s-pel", "s-setid", "s-meta"] {
            stream_with_groups(&a, k);
            copy(&a, &b, k);
        }
        a.cmd(&["SET", "plain", "1"]).ok();
        copy(&a, &b, "plain");
        let r = verify_expecting(&a, &b, &[], 0);
        assert!(
            r["method"].as_str().expect("method").contains("3 streams"),
            "{r:#}"
        );

        // On the target only: an entry acknowledged, a group moved back, the last ID moved on.
        b.cmd(&["XACK", "s-pel", "g1", "2-1"]).ok();
        b.cmd(&["XGROUP", "SETID", "s-setid", "g1", "1-1"]).ok();
        b.cmd(&["XSETID", "s-meta", "9-9"]).ok();
        assert_eq!(a.digest(), b.digest(), "{v}: the digest ignores groups");
        for flags in [&[][..], &["--keys"][..]] {
            let r = verify_expecting(&a, &b, flags, 1);
            assert_eq!(r["different"], 3, "{r:#}");
            let (kind, detail) = difference_of(&r, "s-pel");
            assert_eq!(kind, "stream-groups", "{r:#}");
            assert!(
                detail.starts_with("group \"g1\" pending entry 2-1: on the source only"),
                "{detail}"
            );
            let (kind, detail) = difference_of(&r, "s-setid");
            assert_eq!(kind, "stream-groups", "{r:#}");
            assert!(
                detail.starts_with("group \"g1\" last-delivered-id: 3-1 on the source, 1-1"),
                "{detail}"
            );
            let (kind, detail) = difference_of(&r, "s-meta");
            assert_eq!(kind, "stream-meta", "{r:#}");
            assert!(
                detail.starts_with("stream last-generated-id: 4-1 on the source, 9-9"),
                "{detail}"
            );
        }

        // DUMP/RESTORE carries the groups and the PEL: repaired, then equal.
        let r = verify_expecting(&a, &b, &["--repair"], 0);
        assert_eq!(r["repaired"], 3, "{r:#}");
        verify_expecting(&a, &b, &["--keys"], 0);
        if v.at_least(6, 0) {
            for k in ["s-pel", "s-setid", "s-meta"] {
                let full = |s: &Server| xinfo_view(s.cmd(&["XINFO", "STREAM", k, "FULL"]), &[]);
                assert_eq!(full(&a), full(&b), "{v}: {k} after the repair");
            }
        }
        eprintln!("ok {v}: {:?}", t.elapsed());
    }
}

/// True for versions with hash field expiration (Redis 7.4+, Valkey 9.0+).
fn with_field_ttls(v: &ServerVersion) -> bool {
    match v.flavor() {
        Flavor::Redis => v.at_least(7, 4),
        Flavor::Valkey => v.at_least(9, 0),
    }
}

/// `HPEXPIRETIME key FIELDS 1 field`.
fn field_expiry(s: &Server, key: &str, field: &str) -> i64 {
    s.cmd(&["HPEXPIRETIME", key, "FIELDS", "1", field]).array()[0].int()
}

#[test]
fn hash_field_ttls_are_compared_within_the_tolerance_and_repaired() {
    let matrix: Vec<ServerVersion> = [Flavor::Redis, Flavor::Valkey]
        .into_iter()
        .filter_map(|f| {
            versions_where(&format!("{f:?} with hash field expiration"), |v| {
                v.flavor() == f && with_field_ttls(v)
            })
            .pop()
        })
        .collect();
    for v in &matrix {
        let t = Instant::now();
        let a = Server::builder(v).start();
        let b = Server::builder(v).start();
        let at = (redis_sync_testkit::unix_ms() + 3_600_000).to_string();
        a.cmd(&["HSET", "h", "f1", "1", "f2", "2", "f3", "3"]).ok();
        a.cmd(&["HPEXPIREAT", "h", &at, "FIELDS", "2", "f1", "f2"])
            .ok();
        a.cmd(&["HSET", "near", "f", "1"]).ok();
        a.cmd(&["HPEXPIREAT", "near", &at, "FIELDS", "1", "f"]).ok();
        for k in ["h", "near"] {
            copy(&a, &b, k);
        }
        verify_expecting(&a, &b, &[], 0);
        // f1 an hour later, f2 without its TTL; `near` 500 ms off, within --ttl-tolerance.
        let later = (redis_sync_testkit::unix_ms() + 7_200_000).to_string();
        b.cmd(&["HPEXPIREAT", "h", &later, "FIELDS", "1", "f1"])
            .ok();
        b.cmd(&["HPERSIST", "h", "FIELDS", "1", "f2"]).ok();
        let near = (at.parse::<i64>().expect("ms") + 500).to_string();
        b.cmd(&["HPEXPIREAT", "near", &near, "FIELDS", "1", "f"])
            .ok();
        for flags in [&[][..], &["--keys"][..]] {
            let r = verify_expecting(&a, &b, flags, 1);
            assert_eq!(r["different"], 1, "{v} {flags:?}: {r:#}");
            let (kind, detail) = difference_of(&r, "h");
            assert_eq!(kind, "field-ttl", "{r:#}");
            assert!(
                detail.contains(&format!(
                    "field \"f1\": source expires at {at} (Unix ms), target expires at {later}"
                )) && detail.contains("field \"f2\": source expires at")
                    && detail.contains("target no TTL")
                    && !detail.contains("f3"),
                "{detail}"
            );
        }
        // DUMP/RESTORE carries the field TTLs.
        let r = verify_expecting(&a, &b, &["--repair"], 0);
        assert_eq!(r["repaired"], 1, "{r:#}");
        verify_expecting(&a, &b, &["--keys"], 0);
        for f in ["f1", "f2", "f3"] {
            assert_eq!(
                field_expiry(&a, "h", f),
                field_expiry(&b, "h", f),
                "{v} {f}"
            );
        }
        eprintln!("ok {v}: {:?}", t.elapsed());
    }
    // A target without hash field expiration holds no field TTL: reported, not an error.
    let (Some(new), Some(old)) = (
        matrix.first(),
        versions()
            .into_iter()
            .rfind(|v| v.flavor() == Flavor::Redis && v.at_least(6, 0) && !with_field_ttls(v)),
    ) else {
        return;
    };
    let a = Server::builder(new).start();
    let b = Server::builder(&old).start();
    a.cmd(&["HSET", "h", "f", "1"]).ok();
    a.cmd(&["HPEXPIRE", "h", "3600000", "FIELDS", "1", "f"])
        .ok();
    b.cmd(&["HSET", "h", "f", "1"]).ok();
    let r = verify_expecting(&a, &b, &[], 1);
    let (kind, detail) = difference_of(&r, "h");
    assert_eq!(kind, "field-ttl", "{r:#}");
    assert!(detail.contains("target no TTL"), "{old}: {detail}");
}

#[test]
fn module_values_behind_equal_digests_are_compared_by_dump() {
    let Some(v) = versions_where("a Redis Stack with RedisJSON and RedisBloom", |v| {
        v.module("rejson").is_some() && v.module("redisbloom").is_some()
    })
    .pop() else {
        return;
    };
    let t = Instant::now();
    let a = server_with_modules(&v);
    let b = server_with_modules(&v);
    a.cmd(&["JSON.SET", "j", "$", r#"{"a":1,"b":[1,2]}"#]).ok();
    a.cmd(&["BF.ADD", "bf", "x"]).ok();
    a.cmd(&["SET", "plain", "1"]).ok();
    for k in ["j", "bf", "plain"] {
        copy(&a, &b, k);
    }
    let r = verify_expecting(&a, &b, &[], 0);
    assert!(
        r["method"]
            .as_str()
            .expect("method")
            .contains("2 module values"),
        "{r:#}"
    );
    b.cmd(&["JSON.SET", "j", "$.a", "2"]).ok();
    b.cmd(&["BF.ADD", "bf", "y"]).ok();
    assert_eq!(
        a.digest(),
        b.digest(),
        "{v}: the digest ignores module values"
    );
    for flags in [&[][..], &["--keys"][..]] {
        let r = verify_expecting(&a, &b, flags, 1);
        assert_eq!(r["different"], 2, "{flags:?}: {r:#}");
        for (key, kind) in [("j", "ReJSON-RL"), ("bf", "MBbloom--")] {
            let (k, detail) = difference_of(&r, key);
            assert_eq!(k, "value", "{r:#}");
            assert!(detail.starts_with(kind), "{detail}");
        }
    }
    let r = verify_expecting(&a, &b, &["--repair"], 0);
    assert_eq!(r["repaired"], 2, "{r:#}");
    verify_expecting(&a, &b, &["--keys"], 0);
    assert_eq!(
        b.cmd(&["JSON.GET", "j"]).text(),
        a.cmd(&["JSON.GET", "j"]).text()
    );
    eprintln!("ok {v}: {:?}", t.elapsed());
}

/// A source with groups, PEL and field TTLs, some written after its native replica's full
/// sync (so the replica applied them as commands), verifies equal against that replica: what
/// the comparison leaves out is exactly what a replica does not keep.
#[test]
fn a_native_replica_verifies_equal() {
    let redis = |v: &ServerVersion| v.flavor() == Flavor::Redis;
    let mut matrix = Vec::new();
    matrix.extend(
        versions_where("Redis 7.0 to 7.3", |v| {
            redis(v) && v.at_least(7, 0) && !v.at_least(7, 4)
        })
        .pop(),
    );
    matrix.extend(versions_where("Redis 7.4+", |v| redis(v) && v.at_least(7, 4)).pop());
    matrix.extend(
        versions_where("Valkey 9+", |v| {
            v.flavor() == Flavor::Valkey && v.at_least(9, 0)
        })
        .pop(),
    );
    for v in matrix {
        let t = Instant::now();
        let src = Server::builder(&v).start();
        src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
            .ok();
        write_dataset(&src, &DatasetOptions::default());
        let replica = Server::builder(&v).replica_of(&src).start();
        replica.wait_replica_synced();
        // Streamed to the replica: deliveries, a claim, an ack, a new consumer, field TTLs.
        stream_with_groups(&src, "live");
        src.cmd(&["XCLAIM", "live", "g1", "carol", "0", "1-1"]).ok();
        src.cmd(&["XACK", "live", "g1", "2-1"]).ok();
        src.cmd(&["XGROUP", "CREATECONSUMER", "live", "g2", "dave"])
            .ok();
        if with_field_ttls(&v) {
            src.cmd(&["HSET", "live-h", "f", "1", "g", "2"]).ok();
            src.cmd(&["HPEXPIRE", "live-h", "3600000", "FIELDS", "1", "f"])
                .ok();
        }
        let offset = |s: &Server, f: &str| s.info("replication").get(f).cloned();
        poll_until(Duration::from_secs(10), "the replica to catch up", || {
            let at = offset(&src, "master_repl_offset")?;
            (offset(&replica, "slave_repl_offset")? == at).then_some(())
        });
        for flags in [&[][..], &["--keys"][..]] {
            let r = verify_expecting(&src, &replica, flags, 0);
            assert!(r["keys_compared"].as_u64() > Some(10), "{r:#}");
        }
        eprintln!("ok {v}: {:?}", t.elapsed());
    }
}

/// A child process killed when dropped (also when the test panics).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// While a sync runs, a difference still in flight is re-checked once the target's checkpoint
/// reaches the source's offset, not after a fixed pause; without a checkpoint, after the pause.
#[test]
fn a_live_difference_is_rechecked_once_the_checkpoint_reaches_the_source() {
    let Some(v) = usual_version().filter(|v| v.at_least(6, 2)) else {
        return;
    };
    let t = Instant::now();
    let src = Server::builder(&v).start();
    src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
        .ok();
    let dst = Server::builder(&v).start();
    let (us, ut) = (url(&src), url(&dst));

    // No sync, no checkpoint: the pause of --recheck-after.
    src.cmd(&["SET", "k", "1"]).ok();
    let out = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args([
            "verify",
            "--json",
            "--recheck-after",
            "0.05",
            "--source",
            &us,
        ])
        .args(["--target", &ut])
        .output()
        .expect("run verify");
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["recheck"]["way"], "pause", "{r:#}");

    let dir = tempfile::tempdir().expect("tempdir");
    let _sync = Killed(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(["sync", "--source", &us, "--target", &ut, "--state-file"])
            .arg(dir.path().join("state.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-sync sync"),
    );
    let checkpoint = format!("redis-sync:checkpoint:{}", src.addr());
    poll_until(Duration::from_secs(30), "the sync to stream", || {
        let state = dst.cmd(&["HGET", &checkpoint, "state"]).bulk();
        (state.as_deref() == Some(&b"streaming"[..]) && dst.cmd(&["EXISTS", "k"]).int() == 1)
            .then_some(())
    });

    // The target takes no writes for a while: the sync cannot apply `in-flight`, and verify's
    // first pass finds it missing. Once verify says it waits for the checkpoint, the target
    // takes writes again; the re-check then finds it.
    dst.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).ok();
    src.cmd(&["SET", "in-flight", "1"]).ok();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(["verify", "--json", "--recheck-after", "60", "--source", &us])
            .args(["--target", &ut])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run verify"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    poll_until(
        Duration::from_secs(30),
        "verify to wait for the checkpoint",
        || {
            said.extend(rx.try_iter());
            said.iter()
                .any(|l| l.contains("waiting for the target's checkpoint"))
                .then_some(())
        },
    );
    dst.cmd(&["CLIENT", "UNPAUSE"]).ok();
    let status = poll_until(Duration::from_secs(30), "verify to finish", || {
        child.0.try_wait().expect("wait for verify")
    });
    let mut stdout = Vec::new();
    child
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read stdout");
    let _ = reader.join();
    let r: serde_json::Value = serde_json::from_slice(&stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&stdout)));
    assert!(status.success(), "{r:#}\n{said:#?}");
    assert_eq!(r["recheck"]["way"], "checkpoint", "{r:#}");
    assert!(r["recheck"]["waited_ms"].as_u64() < Some(30_000), "{r:#}");
    eprintln!("ok {v}: {:?}, {}", t.elapsed(), r["recheck"]["detail"]);
}
