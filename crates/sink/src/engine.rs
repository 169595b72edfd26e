//! The engine task: the data path from [`Sink`](crate::Sink) calls to target sockets.
//!
//! One task owns every node connection's write half and everything in flight. Commands come
//! in on a channel, get a sequence number, wait in `pending`, and are *placed* on a node: the
//! command is RESP-encoded into the node's output buffer and its [`Entry`] appended to the
//! node's `queue`. Once per loop turn each buffer is written as far as the socket takes it at
//! once, the rest by the connection's writer task ([`crate::writer`]), so this task never
//! waits on a socket: a slow node does not hold up the
//! replies of the others. Connecting a node is a task of its own too (its result comes back as
//! an event). A reader task per connection ([`crate::reader`]) reports replies in order, and
//! the first `count` entries of that node's queue are complete: there is no per-reply message
//! and no lock.
//!
//! The in-flight window is per node: at most `window` commands or `window_bytes` bytes in its
//! queue. A full window stops placing, the loop waits for replies.
//!
//! A reply that asks for a resend (`MOVED`, `ASK`, `LOADING`, `BUSY`, `TRYAGAIN`,
//! `CLUSTERDOWN`, a lost connection) puts its entry in `held` and raises a *barrier*: nothing
//! new is placed until every node's queue is empty, so every command that might have to be
//! resent is known. Then the held entries go back to the front of `pending` in sequence order
//! (after a back-off for the retryable ones, and a topology refresh when a node went away or
//! turned replica). Commands of one slot always travel through one node's ordered queue, so
//! re-queuing them by sequence number keeps them in order. Barriers only happen on redirects
//! and failures, so the fast path is a plain pipeline.
//!
//! Acknowledgement: the oldest sequence number still pending, held or in flight bounds the
//! acknowledged offset: every offset tagged on a command older than it is acknowledged.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use redis_sync_resp::{Frame, Stream, encode_command};
use tokio::sync::{mpsc, oneshot, watch};

use crate::classify::{ErrorClass, advice, classify, parse_redirect};
use crate::cluster::{self, SlotMap};
use crate::config::{Conflict, ErrorPolicy, Settings};
use crate::conn::{Conn, TargetInfo};
use crate::deadletter::DeadLetter;
use crate::error::{Committed, Error, show_bytes, show_command};
use crate::locate::{self, Acked};
use crate::metrics::Counters;
use crate::rate::Limiter;
use crate::reader::{self, Event};
use crate::route;
use crate::slots;
use crate::writer::{NodeWriter, WriteSide};
use crate::{CheckpointWrite, TxCommand};

/// Holds at most this many commands taken off the input channel but not placed yet.
const PENDING_MAX: usize = 4096;

/// What one command costs in memory besides its RESP bytes while the sink holds it: its
/// `Entry`, its argument list, and the copies a checkpointed transaction keeps (to send it
/// again, to name a failed command). The queue's room and the in-flight window count it, so
/// their byte bounds hold for memory even when the commands are tiny (a 25-byte `INCR` costs
/// about ten times its size).
pub(crate) const COMMAND_OVERHEAD: usize = 256;

/// What each argument costs besides its bytes: its `Bytes` handle in the argument list. A
/// merged `MSET` of 128 small strings has 257 of them, more memory than the strings.
pub(crate) const ARG_OVERHEAD: usize = 40;

/// The memory cost of a command of these arguments (see [`COMMAND_OVERHEAD`]).
fn cost(args: &[Bytes]) -> usize {
    redis_sync_resp::command_len(args) + COMMAND_OVERHEAD + ARG_OVERHEAD * args.len()
}

/// What the [`Sink`](crate::Sink) handle sends to the task.
#[derive(Debug)]
pub(crate) enum Input {
    /// A command; `SELECT n` changes the db of the commands after it and is not sent as such.
    Command {
        args: Vec<Bytes>,
        offset: Option<u64>,
    },
    /// Several commands, each with its offset.
    Batch(Vec<(Vec<Bytes>, Option<u64>)>),
    /// The commands that follow rebuild `key` in `db` (full sync), until `KeyEnd`.
    KeyBegin { db: u32, key: Bytes },
    /// The end of the key started by `KeyBegin`.
    KeyEnd { offset: Option<u64> },
    /// A command whose reply the caller wants.
    Query {
        db: u32,
        args: Vec<Bytes>,
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    /// Answer once everything sent before is acknowledged.
    Flush(oneshot::Sender<Result<(), Error>>),
    /// Commands applied in one `MULTI … EXEC` with a checkpoint (one per slot on a cluster).
    Transaction {
        commands: Vec<TxCommand>,
        checkpoint: CheckpointWrite,
    },
    /// Cluster: what the slots' checkpoints say the target holds.
    SlotFloors(Vec<u64>),
    /// Several inputs in one hand-over (the full copy's keys, see `RdbLoader`): one channel
    /// operation and one wake-up of this task for many keys.
    Many(Vec<Input>, usize),
}

impl Input {
    /// The bytes this input holds while queued: what the [`Sink`](crate::Sink) takes from
    /// the queue's room before sending it, and the task gives back as it sends commands.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Input::Command { args, .. } | Input::Query { args, .. } => cost(args),
            Input::Batch(cmds) => cmds.iter().map(|(a, _)| cost(a)).sum(),
            Input::Transaction { commands, .. } => commands.iter().map(|c| cost(&c.args)).sum(),
            Input::KeyBegin { key, .. } => key.len(),
            Input::KeyEnd { .. } | Input::Flush(_) | Input::SlotFloors(_) => 0,
            Input::Many(_, bytes) => *bytes,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// A command of the caller's.
    Command,
    /// `SELECT`, sent by the task itself when a node's db must change.
    Select,
    /// `ASKING`, before a command redirected by `ASK`.
    Asking,
    /// The caller wants the reply.
    Query(Option<oneshot::Sender<Result<Frame, Error>>>),
    /// `MULTI`: the commands placed after it on its connection belong to a transaction.
    Multi,
    /// `DISCARD` of a transaction queued on a node whose `EXEC` will not be sent (the task's
    /// own; its answer does not matter).
    Discard,
    /// `EXEC`, with the commands of its transaction as placed (`SELECT`s the task inserted
    /// included, so the reply's elements line up) and their source offsets: to name the one
    /// that failed. Filled when the `EXEC` is placed.
    Exec(Vec<Member>),
    /// `RENAME`/`RENAMENX tmp key` of a key written through a temporary key: placed only
    /// when the rest of its group succeeded.
    Commit { key: Bytes, nx: bool },
}

#[derive(Debug)]
pub(crate) struct Entry {
    seq: u64,
    db: u32,
    args: Vec<Bytes>,
    offset: Option<u64>,
    kind: Kind,
    /// Full-sync key this command belongs to (for `Commit` and conflict handling).
    group: Option<u64>,
    /// Under conflict mode `block`, `BUSYKEY` means "the key exists".
    block: bool,
    attempts: u32,
    /// `ASK` target: send there, after `ASKING`.
    ask: Option<String>,
    /// A copy of a keyless command for every master: send to this node.
    pinned: Option<String>,
    /// Cluster slot (computed once, when queued).
    slot: Option<u16>,
    sent_at: Option<Instant>,
    /// Bytes of its RESP encoding.
    wire: usize,
    /// Part of the checkpointed transaction whose `MULTI` has this sequence number.
    txn: Option<u64>,
}

impl Entry {
    fn new(seq: u64, db: u32, args: Vec<Bytes>, offset: Option<u64>, kind: Kind) -> Entry {
        let wire = redis_sync_resp::command_len(&args);
        Entry {
            seq,
            db,
            args,
            offset,
            kind,
            group: None,
            block: false,
            attempts: 0,
            ask: None,
            pinned: None,
            slot: None,
            sent_at: None,
            wire,
            txn: None,
        }
    }

    /// What it counts against the queue's room and the window: its memory, roughly.
    fn cost(&self) -> usize {
        self.wire + COMMAND_OVERHEAD + ARG_OVERHEAD * self.args.len()
    }

    fn is_internal(&self) -> bool {
        matches!(self.kind, Kind::Select | Kind::Asking | Kind::Discard)
    }

    fn counts(&self) -> bool {
        matches!(
            self.kind,
            Kind::Command | Kind::Multi | Kind::Exec(_) | Kind::Commit { .. }
        )
    }

    fn wanted(&self) -> bool {
        matches!(
            self.kind,
            Kind::Query(_) | Kind::Exec(_) | Kind::Commit { nx: true, .. }
        )
    }
}

/// The read side of a node connection, for its reader task.
enum Reader {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Stream(tokio::io::ReadHalf<Stream>),
}

/// One target node: its connection, output buffer and the commands in flight on it.
#[derive(Debug)]
struct Node {
    addr: String,
    /// The connection's write side (see [`crate::writer`]); `None` while not connected.
    writer: Option<NodeWriter>,
    /// A connection attempt is under way (its result comes as `Event::Connected`).
    connecting: bool,
    want: Option<mpsc::UnboundedSender<u64>>,
    generation: u64,
    out: BytesMut,
    queue: VecDeque<Entry>,
    queue_bytes: usize,
    /// Replies numbered so far on this connection (commands placed).
    placed: u64,
    db: u32,
    connected_once: bool,
    /// Between a placed `MULTI` and its `EXEC`: the commands placed since (see `Kind::Exec`).
    tx: Option<Vec<Member>>,
    /// The checkpointed transaction whose `MULTI` is open on this connection.
    tx_owner: Option<u64>,
}

/// The checkpoint hash field naming the transaction that wrote it: `<engine id>:<seq>`.
const TXN_FIELD: &[u8] = b"txn";

/// An id for this engine's transactions, distinct across processes and restarts.
fn engine_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 48)
}

