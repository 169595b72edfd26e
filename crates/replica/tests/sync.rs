//! Full sync and command stream against every installed server version, disk-based and
//! diskless: the events reproduce the source exactly, and the offsets equal the master's.

use std::time::{Duration, Instant};

use redis_sync_replica::ReplicaBuilder;
use redis_sync_testkit::{DatasetOptions, Flavor, ServerVersion, compare_data, write_dataset};

use crate::common::{Applier, Load, master_offset, replica_state, run_until, runtime, server};

/// One version: a source with the reference data set, then a disk-based and a diskless sync
/// into the same (flushed) target, each with writes running during the sync.
fn sync_version(v: &ServerVersion) -> Result<String, String> {
    let rt = runtime();
    let source = server(v, &[]);
    let target = server(v, &[]);
    let info = write_dataset(&source, &DatasetOptions::default());
    let mut figures = Vec::new();
    for (round, diskless) in [false, true].into_iter().enumerate() {
        let mode = if diskless { "diskless" } else { "disk" };
        source
            .cmd(&[
                "CONFIG",
                "SET",
                "repl-diskless-sync",
                if diskless { "yes" } else { "no" },
            ])
            .ok();
        source
            .cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
            .ok();
        target.cmd(&["FLUSHALL"]).ok();
        let started = Instant::now();
        let load = Load::start(&source, 300, &format!("load{round}:"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut replica = {
            let _rt = rt.enter();
            ReplicaBuilder::new(source.addr())
                .rdb_restore_payloads(true)
                .start(async move {
                    let _ = stop_rx.await;
                })
        };
        let mut applier = Applier::new(&target);
        run_until(
            &rt,
            &mut replica,
            &mut applier,
            Duration::from_secs(60),
            "the payload",
            |a, _| a.rdb_done,
        );
        let rdb_size = replica.metrics().rdb_size();
        let sent = load.finish();
        let what = format!("{v} {mode}: the offset to reach the master's");
        run_until(
            &rt,
            &mut replica,
            &mut applier,
            Duration::from_secs(30),
            &what,
            |_, m| m.offset() == master_offset(&source),
        );
        let took = started.elapsed();
        compare_data(&source, &target, &info).map_err(|e| format!("{v} {mode}: {e}"))?;
        // The ACK: the source sees this replica online at its own offset.
        let what = format!("{v} {mode}: the source to see our ACK at its offset");
        run_until(
            &rt,
            &mut replica,
            &mut applier,
            Duration::from_secs(10),
            &what,
            |_, m| {
                replica_state(&source)
                    .is_some_and(|(state, off)| state == "online" && off == master_offset(&source))
                    && m.offset() == master_offset(&source)
                    && m.received_offset() == m.offset()
                    && m.lag_bytes() == 0
            },
        );
        // Valkey 9 sends its own format when told our version (REPLCONF version).
        let flavor = applier.header.map(|h| h.flavor);
        if v.flavor() == Flavor::Valkey
            && v.at_least(9, 0)
            && flavor != Some(redis_sync_rdb::Flavor::Valkey)
        {
            return Err(format!("{v} {mode}: payload header {:?}", applier.header));
        }
        let m = replica.metrics();
        if diskless && rdb_size.is_some() {
            return Err(format!("{v}: a diskless payload announced a size"));
        }
        if !diskless && rdb_size != Some(m.rdb_bytes()) {
            return Err(format!(
                "{v}: payload size {rdb_size:?} but {} bytes read",
                m.rdb_bytes()
            ));
        }
        if applier.full_syncs != 1 || !applier.link_lost.is_empty() {
            return Err(format!(
                "{v} {mode}: {} full syncs, links lost: {:?}",
                applier.full_syncs, applier.link_lost
            ));
        }
        figures.push(format!(
            "{mode}: {} keys, {} RDB bytes, {} stream commands ({sent} sent), offset {}, {:?}",
            m.rdb_keys(),
            m.rdb_bytes(),
            applier.commands,
            m.offset(),
            took
        ));
        let _ = stop_tx.send(());
        // The stream ends after the shutdown.
        let end = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), async {
                while replica.next_event().await.is_some() {}
            })
            .await
        });
        if end.is_err() {
            return Err(format!("{v} {mode}: the replica did not stop on shutdown"));
        }
        // Let the source notice the closed link before the next round.
        redis_sync_testkit::poll_until(Duration::from_secs(10), "the replica gone", || {
            replica_state(&source).is_none().then_some(())
        });
    }
    Ok(format!("{v}: {}", figures.join("; ")))
}

