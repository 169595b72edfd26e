//! `redis-sync check` against prepared good and bad targets.

use std::process::{Command, Output};

use redis_sync_testkit::{Server, ServerVersion, find, versions_where};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .arg("check")
        .args(args)
        .args(["--sample-secs", "0.2", "--json"])
        .output()
        .expect("run redis-sync check")
}

/// Redis 7.0.15, else any 7.0+ server; none fails under `CI=true` (the test kit panics) and
/// skips outside it.
fn version() -> Option<ServerVersion> {
    find("redis-7.0.15").or_else(|| {
        versions_where("7.0 or newer", |v| v.at_least(7, 0))
            .into_iter()
            .next()
    })
}

fn rows(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn level<'a>(report: &'a serde_json::Value, check: &str) -> (&'a str, &'a str) {
    let row = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no row {check:?} in {report:#}"));
    (
        row["level"].as_str().expect("level"),
        row["detail"].as_str().expect("detail"),
    )
}

#[test]
fn a_good_pair_passes_and_bad_targets_fail_with_the_fix() {
    let Some(v) = version() else {
        eprintln!("skipped: no 7.0+ server installed");
        return;
    };
    let src = Server::builder(&v).start();
    src.cmd(&["SET", "k", "v"]);
    // 300 KB of data: more than a target at maxmemory 1mb has left beside its own ~0.9 MB.
    src.cmd(&["SET", "pad", &"p".repeat(300_000)]);
    let s_url = format!("redis://{}", src.addr());

    let good = Server::builder(&v).start();
    let out = check(&[
        "--source",
        &s_url,
        "--target",
        &format!("redis://{}", good.addr()),
    ]);
    let report = rows(&out);
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(level(&report, "target empty").0, "ok");
    assert_eq!(level(&report, "eviction policy").0, "ok");

    // Not empty, too small, evicting.
    let bad = Server::builder(&v)
        .arg("--maxmemory")
        .arg("1mb")
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    bad.cmd(&["SET", "x", "1"]);
    let out = check(&[
        "--source",
        &s_url,
        "--target",
        &format!("redis://{}", bad.addr()),
    ]);
    let report = rows(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let (l, d) = level(&report, "target empty");
    assert_eq!(l, "fail");
    assert!(d.contains("1 keys"), "{d}");
    let (l, d) = level(&report, "target memory");
    assert_eq!(l, "fail", "{d}");
    assert!(d.contains("CONFIG SET maxmemory"), "{d}");
    let (l, d) = level(&report, "eviction policy");
    assert_eq!(l, "fail");
    assert!(d.contains("noeviction"), "{d}");

    // Wrong password: a failing connection row that does not print the password.
    let locked = Server::builder(&v).password("right").start();
    let out = check(&[
        "--source",
        &s_url,
        "--target",
        &format!("redis://:wrongpw@{}", locked.addr()),
    ]);
    let report = rows(&out);
    assert_eq!(out.status.code(), Some(1));
    let (l, d) = level(&report, "target connection");
    assert_eq!(l, "fail");
    assert!(!report.to_string().contains("wrongpw"), "{report}");
    assert!(d.contains("password") || d.contains("WRONGPASS"), "{d}");
    // The right password from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args([
            "check",
            "--source",
            &s_url,
            "--target",
            &locked.addr(),
            "--json",
        ])
        .args(["--sample-secs", "0.1"])
        .env("REDIS_SYNC_TARGET_PASSWORD", "right")
        .output()
        .expect("run");
    let report = rows(&out);
    assert_eq!(level(&report, "target connection").0, "ok", "{report:#}");
}

#[test]
fn a_restricted_source_user_is_reported() {
    let Some(v) = version() else {
        eprintln!("skipped: no 7.0+ server installed");
        return;
    };
    let src = Server::builder(&v).start();
    src.cmd(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">pw",
        "~*",
        "+@read",
        "+info",
        "+config|get",
    ]);
    let dst = Server::builder(&v).start();
    let out = check(&[
        "--source",
        &format!("redis://reader:pw@{}", src.addr()),
        "--target",
        &format!("redis://{}", dst.addr()),
    ]);
    let report = rows(&out);
    let (l, d) = level(&report, "source allows PSYNC");
    assert_ne!(l, "ok", "{report:#}");
    assert!(d.contains("+psync"), "{d}");
}

