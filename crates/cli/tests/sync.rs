//! End-to-end `redis-sync sync` against real servers: every version pair ends equal while a
//! writer runs on the source; a cluster target; restart resumes without a full copy.
//!
//! Each pair runs the binary twice: `sync --until-caught-up` while the writer writes (full
//! copy, then the stream up to the offset the source had when the copy ended), then, once the
//! writer is done, `sync --until-caught-up` again from the checkpoint: that run must resume
//! with a partial resync and catch up with everything the writer wrote.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{run_bounded, usual_version};
use redis_sync_testkit::{
    Cluster, DatasetOptions, SERVERS_HINT, Server, ServerVersion, compare_data, data_dbsize,
    data_digest, find, versions, write_dataset,
};

fn sync_bin(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(args)
            .env("RUST_LOG", "info"),
    )
}

fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
}

fn source(v: &ServerVersion) -> Server {
    let s = Server::builder(v).start();
    // Diskless full syncs otherwise wait 5 s (7.0+ default); older versions use disk.
    s.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    s
}

/// Writes `count` commands of several kinds to the source (keys under `w:`), spread over the
/// time the sync runs; stops early when `stop` is set. Every loop is bounded by `count`.
fn writer(
    src: &Server,
    count: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> thread::JoinHandle<usize> {
    let mut c = src.client();
    thread::spawn(move || {
        let mut n = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let k = format!("w:{}", i % 97);
            let r = match i % 6 {
                0 => c.call(&["SET", &k, &i.to_string()]),
                1 => c.call(&["INCR", "w:counter"]),
                2 => c.call(&["RPUSH", "w:list", &i.to_string()]),
                3 => c.call(&["HSET", "w:hash", &k, &i.to_string()]),
                4 => c.call(&["DEL", &format!("w:{}", (i + 7) % 97)]),
                _ => c.call(&["ZADD", "w:zset", &i.to_string(), &k]),
            };
            r.expect("writer command");
            n += 1;
            done.store(n, Ordering::Relaxed);
            if i % 50 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
        n
    })
}

fn assert_ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{err}",
        out.status
    );
    err
}

