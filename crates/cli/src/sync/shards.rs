//! A Redis Cluster as the source: every master is found from one node (`CLUSTER NODES`), and
//! each shard runs the standalone pipeline of this module (its own replication link, ledger,
//! sink and checkpoint in the target, named after the shard's master) concurrently in this
//! process. `--shards` takes a subset, so several processes split one cluster.
//!
//! What a cluster adds to a single source, and how each is handled:
//! - **Failover.** A shard's link asks [`ShardLink::locate`] where the shard's master is before
//!   each reconnection. The promoted replica keeps the old master's replication ID as its
//!   second one, so the link continues with a partial resync. A restart finds the checkpoint
//!   of the old address by that ID (`adopt` in `target_checkpoint`).
//! - **Resharding**, classic (`MIGRATE`) or atomic (Valkey 9, Redis 8.4): the keys move from
//!   one shard's stream to another's, which this process reads apart; [`ShardLink::review`]
//!   looks at each command with what `resharding` knows, so that a moved
//!   key is neither deleted by its old shard's `DEL` nor written twice.
//! - **Sweeps** touch only the shard's own slots; `--flush-target` becomes such a sweep after
//!   each shard's full copy (a `FLUSHDB` would empty the other shards' keys).
//! - A `FLUSHALL`/`FLUSHDB` in one shard's stream empties only that shard on the source: in
//!   the target it removes the keys of the shard's slots (a sweep that keeps nothing), not
//!   the other shards' keys (see `Run::flush_shard`).

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use redis_sync_commands::hash_slot;
use redis_sync_resp::Frame;
use tokio::sync::watch;
use tracing::Instrument;

use super::cluster_topology::{Node, Topology, read_topology};
use super::resharding::{Asm, Import, Resharding, parse_asm, show_ranges};
use crate::client::Client;
use crate::config::Settings;
use crate::status;
use crate::url::Endpoint;

/// Number of hash slots.
const SLOTS: usize = 16384;
/// How long a topology read or a key check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `--shards`: which shards of a cluster source this process syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardSelect {
    /// The `k`-th (1-based) of `n` groups: shards in slot order, dealt round-robin.
    Group { k: usize, n: usize },
    /// Masters by `host:port` or node ID.
    Nodes(Vec<String>),
}

impl ShardSelect {
    /// Parses `K/N` or `node,node,…`.
    pub fn parse(spec: &str) -> anyhow::Result<ShardSelect> {
        let spec = spec.trim();
        if let Some((k, n)) = spec.split_once('/') {
            let k: usize = k.trim().parse().ok().context(BAD_SHARDS)?;
            let n: usize = n.trim().parse().ok().context(BAD_SHARDS)?;
            if n == 0 || k == 0 || k > n {
                bail!("--shards {spec}: K/N needs 1 ≤ K ≤ N (e.g. 1/2 and 2/2 for two processes)");
            }
            return Ok(ShardSelect::Group { k, n });
        }
        let nodes: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if nodes.is_empty() {
            bail!("{BAD_SHARDS}");
        }
        Ok(ShardSelect::Nodes(nodes))
    }

