//! Module commands (`JSON.SET`, `BF.ADD`, `TS.ADD`, `TS.MADD`, `JSON.MSET`) in the stream, with
//! their key positions learned from the source's `COMMAND` reply: into a cluster target (keys
//! in many slots, multi-key ones across slots) and through a `--key-prefix` filter.
//!
//! Module values are compared key by key with `DUMP` (RedisJSON and RedisBloom have no digest
//! callback, so `DEBUG DIGEST` cannot see their values). Each test runs the binary twice: the
//! first run copies and streams while a writer writes; the writes between the runs reach the
//! target only through the second run's stream (a partial resync).

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::util::sync_until_caught_up;
use redis_sync_testkit::{Client, Cluster, Reply, Server, ServerVersion, versions_where};

const MODULES: [&str; 3] = ["rejson", "redisbloom", "redistimeseries"];

/// The newest server with RedisJSON, RedisBloom and RedisTimeSeries; under `CI=true` a missing
/// one fails with the install hint, elsewhere the test is skipped.
fn module_version() -> Option<ServerVersion> {
    versions_where(
        "a Redis Stack with RedisJSON, RedisBloom and RedisTimeSeries",
        |v| MODULES.iter().all(|m| v.module(m).is_some()),
    )
    .pop()
}

fn server(v: &ServerVersion) -> Server {
    let mut b = Server::builder(v)
        .arg("--repl-diskless-sync-delay")
        .arg("0");
    for m in MODULES {
        b = b.module(m);
    }
    b.start()
}