/// Source version `a` → target version `b`, with writes during the sync and a resumed second
/// run. Returns the seconds the first run took.
fn pair(a: &ServerVersion, b: &ServerVersion) -> (f64, usize) {
    let src = source(a);
    let dst = Server::builder(b).start();
    let info = write_dataset(&src, &DatasetOptions::default());
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let state_arg = state_file.to_str().expect("utf-8");
    let (s_url, t_url) = (url(&src), url(&dst));
    let args = [
        "sync",
        "--source",
        &s_url,
        "--target",
        &t_url,
        "--until-caught-up",
        "--state-file",
        state_arg,
        "--status-interval",
        "1",
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let w = writer(&src, 3000, stop.clone(), done.clone());
    let t = Instant::now();
    let first = sync_bin(&args);
    let secs = t.elapsed().as_secs_f64();
    let during = done.load(Ordering::Relaxed);
    let err = assert_ok(&first, &format!("sync {} -> {}", a.name(), b.name()));
    assert!(err.contains("full sync from"), "{err}");
    // Let the writer finish (bounded), then a second run resumes and catches up.
    let written = w.join().expect("writer");
    assert!(written > 0);
    let second = sync_bin(&args);
    let err2 = assert_ok(&second, "second sync");
    assert!(
        err2.contains("partial resync") && !err2.contains("full sync from"),
        "restart should resume without a full copy:\n{err2}"
    );
    assert_equal(&src, &dst, &info);
    (secs, during)
}

/// `assert_same_data`, except that between different versions `XINFO STREAM FULL` has
/// different fields (7.0 adds entries-read, lag, …): there the streams' groups are compared
/// through the fields both versions have (`XINFO GROUPS` name/consumers/pending/last id and
/// the `XPENDING` summary).
fn assert_equal(src: &Server, dst: &Server, info: &redis_sync_testkit::DatasetInfo) {
    let Err(e) = compare_data(src, dst, info) else {
        return;
    };
    let cross = src.version().name() != dst.version().name();
    if !(cross && (e.starts_with("stream ") || e.starts_with("DEBUG DIGEST differs"))) {
        panic!("{e}");
    }
    // DEBUG DIGEST is not comparable across versions either (6.x hashes zset scores printed
    // with %.17g, 7.x in the shortest form): compare every key's value with `verify --keys`.
    let out = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["verify", "--keys", "--recheck-after", "0", "--source"])
        .arg(url(src))
        .arg("--target")
        .arg(url(dst))
        .output()
        .expect("run verify");
    assert!(
        out.status.success(),
        "{e}\nverify --keys: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Everything but the streams' XINFO was equal up to the first stream; check them all.
    let groups = |s: &Server, db: u32, key: &str| -> Vec<String> {
        let mut c = s.client();
        c.call(&["SELECT", &db.to_string()]).expect("select");
        let mut out = Vec::new();
        for g in c.call(&["XINFO", "GROUPS", key]).expect("xinfo").array() {
            let f = g.array();
            let mut fields = Vec::new();
            for pair in f.chunks(2) {
                let name = pair[0].text();
                if ["name", "consumers", "pending", "last-delivered-id"].contains(&name.as_str()) {
                    fields.push(format!("{name}={:?}", pair[1]));
                }
            }
            let gname = f
                .chunks(2)
                .find(|p| p[0].text() == "name")
                .map(|p| p[1].text())
                .expect("group name");
            let pel = c.call(&["XPENDING", key, &gname]).expect("xpending");
            out.push(format!("{fields:?} {pel:?}"));
        }
        out
    };
    for (db, key) in &info.streams {
        assert_eq!(
            groups(src, *db, key),
            groups(dst, *db, key),
            "stream {key} groups differ"
        );
    }
    // And the rest of compare_data's checks, without the streams, when the digests agree.
    let mut rest = info.clone();
    rest.streams.clear();
    if let Err(e) = compare_data(src, dst, &rest)
        && !e.starts_with("DEBUG DIGEST differs")
    {
        panic!("{e}");
    }
}

#[test]
fn every_version_pair_ends_equal_with_writes_during_the_sync() {
    let all = versions();
    if all.is_empty() {
        eprintln!("skipped: no servers installed; {SERVERS_HINT}");
        return;
    }
    // Same version for every installed one, plus newer targets.
    let mut pairs: Vec<(ServerVersion, ServerVersion)> =
        all.iter().map(|v| (v.clone(), v.clone())).collect();
    for (a, b) in [
        ("redis-5.0.6", "redis-7.0.15"),
        ("redis-6.2.14", "redis-7.4.1"),
        ("redis-7.0.15", "redis-8.6.3"),
        ("valkey-8.0.1", "valkey-9.1.2"),
    ] {
        if let (Some(a), Some(b)) = (find(a), find(b)) {
            pairs.push((a, b));
        }
    }
    let only = std::env::var("REDIS_SYNC_PAIRS").ok();
    let results = Mutex::new(Vec::new());
    for (a, b) in &pairs {
        let name = format!("{}->{}", a.name(), b.name());
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|p| p == name))
        {
            continue;
        }
        let (secs, during) = pair(a, b);
        eprintln!(
            "sync {name}: equal (first run {secs:.2}s, {during} of 3000 writes done by its end)"
        );
        results.lock().expect("lock").push((name, secs));
    }
    assert!(!results.lock().expect("lock").is_empty());
}

#[test]
fn standalone_to_three_master_cluster_ends_equal() {
    let Some(v) =
        find("redis-7.0.15").or_else(|| versions().into_iter().find(|v| v.at_least(7, 0)))
    else {
        eprintln!("skipped: no 7.0+ server installed");
        return;
    };
    let src = source(&v);
    let mut opts = DatasetOptions::default();
    opts.other_db = 0;
    write_dataset(&src, &opts);
    let cluster = Cluster::builder(&v).masters(3).start();
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let t_url = format!("redis://{}", cluster.masters()[0].addr());
    let out = sync_bin(&[
        "sync",
        "--source",
        &url(&src),
        "--target",
        &t_url,
        "--until-caught-up",
        "--state-file",
        state_file.to_str().expect("utf-8"),
    ]);
    let err = assert_ok(&out, "sync to a cluster");
    assert!(err.contains("cluster"), "{err}");
    let mut c = src.client();
    c.call(&["MSET", "a", "1", "b", "2", "c", "3"])
        .expect("mset");
    c.call(&["DEL", "a", "b"]).expect("del");
    let out = sync_bin(&[
        "sync",
        "--source",
        &url(&src),
        "--target",
        &t_url,
        "--until-caught-up",
        "--state-file",
        state_file.to_str().expect("utf-8"),
    ]);
    let err = assert_ok(&out, "second sync to a cluster");
    assert!(err.contains("partial resync"), "{err}");
    cluster.drop_checkpoints();
    assert_eq!(cluster.dbsize(), src.dbsize());
    assert_eq!(cluster.xor_digest(), src.digest());
}

