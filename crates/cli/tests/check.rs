//! `redis-sync check` against prepared good and bad targets.

use std::process::{Command, Output};

use redis_sync_testkit::{Server, ServerVersion, find, versions};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .arg("check")
        .args(args)
        .args(["--sample-secs", "0.2", "--json"])
        .output()
        .expect("run redis-sync check")
}

fn version() -> Option<ServerVersion> {
    find("redis-7.0.15").or_else(|| versions().into_iter().find(|v| v.at_least(7, 0)))
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
