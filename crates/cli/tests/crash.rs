//! Crash safety of `redis-sync sync`: killed with SIGKILL at random instants (before and during
//! the full copy, while streaming, just after a resume) and restarted each time, while a
//! non-idempotent workload runs on the source all along, the target ends exactly equal to a
//! native replica of the same source: nothing lost, nothing applied twice.
//!
//! The oracle is the native replica, attached before `redis-sync` first starts: it received the
//! same replication stream from the same source, so once both have caught up with the source's
//! offset they must hold the same data (`DEBUG DIGEST`, plus the checks of `compare_data` that
//! the digest cannot make, such as stream consumer groups). Only the checkpoint keys
//! (`redis-sync:checkpoint:*`, db 0 of the target) are removed from the target before comparing.
//!
//! The workload (LPUSH/RPUSH/LPOP, INCR, INCRBYFLOAT, APPEND, XADD with `*` and with explicit
//! IDs, XREADGROUP/XACK, SPOP, EVAL, MULTI/EXEC with a SELECT inside, short-TTL SETs, COPY,
//! DEL, in db 0 and db 1) is such that a command applied twice or skipped changes the result.
//! Short-TTL keys are touched by nothing but `SET … PX`: a standalone target expires keys on its
//! own, so a later command reading such a key could legitimately differ from a replica (which
//! never expires keys itself); that is not what this test is about.
//!
//! Each version runs with a fixed seed derived from its name (the kill delays and the workload
//! both come from it); `REDIS_SYNC_CRASH_SEED=<u64>` replays another one.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis_sync_testkit::{
    Client, DatasetOptions, Flavor, Reply, Server, ServerVersion, compare_data, describe,
    poll_until, versions_where, write_dataset, xinfo_view,
};

use crate::util::run_bounded;

#[test]
fn sigkill_and_restart_ends_equal_to_a_native_replica_on_the_oldest_redis() {
    let found = versions_where("Redis 5.0", |v| {
        v.flavor() == Flavor::Redis && v.version().0 == 5
    });
    if let Some(v) = found.first() {
        killed_and_restarted(v);
    }
}

#[test]
fn sigkill_and_restart_ends_equal_to_a_native_replica_on_redis_7_0() {
    let found = versions_where("Redis 7.0", |v| {
        v.flavor() == Flavor::Redis && (v.version().0, v.version().1) == (7, 0)
    });
    if let Some(v) = found.last() {
        killed_and_restarted(v);
    }
}

#[test]
fn sigkill_and_restart_ends_equal_to_a_native_replica_on_the_newest_redis() {
    let Some(v) = versions_where("Redis", |v| v.flavor() == Flavor::Redis).pop() else {
        return;
    };
    if v.version() < (7, 1, 0) {
        eprintln!("skipped: the newest Redis installed, {v}, is covered by the tests above");
        return;
    }
    killed_and_restarted(&v);
}

#[test]
fn sigkill_and_restart_ends_equal_to_a_native_replica_on_valkey_9() {
    let found = versions_where("Valkey 9", |v| {
        v.flavor() == Flavor::Valkey && v.version().0 >= 9
    });
    if let Some(v) = found.last() {
        killed_and_restarted(v);
    }
}

/// What a run's log says happened, in order (one entry per matching line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// "full sync from …": the source started a full copy.
    FullSync,
    /// "full copy applied …": the snapshot is on the target; streaming follows.
    CopyApplied,
    /// "partial resync: …": resumed from a checkpoint, no full copy.
    Resumed,
}

fn events(log: &str) -> Vec<Event> {
    log.lines()
        .filter_map(|l| {
            if l.contains("full sync from") {
                Some(Event::FullSync)
            } else if l.contains("full copy applied") {
                Some(Event::CopyApplied)
            } else if l.contains("partial resync")
                // Not "asking the source for a partial resync" nor "refused a partial resync".
                && !l.contains("asking")
                && !l.contains("refused")
            {
                Some(Event::Resumed)
            } else {
                None
            }
        })
        .collect()
}

/// Where a run was when it was killed: the last event its log shows.
fn phase(events: &[Event]) -> &'static str {
    match events.last() {
        None => "handshake",
        Some(Event::FullSync) => "full copy",
        Some(Event::CopyApplied) => "streaming after the full copy",
        Some(Event::Resumed) => "streaming after a partial resync",
    }
}

