//! `sync --source-mode scan`: a source that refuses `SYNC` and `PSYNC` (renamed away, as
//! several managed services do) is copied with SCAN + DUMP, and with `--scan-notify` kept in
//! step through keyspace notifications while a non-idempotent workload runs.

use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::util::run_bounded;
use redis_sync_testkit::{
    DatasetOptions, Server, ServerVersion, compare_data, data_digest, describe, find, poll_until,
    write_dataset,
};

/// Redis 7.0, the oldest (5.0) and the newest Valkey, those installed.
fn matrix() -> Vec<ServerVersion> {
    let v: Vec<ServerVersion> = ["redis-7.0.15", "redis-5.0.6", "valkey-9.1.2"]
        .into_iter()
        .filter_map(find)
        .collect();
    if v.is_empty() {
        eprintln!("skipped: none of redis-7.0.15, redis-5.0.6, valkey-9.1.2 is installed");
    }
    v
}

/// A source that refuses replication: `SYNC` and `PSYNC` renamed away.
fn refusing_source(v: &ServerVersion) -> Server {
    let s = Server::builder(v)
        .arg("--rename-command")
        .arg("SYNC")
        .arg("")
        .arg("--rename-command")
        .arg("PSYNC")
        .arg("")
        .start();
    let r = s.cmd(&["PSYNC", "?", "-1"]);
    assert!(r.is_error(), "{v}: PSYNC should be refused: {r:?}");
    s
}

fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
}

fn sync(src: &Server, dst: &Server, state: &std::path::Path, extra: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(["sync", "--source-mode", "scan", "--no-progress", "--source"])
            .arg(url(src))
            .arg("--target")
            .arg(url(dst))
            .arg("--state-file")
            .arg(state)
            .args(extra),
    )
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{err}",
        out.status
    );
    err
}

