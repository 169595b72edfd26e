//! Full sync: a source's RDB through the decoder, `RdbLoader` and the sink into a target; the
//! target must equal the source (`assert_same_data`: DEBUG DIGEST, XINFO STREAM FULL, DUMP of
//! module values, functions), by `RESTORE` and by native commands.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis_sync_rdb::DecoderBuilder;
use redis_sync_sink::{Conflict, Error, ErrorClass, ErrorPolicy, RdbLoader, Sink};
use redis_sync_testkit::{
    DatasetOptions, Flavor, Server, find, require, unix_ms, versions, write_dataset,
};

use crate::util::{builder, cmd, rt};

/// Decodes `rdb` and feeds every event to `loader` → `sink`, with `chunk` bytes per value
/// chunk (small chunks make many-command keys, which go through a temporary key).
pub async fn load(
    rdb: &Path,
    sink: &Sink,
    loader: &mut RdbLoader,
    chunk: usize,
) -> Result<(), Error> {
    let bytes = std::fs::read(rdb).unwrap();
    let mut decoder = DecoderBuilder::new()
        .chunk_budget(chunk)
        .restore_payloads(Some(64 << 20))
        .build();
    let now = unix_ms();
    for piece in bytes.chunks(64 * 1024) {
        decoder.handle_bytes(piece);
        while let Some(ev) = decoder.poll_event().unwrap() {
            loader.handle_event(sink, &ev, now).await?;
        }
    }
    decoder.handle_eof();
    while let Some(ev) = decoder.poll_event().unwrap() {
        loader.handle_event(sink, &ev, now).await?;
    }
    sink.flush().await
}

/// Every type in every encoding, every version, by RESTORE and by commands (with 1 KiB
/// chunks, so large values go through temporary keys): the target equals the source.
#[test]
fn every_type_by_restore_and_by_commands() {
    for v in versions() {
        let source = Server::builder(&v).start();
        let info = write_dataset(&source, &DatasetOptions::default());
        let rdb = source.save();
        for restore in [true, false] {
            let target = Server::builder(&v).start();
            let m = rt().block_on(async {
                let sink = builder(&target).connect().await.unwrap();
                let mut loader = RdbLoader::new().force_restore(restore);
                load(&rdb, &sink, &mut loader, 1024).await.unwrap();
                sink.shutdown().await.unwrap()
            });
            if let Err(e) = redis_sync_testkit::compare_data(&source, &target, &info) {
                panic!("{v} restore={restore}: {e}\nmetrics {m:?}");
            }
            if restore {
                assert!(m.keys_restored > 0, "{v}: {m:?}");
            } else {
                assert!(m.keys_rebuilt > 0, "{v}: {m:?}");
            }
            assert_eq!(m.skipped, 0);
        }
    }
}

/// A newer source than the target: the loader sees that the target cannot load the source's
/// payloads and writes native commands.
#[test]
fn newer_source_goes_by_commands() {
    let (Some(new), Some(old)) = (require(Flavor::Redis), find("redis-7.0.15")) else {
        eprintln!(
            "newer_source_goes_by_commands: needs the newest Redis and redis-7.0.15; skipped"
        );
        return;
    };
    let source = Server::builder(&new).start();
    let mut c = source.client();
    for i in 0..300 {
        let k = i.to_string();
        c.call(&["SET", &format!("s{i}"), &k]).unwrap().ok();
        c.call(&["RPUSH", "list", &k]).unwrap().ok();
        c.call(&["HSET", "hash", &k, &k]).unwrap().ok();
        c.call(&["ZADD", "zset", &k, &k]).unwrap().ok();
        c.call(&["SADD", "set", &k]).unwrap().ok();
    }
    c.call(&["PEXPIRE", "s1", "100000"]).unwrap().ok();
    let rdb = source.save();
    let target = Server::builder(&old).start();
    rt().block_on(async {
        let sink = builder(&target).connect().await.unwrap();
        assert!(!sink.target().can_load(new.rdb_version() as u16));
        let mut loader = RdbLoader::new();
        load(&rdb, &sink, &mut loader, 64 * 1024).await.unwrap();
        assert_eq!(loader.uses_restore(), Some(false));
        let m = sink.shutdown().await.unwrap();
        assert_eq!(m.keys_restored, 0);
    });
    assert_eq!(source.digest(), target.digest());
}

