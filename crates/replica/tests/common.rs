//! Shared helpers: a runtime, an applier that writes the replica's events into a target
//! server (RDB events through `redis_sync_rdb::rewrite`, commands as they are), and readers
//! of the source's replication figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_sync_rdb::Event;
use redis_sync_rdb::rewrite::{Command, Mode, Rewriter, TargetVersion};
use redis_sync_replica::{Metrics, Replica, ReplicaEvent};
use redis_sync_testkit::{Client, Reply, Server, ServerVersion, unix_ms};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A source (or target) with the modules the data set uses, when this version ships them.
pub fn server(v: &ServerVersion, extra: &[&str]) -> Server {
    // A diskless full sync (the default from 7.0) waits 5 s for more replicas unless told not to.
    let mut b = Server::builder(v)
        .arg("--repl-diskless-sync-delay")
        .arg("0");
    for m in ["rejson", "redisbloom"] {
        if v.module(m).is_some() {
            b = b.module(m);
        }
    }
    for a in extra {
        b = b.arg(*a);
    }
    b.start()
}

/// `master_repl_offset` from `INFO replication`.
pub fn master_offset(s: &Server) -> u64 {
    s.info("replication")
        .get("master_repl_offset")
        .and_then(|v| v.parse().ok())
        .expect("master_repl_offset in INFO replication")
}

/// `(state, offset)` of the first replica in the source's `INFO replication` (`slave0:…`).
pub fn replica_state(s: &Server) -> Option<(String, u64)> {
    let info = s.info("replication");
    let line = info.get("slave0")?;
    let mut state = None;
    let mut offset = None;
    for kv in line.split(',') {
        match kv.split_once('=') {
            Some(("state", v)) => state = Some(v.to_string()),
            Some(("offset", v)) => offset = v.parse().ok(),
            _ => {}
        }
    }
    Some((state?, offset?))
}

/// Applies events to a target server, pipelining the writes.
pub struct Applier {
    client: Client,
    rewriter: Option<Rewriter>,
    out: Vec<Command>,
    pending: Vec<Vec<Bytes>>,
    db: Option<u32>,
    pub commands: u64,
    pub rdb_commands: u64,
    pub full_syncs: u64,
    pub continued: u64,
    pub link_lost: Vec<String>,
    pub rdb_done: bool,
    pub last_offset: u64,
    pub last_db: u32,
    pub header: Option<redis_sync_rdb::Header>,
    pub forced: Vec<bool>,
}

impl Applier {
    pub fn new(target: &Server) -> Applier {
        Applier {
            client: target.client(),
            rewriter: None,
            out: Vec::new(),
            pending: Vec::new(),
            db: None,
            commands: 0,
            rdb_commands: 0,
            full_syncs: 0,
            continued: 0,
            link_lost: Vec::new(),
            rdb_done: false,
            last_offset: 0,
            last_db: 0,
            header: None,
            forced: Vec::new(),
        }
    }

    pub fn apply(&mut self, event: &ReplicaEvent) {
        match event {
            ReplicaEvent::FullResync { forced, .. } => {
                self.forced.push(*forced);
                self.flush();
                self.full_syncs += 1;
                self.rdb_done = false;
                self.db = None;
                self.send(vec![Bytes::from_static(b"FLUSHALL")]);
            }
            ReplicaEvent::Rdb(ev) => {
                if let Event::Header(h) = ev {
                    self.header = Some(*h);
                    self.rewriter = Some(
                        Rewriter::builder()
                            .target(TargetVersion::for_rdb(h))
                            .mode(Mode::Restore)
                            .build(),
                    );
                }
                let rw = self.rewriter.as_mut().expect("the header comes first");
                if let Err(e) = rw.handle_event(ev, unix_ms(), &mut self.out) {
                    panic!("cannot convert an RDB event: {e}");
                }
                let out = std::mem::take(&mut self.out);
                for cmd in out {
                    if cmd[0].eq_ignore_ascii_case(b"SELECT") {
                        self.db = std::str::from_utf8(&cmd[1])
                            .ok()
                            .and_then(|s| s.parse().ok());
                    }
                    self.rdb_commands += 1;
                    self.send(cmd);
                }
            }
            ReplicaEvent::RdbDone { offset, .. } => {
                self.rdb_done = true;
                self.last_offset = *offset;
                self.last_db = 0;
            }
            ReplicaEvent::Command {
                db, args, offset, ..
            } => {
                if self.db != Some(*db) {
                    self.send(vec![
                        Bytes::from_static(b"SELECT"),
                        Bytes::from(db.to_string()),
                    ]);
                    self.db = Some(*db);
                }
                self.commands += 1;
                self.last_offset = *offset;
                self.last_db = *db;
                self.send(args.clone());
            }
            ReplicaEvent::Position { offset, db } => {
                self.last_offset = *offset;
                self.last_db = *db;
            }
            ReplicaEvent::Continued { offset, .. } => {
                self.continued += 1;
                self.last_offset = *offset;
            }
            ReplicaEvent::LinkLost { reason } => self.link_lost.push(reason.clone()),
            _ => {}
        }
    }

