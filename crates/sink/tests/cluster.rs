//! Cluster targets: routing, a full sync, a failover and a slot migration under a write load
//! (newest Redis; Valkey 9 when installed). Nothing may be lost, duplicated or reordered: the
//! load is RPUSHes of sequence numbers, compared with what was sent.

use std::time::Duration;

use bytes::Bytes;
use redis_sync_sink::{CheckpointWrite, RateLimit, Sink, TxCommand};
use redis_sync_testkit::{
    Cluster, DatasetOptions, Flavor, Server, ServerVersion, poll_until, require, write_dataset,
};

use crate::fullsync::load;
use crate::util::{cmd, rt};

fn cluster_versions() -> Vec<ServerVersion> {
    let mut v: Vec<ServerVersion> = require(Flavor::Redis).into_iter().collect();
    v.extend(require(Flavor::Valkey));
    if v.is_empty() {
        eprintln!("cluster tests: no server installed; skipped");
    }
    v
}

fn seeds(c: &Cluster) -> Vec<String> {
    c.masters().iter().map(Server::addr).collect()
}

/// The lists the load writes, spread over the slots (and so over the masters).
const LISTS: usize = 12;

fn list_name(i: usize) -> String {
    format!("seq:{i}")
}

/// RPUSHes `n` sequence numbers round-robin over the lists, at `rate` per second, then
/// flushes; returns the metrics.
async fn write_load(sink: &Sink, n: usize) {
    if TRANSACTIONS.with(std::cell::Cell::get) {
        return write_load_in_transactions(sink, n).await;
    }
    for i in 0..n {
        let list = list_name(i % LISTS);
        let s = i.to_string();
        sink.write(cmd(&["RPUSH", &list, &s]), Some(i as u64 + 1))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
}

thread_local! {
    /// The load goes through `write_transaction` (one per slot per batch on a cluster).
    static TRANSACTIONS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`write_load`] in checkpointed batches of 40 commands, as `redis-sync sync` writes the
/// stream: one `MULTI … EXEC` per slot of each batch, each with its slot's checkpoint.
async fn write_load_in_transactions(sink: &Sink, n: usize) {
    let mut batch = Vec::new();
    for i in 0..n {
        let list = list_name(i % LISTS);
        batch.push(TxCommand {
            db: 0,
            args: cmd(&["RPUSH", &list, &i.to_string()]),
            offset: i as u64 + 1,
        });
        if batch.len() == 40 || i + 1 == n {
            let cp = CheckpointWrite {
                key: Bytes::from_static(b"redis-sync:checkpoint:test"),
                offset: i as u64 + 1,
                fields: Vec::new(),
            };
            sink.write_transaction(std::mem::take(&mut batch), cp)
                .await
                .unwrap();
        }
    }
    sink.flush().await.unwrap();
    assert_eq!(*sink.acked_offset().borrow(), n as u64);
}

/// Every list holds exactly its sequence numbers, in order.
fn check_lists(c: &Cluster, n: usize) {
    check_lists_where(c, n, |_| true);
}

/// [`check_lists`], asking only the nodes that pass `alive`.
fn check_lists_where(c: &Cluster, n: usize, alive: impl Fn(&Server) -> bool) {
    let any = c.nodes().find(|s| alive(s)).unwrap();
    for l in 0..LISTS {
        let key = list_name(l);
        let slot = any.cmd(&["CLUSTER", "KEYSLOT", &key]).int();
        let node = master_of(c, any, u16::try_from(slot).unwrap());
        let got: Vec<usize> = node
            .cmd(&["LRANGE", &key, "0", "-1"])
            .array()
            .iter()
            .map(|r| r.text().parse().unwrap())
            .collect();
        let want: Vec<usize> = (0..n).filter(|i| i % LISTS == l).collect();
        if got != want {
            let missing: Vec<_> = want.iter().filter(|x| !got.contains(x)).take(10).collect();
            panic!(
                "{key}: {} items, want {}; first missing {missing:?}; head {:?}",
                got.len(),
                want.len(),
                &got[..got.len().min(20)]
            );
        }
    }
}

/// The node serving `slot` as master, as `any` sees it.
fn master_of<'a>(c: &'a Cluster, any: &Server, slot: u16) -> &'a Server {
    for range in any.cmd(&["CLUSTER", "SLOTS"]).array() {
        let r = range.array();
        if (r[0].int()..=r[1].int()).contains(&i64::from(slot)) {
            let port = r[2].array()[1].int();
            return c.nodes().find(|n| i64::from(n.port()) == port).unwrap();
        }
    }
    panic!("no master for slot {slot}")
}

