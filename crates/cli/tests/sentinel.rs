//! Redis Sentinel on either side: `redis+sentinel://…/mymaster` as the source or the target, and
//! a failover (`SENTINEL FAILOVER`) while the stream flows.
//!
//! - Source: a master, its replica and three sentinels, synced into a standalone target. The
//!   failover promotes the replica; the replication link must follow the master the sentinels
//!   name and continue with a partial resync (the promoted replica continues the old master's
//!   history). The workload holds its writes for the moment of the switch, as an application
//!   does: a write the old master acknowledges after the promotion is lost by the source
//!   itself, and redis-sync, which saw it, would then rightly start a new full copy.
//! - Target: a standalone source synced into a master, its replica and three sentinels. The
//!   failover happens under the stream's transactions; the sink must write to the new master,
//!   neither twice nor with a hole (a transaction the old master acknowledged after the
//!   promotion is lost by the target: the sync then resumes from the new master's checkpoint).
//!
//! The workload is non-idempotent (LPUSH, INCR) so a command applied twice or lost shows. The
//! oracle: once the writes stop and a last marker is on the target, `DEBUG DIGEST` of the
//! source's master equals the target master's (checkpoint keys removed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use redis_sync_testkit::{
    Client, Flavor, Reply, Sentinels, Server, ServerVersion, poll_until, versions_where,
};

use crate::harness::{Harness, drop_checkpoints, tail};

/// Keys of the workload.
const KEYS: u64 = 300;

fn redis(major: u32) -> Option<ServerVersion> {
    versions_where(&format!("Redis {major}"), |v| {
        v.flavor() == Flavor::Redis && v.version().0 == major
    })
    .last()
    .cloned()
}

#[test]
fn a_sentinel_source_whose_master_dies_is_followed_with_a_partial_resync_on_redis_7() {
    if let Some(v) = redis(7) {
        source_failover(&v, Switch::Crash);
    }
}

#[test]
fn a_sentinel_source_whose_master_dies_is_followed_with_a_partial_resync_on_redis_5() {
    if let Some(v) = redis(5) {
        source_failover(&v, Switch::Crash);
    }
}

#[test]
fn a_sentinel_source_failed_over_by_sentinel_failover_ends_equal_on_redis_7() {
    if let Some(v) = redis(7) {
        source_failover(&v, Switch::SentinelFailover);
    }
}

#[test]
fn a_sentinel_target_failing_over_ends_equal_on_redis_7() {
    if let Some(v) = redis(7) {
        target_failover(&v);
    }
}

#[test]
fn a_sentinel_target_failing_over_ends_equal_on_redis_5() {
    if let Some(v) = redis(5) {
        target_failover(&v);
    }
}

/// How the source's master changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    /// The master process dies; the sentinels promote its replica (after
    /// `down-after-milliseconds`). Nothing follows the promoted replica's fork point in the old
    /// master's stream: the link continues with a partial resync.
    Crash,
    /// `SENTINEL FAILOVER`: the old master lives on as a master for a few seconds, and the
    /// sentinels' own hello messages (`PUBLISH __sentinel__:hello`, replicated) extend its
    /// stream past the fork point, so the promoted replica refuses a partial resync to any
    /// replica of the old master, native or redis-sync: a full copy follows (and a sweep).
    SentinelFailover,
}