/// A command placed inside a transaction: `(db, args, source offset)`.
type Member = (u32, Vec<Bytes>, Option<u64>);

/// `(seq, db, args, source offset, role)` of one command of a checkpointed transaction.
type TxEntry = (u64, u32, Vec<Bytes>, Option<u64>, TxRole);

/// A checkpointed transaction not yet answered: enough to send it again, whole, when its
/// connection is lost before the `EXEC` reply and the target does not hold its checkpoint.
#[derive(Debug)]
struct TxnRecord {
    /// `(seq, db, args, offset, kind is EXEC)` of `MULTI`, the commands, the checkpoint, `EXEC`.
    entries: Vec<TxEntry>,
    key: Bytes,
    offset: u64,
    attempts: u32,
    /// The slot of every command of it (cluster).
    slot: Option<u16>,
    /// The server answered that it did not run (it is sent again).
    failed: bool,
    /// Sent again without counting an attempt: discarded because the one before it failed,
    /// or a member was skipped (each round has one member fewer, so this ends).
    collateral: bool,
}

impl TxnRecord {
    /// The entries that send transaction `id` (again), with their original sequence numbers.
    fn to_entries(&self, id: u64) -> Vec<Entry> {
        self.entries
            .iter()
            .map(|(seq, db, args, offset, role)| {
                let kind = match role {
                    TxRole::Multi => Kind::Multi,
                    TxRole::Member => Kind::Command,
                    TxRole::Exec => Kind::Exec(Vec::new()),
                };
                let mut e = Entry::new(*seq, *db, args.clone(), *offset, kind);
                e.txn = Some(id);
                e.attempts = self.attempts;
                e.slot = self.slot;
                e
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxRole {
    Multi,
    Member,
    Exec,
}

/// Hashes the sequence numbers that key `groups` (one insert and one remove per key of a full
/// copy): a multiplication, where the default SipHash showed in profiles. The keys are ours,
/// not an attacker's.
type SeqHash = std::hash::BuildHasherDefault<SeqHasher>;

#[derive(Debug, Default)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A full-sync key being received (between `KeyBegin` and `KeyEnd`).
#[derive(Debug)]
struct KeyBuf {
    db: u32,
    key: Bytes,
    tmp: Option<Bytes>,
    /// `tmp` is worked out (only when a key needs it: under `block`, or once it is big).
    tmp_known: bool,
    group: u64,
    /// Commands held while the key may still be small enough to write in place.
    held: Vec<Vec<Bytes>>,
    held_bytes: usize,
    /// True once commands go to the temporary key.
    via_tmp: bool,
}

#[derive(Debug, Default)]
struct Group {
    outstanding: usize,
    failed: bool,
}

/// The engine task's state.
pub(crate) struct Engine {
    settings: Settings,
    info: TargetInfo,
    input: mpsc::Receiver<Input>,
    input_open: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    nodes: Vec<Node>,
    by_addr: HashMap<String, usize>,
    slots: Option<SlotMap>,
    pending: VecDeque<Entry>,
    held: Vec<Entry>,
    barrier: bool,
    refresh: bool,
    backoff: u32,
    resume_at: Option<Instant>,
    next_seq: u64,
    input_db: u32,
    /// Checkpointed transactions sent and not answered yet, by the sequence number of their
    /// `MULTI`.
    txns: HashMap<u64, TxnRecord>,
    /// Transactions whose connection was lost: resolved when the barrier ends.
    lost_txns: Vec<u64>,
    /// The checkpoint keys with a transaction sent and not answered. One at a time per key,
    /// so a transaction the server refuses (`OOM` while a big pipelined input briefly held
    /// memory, a slot being migrated answering `ASK` for some keys) is never followed by a
    /// later one that runs and moves the checkpoint past it: the checkpoint always describes
    /// a prefix of the stream, and the stamp read back after a lost connection tells exactly
    /// whether the one transaction in flight ran.
    busy_keys: HashMap<Bytes, u64>,
    /// Tells this engine's checkpoint writes from any other's (a process restarted).
    id: u64,
    /// Cluster: per slot, the offset up to which the target holds the stream (from the slots'
    /// checkpoints when resuming); command parts at or below are not sent again.
    floors: Option<Vec<u64>>,
    /// The room of the sink's queue (see `Input::bytes`), and what this task owes back to it.
    room: std::sync::Arc<tokio::sync::Semaphore>,
    debt: usize,
    key: Option<KeyBuf>,
    groups: HashMap<u64, Group, SeqHash>,
    offsets: VecDeque<(u64, u64)>,
    flushes: Vec<(u64, oneshot::Sender<Result<(), Error>>)>,
    acked: watch::Sender<u64>,
    counters: std::sync::Arc<Counters>,
    dead_letter: Option<DeadLetter>,
    /// Under [`ErrorPolicy::Repair`]: where the refused commands' keys go to be repaired.
    pub(crate) repairs: Option<mpsc::UnboundedSender<crate::Repair>>,
    limiter: Limiter,
    fatal: Option<Error>,
    /// The command that caused `fatal`.
    stop_seq: Option<u64>,
    connect_failures: u32,
    /// With a locate (a target whose master can move): per checkpoint key, the last
    /// transaction the target acknowledged, checked on the master found after a reconnection
    /// (see [`crate::locate`]). Empty otherwise.
    acked_txns: HashMap<Bytes, Acked>,
    /// With a locate: a node answered `READONLY` (it became a replica); its connection is
    /// dropped once the replies at hand are handled, and the master looked up again.
    demoted: Option<usize>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("nodes", &self.nodes.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn backoff_delay(attempt: u32) -> Duration {
    Duration::from_millis((5u64 << attempt.min(8)).min(1000))
}

fn upper_eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        settings: Settings,
        info: TargetInfo,
        first: (String, Conn),
        slots: Option<SlotMap>,
        input: mpsc::Receiver<Input>,
        acked: watch::Sender<u64>,
        counters: std::sync::Arc<Counters>,
        dead_letter: Option<DeadLetter>,
        room: std::sync::Arc<tokio::sync::Semaphore>,
    ) -> Engine {
        let (events_tx, events) = mpsc::unbounded_channel();
        let limiter = Limiter::new(settings.rate, Instant::now());
        let mut engine = Engine {
            settings,
            info,
            input,
            input_open: true,
            events_tx,
            events,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            slots,
            pending: VecDeque::new(),
            held: Vec::new(),
            barrier: false,
            refresh: false,
            backoff: 0,
            resume_at: None,
            next_seq: 1,
            input_db: 0,
            txns: HashMap::new(),
            lost_txns: Vec::new(),
            busy_keys: HashMap::new(),
            id: engine_id(),
            floors: None,
            room,
            debt: 0,
            key: None,
            groups: HashMap::default(),
            offsets: VecDeque::new(),
            flushes: Vec::new(),
            acked,
            counters,
            dead_letter,
            repairs: None,
            limiter,
            fatal: None,
            stop_seq: None,
            connect_failures: 0,
            acked_txns: HashMap::new(),
            demoted: None,
        };
        let (addr, conn) = first;
        let i = engine.node_index(&addr);
        engine.attach(i, conn);
        engine
    }

    /// Runs until the input channel closes and everything is acknowledged, or a fatal error.
    pub(crate) async fn run(
        mut self,
        stop: std::sync::Arc<std::sync::OnceLock<Error>>,
    ) -> Result<(), Error> {
        let result = self.run_loop().await;
        if let Err(e) = &result {
            // Before the input channel closes, so a failed `write` finds the reason.
            let _ = stop.set(e.clone());
        }
        // A writer waiting for room learns that the task is gone.
        self.room.close();
        if let Some(dl) = &mut self.dead_letter {
            let flushed = dl.flush();
            if result.is_ok() {
                flushed?;
            }
        }
        if let Err(e) = &result {
            for (_, tx) in self.flushes.drain(..) {
                let _ = tx.send(Err(e.clone()));
            }
            for e2 in self.pending.iter_mut().chain(self.held.iter_mut()) {
                if let Kind::Query(Some(tx)) = std::mem::replace(&mut e2.kind, Kind::Command) {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
        result
    }

    async fn run_loop(&mut self) -> Result<(), Error> {
        loop {
            self.end_barrier().await?;
            self.dispatch().await?;
            if self.pending.is_empty() {
                // Inputs that made no command (SELECT, KeyEnd) or whose commands wait in the
                // current key's small buffer (bounded by `small_key_bytes`) owe nothing more.
                self.give_room(self.debt);
            }
            self.write_out();
            if let Some(e) = self.fatal.take() {
                // Acknowledge what succeeded before the failed command, then stop.
                let _ = self.update_acks();
                return Err(e);
            }
            self.update_acks()?;
            if !self.input_open
                && self.pending.is_empty()
                && self.held.is_empty()
                && self.lost_txns.is_empty()
                && self.key.is_none()
                && self.nodes.iter().all(|n| n.queue.is_empty())
            {
                return Ok(());
            }
            let take_input = self.input_open && self.pending.len() < PENDING_MAX;
            let resume_at = self.resume_at;
            tokio::select! {
                biased;
                ev = self.events.recv() => {
                    if let Some(ev) = ev {
                        self.on_event(ev);
                    }
                    while let Ok(ev) = self.events.try_recv() {
                        self.on_event(ev);
                    }
                }
                () = sleep_until(resume_at), if resume_at.is_some() => {
                    self.resume_at = None;
                }
                msg = self.input.recv(), if take_input => {
                    match msg {
                        Some(msg) => {
                            self.on_input(msg)?;
                            while self.pending.len() < PENDING_MAX {
                                match self.input.try_recv() {
                                    Ok(msg) => self.on_input(msg)?,
                                    Err(_) => break,
                                }
                            }
                        }
                        None => {
                            self.input_open = false;
                            if let Some(k) = self.key.take() {
                                // A key left open by a caller that stopped: write what came.
                                self.finish_key(k, None);
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- input ------------------------------------------------------------------------

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn tag_offset(&mut self, seq: u64, offset: Option<u64>) {
        if let Some(o) = offset {
            self.offsets.push_back((seq, o));
        }
    }

    fn on_input(&mut self, msg: Input) -> Result<(), Error> {
        self.debt += msg.bytes().min(self.settings.queue_bytes);
        self.take_input(msg)
    }

    fn take_input(&mut self, msg: Input) -> Result<(), Error> {
        match msg {
            Input::Many(inputs, _) => {
                for m in inputs {
                    self.take_input(m)?;
                }
            }
            Input::Command { args, offset } => self.on_command(args, offset),
            Input::Batch(commands) => {
                for (args, offset) in commands {
                    self.on_command(args, offset);
                }
            }
            Input::KeyBegin { db, key } => {
                if let Some(k) = self.key.take() {
                    self.finish_key(k, None);
                }
                let group = self.next_seq;
                let block = self.settings.conflict == Conflict::Block;
                let tmp = if block {
                    route::temp_key(&key, self.info.cluster)
                } else {
                    None
                };
                let via_tmp = block && tmp.is_some();
                self.groups.insert(group, Group::default());
                self.key = Some(KeyBuf {
                    db,
                    key,
                    tmp,
                    tmp_known: block,
                    group,
                    held: Vec::new(),
                    held_bytes: 0,
                    via_tmp,
                });
            }
            Input::KeyEnd { offset } => match self.key.take() {
                Some(k) => self.finish_key(k, offset),
                None => {
                    let seq = self.next_seq - 1;
                    self.tag_offset(seq, offset);
                }
            },
            Input::Query { db, args, reply } => {
                let seq = self.take_seq();
                let e = Entry::new(seq, db, args, None, Kind::Query(Some(reply)));
                self.push_pending(e);
            }
            Input::Flush(tx) => {
                let mark = self.next_seq;
                self.flushes.push((mark, tx));
            }
            Input::Transaction {
                commands,
                checkpoint,
            } => self.on_transaction(commands, checkpoint),
            Input::SlotFloors(floors) => self.floors = (!floors.is_empty()).then_some(floors),
        }
        Ok(())
    }

    /// `MULTI`, the commands, `HSET` of the checkpoint in db 0, `EXEC`; the offset is tagged on
    /// the `EXEC`, so it is acknowledged only once the whole transaction is.
    fn on_transaction(&mut self, commands: Vec<TxCommand>, checkpoint: CheckpointWrite) {
        if let Some(k) = self.key.take() {
            self.finish_key(k, None);
        }
        if self.info.cluster {
            self.on_cluster_transaction(commands, checkpoint);
            return;
        }
        let commands = commands
            .into_iter()
            .map(|c| (c.db, c.args, c.offset))
            .collect();
        let exec = self.emit_txn(
            commands,
            checkpoint.key,
            checkpoint.offset,
            checkpoint.fields,
            None,
        );
        self.tag_offset(exec, Some(checkpoint.offset));
    }

    /// A batch on a cluster: one transaction per slot (see [`crate::slots`]); the batch's
    /// offset is acknowledged once every one of them is.
    fn on_cluster_transaction(&mut self, commands: Vec<TxCommand>, checkpoint: CheckpointWrite) {
        let map = self.slots.as_ref();
        let master_slots = || -> Vec<u16> {
            let Some(map) = map else {
                return Vec::new();
            };
            map.masters()
                .iter()
                .filter_map(|m| (0..slots::SLOTS as u16).find(|&s| map.get(s) == Some(m)))
                .collect()
        };
        let (groups, dropped) = slots::group(commands, self.floors.as_deref(), master_slots);
        if dropped > 0 {
            Counters::add(&self.counters.replayed, dropped);
        }
        for g in groups {
            let key = slots::key(&checkpoint.key, g.slot);
            let fields = vec![(Bytes::from_static(b"db"), Bytes::from(g.db.to_string()))];
            self.emit_txn(g.commands, key, g.end, fields, Some(g.slot));
        }
        let last = self.next_seq - 1;
        self.tag_offset(last, Some(checkpoint.offset));
    }

    /// Queues `MULTI`, the commands, `HSET key offset … txn … fields…` (db 0), `EXEC`, all for
    /// `slot` on a cluster. Returns the sequence number of the `EXEC`.
    fn emit_txn(
        &mut self,
        commands: Vec<(u32, Vec<Bytes>, u64)>,
        key: Bytes,
        offset: u64,
        fields: Vec<(Bytes, Bytes)>,
        slot: Option<u16>,
    ) -> u64 {
        let first_db = commands.first().map_or(0, |c| c.0);
        let mut entries = Vec::with_capacity(commands.len() + 3);
        let multi = self.take_seq();
        entries.push((
            multi,
            first_db,
            vec![Bytes::from_static(b"MULTI")],
            None,
            TxRole::Multi,
        ));
        for (db, args, off) in commands {
            let seq = self.take_seq();
            entries.push((seq, db, args, Some(off), TxRole::Member));
        }
        let mut hset = Vec::with_capacity(6 + 2 * fields.len());
        hset.push(Bytes::from_static(b"HSET"));
        hset.push(key.clone());
        hset.push(Bytes::from_static(b"offset"));
        hset.push(Bytes::from(offset.to_string()));
        // Which transaction wrote it: read back after a lost connection.
        hset.push(Bytes::from_static(TXN_FIELD));
        hset.push(Bytes::from(format!("{}:{multi}", self.id)));
        for (f, v) in fields {
            hset.push(f);
            hset.push(v);
        }
        let seq = self.take_seq();
        entries.push((seq, 0, hset, None, TxRole::Member));
        let exec = self.take_seq();
        entries.push((
            exec,
            0,
            vec![Bytes::from_static(b"EXEC")],
            None,
            TxRole::Exec,
        ));
        let record = TxnRecord {
            entries,
            key,
            offset,
            attempts: 0,
            slot,
            failed: false,
            collateral: false,
        };
        self.push_txn(multi, &record);
        self.txns.insert(multi, record);
        Counters::add(&self.counters.txns_open, 1);
        exec
    }

    /// The transaction `id` is answered (or about to be sent again): forget it.
    fn txn_done(&mut self, id: u64) -> Option<TxnRecord> {
        let r = self.txns.remove(&id)?;
        self.counters
            .txns_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.busy_keys.get(&r.key) == Some(&id) {
            self.busy_keys.remove(&r.key);
        }
        Some(r)
    }

    /// Queues the entries of a checkpointed transaction (its first sending).
    fn push_txn(&mut self, id: u64, record: &TxnRecord) {
        for e in record.to_entries(id) {
            self.push_pending(e);
        }
    }

    fn on_command(&mut self, args: Vec<Bytes>, offset: Option<u64>) {
        let Some(name) = args.first() else {
            let seq = self.next_seq - 1;
            self.tag_offset(seq, offset);
            return;
        };
        // SELECT is the task's business: each command carries its db and each node
        // connection is switched when needed.
        if upper_eq(name, b"SELECT") {
            if let Some(db) = args
                .get(1)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
            {
                self.input_db = db;
            }
            let seq = self.next_seq - 1;
            self.tag_offset(seq, offset);
            return;
        }
        if self.key.is_some() {
            self.key_command(args);
            let seq = self.next_seq - 1;
            self.tag_offset(seq, offset);
            return;
        }
        if self.info.cluster {
            self.cluster_command(args, offset);
            return;
        }
        // Standalone: MULTI/EXEC go through; EXEC learns its commands to name a failure.
        let kind = if upper_eq(name, b"MULTI") {
            Kind::Multi
        } else if upper_eq(name, b"EXEC") {
            Kind::Exec(Vec::new())
        } else {
            Kind::Command
        };
        let seq = self.take_seq();
        self.tag_offset(seq, offset);
        let e = Entry::new(seq, self.input_db, args, offset, kind);
        self.push_pending(e);
    }

    /// A command for a cluster: `MULTI`/`EXEC` dropped (a transaction's commands go one by
    /// one, since they may span nodes), cross-slot `DEL`/`MSET`/… split per slot, keyless
    /// writes (`FLUSHALL`, `FUNCTION LOAD`) copied to every master.
    fn cluster_command(&mut self, args: Vec<Bytes>, offset: Option<u64>) {
        let seq = self.take_seq();
        self.tag_offset(seq, offset);
        let name = &args[0];
        if upper_eq(name, b"MULTI") || upper_eq(name, b"EXEC") {
            return;
        }
        match route::plan(&args) {
            route::Plan::Slot(slot) => {
                let mut e = Entry::new(seq, self.input_db, args, offset, Kind::Command);
                e.slot = slot;
                self.push_pending(e);
            }
            route::Plan::AllMasters => {
                let masters = self
                    .slots
                    .as_ref()
                    .map(SlotMap::masters)
                    .unwrap_or_default();
                for m in masters {
                    let mut e = Entry::new(seq, self.input_db, args.clone(), offset, Kind::Command);
                    e.pinned = Some(m);
                    self.push_pending(e);
                }
            }
            route::Plan::Split(parts) => {
                for (slot, part) in parts {
                    let mut e = Entry::new(seq, self.input_db, part, offset, Kind::Command);
                    e.slot = Some(slot);
                    self.push_pending(e);
                }
            }
        }
    }

    fn push_pending(&mut self, mut e: Entry) {
        if self.info.cluster && e.slot.is_none() && e.pinned.is_none() {
            e.slot = route::slot_of(&e.args);
        }
        if let Some(g) = e.group.and_then(|g| self.groups.get_mut(&g)) {
            g.outstanding += 1;
        }
        if e.counts() || matches!(e.kind, Kind::Query(_)) {
            Counters::add(&self.counters.commands_queued, 1);
        }
        self.pending.push_back(e);
    }

    /// A command of the full-sync key being received.
    fn key_command(&mut self, args: Vec<Bytes>) {
        let cluster = self.info.cluster;
        let Some(k) = &mut self.key else { return };
        if upper_eq(&args[0], b"RESTORE") {
            Counters::add(&self.counters.keys_restored, 1);
        }
        k.held_bytes += redis_sync_resp::command_len(&args);
        k.held.push(args);
        let big = k.held.len() > self.settings.small_key_commands
            || k.held_bytes > self.settings.small_key_bytes;
        if big && !k.tmp_known {
            k.tmp = route::temp_key(&k.key, cluster);
            k.tmp_known = true;
        }
        if big && k.tmp.is_some() {
            k.via_tmp = true;
        }
        if k.via_tmp || (big && k.tmp.is_none()) {
            let cmds = std::mem::take(&mut k.held);
            k.held_bytes = 0;
            for c in cmds {
                self.emit_key_command(c);
            }
        }
    }

    /// Places one command of the current key: renamed onto the temporary key when the key
    /// goes through one; with `REPLACE` dropped from `RESTORE` under conflict mode `block`.
    fn emit_key_command(&mut self, mut args: Vec<Bytes>) {
        let Some(k) = &self.key else { return };
        let (db, group) = (k.db, k.group);
        let block = self.settings.conflict == Conflict::Block;
        if k.via_tmp
            && let Some(tmp) = &k.tmp
        {
            route::rename_key(&mut args, &k.key, tmp);
        }
        let is_restore = upper_eq(&args[0], b"RESTORE");
        if block && is_restore {
            let keep: Vec<Bytes> = args
                .iter()
                .enumerate()
                .filter(|(i, a)| *i < 4 || !upper_eq(a, b"REPLACE"))
                .map(|(_, a)| a.clone())
                .collect();
            args = keep;
        }
        if block && !k.via_tmp && upper_eq(&args[0], b"DEL") {
            // In place under `block`: never delete what is there (only when no temporary key
            // can be named, which a cluster allows for a few odd key names).
            return;
        }
        let seq = self.take_seq();
        let mut e = Entry::new(seq, db, args, None, Kind::Command);
        e.group = Some(group);
        e.block = block;
        self.push_pending(e);
    }

    fn finish_key(&mut self, mut k: KeyBuf, offset: Option<u64>) {
        let held = std::mem::take(&mut k.held);
        let via_tmp = k.via_tmp;
        let restore = held.len() == 1 && upper_eq(&held[0][0], b"RESTORE");
        if via_tmp || (!restore && !held.is_empty()) {
            Counters::add(&self.counters.keys_rebuilt, 1);
        }
        let (db, key, tmp, group) = (k.db, k.key.clone(), k.tmp.clone(), k.group);
        self.key = Some(k);
        for c in held {
            self.emit_key_command(c);
        }
        self.key = None;
        if via_tmp && let Some(tmp) = tmp {
            let nx = self.settings.conflict == Conflict::Block;
            let name: &'static [u8] = if nx { b"RENAMENX" } else { b"RENAME" };
            let seq = self.take_seq();
            let args = vec![Bytes::from_static(name), tmp, key.clone()];
            let mut e = Entry::new(seq, db, args, None, Kind::Commit { key, nx });
            e.group = Some(group);
            self.push_pending(e);
        }
        let seq = self.next_seq - 1;
        self.tag_offset(seq, offset);
        if self.groups.get(&group).is_some_and(|g| g.outstanding == 0) {
            self.groups.remove(&group);
        }
    }

    // ---- placing commands -------------------------------------------------------------

    fn node_index(&mut self, addr: &str) -> usize {
        if let Some(&i) = self.by_addr.get(addr) {
            return i;
        }
        self.nodes.push(Node {
            addr: addr.to_string(),
            writer: None,
            connecting: false,
            want: None,
            generation: 0,
            out: BytesMut::with_capacity(64 * 1024),
            queue: VecDeque::new(),
            queue_bytes: 0,
            placed: 0,
            db: 0,
            connected_once: false,
            tx: None,
            tx_owner: None,
        });
        self.by_addr.insert(addr.to_string(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    fn attach(&mut self, i: usize, conn: Conn) {
        let (stream, buf) = conn.into_stream();
        // Plain TCP keeps its owned halves (the writer's direct `try_write`, the reader's
        // direct socket read); TLS is split with a shared lock, as its session is one state.
        let (wr, rd) = match stream {
            Stream::Tcp(tcp) => {
                let (rd, wr) = tcp.into_split();
                (WriteSide::Tcp(wr), Reader::Tcp(rd))
            }
            other => {
                let (rd, wr) = tokio::io::split(other);
                (WriteSide::Stream(wr), Reader::Stream(rd))
            }
        };
        let (want_tx, want_rx) = mpsc::unbounded_channel();
        let node = &mut self.nodes[i];
        if node.connected_once {
            Counters::add(&self.counters.reconnects, 1);
        }
        node.connected_once = true;
        node.generation += 1;
        node.writer = Some(NodeWriter::spawn(
            i,
            node.generation,
            wr,
            self.events_tx.clone(),
            self.counters.clone(),
        ));
        node.connecting = false;
        node.want = Some(want_tx);
        node.placed = 0;
        node.db = 0;
        node.tx = None;
        node.tx_owner = None;
        node.out.clear();
        let (generation, events) = (node.generation, self.events_tx.clone());
        match rd {
            Reader::Tcp(rd) => tokio::spawn(reader::run(i, generation, rd, buf, want_rx, events)),
            Reader::Stream(rd) => {
                tokio::spawn(reader::run(i, generation, rd, buf, want_rx, events))
            }
        };
    }

    /// Which node `e` goes to (its index in `nodes`).
    fn target_of(&mut self, e_ask: Option<&str>, slot: Option<u16>) -> Result<usize, Error> {
        if let Some(a) = e_ask {
            return Ok(self.node_index(a));
        }
        let Some(map) = &self.slots else {
            return Ok(0); // standalone: the one node
        };
        let slot = slot.unwrap_or(0);
        let Some(addr) = map.get(slot) else {
            return Err(Error::Topology {
                message: format!("no master serves slot {slot} (cluster not fully covered?)"),
            });
        };
        if let Some(&i) = self.by_addr.get(addr) {
            return Ok(i);
        }
        let addr = addr.to_string();
        Ok(self.node_index(&addr))
    }

    /// Places pending commands until the queue is empty, a window is full, the rate limit
    /// says wait, a barrier is up, or a full-sync key must wait for its group.
    async fn dispatch(&mut self) -> Result<(), Error> {
        while !self.barrier && self.fatal.is_none() && self.resume_at.is_none() {
            let Some(front) = self.pending.front() else {
                return Ok(());
            };
            if let Kind::Commit { .. } = front.kind
                && let Some(g) = front.group.and_then(|g| self.groups.get(&g))
            {
                if g.outstanding > 1 {
                    return Ok(()); // wait for the rest of the key to be acknowledged
                }
                if g.failed {
                    self.abandon_commit();
                    continue;
                }
            }
            // A checkpointed transaction is placed whole or not at all, so a barrier never
            // finds one half sent (its rest could otherwise go to another node, or outside
            // the `MULTI`).
            // One checkpointed transaction runs at a time per checkpoint key: while one waits
            // for its answer, the next one's `MULTI` and commands go (the server queues
            // them) but its `EXEC` waits until the first ran.
            let mut hold_exec = false;
            if let (Kind::Multi | Kind::Exec(_), Some(id)) = (&front.kind, front.txn)
                && let Some(key) = self.txns.get(&id).map(|r| r.key.clone())
            {
                match self.busy_keys.get(&key) {
                    Some(&other) if other != id => {
                        if matches!(front.kind, Kind::Exec(_)) {
                            return Ok(()); // wait for the answer of the one before
                        }
                        hold_exec = true;
                    }
                    _ if matches!(front.kind, Kind::Exec(_)) => {
                        self.busy_keys.insert(key, id);
                    }
                    _ => {}
                }
            }
            let (count, wire, cost) = match (&front.kind, front.txn) {
                (Kind::Multi, Some(id)) => {
                    let (n, w, c, last) = self
                        .pending
                        .iter()
                        .take_while(|e| e.txn == Some(id))
                        .fold((0, 0, 0, (0, 0)), |(n, w, c, _), e| {
                            (n + 1, w + e.wire, c + e.cost(), (e.wire, e.cost()))
                        });
                    if hold_exec {
                        (n - 1, w - last.0, c - last.1)
                    } else {
                        (n, w, c)
                    }
                }
                _ => (1, front.wire, front.cost()),
            };
            if let (Kind::Multi, Some(id), false) = (&front.kind, front.txn, hold_exec)
                && let Some(key) = self.txns.get(&id).map(|r| r.key.clone())
            {
                self.busy_keys.insert(key, id);
            }
            let slot = front.slot;
            let pinned = front.ask.clone().or_else(|| front.pinned.clone());
            let i = match self.target_of(pinned.as_deref(), slot) {
                Ok(i) => i,
                Err(e) => {
                    // A slot without a master: a failover is under way. Re-read the
                    // topology after a pause, a bounded number of times.
                    self.connect_failures += 1;
                    if self.connect_failures > self.settings.max_attempts {
                        return Err(e);
                    }
                    self.refresh = true;
                    self.barrier = true;
                    self.resume_at = Some(Instant::now() + backoff_delay(self.connect_failures));
                    return Ok(());
                }
            };
            let node = &self.nodes[i];
            if !node.queue.is_empty()
                && (node.queue.len() + count > self.settings.window
                    || node.queue_bytes + cost > self.settings.window_bytes)
            {
                return Ok(()); // window full: wait for replies
            }
            if self.limiter.is_active()
                && let Some(at) = self.limiter.admit_many(Instant::now(), count, wire)
            {
                self.resume_at = Some(at);
                return Ok(());
            }
            if self.nodes[i].writer.is_none() {
                self.connect(i);
                return Ok(()); // placed once connected
            }
            for _ in 0..count {
                let Some(e) = self.pending.pop_front() else {
                    return Ok(());
                };
                self.give_room(e.cost());
                self.place(i, e);
                if self.nodes[i].out.len() >= self.settings.batch_bytes {
                    self.write_node(i);
                    if self.nodes[i].writer.is_none() {
                        // Lost: the transaction is resolved whole when the barrier ends.
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// A temporary key whose writes failed is deleted instead of renamed into place.
    fn abandon_commit(&mut self) {
        let Some(mut e) = self.pending.pop_front() else {
            return;
        };
        if let Some(tmp) = e.args.get(1).cloned() {
            e.args = vec![Bytes::from_static(b"DEL"), tmp];
            e.wire = redis_sync_resp::command_len(&e.args);
            e.kind = Kind::Command;
            self.pending.push_front(e);
        }
    }

    /// Starts connecting node `i` (once: a connection already under way is left to finish).
    /// The result comes back as `Event::Connected`; meanwhile replies from the other nodes
    /// keep being handled.
    fn connect(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.connecting {
            return;
        }
        node.connecting = true;
        let addr = node.addr.clone();
        let dial = self.settings.dial.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = Conn::open(&addr, &dial).await.map(Box::new);
            let _ = events.send(Event::Connected { node: i, result });
        });
    }

    /// The outcome of [`connect`](Self::connect).
    fn on_connected(&mut self, i: usize, result: Result<Box<Conn>, Error>) {
        self.nodes[i].connecting = false;
        match result {
            Ok(conn) => {
                self.attach(i, *conn);
                self.connect_failures = 0;
            }
            Err(e @ Error::Auth { .. }) => self.fatal = self.fatal.take().or(Some(e)),
            Err(e) => {
                self.connect_failures += 1;
                if self.connect_failures > self.connect_budget() {
                    self.fatal = self.fatal.take().or(Some(e));
                    return;
                }
                tracing::warn!("reconnecting to {}: {e}", self.nodes[i].addr);
                self.resume_at = Some(Instant::now() + backoff_delay(self.connect_failures));
                if self.slots.is_some() {
                    self.refresh = true;
                    self.barrier = true;
                } else if self.settings.locate.is_some() {
                    // The barrier's end asks where the master is now.
                    self.barrier = true;
                }
            }
        }
    }

    fn place(&mut self, i: usize, mut e: Entry) {
        let node_db = self.nodes[i].db;
        if e.db != node_db && !e.is_internal() {
            let args = vec![Bytes::from_static(b"SELECT"), Bytes::from(e.db.to_string())];
            let sel = Entry::new(e.seq, e.db, args, None, Kind::Select);
            self.place_one(i, sel);
            self.nodes[i].db = e.db;
        }
        if e.ask.is_some() {
            let asking = Entry::new(
                e.seq,
                e.db,
                vec![Bytes::from_static(b"ASKING")],
                None,
                Kind::Asking,
            );
            self.place_one(i, asking);
            Counters::add(&self.counters.redirects, 1);
        }
        if e.attempts > 0 {
            Counters::add(&self.counters.resent, 1);
        }
        if self.settings.rate.adaptive.is_some() {
            e.sent_at = Some(Instant::now());
        }
        self.place_one(i, e);
    }

    fn place_one(&mut self, i: usize, mut e: Entry) {
        let node = &mut self.nodes[i];
        match &mut e.kind {
            Kind::Multi => {
                node.tx = Some(Vec::new());
                node.tx_owner = e.txn;
            }
            Kind::Exec(members) => {
                *members = node.tx.take().unwrap_or_default();
                node.tx_owner = None;
            }
            Kind::Asking => {}
            _ => {
                if let Some(tx) = &mut node.tx {
                    tx.push((e.db, e.args.clone(), e.offset));
                }
            }
        }
        if e.wanted()
            && let Some(w) = &node.want
        {
            let _ = w.send(node.placed);
        }
        encode_command(&e.args, &mut node.out);
        node.placed += 1;
        node.queue_bytes += e.cost();
        if e.counts() {
            Counters::add(&self.counters.commands_sent, 1);
        }
        node.queue.push_back(e);
    }

    fn write_out(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].out.is_empty() {
                self.write_node(i);
            }
        }
    }

    /// Writes node `i`'s encoded commands (see [`NodeWriter::write`]).
    fn write_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(w) = &node.writer else {
            node.out.clear();
            return;
        };
        let buf = node.out.split().freeze();
        if let Err(e) = w.write(buf) {
            let generation = node.generation;
            self.on_closed(i, generation, &e.to_string());
        }
    }

    // ---- replies ----------------------------------------------------------------------

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Replies {
                node,
                generation,
                count,
                frames,
            } => {
                if self.nodes[node].generation != generation {
                    return;
                }
                self.on_replies(node, count, frames);
                if let Some(i) = self.demoted.take() {
                    let generation = self.nodes[i].generation;
                    self.on_closed(i, generation, "the node became a replica (READONLY)");
                }
            }
            Event::Closed {
                node,
                generation,
                message,
            } => self.on_closed(node, generation, &message),
            Event::Connected { node, result } => self.on_connected(node, result),
        }
    }

    fn on_replies(&mut self, i: usize, count: u64, frames: Vec<(u64, Frame)>) {
        if count > 0 {
            self.connect_failures = 0;
        }
        let first = self.nodes[i].placed - self.nodes[i].queue.len() as u64;
        let mut frames = frames.into_iter().peekable();
        let mut acked = 0;
        let mut oldest_sent = None;
        for n in first..first + count {
            let Some(e) = self.nodes[i].queue.pop_front() else {
                break;
            };
            self.nodes[i].queue_bytes -= e.cost();
            if oldest_sent.is_none() {
                oldest_sent = e.sent_at;
            }
            let frame = match frames.peek() {
                Some((idx, _)) if *idx == n => frames.next().map(|(_, f)| f),
                _ => None,
            };
            if e.counts() && frame.as_ref().is_none_or(|f| !f.is_error()) {
                acked += 1;
            }
            self.complete(i, e, frame);
        }
        Counters::add(&self.counters.commands_acked, acked);
        self.limiter.on_replies(Instant::now(), acked, oldest_sent);
    }

    /// An entry's reply arrived (`frame` is `None` for an uninteresting success).
    fn complete(&mut self, i: usize, mut e: Entry, frame: Option<Frame>) {
        if let Some(id) = e.txn
            && self.lost_txns.contains(&id)
        {
            return; // being sent again whole: this reply is of the discarded attempt
        }
        if let (Kind::Exec(_), Some(Frame::Array(items))) = (&e.kind, &frame)
            && items.iter().any(|f| f.is_error())
        {
            self.exec_errors(i, e, items);
            return;
        }
        let error = frame.as_ref().and_then(reply_error);
        if let (Kind::Exec(_), Some(id), None) = (&e.kind, e.txn, &error) {
            // It ran: nothing of it is sent again.
            if let Some(r) = self.txn_done(id) {
                self.note_acked(id, &r);
            }
        }
        if let Some((index, msg)) = error {
            if let Kind::Query(tx) = &mut e.kind {
                let class = self.classify_reply(i, &msg);
                if !matches!(class, ErrorClass::Routing | ErrorClass::Retryable) {
                    if let (Some(tx), Some(f)) = (tx.take(), frame) {
                        let _ = tx.send(Ok(f));
                    }
                    return;
                }
            }
            self.on_error(i, e, &msg, index);
            return;
        }
        match &mut e.kind {
            Kind::Query(tx) => {
                if let (Some(tx), Some(f)) = (tx.take(), frame) {
                    let _ = tx.send(Ok(f));
                }
            }
            Kind::Commit { key, nx: true } if matches!(frame, Some(Frame::Integer(0))) => {
                let key = key.clone();
                self.conflict(e, &key);
                return;
            }
            _ => {}
        }
        self.group_done(&e, false);
    }

    fn group_done(&mut self, e: &Entry, failed: bool) {
        if let Some(g) = e.group
            && let Some(state) = self.groups.get_mut(&g)
        {
            state.outstanding = state.outstanding.saturating_sub(1);
            state.failed |= failed;
            if state.outstanding == 0
                && (matches!(e.kind, Kind::Commit { .. })
                    || self.key.as_ref().is_none_or(|k| k.group != g))
            {
                self.groups.remove(&g);
            }
        }
    }

    fn conflict(&mut self, e: Entry, key: &Bytes) {
        self.counters.error(ErrorClass::Data);
        let err = Error::Conflict {
            key: show_bytes(key, 100),
            db: e.db,
        };
        match self.settings.policy {
            ErrorPolicy::Stop => self.fail(e.seq, err),
            ErrorPolicy::Skip | ErrorPolicy::Repair => {
                let msg = err.to_string();
                self.skip(&e, ErrorClass::Data, &msg, &e.args);
                // The temporary key stays behind: delete it.
                if let Some(tmp) = e.args.get(1).cloned() {
                    let seq = self.take_seq();
                    let del = Entry::new(
                        seq,
                        e.db,
                        vec![Bytes::from_static(b"DEL"), tmp],
                        None,
                        Kind::Command,
                    );
                    self.pending.push_front(del);
                }
                self.group_done(&e, true);
            }
        }
    }

    fn skip(&mut self, e: &Entry, class: ErrorClass, msg: &str, args: &[Bytes]) {
        self.skip_at(e.seq, e.db, e.offset, class, msg, args);
    }

    fn skip_at(
        &mut self,
        seq: u64,
        db: u32,
        offset: Option<u64>,
        class: ErrorClass,
        msg: &str,
        args: &[Bytes],
    ) {
        Counters::add(&self.counters.skipped, 1);
        if let Some(dl) = &mut self.dead_letter
            && let Err(err) = dl.record(db, offset, class, msg, args)
        {
            self.fail(seq, err);
        }
        if class == ErrorClass::Data
            && let Some(tx) = &self.repairs
        {
            let _ = tx.send(crate::Repair {
                db,
                args: args.to_vec(),
                offset,
                error: msg.to_string(),
            });
        }
    }

    /// An `EXEC` ran and some of its commands failed (Redis applied the others: there is no
    /// rollback). Each failure goes to the error policy; under `stop` the error says what the
    /// committed transaction holds, so the caller can resume at the failed command.
    fn exec_errors(&mut self, i: usize, e: Entry, items: &[Frame]) {
        let Kind::Exec(members) = &e.kind else {
            return;
        };
        let done = e.txn.and_then(|id| Some((id, self.txn_done(id)?)));
        if let Some((id, r)) = &done {
            self.note_acked(*id, r);
        }
        let through = done.map(|(_, r)| r.offset);
        let failures: Vec<(usize, Bytes)> = items
            .iter()
            .enumerate()
            .filter_map(|(k, f)| match f {
                Frame::Error(m) | Frame::BulkError(m) => Some((k, m.clone())),
                _ => None,
            })
            .collect();
        let member = |k: usize| -> (u32, Vec<Bytes>, Option<u64>) {
            members
                .get(k)
                .cloned()
                .unwrap_or_else(|| (e.db, e.args.clone(), None))
        };
        for (_, msg) in &failures {
            self.counters.error(classify(msg, self.info.cluster));
        }
        match self.settings.policy {
            ErrorPolicy::Stop => {
                let Some((k, msg)) = failures.first() else {
                    return;
                };
                let (db, args, offset) = member(*k);
                let class = classify(msg, self.info.cluster);
                let text = String::from_utf8_lossy(msg).into_owned();
                let mut err = self.rejected(i, &e, &args, class, &text, msg);
                if let Error::Rejected {
                    db: d,
                    offset: o,
                    committed,
                    ..
                } = &mut err
                {
                    *d = db;
                    *o = offset;
                    *committed = through.map(|through| {
                        Box::new(Committed {
                            failed: failures
                                .iter()
                                .filter_map(|(k, _)| members.get(*k).and_then(|m| m.2))
                                .collect(),
                            through,
                        })
                    });
                }
                self.fail(e.seq, err);
            }
            ErrorPolicy::Skip | ErrorPolicy::Repair => {
                for (k, msg) in &failures {
                    let (db, args, offset) = member(*k);
                    let class = classify(msg, self.info.cluster);
                    let text = String::from_utf8_lossy(msg).into_owned();
                    self.skip_at(e.seq, db, offset, class, &text, &args);
                }
                self.group_done(&e, true);
            }
        }
    }

    fn on_error(&mut self, i: usize, mut e: Entry, msg: &[u8], index: Option<usize>) {
        let class = self.classify_reply(i, msg);
        self.counters.error(class);
        let text = String::from_utf8_lossy(msg).into_owned();
        if let Some(id) = e.txn {
            // A command of a checkpointed transaction refused when queued (the server then
            // discards the whole transaction at EXEC), or the EXEC itself refused.
            let resend = matches!(class, ErrorClass::Routing | ErrorClass::Retryable)
                || (matches!(
                    self.settings.policy,
                    ErrorPolicy::Skip | ErrorPolicy::Repair
                ) && !matches!(class, ErrorClass::Fatal)
                    && !matches!(e.kind, Kind::Exec(_) | Kind::Multi));
            if resend {
                if !matches!(class, ErrorClass::Routing | ErrorClass::Retryable) {
                    // Skipped into the dead-letter file; the rest goes again without it. (The
                    // checkpoint write, the one member without an offset, is the task's own:
                    // it is not the user's data, and the next batch's carries the position.)
                    if e.offset.is_some() {
                        self.skip_at(e.seq, e.db, e.offset, class, &text, &e.args);
                    }
                    if let Some(r) = self.txns.get_mut(&id) {
                        r.entries.retain(|x| x.0 != e.seq);
                        // Progress (one member fewer each time): not a failed attempt.
                        r.collateral = true;
                    }
                } else {
                    self.backoff = self.backoff.max(e.attempts + 1);
                    if class == ErrorClass::Routing {
                        Counters::add(&self.counters.redirects, 1);
                        // MOVED (a slot moved: follow it), ASK (a slot moving: a transaction
                        // cannot follow it key by key, so wait and read the map again).
                        match (parse_redirect(msg), &mut self.slots) {
                            (Some(r), Some(map)) if !r.ask => map.set(r.slot, &r.addr),
                            _ => self.refresh = self.slots.is_some(),
                        }
                    }
                }
                if let Some(r) = self.txns.get_mut(&id) {
                    // It did not run (the server answered): sent again whatever its
                    // checkpoint says.
                    r.failed = true;
                }
                // A SELECT queued in it did not run either: select again before the next.
                self.nodes[i].db = u32::MAX;
                if !self.lost_txns.contains(&id) {
                    self.lost_txns.push(id);
                }
                self.barrier = true;
                return;
            }
        }
        if matches!(e.kind, Kind::Asking | Kind::Discard) {
            return; // ASKING: the command after it will fail and be handled
        }
        if matches!(e.kind, Kind::Select) && !matches!(class, ErrorClass::Retryable) {
            let err = self.rejected(i, &e, &e.args, ErrorClass::Fatal, &text, msg);
            self.fail(e.seq, err);
            return;
        }
        match class {
            ErrorClass::Routing => {
                match (parse_redirect(msg), &mut self.slots) {
                    (Some(r), Some(map)) => {
                        if r.ask {
                            e.ask = Some(r.addr);
                        } else {
                            map.set(r.slot, &r.addr);
                            e.ask = None;
                            Counters::add(&self.counters.redirects, 1);
                        }
                    }
                    (Some(_), None) => {
                        let mut err = self.rejected(i, &e, &e.args, ErrorClass::Fatal, &text, msg);
                        if let Error::Rejected { advice, .. } = &mut err {
                            *advice = "the target is a cluster node: configure the sink with the cluster's addresses (cluster mode)";
                        }
                        self.fail(e.seq, err);
                        return;
                    }
                    (None, _) => {
                        // READONLY from a node that became a replica.
                        e.ask = None;
                        self.refresh = true;
                        self.backoff = self.backoff.max(1);
                    }
                }
                self.hold(e, &text);
            }
            ErrorClass::Retryable => {
                if msg.starts_with(b"BUSY ") || msg.starts_with(b"LOADING") {
                    self.limiter.on_pushback(Instant::now());
                }
                if msg.starts_with(b"CLUSTERDOWN") {
                    self.refresh = true;
                }
                self.backoff = self.backoff.max(e.attempts + 1);
                self.hold(e, &text);
            }
            ErrorClass::Capacity
                if self.settings.rate.adaptive.is_some()
                    && e.attempts < self.settings.max_attempts =>
            {
                self.limiter.on_pushback(Instant::now());
                self.backoff = self.backoff.max(e.attempts + 1);
                self.hold(e, &text);
            }
            ErrorClass::Data | ErrorClass::Capacity => {
                let failed_args = match &e.kind {
                    Kind::Exec(cmds) => exec_failure(index, cmds).unwrap_or_else(|| e.args.clone()),
                    _ => e.args.clone(),
                };
                if let Some(id) = e.txn {
                    self.txn_done(id);
                }
                if e.block && msg.starts_with(b"BUSYKEY") {
                    let key = e.args.get(1).cloned().unwrap_or_default();
                    self.conflict(e, &key);
                    return;
                }
                match self.settings.policy {
                    ErrorPolicy::Stop => {
                        let err = self.rejected(i, &e, &failed_args, class, &text, msg);
                        self.fail(e.seq, err);
                    }
                    ErrorPolicy::Skip | ErrorPolicy::Repair => {
                        self.skip(&e, class, &text, &failed_args);
                        self.group_done(&e, true);
                    }
                }
            }
            ErrorClass::Fatal => {
                let err = self.rejected(i, &e, &e.args, class, &text, msg);
                self.fail(e.seq, err);
            }
        }
    }

    fn rejected(
        &self,
        i: usize,
        e: &Entry,
        args: &[Bytes],
        class: ErrorClass,
        text: &str,
        msg: &[u8],
    ) -> Error {
        Error::Rejected {
            addr: self.nodes[i].addr.clone(),
            class,
            key: route::key_of(args).map(|k| show_bytes(k, 100)),
            command: show_command(args),
            db: e.db,
            message: text.to_string(),
            advice: advice(msg),
            offset: e.offset,
            committed: None,
        }
    }

    /// Stops the sink with `err`, caused by the command numbered `seq`: the acknowledged
    /// offset stays before it.
    fn fail(&mut self, seq: u64, err: Error) {
        self.stop_seq = Some(self.stop_seq.map_or(seq, |s| s.min(seq)));
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
    }

    /// Keeps `e` for a resend once every node's queue has drained.
    fn hold(&mut self, mut e: Entry, last_error: &str) {
        e.attempts += 1;
        if e.attempts > self.settings.max_attempts {
            let err = Error::RetriesExhausted {
                command: show_command(&e.args),
                attempts: e.attempts,
                message: last_error.to_string(),
            };
            self.fail(e.seq, err);
            return;
        }
        self.held.push(e);
        self.barrier = true;
    }

    fn on_closed(&mut self, i: usize, generation: u64, message: &str) {
        let node = &mut self.nodes[i];
        if node.generation != generation || node.writer.is_none() {
            return;
        }
        tracing::warn!("connection to {} lost: {message}", node.addr);
        node.writer = None;
        node.want = None;
        node.out.clear();
        node.queue_bytes = 0;
        // The server discarded an open MULTI with the connection: its transaction (whose
        // `EXEC` was not sent) goes again whole.
        node.tx = None;
        if let Some(id) = node.tx_owner.take() {
            if let Some(r) = self.txns.get_mut(&id) {
                r.failed = true;
            }
            if !self.lost_txns.contains(&id) {
                self.lost_txns.push(id);
            }
        }
        let node = &mut self.nodes[i];
        let lost: Vec<Entry> = node.queue.drain(..).collect();
        self.counters.error(ErrorClass::Retryable);
        let text = format!("connection to {} lost: {message}", self.nodes[i].addr);
        for e in lost {
            if let Some(id) = e.txn {
                // Resolved as a whole once the barrier ends (see `resolve_lost_txns`).
                if !self.lost_txns.contains(&id) {
                    self.lost_txns.push(id);
                }
                continue;
            }
            if !e.is_internal() {
                self.hold(e, &text);
            }
        }
        self.barrier = true;
        self.backoff = self.backoff.max(1);
        if self.slots.is_some() {
            self.refresh = true;
        }
    }

    /// When a barrier is up and nothing is in flight any more: refresh the topology if
    /// needed and put the held commands back in front, in sequence order.
    async fn end_barrier(&mut self) -> Result<(), Error> {
        if !self.barrier || self.nodes.iter().any(|n| !n.queue.is_empty()) || self.fatal.is_some() {
            return Ok(());
        }
        if let Some(at) = self.resume_at
            && at > Instant::now()
        {
            return Ok(());
        }
        if self.discard_open_transactions() {
            return Ok(()); // after the DISCARD's answer
        }
        if self.refresh {
            let mut seeds: Vec<String> = self.settings.seeds.clone();
            seeds.extend(self.nodes.iter().map(|n| n.addr.clone()));
            seeds.dedup();
            match cluster::fetch(&seeds, &self.settings.dial).await {
                Ok(map) => {
                    self.slots = Some(map);
                    self.refresh = false;
                }
                Err(e) => {
                    self.connect_failures += 1;
                    if self.connect_failures > self.settings.max_attempts {
                        return Err(e);
                    }
                    self.resume_at = Some(Instant::now() + backoff_delay(self.connect_failures));
                    return Ok(());
                }
            }
        }
        if self.settings.locate.is_some()
            && self.slots.is_none()
            && self
                .nodes
                .first()
                .is_some_and(|n| n.writer.is_none() && !n.connecting)
            && !self.relocate().await?
        {
            return Ok(()); // retried after a back-off
        }
        if !self.lost_txns.is_empty() && !self.resolve_lost_txns().await? {
            return Ok(());
        }
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|e| e.seq);
        for e in held.into_iter().rev() {
            self.pending.push_front(e);
        }
        self.barrier = false;
        if self.backoff > 0 {
            self.resume_at = Some(Instant::now() + backoff_delay(self.backoff - 1));
            self.backoff = 0;
        }
        Ok(())
    }

    /// A transaction whose commands are queued on a node while its `EXEC` waits (see
    /// `dispatch`) cannot run once the one before it failed: `DISCARD` it and send it again
    /// whole with the others. True when a `DISCARD` was placed (wait for its answer).
    fn discard_open_transactions(&mut self) -> bool {
        let mut placed = false;
        for i in 0..self.nodes.len() {
            if self.nodes[i].tx.is_none() || self.nodes[i].writer.is_none() {
                continue;
            }
            self.nodes[i].tx = None;
            // A SELECT queued in the discarded transaction did not run.
            self.nodes[i].db = u32::MAX;
            if let Some(id) = self.nodes[i].tx_owner.take() {
                if let Some(r) = self.txns.get_mut(&id) {
                    r.failed = true;
                    r.collateral = true;
                }
                if !self.lost_txns.contains(&id) {
                    self.lost_txns.push(id);
                }
            }
            let seq = self.next_seq.saturating_sub(1);
            let discard = Entry::new(
                seq,
                self.nodes[i].db,
                vec![Bytes::from_static(b"DISCARD")],
                None,
                Kind::Discard,
            );
            self.place_one(i, discard);
            placed = true;
        }
        placed
    }

    /// The connection carrying checkpointed transactions was lost before their `EXEC`
    /// replies: read the checkpoint back, drop the transactions the target holds (their
    /// `EXEC` ran) and queue the others again, whole, from `MULTI` (the server discarded
    /// them). False when the target cannot be asked yet (retried after a back-off).
    async fn resolve_lost_txns(&mut self) -> Result<bool, Error> {
        let mut ids = std::mem::take(&mut self.lost_txns);
        ids.sort_unstable();
        // The checkpoint of each transaction: one per target, one per slot on a cluster (read
        // from the node that serves the slot now).
        let first = self
            .nodes
            .first()
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        let mut stamps: HashMap<(String, Bytes), Option<(u64, u64)>> = HashMap::new();
        for id in &ids {
            let Some(r) = self.txns.get(id) else { continue };
            let addr = match (r.slot, &self.slots) {
                (Some(s), Some(map)) => map.get(s).map_or(first.clone(), str::to_string),
                _ => first.clone(),
            };
            let k = (addr, r.key.clone());
            if stamps.contains_key(&k) {
                continue;
            }
            match self.read_checkpoint(&k.0, &k.1).await {
                Ok(o) => {
                    stamps.insert(k, o);
                }
                Err(e) => {
                    self.connect_failures += 1;
                    if self.connect_failures > self.connect_budget() {
                        return Err(e);
                    }
                    tracing::warn!("reading the checkpoint back from {}: {e}", k.0);
                    self.lost_txns = ids;
                    self.resume_at = Some(Instant::now() + backoff_delay(self.connect_failures));
                    self.refresh |= self.slots.is_some();
                    return Ok(false);
                }
            }
        }
        let stamp_of = |r: &TxnRecord, slots: &Option<SlotMap>| -> Option<(u64, u64)> {
            let addr = match (r.slot, slots) {
                (Some(s), Some(map)) => map.get(s).map_or(first.clone(), str::to_string),
                _ => first.clone(),
            };
            stamps.get(&(addr, r.key.clone())).copied().flatten()
        };
        // A transaction whose EXEC was never sent did not run, whatever a stamp says.
        for e in &self.pending {
            if let (Kind::Exec(_), Some(id)) = (&e.kind, e.txn)
                && ids.contains(&id)
                && let Some(r) = self.txns.get_mut(&id)
            {
                r.failed = true;
            }
        }
        // Entries of these transactions not placed yet: they are queued again whole.
        self.pending
            .retain(|e| e.txn.is_none_or(|t| !ids.contains(&t)));
        for id in ids.into_iter().rev() {
            let Some(mut record) = self.txn_done(id) else {
                continue;
            };
            // Transactions on one connection apply in order: a later one's stamp means this
            // one ran too, unless the server said it did not.
            let held = stamp_of(&record, &self.slots);
            if !record.failed && held.is_some_and(|(engine, seq)| engine == self.id && seq >= id) {
                Counters::add(&self.counters.commands_acked, record.entries.len() as u64);
                self.note_acked(id, &record);
                continue;
            }
            record.failed = false;
            if !std::mem::take(&mut record.collateral) {
                record.attempts += 1;
            }
            if record.attempts > self.settings.max_attempts {
                let err = Error::RetriesExhausted {
                    command: "MULTI … EXEC (checkpointed batch)".into(),
                    attempts: record.attempts,
                    message: "connection to the target lost".to_string(),
                };
                self.fail(id, err);
                return Ok(true);
            }
            Counters::add(&self.counters.resent, record.entries.len() as u64);
            self.held.extend(record.to_entries(id));
            self.txns.insert(id, record);
            Counters::add(&self.counters.txns_open, 1);
        }
        Ok(true)
    }

    // ---- a target that moves (see `crate::locate`) -------------------------------------

    /// How many failed connection attempts in a row end the sink: a target found through a
    /// locate is given the time a failover takes.
    fn connect_budget(&self) -> u32 {
        if self.settings.locate.is_some() && self.slots.is_none() {
            locate::RELOCATE_ATTEMPTS
        } else {
            self.settings.max_attempts
        }
    }

    /// `classify`, except that with a locate a standalone node's `READONLY` means it became a
    /// replica in a failover: retryable, once its connection is dropped and the master found.
    fn classify_reply(&mut self, i: usize, msg: &[u8]) -> ErrorClass {
        if self.settings.locate.is_some() && self.slots.is_none() && msg.starts_with(b"READONLY") {
            self.demoted = Some(i);
            return ErrorClass::Retryable;
        }
        classify(msg, self.info.cluster)
    }

    /// Transaction `id` ran on the target: remembered (with a locate only) as the last one of
    /// its checkpoint key, to check the next master holds it.
    fn note_acked(&mut self, id: u64, r: &TxnRecord) {
        if self.settings.locate.is_none() {
            return;
        }
        let a = self.acked_txns.entry(r.key.clone()).or_default();
        if id >= a.seq {
            *a = Acked {
                seq: id,
                offset: r.offset,
            };
        }
    }

    /// Node 0 (the standalone target) lost its connection: asks the locate where the master
    /// is, connects there, checks it is a master and holds every acknowledged transaction, and
    /// attaches the connection. False when it must be tried again after a back-off.
    async fn relocate(&mut self) -> Result<bool, Error> {
        let Some(find) = self.settings.locate.clone() else {
            return Ok(true);
        };
        let timeout = self.settings.dial.timeout;
        let current = self.nodes[0].addr.clone();
        let addr = match tokio::time::timeout(timeout, (find.0)()).await {
            Ok(Some(a)) => a,
            _ => current.clone(),
        };
        let attempt = async {
            let mut conn = Conn::open(&addr, &self.settings.dial).await?;
            if !locate::is_master(&mut conn).await? {
                return Ok(None);
            }
            Ok(Some(conn))
        };
        let failed = match attempt.await {
            Ok(Some(mut conn)) => {
                if addr != current {
                    tracing::warn!(
                        "the target's master moved from {current} to {addr}: following it"
                    );
                    self.by_addr.remove(&current);
                    self.by_addr.insert(addr.clone(), 0);
                    self.nodes[0].addr = addr;
                }
                // Before anything is written there: does it hold what the old one acknowledged?
                match locate::check_committed(&mut conn, self.id, &self.acked_txns, TXN_FIELD).await
                {
                    Ok(()) => {}
                    Err(e @ Error::Regressed { .. }) => return Err(e),
                    Err(e) => {
                        self.connect_failures += 1;
                        if self.connect_failures > locate::RELOCATE_ATTEMPTS {
                            return Err(e);
                        }
                        tracing::warn!("reading the checkpoints back from the target: {e}");
                        self.resume_at =
                            Some(Instant::now() + backoff_delay(self.connect_failures));
                        return Ok(false);
                    }
                }
                self.attach(0, conn);
                self.connect_failures = 0;
                return Ok(true);
            }
            Ok(None) => format!("{addr} is not a master (yet): a failover is under way"),
            Err(e @ (Error::Auth { .. } | Error::Regressed { .. })) => return Err(e),
            Err(e) => {
                if self.connect_failures + 1 > locate::RELOCATE_ATTEMPTS {
                    return Err(e);
                }
                e.to_string()
            }
        };
        self.connect_failures += 1;
        if self.connect_failures > locate::RELOCATE_ATTEMPTS {
            return Err(Error::RetriesExhausted {
                command: "finding the target's master".into(),
                attempts: self.connect_failures,
                message: failed,
            });
        }
        tracing::warn!("looking for the target's master: {failed}");
        self.resume_at = Some(Instant::now() + backoff_delay(self.connect_failures));
        Ok(false)
    }

    /// The stamp (`engine id`, `MULTI` seq) of the checkpoint hash `key` (db 0) on `addr`.
    async fn read_checkpoint(&self, addr: &str, key: &Bytes) -> Result<Option<(u64, u64)>, Error> {
        let mut conn = Conn::open(addr, &self.settings.dial).await?;
        let reply = conn
            .call_many(&[
                vec![Bytes::from_static(b"SELECT"), Bytes::from_static(b"0")],
                vec![
                    Bytes::from_static(b"HGET"),
                    key.clone(),
                    Bytes::from_static(TXN_FIELD),
                ],
            ])
            .await?;
        Ok(reply
            .get(1)
            .and_then(Frame::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.split_once(':'))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
    }

    // ---- acknowledgement --------------------------------------------------------------

    /// Gives back up to `bytes` of the queue's room (what an input took when it was queued,
    /// as its commands leave the pending queue for a socket).
    fn give_room(&mut self, bytes: usize) {
        let n = bytes.min(self.debt);
        if n > 0 {
            self.debt -= n;
            self.room.add_permits(n);
        }
    }

    fn update_acks(&mut self) -> Result<(), Error> {
        let mut oldest = self.stop_seq.unwrap_or(self.next_seq);
        if let Some(e) = self.pending.front() {
            oldest = oldest.min(e.seq);
        }
        for e in &self.held {
            oldest = oldest.min(e.seq);
        }
        // A transaction being resolved after a lost connection is in no queue meanwhile.
        for &id in &self.lost_txns {
            oldest = oldest.min(id);
        }
        for n in &self.nodes {
            if let Some(e) = n.queue.front() {
                oldest = oldest.min(e.seq);
            }
        }
        if let Some(k) = &self.key {
            oldest = oldest.min(k.group);
        }
        let mut last = None;
        while let Some(&(seq, off)) = self.offsets.front() {
            if seq >= oldest {
                break;
            }
            last = Some(off);
            self.offsets.pop_front();
        }
        if let Some(off) = last {
            self.acked.send_if_modified(|v| {
                let changed = *v != off;
                *v = off;
                changed
            });
        }
        if !self.flushes.is_empty() {
            if let Some(dl) = &mut self.dead_letter {
                dl.flush()?;
            }
            let mut i = 0;
            while i < self.flushes.len() {
                if self.flushes[i].0 <= oldest {
                    let (_, tx) = self.flushes.swap_remove(i);
                    let _ = tx.send(Ok(()));
                } else {
                    i += 1;
                }
            }
        }
        Ok(())
    }
}

/// The first error in a reply: the reply itself, or an element of an `EXEC` array (with
/// its index).
fn reply_error(frame: &Frame) -> Option<(Option<usize>, Bytes)> {
    match frame {
        Frame::Error(e) | Frame::BulkError(e) => Some((None, e.clone())),
        Frame::Array(items) => items.iter().enumerate().find_map(|(i, f)| match f {
            Frame::Error(e) | Frame::BulkError(e) => Some((Some(i), e.clone())),
            _ => None,
        }),
        _ => None,
    }
}

/// The transaction command that failed inside an `EXEC`, when known.
fn exec_failure(index: Option<usize>, cmds: &[Member]) -> Option<Vec<Bytes>> {
    cmds.get(index?).map(|m| m.1.clone())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
