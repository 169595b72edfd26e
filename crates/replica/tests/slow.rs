//! Never the slow one: with `client-output-buffer-limit replica 1mb 1mb 0` on the source, a
//! write load and a consumer made slow on purpose, the link holds (the reader spools).

use std::time::{Duration, Instant};

use redis_sync_replica::{ReplicaBuilder, SpoolConfig};
use redis_sync_testkit::{ServerVersion, versions};

use crate::common::{
    Applier, master_offset, replica_state, run_until, run_until_payload, runtime, server,
};

fn slow_consumer(v: &ServerVersion) {
    let rt = runtime();
    let source = server(v, &[]);
    // Set at run time: 5.0 cannot take the quoted value on its command line.
    let limit = source.cmd(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "replica 1mb 1mb 0",
    ]);
    if limit.is_error() {
        source
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "slave 1mb 1mb 0",
            ])
            .ok();
    }
    let target = server(v, &[]);
    let spool_dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(source.addr())
            .spool(SpoolConfig {
                memory_limit: 256 * 1024,
                dir: Some(spool_dir.path().to_path_buf()),
                file_limit: 1 << 30,
            })
            .event_capacity(64)
            .start(async move {
                let _ = stop_rx.await;
            })
    };
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    // After a diskless payload the source holds the stream until it has seen an ACK after
    // reaping its RDB child (a cron tick); a flood in that window is buffered whatever the
    // replica does. Wait for a marker write to come through: the stream is flowing.
    source.cmd(&["SET", "marker", "1"]).ok();
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(10),
        "the marker",
        |a, _| a.commands >= 1,
    );

    // 24 MB of writes, as fast as the source takes them.
    let mut c = source.client();
    let writer = std::thread::spawn(move || {
        let value = "x".repeat(2048);
        for batch in 0..60 {
            for i in 0..200 {
                c.send(&["SET", &format!("big:{}", batch * 200 + i), &value])
                    .unwrap();
            }
            for _ in 0..200 {
                assert!(!c.read_reply().unwrap().is_error());
            }
        }
    });
    // The consumer: one event per millisecond while the writer runs.
    let metrics = replica.metrics();
    let mut max_spooled = 0;
    let started = Instant::now();
    while !writer.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{v}: the writer did not finish"
        );
        let ev = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), replica.next_event()).await
        });
        if let Ok(Some(ev)) = ev {
            a.apply(&ev.unwrap());
        }
        max_spooled = max_spooled.max(metrics.spooled_bytes());
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.join().unwrap();
    let slow_phase = started.elapsed();
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(60),
        "the master's offset",
        |_, m| m.offset() == master_offset(&source),
    );
    assert!(
        a.link_lost.is_empty(),
        "{v}: the link was lost: {:?}\n{}",
        a.link_lost,
        source.log()
    );
    assert_eq!(metrics.link_losses(), 0, "{v}");
    assert_eq!(a.full_syncs, 1, "{v}");
    assert!(
        replica_state(&source).is_some(),
        "{v}: the source lost its replica"
    );
    let log = source.log();
    assert!(
        !log.contains("output buffer") && !log.to_lowercase().contains("closing"),
        "{v}: the source closed the link:\n{log}"
    );
    assert!(
        max_spooled > 0,
        "{v}: the consumer was not slow enough to spool"
    );
    assert_eq!(source.digest(), target.digest(), "{v}");
    eprintln!(
        "ok {v}: slow phase {slow_phase:?}, up to {max_spooled} bytes spooled, {} commands, offset {}",
        a.commands,
        metrics.offset()
    );
    let _ = stop_tx.send(());
}

#[test]
fn slow_consumer_keeps_the_link() {
    let all = versions();
    // The oldest and newest of each flavor: the spool is the same code for every version.
    let mut picked: Vec<ServerVersion> = Vec::new();
    for v in &all {
        let same: Vec<_> = all.iter().filter(|w| w.flavor() == v.flavor()).collect();
        if (same.first() == Some(&v) || same.last() == Some(&v)) && !picked.contains(v) {
            picked.push(v.clone());
        }
    }
    for v in &picked {
        slow_consumer(v);
    }
}