/// Whether the next run may (must) resume from the target's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// No usable checkpoint: the target is empty, or holds part of a snapshot.
    Never,
    /// A checkpoint the source's backlog covers: the next run must not copy everything again.
    Must,
    /// Killed just after a full copy: the checkpoint may or may not have been committed.
    Either,
}

/// One kill of the plan: wait until the run's log shows one of `after` (nothing: from the
/// start), then a random delay in `min_ms..=max_ms`, then SIGKILL.
struct Kill {
    what: &'static str,
    after: &'static [Event],
    min_ms: u64,
    max_ms: u64,
}

const PLAN: [Kill; 6] = [
    Kill {
        what: "early",
        after: &[],
        min_ms: 50,
        max_ms: 300,
    },
    Kill {
        what: "in the full copy",
        after: &[Event::FullSync, Event::Resumed],
        min_ms: 0,
        max_ms: 150,
    },
    Kill {
        what: "while streaming",
        after: &[Event::CopyApplied, Event::Resumed],
        min_ms: 100,
        max_ms: 1500,
    },
    Kill {
        what: "just after the resume",
        after: &[Event::Resumed, Event::CopyApplied],
        min_ms: 0,
        max_ms: 60,
    },
    Kill {
        what: "early",
        after: &[],
        min_ms: 50,
        max_ms: 300,
    },
    Kill {
        what: "while streaming",
        after: &[Event::CopyApplied, Event::Resumed],
        min_ms: 100,
        max_ms: 1500,
    },
];

/// When the plan's kills did not land in every phase (a slow machine can stretch a copy over
/// the instants chosen), at most this many more kills follow, each waiting for a resume or the
/// end of a copy and striking while the stream flows.
const EXTRA_KILLS: usize = 4;
const EXTRA: Kill = Kill {
    what: "extra, while streaming",
    after: &[Event::Resumed, Event::CopyApplied],
    min_ms: 100,
    max_ms: 1500,
};

/// How long a run may take to reach the phase a kill waits for (a debug build, shared CPUs).
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

/// Upper bound of the workload (it is normally stopped by its flag long before).
const MAX_OPS: u64 = 100_000;

