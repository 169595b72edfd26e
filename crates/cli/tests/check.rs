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