#[test]
fn full_copy_redone_sweeps_keys_the_source_deleted() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    for i in 0..50 {
        src.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let sf = state_file.to_str().expect("utf-8");
    let (s_url, t_url) = (url(&src), url(&dst));
    let base = [
        "sync",
        "--source",
        &s_url,
        "--target",
        &t_url,
        "--state-file",
        sf,
    ];
    let mut args = base.to_vec();
    args.push("--mode");
    args.push("full");
    assert_ok(&sync_bin(&args), "first full copy");
    assert_eq!(data_dbsize(&dst), 50);
    // The source deletes keys; the checkpoint's position is made useless (another replid),
    // so the next run must copy everything again and remove the deleted keys.
    for i in 0..10 {
        src.cmd(&["DEL", &format!("k{i}")]);
    }
    let mut cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("state")).expect("json");
    cp["replid"] = serde_json::json!("0000000000000000000000000000000000000000");
    std::fs::write(&state_file, cp.to_string()).expect("write state");
    let out = sync_bin(&args);
    let err = assert_ok(&out, "second full copy");
    assert!(err.contains("sweep: removed 10 target keys"), "{err}");
    assert_eq!(data_dbsize(&dst), 40);
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn sigterm_drains_checkpoints_and_exits_zero() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "a", "1"]);
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let metrics_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let metrics = format!("127.0.0.1:{metrics_port}");
    let child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args([
            "sync",
            "--source",
            &url(&src),
            "--target",
            &url(&dst),
            "--state-file",
            state_file.to_str().expect("utf-8"),
            "--metrics",
            &metrics,
            "--heartbeat",
            "0.2",
            "--status-json",
            "--status-interval",
            "0.5",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    redis_sync_testkit::poll_until(Duration::from_secs(30), "the live stream", || {
        (dst.cmd(&["GET", "a"]).bulk() == Some(b"1".to_vec())).then_some(())
    });
    src.cmd(&["SET", "b", "2"]);
    redis_sync_testkit::poll_until(Duration::from_secs(30), "b on the target", || {
        (dst.cmd(&["GET", "b"]).bulk() == Some(b"2".to_vec())).then_some(())
    });
    // Metrics answer over HTTP; the heartbeat never reaches the target.
    let body = http_get(&metrics);
    assert!(body.contains("redis_sync_applied_offset"), "{body}");
    redis_sync_testkit::poll_until(Duration::from_secs(20), "a heartbeat lag", || {
        http_get(&metrics)
            .contains("redis_sync_heartbeat_lag_seconds")
            .then_some(())
    });
    assert_eq!(data_dbsize(&dst), 2, "no heartbeat key on the target");
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit after SIGTERM: {}\n{err}",
        out.status
    );
    // --status-json: the last status line is JSON, says stopped, and holds no password.
    let last: serde_json::Value = err
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON status line");
    assert_eq!(last["state"], "stopped", "{err}");
    assert!(
        last["applied_offset"].as_u64().is_some_and(|o| o > 0),
        "{last}"
    );
    assert!(last["heartbeat_lag_secs"].as_f64().is_some(), "{last}");
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("state")).expect("json");
    let offset = cp["offset"].as_u64().expect("offset in the checkpoint");
    let master: u64 = src.info("replication")["master_repl_offset"]
        .parse()
        .expect("offset");
    assert!(offset > 0 && offset <= master, "{offset} vs {master}");
}

fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).ok();
    body
}

#[test]
fn passwords_from_the_environment_are_used_and_never_printed() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = Server::builder(&v).password("src-secret-1").start();
    src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    let dst = Server::builder(&v).password("dst-secret-2").start();
    for i in 0..20 {
        src.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let pw_file = state.path().join("target.pw");
    std::fs::write(&pw_file, "dst-secret-2\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args([
            "sync",
            "--mode",
            "full",
            "--source",
            &src.addr(),
            "--target",
            &dst.addr(),
        ])
        .arg("--target-password-file")
        .arg(&pw_file)
        .arg("--state-file")
        .arg(&state_file)
        .env("REDIS_SYNC_SOURCE_PASSWORD", "src-secret-1")
        .output()
        .expect("run");
    let err = assert_ok(&out, "sync with passwords");
    assert_eq!(data_dbsize(&dst), 20);
    let state_text = std::fs::read_to_string(&state_file).expect("state");
    for text in [&err, &state_text] {
        assert!(
            !text.contains("src-secret-1") && !text.contains("dst-secret-2"),
            "a password was printed: {text}"
        );
    }
    // A wrong password in the URL: a clear error, still without the password.
    let out = sync_bin(&[
        "sync",
        "--mode",
        "full",
        "--source",
        &format!("redis://:nope-pw@{}", src.addr()),
        "--target",
        &dst.addr(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("nope-pw"), "{err}");
}

#[test]
fn flush_target_empties_the_synced_dbs_first() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "a", "1"]);
    dst.cmd(&["SET", "stale", "1"]);
    dst.cmd(&["SET", "a", "old"]);
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let out = sync_bin(&[
        "sync",
        "--mode",
        "full",
        "--flush-target",
        "--source",
        &url(&src),
        "--target",
        &url(&dst),
        "--state-file",
        sf.to_str().expect("utf-8"),
    ]);
    let err = assert_ok(&out, "sync --flush-target");
    assert!(err.contains("removed 2 keys"), "{err}");
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn conflict_block_names_the_existing_key() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "taken", "source"]);
    dst.cmd(&["SET", "taken", "target"]);
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let out = sync_bin(&[
        "sync",
        "--mode",
        "full",
        "--conflict",
        "block",
        "--source",
        &url(&src),
        "--target",
        &url(&dst),
        "--state-file",
        sf.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("taken") && err.contains("conflict"), "{err}");
    assert_eq!(dst.cmd(&["GET", "taken"]).bulk(), Some(b"target".to_vec()));
}

