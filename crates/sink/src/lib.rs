//! Writers that get data into a Redis-compatible target fast and correctly, whatever the
//! target does: the last stage of redis-sync.
//!
//! - [`Sink`] writes to a standalone server or a cluster through one ordered pipeline per
//!   node: a bounded in-flight window (commands and bytes, [`SinkBuilder::window`]), replies
//!   matched to commands in order, each batch sent with one `write_all`, `SELECT` inserted when
//!   a command's db differs from the connection's, `AUTH` with a password or user + password.
//! - Every error reply is classified ([`ErrorClass`], [`classify`]): retryable ones are
//!   retried after a back-off, `MOVED`/`ASK` followed, data and capacity errors handled by the
//!   [`ErrorPolicy`] (stop with a message naming the key, the command, the server's error and
//!   what to do; or skip into a [dead-letter file](deadletter)), fatal ones stop the sink.
//!   Nothing is dropped silently: see [`Metrics`].
//! - Acknowledgement: tag a command with the replication offset it ends at;
//!   [`Sink::acked_offset`] is a watch of the highest offset whose commands (and every command
//!   before them) the target has acknowledged — for checkpoints and `REPLCONF ACK`.
//! - Full sync: [`Sink::key_begin`]/[`Sink::key_end`] around the commands that rebuild one
//!   key (from `redis_sync_rdb::rewrite`, `RESTORE` or native commands — [`TargetInfo`] says
//!   which the target can load); a key of many commands goes to a temporary key `RENAME`d into
//!   place once all of it is acknowledged. [`Conflict`] chooses between overwriting and
//!   refusing existing keys. [`RdbLoader`] does all of it from decoder events.
//! - Cluster: the slot map from `CLUSTER SHARDS`/`CLUSTER SLOTS`, commands routed by hash slot
//!   and split when they span slots (redis-sync-commands), `MOVED`, `ASK`, `TRYAGAIN`,
//!   `CLUSTERDOWN`, failovers and lost nodes handled by resending in order.
//! - Throughput: [`RateLimit`] (commands/s, bytes/s, adaptive back-off).
//! - [`FileSink`]: the same commands as a RESP/AOF file (`redis-cli --pipe`) or JSON lines.
//!
//! # Guarantees and limits
//!
//! - Per node, commands are applied in the order given; per cluster slot too, across
//!   redirections, failovers and lost connections (held commands are resent by sequence
//!   number once nothing is in flight).
//! - **Exactly-once with [`Sink::write_transaction`]**: commands and a checkpoint commit in one
//!   `MULTI … EXEC` (one per slot on a cluster, each with its slot's checkpoint). One such
//!   transaction runs at a time per checkpoint key (the next one's commands are already queued
//!   on the target; only its `EXEC` waits), so a refused one is never overtaken; after a lost
//!   connection the checkpoint's `txn` stamp says whether the one in flight ran, and it is
//!   sent again only if not. A command that fails inside a transaction that ran (no rollback
//!   in Redis) is reported with what committed ([`Committed`]).
//! - **At-least-once with [`Sink::write`]**: a command whose reply never came (connection lost)
//!   is resent. Redis 7.0+ `SHUTDOWN` waits for replicas, and the failover tests see neither
//!   loss nor duplicates, but a crash between apply and reply can duplicate a non-idempotent
//!   command.
//! - Under [`ErrorPolicy::Stop`], plain commands pipelined behind the failed one (at most one
//!   window) may already have been applied; the acknowledged offset stays before it.
//! - On a cluster target a source's `MULTI`/`EXEC` written with [`Sink::write`] are dropped
//!   and its commands sent one by one (they may span nodes).
//! - A standalone target whose master can move (Redis Sentinel): with
//!   [`SinkBuilder::locate`] a lost connection or a `READONLY` reply sends the sink to the
//!   master found then, with the same exactly-once resolution of the transactions in flight;
//!   a new master that lacks an acknowledged transaction (asynchronous replication) stops the
//!   sink with [`Error::Regressed`] (see `locate.rs`).
//! - Memory: the queue between the callers and the engine task is bounded in bytes
//!   ([`SinkBuilder::queue_bytes`]), the in-flight window too ([`SinkBuilder::window`]).
//! - A `LOADING`/`BUSY` reply is retried after a back-off; commands behind it that succeeded
//!   are not resent, so a retried command can land after later ones at that moment.
//!
//! # Example
//!
//! Deciding what to do with a target's error reply needs no server:
//!
//! ```
//! use redis_sync_sink::{classify, ErrorClass};
//!
//! assert_eq!(classify(b"OOM command not allowed when used memory > 'maxmemory'.", false), ErrorClass::Capacity);
//! assert_eq!(classify(b"MOVED 3999 127.0.0.1:7001", true), ErrorClass::Routing);
//! assert_eq!(classify(b"READONLY You can't write against a read only replica.", false), ErrorClass::Fatal);
//! ```
//!
//! Writing (needs a server on 127.0.0.1:6379):
//!
//! ```no_run
//! # async fn f() -> Result<(), redis_sync_sink::Error> {
//! use bytes::Bytes;
//! use redis_sync_sink::Sink;
//!
//! let sink = Sink::builder().standalone("127.0.0.1:6379").connect().await?;
//! let mut acked = sink.acked_offset();
//! sink.write(vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")], Some(42)).await?;
//! sink.flush().await?;
//! assert_eq!(*acked.borrow_and_update(), 42);
//! let metrics = sink.shutdown().await?;
//! assert_eq!(metrics.commands_acked, 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// `Error::Rejected` carries the whole context of a stop (address, key, command, offset, what
// committed); it is built once when the sink stops, never on the per-command path.
#![allow(clippy::result_large_err)]

