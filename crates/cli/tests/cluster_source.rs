//! A Redis Cluster as the source: every shard synced into one standalone target, through what
//! a cluster does to its shards while a sync runs: a failover (a replica promoted with
//! `CLUSTER FAILOVER`), a resharding (slots moved with `MIGRATE`, as `redis-cli --cluster
//! reshard` does, while writes go on and follow `ASK` redirections), a SIGKILL of redis-sync
//! and a restart; and two processes splitting the shards with `--shards`.
//!
//! The workload is non-idempotent (LPUSH, INCR, INCRBYFLOAT) so a command applied twice or lost
//! shows. The oracle: once the writes stop, the XOR of the masters' `DEBUG DIGEST`s (three
//! non-empty masters: see `Cluster::xor_digest`) equals the target's digest.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use redis_sync_commands::hash_slot;

use crate::harness::{Harness, drop_checkpoints, tail};
use redis_sync_testkit::{
    Client, Cluster, Flavor, Reply, Server, ServerVersion, poll_until, versions_where,
};

/// The newest Redis 7 or later installed (the tests that need one version of the features).
fn redis_7_or_later() -> Option<ServerVersion> {
    versions_where("Redis 7+", |v| {
        v.flavor() == Flavor::Redis && v.version().0 >= 7
    })
    .pop()
}

/// Keys of the workload (spread over every slot range).
const KEYS: u64 = 600;

#[test]
fn a_cluster_source_through_a_failover_a_resharding_and_a_restart_ends_equal_on_redis_7() {
    let found = versions_where("Redis 7", |v| {
        v.flavor() == Flavor::Redis && v.version().0 == 7
    });
    if let Some(v) = found.last() {
        through_failover_and_resharding(v);
    }
}

#[test]
fn a_cluster_source_through_a_failover_a_resharding_and_a_restart_ends_equal_on_redis_5() {
    let found = versions_where("Redis 5.0", |v| {
        v.flavor() == Flavor::Redis && v.version().0 == 5
    });
    if let Some(v) = found.first() {
        through_failover_and_resharding(v);
    }
}

#[test]
fn a_cluster_source_through_a_failover_a_resharding_and_a_restart_ends_equal_on_valkey_9() {
    let found = versions_where("Valkey 9", |v| {
        v.flavor() == Flavor::Valkey && v.version().0 >= 9
    });
    if let Some(v) = found.last() {
        through_failover_and_resharding(v);
    }
}