/// Routing by slot, cross-slot DEL/MSET split, keyless FLUSHALL to every master, and a full
/// sync of the reference data set: the masters' XORed digests equal the source's.
#[test]
fn routes_splits_and_full_sync() {
    for v in cluster_versions() {
        let c = Cluster::builder(&v).masters(3).start();
        rt().block_on(async {
            let sink = Sink::builder().cluster(seeds(&c)).connect().await.unwrap();
            assert!(sink.target().cluster);
            write_load(&sink, 3000).await;
            sink.write(cmd(&["MSET", "a", "1", "b", "2", "c", "3"]), None)
                .await
                .unwrap();
            sink.flush().await.unwrap();
            let got = sink.query(0, cmd(&["MGET", "a"])).await.unwrap();
            assert!(!got.is_error(), "{got:?}");
            sink.shutdown().await.unwrap();
        });
        check_lists(&c, 3000);
        assert_eq!(c.dbsize(), LISTS as i64 + 3);
        rt().block_on(async {
            let sink = Sink::builder().cluster(seeds(&c)).connect().await.unwrap();
            sink.write(cmd(&["DEL", "a", "b", "c"]), None)
                .await
                .unwrap();
            sink.flush().await.unwrap();
            sink.write(cmd(&["FLUSHALL"]), None).await.unwrap();
            sink.shutdown().await.unwrap();
        });
        assert_eq!(c.dbsize(), 0);

        // Full sync: a standalone source's reference data set into the cluster.
        let source = Server::builder(&v).start();
        let mut opts = DatasetOptions::default();
        opts.other_db = 0;
        let info = write_dataset(&source, &opts);
        let rdb = source.save();
        for restore in [true, false] {
            rt().block_on(async {
                let sink = Sink::builder().cluster(seeds(&c)).connect().await.unwrap();
                sink.write(cmd(&["FLUSHALL"]), None).await.unwrap();
                let mut loader = redis_sync_sink::RdbLoader::new().force_restore(restore);
                load(&rdb, &sink, &mut loader, 1024).await.unwrap();
                sink.shutdown().await.unwrap();
            });
            assert_eq!(c.dbsize(), source.dbsize(), "{v} restore={restore}");
            assert_eq!(
                c.xor_digest(),
                source.digest(),
                "{v} restore={restore}: {} keys",
                info.keys.len()
            );
        }
    }
}

/// A manual failover (`CLUSTER FAILOVER` on a replica) during a write load: the old master's
/// commands get MOVED and are resent to the new one, in order.
#[test]
fn failover_during_load_loses_nothing() {
    failover_during_load(false);
}

/// The same with checkpointed transactions: a transaction whose `EXEC` reply was lost in the
/// failover is sent again to the promoted replica only when its slot's checkpoint there does
/// not hold it.
#[test]
fn failover_during_transactions_loses_and_repeats_nothing() {
    failover_during_load(true);
}

fn failover_during_load(transactions: bool) {
    TRANSACTIONS.with(|t| t.set(transactions));
    for v in cluster_versions() {
        let c = Cluster::builder(&v).masters(3).replicas(1).start();
        let n = 20_000;
        let replica = &c.replicas()[0];
        let master = &c.masters()[0];
        std::thread::scope(|s| {
            s.spawn(|| {
                // Once the load is well under way, promote the first master's replica.
                poll_until(Duration::from_secs(30), "the load to start", || {
                    (master.dbsize() > 0).then_some(())
                });
                replica.cmd(&["CLUSTER", "FAILOVER"]).ok();
                poll_until(
                    Duration::from_secs(30),
                    "the replica to become master",
                    || (replica.cmd(&["ROLE"]).array()[0].text() == "master").then_some(()),
                );
            });
            rt().block_on(async {
                let sink = Sink::builder()
                    .cluster(seeds(&c))
                    .rate(RateLimit::none().ops_per_sec(5000.0))
                    .connect()
                    .await
                    .unwrap();
                write_load(&sink, n).await;
                let m = sink.shutdown().await.unwrap();
                eprintln!("{v} failover: {m:?}");
            });
        });
        assert_eq!(replica.cmd(&["ROLE"]).array()[0].text(), "master");
        check_lists(&c, n);
    }
}

/// A slot migration (raw `CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT …
/// NODE`) during a write load to a list in that slot: ASK then MOVED, nothing lost.
#[test]
fn slot_migration_during_load_loses_nothing() {
    slot_migration_during_load(false);
}