#[test]
fn a_command_the_target_rejects_stops_or_goes_to_the_dead_letter_file() {
    let Some(v) = usual_version() else {
        return;
    };
    let state = tempfile::tempdir().expect("tempdir");
    for skip in [false, true] {
        let src = source(&v);
        let dst = Server::builder(&v).start();
        src.cmd(&["SET", "n", "1"]);
        let sf = state.path().join(format!("state-{skip}.json"));
        let dl = state.path().join("dead.resp");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-sync"));
        cmd.args(["sync", "--source", &url(&src), "--target", &url(&dst)])
            .arg("--state-file")
            .arg(&sf)
            .stderr(std::process::Stdio::piped());
        if skip {
            cmd.args(["--on-error", "skip", "--dead-letter"]).arg(&dl);
        }
        let child = cmd.spawn().expect("spawn");
        redis_sync_testkit::poll_until(Duration::from_secs(30), "n on the target", || {
            (dst.cmd(&["GET", "n"]).bulk() == Some(b"1".to_vec())).then_some(())
        });
        // Someone writes to the target behind our back; the source's INCR then fails there.
        dst.cmd(&["SET", "n", "not-a-number"]);
        src.cmd(&["INCR", "n"]);
        src.cmd(&["SET", "after", "1"]);
        if skip {
            redis_sync_testkit::poll_until(Duration::from_secs(30), "the next write", || {
                (dst.cmd(&["GET", "after"]).bulk() == Some(b"1".to_vec())).then_some(())
            });
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            let out = child.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert!(err.contains("dead_letter=1"), "{err}");
            // The file is flushed when the sink drains (at the latest on exit).
            let dead = std::fs::read(&dl).expect("dead-letter file");
            assert!(
                String::from_utf8_lossy(&dead).contains("INCR"),
                "{}",
                String::from_utf8_lossy(&dead)
            );
        } else {
            let out = child.wait_with_output().expect("the sync stops by itself");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("INCR") || err.contains("incr"), "{err}");
            assert!(err.contains("not an integer"), "{err}");
            // The checkpoint stays before the failed command: a rerun would retry it.
            let cp: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&sf).expect("state")).expect("json");
            let master: u64 = src.info("replication")["master_repl_offset"]
                .parse()
                .expect("offset");
            assert!(cp["offset"].as_u64().expect("offset") < master, "{cp}");
        }
    }
}