fn through_failover_and_resharding(v: &ServerVersion) {
    let cluster = Cluster::builder(v).masters(3).replicas(1).start();
    let target = Server::builder(v).start();
    let mut h = Harness::new();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    let seed = cluster.masters()[0].addr();
    let args = |state: &Path| -> Vec<String> {
        vec![
            "sync".into(),
            "--source".into(),
            seed.clone(),
            "--target".into(),
            target.addr(),
            "--state-file".into(),
            state.display().to_string(),
            "--status-interval".into(),
            "0.5".into(),
        ]
    };
    let state = h.dir.path().join("state.json");
    h.spawn("first run", &args(&state));
    let writes = w.run_in_background();

    // Every shard copied and streaming: a marker written after the start is on the target.
    markers(&cluster, &target, "started");
    let log = h.log(0);
    assert!(
        log.contains("a cluster of 3 shards") && log.contains("this process syncs 3"),
        "{log}"
    );

    // A failover of the first shard, while writes go on.
    let old = &cluster.masters()[0];
    let promoted = replica_of(&cluster, old);
    promoted.cmd(&["CLUSTER", "FAILOVER"]).ok();
    poll_until(
        Duration::from_secs(30),
        "the replica to be promoted",
        || (role(promoted) == "master").then_some(()),
    );
    markers(&cluster, &target, "after-failover");
    let log = h.log(0);
    assert!(log.contains("a failover"), "{}", tail(&log, 30));

    // A SIGKILL and a restart: each shard resumes from its checkpoint in the target, the first
    // one at its new master's address (found by its replication ID), without a full copy.
    h.kill();
    h.spawn("after SIGKILL", &args(&state));
    markers(&cluster, &target, "after-restart");
    let log = h.log(1);
    assert!(
        !log.contains("full resync") && log.matches("partial resync: continuing").count() == 3,
        "every shard continues with a partial resync:\n{}",
        tail(&log, 40)
    );

    // A resharding: 40 slots (some keys in each) from the second master to the third, and a
    // SIGKILL and restart halfway through it (the moves under way are recorded in the target).
    let (from, to) = (&cluster.masters()[1], &cluster.masters()[2]);
    let done = AtomicU64::new(0);
    let moved = thread::scope(|sc| {
        let moving = sc.spawn(|| reshard(&cluster, from, to, 40, &done));
        poll_until(Duration::from_secs(60), "half the resharding", || {
            (done.load(Ordering::Relaxed) >= 20).then_some(())
        });
        h.kill();
        h.spawn("killed during the resharding", &args(&state));
        moving.join().expect("the resharding")
    });
    assert!(moved > 0, "the resharding moved no key");
    markers(&cluster, &target, "after-resharding");

    let written = writes.stop();
    markers(&cluster, &target, "end");
    h.terminate();
    let log = format!("{}{}", h.log(1), h.log(2));
    assert!(
        log.contains("moved to another shard by a resharding"),
        "the resharding's DELs were not recognised:\n{}",
        tail(&log, 40)
    );
    drop_checkpoints(&target);
    assert_eq!(
        target.digest(),
        cluster.xor_digest(),
        "the target differs from the cluster after {written} writes ({moved} keys resharded): \
         {}\n{}",
        differences(&cluster, &target),
        tail(&h.log(2), 40)
    );
}

#[test]
fn an_atomic_slot_migration_during_the_sync_ends_equal_on_valkey_9() {
    let found = versions_where("Valkey 9", |v| {
        v.flavor() == Flavor::Valkey && v.version().0 >= 9
    });
    if let Some(v) = found.last() {
        atomic_slot_migration(v);
    }
}

#[test]
fn an_atomic_slot_migration_during_the_sync_ends_equal_on_redis_8_4_or_later() {
    let found = versions_where("Redis 8.4+", |v| {
        v.flavor() == Flavor::Redis && v.version() >= (8, 4, 0)
    });
    if let Some(v) = found.last() {
        atomic_slot_migration(v);
    }
}

/// Moves the first 500 slots of the second master to the third with the server's own atomic
/// slot migration (Valkey: `CLUSTER MIGRATESLOTS` on the exporter; Redis: `CLUSTER MIGRATION
/// IMPORT` on the importer) while writes go on.
fn atomic_slot_migration(v: &ServerVersion) {
    let cluster = Cluster::builder(v).masters(3).start();
    let target = Server::builder(v).start();
    let mut h = Harness::new();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    let state = h.dir.path().join("state.json");
    h.spawn(
        "sync",
        &[
            "sync".into(),
            "--source".into(),
            cluster.masters()[0].addr(),
            "--target".into(),
            target.addr(),
            "--state-file".into(),
            state.display().to_string(),
        ],
    );
    let writes = w.run_in_background();
    markers(&cluster, &target, "started");

    let (from, to) = (&cluster.masters()[1], &cluster.masters()[2]);
    let first = (0..16384u16)
        .find(|s| cluster.master_for_slot(*s).port() == from.port())
        .expect("a slot of the second master");
    let (lo, hi) = (first.to_string(), (first + 499).to_string());
    let reply = if v.flavor() == Flavor::Valkey {
        let id = to.node_id();
        from.cmd(&[
            "CLUSTER",
            "MIGRATESLOTS",
            "SLOTSRANGE",
            lo.as_str(),
            hi.as_str(),
            "NODE",
            id.as_str(),
        ])
    } else {
        to.cmd(&["CLUSTER", "MIGRATION", "IMPORT", lo.as_str(), hi.as_str()])
    };
    assert!(!reply.is_error(), "{reply:?}");
    poll_until(
        Duration::from_secs(60),
        "the slots to reach the third master",
        || {
            (cluster.master_for_slot(first).port() == to.port()
                && cluster.master_for_slot(first + 499).port() == to.port())
            .then_some(())
        },
    );
    markers(&cluster, &target, "after-migration");
    let written = writes.stop();
    markers(&cluster, &target, "end");
    h.terminate();
    let log = h.log(0);
    assert!(
        log.contains(&format!(
            "atomic slot migration of slots {first}-{}",
            first + 499
        )) && log.contains("into this shard is done"),
        "{}",
        tail(&log, 40)
    );
    drop_checkpoints(&target);
    assert_eq!(
        target.digest(),
        cluster.xor_digest(),
        "after {written} writes and an atomic migration: {}\n{}",
        differences(&cluster, &target),
        tail(&log, 40)
    );
}

