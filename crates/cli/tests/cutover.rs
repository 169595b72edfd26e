//! `redis-sync cutover` against real servers: under write load with a sync running, it pauses
//! the source's writes briefly, finds the target caught up and equal, and always lifts the
//! pause; without a running sync, or with one that lags, it says so and pauses nothing.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis_sync_testkit::{Flavor, Server, ServerVersion, poll_until, versions_where};

use crate::util::{redis_sync, sync_until_caught_up};

/// The newest Redis and the newest Valkey (CLIENT PAUSE … WRITE needs Redis 6.2+).
fn matrix() -> Vec<ServerVersion> {
    let redis = versions_where("Redis", |v| v.flavor() == Flavor::Redis).pop();
    let valkey = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey).pop();
    redis.into_iter().chain(valkey).collect()
}

fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
}

fn source(v: &ServerVersion) -> Server {
    let s = Server::builder(v).start();
    s.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    s.cmd(&["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    s
}

fn spawn_sync(s: &str, t: &str, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["sync", "--source", s, "--target", t, "--state-file"])
        .arg(dir.join("state.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-sync")
}

/// Non-idempotent writes (INCR, RPUSH) on their own connection until `stop`; counts them.
fn writer(src: &Server, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> thread::JoinHandle<()> {
    let mut c = src.client();
    thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            c.call(&["INCR", "counter"]).expect("INCR");
            c.call(&["RPUSH", "list", &i.to_string()]).expect("RPUSH");
            i += 1;
            done.store(i, Ordering::Relaxed);
        }
    })
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn cutover_under_write_load_pauses_briefly_and_finds_the_target_equal() {
    for v in matrix() {
        eprintln!("cutover under write load on {v}");
        let src = source(&v);
        let dst = Server::builder(&v).start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, t) = (url(&src), url(&dst));
        let mut sync = spawn_sync(&s, &t, dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let w = writer(&src, stop.clone(), done.clone());
        // The sync is streaming once its checkpoint is in the target.
        poll_until(Duration::from_secs(30), "the sync to stream", || {
            let key = format!("redis-sync:checkpoint:{}", src.addr());
            let state = dst.cmd(&["HGET", &key, "state"]).bulk();
            (state.as_deref() == Some(&b"streaming"[..])).then_some(())
        });
        let dry = redis_sync(&[
            "cutover",
            "--source",
            &s,
            "--target",
            &t,
            "--dry-run",
            "--json",
        ]);
        let report = json(&dry);
        assert!(dry.status.success(), "{report}");
        assert!(report["paused_ms"].is_null(), "{report}");

        let out = redis_sync(&[
            "cutover",
            "--source",
            &s,
            "--target",
            &t,
            "--max-pause",
            "5",
            "--json",
        ]);
        let report = json(&out);
        assert!(
            out.status.success(),
            "{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let paused = report["paused_ms"].as_u64().expect("paused_ms");
        assert!(paused < 5000, "{v}: paused {paused} ms");
        assert_eq!(report["caught_up"], true, "{report}");
        assert_eq!(report["verify"]["equal"], true, "{report}");
        assert!(
            report["target_offset"].as_u64() >= report["source_offset"].as_u64(),
            "{report}"
        );
        // The pause is lifted: the application's writes go on at once.
        let before = done.load(Ordering::Relaxed);
        poll_until(Duration::from_secs(2), "writes after the cutover", || {
            (done.load(Ordering::Relaxed) > before + 10).then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        w.join().expect("writer");
        let _ = sync.kill();
        let _ = sync.wait();
        eprintln!("ok {v}: writes paused {paused} ms under load");
    }
}

#[test]
fn without_a_running_sync_cutover_says_so_and_pauses_nothing() {
    let Some(v) = matrix().pop() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    let (s, t) = (url(&src), url(&dst));
    let out = redis_sync(&["cutover", "--source", &s, "--target", &t]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("holds no checkpoint"), "{err}");

    // A sync that ran and stopped: the source moved on, the target stays behind.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let first = sync_until_caught_up(&s, &t, &state, &[]);
    assert!(first.status.success());
    let big = "x".repeat(10_000);
    for i in 0..50 {
        src.cmd(&["SET", &format!("k{i}"), &big]);
    }
    let started = Instant::now();
    let out = redis_sync(&[
        "cutover",
        "--source",
        &s,
        "--target",
        &t,
        "--lag",
        "1000",
        "--catch-up-timeout",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bytes behind") && err.contains("Nothing was paused"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // Not paused: a write answers at once.
    src.cmd(&["SET", "after", "1"]);
}

#[test]
fn an_old_source_cannot_pause_only_writes() {
    let Some(v) = versions_where("Redis before 6.2", |v| {
        v.flavor() == Flavor::Redis && v.version() < (6, 2, 0)
    })
    .into_iter()
    .next() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    let out = redis_sync(&["cutover", "--source", &url(&src), "--target", &url(&dst)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("6.2") && err.contains("--no-pause"), "{err}");
}