#[test]
fn a_cut_link_resumes_with_a_partial_resync() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "before", "1"]);
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["sync", "--source", &url(&src), "--target", &url(&dst)])
        .arg("--state-file")
        .arg(&sf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    redis_sync_testkit::poll_until(Duration::from_secs(30), "the full copy", || {
        (dst.cmd(&["GET", "before"]).bulk().is_some()).then_some(())
    });
    // The source drops its replica (as on an output-buffer overflow or CLIENT KILL).
    let kind = if v.at_least(5, 0) { "replica" } else { "slave" };
    redis_sync_testkit::poll_until(Duration::from_secs(10), "a replica to kill", || {
        (src.cmd(&["CLIENT", "KILL", "TYPE", kind]).int() > 0).then_some(())
    });
    for i in 0..100 {
        src.cmd(&["RPUSH", "after", &i.to_string()]);
    }
    redis_sync_testkit::poll_until(Duration::from_secs(30), "writes after the cut", || {
        (dst.cmd(&["LLEN", "after"]).int() == 100).then_some(())
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("link to the source lost"), "{err}");
    assert!(err.contains("partial resync"), "{err}");
    assert_eq!(err.matches("full sync from").count(), 1, "{err}");
    assert_eq!(data_digest(&dst), src.digest());
}

#[test]
fn filters_and_db_mapping_apply_to_the_copy_and_the_stream() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    let mut c = src.client();
    c.call(&["SET", "a:0", "db0"]).expect("set");
    c.call(&["SELECT", "3"]).expect("select");
    for k in ["a:1", "b:1", "a:list"] {
        c.call(&["SET", k, "db3"]).expect("set");
    }
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let config = state.path().join("sync.toml");
    std::fs::write(
        &config,
        format!(
            "source = \"{}\"\ntarget = \"{}\"\ndb = [3]\ndb_map = [\"3:0\"]\nkey-prefix = [\"a:\"]\n\
             exclude-key-glob = [\"*:list\"]\nuntil-caught-up = true\n",
            url(&src),
            url(&dst)
        ),
    )
    .expect("config");
    let args = [
        "sync",
        "--config",
        config.to_str().expect("utf-8"),
        "--state-file",
        sf.to_str().expect("utf-8"),
    ];
    let err = assert_ok(&sync_bin(&args), "filtered sync");
    assert!(err.contains("3 filtered out"), "{err}");
    // The stream: same rules.
    c.call(&["SET", "a:2", "db3"]).expect("set");
    c.call(&["SET", "b:2", "db3"]).expect("set");
    c.call(&["SELECT", "0"]).expect("select");
    c.call(&["SET", "a:9", "db0"]).expect("set");
    assert_ok(&sync_bin(&args), "filtered resume");
    let mut keys: Vec<String> = dst
        .cmd(&["KEYS", "*"])
        .array()
        .iter()
        .map(|k| k.text())
        .filter(|k| !k.starts_with("redis-sync:checkpoint:"))
        .collect();
    keys.sort();
    assert_eq!(keys, ["a:1", "a:2"]);
    assert_eq!(dst.info("keyspace").len(), 1, "only db 0 on the target");
}

#[test]
fn module_values_are_carried() {
    let with = redis_sync_testkit::versions_where("with modules", |v| {
        v.module("rejson").is_some() && v.module("redisbloom").is_some()
    });
    let Some(v) = with.last() else {
        eprintln!("skipped: no server with RedisJSON and RedisBloom installed");
        return;
    };
    let start = || {
        Server::builder(v)
            .module("rejson")
            .module("redisbloom")
            .arg("--repl-diskless-sync-delay")
            .arg("0")
            .start()
    };
    let (src, dst) = (start(), start());
    let info = write_dataset(&src, &DatasetOptions::default());
    assert!(
        !info.module_keys.is_empty(),
        "the data set has module values"
    );
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let out = sync_bin(&[
        "sync",
        "--until-caught-up",
        "--source",
        &url(&src),
        "--target",
        &url(&dst),
        "--state-file",
        sf.to_str().expect("utf-8"),
    ]);
    assert_ok(&out, "sync with modules");
    assert_equal(&src, &dst, &info);
}

#[test]
fn the_checkpoint_kept_in_the_target_resumes_without_the_state_file() {
    let Some(v) = usual_version() else {
        return;
    };
    let src = source(&v);
    let dst = Server::builder(&v).start();
    src.cmd(&["SET", "a", "1"]);
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let (s_url, t_url) = (url(&src), url(&dst));
    let args = [
        "sync",
        "--until-caught-up",
        "--source",
        &s_url,
        "--target",
        &t_url,
        "--state-file",
        sf.to_str().expect("utf-8"),
    ];
    assert_ok(&sync_bin(&args), "first sync");
    let key = format!("redis-sync:checkpoint:{}", src.addr());
    let offset = dst
        .cmd(&["HGET", &key, "offset"])
        .bulk()
        .expect("checkpoint key");
    let _: u64 = String::from_utf8(offset)
        .expect("utf-8")
        .parse()
        .expect("offset");
    assert_eq!(dst.cmd(&["HGET", &key, "state"]).text(), "streaming");
    std::fs::remove_file(&sf).expect("remove the state file");
    src.cmd(&["SET", "b", "2"]);
    let err = assert_ok(&sync_bin(&args), "second sync");
    assert!(err.contains("checkpoint (in the target)"), "{err}");
    assert!(err.contains("partial resync"), "{err}");
    assert_eq!(dst.cmd(&["GET", "b"]).bulk(), Some(b"2".to_vec()));
    assert_eq!(data_digest(&dst), src.digest());
}