fn source_failover(v: &ServerVersion, switch: Switch) {
    let master = Server::builder(v).start();
    let replica = Server::builder(v).replica_of(&master).start();
    replica.wait_replica_synced();
    let sentinels = Sentinels::builder(v).start(&master, 1);
    let target = Server::builder(v).start();
    let mut w = Writer::new(&sentinels);
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
            sentinels.url(None),
            "--target".into(),
            target.addr(),
            "--state-file".into(),
            state.display().to_string(),
            "--status-interval".into(),
            "0.5".into(),
        ],
    );
    let writes = w.run_in_background();
    marker(sentinels.master_port(), &target, "started");
    assert!(
        h.log(0)
            .contains(&format!("the master is {}", master.addr())),
        "{}",
        tail(&h.log(0), 30)
    );

    // The switch: the writes pause, the replica catches up, the sentinels promote it.
    writes.hold();
    poll_until(Duration::from_secs(30), "the replica to catch up", || {
        (offset(&replica, "slave_repl_offset") == offset(&master, "master_repl_offset"))
            .then_some(())
    });
    let promoted = match switch {
        Switch::SentinelFailover => sentinels.failover(),
        Switch::Crash => {
            let old = master.port();
            drop(master);
            sentinels.wait_master_moved(old)
        }
    };
    assert_eq!(promoted, replica.port(), "the replica is the new master");
    writes.release();
    marker(promoted, &target, "after-failover");
    let log = h.log(0);
    let after = log
        .split_once("the source moved")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the link did not follow the master:\n{}", tail(&log, 40)));
    assert!(
        after.contains(&replica.addr()),
        "the link follows the promoted replica:\n{}",
        tail(&log, 40)
    );
    let partial = after.contains("partial resync: continuing")
        && !after.contains("full resync")
        && !after.contains("starting with a full copy");
    eprintln!("source {switch:?} on {v}: partial resync {partial}");
    if switch == Switch::Crash {
        assert!(
            partial,
            "the link continues with a partial resync, no new full copy:\n{}",
            tail(&log, 40)
        );
    }

    let written = writes.stop();
    marker(promoted, &target, "end");
    h.terminate();
    // `verify` through the sentinels compares with the master they name now.
    crate::util::assert_verify_equal(&sentinels.url(None), &target.addr());
    drop_checkpoints(&target);
    assert_eq!(
        target.digest(),
        replica.digest(),
        "the target differs from the source's new master after {written} writes\n{}",
        tail(&h.log(0), 40)
    );
}

fn target_failover(v: &ServerVersion) {
    let source = Server::builder(v).start();
    let master = Server::builder(v).start();
    let replica = Server::builder(v).replica_of(&master).start();
    replica.wait_replica_synced();
    let sentinels = Sentinels::builder(v).start(&master, 1);
    let mut w = Writer::fixed(source.port());
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
            source.addr(),
            "--target".into(),
            sentinels.url(None),
            "--state-file".into(),
            state.display().to_string(),
            "--status-interval".into(),
            "0.5".into(),
        ],
    );
    let writes = w.run_in_background();
    marker_on(&source, &master, "started");

    // The failover under the stream's transactions (the writes go on).
    let promoted = sentinels.failover();
    assert_eq!(promoted, replica.port(), "the replica is the new master");
    marker_on(&source, &replica, "after-failover");
    let log = h.log(0);
    assert!(
        log.contains(&format!(
            "the target's master moved from {} to {}",
            master.addr(),
            replica.addr()
        )),
        "the sink follows the new master:\n{}",
        tail(&log, 40)
    );
    // The old master stays writable for a moment after the promotion: transactions it
    // acknowledged then are lost with it, which the sink must notice (the sync then resumes
    // from the new master's checkpoint) rather than go on with a hole.

    let written = writes.stop();
    marker_on(&source, &replica, "end");
    h.terminate();
    let log = h.log(0);
    // Whether the failover lost acknowledged transactions depends on timing: say which.
    eprintln!(
        "target failover on {v}: {written} writes; acknowledged writes lost by the failover \
         and resumed: {}",
        log.matches("resuming from the new master's checkpoint")
            .count()
    );
    drop_checkpoints(&replica);
    assert_eq!(
        replica.digest(),
        source.digest(),
        "the target's new master differs from the source after {written} writes\n{}",
        tail(&log, 40)
    );
}

