//! Each error class and policy against real servers.

use std::time::Duration;

use redis_sync_sink::{DeadLetterFormat, Error, ErrorClass, ErrorPolicy, RateLimit, Sink};
use redis_sync_testkit::{Server, poll_until, versions, versions_where};

use crate::util::{builder, cmd, rt};

/// WRONGTYPE under `stop`: the error names the key, the command, the server's error and what
/// to do; the acknowledged offset stays before the failed command; later commands do not run.
#[test]
fn wrongtype_stops_with_key_command_and_advice() {
    for v in versions() {
        let server = Server::builder(&v).start();
        server.cmd(&["SET", "str", "x"]).ok();
        rt().block_on(async {
            let sink = builder(&server).connect().await.unwrap();
            sink.write(cmd(&["SET", "a", "1"]), Some(10)).await.unwrap();
            sink.write(cmd(&["RPUSH", "str", "y"]), Some(20))
                .await
                .unwrap();
            // The reply to RPUSH may already be in when `SET b` is written: then that write
            // reports the stop itself; otherwise `flush` does.
            let err = match sink.write(cmd(&["SET", "b", "2"]), Some(30)).await {
                Err(e) => e,
                Ok(()) => sink.flush().await.unwrap_err(),
            };
            let acked = sink.acked_offset();
            let text = err.to_string();
            assert_eq!(err.class(), Some(ErrorClass::Data), "{v}: {text}");
            for part in [
                "`str`",
                "RPUSH str y",
                "WRONGTYPE",
                "conflict mode overwrite",
            ] {
                assert!(text.contains(part), "{v}: {part} not in {text}");
            }
            assert_eq!(*acked.borrow(), 10, "{v}");
            // Every later call reports the same error.
            let again = sink.write(cmd(&["SET", "c", "3"]), None).await.unwrap_err();
            assert_eq!(again.to_string(), text);
            let m = sink.metrics();
            assert_eq!(m.errors_of(ErrorClass::Data), 1);
            assert!(sink.shutdown().await.is_err());
        });
        // `SET b` was pipelined behind the failed command and may have run (the offset says
        // what is safe to resume from); `SET c`, written after the stop, never left.
        assert_eq!(
            server.cmd(&["EXISTS", "c"]).int(),
            0,
            "{v}: nothing after the stop"
        );
    }
}

/// WRONGTYPE and "not an integer" under `skip`: both go to the dead-letter file (RESP and
/// JSON lines), the counters say so, and everything else is applied.
#[test]
fn data_errors_skip_to_dead_letter() {
    for v in versions() {
        let server = Server::builder(&v).start();
        server.cmd(&["SET", "str", "x"]).ok();
        for format in [DeadLetterFormat::Resp, DeadLetterFormat::JsonLines] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dead");
            rt().block_on(async {
                let sink = builder(&server)
                    .policy(ErrorPolicy::Skip)
                    .dead_letter_as(&path, format)
                    .connect()
                    .await
                    .unwrap();
                sink.write(cmd(&["SELECT", "2"]), None).await.unwrap();
                sink.write(cmd(&["SET", "str2", "abc"]), Some(1))
                    .await
                    .unwrap();
                sink.write(cmd(&["INCR", "str2"]), Some(2)).await.unwrap();
                sink.write(cmd(&["SELECT", "0"]), None).await.unwrap();
                sink.write(cmd(&["RPUSH", "str", "y"]), Some(3))
                    .await
                    .unwrap();
                sink.write(cmd(&["SET", "after", "1"]), Some(4))
                    .await
                    .unwrap();
                sink.flush().await.unwrap();
                assert_eq!(*sink.acked_offset().borrow(), 4);
                let m = sink.shutdown().await.unwrap();
                assert_eq!(m.skipped, 2, "{v}: {m:?}");
                assert_eq!(m.errors_of(ErrorClass::Data), 2);
                assert_eq!(m.commands_acked, 2);
            });
            let dead = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&dead);
            match format {
                DeadLetterFormat::Resp => {
                    assert!(text.contains("redis-sync dead-letter"), "{text}");
                    assert!(text.contains("not an integer"), "{text}");
                    assert!(
                        text.contains("*2\r\n$4\r\nINCR\r\n$4\r\nstr2\r\n"),
                        "{text}"
                    );
                    assert!(text.contains("$6\r\nSELECT\r\n$1\r\n2\r\n"), "{text}");
                    assert!(text.contains("*3\r\n$5\r\nRPUSH\r\n$3\r\nstr\r\n$1\r\ny\r\n"));
                }
                _ => {
                    let lines: Vec<serde_json::Value> = text
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    assert_eq!(lines.len(), 2, "{text}");
                    assert_eq!(lines[0]["db"], 2);
                    assert_eq!(lines[0]["offset"], 2);
                    assert_eq!(lines[0]["command"], serde_json::json!(["INCR", "str2"]));
                    assert_eq!(lines[1]["class"], "data");
                    assert!(lines[1]["error"].as_str().unwrap().starts_with("WRONGTYPE"));
                }
            }
            assert_eq!(server.cmd(&["GET", "after"]).bulk(), Some(b"1".to_vec()));
            server.cmd(&["DEL", "after"]).ok();
        }
    }
}