#[test]
fn a_source_refusing_sync_is_copied_with_scan_and_dump() {
    for v in matrix() {
        eprintln!("a_source_refusing_sync_is_copied_with_scan_and_dump on {v}");
        let src = refusing_source(&v);
        let info = write_dataset(&src, &DatasetOptions::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");

        // One-shot: RESTORE for what fits --value-budget, and with a small budget the big
        // values stream through the decoder into chunked native commands.
        for (run, budget) in [("RESTORE", "8388608"), ("native", "4096")] {
            let dst = Server::builder(&v).start();
            let out = sync(
                &src,
                &dst,
                &state,
                &["--value-budget", budget, "--no-resume"],
            );
            let err = ok(&out, &format!("{v} {run}"));
            assert!(err.contains("one-shot copy"), "{err}");
            assert!(err.contains("stopped (source stream ended)"), "{err}");
            if let Err(e) = compare_data(&src, &dst, &info) {
                panic!("{v} {run}: {e}\n{err}");
            }
        }

        // A second run over a synced target copies again and sweeps what the source lost.
        let dst = Server::builder(&v).start();
        ok(&sync(&src, &dst, &state, &[]), "first run");
        let gone = info.keys.first().expect("a key").clone();
        let mut c = src.client();
        c.call(&["SELECT", &gone.db.to_string()]).expect("select");
        assert_eq!(c.call(&["DEL", &gone.key]).expect("del").int(), 1);
        let err = ok(&sync(&src, &dst, &state, &[]), "second run");
        assert!(err.contains("sweep: removed 1 target keys"), "{err}");
        assert_eq!(data_digest(&dst), src.digest(), "{v}: after the sweep");

        // A payload over --scan-max-value stops the run and names the key.
        let out = sync(&src, &dst, &state, &["--scan-max-value", "2048"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("over --scan-max-value (2048 bytes)"), "{err}");
        assert!(err.contains("DUMP \""), "the key is named: {err}");

        // Flags that need a replication position are refused, with the reason.
        let out = sync(&src, &dst, &state, &["--tee-aof", "/dev/null"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("cannot honour --tee-rdb/--tee-aof"),
            "{err}"
        );
    }
}

/// Writes `rounds` rounds of non-idempotent commands over two dbs (LPUSH, INCR, XADD with
/// generated IDs, HINCRBY, APPEND, RENAME, DEL, keys with a short TTL), then makes the short
/// TTLs expire on the source (EXISTS deletes an expired key: an `expired` event).
fn workload(src: &Server, p: &'static str, rounds: usize) -> thread::JoinHandle<()> {
    let mut c = src.client();
    thread::spawn(move || {
        for i in 0..rounds {
            let db = if i % 3 == 0 { "3" } else { "0" };
            c.call(&["SELECT", db]).expect("select");
            let n = i.to_string();
            let cmds: Vec<Vec<String>> = vec![
                vec!["LPUSH".into(), format!("{p}:list"), n.clone()],
                vec!["INCR".into(), format!("{p}:counter")],
                vec![
                    "XADD".into(),
                    format!("{p}:stream"),
                    "*".into(),
                    "f".into(),
                    n.clone(),
                ],
                vec![
                    "HINCRBY".into(),
                    format!("{p}:hash"),
                    format!("f{}", i % 7),
                    "3".into(),
                ],
                vec!["APPEND".into(), format!("{p}:str"), n.clone()],
                vec!["SET".into(), format!("{p}:tmp:{i}"), n.clone()],
                vec![
                    "RENAME".into(),
                    format!("{p}:tmp:{i}"),
                    format!("{p}:renamed:{}", i % 11),
                ],
                vec!["DEL".into(), format!("{p}:renamed:{}", (i + 5) % 11)],
                vec![
                    "SET".into(),
                    format!("{p}:short:{i}"),
                    n.clone(),
                    "PX".into(),
                    "30".into(),
                ],
                vec![
                    "SET".into(),
                    format!("{p}:ttl:{}", i % 13),
                    n.clone(),
                    "EX".into(),
                    "100000".into(),
                ],
            ];
            for cmd in cmds {
                let r = c.call(&cmd).expect("workload command");
                assert!(!r.is_error(), "{cmd:?}: {r:?}");
            }
        }
        for i in 0..rounds {
            let db = if i % 3 == 0 { "3" } else { "0" };
            c.call(&["SELECT", db]).expect("select");
            let key = format!("{p}:short:{i}");
            poll_until(Duration::from_secs(10), "a 30 ms key to expire", || {
                (c.call(&["EXISTS", &key]).expect("exists").int() == 0).then_some(())
            });
        }
    })
}

#[test]
fn scan_notify_follows_a_non_idempotent_workload_and_restores_the_setting() {
    for v in matrix() {
        eprintln!("scan_notify_follows_a_non_idempotent_workload on {v}");
        let src = refusing_source(&v);
        // Someone's own setting: kept during the run (KA added), set back at the end.
        src.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Ex"])
            .ok();
        let before = src
            .cmd(&["CONFIG", "GET", "notify-keyspace-events"])
            .array()[1]
            .text();
        write_dataset(&src, &DatasetOptions::default());
        // Enough keys that the workload overlaps the SCAN.
        src.cmd(&["DEBUG", "POPULATE", "20000", "pop", "16"]).ok();
        let dst = Server::builder(&v).start();
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args([
                "sync",
                "--source-mode",
                "scan",
                "--scan-notify",
                "--no-progress",
            ])
            .args(["--scan-count", "100", "--scan-pipeline", "16"])
            .arg("--source")
            .arg(url(&src))
            .arg("--target")
            .arg(url(&dst))
            .arg("--state-file")
            .arg(&state)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn redis-sync");
        // The subscription is up (it comes before the SCAN) once the setting holds K.
        poll_until(
            Duration::from_secs(30),
            "notify-keyspace-events to hold K",
            || {
                let now = src
                    .cmd(&["CONFIG", "GET", "notify-keyspace-events"])
                    .array()[1]
                    .text();
                now.contains('K').then_some(())
            },
        );
        // The workload runs during the copy and after it.
        workload(&src, "w", 300).join().expect("workload");
        // The copy is complete once the target's checkpoint says `streaming`.
        let checkpoint = format!("redis-sync:checkpoint:{}", src.addr());
        poll_until(Duration::from_secs(120), "the end of the copy", || {
            let state = dst.cmd(&["HGET", &checkpoint, "state"]);
            (state.bulk() == Some(b"streaming".to_vec())).then_some(())
        });
        // And more of it once the copy is done, on other keys (so the keys written during
        // the copy are right only if their notifications were followed).
        workload(&src, "a", 100)
            .join()
            .expect("workload after the copy");
        // The marker is written last, after the copy (so only a notification brings it):
        // once the target has it, every key notified before it was read again after its
        // last write (the keys wait in order, each once).
        src.cmd(&["SET", "w:marker", "done"]);
        poll_until(Duration::from_secs(60), "the marker on the target", || {
            (dst.cmd(&["GET", "w:marker"]).bulk() == Some(b"done".to_vec())).then_some(())
        });
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{v}: exit {}:\n{err}", out.status);
        assert!(err.contains("notify-keyspace-events set back"), "{err}");
        if let Some(l) = err.lines().find(|l| l.contains("notifications so far")) {
            eprintln!("{v}: {l}");
        }
        let after = src
            .cmd(&["CONFIG", "GET", "notify-keyspace-events"])
            .array()[1]
            .text();
        assert_eq!(after, before, "{v}: the setting is set back");
        let info = describe(&src);
        if let Err(e) = compare_data(&src, &dst, &info) {
            panic!("{v}: {e}\n{err}");
        }

        // --until-caught-up: with nothing changing, the run copies, waits for no changed key
        // and ends by itself (the setting set back again).
        let out = sync(&src, &dst, &state, &["--scan-notify", "--until-caught-up"]);
        let err = ok(&out, "--until-caught-up");
        assert!(err.contains("caught up"), "{err}");
        let after = src
            .cmd(&["CONFIG", "GET", "notify-keyspace-events"])
            .array()[1]
            .text();
        assert_eq!(after, before, "{v}: the setting is set back");
        assert_eq!(data_digest(&dst), src.digest(), "{v}");
    }
}