    fn send(&mut self, cmd: Vec<Bytes>) {
        self.client.send(&cmd).expect("send to the target");
        self.pending.push(cmd);
        if self.pending.len() >= 256 {
            self.flush();
        }
    }

    /// Reads every outstanding reply; panics on an error reply, naming the command.
    pub fn flush(&mut self) {
        for cmd in std::mem::take(&mut self.pending) {
            let reply = self.client.read_reply().expect("a reply from the target");
            if let Reply::Error(e) = reply {
                let shown: Vec<String> = cmd
                    .iter()
                    .take(6)
                    .map(|a| String::from_utf8_lossy(&a[..a.len().min(60)]).into_owned())
                    .collect();
                panic!("the target refused {shown:?}: {e}");
            }
        }
    }
}

/// Feeds events to `applier` until the whole RDB payload is applied (30 s deadline).
pub fn run_until_payload(
    rt: &tokio::runtime::Runtime,
    replica: &mut Replica,
    applier: &mut Applier,
) {
    run_until(
        rt,
        replica,
        applier,
        Duration::from_secs(30),
        "the payload",
        |a, _| a.rdb_done,
    );
}

/// Feeds events to `applier` until `done` holds (checked after each quiet spell) or the
/// deadline passes (a panic naming `what`). Errors from the replica panic.
pub fn run_until(
    rt: &tokio::runtime::Runtime,
    replica: &mut Replica,
    applier: &mut Applier,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Applier, &Metrics) -> bool,
) {
    let deadline = Instant::now() + timeout;
    let metrics = replica.metrics();
    loop {
        // Take what is ready, then check the condition.
        let mut n = 0;
        while n < 10_000 {
            let next = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), replica.next_event()).await
            });
            match next {
                Ok(Some(Ok(ev))) => applier.apply(&ev),
                Ok(Some(Err(e))) => panic!("replica error while waiting for {what}: {e}"),
                Ok(None) => panic!("replica stopped while waiting for {what}"),
                Err(_) => break,
            }
            n += 1;
        }
        applier.flush();
        if done(applier, &metrics) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
    }
}

/// A writer thread: a bounded mix of write commands over two databases, paced in small
/// pipelined batches so that it overlaps the full sync. Stops early when `stop` is set.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Load {
    pub fn start(source: &Server, batches: usize, prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = source.client();
        let stop2 = stop.clone();
        let p = prefix.to_string();
        let far = (unix_ms() + 3_600_000).to_string();
        let handle = std::thread::spawn(move || {
            let mut sent = 0u64;
            for b in 0..batches {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let mut cmds: Vec<Vec<String>> = Vec::new();
                let db = if b % 3 == 2 { "5" } else { "0" };
                cmds.push(vec!["SELECT".into(), db.into()]);
                for i in 0..20 {
                    let n = b * 20 + i;
                    let k = |s: &str| format!("{p}{s}");
                    cmds.push(match i % 10 {
                        0 => vec!["SET".into(), k(&format!("s:{n}")), format!("v{n}")],
                        1 => vec!["INCR".into(), k("counter")],
                        2 => vec!["RPUSH".into(), k("list"), n.to_string()],
                        3 => vec!["HSET".into(), k("hash"), format!("f{n}"), n.to_string()],
                        4 => vec!["SADD".into(), k("set"), n.to_string()],
                        5 => vec!["ZADD".into(), k("zset"), n.to_string(), format!("m{n}")],
                        6 => vec![
                            "XADD".into(),
                            k("stream"),
                            "*".into(),
                            "n".into(),
                            n.to_string(),
                        ],
                        7 => vec!["PEXPIREAT".into(), k(&format!("s:{}", n - 7)), far.clone()],
                        8 => vec!["DEL".into(), k(&format!("s:{}", n.saturating_sub(18)))],
                        _ => vec!["APPEND".into(), k("appended"), "x".into()],
                    });
                }
                if b % 5 == 0 {
                    cmds.push(vec!["MULTI".into()]);
                    cmds.push(vec!["INCRBY".into(), format!("{p}tx"), "2".into()]);
                    cmds.push(vec!["LPUSH".into(), format!("{p}txlist"), b.to_string()]);
                    cmds.push(vec!["EXEC".into()]);
                }
                for cmd in &cmds {
                    c.send(cmd).expect("send a load command");
                }
                for cmd in &cmds {
                    let r = c.read_reply().expect("read a load reply");
                    assert!(!r.is_error(), "the source refused {cmd:?}: {r:?}");
                }
                sent += cmds.len() as u64;
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Waits for the writer to finish; returns the commands sent.
    pub fn finish(mut self) -> u64 {
        self.handle
            .take()
            .map(|h| h.join().expect("the load thread"))
            .unwrap_or(0)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Kills the replication link(s) of `source` (`CLIENT KILL TYPE replica`, or `slave`).
pub fn kill_replicas(source: &Server) -> i64 {
    let r = source.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    if r.is_error() {
        return source.cmd(&["CLIENT", "KILL", "TYPE", "slave"]).ok().int();
    }
    r.int()
}