/// `--tee-rdb`: the snapshot a full copy receives is also written to a file, which a server
/// loads as its RDB and then holds what the source held (diskless and disk-based payloads).
#[test]
fn the_snapshot_teed_to_a_file_loads_into_a_server_equal_to_the_source() {
    let pick = |name| find(name).into_iter();
    let chosen: Vec<ServerVersion> = pick("redis-5.0.6")
        .chain(pick("redis-7.0.15"))
        .chain(versions().into_iter().rev().take(1))
        .collect();
    for v in chosen {
        let src = source(&v);
        let mut opts = DatasetOptions::default();
        opts.other_db = 3;
        write_dataset(&src, &opts);
        let dst = Server::builder(&v).start();
        let dir = tempfile::tempdir().expect("tempdir");
        let tee = dir.path().join("backup.rdb");
        let state = dir.path().join("state.json");
        let out = sync_bin(&[
            "sync",
            "--mode",
            "full",
            "--source",
            &url(&src),
            "--target",
            &url(&dst),
            "--state-file",
            state.to_str().expect("utf-8"),
            "--tee-rdb",
            tee.to_str().expect("utf-8"),
        ]);
        let err = assert_ok(&out, "sync --tee-rdb");
        assert!(err.contains("snapshot copied to"), "{err}");
        assert!(!dir.path().join("backup.rdb.part").exists());
        // A server started on the file holds the source's data.
        let restored = Server::builder(&v)
            .arg("--dir")
            .arg(dir.path())
            .arg("--dbfilename")
            .arg("backup.rdb")
            .start();
        assert_eq!(restored.digest(), src.digest(), "{v}");
        eprintln!("ok {v}: teed snapshot loads equal");
    }
}