fn run_matrix(flavor: Flavor) {
    let versions: Vec<ServerVersion> =
        redis_sync_testkit::versions_where(&format!("{flavor:?}"), |v| v.flavor() == flavor);
    let mut failures = Vec::new();
    for v in &versions {
        match std::panic::catch_unwind(|| sync_version(v)) {
            Ok(Ok(line)) => eprintln!("ok {line}"),
            Ok(Err(e)) => failures.push(e),
            Err(p) => failures.push(format!(
                "{v}: panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} versions failed:\n{}",
        failures.len(),
        versions.len(),
        failures.join("\n")
    );
}

#[test]
fn full_sync_and_stream_every_redis_version() {
    run_matrix(Flavor::Redis);
}

#[test]
fn full_sync_and_stream_every_valkey_version() {
    run_matrix(Flavor::Valkey);
}

/// A source that does not know `PSYNC` (a test peer replaying a real server's RDB): the
/// replica falls back to `SYNC`, decodes the payload and the stream, and says offsets are
/// not available for resumption.
#[test]
fn falls_back_to_sync_when_psync_is_unknown() {
    use std::io::{Read, Write};

    use redis_sync_replica::ReplicaEvent;

    let Some(v) = redis_sync_testkit::versions().into_iter().next() else {
        return;
    };
    let real = redis_sync_testkit::Server::builder(&v).start();
    real.cmd(&["SET", "from-rdb", "1"]).ok();
    let rdb = std::fs::read(real.save()).unwrap();
    let rdb_len = rdb.len() as u64;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the replica closed early");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.contains("PSYNC") {
                s.write_all(b"-ERR unknown command 'PSYNC'\r\n").unwrap();
            } else if text.contains("SYNC") {
                s.write_all(format!("\n\n${}\r\n", rdb.len()).as_bytes())
                    .unwrap();
                s.write_all(&rdb).unwrap();
                s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n")
                    .unwrap();
                break;
            } else if text.contains("INFO") {
                s.write_all(b"$-1\r\n").unwrap();
            } else {
                s.write_all(b"+OK\r\n").unwrap();
            }
        }
        // Hold the link until the replica hangs up.
        let _ = s.read(&mut buf);
    });
    let rt = runtime();
    let _g = rt.enter();
    let mut replica = ReplicaBuilder::new(addr).start(std::future::pending());
    let mut seen = Vec::new();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = replica.next_event().await {
                let ev = ev.expect("no error");
                let done = matches!(ev, ReplicaEvent::Command { .. });
                seen.push(ev);
                if done {
                    break;
                }
            }
        })
        .await
        .expect("the SYNC payload and a command within 10 s");
    });
    assert!(seen.iter().any(|e| matches!(e,
        ReplicaEvent::FullResync { replid, rdb_size: Some(n), .. } if replid == "?" && *n == rdb_len)));
    assert!(seen.iter().any(
        |e| matches!(e, ReplicaEvent::Rdb(redis_sync_rdb::Event::Key(k)) if k.key == "from-rdb")
    ));
    assert!(
        seen.iter()
            .any(|e| matches!(e, ReplicaEvent::RdbDone { .. }))
    );
    assert!(
        matches!(seen.last(), Some(ReplicaEvent::Command { args, db: 0, .. }) if args[0] == "SET")
    );
    assert_eq!(replica.resume_point(), None, "no resumption after SYNC");
    drop(replica);
    peer.join().unwrap();
}

/// A figure, not a check: how fast a full sync of 1,000,000 small keys is decoded (run with
/// `--ignored --nocapture`).
#[test]
#[ignore = "a measurement; run by hand"]
fn throughput_full_sync_one_million_keys() {
    let Some(v) =
        redis_sync_testkit::find("redis-7.0.15").or_else(|| redis_sync_testkit::versions().pop())
    else {
        return;
    };
    let source = server(&v, &[]);
    source.cmd(&["DEBUG", "POPULATE", "1000000"]).ok();
    // The decoder alone on the same data, for comparison.
    let file = std::fs::read(source.save()).unwrap();
    let t = Instant::now();
    let mut d = redis_sync_rdb::Decoder::new();
    let mut n = 0u64;
    for piece in file.chunks(64 * 1024) {
        d.handle_bytes(piece);
        while d.poll_event().unwrap().is_some() {
            n += 1;
        }
    }
    eprintln!(
        "decoder alone: {n} events from {} bytes in {:?}",
        file.len(),
        t.elapsed()
    );
    for diskless in [false, true] {
        source
            .cmd(&[
                "CONFIG",
                "SET",
                "repl-diskless-sync",
                if diskless { "yes" } else { "no" },
            ])
            .ok();
        let rt = runtime();
        let _g = rt.enter();
        let started = Instant::now();
        let mut replica = ReplicaBuilder::new(source.addr()).start(std::future::pending());
        let mut events = 0u64;
        rt.block_on(async {
            while let Some(ev) = replica.next_event().await {
                events += 1;
                if matches!(
                    ev.expect("no error"),
                    redis_sync_replica::ReplicaEvent::RdbDone { .. }
                ) {
                    break;
                }
            }
        });
        let took = started.elapsed();
        let m = replica.metrics();
        eprintln!(
            "{v} {}: {} keys, {} RDB bytes, {events} events in {took:?} ({:.1} MB/s, {:.0} keys/s)",
            if diskless { "diskless" } else { "disk" },
            m.rdb_keys(),
            m.rdb_bytes(),
            m.rdb_bytes() as f64 / took.as_secs_f64() / 1e6,
            m.rdb_keys() as f64 / took.as_secs_f64()
        );
    }
}