/// A consumer too slow for the spool's limit: a clear error after the queued data, not a
/// silent stall or an unbounded file.
#[test]
fn full_spool_is_a_clear_error() {
    let Some(v) = versions().pop() else { return };
    let rt = runtime();
    let source = server(&v, &[]);
    let target = server(&v, &[]);
    let spool_dir = tempfile::tempdir().unwrap();
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(source.addr())
            .spool(SpoolConfig {
                memory_limit: 64 * 1024,
                dir: Some(spool_dir.path().to_path_buf()),
                file_limit: 1 << 20,
            })
            .event_capacity(16)
            .start(std::future::pending())
    };
    let mut a = Applier::new(&target);
    run_until_payload(&rt, &mut replica, &mut a);
    // 4 MB of writes while the consumer takes nothing.
    let mut c = source.client();
    let value = "y".repeat(4096);
    for i in 0..1000 {
        c.send(&["SET", &format!("fill:{i}"), &value]).unwrap();
    }
    for _ in 0..1000 {
        assert!(!c.read_reply().unwrap().is_error());
    }
    let metrics = replica.metrics();
    redis_sync_testkit::poll_until(Duration::from_secs(10), "the spool to fill", || {
        (metrics.spooled_bytes() > 900 * 1024).then_some(())
    });
    // Now consume: the queued commands come first, then the error.
    let e = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match replica.next_event().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return e,
                    None => panic!("stopped without an error"),
                }
            }
        })
        .await
        .expect("the error within 30 s")
    });
    assert!(
        matches!(
            e,
            redis_sync_replica::Error::SpoolFull { limit: 1048576, .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("raise the spool limit"), "{e}");
    eprintln!("ok {v}: {e}");
}

/// A consumer that takes longer than the source's `repl-timeout` to apply the snapshot: the
/// replica keeps the link alive (newlines while decoding, as a Redis replica does while
/// loading), so the source does not drop it.
fn slow_snapshot(v: &ServerVersion, diskless: bool) {
    let rt = runtime();
    let source = server(v, &["--repl-timeout", "2"]);
    source
        .cmd(&[
            "CONFIG",
            "SET",
            "repl-diskless-sync",
            if diskless { "yes" } else { "no" },
        ])
        .ok();
    source.cmd(&["DEBUG", "POPULATE", "1500", "snap"]).ok();
    let target = server(v, &[]);
    let mut replica = {
        let _g = rt.enter();
        ReplicaBuilder::new(source.addr())
            .event_capacity(16)
            .start(std::future::pending())
    };
    let mut a = Applier::new(&target);
    let started = Instant::now();
    // About 1 ms per event: 4,500 events take longer than repl-timeout (2 s) plus a cron tick.
    while !a.rdb_done {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{v}: the snapshot took too long"
        );
        let ev = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), replica.next_event()).await
        });
        if let Ok(Some(ev)) = ev {
            a.apply(&ev.unwrap());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(3),
        "{v}: the consumer was not slow enough ({took:?})"
    );
    source.cmd(&["SET", "after", "1"]).ok();
    run_until(
        &rt,
        &mut replica,
        &mut a,
        Duration::from_secs(20),
        "the master's offset",
        |_, m| m.offset() == master_offset(&source),
    );
    assert!(
        a.link_lost.is_empty(),
        "{v}: link lost: {:?}\n{}",
        a.link_lost,
        source.log()
    );
    assert_eq!(a.full_syncs, 1, "{v}");
    assert_eq!(source.digest(), target.digest(), "{v}");
    eprintln!("ok {v} diskless={diskless}: snapshot applied in {took:?} with repl-timeout 2 s");
}

#[test]
fn slow_snapshot_outlives_repl_timeout() {
    let all = versions();
    if let Some(v) = all.first() {
        slow_snapshot(v, false);
    }
    if let Some(v) = all.last() {
        slow_snapshot(v, true);
    }
}