#[test]
fn spool_space_and_a_table_for_people() {
    let Some(v) = version() else {
        eprintln!("skipped: no 7.0+ server installed");
        return;
    };
    let src = Server::builder(&v).start();
    let dst = Server::builder(&v).start();
    let out = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args([
            "check",
            "--sample-secs",
            "0.1",
            "--source",
            &src.addr(),
            "--target",
        ])
        .arg(dst.addr())
        .output()
        .expect("run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    for row in [
        "CHECK",
        "spool disk space",
        "replica output buffer",
        "ready: 0 blocking",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
}

/// With a cluster target, `check` watches the source's live stream (continuing from its
/// offset: no snapshot) and names the writes whose keys would span slots and how each is
/// applied; without a backlog it says it cannot sample.
#[test]
fn a_cluster_target_gets_the_source_stream_sampled_for_cross_slot_writes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some(v) = version() else {
        return;
    };
    let src = Server::builder(&v).start();
    let cluster = redis_sync_testkit::Cluster::builder(&v).masters(3).start();
    let (s, t) = (
        format!("redis://{}", src.addr()),
        format!("redis://{}", cluster.masters()[0].addr()),
    );
    let run = |secs: &str| {
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(["check", "--source", &s, "--target", &t, "--json"])
            .args(["--allow-nonempty", "--sample-secs", secs])
            .output()
            .expect("run redis-sync check")
    };
    let report = rows(&run("0.2"));
    // The target's command rate is measured on a cluster too (PINGs: no key to redirect).
    let (_, detail) = level(&report, "full-copy estimate");
    assert!(detail.contains("send to the target"), "{detail}");
    assert!(
        level(&report, "target memory").1.contains("/ 3 masters"),
        "{report:#}"
    );
    let (lvl, detail) = level(&report, "cross-slot writes");
    assert_eq!(lvl, "skip", "{detail}");
    assert!(detail.contains("no replication backlog"), "{detail}");

    // A replica attached once: the source keeps a backlog to continue from.
    let replica = Server::builder(&v).replica_of(&src).start();
    replica.wait_replica_synced();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = src.client();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                c.call(&["SET", "tmp:pool:1", "v"]).expect("SET");
                c.call(&["RENAME", "tmp:pool:1", "pool:1"]).expect("RENAME");
                c.call(&["SADD", "s:1", "a"]).expect("SADD");
                c.call(&["SUNIONSTORE", "su:1", "s:1", "s:2"])
                    .expect("SUNIONSTORE");
                // Pacing the writer, not a synchronisation.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let report = rows(&run("2"));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let (lvl, detail) = level(&report, "cross-slot writes");
    assert_eq!(lvl, "ok", "{detail}");
    assert!(
        detail.contains("RENAME x") && detail.contains("DUMP/RESTORE"),
        "{detail}"
    );
    assert!(
        detail.contains("SUNIONSTORE x") && detail.contains("copies"),
        "{detail}"
    );
}

/// The seconds of the estimate's "ESTIMATE ~<n> ms|s" (the row is text, as every row).
fn estimated_secs(detail: &str) -> f64 {
    let rest = detail
        .strip_prefix("ESTIMATE ~")
        .unwrap_or_else(|| panic!("no estimate in {detail}"));
    let mut words = rest.split_whitespace();
    let n: f64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {detail}"));
    match words.next() {
        Some("ms") => n / 1e3,
        Some("s") => n,
        other => panic!("unit {other:?} in {detail}"),
    }
}

/// A 3 MB string on the source and a target whose proto-max-bulk-len is 1 MB: the target
/// cannot hold that string however it is sent, and the biggest-keys row fails naming it and
/// the CONFIG SET that fixes it, found by sampling the live source and by reading its RDB.
/// The estimate row is there with a positive duration and the rates it used.
#[test]
fn a_string_longer_than_the_targets_proto_max_bulk_len_fails_sampled_and_from_the_rdb() {
    let Some(v) = version() else {
        return;
    };
    let src = Server::builder(&v)
        .arg("--repl-diskless-sync-delay")
        .arg("0")
        .start();
    src.cmd(&["SET", "huge", &"h".repeat(3_000_000)]);
    for i in 0..50 {
        src.cmd(&["RPUSH", &format!("list:{i}"), "a", "b", "c"]);
    }
    let dst = Server::builder(&v)
        .arg("--proto-max-bulk-len")
        .arg("1mb")
        .start();
    let (s, t) = (
        format!("redis://{}", src.addr()),
        format!("redis://{}", dst.addr()),
    );

    let out = check(&["--source", &s, "--target", &t]);
    let report = rows(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let (l, d) = level(&report, "biggest keys");
    assert_eq!(l, "fail", "{d}");
    for part in [
        "huge (db 0, string)",
        "3000000 bytes long",
        "CONFIG SET proto-max-bulk-len 3mb",
        "all 51 keys measured",
    ] {
        assert!(d.contains(part), "{part:?} missing: {d}");
    }
    let (l, d) = level(&report, "full-copy estimate");
    assert_eq!(l, "ok", "{d}");
    assert!(estimated_secs(d) > 0.0, "{d}");
    for part in ["for 51 keys", "keys/s", "cmds/s", "MB/s", "DUMP"] {
        assert!(d.contains(part), "{part:?} missing: {d}");
    }
    assert!(!d.contains("repl-diskless-sync-delay"), "{d}");

    // From the RDB: every key read, the same verdict, and the file's size as the RDB's.
    let rdb = src.save();
    let rdb = rdb.to_str().expect("a UTF-8 temporary path");
    let out = check(&["--source", &s, "--target", &t, "--rdb", rdb]);
    let report = rows(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let (l, d) = level(&report, "biggest keys");
    assert_eq!(l, "fail", "{d}");
    for part in [
        "huge (db 0, string)",
        "3000000 bytes long",
        "CONFIG SET proto-max-bulk-len 3mb",
        &format!("all 51 keys of {rdb}"),
    ] {
        assert!(d.contains(part), "{part:?} missing: {d}");
    }
    let (_, d) = level(&report, "full-copy estimate");
    assert!(d.contains(&format!("the size of {rdb}")), "{d}");
    assert!(estimated_secs(d) > 0.0, "{d}");

    // Raised as the row says: the row passes.
    dst.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "3mb"]);
    let report = rows(&check(&["--source", &s, "--target", &t, "--rdb", rdb]));
    let (l, d) = level(&report, "biggest keys");
    assert_eq!(l, "ok", "{d}");
    assert!(d.contains("biggest huge (db 0, string)"), "{d}");
}
