//! Faults around the exactly-once core of `redis-sync sync` on a standalone target, each with
//! a non-idempotent workload so that a command applied twice or lost shows in the digest:
//! - a resume with nothing new still exits once caught up (`--until-caught-up`);
//! - a source that only offers `SYNC` (no `PSYNC`) is copied, caught up with, and copied again
//!   on the next run, with nothing applied twice;
//! - a command that fails inside a committed batch (Redis has no rollback) stops the sync
//!   naming the key, the command and the offset, and the next run resumes *at that command*
//!   without applying the rest of the batch again;
//! - the target's connections killed again and again while the stream flows: every batch is
//!   applied once (a transaction whose `EXEC` reply was lost is sent again only when the
//!   target's checkpoint does not hold it).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use redis_sync_testkit::{Flavor, Server, ServerVersion, data_digest, poll_until, versions_where};

use crate::util::{redis_sync, sync_until_caught_up};

/// The versions each fault runs on: the oldest Redis (5.0), 7.0, 7.4, the newest Redis and
/// the newest Valkey (each fault takes a second or two).
fn matrix() -> Vec<ServerVersion> {
    let pick = |what: &str, pred: &dyn Fn(&ServerVersion) -> bool| versions_where(what, pred).pop();
    let redis = |v: &ServerVersion| v.flavor() == Flavor::Redis;
    let mut out: Vec<ServerVersion> = [
        pick("Redis 5.0", &|v| redis(v) && v.version().0 == 5),
        pick("Redis 7.0", &|v| {
            redis(v) && (v.version().0, v.version().1) == (7, 0)
        }),
        pick("Redis 7.4", &|v| {
            redis(v) && (v.version().0, v.version().1) == (7, 4)
        }),
        pick("Redis", &redis),
        pick("Valkey", &|v| v.flavor() == Flavor::Valkey),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.dedup_by(|a, b| a.name() == b.name());
    out
}

fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
}

fn source(v: &ServerVersion) -> Server {
    let s = Server::builder(v).start();
    s.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    s.cmd(&["CONFIG", "SET", "repl-backlog-size", "64mb"]);
    s
}

fn sync_args<'a>(s: &'a str, t: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "sync",
        "--until-caught-up",
        "--source",
        s,
        "--target",
        t,
        "--state-file",
        state,
    ]
}

#[test]
fn a_resume_with_nothing_new_exits_once_caught_up() {
    for v in matrix() {
        a_resume_with_nothing_new_exits_once_caught_up_on(&v);
    }
}

