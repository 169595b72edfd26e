//! [`ReplicaEvent`]: what the replica yields, in stream order.

use bytes::Bytes;

/// One item of the replication stream.
///
/// A session yields `Connected`, then either `FullResync`, `Rdb` events (the snapshot, from
/// `Header` to `End`), `RdbDone` and `Command`s; or `Continued` and `Command`s. `Position`s
/// come between commands when the stream carried frames with nothing to apply. When the link
/// drops, `LinkLost` comes, and the replica reconnects: a `Continued` means nothing was lost or
/// repeated, a `FullResync` means the snapshot starts over (the consumer should start from an
/// empty target again, or overwrite).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReplicaEvent {
    /// The handshake succeeded.
    Connected {
        /// The source's address.
        addr: String,
        /// `redis 7.2.4` or `valkey 9.1.2`, when the source let us read `INFO server`.
        server: Option<String>,
    },
    /// A full synchronisation starts: the snapshot follows as [`ReplicaEvent::Rdb`] events.
    FullResync {
        /// The source's replication ID (`?` after a fallback to `SYNC`).
        replid: String,
        /// The replication offset of the snapshot.
        offset: u64,
        /// The payload size, when the source said it (disk-based sync).
        rdb_size: Option<u64>,
        /// True when a partial resynchronisation was asked for and refused.
        forced: bool,
    },
    /// An event of the snapshot, as decoded by [`redis_sync_rdb::Decoder`].
    Rdb(redis_sync_rdb::Event),
    /// The snapshot is complete; commands follow.
    RdbDone {
        /// The replication offset of the snapshot (the first command's bytes come after it).
        offset: u64,
        /// Payload bytes received.
        rdb_bytes: u64,
    },
    /// A write command from the stream.
    Command {
        /// The database it applies to (from the stream's `SELECT`s).
        db: u32,
        /// The arguments, command name first, as the source sent them.
        args: Vec<Bytes>,
        /// The replication offset after this command: once it is applied, this is the offset
        /// to report through [`AppliedOffset::set`](crate::AppliedOffset::set).
        offset: u64,
        /// Bytes the command took on the wire.
        wire_len: u64,
    },
    /// The stream reached `offset` through frames that carry nothing to apply (the source's
    /// `PING`s, `SELECT`, `REPLCONF GETACK`) since the event before. Once everything before it
    /// is applied, so is `offset`: report it like a command's (an idle source's offset grows
    /// only by its `PING`s, and a consumer that never counted them would never catch up).
    Position {
        /// The replication offset after those frames.
        offset: u64,
        /// The database selected there.
        db: u32,
    },
    /// A partial resynchronisation was accepted (`+CONTINUE`).
    Continued {
        /// The replication ID now in force (a new one after a failover).
        replid: String,
        /// The last offset already received; the stream continues after it.
        offset: u64,
    },
    /// The link dropped; the replica reconnects.
    LinkLost {
        /// Why, as a readable message.
        reason: String,
    },
}
