//! Bad input gives a clear error quickly, never a hang: a peer that sends garbage, one that
//! says nothing, a wrong password, a closed port, TLS to a plain port.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use redis_sync_replica::{Error, ReplicaBuilder, TlsConfig};
use redis_sync_testkit::{Server, versions};

use crate::common::runtime;

/// Runs a replica until its first error; panics if it takes longer than `limit`.
fn first_error(builder: ReplicaBuilder, limit: Duration) -> Error {
    let rt = runtime();
    let started = Instant::now();
    let _g = rt.enter();
    let mut replica = builder.start(std::future::pending());
    let r = rt.block_on(async {
        tokio::time::timeout(limit, async {
            loop {
                match replica.next_event().await {
                    Some(Err(e)) => return Some(e),
                    Some(Ok(_)) => {}
                    None => return None,
                }
            }
        })
        .await
    });
    match r {
        Ok(Some(e)) => {
            eprintln!("after {:?}: {e}", started.elapsed());
            e
        }
        Ok(None) => panic!("the replica stopped without an error"),
        Err(_) => panic!("no error within {limit:?}: the replica hangs"),
    }
}

/// A test peer (not a Redis mock): accepts one connection, writes `reply` to everything.
fn peer(reply: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            if s.read(&mut buf).is_ok_and(|n| n > 0) {
                let _ = s.write_all(reply);
            }
            // Keep the socket open a little so the client reads the reply, not a reset.
            let _ = s.read(&mut buf);
        }
    });
    (addr, h)
}

#[test]
fn garbage_reply_is_a_protocol_error() {
    let (addr, h) = peer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let e = first_error(ReplicaBuilder::new(addr), Duration::from_secs(10));
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("HTTP/1.1 400"), "{e}");
    h.join().unwrap();
}

#[test]
fn binary_garbage_without_newline_is_a_protocol_error() {
    static JUNK: [u8; 70_000] = [0xAB; 70_000];
    let (addr, h) = peer(&JUNK);
    let e = first_error(ReplicaBuilder::new(addr), Duration::from_secs(10));
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    h.join().unwrap();
}

#[test]
fn silent_peer_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let e = first_error(
        ReplicaBuilder::new(addr).handshake_timeout(Duration::from_millis(500)),
        Duration::from_secs(10),
    );
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("PING"), "{e}");
    drop(l);
}

#[test]
fn garbage_payload_is_a_protocol_error() {
    // A peer that plays the handshake, then sends something that is not a payload.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Answer each command line-count-wise until PSYNC.
        while !String::from_utf8_lossy(&got).contains("PSYNC") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "client closed early");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            for cmd in text.split('*').filter(|c| !c.is_empty()) {
                if cmd.contains("PSYNC") {
                    s.write_all(b"+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 0\r\n\n\nnot a payload\r\n").unwrap();
                } else if cmd.contains("INFO") {
                    s.write_all(b"$-1\r\n").unwrap();
                } else {
                    s.write_all(b"+OK\r\n").unwrap();
                }
            }
        }
        let _ = s.read(&mut buf);
    });
    let e = first_error(ReplicaBuilder::new(addr), Duration::from_secs(10));
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("not a payload"), "{e}");
    h.join().unwrap();
}

#[test]
fn closed_port_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = first_error(
        ReplicaBuilder::new(format!("127.0.0.1:{port}")),
        Duration::from_secs(10),
    );
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn wrong_or_missing_password() {
    let Some(v) = versions().pop() else { return };
    let s = Server::builder(&v).password("right-pw").start();
    let e = first_error(
        ReplicaBuilder::new(s.addr()).password(None, "wrong-pw"),
        Duration::from_secs(10),
    );
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("check the password"), "{e}");
    let e = first_error(ReplicaBuilder::new(s.addr()), Duration::from_secs(10));
    assert!(matches!(e, Error::AuthRequired { .. }), "{e}");
}

#[test]
fn acl_user_without_replication_rights() {
    let Some(v) = versions().into_iter().find(|v| v.at_least(6, 0)) else {
        return;
    };
    let s = Server::builder(&v).start();
    s.cmd(&[
        "ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-psync", "-sync",
    ])
    .ok();
    let e = first_error(
        ReplicaBuilder::new(s.addr()).password(Some("app"), "pw"),
        Duration::from_secs(10),
    );
    assert!(matches!(e, Error::NoPermission { .. }), "{e}");
    assert!(e.to_string().contains("PSYNC"), "{e}");
}

#[test]
fn tls_to_a_plain_port_fails_clearly() {
    let Some(v) = versions().pop() else { return };
    let s = Server::builder(&v).start();
    let e = first_error(
        ReplicaBuilder::new(s.addr())
            .tls(TlsConfig {
                insecure: true,
                ..TlsConfig::default()
            })
            .connect_timeout(Duration::from_secs(3)),
        Duration::from_secs(10),
    );
    assert!(
        matches!(
            e,
            Error::Tls { .. } | Error::Timeout { .. } | Error::Closed { .. }
        ),
        "{e}"
    );
}