mod classify;
mod cluster;
mod config;
mod conn;
pub mod deadletter;
mod engine;
mod error;
mod file;
mod loader;
mod locate;
mod metrics;
mod rate;
mod reader;
mod route;
mod slots;
mod writer;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use redis_sync_resp::{Frame, TlsConnector};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use classify::{ErrorClass, classify};
pub use config::{Conflict, ErrorPolicy, SinkBuilder};
pub use conn::{Auth, TargetInfo, payload_rdb_version};
pub use deadletter::DeadLetterFormat;
pub use error::{Committed, Error};
pub use file::{FileFormat, FileSink};
pub use loader::RdbLoader;
pub use metrics::Metrics;
pub use rate::RateLimit;

use engine::{Engine, Input};
use metrics::Counters;

/// The key of `slot`'s checkpoint for the checkpoint key `base` on a cluster target: a
/// cluster runs a transaction only within one slot, so each slot has its own (hash tag of
/// that slot). Fields: `offset`, `db`, `txn`.
pub fn slot_checkpoint_key(base: &[u8], slot: u16) -> Bytes {
    slots::key(base, slot)
}

/// A short hash tag whose slot is `slot` (`{tag}` in a key name puts the key in `slot`).
pub fn slot_tag(slot: u16) -> &'static str {
    slots::tag(slot)
}

/// Hash slots of a Redis cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// One command of a [`Sink::write_transaction`]: the db it applies to, its arguments (name
/// first) and the source replication offset at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxCommand {
    /// The database the command applies to.
    pub db: u32,
    /// The command, name first.
    pub args: Vec<Bytes>,
    /// The source replication offset at the end of this command.
    pub offset: u64,
}

/// The checkpoint written inside a [`Sink::write_transaction`]: a hash `key` in db 0 with the
/// field `offset` set to `offset` and the other `fields` as given.
///
/// The sink adds a field `txn` naming the transaction, and reads it back after a lost
/// connection to learn whether a transaction whose `EXEC` reply never came was applied (then
/// it is not sent again) or not (then it is sent again, whole): this is what makes the write
/// exactly-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointWrite {
    /// The hash key (db 0).
    pub key: Bytes,
    /// The offset the transaction brings the target to.
    pub offset: u64,
    /// More fields of the hash (replication ID, db, state, …).
    pub fields: Vec<(Bytes, Bytes)>,
}

/// A connected writer to a standalone or cluster target. See the [crate docs](crate).
///
/// Methods take `&self`: share it (e.g. in an `Arc`) between the tasks that produce commands;
/// commands from one task keep their order.
#[derive(Debug)]
pub struct Sink {
    tx: mpsc::Sender<Input>,
    acked: watch::Receiver<u64>,
    counters: Arc<Counters>,
    info: TargetInfo,
    stopped: Arc<OnceLock<Error>>,
    task: JoinHandle<()>,
    /// Bytes that may still be queued (see [`SinkBuilder::queue_bytes`]); the engine task
    /// gives them back as it sends commands.
    room: Arc<Semaphore>,
    queue_bytes: usize,
    repairs: Option<mpsc::UnboundedReceiver<Repair>>,
    /// Runs of small strings of a full copy may go as one `MSET` (standalone target, keys
    /// overwritten: not under [`Conflict::Block`], whose keys go through temporary keys).
    merge_strings: bool,
}