fn url(s: &Server) -> String {
    format!("redis://{}", s.addr())
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

#[track_caller]
fn call(c: &mut Client, args: &[&str]) {
    let r = c.call(args).expect("I/O");
    assert!(!r.is_error(), "{args:?}: {r:?}");
}

/// Module writes number `i` (of several kinds) on keys `{prefix}j:N`, `{prefix}b:N`,
/// `{prefix}t:N`, N < `keys`: spread over many slots; `TS.MADD` and `JSON.MSET` take two
/// keys, mostly in different slots. Timestamps grow with `i`, so every `TS.ADD` is new.
fn module_write(c: &mut Client, prefix: &str, i: usize, keys: usize) {
    let (k, k2) = (i % keys, (i * 7 + 3) % keys);
    let (j, j2) = (format!("{prefix}j:{k}"), format!("{prefix}j:{k2}"));
    let (t, t2) = (format!("{prefix}t:{k}"), format!("{prefix}t:{k2}"));
    let ts = (1_000_000 + i).to_string();
    let n = i.to_string();
    match i % 5 {
        0 => call(
            c,
            &[
                "JSON.SET",
                &j,
                "$",
                &format!("{{\"n\":{i},\"tags\":[\"a\"]}}"),
            ],
        ),
        1 => call(
            c,
            &["BF.ADD", &format!("{prefix}b:{k}"), &format!("item-{i}")],
        ),
        2 => call(c, &["TS.ADD", &t, &ts, &n]),
        3 if t != t2 => call(c, &["TS.MADD", &t, &ts, &n, &t2, &ts, "1"]),
        3 => call(c, &["TS.ADD", &t, &ts, &n]),
        _ if j != j2 => call(c, &["JSON.MSET", &j, "$.n", &n, &j2, "$.m", &n]),
        _ => call(c, &["JSON.SET", &j, "$.n", &n]),
    }
}

/// Every key of each kind exists first (so `JSON.MSET` paths and `TS.MADD` series exist).
fn create(c: &mut Client, prefix: &str, keys: usize) {
    for k in 0..keys {
        call(
            c,
            &["JSON.SET", &format!("{prefix}j:{k}"), "$", "{\"n\":0}"],
        );
        call(c, &["BF.ADD", &format!("{prefix}b:{k}"), "first"]);
        call(c, &["TS.ADD", &format!("{prefix}t:{k}"), "1", "0"]);
    }
}

/// Writes module commands on the source until stopped (bounded by `count`).
fn writer(
    src: &Server,
    prefix: &'static str,
    keys: usize,
    count: usize,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<usize> {
    let mut c = src.client();
    thread::spawn(move || {
        let mut n = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            module_write(&mut c, prefix, i, keys);
            n += 1;
            if i % 50 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
        n
    })
}

fn all_keys(s: &Server) -> Vec<String> {
    let mut c = s.client();
    let mut keys: Vec<String> = c
        .call(&["KEYS", "*"])
        .expect("KEYS")
        .array()
        .iter()
        .map(Reply::text)
        .filter(|k| !k.starts_with("redis-sync:"))
        .collect();
    keys.sort();
    keys
}

fn dump(c: &mut Client, key: &str) -> Option<Vec<u8>> {
    c.call(&["DUMP", key]).expect("DUMP").bulk()
}

#[test]
fn module_commands_into_a_cluster_end_equal() {
    let Some(v) = module_version() else {
        return;
    };
    let src = server(&v);
    let mut b = Cluster::builder(&v).masters(3);
    for m in MODULES {
        b = b.module(m);
    }
    let cluster = b.start();
    const KEYS: usize = 60;
    let mut c = src.client();
    create(&mut c, "", KEYS);

    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let t_url = format!("redis://{}", cluster.masters()[0].addr());
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(&src, "", KEYS, 3000, stop.clone());
    let first = sync_until_caught_up(&url(&src), &t_url, &sf, &[]);
    stop.store(true, Ordering::Relaxed);
    let during = w.join().expect("writer");
    let err = assert_ok(&first, "first sync into the cluster");
    assert!(
        err.contains("learned") && err.contains("module commands"),
        "{err}"
    );
    // Only through the stream: the second run resumes after the first.
    for i in 3000..3600 {
        module_write(&mut c, "", i, KEYS);
    }
    let second = sync_until_caught_up(&url(&src), &t_url, &sf, &[]);
    let err = assert_ok(&second, "second sync into the cluster");
    assert!(err.contains("partial resync"), "{err}");

    cluster.drop_checkpoints();
    let keys = all_keys(&src);
    assert_eq!(keys.len(), 3 * KEYS);
    assert_eq!(cluster.dbsize(), src.dbsize(), "key counts");
    let mut slots = std::collections::BTreeSet::new();
    let mut node = cluster.masters()[0].client();
    for key in &keys {
        let slot = node
            .call(&["CLUSTER", "KEYSLOT", key])
            .expect("KEYSLOT")
            .int();
        slots.insert(slot);
        let owner = cluster.master_for_slot(u16::try_from(slot).expect("a slot"));
        assert_eq!(
            dump(&mut owner.client(), key),
            dump(&mut c, key),
            "{key} (slot {slot}) differs on the cluster"
        );
    }
    assert!(slots.len() > 100, "keys in {} slots only", slots.len());
    assert_eq!(cluster.xor_digest(), src.digest());
    eprintln!(
        "{}: {} module keys in {} slots equal ({during} writes during the first run, 600 after)",
        v.name(),
        keys.len(),
        slots.len()
    );
}

#[test]
fn key_prefix_filters_module_commands() {
    let Some(v) = module_version() else {
        return;
    };
    let (src, dst) = (server(&v), server(&v));
    const KEYS: usize = 10;
    let mut c = src.client();
    create(&mut c, "keep:", KEYS);
    create(&mut c, "drop:", KEYS);
    let state = tempfile::tempdir().expect("tempdir");
    let sf = state.path().join("state.json");
    let filter = ["--key-prefix", "keep:"];
    let first = sync_until_caught_up(&url(&src), &url(&dst), &sf, &filter);
    assert_ok(&first, "first filtered sync");
    // The stream: module commands on both prefixes (the multi-key ones within one prefix).
    for i in 0..400 {
        module_write(&mut c, "keep:", i, KEYS);
        module_write(&mut c, "drop:", i, KEYS);
    }
    let second = sync_until_caught_up(&url(&src), &url(&dst), &sf, &filter);
    let err = assert_ok(&second, "second filtered sync");
    assert!(err.contains("partial resync"), "{err}");
    assert!(!err.contains("not in the command table"), "{err}");

    let want: Vec<String> = all_keys(&src)
        .into_iter()
        .filter(|k| k.starts_with("keep:"))
        .collect();
    assert_eq!(all_keys(&dst), want, "only the keep: keys on the target");
    let mut d = dst.client();
    for key in &want {
        assert_eq!(dump(&mut d, key), dump(&mut c, key), "{key} differs");
    }
}
