//! A Redis Cluster of real nodes on loopback, slots assigned and `cluster_state:ok` awaited.

use std::time::Duration;

use crate::catalog::ServerVersion;
use crate::client::Reply;
use crate::poll::poll_until;
use crate::server::Server;

/// Number of hash slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// How to start a cluster; see [`Cluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    version: ServerVersion,
    masters: usize,
    replicas: usize,
    modules: Vec<String>,
}

impl ClusterBuilder {
    /// Number of masters (default 3); slots are split evenly between them.
    pub fn masters(mut self, n: usize) -> Self {
        self.masters = n.max(1);
        self
    }
    /// Replicas per master (default 0).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Loads a Redis Stack module (`"rejson"`, `"redisbloom"`, …) on every node; see
    /// [`ServerBuilder::module`](crate::ServerBuilder::module).
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_string());
        self
    }

    fn node(&self) -> Server {
        let mut b = Server::builder(&self.version).cluster();
        for m in &self.modules {
            b = b.module(m);
        }
        b.start()
    }

    /// Starts every node, assigns slots, joins them and waits (30 s deadline) for
    /// `cluster_state:ok` on every node and for every replica to be linked.
    #[track_caller]
    pub fn start(self) -> Cluster {
        let masters: Vec<Server> = (0..self.masters).map(|_| self.node()).collect();
        let per = SLOTS as usize / masters.len();
        for (i, m) in masters.iter().enumerate() {
            let lo = i * per;
            let hi = if i + 1 == masters.len() {
                SLOTS as usize
            } else {
                lo + per
            };
            let mut args = vec!["CLUSTER".to_string(), "ADDSLOTS".to_string()];
            args.extend((lo..hi).map(|s| s.to_string()));
            m.cmd(&args).ok();
        }
        let mut replicas = Vec::new();
        for m in &masters {
            for _ in 0..self.replicas {
                replicas.push((m.node_id(), self.node()));
            }
        }
        let first = masters[0].port().to_string();
        for node in masters
            .iter()
            .skip(1)
            .chain(replicas.iter().map(|(_, r)| r))
        {
            node.cmd(&["CLUSTER", "MEET", "127.0.0.1", first.as_str()])
                .ok();
        }
        let total = masters.len() + replicas.len();
        for (master_id, r) in &replicas {
            poll_until(
                Duration::from_secs(30),
                "a replica to learn its master",
                || {
                    (!r.cmd(&["CLUSTER", "REPLICATE", master_id.as_str()])
                        .is_error())
                    .then_some(())
                },
            );
        }
        let cluster = Cluster {
            masters,
            replicas: replicas.into_iter().map(|(_, r)| r).collect(),
        };
        cluster.wait_ok(total);
        for r in &cluster.replicas {
            r.wait_replica_synced();
        }
        cluster
    }
}

/// A running cluster; every node is killed when dropped.
#[derive(Debug)]
pub struct Cluster {
    masters: Vec<Server>,
    replicas: Vec<Server>,
}

impl Cluster {
    /// A builder: 3 masters, no replicas, of `version`.
    pub fn builder(version: &ServerVersion) -> ClusterBuilder {
        ClusterBuilder {
            version: version.clone(),
            masters: 3,
            replicas: 0,
            modules: Vec::new(),
        }
    }

    fn wait_ok(&self, total: usize) {
        for node in self.nodes() {
            poll_until(
                Duration::from_secs(30),
                "cluster_state:ok on every node",
                || {
                    let info = node.cmd(&["CLUSTER", "INFO"]).ok().text();
                    let ok = info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{total}\r"));
                    ok.then_some(())
                },
            );
        }
    }

    /// The masters as started (a failover may change roles later).
    pub fn masters(&self) -> &[Server] {
        &self.masters
    }
    /// The replicas, grouped by master in start order.
    pub fn replicas(&self) -> &[Server] {
        &self.replicas
    }
    /// Every node, masters first.
    pub fn nodes(&self) -> impl Iterator<Item = &Server> {
        self.masters.iter().chain(self.replicas.iter())
    }
    /// The node that currently serves `slot` as master, asked of the first master.
    #[track_caller]
    pub fn master_for_slot(&self, slot: u16) -> &Server {
        let reply = self.masters[0].cmd(&["CLUSTER", "SLOTS"]).ok();
        for range in reply.array() {
            let r = range.array();
            let (lo, hi) = (r[0].int(), r[1].int());
            if (lo..=hi).contains(&i64::from(slot)) {
                let port = r[2].array()[1].int();
                if let Some(n) = self.nodes().find(|n| i64::from(n.port()) == port) {
                    return n;
                }
            }
        }
        panic!("no master serves slot {slot}")
    }
    /// The `DEBUG DIGEST`s of every current master XORed: with an odd number of non-empty
    /// masters this equals a standalone server's digest of the same data.
    #[track_caller]
    pub fn xor_digest(&self) -> String {
        let mut acc = [0u8; 20];
        for n in self.nodes() {
            let role = n.cmd(&["ROLE"]).ok().array();
            if role.first().map(Reply::text).as_deref() != Some("master") {
                continue;
            }
            let d = n.digest();
            for (i, a) in acc.iter_mut().enumerate() {
                *a ^= u8::from_str_radix(d.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0);
            }
        }
        acc.iter().map(|b| format!("{b:02x}")).collect()
    }
    /// Removes redis-sync's checkpoint keys (`redis-sync:checkpoint:*`: one per slot and one
    /// for the cluster) from every master, for a data comparison at the end of a test.
    #[track_caller]
    pub fn drop_checkpoints(&self) {
        for n in self.nodes() {
            let role = n.cmd(&["ROLE"]).ok().array();
            if role.first().map(Reply::text).as_deref() != Some("master") {
                continue;
            }
            let mut c = n.client();
            let mut cursor = "0".to_string();
            for _ in 0..100_000 {
                let page = c
                    .call(&[
                        "SCAN",
                        &cursor,
                        "MATCH",
                        "redis-sync:checkpoint:*",
                        "COUNT",
                        "1000",
                    ])
                    .expect("SCAN")
                    .array();
                let next = page.first().map(Reply::text).unwrap_or_else(|| "0".into());
                let keys: Vec<Vec<u8>> = page
                    .get(1)
                    .map(Reply::array)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Reply::bulk)
                    .collect();
                for k in &keys {
                    c.send(&[&b"UNLINK"[..], k]).expect("UNLINK");
                }
                for _ in &keys {
                    c.read_reply().expect("UNLINK reply");
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
    }

    /// Total keys over the current masters.
    #[track_caller]
    pub fn dbsize(&self) -> i64 {
        self.nodes()
            .filter(|n| n.cmd(&["ROLE"]).ok().array()[0].text() == "master")
            .map(Server::dbsize)
            .sum()
    }
}

impl Server {
    /// This node's cluster id (`CLUSTER MYID`).
    #[track_caller]
    pub fn node_id(&self) -> String {
        self.cmd(&["CLUSTER", "MYID"]).ok().text()
    }
}
