//! The cluster as `CLUSTER NODES` describes it: masters and their replicas, the slots each
//! master serves and those it is migrating away (shown only in a node's own line), read from
//! the first node that answers.

use redis_sync_commands::SLOT_COUNT;

use crate::client::{Client, text};
use crate::url::Endpoint;

/// How long a topology read may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) id: String,
    pub(super) addr: String,
    /// The master's ID, for a replica.
    pub(super) master_id: Option<String>,
    /// Flagged `fail` (the cluster agreed it is down) or `noaddr`/`handshake`.
    pub(super) down: bool,
    /// Slot ranges served, inclusive.
    pub(super) slots: Vec<(u16, u16)>,
    /// Slots being moved away: (slot, the importing node's ID).
    pub(super) migrating: Vec<(u16, String)>,
}

impl Node {
    pub(super) fn is_master(&self) -> bool {
        self.master_id.is_none()
    }
    pub(super) fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(lo, hi)| lo <= slot && slot <= hi)
    }
    pub(super) fn first_slot(&self) -> u16 {
        self.slots.iter().map(|r| r.0).min().unwrap_or(u16::MAX)
    }
}

/// Parses `CLUSTER NODES`; a node without an IP (itself, before it learnt one) gets `host`.
pub(super) fn parse_nodes(body: &str, host: &str) -> Vec<Node> {
    let mut out = Vec::new();
    for line in body.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        // ip:port@cport[,hostname]
        let ip_port = f[1].split(['@', ',']).next().unwrap_or_default();
        let Some((ip, port)) = ip_port.rsplit_once(':') else {
            continue;
        };
        let ip = if ip.is_empty() { host } else { ip };
        let flags: Vec<&str> = f[2].split(',').collect();
        let down = flags
            .iter()
            .any(|fl| matches!(*fl, "fail" | "noaddr" | "handshake"));
        let master_id = (f[3] != "-" && !flags.contains(&"master")).then(|| f[3].to_string());
        let mut slots = Vec::new();
        let mut migrating = Vec::new();
        for s in &f[8..] {
            if let Some(m) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                if let Some((slot, to)) = m.split_once("->-")
                    && let Ok(slot) = slot.parse()
                {
                    migrating.push((slot, to.to_string()));
                }
                continue;
            }
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                && lo <= hi
                && hi < SLOT_COUNT
            {
                slots.push((lo, hi));
            }
        }
        out.push(Node {
            id: f[0].to_string(),
            addr: format!("{ip}:{port}"),
            master_id,
            down,
            slots,
            migrating,
        });
    }
    out
}

/// The cluster as one node saw it.
#[derive(Debug, Clone, Default)]
pub(super) struct Topology {
    pub(super) nodes: Vec<Node>,
}

impl Topology {
    /// Masters serving slots and not down, in slot order.
    pub(super) fn masters(&self) -> Vec<&Node> {
        let mut m: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.is_master() && !n.down && !n.slots.is_empty())
            .collect();
        m.sort_by_key(|n| n.first_slot());
        m
    }
    pub(super) fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
    /// The master serving `slot`.
    pub(super) fn owner(&self, slot: u16) -> Option<&Node> {
        self.masters().into_iter().find(|n| n.owns(slot))
    }
    /// A master and its replicas.
    pub(super) fn shard_of<'a>(&'a self, master: &'a Node) -> impl Iterator<Item = &'a Node> {
        self.nodes
            .iter()
            .filter(move |n| n.id == master.id || n.master_id.as_deref() == Some(&master.id))
    }
}

/// Reads `CLUSTER NODES` from the first of `addrs` that answers.
pub(super) async fn read_topology(ep: &Endpoint, addrs: &[String]) -> anyhow::Result<Topology> {
    let mut last = None;
    for addr in addrs {
        let r = async {
            let mut c = Client::connect_addr(ep, addr, TIMEOUT).await?;
            let body = c.ok(&["CLUSTER", "NODES"]).await?;
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
            anyhow::Ok(parse_nodes(&text(&body).unwrap_or_default(), host))
        }
        .await;
        match r {
            Ok(nodes) if !nodes.is_empty() => return Ok(Topology { nodes }),
            Ok(_) => last = Some(anyhow::anyhow!("{addr}: empty CLUSTER NODES")),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no node to ask")))
}