/// The full copy draws a bar when stderr is a terminal (here a pty made by `script`), and
/// plain status lines, with no terminal escapes, when it is not. `--max-bytes` holds the copy
/// (40,000 keys of 64 bytes, about 3.5 MB with the commands) open for a few seconds, so the
/// bar is drawn whatever the machine's speed.
#[test]
fn the_full_copy_draws_a_progress_bar_on_a_terminal_and_status_lines_elsewhere() {
    let Some(v) = usual_version() else { return };
    let script = Command::new("script").arg("--version").output();
    if script.is_err() {
        assert!(
            !redis_sync_testkit::in_ci(),
            "`script` (util-linux) is needed to run redis-sync in a pty: apt-get install bsdutils"
        );
        eprintln!("skipped: no `script` command");
        return;
    }
    let src = source(&v);
    src.cmd(&["DEBUG", "POPULATE", "40000", "pb", "64"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_redis-sync");
    for terminal in [true, false] {
        let dst = Server::builder(&v).start();
        let state = dir.path().join(format!("state-{terminal}.json"));
        let args = [
            "sync",
            "--mode",
            "full",
            "--max-bytes",
            "1000000",
            "--status-interval",
            "0.5",
            "--source",
            &url(&src),
            "--target",
            &url(&dst),
            "--state-file",
            state.to_str().expect("utf-8"),
        ];
        let (out, shown) = if terminal {
            // `script -qfec CMD /dev/null`: CMD runs with a pty as its stdin/stdout/stderr;
            // what it draws comes out on script's stdout.
            let cmd = std::iter::once(bin)
                .chain(args.iter().copied())
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ");
            let out = run_bounded(
                Command::new("script")
                    .args(["-qfec", &cmd, "/dev/null"])
                    .env("COLUMNS", "120")
                    .stdin(std::process::Stdio::null()),
            );
            let shown = String::from_utf8_lossy(&out.stdout).into_owned();
            (out, shown)
        } else {
            let out = sync_bin(&args);
            let shown = String::from_utf8_lossy(&out.stderr).into_owned();
            (out, shown)
        };
        assert!(out.status.success(), "terminal={terminal}: {shown}");
        assert_eq!(
            data_digest(&dst),
            src.digest(),
            "terminal={terminal}: {shown}"
        );
        if terminal {
            assert!(shown.contains("full copy ["), "no bar drawn: {shown}");
            assert!(shown.contains("keys parsed"), "{shown}");
            // Drawn in place: cursor movements and line erasures.
            assert!(shown.contains("\x1b[2K"), "no redraw: {shown}");
            // The logs still came through, above the bar.
            assert!(shown.contains("full copy applied"), "{shown}");
        } else {
            assert!(!shown.contains('\x1b'), "escapes off a terminal: {shown}");
            assert!(!shown.contains("full copy ["), "{shown}");
            assert!(
                shown.contains("full sync: received"),
                "no status lines: {shown}"
            );
        }
    }
}

/// A backup written by `--tee-rdb` and `--tee-aof` over a full copy and a resumed stream
/// restores with `sync --source-rdb --source-aof` into an empty server equal to the source;
/// run again, the restore resumes at the end of the AOF and applies nothing twice (the
/// workload is INCR/LPUSH/MULTI, so a duplicate shows). Then an AOF Redis wrote itself (7.0+:
/// the base RDB and the increment of its multi-part AOF, with `#TS:` annotations) restores
/// equal too.
#[test]
fn a_backup_restores_with_source_rdb_and_source_aof_exactly_once() {
    let Some(v) = usual_version() else { return };
    let src = source(&v);
    let mut opts = DatasetOptions::default();
    opts.other_db = 2;
    write_dataset(&src, &opts);
    let dst = Server::builder(&v).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();
    let (rdb, aof, state) = (path("b.rdb"), path("b.aof"), path("state.json"));
    let run = |extra: &[&str]| {
        let (s, d) = (url(&src), url(&dst));
        let mut args = vec![
            "sync",
            "--until-caught-up",
            "--source",
            &s,
            "--target",
            &d,
            "--state-file",
            &state,
        ];
        args.extend_from_slice(extra);
        assert_ok(&sync_bin(&args), "sync with the tees")
    };
    let workload = |round: usize| {
        let mut c = src.client();
        for i in 0..300 {
            c.call(&["INCR", "b:counter"]).expect("INCR");
            c.call(&["LPUSH", "b:list", &format!("{round}:{i}")])
                .expect("LPUSH");
            if i % 50 == 0 {
                c.call(&["MULTI"]).expect("MULTI");
                c.call(&["SELECT", "1"]).expect("SELECT");
                c.call(&["INCRBY", "b:db1", "7"]).expect("INCRBY");
                c.call(&["SELECT", "0"]).expect("SELECT");
                c.call(&["EXEC"]).expect("EXEC");
            }
        }
    };
    run(&["--tee-rdb", &rdb, "--tee-aof", &aof]);
    workload(1);
    let err = run(&["--tee-rdb", &rdb, "--tee-aof", &aof]);
    assert!(err.contains("partial resync"), "{err}");
    workload(2);
    run(&["--tee-rdb", &rdb, "--tee-aof", &aof]);

    // The restore, twice into the same server.
    let restored = Server::builder(&v).start();
    let restore_state = path("restore.json");
    for attempt in 0..2 {
        let out = sync_bin(&[
            "sync",
            "--source-rdb",
            &rdb,
            "--source-aof",
            &aof,
            "--target",
            &url(&restored),
            "--state-file",
            &restore_state,
        ]);
        let err = assert_ok(&out, "sync --source-rdb --source-aof");
        if attempt == 1 {
            assert!(
                err.contains("partial resync"),
                "the second restore copied again: {err}"
            );
        }
        assert_eq!(
            data_digest(&restored),
            src.digest(),
            "restore {attempt}: {err}"
        );
    }

    // An AOF of Redis's own (multi-part, 7.0+).
    if !v.at_least(7, 0) {
        return;
    }
    let own = Server::builder(&v)
        .arg("--appendonly")
        .arg("yes")
        .arg("--aof-timestamp-enabled")
        .arg("yes")
        // `everysec` may write the file after the reply (while a background fsync runs):
        // `always` has every acknowledged write in the file.
        .arg("--appendfsync")
        .arg("always")
        .start();
    write_dataset(&own, &DatasetOptions::default());
    own.cmd(&["BGREWRITEAOF"]);
    let aof_dir = own.dir().join("appendonlydir");
    redis_sync_testkit::poll_until(Duration::from_secs(20), "the AOF rewrite", || {
        let info = own.info("persistence");
        (info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
            && info.get("aof_rewrite_scheduled").map(String::as_str) == Some("0"))
        .then_some(())
    });
    let mut c = own.client();
    for i in 0..200 {
        c.call(&["INCR", "own:counter"]).expect("INCR");
        c.call(&["RPUSH", "own:list", &i.to_string()])
            .expect("RPUSH");
    }
    // The manifest names the current base and increment (old ones may linger as history).
    let manifest = std::fs::read_dir(&aof_dir)
        .expect("appendonlydir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .expect("a manifest in appendonlydir");
    let manifest = std::fs::read_to_string(manifest).expect("read the manifest");
    let find = |kind: &str| {
        let line = manifest
            .lines()
            .find(|l| l.ends_with(&format!("type {kind}")))
            .unwrap_or_else(|| panic!("no type {kind} file in the manifest: {manifest}"));
        let name = line.split_whitespace().nth(1).expect("a file name");
        aof_dir.join(name).to_str().expect("utf-8").to_owned()
    };
    let (base, incr) = (find("b"), find("i"));
    // Redis annotates at most once a second: write until one is in the file.
    redis_sync_testkit::poll_until(
        Duration::from_secs(10),
        "a #TS: annotation in the AOF increment",
        || {
            c.call(&["INCR", "own:ticks"]).expect("INCR");
            let text = std::fs::read(&incr).expect("read the increment");
            text.windows(4).any(|w| w == b"#TS:").then_some(())
        },
    );
    c.call(&["RPUSH", "own:list", "after"]).expect("RPUSH");
    let target = Server::builder(&v).start();
    let out = sync_bin(&[
        "sync",
        "--source-rdb",
        &base,
        "--source-aof",
        &incr,
        "--target",
        &url(&target),
        "--state-file",
        &path("own.json"),
    ]);
    let err = assert_ok(&out, "sync from Redis's own AOF");
    assert_eq!(data_digest(&target), own.digest(), "{err}");

    // The directory itself, read by its manifest; then to a point in time: a write in a later
    // second comes after a `#TS:` annotation, and `--until-time` stops before it.
    let before = redis_sync_testkit::unix_ms() / 1000;
    redis_sync_testkit::poll_until(Duration::from_secs(5), "the next second", || {
        (redis_sync_testkit::unix_ms() / 1000 > before).then_some(())
    });
    c.call(&["SET", "own:later", "1"]).expect("SET");
    let dir = aof_dir.to_str().expect("utf-8");
    for (until, later) in [(None, true), (Some(before), false)] {
        let target = Server::builder(&v).start();
        let state = path(&format!("dir-{until:?}.json"));
        let target_url = url(&target);
        let mut args = vec![
            "sync",
            "--source-aof",
            dir,
            "--target",
            &target_url,
            "--state-file",
            &state,
        ];
        let t = until.map(|t| t.to_string());
        if let Some(t) = &t {
            args.extend(["--until-time", t]);
        }
        let out = sync_bin(&args);
        let err = assert_ok(&out, "sync --source-aof DIR");
        let has_later = target.cmd(&["EXISTS", "own:later"]).int() == 1;
        assert_eq!(has_later, later, "until {until:?}: {err}");
        if until.is_none() {
            assert_eq!(data_digest(&target), own.digest(), "{err}");
        } else {
            assert!(err.contains("stopping at the annotation"), "{err}");
            assert_eq!(target.cmd(&["EXISTS", "own:counter"]).int(), 1, "{err}");
        }
    }
}

/// A directory of per-shard RDBs (`--source-rdb DIR`) restores as one snapshot: into a
/// standalone server and into a 3-master cluster, each ends equal to a server that holds both
/// shards' data (the digest of a cluster is the XOR of its masters').
#[test]
fn per_shard_rdbs_restore_as_one_snapshot_into_a_server_and_a_cluster() {
    let Some(v) = usual_version() else { return };
    let fill = |s: &Server, prefix: &str| {
        let mut c = s.client();
        for i in 0..300 {
            let k = format!("{prefix}:{i}");
            match i % 4 {
                0 => c.call(&["SET", &k, &format!("v{i}")]),
                1 => c.call(&["RPUSH", &k, "a", "b", &i.to_string()]),
                2 => c.call(&["HSET", &k, "f", &i.to_string(), "g", "x"]),
                _ => c.call(&["ZADD", &k, &i.to_string(), "m"]),
            }
            .expect("write");
        }
    };
    let shards = [Server::builder(&v).start(), Server::builder(&v).start()];
    let both = Server::builder(&v).start();
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (shard, prefix)) in shards.iter().zip(["a", "b"]).enumerate() {
        fill(shard, prefix);
        fill(&both, prefix);
        shard.cmd(&["SAVE"]);
        std::fs::copy(
            shard.dir().join("dump.rdb"),
            dir.path().join(format!("shard-{i}.rdb")),
        )
        .expect("copy the shard's RDB");
    }
    let rdbs = dir.path().to_str().expect("utf-8").to_owned();
    let state = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();

    let target = Server::builder(&v).start();
    let out = sync_bin(&[
        "sync",
        "--source-rdb",
        &rdbs,
        "--target",
        &url(&target),
        "--state-file",
        &state("standalone.json"),
    ]);
    let err = assert_ok(&out, "sync --source-rdb DIR into a server");
    assert_eq!(data_digest(&target), both.digest(), "{err}");

    let cluster = Cluster::builder(&v).masters(3).start();
    let out = sync_bin(&[
        "sync",
        "--source-rdb",
        &rdbs,
        "--target",
        &format!("redis://{}", cluster.masters()[0].addr()),
        "--state-file",
        &state("cluster.json"),
    ]);
    let err = assert_ok(&out, "sync --source-rdb DIR into a cluster");
    cluster.drop_checkpoints();
    assert_eq!(cluster.xor_digest(), both.digest(), "{err}");
}