/// Conflict mode `block`: an existing key is refused with its name, by RESTORE (BUSYKEY) and by
/// commands (RENAMENX); under `skip` the other keys land and the existing one is untouched.
#[test]
fn conflict_block_names_the_key() {
    for v in versions() {
        let source = Server::builder(&v).start();
        for i in 0..50 {
            source.cmd(&["RPUSH", &format!("l{i}"), "a", "b", "c"]).ok();
        }
        let rdb = source.save();
        for restore in [true, false] {
            let target = Server::builder(&v).start();
            target.cmd(&["SET", "l7", "mine"]).ok();
            rt().block_on(async {
                let sink = builder(&target)
                    .conflict(Conflict::Block)
                    .connect()
                    .await
                    .unwrap();
                let mut loader = RdbLoader::new().force_restore(restore);
                let err = match load(&rdb, &sink, &mut loader, 1024).await {
                    Err(e) => e,
                    Ok(()) => panic!("{v} restore={restore}: no conflict reported"),
                };
                assert!(
                    matches!(err, Error::Conflict { ref key, db: 0 } if key == "l7"),
                    "{v}: {err}"
                );
                assert_eq!(err.class(), Some(ErrorClass::Data));
            });
            assert_eq!(target.cmd(&["GET", "l7"]).bulk(), Some(b"mine".to_vec()));

            // Under `skip`, on a fresh target (the stopped run left keys behind).
            let target = Server::builder(&v).start();
            target.cmd(&["SET", "l7", "mine"]).ok();
            let dir = tempfile::tempdir().unwrap();
            rt().block_on(async {
                let sink = builder(&target)
                    .conflict(Conflict::Block)
                    .policy(ErrorPolicy::Skip)
                    .dead_letter(dir.path().join("dead"))
                    .connect()
                    .await
                    .unwrap();
                let mut loader = RdbLoader::new().force_restore(restore);
                load(&rdb, &sink, &mut loader, 1024).await.unwrap();
                let m = sink.shutdown().await.unwrap();
                assert_eq!(m.skipped, 1, "{v}: {m:?}");
            });
            assert_eq!(target.cmd(&["GET", "l7"]).bulk(), Some(b"mine".to_vec()));
            assert_eq!(
                target.dbsize(),
                50,
                "{v} restore={restore}: no temporary key left"
            );
            assert_eq!(target.cmd(&["LRANGE", "l8", "0", "-1"]).array().len(), 3);
        }
    }
}

/// A big list written by commands goes to a temporary key and is renamed into place: a reader
/// polling its length sees 0 or the full length, never a part; re-running replaces it (no
/// duplicates).
#[test]
fn big_key_is_never_seen_half_written() {
    let v = require(Flavor::Redis).unwrap_or_else(|| versions()[0].clone());
    let source = Server::builder(&v).start();
    let items: Vec<String> = (0..50_000).map(|i| format!("item-{i}")).collect();
    for chunk in items.chunks(1000) {
        let mut args = vec!["RPUSH", "big"];
        args.extend(chunk.iter().map(String::as_str));
        source.cmd(&args).ok();
    }
    let rdb = source.save();
    let target = Server::builder(&v).start();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let mut c = target.client();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                seen.insert(c.call(&["LLEN", "big"]).unwrap().int());
            }
            seen
        })
    };
    for _ in 0..2 {
        rt().block_on(async {
            let sink = builder(&target).connect().await.unwrap();
            let mut loader = RdbLoader::new().force_restore(false);
            load(&rdb, &sink, &mut loader, 4096).await.unwrap();
            sink.shutdown().await.unwrap();
        });
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(
        seen.iter().all(|&n| n == 0 || n == 50_000),
        "partial lengths seen: {seen:?}"
    );
    assert_eq!(source.digest(), target.digest());
    assert_eq!(target.dbsize(), 1);
    let _ = (cmd(&["X"]), Duration::ZERO);
}