fn a_resume_with_nothing_new_exits_once_caught_up_on(v: &ServerVersion) {
    eprintln!("a_resume_with_nothing_new_exits_once_caught_up on {v}");
    let src = source(v);
    let dst = Server::builder(v).start();
    src.cmd(&["RPUSH", "l", "a", "b"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, t) = (url(&src), url(&dst));
    let args = sync_args(&s, &t, state.to_str().expect("utf-8"));
    let first = redis_sync(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Nothing written in between: the second and third runs must still end (bounded by
    // `run_bounded`'s deadline) with a partial resync and no copy.
    for run in ["second", "third"] {
        let out = redis_sync(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{run} run: {err}");
        assert!(
            err.contains("partial resync") && !err.contains("full sync from"),
            "{run}: {err}"
        );
        assert!(err.contains("stopped (caught up)"), "{run}: {err}");
    }
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn a_source_that_only_offers_sync_is_copied_and_caught_up() {
    for v in matrix() {
        a_source_that_only_offers_sync_is_copied_and_caught_up_on(&v);
    }
}

/// `PSYNC` renamed away leaves `SYNC`: no replication ID or offset in the answer, no partial
/// resync. The source copies diskless after a delay (Redis 7's default), which a replica that
/// talks while it waits holds off for ever (the master waits until its replicas have been
/// idle for `repl-diskless-sync-delay`).
fn a_source_that_only_offers_sync_is_copied_and_caught_up_on(v: &ServerVersion) {
    eprintln!("a_source_that_only_offers_sync_is_copied_and_caught_up on {v}");
    let src = Server::builder(v)
        .arg("--rename-command")
        .arg("PSYNC")
        .arg("psync-renamed-away")
        .arg("--repl-diskless-sync")
        .arg("yes")
        .arg("--repl-diskless-sync-delay")
        .arg("2")
        .start();
    let dst = Server::builder(v).start();
    for _ in 0..3 {
        src.cmd(&["INCR", "c"]);
    }
    src.cmd(&["RPUSH", "l", "a", "b"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, t) = (url(&src), url(&dst));
    let args = sync_args(&s, &t, state.to_str().expect("utf-8"));
    for run in ["first", "second"] {
        let out = redis_sync(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{run} run: {err}");
        assert!(err.contains("falling back to SYNC"), "{run}: {err}");
        assert!(err.contains("full sync from"), "{run}: {err}");
        assert!(err.contains("stopped (caught up)"), "{run}: {err}");
        assert_eq!(data_digest(&dst), src.digest(), "{run} run on {v}");
        // Non-idempotent writes between the runs: applied twice, they would show.
        src.cmd(&["INCR", "c"]);
        src.cmd(&["LPUSH", "l", "x"]);
    }
}

#[test]
fn a_command_failing_inside_a_committed_batch_resumes_at_that_command() {
    for v in matrix() {
        a_command_failing_inside_a_committed_batch_resumes_at_that_command_on(&v);
    }
}

fn a_command_failing_inside_a_committed_batch_resumes_at_that_command_on(v: &ServerVersion) {
    eprintln!("a_command_failing_inside_a_committed_batch_resumes_at_that_command on {v}");
    let src = source(v);
    let dst = Server::builder(v).start();
    src.cmd(&["SET", "c", "0"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, t) = (url(&src), url(&dst));
    let args = sync_args(&s, &t, state.to_str().expect("utf-8"));
    let first = redis_sync(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // Someone writes a string on the target where the source will have a list.
    dst.cmd(&["SET", "w:list", "not a list"]);
    // One batch (all in the backlog when the next run starts): the RPUSHes fail at EXEC, the
    // INCRs around them are applied by the same EXEC.
    for cmd in [
        &["INCR", "c"][..],
        &["RPUSH", "w:list", "a"],
        &["INCR", "c"],
        &["RPUSH", "w:list", "b"],
        &["INCR", "c"],
    ] {
        src.cmd(cmd);
    }
    let second = redis_sync(&args);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the WRONGTYPE must stop the sync: {err}"
    );
    assert!(
        err.contains("w:list") && err.contains("RPUSH"),
        "names key and command: {err}"
    );
    assert!(err.contains("source offset"), "names the offset: {err}");
    assert!(err.contains("WRONGTYPE"), "{err}");
    assert!(err.contains("resumes at the failed command"), "{err}");
    assert_eq!(dst.cmd(&["GET", "c"]).bulk(), Some(b"3".to_vec()));

    // Rerunning without fixing the target stops again at the same command, still without
    // applying the INCRs twice.
    let again = redis_sync(&args);
    assert!(!again.status.success());
    assert_eq!(dst.cmd(&["GET", "c"]).bulk(), Some(b"3".to_vec()));

    // The operator fixes the target; the next run applies the two RPUSHes only.
    dst.cmd(&["DEL", "w:list"]);
    let third = redis_sync(&args);
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{err}");
    assert!(err.contains("partial resync"), "{err}");
    assert_eq!(dst.cmd(&["GET", "c"]).bulk(), Some(b"3".to_vec()), "{err}");
    let list: Vec<String> = dst
        .cmd(&["LRANGE", "w:list", "0", "-1"])
        .array()
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(list, ["a", "b"]);
    assert_eq!(data_digest(&dst), src.digest());
}

/// Kills the child with SIGTERM (a clean stop) and waits for it.
fn terminate(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    poll_until(Duration::from_secs(60), "redis-sync to stop", || {
        child.try_wait().expect("wait").map(|_| ())
    });
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    err
}

#[test]
fn target_connections_killed_mid_stream_apply_nothing_twice() {
    for v in matrix() {
        target_connections_killed_mid_stream_apply_nothing_twice_on(&v);
    }
}

fn target_connections_killed_mid_stream_apply_nothing_twice_on(v: &ServerVersion) {
    eprintln!("target_connections_killed_mid_stream_apply_nothing_twice on {v}");
    let src = source(v);
    let dst = Server::builder(v).start();
    src.cmd(&["SET", "seed", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let log = dir.path().join("sync.log");
    let (s, t) = (url(&src), url(&dst));
    let child = spawn_sync(&s, &t, &state, &log, &[]);
    wait_for_log(&log, "full copy applied");

    // Non-idempotent writes on the source while the target's client connections are killed
    // every few milliseconds (bounded: the writer's count and the killer's).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut c = src.client();
        thread::spawn(move || {
            for i in 0..20_000u32 {
                let r = match i % 4 {
                    0 => c.call(&["INCR", "n"]),
                    1 => c.call(&["RPUSH", "l", &i.to_string()]),
                    2 => c.call(&["INCRBYFLOAT", "f", "0.5"]),
                    _ => c.call(&["APPEND", "s", "x"]),
                };
                r.expect("write to the source");
                if i % 200 == 0 {
                    thread::sleep(Duration::from_millis(3));
                }
            }
        })
    };
    let killer = {
        let stop = stop.clone();
        let mut c = dst.client();
        thread::spawn(move || {
            let mut kills = 0u32;
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = c.call(&["CLIENT", "KILL", "TYPE", "normal"]).expect("kill");
                if n.int() > 0 {
                    kills += 1;
                }
                thread::sleep(Duration::from_millis(7));
            }
            kills
        })
    };
    writer.join().expect("writer");
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().expect("killer");
    assert!(
        kills > 10,
        "only {kills} connections were killed: the test did not test"
    );

    let want = src.digest();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while data_digest(&dst) != want {
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            panic!(
                "the target is not equal to the source after 60 s; redis-sync's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    let err = terminate(child);
    let log = std::fs::read_to_string(&log).unwrap_or_default() + &err;
    assert!(
        log.contains("lost"),
        "no lost connection in the log:\n{log}"
    );
    // Equal to the source, which took every write exactly once.
    assert_eq!(dst.cmd(&["GET", "n"]).bulk(), Some(b"5000".to_vec()));
    assert_eq!(dst.cmd(&["LLEN", "l"]).int(), 5000);
    assert_eq!(data_digest(&dst), want);
}

/// `INFO replication`'s `field` as a number.
fn repl_offset(s: &Server, field: &str) -> u64 {
    s.info("replication")
        .get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_source_fails_over_and_the_sync_continues_from_its_replica() {
    for v in matrix() {
        the_source_fails_over_and_the_sync_continues_from_its_replica_on(&v);
    }
}

fn the_source_fails_over_and_the_sync_continues_from_its_replica_on(v: &ServerVersion) {
    eprintln!("the_source_fails_over_and_the_sync_continues_from_its_replica on {v}");
    let src = source(v);
    let replica = Server::builder(v).replica_of(&src).start();
    replica.wait_replica_synced();
    let dst = Server::builder(v).start();
    src.cmd(&["RPUSH", "l", "0"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, r, t) = (url(&src), url(&replica), url(&dst));
    let first = redis_sync(&sync_args(&s, &t, state.to_str().expect("utf-8")));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // Writes the sync has not seen, then a failover to the replica, then more writes there.
    for i in 0..200 {
        src.cmd(&["INCR", "n"]);
        src.cmd(&["RPUSH", "l", &i.to_string()]);
    }
    let want = repl_offset(&src, "master_repl_offset");
    poll_until(Duration::from_secs(30), "the replica to catch up", || {
        (repl_offset(&replica, "slave_repl_offset") == want).then_some(())
    });
    replica.cmd(&["REPLICAOF", "NO", "ONE"]);
    for i in 0..200 {
        replica.cmd(&["INCR", "n"]);
        replica.cmd(&["LPUSH", "l", &i.to_string()]);
    }
    // The same target, the new source's address: its checkpoint is found by replication ID.
    let out = redis_sync(&sync_args(&r, &t, state.to_str().expect("utf-8")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("taken over"), "{err}");
    assert!(
        err.contains("partial resync") && !err.contains("full sync from"),
        "{err}"
    );
    assert_eq!(dst.cmd(&["GET", "n"]).bulk(), Some(b"400".to_vec()));
    assert_eq!(data_digest(&dst), replica.digest());
}

#[test]
fn a_resume_after_the_backlog_is_gone_copies_again_and_sweeps() {
    for v in matrix() {
        a_resume_after_the_backlog_is_gone_copies_again_and_sweeps_on(&v);
    }
}

fn a_resume_after_the_backlog_is_gone_copies_again_and_sweeps_on(v: &ServerVersion) {
    eprintln!("a_resume_after_the_backlog_is_gone_copies_again_and_sweeps on {v}");
    let src = source(v);
    let dst = Server::builder(v).start();
    for i in 0..100 {
        src.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, t) = (url(&src), url(&dst));
    let args = sync_args(&s, &t, state.to_str().expect("utf-8"));
    let first = redis_sync(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // More writes than the smallest backlog holds, deletions among them.
    src.cmd(&["CONFIG", "SET", "repl-backlog-size", "16384"]);
    for i in 0..30 {
        src.cmd(&["DEL", &format!("k{i}")]);
    }
    let filler = "x".repeat(200);
    for i in 0..500 {
        src.cmd(&["INCR", "n"]);
        src.cmd(&["SET", &format!("f{}", i % 50), &filler]);
    }
    let out = redis_sync(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("full sync from"),
        "the backlog is gone: a copy again\n{err}"
    );
    assert!(err.contains("sweep: removed 30 target keys"), "{err}");
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn a_cluster_target_killed_and_restarted_applies_nothing_twice() {
    let redis = versions_where("Redis 7+", |v| {
        v.flavor() == Flavor::Redis && v.at_least(7, 0)
    });
    let valkey = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey);
    for v in redis.last().into_iter().chain(valkey.last()) {
        cluster_killed_and_restarted(v);
    }
}

/// SIGKILLs `redis-sync sync` into a 3-master cluster a few times while a non-idempotent
/// workload over many slots runs on the source (INCR, RPUSH, cross-slot DEL and MSET that the
/// sink splits per slot, RPUSH then a cross-slot RENAME or LMOVE, which are applied by their
/// effect), then checks the cluster holds exactly the source's data.
fn cluster_killed_and_restarted(v: &ServerVersion) {
    eprintln!("cluster kill test on {v}");
    let src = source(v);
    let cluster = redis_sync_testkit::Cluster::builder(v).masters(3).start();
    for i in 0..500 {
        src.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (s, t) = (url(&src), url(&cluster.masters()[0]));
    let spawn = |n: usize| -> (Child, std::path::PathBuf) {
        let log = dir.path().join(format!("run-{n}.log"));
        (spawn_sync(&s, &t, &state, &log, &[]), log)
    };

    let slot = |k: &str| cluster.masters()[0].cmd(&["CLUSTER", "KEYSLOT", k]).int();
    assert_ne!(
        slot("lmv:from"),
        slot("lmv:to"),
        "the LMOVE must cross slots"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = src.client();
        thread::spawn(move || {
            let mut n = 0u32;
            for i in 0..40_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let a = format!("x:{}", i % 61);
                let b = format!("y:{}", i % 67);
                let r = match i % 7 {
                    6 => c
                        .call(&["RPUSH", "lmv:from", &i.to_string()])
                        .and_then(|_| c.call(&["LMOVE", "lmv:from", "lmv:to", "LEFT", "RIGHT"])),
                    0 => c.call(&["INCR", &format!("n:{}", i % 53)]),
                    5 => {
                        let (from, to) = (format!("mvs:{}", i % 29), format!("mvd:{}", i % 29));
                        c.call(&["RPUSH", &from, &i.to_string()])
                            .and_then(|_| c.call(&["RENAME", &from, &to]))
                    }
                    1 => c.call(&["RPUSH", &format!("l:{}", i % 47), &i.to_string()]),
                    2 => c.call(&["MSET", &a, &i.to_string(), &b, &i.to_string()]),
                    3 => c.call(&["DEL", &a, &format!("y:{}", (i + 3) % 67)]),
                    _ => c.call(&["INCRBYFLOAT", &format!("f:{}", i % 41), "1.5"]),
                };
                r.expect("write to the source");
                n += 1;
                if i % 100 == 0 {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            n
        })
    };

    // Four kills: the first may land in the copy, the others while streaming after a resume.
    let mut logs = Vec::new();
    let mut resumed = 0;
    for n in 0..4 {
        let (mut child, log) = spawn(n);
        poll_until(Duration::from_secs(120), "redis-sync to stream", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (text.contains("full copy applied") || text.contains("partial resync: continuing"))
                .then_some(())
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("partial resync: continuing") {
            resumed += 1;
        }
        // The kill instant itself, by design (not a synchronisation).
        thread::sleep(Duration::from_millis(200 + 150 * n as u64));
        assert!(
            child.try_wait().expect("wait").is_none(),
            "redis-sync exited:\n{text}"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        logs.push(log);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(written > 100, "the workload barely ran ({written})");
    assert!(
        resumed >= 2,
        "restarts did not resume with a partial resync ({resumed})"
    );

    let out = redis_sync(&[
        "sync",
        "--until-caught-up",
        "--source",
        &s,
        "--target",
        &t,
        "--state-file",
        state.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("partial resync"), "{err}");
    cluster.drop_checkpoints();
    let tails: Vec<String> = logs
        .iter()
        .map(|l| {
            let t = std::fs::read_to_string(l).unwrap_or_default();
            t.lines().rev().take(6).collect::<Vec<_>>().join("\n")
        })
        .collect();
    assert_eq!(cluster.dbsize(), src.dbsize(), "{tails:#?}");
    assert_eq!(cluster.xor_digest(), src.digest(), "{tails:#?}");
}

#[test]
fn a_target_out_of_memory_stops_naming_maxmemory_or_skips_into_the_dead_letter_file() {
    let Some(v) = versions_where("Redis 7.0", |v| {
        v.flavor() == Flavor::Redis && (v.version().0, v.version().1) == (7, 0)
    })
    .pop() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for skip in [false, true] {
        let src = source(&v);
        let dst = Server::builder(&v)
            .arg("--maxmemory")
            .arg("4mb")
            .arg("--maxmemory-policy")
            .arg("noeviction")
            .start();
        src.cmd(&["SET", "small", "1"]);
        let state = dir.path().join(format!("state-{skip}.json"));
        let dead = dir.path().join(format!("dead-{skip}.resp"));
        let (s, t) = (url(&src), url(&dst));
        let mut args = sync_args(&s, &t, state.to_str().expect("utf-8"));
        let dead_arg = dead.to_str().expect("utf-8").to_string();
        if skip {
            args.extend(["--on-error", "skip", "--dead-letter", dead_arg.as_str()]);
        }
        let first = redis_sync(&args);
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        // 8 MB of new values: more than the target may hold.
        let value = "v".repeat(64 * 1024);
        for i in 0..128 {
            src.cmd(&["SET", &format!("big:{i}"), &value]);
        }
        src.cmd(&["SET", "last", "1"]);
        let out = redis_sync(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        if skip {
            assert!(out.status.success(), "{err}");
            let dead = std::fs::read(&dead).expect("dead-letter file");
            let dead = String::from_utf8_lossy(&dead);
            assert!(dead.contains("big:") && dead.contains("OOM"), "{dead}");
            // What fitted was applied, what did not is in the file: nothing vanished.
            let applied = (0..128)
                .filter(|i| dst.cmd(&["EXISTS", &format!("big:{i}")]).int() == 1)
                .count();
            let skipped = dead.matches("big:").count();
            assert!(
                applied >= 1 && skipped >= 1,
                "{applied} applied, {skipped} skipped"
            );
            assert!(
                applied + skipped >= 128,
                "{applied} applied + {skipped} skipped < 128"
            );
        } else {
            assert!(!out.status.success(), "{err}");
            assert!(err.contains("OOM") && err.contains("maxmemory"), "{err}");
            // The position stays before the refused batch: a rerun (with a bigger target)
            // applies it.
            dst.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
            let again = redis_sync(&args);
            let err = String::from_utf8_lossy(&again.stderr);
            assert!(again.status.success(), "{err}");
            assert_eq!(data_digest(&dst), src.digest());
        }
    }
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let Some(v) = matrix().pop() else {
        return;
    };
    let src = Server::builder(&v).password("right").start();
    let dst = Server::builder(&v).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let s = format!("redis://:wrong@{}", src.addr());
    let t = url(&dst);
    let out = redis_sync(&sync_args(&s, &t, state.to_str().expect("utf-8")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.to_lowercase().contains("password"), "{err}");
    assert!(!err.contains("wrong@"), "the password is printed: {err}");
    assert_eq!(dst.dbsize(), 0);
}

/// Waits (a bounded while) until the log at `log` contains `text`.
fn wait_for_log(log: &std::path::Path, text: &str) {
    poll_until(
        Duration::from_secs(60),
        &format!("{text:?} in the log"),
        || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|l| l.contains(text))
        },
    );
}

/// Starts `redis-sync sync` (streaming, no exit of its own) with `extra` flags; its log goes to
/// `log`.
fn spawn_sync(
    s: &str,
    t: &str,
    state: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["sync", "--source", s, "--target", t, "--state-file"])
        .arg(state)
        .args(["--status-interval", "1"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start redis-sync")
}

#[test]
fn a_slow_target_does_not_cut_a_source_with_a_tiny_output_buffer() {
    let Some(v) = matrix().pop() else {
        return;
    };
    let src = source(&v);
    // The source drops a replica whose unread output passes 256 KiB (64 KiB for 1 s).
    src.cmd(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "replica 256kb 64kb 1",
    ]);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "seed", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state.json"), dir.path().join("sync.log"));
    let (s, t) = (url(&src), url(&dst));
    // A target that takes 4,000 commands a second: the burst below needs a few seconds.
    let child = spawn_sync(&s, &t, &state, &log, &["--max-ops", "4000"]);
    wait_for_log(&log, "full copy applied");
    // About 3 MB of writes at once, non-idempotent.
    let mut c = src.client();
    let value = "x".repeat(200);
    for i in 0..12_000u32 {
        c.send(&["RPUSH", &format!("l:{}", i % 10), &value])
            .expect("send");
    }
    for _ in 0..12_000 {
        c.read_reply().expect("reply");
    }
    let want = src.digest();
    poll_until(Duration::from_secs(90), "the target to catch up", || {
        (data_digest(&dst) == want).then_some(())
    });
    let err = terminate(child);
    let text = std::fs::read_to_string(&log).unwrap_or_default() + &err;
    assert!(!text.contains("link to the source lost"), "{text}");
    assert!(
        !text.contains("full sync from") || text.matches("full sync from").count() == 1,
        "{text}"
    );
    assert_eq!(dst.cmd(&["LLEN", "l:3"]).int(), 1200);
}

#[test]
fn a_full_spool_stops_clearly_and_a_restart_loses_nothing() {
    let Some(v) = matrix().pop() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "seed", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state.json"), dir.path().join("sync.log"));
    let (s, t) = (url(&src), url(&dst));
    // A slow target and a spool of 1 MB on disk (8 MiB in memory before it).
    let mut child = spawn_sync(
        &s,
        &t,
        &state,
        &log,
        &["--max-ops", "500", "--spool-limit", "1000000"],
    );
    wait_for_log(&log, "full copy applied");
    let mut c = src.client();
    let value = "y".repeat(1000);
    // 40 MB: more than the sink's queue and window, the event queue, the spool's memory and
    // its 1 MB file hold together.
    for i in 0..40_000u32 {
        c.send(&["RPUSH", &format!("l:{}", i % 10), &value])
            .expect("send");
        if i % 1000 == 999 {
            for _ in 0..1000 {
                c.read_reply().expect("reply");
            }
        }
    }
    let status = poll_until(
        Duration::from_secs(60),
        "redis-sync to stop on the full spool",
        || child.try_wait().expect("wait"),
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{text}");
    assert!(text.contains("spool"), "{text}");
    // Without the limit (and at full speed) the next run resumes and loses nothing.
    let out = redis_sync(&sync_args(&s, &t, state.to_str().expect("utf-8")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("partial resync"), "{err}");
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn a_source_link_cut_during_the_copy_ends_equal() {
    for v in matrix() {
        link_cut_during_the_copy(&v);
    }
}

fn link_cut_during_the_copy(v: &ServerVersion) {
    eprintln!("link cut during the copy on {v}");
    let src = source(v);
    let dst = Server::builder(v).start();
    // Enough keys that the copy is still under way when the link is cut.
    src.cmd(&["DEBUG", "POPULATE", "100000", "k", "64"]);
    src.cmd(&["RPUSH", "l", "a"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state.json"), dir.path().join("sync.log"));
    let (s, t) = (url(&src), url(&dst));
    let mut child = spawn_sync(&s, &t, &state, &log, &["--until-caught-up"]);
    wait_for_log(&log, "full sync from");
    // Cut the replication link (`slave` is what 5.0 calls it; later versions accept both).
    let n = src.cmd(&["CLIENT", "KILL", "TYPE", "slave"]).int();
    assert!(n >= 1, "no replica connection to cut");
    src.cmd(&["RPUSH", "l", "b"]);
    let status = poll_until(Duration::from_secs(120), "redis-sync to catch up", || {
        child.try_wait().expect("wait")
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{text}");
    assert!(text.contains("link to the source lost"), "{text}");
    // Cut while the payload was still arriving: a second copy. Cut after it arrived (the
    // replica reads it into its spool as fast as the network goes, and decodes from there):
    // the copy completes from the spool, then a partial resync.
    assert!(
        text.matches("full sync from").count() >= 2 || text.contains("partial resync: continuing"),
        "{text}"
    );
    assert_eq!(data_digest(&dst), src.digest(), "{text}");
}

#[test]
fn a_target_restarted_mid_stream_loses_and_repeats_nothing() {
    for v in matrix() {
        target_restarted(&v);
    }
}

fn target_restarted(v: &ServerVersion) {
    eprintln!("target restarted on {v}");
    let src = source(v);
    let mut dst = Server::builder(v).start();
    src.cmd(&["SET", "seed", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state.json"), dir.path().join("sync.log"));
    let (s, t) = (url(&src), url(&dst));
    let child = spawn_sync(&s, &t, &state, &log, &[]);
    wait_for_log(&log, "full copy applied");
    let writer = {
        let mut c = src.client();
        thread::spawn(move || {
            for i in 0..6_000u32 {
                let r = if i % 2 == 0 {
                    c.call(&["INCR", "n"])
                } else {
                    c.call(&["RPUSH", "l", &i.to_string()])
                };
                r.expect("write to the source");
                if i % 100 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    // While the writes flow: the target goes down (saving its data) and comes back.
    poll_until(
        Duration::from_secs(30),
        "writes to reach the target",
        || (dst.cmd(&["EXISTS", "n"]).int() == 1).then_some(()),
    );
    dst.restart();
    writer.join().expect("writer");
    let want = src.digest();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while data_digest(&dst) != want {
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the target is not equal to the source after a restart:\n{text}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let err = terminate(child);
    let text = std::fs::read_to_string(&log).unwrap_or_default() + &err;
    assert!(text.contains("lost"), "the restart was not seen:\n{text}");
    assert_eq!(dst.cmd(&["GET", "n"]).bulk(), Some(b"3000".to_vec()));
    assert_eq!(dst.cmd(&["LLEN", "l"]).int(), 3000);
}

#[test]
fn a_source_paused_longer_than_the_timeout_goes_on_without_a_copy() {
    for v in matrix() {
        source_paused(&v);
    }
}

fn source_paused(v: &ServerVersion) {
    eprintln!("source paused on {v}");
    let src = source(v);
    // PING the replicas often, so that only the pause makes the link silent.
    src.cmd(&["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    let dst = Server::builder(v).start();
    src.cmd(&["SET", "seed", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state.json"), dir.path().join("sync.log"));
    let (s, t) = (url(&src), url(&dst));
    let child = spawn_sync(&s, &t, &state, &log, &["--source-timeout", "2"]);
    wait_for_log(&log, "full copy applied");
    for _ in 0..100 {
        src.cmd(&["INCR", "n"]);
    }
    // Four seconds paused: longer than --source-timeout. Whether the link goes silent depends
    // on the version (newer ones also hold the replicas' PINGs); either way the sync must go
    // on without a new copy. These writes wait behind the pause.
    src.cmd(&["CLIENT", "PAUSE", "4000"]);
    for _ in 0..100 {
        src.cmd(&["INCR", "n"]);
    }
    let want = src.digest();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while data_digest(&dst) != want {
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the target is not equal to the source after the pause:\n{text}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let err = terminate(child);
    let text = std::fs::read_to_string(&log).unwrap_or_default() + &err;
    if text.contains("link to the source lost") {
        assert!(text.contains("partial resync: continuing"), "{text}");
    }
    assert_eq!(text.matches("full sync from").count(), 1, "{text}");
    assert_eq!(dst.cmd(&["GET", "n"]).bulk(), Some(b"200".to_vec()));
}

#[test]
fn a_target_someone_wrote_to_heals_itself_with_on_error_repair() {
    for v in matrix() {
        let dst = Server::builder(&v).start();
        target_written_to_heals_itself(&v, Target::Standalone(&dst));
    }
}

#[test]
fn a_cluster_target_someone_wrote_to_heals_itself_with_on_error_repair() {
    let redis = versions_where("Redis 7+", |v| {
        v.flavor() == Flavor::Redis && v.at_least(7, 0)
    });
    let valkey = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey);
    for v in redis.last().into_iter().chain(valkey.last()) {
        let cluster = redis_sync_testkit::Cluster::builder(v).masters(3).start();
        target_written_to_heals_itself(v, Target::Cluster(&cluster));
    }
}

/// A target for [`target_written_to_heals_itself`].
enum Target<'a> {
    Standalone(&'a Server),
    Cluster(&'a redis_sync_testkit::Cluster),
}

impl Target<'_> {
    /// The node that holds `key`.
    fn node(&self, key: &str) -> &Server {
        match self {
            Target::Standalone(s) => s,
            Target::Cluster(c) => {
                let slot = c.masters()[0].cmd(&["CLUSTER", "KEYSLOT", key]).int();
                c.master_for_slot(u16::try_from(slot).expect("a slot"))
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Target::Standalone(s) => url(s),
            Target::Cluster(c) => url(&c.masters()[0]),
        }
    }

    /// What it holds, checkpoints and repair markers aside, as a digest.
    fn digest(&self) -> String {
        match self {
            Target::Standalone(s) => data_digest(s),
            Target::Cluster(c) => {
                c.drop_checkpoints();
                c.xor_digest()
            }
        }
    }
}

/// While the stream flows (INCR, RPUSH), someone writes to the target: a string where the
/// source has the counter, a hash where it has the list. With `--on-error repair` the refused
/// commands go to the dead-letter file, both keys are copied afresh from the source, the
/// commands already in the copies are not applied again, and after a SIGKILL and a restart
/// (which must skip the same commands) the target equals the source.
fn target_written_to_heals_itself(v: &ServerVersion, dst: Target<'_>) {
    eprintln!("on-error repair on {v}");
    let src = source(v);
    // Keys on every master of a cluster target: its XORed digest then equals the source's.
    for i in 0..30 {
        src.cmd(&["SET", &format!("filler:{i}"), "v"]);
    }
    src.cmd(&["SET", "counter", "0"]);
    src.cmd(&["RPUSH", "list", "start"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let dead = dir.path().join("dead.resp");
    let (s, t) = (url(&src), dst.url());
    let log = dir.path().join("run.log");
    // A slow target, so the stream lags the source and a key read from the source now holds
    // many commands still to come: those must be skipped.
    let dead_arg = dead.to_str().expect("utf-8");
    let extra = [
        "--on-error",
        "repair",
        "--dead-letter",
        dead_arg,
        "--max-ops",
        "400",
    ];
    let mut child = spawn_sync(&s, &t, &state, &log, &extra);
    wait_for_log(&log, "full copy applied");

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, count) = (stop.clone(), count.clone());
        let mut c = src.client();
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.call(&["INCR", "counter"]).expect("INCR");
                c.call(&["RPUSH", "list", &n.to_string()]).expect("RPUSH");
                n += 1;
                count.store(n, Ordering::Relaxed);
                // Pacing the writer, not a synchronisation.
                thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    poll_until(Duration::from_secs(30), "the stream on the target", || {
        (dst.node("list").cmd(&["LLEN", "list"]).int() > 50).then_some(())
    });
    // Someone else writes to the target.
    dst.node("counter").cmd(&["SET", "counter", "hello"]);
    dst.node("list").cmd(&["DEL", "list"]);
    dst.node("list").cmd(&["HSET", "list", "f", "v"]);
    wait_for_log(&log, "repaired key \"counter\"");
    wait_for_log(&log, "repaired key \"list\"");
    let at_repair = count.load(Ordering::Relaxed);
    poll_until(
        Duration::from_secs(30),
        "more writes after the repairs",
        || (count.load(Ordering::Relaxed) > at_repair + 300).then_some(()),
    );
    // A crash after the repairs: the restart must skip the same commands.
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(written > 50, "{written}");

    let dead2 = dir.path().join("dead2.resp");
    let dead2 = dead2.to_str().expect("utf-8");
    let out = sync_until_caught_up(
        &s,
        &t,
        &state,
        &["--on-error", "repair", "--dead-letter", dead2],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{v}: {err}");
    assert!(err.contains("partial resync"), "{err}");
    let show = |s: &Server| {
        format!(
            "counter {:?}, list of type {:?} and length {:?}",
            s.cmd(&["GET", "counter"]),
            s.cmd(&["TYPE", "list"]),
            s.cmd(&["LLEN", "list"])
        )
    };
    let a = src.cmd(&["LRANGE", "list", "0", "-1"]).array();
    let b = dst.node("list").cmd(&["LRANGE", "list", "0", "-1"]).array();
    let first_diff = a.iter().zip(&b).position(|(x, y)| x != y);
    let target = format!(
        "{} / {}; lists differ first at {first_diff:?}: {:?} vs {:?}",
        show(dst.node("counter")),
        show(dst.node("list")),
        first_diff.map(|i| a[i.saturating_sub(2)..(i + 3).min(a.len())].to_vec()),
        first_diff.map(|i| b[i.saturating_sub(2)..(i + 3).min(b.len())].to_vec()),
    );
    assert_eq!(
        dst.digest(),
        src.digest(),
        "{v}: source {}, target {target}\n{err}\nfirst run:\n{}",
        show(&src),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let refused = std::fs::read(&dead).expect("dead-letter file");
    assert!(
        !refused.is_empty(),
        "the refused commands are in the dead-letter file"
    );
    eprintln!("ok {v}: {written} writes, both keys repaired, equal after a restart");
}