#[test]
fn two_processes_with_shards_split_a_cluster_and_together_end_equal() {
    let Some(v) = redis_7_or_later() else {
        return;
    };
    let v = &v;
    let cluster = Cluster::builder(v).masters(3).start();
    let target = Server::builder(v).start();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    let seed = cluster.masters()[1].addr();
    let mut halves: Vec<Harness> = Vec::new();
    for k in ["1/2", "2/2"] {
        let mut h = Harness::new();
        let state = h.dir.path().join("state.json");
        h.spawn(
            &format!("--shards {k}"),
            &[
                "sync".into(),
                "--source".into(),
                seed.clone(),
                "--target".into(),
                target.addr(),
                "--state-file".into(),
                state.display().to_string(),
                "--shards".into(),
                k.into(),
            ],
        );
        halves.push(h);
    }
    let writes = w.run_in_background();
    markers(&cluster, &target, "started");
    let written = writes.stop();
    markers(&cluster, &target, "end");
    let logs: Vec<String> = halves.iter().map(|h| h.log(0)).collect();
    for h in &mut halves {
        h.terminate();
    }
    assert!(logs[0].contains("this process syncs 2"), "{}", logs[0]);
    assert!(logs[1].contains("this process syncs 1"), "{}", logs[1]);
    // `verify` reads every master of the source cluster.
    crate::util::assert_verify_equal(&cluster.masters()[0].addr(), &target.addr());
    drop_checkpoints(&target);
    assert_eq!(
        target.digest(),
        cluster.xor_digest(),
        "two halves after {written} writes"
    );
}

