//! The replica side of Redis and Valkey replication, as an async stream of events.
//!
//! [`ReplicaBuilder`] configures a connection to a source (address, `AUTH`, TLS, timeouts,
//! spool) and [`ReplicaBuilder::start`] returns a [`Replica`]: it performs the handshake a real
//! replica does (`PING`, `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`,
//! `REPLCONF version` for Valkey, `PSYNC`), decodes the RDB snapshot as it arrives (disk-based
//! `$<len>` and diskless `$EOF:<mark>` payloads, never written to disk first) and then the
//! command stream, and yields [`ReplicaEvent`]s:
//!
//! - [`ReplicaEvent::FullResync`], then the snapshot as [`ReplicaEvent::Rdb`] events (from
//!   [`redis_sync_rdb`]), then [`ReplicaEvent::RdbDone`];
//! - [`ReplicaEvent::Command`] for each write, with its database, its replication offset
//!   (counted exactly as the source counts it) and its size on the wire;
//! - [`ReplicaEvent::Position`] where the stream moved on through frames with nothing to apply
//!   (the source's `PING`s, `SELECT`, `REPLCONF GETACK`);
//! - [`ReplicaEvent::LinkLost`] and [`ReplicaEvent::Continued`] when the link drops and a
//!   partial resynchronisation picks up where it stopped.
//!
//! The replica acknowledges (`REPLCONF ACK`) every second and on `REPLCONF GETACK`, with the
//! offset the consumer has applied ([`AppliedOffset`], [`AckMode`]); [`Replica::resume_point`]
//! gives a checkpoint to continue from after a restart ([`ReplicaBuilder::resume_from`]).
//! [`Metrics`] has the figures (bytes read, RDB size and progress, offsets, lag).
//!
//! # Offsets, acknowledgements and resumption
//!
//! Offsets are the source's `master_repl_offset`: [`ReplicaEvent::FullResync`] gives the
//! snapshot's offset, each [`ReplicaEvent::Command`] the offset after it. Every byte of the
//! stream counts (`PING`, `SELECT`, `REPLCONF GETACK` too), so once the consumer has caught up
//! [`Metrics::offset`] equals the source's `master_repl_offset`.
//!
//! - `REPLCONF ACK` carries what the consumer has *applied*: with [`AckMode::Delivered`] (the
//!   default) an event counts once [`Replica::next_event`] has returned it; with
//!   [`AckMode::Manual`] only what the consumer reports with [`AppliedOffset::set`] — work
//!   that position out with a [`Ledger`] (sans-IO: told what was written, filtered and
//!   acknowledged, it gives the applied prefix of the stream, across `+CONTINUE`, the end of
//!   the snapshot and reconnects). Its call order: `handle_full_resync` or
//!   `handle_continued` when a session starts; per command, in stream order, `handle_written`
//!   or `handle_settled`, and `handle_position` per `Position`; `handle_snapshot_applied`
//!   once the snapshot is on the target;
//!   `handle_acked` whenever the target acknowledges; then read `applied`. The replica
//!   acknowledges exactly what it is told: the position is worked out in one place. A
//!   `REPLCONF GETACK` (the source's `WAIT`) is answered as soon as everything before it is
//!   applied, so `WAIT` on the source means "applied to the target".
//! - When the link drops, the replica reconnects with backoff and asks for
//!   `PSYNC <replid> <offset + 1>` where `offset` is the last byte it decoded (as a Redis
//!   replica resumes from its processed offset): events decoded but not yet consumed stay
//!   queued, so nothing is lost or repeated. `+CONTINUE` gives [`ReplicaEvent::Continued`];
//!   a refused partial sync gives a [`ReplicaEvent::FullResync`] with `forced: true`.
//! - Across a restart, [`Replica::resume_point`] (replication ID, applied offset, selected db)
//!   is the checkpoint to store; [`ReplicaBuilder::resume_from`] continues from it, also on a
//!   replica of the source promoted after a failover (PSYNC2 keeps the old ID valid there).
//!
//! A slow consumer never slows the socket: a reader task queues what arrives in memory and
//! then in a spool file ([`SpoolConfig`]), so the source's output buffer for this replica does
//! not grow. Every wait has a timeout ([`Timeouts`]).
//!
//! ```
//! use redis_sync_replica::{ReplicaBuilder, ReplicaEvent};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Port 1 on loopback refuses connections: the replica says so and stops.
//! let mut replica = ReplicaBuilder::new("127.0.0.1:1").start(std::future::pending());
//! while let Some(event) = replica.next_event().await {
//!     match event {
//!         Ok(ReplicaEvent::Command { db, args, offset, .. }) => {
//!             println!("db {db} at {offset}: {args:?}");
//!             // With AckMode::Manual, report what is applied:
//!             // replica.applied().set(offset, db);
//!         }
//!         Ok(other) => println!("{other:?}"),
//!         Err(e) => {
//!             assert!(e.to_string().contains("cannot connect to 127.0.0.1:1"));
//!             break;
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! [`ReplicaBuilder::from_files`] reads a backup (RDB, AOF) and [`ReplicaBuilder::from_scan`]
//! a server that refuses replication (`SCAN` + `DUMP`, keyspace notifications) as the same
//! events.
//!
//! See `examples/print_writes.rs` in the repository for a complete program.
#![deny(missing_docs)]

mod config;
mod error;
mod event;
mod files;
mod handshake;
mod ledger;
mod metrics;
mod offset;
mod payload;
mod replica;
mod scan;
mod spool;
mod stream;
mod transport;

pub use config::{
    AckMode, Auth, Config, Reconnect, ReplicaBuilder, ResumePoint, SpoolConfig, Timeouts, TlsConfig,
};
pub use error::Error;
pub use event::ReplicaEvent;
pub use ledger::{Ledger, Replay};
pub use metrics::Metrics;
pub use offset::AppliedOffset;
pub use replica::Replica;
pub use scan::{IDLE_GRACE, ScanOptions};