fn killed_and_restarted(v: &ServerVersion) {
    let started = Instant::now();
    let seed = seed_for(v);
    eprintln!(
        "crash test on {v}: seed {seed} (REDIS_SYNC_CRASH_SEED={seed} replays the same plan)"
    );
    let mut rng = Rng::new(seed);

    let src = Server::builder(v).start();
    // Diskless full syncs otherwise wait 5 s (7.0+ default); a backlog that covers every gap.
    src.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
        .ok();
    src.cmd(&["CONFIG", "SET", "repl-backlog-size", "64mb"])
        .ok();
    let dst = Server::builder(v).start();
    write_dataset(&src, &DatasetOptions::default());
    fill(&src);
    let replica = Server::builder(v).replica_of(&src).start();
    replica.wait_replica_synced();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut h = Harness {
        dir: tempfile::tempdir().expect("tempdir"),
        logs: Vec::new(),
        child: None,
        stop: stop.clone(),
        notes: vec![format!("{v}, seed {seed}")],
    };
    let state_file = h.dir.path().join("state.json");
    let args: Vec<String> = vec![
        "sync".into(),
        "--source".into(),
        format!("redis://{}", src.addr()),
        "--target".into(),
        format!("redis://{}", dst.addr()),
        "--state-file".into(),
        state_file.to_str().expect("UTF-8 temp path").into(),
        "--status-interval".into(),
        "1".into(),
        // The full copy of this small data set takes tens of milliseconds unpaced (runs of
        // strings go as MSETs): paced at 1.5 MB/s it lasts about a second, so the kills meant
        // for it land in it whatever the machine's speed. The workload stays far below that.
        "--max-bytes".into(),
        "1500000".into(),
        // A backup on the side, killed and restarted with the rest: at the end the snapshot
        // and the stream after it must load into a server equal to the native replica too.
        "--tee-rdb".into(),
        h.dir
            .path()
            .join("backup.rdb")
            .to_str()
            .expect("UTF-8")
            .into(),
        "--tee-aof".into(),
        h.dir
            .path()
            .join("backup.aof")
            .to_str()
            .expect("UTF-8")
            .into(),
    ];

    let mut writer = Some(spawn_writer(
        &src,
        seed ^ 0x5eed,
        stop.clone(),
        done.clone(),
    ));

    let mut resume = Resume::Never;
    let mut resumed_after_stream_kill = 0;
    let mut phases = Vec::new();
    let mut done_at_last_kill = 0;
    for n in 0..PLAN.len() + EXTRA_KILLS {
        let kill = match PLAN.get(n) {
            Some(k) => k,
            None if phases.contains(&"full copy")
                && phases.contains(&"streaming after a partial resync") =>
            {
                break;
            }
            None => &EXTRA,
        };
        let log = h.spawn(&format!("run {n}"), &args);
        if !kill.after.is_empty() {
            let child = h.child.as_mut().expect("a running child");
            poll_until(
                PHASE_DEADLINE,
                &format!("run {n} of redis-sync to log one of {:?}", kill.after),
                || {
                    if let Some(st) = child.try_wait().expect("try_wait") {
                        panic!("run {n} of redis-sync exited on its own ({st}) before the kill");
                    }
                    let text = fs::read_to_string(&log).unwrap_or_default();
                    events(&text)
                        .iter()
                        .any(|e| kill.after.contains(e))
                        .then_some(())
                },
            );
        }
        // The kill instant itself, random by design (not a synchronisation).
        let delay = rng.between(kill.min_ms, kill.max_ms);
        thread::sleep(Duration::from_millis(delay));
        let mut child = h.child.take().expect("a running child");
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("run {n} of redis-sync exited on its own ({st}) before the kill");
        }
        child.kill().expect("SIGKILL redis-sync");
        child.wait().expect("wait for the killed redis-sync");
        let writes = done.load(Ordering::Relaxed);
        if writer.as_ref().is_some_and(thread::JoinHandle::is_finished) {
            match writer.take().map(thread::JoinHandle::join) {
                Some(Ok(Err(e))) => panic!("the workload on the source failed: {e}"),
                other => panic!(
                    "the workload ended before the kills did ({other:?}): it must run all along"
                ),
            }
        }

        let ev = events(&fs::read_to_string(&log).unwrap_or_default());
        let decision = check_resume(&format!("run {n}"), &ev, resume);
        if decision == Some(Event::Resumed) && resume != Resume::Never {
            resumed_after_stream_kill += 1;
        }
        let at = phase(&ev);
        h.notes.push(format!(
            "kill {n} ({}): {delay} ms after {}, during the {at}; workload at op {writes}",
            kill.what,
            if kill.after.is_empty() {
                "the start".to_string()
            } else {
                format!("{:?}", kill.after)
            }
        ));
        if kill.min_ms >= 100 {
            assert!(
                writes > done_at_last_kill,
                "the workload made no progress between two kills (op {writes}): it must run \
                 all along"
            );
        }
        done_at_last_kill = writes;
        phases.push(at);
        resume = match ev.last() {
            None => resume,
            Some(Event::FullSync) => Resume::Never,
            Some(Event::CopyApplied) => Resume::Either,
            Some(Event::Resumed) => Resume::Must,
        };
    }

    stop.store(true, Ordering::Relaxed);
    let written = writer
        .take()
        .expect("the workload thread")
        .join()
        .expect("the workload thread panicked")
        .unwrap_or_else(|e| panic!("the workload on the source failed: {e}"));
    h.notes.push(format!("workload: {written} operations"));
    // Short-TTL keys: the source deletes them (SCAN expires what it visits) and sends the DELs
    // down the replication stream, before the last run starts.
    poll_until(
        Duration::from_secs(20),
        "the workload's short-TTL keys to expire on the source",
        || {
            (scan_keys(&src, 0, "w:t:*").is_empty() && scan_keys(&src, 1, "w:t:*").is_empty())
                .then_some(())
        },
    );

    let mut final_args = args.clone();
    final_args.push("--until-caught-up".into());
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(&final_args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1"),
    );
    let final_log = h.dir.path().join("run-final.stderr");
    fs::write(&final_log, &out.stderr).expect("write the final run's log");
    h.logs
        .push(("final run (--until-caught-up)".into(), final_log));
    assert!(
        out.status.success(),
        "the final `sync --until-caught-up` failed ({})",
        out.status
    );
    let ev = events(&String::from_utf8_lossy(&out.stderr));
    if check_resume("the final run", &ev, resume) == Some(Event::Resumed) && resume != Resume::Never
    {
        resumed_after_stream_kill += 1;
    }
    assert!(
        resumed_after_stream_kill > 0,
        "no restart after a kill while streaming resumed with a partial resync (kills: {phases:?})"
    );
    assert!(
        phases.contains(&"full copy"),
        "no kill landed during a full copy (kills: {phases:?})"
    );
    assert!(
        phases.contains(&"streaming after a partial resync"),
        "no kill landed while streaming after a partial resync (kills: {phases:?})"
    );

    poll_until(
        Duration::from_secs(60),
        "the native replica to reach the source's replication offset",
        || {
            let master = src.info("replication").get("master_repl_offset").cloned();
            let r = replica.info("replication");
            let got = r
                .get("slave_repl_offset")
                .or_else(|| r.get("master_repl_offset"))
                .cloned();
            (master.is_some() && master == got).then_some(())
        },
    );

    let checkpoints = scan_keys(&dst, 0, "redis-sync:checkpoint:*");
    assert!(
        !checkpoints.is_empty(),
        "the target holds no redis-sync:checkpoint:* key in db 0: is the exactly-once mode on?"
    );
    for k in &checkpoints {
        let mut c = dst.client();
        c.call(&[&b"DEL"[..], k])
            .expect("DEL a checkpoint key")
            .ok();
    }

    let mut info = describe(&replica);
    for db in keyspace_dbs(&dst) {
        if !info.dbs.contains(&db) {
            info.dbs.push(db);
        }
    }
    info.dbs.sort_unstable();
    // Redis 7.0 replicates XREADGROUP as XCLAIM … LASTID without the group's read counter
    // (7.2 adds XGROUP SETID … ENTRIESREAD): a native 7.0 replica itself shows `entries-read`
    // and `lag` as nil where its master has numbers, and a target whose group came from an RDB
    // keeps the snapshot's stale count. Those two fields are not replicated data on 7.0; the
    // streams are compared without them there, everything else as usual.
    let unreplicated: &[&str] =
        if v.flavor() == Flavor::Redis && (v.version().0, v.version().1) == (7, 0) {
            &["entries-read", "lag"]
        } else {
            &[]
        };
    let streams = if unreplicated.is_empty() {
        Vec::new()
    } else {
        std::mem::take(&mut info.streams)
    };
    // Equal to the native replica: the data (`compare_data`), and the streams without the
    // fields this version does not replicate.
    let same_as_replica = |other: &Server| {
        compare_data(&replica, other, &info).and_then(|()| {
            for (db, key) in &streams {
                let (a, b) = (
                    stream_view(&replica, *db, key, unreplicated),
                    stream_view(other, *db, key, unreplicated),
                );
                if a != b {
                    return Err(format!(
                        "stream {key} (db {db}) differs (XINFO STREAM FULL without the fields \
                         no copy reproduces and {unreplicated:?}):\n  replica: {}\n  other:   {}",
                        short(&format!("{a:?}"), 2000),
                        short(&format!("{b:?}"), 2000)
                    ));
                }
            }
            Ok(())
        })
    };
    if let Err(e) = same_as_replica(&dst) {
        let diffs = differing_keys(&replica, &dst);
        panic!(
            "{v}: after {} SIGKILLs and restarts the target differs from a native replica of \
             the source: {e}\n\nkey by key (replica | target):\n{}",
            PLAN.len(),
            diffs.join("\n")
        );
    }
    // The backup: the tee'd snapshot and stream, loaded by the server itself.
    let restored = restore_backup(v, h.dir.path());
    if let Err(e) = same_as_replica(&restored) {
        let diffs = differing_keys(&replica, &restored);
        panic!(
            "{v}: the backup written by --tee-rdb and --tee-aof across {} SIGKILLs loads into a \
             server that differs from a native replica of the source: {e}\n\nkey by key \
             (replica | restored):\n{}\n\nwhat the runs said of the backup:\n{}",
            PLAN.len(),
            diffs.join("\n"),
            h.logs
                .iter()
                .filter_map(|(_, path)| fs::read_to_string(path).ok())
                .flat_map(|log| {
                    log.lines()
                        .filter(|l| l.contains("tee"))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "crash test on {v}: equal to the native replica after {} kills ({}), {written} workload \
         operations, {:.1}s",
        PLAN.len(),
        phases.join(", "),
        started.elapsed().as_secs_f64()
    );
}

/// A server of version `v` started on the backup in `dir` (`backup.rdb`, `backup.aof`), as
/// Redis loads one: 7.0+ a multi-part AOF directory (the RDB as its base, the AOF as its one
/// increment, a manifest naming them); before 7.0 an RDB-preamble AOF (the two files one after
/// the other).
fn restore_backup(v: &ServerVersion, dir: &std::path::Path) -> Server {
    let rdb = fs::read(dir.join("backup.rdb")).expect("the --tee-rdb file");
    let aof = fs::read(dir.join("backup.aof")).expect("the --tee-aof file");
    eprintln!("backup: {} RDB bytes, {} AOF bytes", rdb.len(), aof.len());
    let restore = dir.join("restore");
    fs::create_dir_all(&restore).expect("mkdir");
    let builder = Server::builder(v)
        .arg("--dir")
        .arg(&restore)
        .arg("--appendonly")
        .arg("yes");
    if v.at_least(7, 0) {
        let aofdir = restore.join("appendonlydir");
        fs::create_dir_all(&aofdir).expect("mkdir");
        fs::write(aofdir.join("backup.aof.1.base.rdb"), rdb).expect("write");
        fs::write(aofdir.join("backup.aof.1.incr.aof"), aof).expect("write");
        fs::write(
            aofdir.join("backup.aof.manifest"),
            "file backup.aof.1.base.rdb seq 1 type b\nfile backup.aof.1.incr.aof seq 1 type i\n",
        )
        .expect("write");
        builder
            .arg("--appendfilename")
            .arg("backup.aof")
            .arg("--appenddirname")
            .arg("appendonlydir")
            .start()
    } else {
        let mut both = rdb;
        both.extend_from_slice(&aof);
        fs::write(restore.join("backup.aof"), both).expect("write");
        builder
            .arg("--appendfilename")
            .arg("backup.aof")
            .arg("--aof-use-rdb-preamble")
            .arg("yes")
            .start()
    }
}

/// Asserts the run's first decision (full copy or partial resync) fits what the previous kill
/// left behind, and returns it.
fn check_resume(run: &str, ev: &[Event], resume: Resume) -> Option<Event> {
    let decision = ev
        .iter()
        .copied()
        .find(|e| matches!(e, Event::FullSync | Event::Resumed));
    match (resume, decision) {
        (Resume::Never, Some(Event::Resumed)) => panic!(
            "{run} resumed with a partial resync although no run had completed a full copy \
             since the last kill during one: the target held part of a snapshot"
        ),
        (Resume::Must, Some(Event::FullSync)) => panic!(
            "{run} made a full copy although the run before it was killed while streaming from \
             a checkpoint that the source's 64 MB backlog still covers"
        ),
        _ => decision,
    }
}

/// The runs of the binary, and what to print if the test fails: the kills so far and the end
/// of every run's log. Dropped before the servers, it also kills a run still going.
struct Harness {
    dir: tempfile::TempDir,
    logs: Vec<(String, PathBuf)>,
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    notes: Vec<String>,
}

impl Harness {
    /// Starts `redis-sync ARGS` with its stdout and stderr in files; returns the stderr path.
    fn spawn(&mut self, label: &str, args: &[String]) -> PathBuf {
        let n = self.logs.len();
        let err = self.dir.path().join(format!("run-{n}.stderr"));
        let out = self.dir.path().join(format!("run-{n}.stdout"));
        let child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("create a stdout file"))
            .stderr(File::create(&err).expect("create a stderr file"))
            .spawn()
            .expect("spawn redis-sync");
        self.child = Some(child);
        self.logs.push((label.to_string(), err.clone()));
        err
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            eprintln!("--- crash test: {}", self.notes.join("\n--- "));
            for (label, path) in &self.logs {
                let text = fs::read_to_string(path).unwrap_or_default();
                eprintln!("--- {label}: the end of its log ---\n{}", tail(&text, 25));
            }
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fixed seed per version (FNV-1a of its name), unless `REDIS_SYNC_CRASH_SEED` gives one.
fn seed_for(v: &ServerVersion) -> u64 {
    if let Some(s) = std::env::var("REDIS_SYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return s;
    }
    v.name().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// xorshift64, seeded through splitmix64 (never zero).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// More data so the full copy takes a while: 20 000 small strings in db 0, 5 000 in db 1, a
/// list of 50 000 items.
fn fill(src: &Server) {
    let mut c = src.client();
    for (db, n) in [(1u32, 5_000usize), (0, 20_000)] {
        c.call(&["SELECT", &db.to_string()]).expect("SELECT").ok();
        let mut mset = vec!["MSET".to_string()];
        for i in 0..n {
            mset.push(format!("bulk:{i}"));
            mset.push(format!("value-{i}-{}", "v".repeat(i % 40)));
            if mset.len() > 1000 || i + 1 == n {
                c.call(&mset).expect("MSET").ok();
                mset.truncate(1);
            }
        }
    }
    for chunk in 0..50 {
        let mut rpush = vec!["RPUSH".to_string(), "bulk:list".to_string()];
        rpush.extend((0..1000).map(|i| format!("item-{}", chunk * 1000 + i)));
        c.call(&rpush).expect("RPUSH").ok();
    }
}

/// The workload: `MAX_OPS` operations at most, until `stop`; `done` counts them.
fn spawn_writer(
    src: &Server,
    seed: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> thread::JoinHandle<Result<u64, String>> {
    let mut w = Workload {
        c: src.client(),
        rng: Rng::new(seed),
        db: 0,
        copy: src.version().at_least(6, 2),
        xid: 0,
    };
    thread::spawn(move || {
        w.setup()?;
        let mut n = 0;
        for i in 0..MAX_OPS {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            w.step(i)?;
            n = i + 1;
            done.store(n, Ordering::Relaxed);
            // Paces the workload so that it spans every kill (at most ~8 000 operations/s).
            if i % 8 == 7 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(n)
    })
}

const SCRIPT: &str = "redis.call('INCR', KEYS[1]); return redis.call('RPUSH', KEYS[2], ARGV[1])";

struct Workload {
    c: Client,
    rng: Rng,
    db: u32,
    copy: bool,
    xid: u64,
}

impl Workload {
    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, String> {
        let shown = || {
            args.iter()
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self.c.call(args) {
            Ok(Reply::Error(e)) => Err(format!("{} (db {}): {e}", shown(), self.db)),
            Ok(r) => Ok(r),
            Err(e) => Err(format!("{}: I/O error {e}", shown())),
        }
    }

    fn select(&mut self, db: u32) -> Result<(), String> {
        if db != self.db {
            self.call(&["SELECT", &db.to_string()])?;
            self.db = db;
        }
        Ok(())
    }

    /// A stream with a consumer group in db 0 and db 1.
    fn setup(&mut self) -> Result<(), String> {
        for db in [1, 0] {
            self.select(db)?;
            self.call(&["XADD", "w:xs", "*", "init", "1"])?;
            self.call(&["XGROUP", "CREATE", "w:xs", "g", "0"])?;
        }
        Ok(())
    }

    fn step(&mut self, i: u64) -> Result<(), String> {
        let db = u32::from(self.rng.below(3) == 0);
        self.select(db)?;
        let k = self.rng.below(8);
        let r = self.rng.next();
        let is = i.to_string();
        match self.rng.below(21) {
            0 => self.call(&["LPUSH", &format!("w:l:{k}"), &is]).map(drop),
            1 => self
                .call(&["RPUSH", &format!("w:l:{k}"), &is, &format!("{i}b")])
                .map(drop),
            2 => self.call(&["LPOP", &format!("w:l:{k}")]).map(drop),
            3 => self.call(&["INCR", &format!("w:n:{k}")]).map(drop),
            4 => self
                .call(&["INCRBYFLOAT", &format!("w:f:{}", k % 4), "0.25"])
                .map(drop),
            5 => self
                .call(&["APPEND", &format!("w:a:{k}"), &format!("{i},")])
                .map(drop),
            6 => self
                .call(&["XADD", "w:xs", "MAXLEN", "300", "*", "i", &is])
                .map(drop),
            7 => {
                self.xid += 1;
                let id = format!("{}-1", self.xid);
                self.call(&["XADD", "w:xe", &id, "i", &is]).map(drop)
            }
            8 => self.read_group(k),
            9 => self
                .call(&[
                    "SADD",
                    &format!("w:s:{}", k % 4),
                    &format!("m{}", r % 40),
                    &format!("m{}", (r >> 8) % 40),
                    &format!("m{}", (r >> 16) % 40),
                ])
                .map(drop),
            10 => {
                let key = format!("w:s:{}", k % 4);
                if r & 1 == 0 {
                    self.call(&["SPOP", &key]).map(drop)
                } else {
                    self.call(&["SPOP", &key, "2"]).map(drop)
                }
            }
            11 => self
                .call(&["EVAL", SCRIPT, "2", "w:e:n", "w:e:l", &is])
                .map(drop),
            12 => self.multi(i, k, r),
            13 | 14 => {
                let px = (50 + r % 451).to_string();
                let key = format!("w:t:{}", r % 64);
                self.call(&["SET", &key, &is, "PX", &px]).map(drop)
            }
            15 if self.copy => {
                let (from, to) = if r & 1 == 0 {
                    (format!("w:n:{k}"), format!("w:c:n{k}"))
                } else {
                    (format!("w:l:{k}"), format!("w:c:l{k}"))
                };
                if (r >> 4) & 1 == 0 {
                    self.call(&["COPY", &from, &to, "REPLACE"]).map(drop)
                } else {
                    let other = (1 - self.db).to_string();
                    self.call(&["COPY", &from, &to, "DB", &other, "REPLACE"])
                        .map(drop)
                }
            }
            15 | 17 => self
                .call(&["HINCRBY", "w:h", &format!("f{k}"), &(1 + i % 7).to_string()])
                .map(drop),
            16 => self
                .call(&["DEL", &format!("w:l:{k}"), &format!("w:a:{k}")])
                .map(drop),
            18 => self
                .call(&["ZINCRBY", "w:z", &(1 + i % 5).to_string(), &format!("m{k}")])
                .map(drop),
            19 => self
                .call(&["APPEND", &format!("bulk:{}", r % 5000), &format!(",{i}")])
                .map(drop),
            _ => self
                .call(&[
                    "RPOPLPUSH",
                    &format!("w:l:{k}"),
                    &format!("w:l:{}", (k + 1) % 8),
                ])
                .map(drop),
        }
    }

    /// XREADGROUP of up to 3 new entries, then XACK of every other one (the rest stays pending).
    fn read_group(&mut self, k: u64) -> Result<(), String> {
        let consumer = format!("c{}", k % 3);
        let reply = self.call(&[
            "XREADGROUP",
            "GROUP",
            "g",
            &consumer,
            "COUNT",
            "3",
            "STREAMS",
            "w:xs",
            ">",
        ])?;
        let mut ids = Vec::new();
        for stream in reply.array() {
            if let Some(entries) = stream.array().get(1) {
                for e in entries.array() {
                    if let Some(id) = e.array().first() {
                        ids.push(id.text());
                    }
                }
            }
        }
        let mut xack = vec!["XACK".to_string(), "w:xs".into(), "g".into()];
        xack.extend(ids.into_iter().step_by(2));
        if xack.len() > 3 {
            self.call(&xack)?;
        }
        Ok(())
    }

    /// A MULTI/EXEC block; half of them switch db in the middle (the connection stays there).
    fn multi(&mut self, i: u64, k: u64, r: u64) -> Result<(), String> {
        let other = 1 - self.db;
        let mut queued: Vec<Vec<String>> = vec![
            vec!["INCR".into(), "w:m:n".into()],
            vec!["RPUSH".into(), "w:m:l".into(), i.to_string()],
            vec!["APPEND".into(), format!("w:a:{k}"), format!("m{i},")],
            vec!["LPOP".into(), format!("w:l:{k}")],
        ];
        let switch = r & 1 == 0;
        if switch {
            queued.insert(2, vec!["SELECT".into(), other.to_string()]);
        }
        self.call(&["MULTI"])?;
        for cmd in &queued {
            let reply = self.call(cmd)?;
            if reply != Reply::Status("QUEUED".into()) {
                return Err(format!("{cmd:?} in MULTI: {reply:?}"));
            }
        }
        let replies = self.call(&["EXEC"])?.array();
        if let Some(e) = replies.iter().find(|r| r.is_error()) {
            return Err(format!("EXEC of {queued:?}: {e:?}"));
        }
        if switch {
            self.db = other;
        }
        Ok(())
    }
}

/// `XINFO STREAM key FULL` without what no copy can reproduce (radix-tree sizes, the
/// consumers' seen/active times) and without the fields in `skip`.
fn stream_view(server: &Server, db: u32, key: &str, skip: &[&str]) -> Reply {
    let mut c = server.client();
    c.call(&["SELECT", &db.to_string()]).expect("SELECT").ok();
    let full = c
        .call(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"])
        .expect("XINFO STREAM FULL");
    xinfo_view(full, skip)
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The keys of `db` matching `pattern` (SCAN, which also expires the expired keys it visits).
fn scan_keys(server: &Server, db: u32, pattern: &str) -> Vec<Vec<u8>> {
    scan_with(&mut server.client(), db, pattern)
}

fn scan_with(c: &mut Client, db: u32, pattern: &str) -> Vec<Vec<u8>> {
    c.call(&["SELECT", &db.to_string()]).expect("SELECT").ok();
    let mut keys = BTreeSet::new();
    let mut cursor = "0".to_string();
    // Bounded: SCAN visits each key a few times at most.
    for _ in 0..1_000_000 {
        let r = c
            .call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
            .expect("SCAN")
            .ok()
            .array();
        cursor = r[0].text();
        keys.extend(r[1].array().iter().filter_map(Reply::bulk));
        if cursor == "0" {
            break;
        }
    }
    keys.into_iter().collect()
}

/// The dbs that hold keys (`INFO keyspace`).
fn keyspace_dbs(server: &Server) -> Vec<u32> {
    server
        .info("keyspace")
        .keys()
        .filter_map(|k| k.strip_prefix("db").and_then(|d| d.parse().ok()))
        .collect()
}

/// Every key whose `DEBUG DIGEST-VALUE` or TTL presence differs between `a` and `b`, over
/// the union of their keys in every db either has, with a short look at both values.
fn differing_keys(a: &Server, b: &Server) -> Vec<String> {
    let mut dbs: BTreeSet<u32> = keyspace_dbs(a).into_iter().collect();
    dbs.extend(keyspace_dbs(b));
    let (mut ca, mut cb) = (a.client(), b.client());
    let mut out = Vec::new();
    for db in dbs {
        let mut keys: BTreeSet<Vec<u8>> = scan_with(&mut ca, db, "*").into_iter().collect();
        keys.extend(scan_with(&mut cb, db, "*"));
        for key in keys {
            let look = |c: &mut Client| {
                let digest = c.call(&[&b"DEBUG"[..], b"DIGEST-VALUE", &key]).ok();
                let ttl = c.call(&[&b"PTTL"[..], &key]).ok();
                let has_ttl = matches!(ttl, Some(Reply::Int(t)) if t >= 0);
                (digest, has_ttl, summary(c, &key))
            };
            let (da, ta, sa) = look(&mut ca);
            let (db_, tb, sb) = look(&mut cb);
            if da != db_ || ta != tb {
                out.push(format!(
                    "db {db} {}: {sa}{} | {sb}{}",
                    String::from_utf8_lossy(&key),
                    if ta { " (ttl)" } else { "" },
                    if tb { " (ttl)" } else { "" }
                ));
            }
            if out.len() >= 60 {
                out.push("… (more)".into());
                return out;
            }
        }
    }
    out
}

/// The type and a short look at a value, for failure messages.
fn summary(c: &mut Client, key: &[u8]) -> String {
    let mut call = |args: &[&[u8]]| c.call(args).ok();
    let kind = match call(&[b"TYPE", key]) {
        Some(Reply::Status(t)) => t,
        other => return format!("{other:?}"),
    };
    let show = |r: Option<Reply>| short(&format!("{r:?}"), 160);
    match kind.as_str() {
        "none" => "missing".into(),
        "string" => format!("string {}", show(call(&[b"GET", key]))),
        "list" => format!(
            "list of {} {} … {}",
            show(call(&[b"LLEN", key])),
            show(call(&[b"LRANGE", key, b"0", b"2"])),
            show(call(&[b"LRANGE", key, b"-3", b"-1"]))
        ),
        "set" => format!("set of {}", show(call(&[b"SCARD", key]))),
        "zset" => format!(
            "zset {}",
            show(call(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]))
        ),
        "hash" => format!("hash {}", show(call(&[b"HGETALL", key]))),
        "stream" => format!(
            "stream of {}, last {}",
            show(call(&[b"XLEN", key])),
            show(call(&[b"XREVRANGE", key, b"+", b"-", b"COUNT", b"1"]))
        ),
        other => other.to_string(),
    }
}
