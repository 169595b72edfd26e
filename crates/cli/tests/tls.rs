//! TLS to the target: a plain source syncs into a target that listens for TLS only (so every
//! connection the binary makes to it, prechecks, the sink, the checkpoint and verify, must be
//! TLS), with non-idempotent writes during the stream, ending equal by `DEBUG DIGEST`; and
//! TLS to a plain port, an unreadable CA file, a name the certificate does not carry and a
//! forgotten `rediss://` fail fast, naming the target and the fix.

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::run_bounded;
use redis_sync_testkit::{
    DatasetOptions, SERVERS_HINT, Server, ServerVersion, TestCerts, assert_same_data, data_digest,
    find, in_ci, versions_where, write_dataset,
};

fn redis_sync(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(args)
            .env("RUST_LOG", "info"),
    )
}

/// A TLS-only server (`--port 0 --tls-port N`) of the first installed version built with
/// TLS, Redis 7.0.15 first. `None` outside CI when none is; under `CI=true` that fails with
/// how to install servers.
fn tls_target(certs: &TestCerts) -> Option<Server> {
    let mut candidates: Vec<ServerVersion> =
        versions_where("Redis 7.0+ or Valkey (built with TLS)", |v| {
            v.at_least(7, 0)
        });
    candidates.reverse();
    if let Some(v) = find("redis-7.0.15") {
        candidates.insert(0, v);
    }
    for v in &candidates {
        match Server::builder(v).tls(certs).try_start() {
            Ok(s) => return Some(s),
            Err(e) => eprintln!("{v} cannot listen for TLS: {e}"),
        }
    }
    if in_ci() {
        panic!("no installed server is built with TLS: {SERVERS_HINT}");
    }
    eprintln!("skipped: no installed server is built with TLS; {SERVERS_HINT}");
    None
}

/// A plain source of `v`, ready for a diskless full sync without the 5 s delay.
fn plain_source(v: &ServerVersion) -> Server {
    let s = Server::builder(v).start();
    s.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
        .ok();
    s
}

#[test]
fn a_plain_source_syncs_into_a_tls_only_target_with_writes_during_the_stream() {
    let Some(certs) = TestCerts::generate() else {
        return;
    };
    let Some(dst) = tls_target(&certs) else {
        return;
    };
    // The same version on both sides, so DEBUG DIGEST compares.
    let src = plain_source(dst.version());
    let info = write_dataset(&src, &DatasetOptions::default());
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let ca = certs.ca();
    let s_url = format!("redis://{}", src.addr());
    let t_url = format!("rediss://{}", dst.addr());
    let args = [
        "sync",
        "--source",
        &s_url,
        "--target",
        &t_url,
        "--target-tls-ca",
        ca.to_str().expect("UTF-8 temp path"),
        "--until-caught-up",
        "--state-file",
        state_file.to_str().expect("UTF-8 temp path"),
        "--status-interval",
        "1",
    ];

    // Non-idempotent writes (INCR, RPUSH, APPEND) all through the run: one applied twice, or
    // lost, shows in the digest.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut c = src.client();
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let r = match n % 3 {
                    0 => c.call(&["INCR", "tls:counter"]),
                    1 => c.call(&["RPUSH", "tls:list", &n.to_string()]),
                    _ => c.call(&["APPEND", "tls:log", &format!("{n},")]),
                };
                r.expect("writer command").ok();
                n += 1;
                if n.is_multiple_of(20) {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            n
        })
    };
    thread::sleep(Duration::from_millis(200));
    let first = redis_sync(&args);
    let err = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(
        first.status.success(),
        "sync into the TLS target failed:\n{err}"
    );
    assert!(err.contains("full sync from"), "{err}");
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    assert!(written > 100, "the writer wrote only {written} commands");

    // The writes after the first run's end: a second run resumes (over TLS, from the
    // checkpoint it reads back from the target) and catches up.
    let second = redis_sync(&args);
    let err2 = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(second.status.success(), "second sync failed:\n{err2}");
    assert!(
        err2.contains("partial resync") && !err2.contains("full sync from"),
        "a restart should resume without a full copy:\n{err2}"
    );
    // The writer is done and the second run caught up with everything it wrote.
    assert_eq!(
        src.cmd(&["GET", "tls:counter"]).text(),
        dst.cmd(&["GET", "tls:counter"]).text()
    );
    // DEBUG DIGEST without the checkpoint key, and the rest of the oracle.
    assert_eq!(
        data_digest(&src),
        data_digest(&dst),
        "the TLS target differs"
    );
    assert_same_data(&src, &dst, &info);

    // verify connects to the target over TLS as well.
    let out = redis_sync(&[
        "verify",
        "--recheck-after",
        "0",
        "--source",
        &s_url,
        "--target",
        &t_url,
        "--target-tls-ca",
        ca.to_str().expect("UTF-8 temp path"),
    ]);
    assert!(
        out.status.success(),
        "verify over TLS: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "ok {}: TLS target equal after {written} writes during the sync",
        dst.version()
    );
}