fn offset(s: &Server, field: &str) -> u64 {
    s.info("replication")
        .get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes a marker on the source master at `port` and waits until it is on `target`: the
/// stream is applied in order, so everything written before is there.
fn marker(port: u16, target: &Server, name: &str) {
    let key = format!("marker:{name}");
    let r = Client::connect(port)
        .and_then(|mut c| c.call(&["SET", key.as_str(), "1"]))
        .expect("the source's master answers");
    assert!(!r.is_error(), "{r:?}");
    poll_until(
        Duration::from_secs(90),
        &format!("the marker {name} on the target"),
        || (target.cmd(&["EXISTS", key.as_str()]).int() == 1).then_some(()),
    );
}

/// [`marker`] for a source given as a server.
fn marker_on(source: &Server, target: &Server, name: &str) {
    marker(source.port(), target, name);
}

/// The workload's writer: LPUSH and INCR on the source's master, found through the sentinels
/// when there are some.
struct Writer {
    port: u16,
    client: Client,
    sentinel_ports: Vec<u16>,
    name: String,
}

impl Writer {
    fn new(sentinels: &Sentinels) -> Writer {
        let port = sentinels.master_port();
        Writer {
            port,
            client: Client::connect(port).expect("connect to the master"),
            sentinel_ports: sentinels.ports(),
            name: sentinels.name().to_string(),
        }
    }

    fn fixed(port: u16) -> Writer {
        Writer {
            port,
            client: Client::connect(port).expect("connect to the source"),
            sentinel_ports: Vec::new(),
            name: String::new(),
        }
    }

    /// Connects to the master the sentinels name now (after a failover).
    fn follow(&mut self) {
        for &p in &self.sentinel_ports {
            let Ok(Reply::Array(Some(items))) = Client::connect(p).and_then(|mut c| {
                c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name.as_str()])
            }) else {
                continue;
            };
            if let Some(Reply::Bulk(Some(port))) = items.get(1)
                && let Some(port) = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok())
            {
                self.port = port;
                self.client = Client::connect(port).expect("connect to the new master");
                return;
            }
        }
        panic!("no sentinel names the master");
    }

    /// The `i`-th write of the workload.
    fn step(&mut self, i: u64) {
        let key = format!("k:{}", i % KEYS);
        let r = if i.is_multiple_of(2) {
            self.client
                .call(&["LPUSH", &format!("{key}:l"), &i.to_string()])
        } else {
            self.client.call(&["INCR", &format!("{key}:n")])
        };
        match r {
            Ok(r) => assert!(!r.is_error(), "write {i} on {}: {r:?}", self.port),
            Err(e) => panic!("write {i} on {}: {e}", self.port),
        }
    }

    /// Writes until stopped, in a thread; [`Background::hold`] pauses it.
    fn run_in_background(self) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let hold = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, h, hd, c) = (stop.clone(), hold.clone(), held.clone(), count.clone());
        let mut w = self;
        let handle = thread::spawn(move || {
            let mut i = KEYS;
            while !s.load(Ordering::Relaxed) {
                if h.load(Ordering::Acquire) {
                    hd.store(true, Ordering::Release);
                    while h.load(Ordering::Acquire) && !s.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(2));
                    }
                    w.follow();
                    hd.store(false, Ordering::Release);
                    continue;
                }
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
            hold,
            held,
            count,
            handle: Some(handle),
        }
    }
}

struct Background {
    stop: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Background {
    /// Pauses the writes; returns once the writer waits.
    fn hold(&self) {
        self.hold.store(true, Ordering::Release);
        poll_until(Duration::from_secs(30), "the writer to hold", || {
            self.held.load(Ordering::Acquire).then_some(())
        });
    }

    /// Lets the writer go on, on the master the sentinels name now.
    fn release(&self) {
        self.hold.store(false, Ordering::Release);
        poll_until(Duration::from_secs(30), "the writer to resume", || {
            (!self.held.load(Ordering::Acquire)).then_some(())
        });
    }

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