    /// The chosen masters among `masters` (in slot order).
    fn choose<'a>(&self, masters: &[&'a Node]) -> anyhow::Result<Vec<&'a Node>> {
        match self {
            ShardSelect::Group { k, n } => Ok(masters
                .iter()
                .enumerate()
                .filter(|(i, _)| i % n == k - 1)
                .map(|(_, m)| *m)
                .collect()),
            ShardSelect::Nodes(names) => {
                let mut out = Vec::new();
                for name in names {
                    let m = masters
                        .iter()
                        .find(|m| &m.id == name || &m.addr == name)
                        .with_context(|| {
                            format!(
                                "--shards: {name} is not a master of the source cluster (its \
                                 masters: {})",
                                masters
                                    .iter()
                                    .map(|m| m.addr.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                    out.push(*m);
                }
                Ok(out)
            }
        }
    }
}

const BAD_SHARDS: &str =
    "--shards: expected K/N (e.g. 2/3) or masters as host:port or node IDs, comma-separated";

/// Whether the source is a cluster: `--source-cluster`, or `INFO cluster` says so. A source
/// the CLI's client cannot reach is left to the replica, whose error is the clearer one.
pub(super) async fn is_cluster_source(s: &Settings) -> anyhow::Result<bool> {
    if s.files.is_some() {
        return Ok(false);
    }
    if s.source_cluster == Some(true) {
        return Ok(true);
    }
    let detected = async {
        let mut c = Client::connect(&s.source, TIMEOUT).await?;
        let info = c.info("cluster").await?;
        anyhow::Ok(crate::client::field(&info, "cluster_enabled") == Some("1"))
    }
    .await;
    match detected {
        Ok(yes) => {
            if !yes && s.shards.is_some() {
                bail!("--shards: the source {} is not a cluster", s.source);
            }
            Ok(yes)
        }
        Err(e) => {
            tracing::debug!("could not ask the source whether it is a cluster: {e:#}");
            Ok(false)
        }
    }
}

/// What the stream of one shard needs to know about the cluster, shared by its replica (to
/// follow a failover) and its loop (to tell a resharding's commands from a user's).
#[derive(Debug)]
pub struct ShardLink {
    /// The shard's master when the run began (`host:port`), for logs.
    pub name: String,
    /// Credentials for every node.
    ep: Endpoint,
    prefer_replica: bool,
    state: Mutex<LinkState>,
    /// Connections to other masters, for the key checks of a resharding.
    peers: tokio::sync::Mutex<HashMap<String, Client>>,
    /// Shared by every shard of this process.
    resharding: Arc<Resharding>,
    /// The offset up to which the target holds this shard's stream (for another shard's
    /// import that waits for it).
    applied: watch::Sender<u64>,
    /// The run's stop flag (a wait for another shard ends with it).
    stop: watch::Receiver<bool>,
    /// When the other shards' offsets were last read for [`wait_for_others`] (unix ms).
    ///
    /// [`wait_for_others`]: ShardLink::wait_for_others
    others_read: Mutex<i64>,
}

#[derive(Debug)]
struct LinkState {
    /// IDs of the nodes of this shard seen so far (a promoted replica is one of them).
    group: BTreeSet<String>,
    /// The current master's ID.
    master: String,
    /// Every node address seen, to ask for the topology when some are gone.
    addrs: Vec<String>,
    /// The last topology read and when (unix ms).
    topology: Option<(i64, Arc<Topology>)>,
}

/// What the shard's loop does with a command (see [`ShardLink::review`]): `None` applies it
/// as it is; otherwise `commands` are applied in its place (none: it is dropped), and `note`
/// says why.
#[derive(Debug, Default)]
pub struct Review {
    pub commands: Option<Vec<Vec<Bytes>>>,
    pub note: Option<String>,
}

impl Review {
    fn keep() -> Review {
        Review::default()
    }
    fn instead(commands: Vec<Vec<Bytes>>, note: impl Into<String>) -> Review {
        Review {
            commands: Some(commands),
            note: Some(note.into()),
        }
    }
    fn silently_dropped() -> Review {
        Review {
            commands: Some(Vec::new()),
            note: None,
        }
    }
}

/// How long an import's end waits for the exporting shard (then it goes on, and says so).
const IMPORT_WAIT: Duration = Duration::from_secs(60);

impl ShardLink {
    fn new(
        ep: &Endpoint,
        topo: &Topology,
        master: &Node,
        prefer_replica: bool,
        resharding: Arc<Resharding>,
        stop: watch::Receiver<bool>,
    ) -> ShardLink {
        ShardLink {
            name: master.addr.clone(),
            ep: ep.clone(),
            prefer_replica,
            state: Mutex::new(LinkState {
                group: topo.shard_of(master).map(|n| n.id.clone()).collect(),
                master: master.id.clone(),
                addrs: topo.nodes.iter().map(|n| n.addr.clone()).collect(),
                topology: Some((super::unix_ms(), Arc::new(topo.clone()))),
            }),
            peers: tokio::sync::Mutex::new(HashMap::new()),
            resharding,
            applied: watch::Sender::new(0),
            stop,
            others_read: Mutex::new(i64::MIN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `id` is (or was) one of this shard's.
    pub(super) fn has_node(&self, id: &str) -> bool {
        self.lock().group.contains(id)
    }

    /// Some key or slot is on its way between shards: the loop gives [`review`] the keys of
    /// every command.
    ///
    /// [`review`]: ShardLink::review
    pub fn needs_keys(&self) -> bool {
        self.resharding.needs_keys()
    }

    /// The target holds this shard's stream up to `offset`.
    pub fn publish_applied(&self, offset: u64) {
        self.applied.send_if_modified(|o| {
            let moved = offset > *o;
            *o = (*o).max(offset);
            moved
        });
    }

    /// A topology read after `since` (unix ms), from the cache or a node.
    async fn topology(&self, since: i64) -> anyhow::Result<Arc<Topology>> {
        let addrs = {
            let st = self.lock();
            if let Some((at, t)) = &st.topology
                && *at > since
            {
                return Ok(t.clone());
            }
            // The shard's master first (only a node's own line of `CLUSTER NODES` shows the
            // slots it is migrating), then its other nodes, then the rest.
            let mut addrs: Vec<String> = st.addrs.clone();
            if let Some((_, t)) = &st.topology {
                let mut own: Vec<&Node> = t
                    .nodes
                    .iter()
                    .filter(|n| st.group.contains(&n.id) && !n.down)
                    .collect();
                own.sort_by_key(|n| n.id != st.master);
                let own: Vec<String> = own.iter().map(|n| n.addr.clone()).collect();
                addrs.retain(|a| !own.contains(a));
                addrs.splice(0..0, own);
            }
            addrs
        };
        let at = super::unix_ms();
        let t = Arc::new(read_topology(&self.ep, &addrs).await?);
        let mut st = self.lock();
        for n in &t.nodes {
            if !st.addrs.contains(&n.addr) {
                st.addrs.push(n.addr.clone());
            }
        }
        // Follow the shard: the master whose shard shares a node with ours.
        if let Some(m) = t
            .masters()
            .into_iter()
            .find(|m| t.shard_of(m).any(|n| st.group.contains(&n.id)))
        {
            if m.id != st.master {
                tracing::warn!(
                    shard = %self.name,
                    "the shard's master is now {} ({}): a failover",
                    m.addr,
                    m.id
                );
                st.master = m.id.clone();
            }
            let ids: Vec<String> = t.shard_of(m).map(|n| n.id.clone()).collect();
            st.group.extend(ids);
        }
        st.topology = Some((at, t.clone()));
        Ok(t)
    }

    /// Where the shard's link should connect now: its master (or, with `--prefer-replica`, a
    /// healthy replica of it). `None` while the cluster has no master for the shard (a
    /// failover under way): the link retries.
    pub async fn locate(&self) -> Option<String> {
        let t = match self.topology(super::unix_ms()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(shard = %self.name, "reading the cluster's topology: {e:#}");
                return None;
            }
        };
        let master = self.lock().master.clone();
        let m = t.node(&master).filter(|m| m.is_master() && !m.down)?;
        if self.prefer_replica
            && let Some(r) = t.shard_of(m).find(|n| !n.is_master() && !n.down)
        {
            return Some(r.addr.clone());
        }
        Some(m.addr.clone())
    }

    /// The shard's master now.
    async fn master_addr(&self) -> Option<String> {
        let t = self.topology(super::unix_ms()).await.ok()?;
        let master = self.lock().master.clone();
        t.node(&master).map(|m| m.addr.clone())
    }

    /// The slots the shard's master serves now (for a sweep limited to them).
    pub async fn slots(&self) -> anyhow::Result<Vec<bool>> {
        let t = self.topology(super::unix_ms()).await?;
        let master = self.lock().master.clone();
        let mut owned = vec![false; SLOTS];
        if let Some(m) = t.node(&master) {
            for &(lo, hi) in &m.slots {
                for s in lo..=hi {
                    owned[usize::from(s)] = true;
                }
            }
        }
        Ok(owned)
    }

    /// Looks at a command of this shard's stream before it is applied; `keys` are its keys
    /// when [`needs_keys`](ShardLink::needs_keys) (else empty). `turn_ms` is when the loop's
    /// current turn began: the command arrived before it, so a topology read after it shows
    /// any slot migration that produced the command.
    pub async fn review(
        &self,
        args: &[Bytes],
        keys: &[Bytes],
        turn_ms: i64,
    ) -> anyhow::Result<Review> {
        let Some(name) = args.first() else {
            return Ok(Review::keep());
        };
        if let Some(asm) = parse_asm(args) {
            return Ok(self.slot_migration(args, asm).await);
        }
        // An import's commands: the target has these keys from the exporter already.
        if self.resharding.is_import(&self.name, keys) {
            return Ok(Review::silently_dropped());
        }
        let name = name.to_ascii_lowercase();
        match name.as_slice() {
            b"restore-asking" if args.len() > 1 => Ok(self.restored(args, turn_ms).await),
            b"del" | b"unlink" if args.len() > 1 => self.review_delete(args, turn_ms).await,
            _ => Ok(Review::keep()),
        }
    }

    /// The entries of an atomic slot migration (and the cluster's other bookkeeping).
    async fn slot_migration(&self, args: &[Bytes], asm: Asm) -> Review {
        match asm {
            Asm::Start {
                name,
                exporter,
                ranges,
            } if !self.has_node(&exporter) => {
                let record = self.resharding.import_started(Import {
                    name,
                    importer: self.name.clone(),
                    exporter,
                    ranges: ranges.clone(),
                    failed: false,
                });
                match record {
                    Some(r) => Review::instead(
                        vec![r],
                        format!(
                            "an atomic slot migration of slots {} into this shard: its import \
                             is not applied (the target has those keys from the exporting \
                             shard, whose stream carries their writes until the hand-over)",
                            show_ranges(&ranges)
                        ),
                    ),
                    None => Review::silently_dropped(),
                }
            }
            Asm::Done { name, ok } => {
                let Some(import) = self.resharding.import_of(&self.name, &name) else {
                    return Review::silently_dropped();
                };
                if ok {
                    self.wait_for_exporter(&import).await;
                }
                let record = self.resharding.import_ended(&import, ok);
                let note = if ok {
                    format!(
                        "the atomic slot migration of slots {} into this shard is done: from \
                         here this shard's stream carries them",
                        show_ranges(&import.ranges)
                    )
                } else {
                    format!(
                        "the atomic slot migration of slots {} into this shard failed: the \
                         removal of what it imported is not applied (the exporting shard keeps \
                         those keys)",
                        show_ranges(&import.ranges)
                    )
                };
                Review::instead(record.into_iter().collect(), note)
            }
            _ => Review::instead(
                Vec::new(),
                format!(
                    "{} is the cluster's own bookkeeping of a slot migration (the keys moved \
                     with it are carried by the importing shard's stream)",
                    args.iter()
                        .take(3)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ),
        }
    }

    /// At the end of an atomic import: waits until the exporting shard's link has applied
    /// everything the exporter wrote before it handed the slots over (its replication offset
    /// once it holds none of their keys), so that writes to a moved key reach the target in
    /// the source's order. Bounded by [`IMPORT_WAIT`] and the stop flag; then it goes on and
    /// says so.
    async fn wait_for_exporter(&self, import: &Import) {
        let Some(exporter) = self.resharding.link_of(&import.exporter) else {
            tracing::warn!(
                shard = %self.name,
                "the shard that gave slots {} is not synced by this process: its last writes to \
                 them and this shard's first may reach the target out of order",
                show_ranges(&import.ranges)
            );
            return;
        };
        let deadline = tokio::time::Instant::now() + IMPORT_WAIT;
        let offset = async {
            let addr = exporter.locate().await.context("no node")?;
            let mut c = Client::connect_addr(&self.ep, &addr, TIMEOUT).await?;
            // The exporter drops the slots' keys once it learns of the hand-over.
            let slots: Vec<u16> = import.ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
            loop {
                let mut left = 0;
                for chunk in slots.chunks(1000) {
                    let asks: Vec<Vec<Bytes>> = chunk
                        .iter()
                        .map(|s| {
                            vec![
                                Bytes::from_static(b"CLUSTER"),
                                Bytes::from_static(b"COUNTKEYSINSLOT"),
                                Bytes::from(s.to_string()),
                            ]
                        })
                        .collect();
                    left += c
                        .pipeline(&asks)
                        .await?
                        .iter()
                        .filter_map(Frame::as_integer)
                        .sum::<i64>();
                }
                if left == 0 || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let info = c.info("replication").await?;
            crate::client::field(&info, "master_repl_offset")
                .and_then(|o| o.parse::<u64>().ok())
                .context("no master_repl_offset")
        }
        .await;
        let offset = match offset {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(
                    shard = %self.name,
                    "could not read where shard {} is ({e:#}): writes to slots {} may reach \
                     the target out of order",
                    exporter.name,
                    show_ranges(&import.ranges)
                );
                return;
            }
        };
        if !self.caught_up_with(&exporter, offset, deadline).await {
            tracing::warn!(
                shard = %self.name,
                "shard {} has not applied its writes before the hand-over of slots {} (offset \
                 {offset}): going on, so they may reach the target out of order",
                exporter.name,
                show_ranges(&import.ranges)
            );
        }
    }

    /// Waits until `other`'s link has applied its stream up to `offset` (false: the deadline
    /// or a stop came first).
    async fn caught_up_with(
        &self,
        other: &ShardLink,
        offset: u64,
        deadline: tokio::time::Instant,
    ) -> bool {
        let mut applied = other.applied.subscribe();
        let mut stop = self.stop.clone();
        let waited = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                r = applied.wait_for(|o| *o >= offset) => r.is_ok(),
                _ = stop.wait_for(|s| *s) => false,
            }
        })
        .await;
        waited == Ok(true)
    }

    /// Before a classic resharding's `RESTORE` of a key: waits until every other shard's link
    /// has applied what its master held when the command arrived, which includes the
    /// exporter's every write to the key before the move (they precede the `RESTORE-ASKING`
    /// on the source). Else one of them, still in that link's queue, would reach the target
    /// after the `RESTORE` and be applied twice. Once per turn of the loop (`turn_ms`): the
    /// masters' offsets read after the turn began cover every command of the turn.
    async fn wait_for_others(&self, turn_ms: i64) {
        if *self.others_read.lock().unwrap_or_else(|e| e.into_inner()) > turn_ms {
            return;
        }
        let read_at = super::unix_ms();
        let deadline = tokio::time::Instant::now() + IMPORT_WAIT;
        for other in self.resharding.others(self) {
            let offset = async {
                let addr = other.master_addr().await.context("no master")?;
                let mut c = Client::connect_addr(&self.ep, &addr, TIMEOUT).await?;
                let info = c.info("replication").await?;
                crate::client::field(&info, "master_repl_offset")
                    .and_then(|o| o.parse::<u64>().ok())
                    .context("no master_repl_offset")
            }
            .await;
            let ok = match offset {
                Ok(o) => self.caught_up_with(&other, o, deadline).await,
                Err(_) => false,
            };
            if !ok {
                tracing::warn!(
                    shard = %self.name,
                    "shard {} did not catch up before a key moved from it was restored here: \
                     going on, so a write to the key may be applied twice",
                    other.name
                );
            }
        }
        *self.others_read.lock().unwrap_or_else(|e| e.into_inner()) = read_at;
    }

    /// `RESTORE-ASKING`: a key moved in by a classic resharding. It is applied as
    /// `RESTORE … REPLACE` (the target holds the exporter's copy until its `DEL`, which
    /// [`review_delete`](ShardLink::review_delete) drops), once the exporter's writes to the
    /// key are on the target ([`wait_for_others`](ShardLink::wait_for_others)).
    async fn restored(&self, args: &[Bytes], turn_ms: i64) -> Review {
        self.wait_for_others(turn_ms).await;
        let mut restore = Vec::with_capacity(args.len() + 1);
        restore.push(Bytes::from_static(b"RESTORE"));
        restore.extend(args[1..].iter().cloned());
        if !args[1..].iter().any(|x| x.eq_ignore_ascii_case(b"REPLACE")) {
            restore.push(Bytes::from_static(b"REPLACE"));
        }
        Review {
            commands: Some(vec![restore]),
            note: None,
        }
    }

    /// A `DEL`/`UNLINK`: drops the keys a resharding moved to another master: those the node
    /// their slot is moving to (or is at) holds, asked after the command arrived. A moved key's
    /// `DEL` is the exporter's last word on it (its writes came before the move), so dropping
    /// it keeps the value the importer restored (or will restore).
    async fn review_delete(&self, args: &[Bytes], turn_ms: i64) -> anyhow::Result<Review> {
        let mut moved = vec![false; args.len()];
        for (i, key) in args.iter().enumerate().skip(1) {
            // This shard removes what a failed import brought; the exporter keeps it.
            if self.resharding.is_failed_import(&self.name, key) {
                moved[i] = true;
            }
        }
        let t = self
            .topology(turn_ms)
            .await
            .with_context(|| format!("shard {}: reading the cluster's topology", self.name))?;
        let master = self.lock().master.clone();
        let me = t.node(&master);
        // The others, by the node their slot is moving to (or is at).
        let mut ask: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, key) in args.iter().enumerate().skip(1) {
            if moved[i] {
                continue;
            }
            let slot = hash_slot(key);
            let to = match me.and_then(|m| m.migrating.iter().find(|(s, _)| *s == slot)) {
                Some((_, to)) => t.node(to),
                None => t.owner(slot).filter(|o| o.id != master),
            };
            if let Some(to) = to {
                ask.entry(to.addr.clone()).or_default().push(i);
            }
        }
        let mut peers = self.peers.lock().await;
        for (addr, idx) in ask {
            let mut cmds = Vec::with_capacity(idx.len() * 2);
            for &i in &idx {
                cmds.push(vec![Bytes::from_static(b"ASKING")]);
                cmds.push(vec![Bytes::from_static(b"EXISTS"), args[i].clone()]);
            }
            let replies = match peers.get_mut(&addr) {
                Some(c) => c.pipeline(&cmds).await,
                None => Err(anyhow::anyhow!("not connected")),
            };
            let replies = match replies {
                Ok(r) => r,
                Err(_) => {
                    let mut c = Client::connect_addr(&self.ep, &addr, TIMEOUT)
                        .await
                        .with_context(|| {
                            format!("shard {}: checking keys moved to {addr}", self.name)
                        })?;
                    let r = c.pipeline(&cmds).await?;
                    peers.insert(addr.clone(), c);
                    r
                }
            };
            for (k, &i) in idx.iter().enumerate() {
                if replies.get(2 * k + 1).and_then(Frame::as_integer) == Some(1) {
                    moved[i] = true;
                }
            }
        }
        let n = moved.iter().filter(|m| **m).count();
        if n == 0 {
            return Ok(Review::keep());
        }
        let kept: Vec<Bytes> = args
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || !moved[*i])
            .map(|(_, a)| a.clone())
            .collect();
        let mut commands = Vec::new();
        if kept.len() > 1 {
            commands.push(kept);
        }
        Ok(Review::instead(
            commands,
            format!("the DEL of {n} key(s) moved to another shard by a resharding"),
        ))
    }
}