/// OOM with a tiny maxmemory and noeviction: `stop` says to raise maxmemory; `skip`
/// dead-letters every refused command and counts them as capacity errors.
#[test]
fn oom_stops_or_skips() {
    for v in versions() {
        let small = || {
            Server::builder(&v)
                .arg("--maxmemory")
                .arg("2mb")
                .arg("--maxmemory-policy")
                .arg("noeviction")
                .start()
        };
        let server = small();
        let big = "x".repeat(64 * 1024);
        rt().block_on(async {
            let sink = builder(&server).connect().await.unwrap();
            for i in 0..200 {
                let k = format!("k{i}");
                if sink
                    .write(cmd(&["SET", &k, &big]), Some(i + 1))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let err = sink.flush().await.unwrap_err();
            assert_eq!(err.class(), Some(ErrorClass::Capacity), "{v}: {err}");
            let text = err.to_string();
            assert!(text.contains("OOM") && text.contains("maxmemory"), "{text}");
            assert!(text.contains("noeviction"), "{text}");
        });
        // A fresh server: the stopped sink's last pipelined commands may still land on the
        // first one.
        let server = small();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.resp");
        rt().block_on(async {
            let sink = builder(&server)
                .policy(ErrorPolicy::Skip)
                .dead_letter(&path)
                .connect()
                .await
                .unwrap();
            for i in 0..200 {
                let k = format!("k{i}");
                sink.write(cmd(&["SET", &k, &big]), Some(i + 1))
                    .await
                    .unwrap();
            }
            sink.flush().await.unwrap();
            assert_eq!(*sink.acked_offset().borrow(), 200);
            let m = sink.shutdown().await.unwrap();
            let stored = u64::try_from(server.dbsize()).unwrap();
            assert!(
                m.skipped > 0 && m.skipped + stored == 200,
                "{v}: {m:?}, {stored} stored"
            );
            assert_eq!(m.errors_of(ErrorClass::Capacity), m.skipped);
        });
        let dead = std::fs::read(&path).unwrap();
        assert!(String::from_utf8_lossy(&dead).contains("\"class\":\"capacity\""));
    }
}

/// READONLY from a replica target is fatal, whatever the policy.
#[test]
fn readonly_replica_is_fatal() {
    for v in versions() {
        let master = Server::builder(&v).start();
        let replica = Server::builder(&v).replica_of(&master).start();
        replica.wait_replica_synced();
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let sink = builder(&replica)
                .policy(ErrorPolicy::Skip)
                .dead_letter(dir.path().join("dead"))
                .connect()
                .await
                .unwrap();
            sink.write(cmd(&["SET", "a", "1"]), None).await.unwrap();
            let err = sink.flush().await.unwrap_err();
            assert_eq!(err.class(), Some(ErrorClass::Fatal), "{v}: {err}");
            assert!(err.to_string().contains("replica"), "{err}");
            assert_eq!(sink.metrics().skipped, 0);
        });
    }
}

/// NOPERM (an ACL user without access to some keys) is fatal, whatever the policy.
#[test]
fn noperm_is_fatal() {
    for v in versions_where("ACL users (6.0+)", |v| v.at_least(6, 0)) {
        let server = Server::builder(&v).start();
        server
            .cmd(&[
                "ACL",
                "SETUSER",
                "limited",
                "on",
                ">pw",
                "~allowed:*",
                "+@all",
            ])
            .ok();
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let sink = Sink::builder()
                .standalone(server.addr())
                .user("limited", "pw")
                .policy(ErrorPolicy::Skip)
                .dead_letter(dir.path().join("dead"))
                .connect()
                .await;
            // INFO needs no key permission: the connect succeeds on 6.0+.
            let sink = sink.unwrap();
            sink.write(cmd(&["SET", "allowed:1", "x"]), Some(1))
                .await
                .unwrap();
            sink.write(cmd(&["SET", "other:1", "x"]), Some(2))
                .await
                .unwrap();
            let err = sink.flush().await.unwrap_err();
            assert_eq!(err.class(), Some(ErrorClass::Fatal), "{v}: {err}");
            assert!(err.to_string().contains("NOPERM"), "{err}");
            assert!(err.to_string().contains("ACL SETUSER"), "{err}");
            assert_eq!(*sink.acked_offset().borrow(), 1);
        });
    }
}