/// The same with checkpointed transactions (per slot): the slot's checkpoint moves with it.
#[test]
fn slot_migration_during_transactions_loses_and_repeats_nothing() {
    slot_migration_during_load(true);
}

fn slot_migration_during_load(transactions: bool) {
    TRANSACTIONS.with(|t| t.set(transactions));
    for v in cluster_versions() {
        let c = Cluster::builder(&v).masters(3).start();
        let n = 20_000;
        let any = &c.masters()[0];
        // Migrate the slot of the first list.
        let key = list_name(0);
        let slot = u16::try_from(any.cmd(&["CLUSTER", "KEYSLOT", &key]).int()).unwrap();
        let from = c.master_for_slot(slot);
        let to = c
            .masters()
            .iter()
            .find(|m| m.port() != from.port())
            .unwrap();
        let (from_id, to_id) = (from.node_id(), to.node_id());
        let slot_s = slot.to_string();
        std::thread::scope(|s| {
            s.spawn(|| {
                poll_until(Duration::from_secs(30), "the list to fill", || {
                    (from.cmd(&["LLEN", &key]).int() > 200).then_some(())
                });
                to.cmd(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id])
                    .ok();
                from.cmd(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id])
                    .ok();
                // Keep writing for a while in the MIGRATING state before moving the key.
                std::thread::sleep(Duration::from_millis(300));
                let port = to.port().to_string();
                loop {
                    let keys = from
                        .cmd(&["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"])
                        .array();
                    if keys.is_empty() {
                        break;
                    }
                    let mut args = vec![
                        "MIGRATE".to_string(),
                        "127.0.0.1".into(),
                        port.clone(),
                        String::new(),
                        "0".into(),
                        "5000".into(),
                        "KEYS".into(),
                    ];
                    args.extend(keys.iter().map(|k| k.text()));
                    from.cmd(&args).ok();
                }
                // Writes now get ASK for a while, then the slot is handed over.
                std::thread::sleep(Duration::from_millis(300));
                for m in c.masters() {
                    m.cmd(&["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id]).ok();
                }
            });
            rt().block_on(async {
                let sink = Sink::builder()
                    .cluster(seeds(&c))
                    .rate(RateLimit::none().ops_per_sec(8000.0))
                    .connect()
                    .await
                    .unwrap();
                write_load(&sink, n).await;
                let m = sink.shutdown().await.unwrap();
                eprintln!("{v} migration: {m:?}");
                assert!(m.redirects > 0, "{m:?}");
            });
        });
        check_lists(&c, n);
        assert_eq!(c.master_for_slot(slot).port(), to.port());
        let _ = Bytes::new();
    }
}

/// The master dies (`SHUTDOWN NOSAVE`; 7.0+ waits for its replica to catch up first) and its
/// replica takes over (`CLUSTER FAILOVER TAKEOVER`) during a write load: the sink loses the
/// connection, re-reads the topology until the new master serves the slots, and resends what
/// was not acknowledged, in order.
#[test]
fn master_killed_during_load_loses_nothing() {
    for v in cluster_versions() {
        let c = Cluster::builder(&v).masters(3).replicas(1).start();
        let n = 20_000;
        let replica = &c.replicas()[0];
        let master = &c.masters()[0];
        std::thread::scope(|s| {
            s.spawn(|| {
                poll_until(Duration::from_secs(30), "the load to start", || {
                    let done: u64 = master.info("stats")["total_commands_processed"]
                        .parse()
                        .unwrap();
                    (done > 1500).then_some(())
                });
                // The connection drops with the shutdown: the reply is an I/O error.
                let _ = master.client().call(&["SHUTDOWN", "NOSAVE"]);
                replica.cmd(&["CLUSTER", "FAILOVER", "TAKEOVER"]).ok();
            });
            rt().block_on(async {
                let sink = Sink::builder()
                    .cluster(seeds(&c))
                    .rate(RateLimit::none().ops_per_sec(5000.0))
                    .connect_timeout(Duration::from_millis(500))
                    .connect()
                    .await
                    .unwrap();
                write_load(&sink, n).await;
                let m = sink.shutdown().await.unwrap();
                eprintln!("{v} kill: {m:?}");
                assert!(m.reconnects > 0 || m.resent > 0, "{m:?}");
            });
        });
        check_lists_where(&c, n, |s| s.port() != master.port());
    }
}