/// A command the target refused because its copy of the key differs, under
/// [`ErrorPolicy::Repair`]: it is in the dead-letter file, and its key wants copying afresh.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Repair {
    /// The target db it was sent to.
    pub db: u32,
    /// The command.
    pub args: Vec<Bytes>,
    /// Its source offset, when it had one.
    pub offset: Option<u64>,
    /// The target's error.
    pub error: String,
}

impl Sink {
    /// A builder with the defaults.
    pub fn builder() -> SinkBuilder {
        SinkBuilder::default()
    }

    /// Under [`ErrorPolicy::Repair`], the commands refused because the target's copy of their
    /// key differs, as they happen (once: later calls return `None`). The channel holds one
    /// entry per refused command until read.
    pub fn take_repairs(&mut self) -> Option<mpsc::UnboundedReceiver<Repair>> {
        self.repairs.take()
    }

    fn stopped(&self) -> Error {
        self.stopped.get().cloned().unwrap_or(Error::Closed)
    }

    async fn send(&self, input: Input) -> Result<(), Error> {
        if let Some(e) = self.stopped.get() {
            return Err(e.clone());
        }
        let bytes = input.bytes().min(self.queue_bytes);
        if bytes > 0 {
            let n = u32::try_from(bytes).unwrap_or(u32::MAX);
            // The engine task closes the semaphore when it stops. The common case (room in
            // the queue) takes no future: one call per command is the hot path of a writer.
            match self.room.try_acquire_many(n) {
                Ok(permits) => permits.forget(),
                Err(tokio::sync::TryAcquireError::Closed) => return Err(self.stopped()),
                Err(tokio::sync::TryAcquireError::NoPermits) => self
                    .room
                    .acquire_many(n)
                    .await
                    .map_err(|_| self.stopped())?
                    .forget(),
            }
        }
        match self.tx.try_send(input) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.stopped()),
            Err(mpsc::error::TrySendError::Full(input)) => {
                self.tx.send(input).await.map_err(|_| self.stopped())
            }
        }
    }

    /// Queues a command (name first). `offset`, when given, is the source replication offset
    /// at the end of this command: [`acked_offset`](Self::acked_offset) reaches it once this
    /// command and every one before it is acknowledged. `SELECT n` is not sent as is: it sets
    /// the db of the commands after it.
    ///
    /// Returns when the command is queued (waits while the queue is full); an error means the
    /// sink stopped, and says why.
    pub async fn write(&self, args: Vec<Bytes>, offset: Option<u64>) -> Result<(), Error> {
        self.send(Input::Command { args, offset }).await
    }

    /// Queues several commands with one hand-over to the engine task (cheaper per command
    /// than one [`write`](Self::write) each); `offset` is the source offset at the end of the
    /// last one. The queue holds up to 8192 hand-overs, so keep batches moderate (≤ 1000).
    pub async fn write_many(
        &self,
        commands: Vec<Vec<Bytes>>,
        offset: Option<u64>,
    ) -> Result<(), Error> {
        let n = commands.len();
        let batch = commands
            .into_iter()
            .enumerate()
            .map(|(i, args)| (args, if i + 1 == n { offset } else { None }))
            .collect();
        self.send(Input::Batch(batch)).await
    }

    /// Queues `commands` to be applied atomically together with `checkpoint`, in one
    /// `MULTI … EXEC` (standalone targets): the data and the position commit together or not
    /// at all. [`acked_offset`](Self::acked_offset) reaches `checkpoint.offset` once the `EXEC`
    /// is acknowledged.
    ///
    /// A connection lost before the `EXEC` reply is not a reason to apply the transaction
    /// twice: the sink reads the checkpoint back and sends the whole transaction again only
    /// when the target does not hold it. When a command inside fails at `EXEC` (the target
    /// does not roll back) and the policy is to stop, the error is an [`Error::Rejected`]
    /// whose `committed` says which commands failed in the transaction that did commit.
    ///
    /// On a cluster target, where a transaction may only touch one slot, the batch becomes
    /// one transaction per slot, each with the checkpoint of its slot
    /// ([`slot_checkpoint_key`]; `checkpoint.fields` are not written there); commands for
    /// every master cut the batch, so the order of every key is kept.
    pub async fn write_transaction(
        &self,
        commands: Vec<TxCommand>,
        checkpoint: CheckpointWrite,
    ) -> Result<(), Error> {
        self.send(Input::Transaction {
            commands,
            checkpoint,
        })
        .await
    }

    /// Cluster: `floors[slot]` is the offset up to which the target holds the stream in
    /// that slot (read from the slots' checkpoints, see [`slot_checkpoint_key`]). Parts of the
    /// commands of later [`write_transaction`](Self::write_transaction)s at or below their
    /// slot's floor are not sent again ([`Metrics::replayed`]). An empty vector forgets them
    /// (a new full copy: a new history).
    pub async fn set_slot_floors(&self, floors: Vec<u64>) -> Result<(), Error> {
        self.send(Input::SlotFloors(floors)).await
    }

    /// [`write`](Self::write) for a decoded [`redis_sync_resp::Command`].
    pub async fn write_command(
        &self,
        command: redis_sync_resp::Command,
        offset: Option<u64>,
    ) -> Result<(), Error> {
        self.write(command.into_args(), offset).await
    }

    /// The commands written from now until [`key_end`](Self::key_end) rebuild one full-sync
    /// key. If there are more than a few of them (see [`SinkBuilder::small_key`]) they go to a
    /// temporary key in the same slot, renamed over `key` once every one is acknowledged, so
    /// readers never see the key half written; under [`Conflict::Block`] always, with
    /// `RENAMENX`.
    pub async fn key_begin(&self, db: u32, key: Bytes) -> Result<(), Error> {
        self.send(Input::KeyBegin { db, key }).await
    }

    /// Ends the key started by [`key_begin`](Self::key_begin); `offset` as for
    /// [`write`](Self::write).
    pub async fn key_end(&self, offset: Option<u64>) -> Result<(), Error> {
        self.send(Input::KeyEnd { offset }).await
    }

    /// Hands several inputs over at once (see [`RdbLoader`]).
    pub(crate) async fn send_many(&self, inputs: Vec<Input>, bytes: usize) -> Result<(), Error> {
        match inputs.len() {
            0 => Ok(()),
            _ => self.send(Input::Many(inputs, bytes)).await,
        }
    }

    /// Sends a command in order with the others and returns its reply (error replies other
    /// than redirections and retryable ones are returned as [`Frame::Error`], not applied to
    /// the error policy).
    pub async fn query(&self, db: u32, args: Vec<Bytes>) -> Result<Frame, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Query { db, args, reply }).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Waits until every command queued before is acknowledged by the target (or skipped into
    /// the dead-letter file, which is flushed too).
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Flush(tx)).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Checkpointed transactions ([`write_transaction`](Self::write_transaction)) queued and
    /// not answered yet. A caller that batches commands can keep gathering while this is
    /// not zero: one transaction per key runs at a time, so bigger batches cost less.
    pub fn transactions_open(&self) -> u64 {
        self.counters
            .txns_open
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The highest source offset acknowledged so far (0 before any).
    pub fn acked_offset(&self) -> watch::Receiver<u64> {
        self.acked.clone()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        self.counters.snapshot()
    }

    /// What the sink learned about the target at connect.
    pub fn target(&self) -> &TargetInfo {
        &self.info
    }

    /// Whether [`RdbLoader`] may merge small strings into `MSET`s.
    pub(crate) fn merges_strings(&self) -> bool {
        self.merge_strings
    }

    /// The largest argument the sink may send: the target's `proto-max-bulk-len` or
    /// [`SinkBuilder::max_value_bytes`], whichever is smaller. Give it to the RDB decoder as
    /// its chunk budget so no value is sent as one oversized argument.
    pub fn max_value_bytes(&self) -> u64 {
        self.info.proto_max_bulk_len
    }

    /// The error the sink stopped with, if it did.
    pub fn error(&self) -> Option<Error> {
        self.stopped.get().cloned()
    }

    /// Flushes, then closes every connection. Returns the final counters, or the error the
    /// sink stopped with.
    pub async fn shutdown(self) -> Result<Metrics, Error> {
        let flushed = self.flush().await;
        let Sink {
            tx,
            counters,
            stopped,
            task,
            ..
        } = self;
        drop(tx);
        let _ = task.await;
        if let Some(e) = stopped.get() {
            return Err(e.clone());
        }
        flushed?;
        Ok(counters.snapshot())
    }
}