/// NOAUTH at connect time (the password was not given) is an `Auth` error; see also
/// `standalone::auth_password_and_user`.
#[test]
fn noauth_is_fatal() {
    let v = &versions()[0];
    let server = Server::builder(v).password("pw").start();
    rt().block_on(async {
        let err = Sink::builder()
            .standalone(server.addr())
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.class(), Some(ErrorClass::Fatal));
        assert!(matches!(err, Error::Auth { .. }));
    });
}

/// BUSY (a script running past the busy threshold) is retried after a back-off: the writes
/// land once the script is killed, nothing is skipped, and the adaptive limiter backs off.
/// (LOADING: see `loading_is_retried`.)
#[test]
fn busy_is_retried() {
    for v in versions() {
        let server = Server::builder(&v)
            .arg("--lua-time-limit")
            .arg("10")
            .start();
        rt().block_on(async {
            let sink = builder(&server)
                .rate(RateLimit::none().adaptive(Duration::from_secs(5)))
                .connect()
                .await
                .unwrap();
            let mut blocker = server.client();
            blocker.send(&["EVAL", "while true do end", "0"]).unwrap();
            // Wait until the script runs past the limit and other clients get BUSY.
            poll_until(Duration::from_secs(10), "BUSY replies", || {
                server
                    .client()
                    .call(&["PING"])
                    .ok()?
                    .is_error()
                    .then_some(())
            });
            for i in 0..100 {
                let k = format!("k{i}");
                sink.write(cmd(&["SET", &k, "v"]), Some(i + 1))
                    .await
                    .unwrap();
            }
            let m = poll_until(Duration::from_secs(10), "a BUSY reply to the sink", || {
                let m = sink.metrics();
                (m.errors_of(ErrorClass::Retryable) > 0).then_some(m)
            });
            assert_eq!(m.commands_acked, 0);
            server.cmd(&["SCRIPT", "KILL"]);
            sink.flush().await.unwrap();
            assert_eq!(*sink.acked_offset().borrow(), 100);
            let m = sink.shutdown().await.unwrap();
            assert_eq!((m.commands_acked, m.skipped), (100, 0), "{v}: {m:?}");
            assert!(m.resent >= 1);
        });
        assert_eq!(server.dbsize(), 100);
    }
}

/// LOADING: `DEBUG RELOAD` of 2 million keys makes the server answer other clients with
/// `-LOADING` while it reloads; the sink retries and every write lands in order. Whether the
/// sink actually hit the loading window is timing-dependent, so the counter is reported, not
/// asserted; the data must be right either way.
#[test]
fn loading_is_retried() {
    let v = redis_testkit_newest();
    let server = Server::builder(&v).start();
    server.cmd(&["DEBUG", "POPULATE", "2000000"]).ok();
    rt().block_on(async {
        let sink = builder(&server).connect().await.unwrap();
        let reloader = {
            let mut c = server.client();
            std::thread::spawn(move || c.call(&["DEBUG", "RELOAD"]).unwrap())
        };
        poll_until(Duration::from_secs(30), "the reload to start", || {
            let r = server.client().call(&["PING"]).ok()?;
            (r.is_error() || reloader.is_finished()).then_some(())
        });
        for i in 0..5000 {
            let s = i.to_string();
            sink.write(cmd(&["RPUSH", "seq", &s]), Some(i + 1))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        reloader.join().unwrap().ok();
        let m = sink.shutdown().await.unwrap();
        eprintln!(
            "{v}: LOADING replies seen by the sink: {}",
            m.errors_of(ErrorClass::Retryable)
        );
        assert_eq!((m.commands_acked, m.skipped), (5000, 0));
    });
    let got: Vec<u64> = server
        .cmd(&["LRANGE", "seq", "0", "-1"])
        .array()
        .iter()
        .map(|r| r.text().parse().unwrap())
        .collect();
    assert_eq!(got, (0..5000).collect::<Vec<u64>>());
}

fn redis_testkit_newest() -> redis_sync_testkit::ServerVersion {
    redis_sync_testkit::require(redis_sync_testkit::Flavor::Redis)
        .unwrap_or_else(|| versions()[0].clone())
}