/// Runs `sync` with `target` and `extra`, which must fail within `within`, and returns its
/// stderr.
fn failing_sync(source: &Server, target: &str, extra: &[&str], within: Duration) -> String {
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("state.json");
    let s_url = format!("redis://{}", source.addr());
    let mut args = vec![
        "sync",
        "--source",
        &s_url,
        "--target",
        target,
        "--until-caught-up",
        "--state-file",
        state_file.to_str().expect("UTF-8 temp path"),
    ];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let out = redis_sync(&args);
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "sync {extra:?} should fail:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        took < within,
        "took {took:?} (more than {within:?}) to fail:\n{err}"
    );
    eprintln!(
        "sync {extra:?} to {target} failed in {took:.1?}: {}",
        err.trim_end()
    );
    err
}

#[test]
fn tls_mistakes_fail_fast_naming_the_target_and_the_fix() {
    let Some(certs) = TestCerts::generate() else {
        return;
    };
    let Some(tls) = tls_target(&certs) else {
        return;
    };
    let src = plain_source(tls.version());
    let plain = Server::builder(tls.version()).start();
    let ca = certs.ca();
    let ca = ca.to_str().expect("UTF-8 temp path");
    let limit = Duration::from_secs(60);

    // TLS to a plain port.
    let target = format!("rediss://{}", plain.addr());
    let err = failing_sync(&src, &target, &["--target-tls-ca", ca], limit);
    assert!(err.contains(&plain.addr()), "names the target: {err}");
    assert!(
        err.contains("plain") && err.contains("redis://"),
        "says it is a plain port and what to use: {err}"
    );

    // An unreadable CA file.
    let target = format!("rediss://{}", tls.addr());
    let err = failing_sync(
        &src,
        &target,
        &["--target-tls-ca", "/nonexistent/ca.pem"],
        limit,
    );
    assert!(err.contains(&tls.addr()), "names the target: {err}");
    assert!(
        err.contains("/nonexistent/ca.pem") && err.contains("--target-tls-ca"),
        "names the file and the flag: {err}"
    );

    // Neither a CA nor --target-tls-insecure.
    let err = failing_sync(&src, &target, &[], limit);
    assert!(
        err.contains("CA file") && err.contains("--target-tls-insecure"),
        "{err}"
    );

    // A name the certificate does not carry.
    let err = failing_sync(
        &src,
        &target,
        &[
            "--target-tls-ca",
            ca,
            "--target-tls-server-name",
            "wrong.example",
        ],
        limit,
    );
    assert!(err.contains(&tls.addr()), "names the target: {err}");
    assert!(
        err.contains("server name") && err.contains("--target-tls-server-name"),
        "says the name is wrong and where to set it: {err}"
    );

    // TLS options with a redis:// target: a forgotten rediss://.
    let target = format!("redis://{}", tls.addr());
    let err = failing_sync(&src, &target, &["--target-tls-ca", ca], limit);
    assert!(err.contains("rediss://"), "{err}");

    // Plain text to the TLS-only port.
    let err = failing_sync(&src, &target, &[], limit);
    assert!(err.contains(&tls.addr()), "names the target: {err}");
    eprintln!(
        "plain text to a TLS port: {}",
        err.lines().last().unwrap_or("")
    );
}
