//! The standalone writer: order, windows, SELECT, acknowledgement, AUTH — on every version.

use std::time::Duration;

use redis_sync_sink::{Error, Sink};
use redis_sync_testkit::{Reply, Server, versions};

use crate::util::{builder, cmd, rt};

/// 20,000 RPUSHes of sequence numbers over two dbs, with a tiny and a large window: every
/// list holds exactly its numbers in order (nothing lost, duplicated or reordered), the
/// acknowledged offset is the last one, and the counters add up.
#[test]
fn pipeline_keeps_order_over_dbs_and_windows() {
    for v in versions() {
        let server = Server::builder(&v).start();
        for (window, bytes) in [(8, 256), (4096, 16 << 20)] {
            server.cmd(&["FLUSHALL"]).ok();
            rt().block_on(async {
                let sink = builder(&server)
                    .window(window, bytes)
                    .connect()
                    .await
                    .unwrap();
                let acked = sink.acked_offset();
                let n = 20_000u64;
                for i in 0..n {
                    if i % 1000 == 0 {
                        let db = if (i / 1000) % 2 == 0 { "0" } else { "1" };
                        sink.write(cmd(&["SELECT", db]), None).await.unwrap();
                    }
                    let s = i.to_string();
                    sink.write(cmd(&["RPUSH", "seq", &s]), Some(i + 1))
                        .await
                        .unwrap();
                }
                sink.flush().await.unwrap();
                assert_eq!(*acked.borrow(), n, "{v}: acked offset");
                let m = sink.shutdown().await.unwrap();
                assert_eq!((m.commands_sent, m.commands_acked), (n, n), "{v}: {m:?}");
                assert_eq!(m.errors, [0; 5]);
            });
            let mut c = server.client();
            for db in ["0", "1"] {
                c.call(&["SELECT", db]).unwrap().ok();
                let got: Vec<u64> = c
                    .call(&["LRANGE", "seq", "0", "-1"])
                    .unwrap()
                    .array()
                    .iter()
                    .map(|r| r.text().parse().unwrap())
                    .collect();
                let want: Vec<u64> = (0..20_000u64)
                    .filter(|i| ((i / 1000) % 2 == 0) == (db == "0"))
                    .collect();
                assert_eq!(got, want, "{v} window {window}: db {db}");
            }
        }
    }
}

/// AUTH with a password, with an ACL user (6.0+), and refusal without credentials.
#[test]
fn auth_password_and_user() {
    for v in versions() {
        let server = Server::builder(&v).password("s3cret").start();
        rt().block_on(async {
            let err = Sink::builder()
                .standalone(server.addr())
                .connect()
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Auth { .. }), "{v}: {err}");
            assert!(err.to_string().contains("NOAUTH"), "{v}: {err}");
            let err = Sink::builder()
                .standalone(server.addr())
                .password("wrong")
                .connect()
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Auth { .. }), "{v}: {err}");

            let sink = builder(&server).connect().await.unwrap();
            sink.write(cmd(&["SET", "a", "1"]), Some(1)).await.unwrap();
            sink.shutdown().await.unwrap();
        });
        assert_eq!(server.cmd(&["GET", "a"]).bulk(), Some(b"1".to_vec()));
        if v.at_least(6, 0) {
            server
                .cmd(&["ACL", "SETUSER", "writer", "on", ">pw2", "~*", "+@all"])
                .ok();
            rt().block_on(async {
                let sink = Sink::builder()
                    .standalone(server.addr())
                    .user("writer", "pw2")
                    .connect()
                    .await
                    .unwrap();
                sink.write(cmd(&["SET", "b", "2"]), None).await.unwrap();
                sink.shutdown().await.unwrap();
            });
            assert_eq!(server.cmd(&["GET", "b"]).bulk(), Some(b"2".to_vec()));
        }
    }
}

/// `query` returns replies in order with the writes; `flush` waits for everything before it.
#[test]
fn query_sees_earlier_writes() {
    let v = &versions()[0];
    let server = Server::builder(v).start();
    rt().block_on(async {
        let sink = builder(&server).connect().await.unwrap();
        for i in 0..1000 {
            sink.write(cmd(&["INCR", "n"]), Some(i + 1)).await.unwrap();
        }
        let got = sink.query(0, cmd(&["GET", "n"])).await.unwrap();
        assert_eq!(got.as_bytes().map(|b| b.to_vec()), Some(b"1000".to_vec()));
        let err = sink.query(0, cmd(&["NOSUCHCOMMAND"])).await.unwrap();
        assert!(err.is_error());
        sink.shutdown().await.unwrap();
    });
    // The target's RDB version was learnt with a probe key that left nothing behind.
    assert_eq!(server.dbsize(), 1);
    let _ = Duration::ZERO;
    let _ = Reply::Int(0);
}

/// `write_many` keeps order like `write`, and a rate limit of 2,000 commands/s spreads 1,000
/// commands over about half a second (the limiter's burst is 1/20 s).
#[test]
fn write_many_and_rate_limit() {
    let v = &versions()[0];
    let server = Server::builder(v).start();
    rt().block_on(async {
        let sink = builder(&server)
            .rate(redis_sync_sink::RateLimit::none().ops_per_sec(2000.0))
            .connect()
            .await
            .unwrap();
        let start = std::time::Instant::now();
        for chunk in 0..10u64 {
            let cmds = (0..100)
                .map(|i| cmd(&["RPUSH", "l", &(chunk * 100 + i).to_string()]))
                .collect();
            sink.write_many(cmds, Some((chunk + 1) * 100))
                .await
                .unwrap();
        }
        sink.flush().await.unwrap();
        let took = start.elapsed();
        assert_eq!(*sink.acked_offset().borrow(), 1000);
        assert!(
            took >= Duration::from_millis(400),
            "1000 commands at 2000/s took {took:?}"
        );
        sink.shutdown().await.unwrap();
    });
    let got: Vec<String> = server
        .cmd(&["LRANGE", "l", "0", "-1"])
        .array()
        .iter()
        .map(Reply::text)
        .collect();
    let want: Vec<String> = (0..1000).map(|i: u32| i.to_string()).collect();
    assert_eq!(got, want);
}