#[test]
fn tls_without_ca_is_a_config_error() {
    let e = first_error(
        ReplicaBuilder::new("127.0.0.1:1").tls(TlsConfig::default()),
        Duration::from_secs(5),
    );
    assert!(matches!(e, Error::TlsConfig(_)), "{e}");
}

/// A password given to a source that has none is not an error (Redis 5 and 6+ word it
/// differently).
#[test]
fn password_for_a_source_without_one_is_tolerated() {
    let all = versions();
    for v in [all.first(), all.last()].into_iter().flatten() {
        let s = crate::common::server(v, &[]);
        let rt = runtime();
        let _g = rt.enter();
        let mut replica = ReplicaBuilder::new(s.addr())
            .password(None, "unneeded")
            .start(std::future::pending());
        let first = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), replica.next_event()).await
            })
            .expect("an event within 10 s")
            .expect("an item");
        assert!(
            matches!(
                first,
                Ok(redis_sync_replica::ReplicaEvent::Connected { .. })
            ),
            "{v}: {first:?}"
        );
    }
}

/// A source that refuses both PSYNC and SYNC (as managed services do): a clear, final error.
#[test]
fn no_psync_no_sync_is_unsupported() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = s.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply: &[u8] = if text.contains("PSYNC") {
                b"-ERR unknown command 'psync', with args beginning with: '?' '-1'\r\n"
            } else if text.contains("SYNC") {
                b"-ERR unknown command 'sync', with args beginning with: \r\n"
            } else if text.contains("INFO") {
                b"$-1\r\n"
            } else {
                b"+OK\r\n"
            };
            s.write_all(reply).unwrap();
        }
    });
    let e = first_error(ReplicaBuilder::new(addr), Duration::from_secs(10));
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("does not allow replication"), "{e}");
    h.join().unwrap();
}

/// A source whose every full sync fails (its BGSAVE fails): retried a bounded number of
/// times, then a clear error naming the last failure.
#[test]
fn failing_full_syncs_give_up() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        for _ in 0..3 {
            let Ok((mut s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply: &[u8] = if text.contains("PSYNC") {
                    b"+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 7\r\n\n-ERR BGSAVE failed\r\n"
                } else if text.contains("INFO") {
                    b"$-1\r\n"
                } else {
                    b"+OK\r\n"
                };
                if s.write_all(reply).is_err() {
                    break;
                }
            }
        }
    });
    let policy = redis_sync_replica::Reconnect {
        max_attempts: Some(2),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    };
    let e = first_error(
        ReplicaBuilder::new(addr).reconnect(policy),
        Duration::from_secs(10),
    );
    assert!(matches!(e, Error::GaveUp { attempts: 2, .. }), "{e}");
    assert!(e.to_string().contains("BGSAVE failed"), "{e}");
    h.join().unwrap();
}

/// A source still loading its data set answers `-LOADING` to PING (a test peer replaying a
/// real server's RDB): the replica retries with backoff, then syncs.
#[test]
fn loading_source_is_waited_for() {
    let Some(v) = versions().into_iter().next() else {
        return;
    };
    let real = Server::builder(&v).start();
    real.cmd(&["SET", "loaded", "1"]).ok();
    let rdb = std::fs::read(real.save()).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let mut pings = 0;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.contains("PING") {
                pings += 1;
                let r: &[u8] = if pings <= 2 {
                    b"-LOADING Redis is loading the dataset in memory\r\n"
                } else {
                    b"+PONG\r\n"
                };
                s.write_all(r).unwrap();
            } else if text.contains("PSYNC") {
                s.write_all(b"+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 100\r\n")
                    .unwrap();
                s.write_all(format!("${}\r\n", rdb.len()).as_bytes())
                    .unwrap();
                s.write_all(&rdb).unwrap();
            } else if text.contains("INFO") {
                s.write_all(b"$-1\r\n").unwrap();
            } else {
                s.write_all(b"+OK\r\n").unwrap();
            }
        }
        pings
    });
    let rt = runtime();
    let _g = rt.enter();
    let mut replica = ReplicaBuilder::new(addr).start(std::future::pending());
    let done = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = replica.next_event().await {
                if let redis_sync_replica::ReplicaEvent::RdbDone { offset, .. } =
                    ev.expect("no error")
                {
                    return Some(offset);
                }
            }
            None
        })
        .await
    });
    assert_eq!(done, Ok(Some(100)));
    drop(replica);
    assert_eq!(h.join().unwrap(), 3, "two -LOADING replies, then PONG");
}