impl SinkBuilder {
    /// Connects to the target, learns what it is ([`TargetInfo`]) and starts the engine task.
    /// Must run inside a tokio runtime.
    pub async fn connect(self) -> Result<Sink, Error> {
        let mut s = self.s;
        if s.seeds.is_empty() {
            return Err(Error::Config("no target address given".into()));
        }
        if matches!(s.policy, ErrorPolicy::Skip | ErrorPolicy::Repair) && s.dead_letter.is_none() {
            return Err(Error::Config(
                "error policies skip and repair need a dead-letter file (nothing is dropped \
                 silently)"
                    .into(),
            ));
        }
        if let Some(tls) = &s.tls {
            // Read the CA and client certificate once, for every connection the sink opens.
            let connector = TlsConnector::new(tls).map_err(|e| Error::Tls {
                addr: s.seeds.join(", "),
                message: e.to_string(),
            })?;
            s.dial.tls = Some(connector);
        }
        if let Some(find) = s.locate.clone()
            && s.cluster != Some(true)
            && let Ok(Some(addr)) = tokio::time::timeout(s.dial.timeout, (find.0)()).await
        {
            // A target whose master can move: start where the master is now.
            s.seeds = vec![addr];
        }
        let mut first = None;
        let mut last_err = None;
        for seed in &s.seeds {
            match conn::Conn::open(seed, &s.dial).await {
                Ok(c) => {
                    first = Some((seed.clone(), c));
                    break;
                }
                // Retrying cannot fix refused credentials or a TLS mismatch.
                Err(e @ (Error::Auth { .. } | Error::Tls { .. })) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        let Some((addr, mut conn)) = first else {
            return Err(last_err.unwrap_or(Error::Closed));
        };
        if s.locate.is_some() && s.cluster != Some(true) && !locate::is_master(&mut conn).await? {
            // Its RDB-version probe writes a key: a replica would answer READONLY.
            return Err(Error::Config(format!(
                "{addr} is not a master (a failover under way?): try again once it is over"
            )));
        }
        let mut info = conn::probe(&mut conn).await?;
        match s.cluster {
            Some(true) if !info.cluster => {
                return Err(Error::Config(format!(
                    "{addr} is not in cluster mode: configure it as a standalone target"
                )));
            }
            Some(false) if info.cluster => {
                return Err(Error::Config(format!(
                    "{addr} is a cluster node: configure the sink with cluster mode and the \
                     cluster's addresses"
                )));
            }
            _ => {}
        }
        if let Some(max) = s.max_value_bytes {
            info.proto_max_bulk_len = info.proto_max_bulk_len.min(max);
        }
        let slots = if info.cluster {
            Some(cluster::fetch(&s.seeds, &s.dial).await?)
        } else {
            None
        };
        s.cluster = Some(info.cluster);
        let dead_letter = match &s.dead_letter {
            Some((path, format)) => Some(deadletter::DeadLetter::create(path, *format)?),
            None => None,
        };
        let (tx, rx) = mpsc::channel(s.channel);
        let queue_bytes = s.queue_bytes;
        let room = Arc::new(Semaphore::new(queue_bytes));
        let (acked_tx, acked) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let stopped = Arc::new(OnceLock::new());
        let repair_policy = s.policy == ErrorPolicy::Repair;
        let merge_strings = !info.cluster && s.conflict != Conflict::Block;
        let mut engine = Engine::new(
            s,
            info.clone(),
            (addr, conn),
            slots,
            rx,
            acked_tx,
            counters.clone(),
            dead_letter,
            room.clone(),
        );
        let repairs = repair_policy.then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            engine.repairs = Some(tx);
            rx
        });
        let stop = stopped.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = engine.run(stop).await {
                tracing::error!("sink stopped: {e}");
            }
        });
        Ok(Sink {
            tx,
            acked,
            counters,
            info,
            stopped,
            task,
            room,
            queue_bytes,
            repairs,
            merge_strings,
        })
    }
}