#[test]
fn a_flushall_on_one_master_empties_only_its_shard_in_the_target() {
    let Some(v) = redis_7_or_later() else {
        return;
    };
    let v = &v;
    let cluster = Cluster::builder(v).masters(3).start();
    let target = Server::builder(v).start();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    let mut h = Harness::new();
    let state = h.dir.path().join("state.json");
    h.spawn(
        "sync",
        &[
            "sync".into(),
            "--source".into(),
            cluster.masters()[0].addr(),
            "--target".into(),
            target.addr(),
            "--state-file".into(),
            state.display().to_string(),
        ],
    );
    markers(&cluster, &target, "copied");
    let before = target.dbsize();
    let flushed = cluster.masters()[1].dbsize();
    cluster.masters()[1].cmd(&["FLUSHALL"]).ok();
    for i in 0..KEYS {
        w.step(KEYS + i);
    }
    markers(&cluster, &target, "end");
    h.terminate();
    let log = h.log(0);
    assert!(log.contains("a FLUSH of shard"), "{}", tail(&log, 30));
    // `cutover` handles one source server: it refuses a cluster rather than pause one master.
    let out = crate::util::redis_sync(&[
        "cutover",
        "--source",
        &cluster.masters()[0].addr(),
        "--target",
        &target.addr(),
        "--dry-run",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cutover handles a single source server only"),
        "{err}"
    );
    drop_checkpoints(&target);
    assert_eq!(
        target.digest(),
        cluster.xor_digest(),
        "{before} keys before, {flushed} flushed on one master: {}",
        differences(&cluster, &target)
    );
}

#[test]
fn prefer_replica_reads_each_shard_from_its_replica() {
    let Some(v) = redis_7_or_later() else {
        return;
    };
    let v = &v;
    let cluster = Cluster::builder(v).masters(3).replicas(1).start();
    let target = Server::builder(v).start();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    for r in cluster.replicas() {
        r.wait_replica_synced();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = crate::util::sync_until_caught_up(
        &cluster.masters()[0].addr(),
        &target.addr(),
        &dir.path().join("state.json"),
        &["--prefer-replica"],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for r in cluster.replicas() {
        assert!(
            log.contains(&format!("connected to source {}", r.addr())),
            "{} not used:\n{log}",
            r.addr()
        );
    }
    for m in cluster.masters() {
        assert!(!log.contains(&format!("connected to source {}", m.addr())));
    }
    drop_checkpoints(&target);
    assert_eq!(target.digest(), cluster.xor_digest());
}

/// Where redis-sync writes: a server or a cluster.
trait Target {
    fn exists(&self, key: &str) -> bool;
}

impl Target for Server {
    fn exists(&self, key: &str) -> bool {
        self.cmd(&["EXISTS", key]).int() == 1
    }
}

impl Target for Cluster {
    fn exists(&self, key: &str) -> bool {
        self.master_for_slot(hash_slot(key.as_bytes()))
            .cmd(&["EXISTS", key])
            .int()
            == 1
    }
}

#[test]
fn a_cluster_source_into_a_cluster_target_through_a_resharding_ends_equal() {
    let Some(v) = redis_7_or_later() else {
        return;
    };
    let v = &v;
    let cluster = Cluster::builder(v).masters(3).start();
    let target = Cluster::builder(v).masters(3).start();
    let mut w = Writer::new(&cluster);
    for i in 0..KEYS {
        w.step(i);
    }
    let mut h = Harness::new();
    let state = h.dir.path().join("state.json");
    h.spawn(
        "sync",
        &[
            "sync".into(),
            "--source".into(),
            cluster.masters()[2].addr(),
            "--target".into(),
            target.masters()[1].addr(),
            "--state-file".into(),
            state.display().to_string(),
        ],
    );
    let writes = w.run_in_background();
    markers(&cluster, &target, "started");
    let moved = reshard(
        &cluster,
        &cluster.masters()[0],
        &cluster.masters()[1],
        40,
        &AtomicU64::new(0),
    );
    assert!(moved > 0, "the resharding moved no key");
    let written = writes.stop();
    markers(&cluster, &target, "end");
    h.terminate();
    target.drop_checkpoints();
    assert_eq!(
        target.xor_digest(),
        cluster.xor_digest(),
        "a cluster into a cluster after {written} writes, {moved} keys resharded\n{}",
        tail(&h.log(0), 40)
    );
}

/// Writes one marker per master (a key of a slot it serves) and waits until all are on the
/// target: each shard's stream is applied in order, so everything written before is there.
fn markers(cluster: &Cluster, target: &dyn Target, name: &str) {
    let mut w = Writer::new(cluster);
    let mut ports: Vec<u16> = w.slots.clone();
    ports.sort_unstable();
    ports.dedup();
    let mut names = Vec::new();
    for port in ports {
        let Some(slot) = w.slots.iter().position(|p| *p == port) else {
            continue;
        };
        let key = (0..1_000_000)
            .map(|i| format!("marker:{name}:{i}"))
            .find(|k| usize::from(hash_slot(k.as_bytes())) == slot)
            .expect("a key in the slot");
        let r = w.call(&["SET".into(), key.clone(), "1".into()]);
        assert!(!r.is_error(), "{r:?}");
        names.push(key);
    }
    poll_until(
        Duration::from_secs(90),
        &format!("the markers {name} on the target"),
        || names.iter().all(|k| target.exists(k)).then_some(()),
    );
}

fn role(n: &Server) -> String {
    n.cmd(&["ROLE"])
        .ok()
        .array()
        .first()
        .map(Reply::text)
        .unwrap_or_default()
}

/// The replica of `master` (by `CLUSTER NODES`).
fn replica_of<'a>(cluster: &'a Cluster, master: &Server) -> &'a Server {
    let id = master.node_id();
    cluster
        .replicas()
        .iter()
        .find(|r| {
            let nodes = r.cmd(&["CLUSTER", "NODES"]).ok().text();
            nodes
                .lines()
                .any(|l| l.contains("myself") && l.split(' ').nth(3) == Some(id.as_str()))
        })
        .expect("a replica of the master")
}

/// Moves `n` slots of `from` that hold keys to `to`, key by key with `MIGRATE`, while writes
/// go on; returns how many keys moved.
fn reshard(cluster: &Cluster, from: &Server, to: &Server, n: usize, done: &AtomicU64) -> u64 {
    let (from_id, to_id) = (from.node_id(), to.node_id());
    let mut slots: Vec<u16> = (0..KEYS)
        .map(|i| hash_slot(workload_key(i).as_bytes()))
        .filter(|s| cluster.master_for_slot(*s).port() == from.port())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots.truncate(n);
    let mut moved = 0;
    for slot in slots {
        let s = slot.to_string();
        to.cmd(&[
            "CLUSTER",
            "SETSLOT",
            s.as_str(),
            "IMPORTING",
            from_id.as_str(),
        ])
        .ok();
        from.cmd(&[
            "CLUSTER",
            "SETSLOT",
            s.as_str(),
            "MIGRATING",
            to_id.as_str(),
        ])
        .ok();
        loop {
            let keys = from
                .cmd(&["CLUSTER", "GETKEYSINSLOT", s.as_str(), "100"])
                .ok()
                .array();
            if keys.is_empty() {
                break;
            }
            let port = to.port().to_string();
            let mut args = vec![
                "MIGRATE".to_string(),
                "127.0.0.1".into(),
                port,
                String::new(),
                "0".into(),
                "5000".into(),
                "KEYS".into(),
            ];
            args.extend(keys.iter().map(Reply::text));
            from.cmd(&args).ok();
            moved += keys.len() as u64;
        }
        // The importer first, then the exporter (as redis-cli does), then the others: the
        // other order leaves a moment where each sends the other's clients back.
        let others = cluster
            .nodes()
            .filter(|n| n.port() != to.port() && n.port() != from.port());
        for node in [to, from].into_iter().chain(others) {
            if role(node) == "master" {
                node.cmd(&["CLUSTER", "SETSLOT", s.as_str(), "NODE", to_id.as_str()])
                    .ok();
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    moved
}

/// The key the `i`-th write touches.
fn workload_key(i: u64) -> String {
    let suffix = ["l", "n", "f"][(i % 3) as usize];
    format!("k:{}:{suffix}", i % KEYS)
}

/// A cluster client for the workload: routes by slot and follows `MOVED` and `ASK`.
struct Writer {
    ports: Vec<u16>,
    conns: HashMap<u16, Client>,
    slots: Vec<u16>,
}

impl Writer {
    fn new(cluster: &Cluster) -> Writer {
        let mut w = Writer {
            ports: cluster.nodes().map(Server::port).collect(),
            conns: HashMap::new(),
            slots: vec![0; 16384],
        };
        w.refresh();
        w
    }

    fn conn(&mut self, port: u16) -> &mut Client {
        self.conns
            .entry(port)
            .or_insert_with(|| Client::connect(port).expect("connect to a node"))
    }

    fn refresh(&mut self) {
        for port in self.ports.clone() {
            let Ok(r) = self.conn(port).call(&["CLUSTER", "SLOTS"]) else {
                continue;
            };
            for range in r.array() {
                let r = range.array();
                let (lo, hi) = (r[0].int() as usize, r[1].int() as usize);
                let p = r[2].array()[1].int() as u16;
                for s in lo..=hi {
                    self.slots[s] = p;
                }
            }
            return;
        }
    }

    /// Runs one command on the key's node, following redirections.
    fn call(&mut self, args: &[String]) -> Reply {
        let slot = usize::from(hash_slot(args[1].as_bytes()));
        let mut port = self.slots[slot];
        let mut asking = false;
        for attempt in 0..200 {
            if attempt >= 10 {
                // Nodes that disagree for a moment about a slot: give them time to agree.
                thread::sleep(Duration::from_millis(10));
            }
            let c = self.conn(port);
            if asking {
                c.call(&["ASKING"]).expect("ASKING");
            }
            let r = c.call(args).expect("a node answers");
            match &r {
                Reply::Error(e) if e.starts_with("MOVED") => {
                    self.refresh();
                    port = redirect_port(e);
                    asking = false;
                }
                Reply::Error(e) if e.starts_with("ASK") => {
                    port = redirect_port(e);
                    asking = true;
                }
                Reply::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN") => {
                    thread::sleep(Duration::from_millis(20));
                    self.refresh();
                    port = self.slots[slot];
                    asking = false;
                }
                _ => return r,
            }
        }
        panic!("{args:?}: too many redirections")
    }

    /// The `i`-th write of the workload.
    fn step(&mut self, i: u64) {
        let key = workload_key(i);
        let args: Vec<String> = match i % 3 {
            0 => vec!["LPUSH".into(), key, i.to_string()],
            1 => vec!["INCR".into(), key],
            _ => vec!["INCRBYFLOAT".into(), key, "0.5".into()],
        };
        let r = self.call(&args);
        assert!(!r.is_error(), "{args:?}: {r:?}");
    }

    /// Writes until stopped, in a thread (a fresh client: redirections are followed there).
    fn run_in_background(self) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        let mut w = self;
        let handle = thread::spawn(move || {
            let mut i = KEYS;
            while !s.load(Ordering::Relaxed) {
                w.step(i);
                i += 1;
                c.fetch_add(1, Ordering::Relaxed);
                if i.is_multiple_of(50) {
                    thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Background {
            stop,
            count,
            handle: Some(handle),
        }
    }
}

fn redirect_port(e: &str) -> u16 {
    e.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("a redirection names host:port")
}

struct Background {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Background {
    /// Stops the writes; returns how many there were.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("the writer thread");
        }
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The keys whose values differ between the cluster's masters and the target (a few).
fn differences(cluster: &Cluster, target: &Server) -> String {
    let value = |n: &Server, k: &str| -> String {
        match n.cmd(&["TYPE", k]).ok().text().as_str() {
            "list" => format!(
                "list of {} from {}",
                n.cmd(&["LLEN", k]).ok().int(),
                n.cmd(&["LINDEX", k, "0"]).ok().text()
            ),
            "none" => "none".into(),
            _ => n.cmd(&["GET", k]).ok().text(),
        }
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in cluster.nodes().filter(|n| role(n) == "master") {
        for k in n.cmd(&["KEYS", "*"]).ok().array() {
            let k = k.text();
            let (a, b) = (value(n, &k), value(target, &k));
            seen.insert(k.clone());
            if a != b {
                out.push(format!("{k}: cluster {a} target {b}"));
            }
        }
    }
    for k in target.cmd(&["KEYS", "*"]).ok().array() {
        if !seen.contains(&k.text()) {
            out.push(format!("{}: only on the target", k.text()));
        }
    }
    let n = out.len();
    out.truncate(10);
    format!("{n} keys differ: {}", out.join("; "))
}

/// The Kubernetes example runs `sync` with flags that exist.
#[test]
fn the_kubernetes_example_uses_existing_flags() {
    let yaml = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/kubernetes/redis-sync-shards.yaml"
    ))
    .expect("the example");
    let help = crate::util::redis_sync(&["sync", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = yaml
        .split(|c: char| c.is_whitespace() || c == '"')
        .filter(|w| w.starts_with("--") && w[2..].starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    assert!(flags.contains(&"--shards"), "{flags:?}");
    for f in flags {
        assert!(help.contains(f), "{f} is not a flag of `redis-sync sync`");
    }
}