/// Syncs every chosen shard of the cluster source `s.source` concurrently, until all end
/// (or one fails: then the others stop cleanly, and its error is returned).
pub(super) async fn run(
    s: Settings,
    stop_tx: Arc<watch::Sender<bool>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    for (set, flag) in [
        (s.scan.is_some(), "--source-mode scan"),
        (s.tee_rdb.is_some(), "--tee-rdb"),
        (s.tee_aof.is_some(), "--tee-aof"),
        (s.heartbeat.is_some(), "--heartbeat"),
    ] {
        if set {
            bail!("{flag} is not supported with a cluster source yet (one file per shard)");
        }
    }
    let topo = read_topology(&s.source, &[s.source.addr()])
        .await
        .with_context(|| format!("reading the cluster's nodes from {}", s.source))?;
    let masters = topo.masters();
    if masters.is_empty() {
        bail!("the cluster at {} has no master serving slots", s.source);
    }
    let covered: usize = masters
        .iter()
        .flat_map(|m| m.slots.iter())
        .map(|&(lo, hi)| usize::from(hi - lo) + 1)
        .sum();
    let chosen = match &s.shards {
        Some(sel) => sel.choose(&masters)?,
        None => masters.clone(),
    };
    tracing::info!(
        "source: a cluster of {} shards ({covered} of {SLOTS} slots served); this process syncs \
         {}: {}",
        masters.len(),
        chosen.len(),
        chosen
            .iter()
            .map(|m| m.addr.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if chosen.is_empty() {
        bail!("--shards chose no shard of the {} masters", masters.len());
    }

    let resharding = Arc::new(Resharding::default());
    if s.transactions {
        let n = resharding
            .load(&s)
            .await
            .context("reading the resharding records in the target")?;
        if n > 0 {
            tracing::info!("{n} records of a resharding under way when the last run stopped");
        }
    }
    let mut shards = Vec::new();
    for m in &chosen {
        let link = Arc::new(ShardLink::new(
            &s.source,
            &topo,
            m,
            s.prefer_replica,
            resharding.clone(),
            stop.clone(),
        ));
        resharding.register(&link);
        let mut one = s.clone();
        let addr = match link.locate().await {
            Some(a) => a,
            None => m.addr.clone(),
        };
        let (host, port) = addr
            .rsplit_once(':')
            .context("a node address without a port")?;
        one.source = Endpoint {
            host: host.to_string(),
            port: port.parse().context("a node address with a bad port")?,
            db: None,
            ..s.source.clone()
        };
        one.state_file = s
            .state_file
            .with_extension(format!("{}.json", m.addr.replace([':', '.'], "_")));
        one.progress = false;
        one.metrics = None;
        // Not `FLUSHDB`, which would empty the other shards' keys too: after its full copy
        // each shard removes the keys of its slots that its snapshot does not have.
        one.sweep |= one.flush_target;
        one.flush_target = false;
        one.shard = Some(link);
        shards.push(one);
    }
    // The shards' loops run on this thread (as a single source's loop does) and their links'
    // and sinks' tasks on the runtime's worker: two cores busy, as for one source.
    let mut views = Vec::new();
    let mut runs = futures_util::stream::FuturesUnordered::new();
    for one in &shards {
        let shared: status::Shared = Arc::default();
        let name = one
            .shard
            .as_ref()
            .map_or_else(String::new, |l| l.name.clone());
        views.push((Some(name.clone()), shared.clone()));
        let stop = stop.clone();
        let span = tracing::info_span!("shard", source = %name);
        runs.push(
            async move {
                let r = super::sync_one(one, shared, stop).await;
                (name, r)
            }
            .instrument(span),
        );
    }
    if let Some(addr) = s.metrics {
        let bound = crate::metrics::serve(addr, views).await?;
        tracing::info!("metrics on http://{bound}/metrics (one series per shard)");
    }
    let mut first_error = None;
    while let Some((name, done)) = futures_util::StreamExt::next(&mut runs).await {
        if let Err(e) = done {
            tracing::error!("shard {name} stopped: {e:#}");
            let _ = stop_tx.send(true);
            first_error.get_or_insert(e.context(format!("shard {name}")));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cluster_topology::parse_nodes;
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10923->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca :30001@31001,host-a myself,master - 0 0 1 connected 0-5460
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 0 1426238316232 5 connected
";

    #[test]
    fn cluster_nodes_are_parsed_with_roles_slots_and_migrations() {
        let t = Topology {
            nodes: parse_nodes(NODES, "10.0.0.1"),
        };
        let masters: Vec<&str> = t.masters().iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(
            masters,
            ["10.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"]
        );
        assert_eq!(t.owner(0).map(|n| n.addr.as_str()), Some("10.0.0.1:30001"));
        assert_eq!(
            t.owner(10923).map(|n| n.addr.as_str()),
            Some("127.0.0.1:30003")
        );
        let third = t.masters()[2].clone();
        assert_eq!(
            third.migrating,
            [(
                10923,
                "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".to_string()
            )]
        );
        let first = t.masters()[0];
        let shard: Vec<&str> = t.shard_of(first).map(|n| n.addr.as_str()).collect();
        assert_eq!(shard, ["127.0.0.1:30004", "10.0.0.1:30001"]);
        assert!(t.nodes.iter().any(|n| n.down && n.addr.ends_with(":30005")));
    }

    #[test]
    fn shard_selections_parse_and_deal_shards_round_robin() {
        let t = Topology {
            nodes: parse_nodes(NODES, "h"),
        };
        let m = t.masters();
        let pick = |spec: &str| -> Vec<String> {
            ShardSelect::parse(spec)
                .and_then(|s| s.choose(&m))
                .map(|v| v.iter().map(|n| n.addr.clone()).collect())
                .unwrap_or_else(|e| vec![format!("error: {e}")])
        };
        assert_eq!(pick("1/2"), ["h:30001", "127.0.0.1:30003"]);
        assert_eq!(pick("2/2"), ["127.0.0.1:30002"]);
        assert_eq!(pick("127.0.0.1:30003"), ["127.0.0.1:30003"]);
        assert_eq!(
            pick("67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"),
            ["127.0.0.1:30002"]
        );
        assert!(pick("9.9.9.9:1")[0].starts_with("error: --shards: 9.9.9.9:1 is not"));
        for bad in ["0/2", "3/2", "x/2", "1/0", ","] {
            assert!(ShardSelect::parse(bad).is_err(), "{bad}");
        }
    }
}
