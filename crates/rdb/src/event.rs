//! What the decoder emits: one [`Event`] at a time, in file order.
//!
//! This is the contract between the decoder and everything downstream (the RDB → commands
//! converter, the replica, the sink, the CLI). A key arrives as [`Event::Key`], then zero or more
//! [`Event::Value`] chunks, each bounded by the decoder's chunk budget, then [`Event::KeyEnd`].
//! Chunks of one key concatenate: two `ListItems` chunks are the first and the rest of the list.

use bytes::Bytes;

/// Which server family wrote the file. It selects the type and opcode tables: Redis and Valkey
/// give different meanings to types 22 and 23 and opcodes 242 and 243 (RDB-FORMAT.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flavor {
    /// Magic `REDIS` + 4 digits (also Valkey up to 8.1, KeyDB, Dragonfly, …).
    Redis,
    /// Magic `VALKEY` + 3 digits (Valkey 9 and later).
    Valkey,
}

/// The file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which magic the file starts with.
    pub flavor: Flavor,
    /// The RDB version number (`80` for `VALKEY080`).
    pub version: u32,
}

/// A stream entry ID, `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The logical type of a key, whatever its encoding in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueType {
    /// A string.
    String,
    /// A list.
    List,
    /// A set.
    Set,
    /// A sorted set.
    SortedSet,
    /// A hash (with or without field TTLs).
    Hash,
    /// A stream.
    Stream,
    /// A module value (RedisJSON, RedisBloom, vector sets, …).
    Module,
}

/// A module type, decoded from its 64-bit id (9-character name and 10-bit encoding version).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleType {
    /// The raw 64-bit id as stored.
    pub id: u64,
    /// The 9-character name, e.g. `ReJSON-RL`.
    pub name: String,
    /// The module's encoding version.
    pub encver: u16,
}

/// The start of a key record.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The database the key lives in (from the last SELECTDB).
    pub db: u64,
    /// The key name.
    pub key: Bytes,
    /// The logical type.
    pub value_type: ValueType,
    /// The raw type byte of the record (the encoding in the file).
    pub type_byte: u8,
    /// Absolute expiry time in Unix milliseconds, if the key has one.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (written when the source uses an LRU eviction policy).
    pub idle_secs: Option<u64>,
    /// LFU frequency counter (written when the source uses an LFU eviction policy).
    pub lfu_freq: Option<u8>,
    /// Byte offset of the record's first byte (its first opcode) in the file.
    pub offset: u64,
}

/// One hash field, with its own expiry when the hash has field TTLs (Redis 7.4+, Valkey 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashField {
    /// The field name.
    pub field: Bytes,
    /// The value.
    pub value: Bytes,
    /// Absolute expiry in Unix milliseconds, if this field has one.
    pub expire_ms: Option<i64>,
}

/// One live stream entry (entries flagged deleted in the file are not emitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry ID.
    pub id: StreamId,
    /// Field/value pairs in order.
    pub fields: Vec<(Bytes, Bytes)>,
}

/// A stream's metadata, emitted after all its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// Number of live entries (`XLEN`).
    pub length: u64,
    /// The last ID ever generated.
    pub last_id: StreamId,
    /// The first entry's ID (stream v2+; derived for v1).
    pub first_id: Option<StreamId>,
    /// The largest ID ever deleted (stream v2+).
    pub max_deleted_id: Option<StreamId>,
    /// How many entries were ever added (stream v2+).
    pub entries_added: Option<u64>,
}

/// A consumer group's header; its pending entries and consumers follow as separate chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    /// The group name.
    pub name: Bytes,
    /// The last delivered ID.
    pub last_id: StreamId,
    /// The group's entries-read counter (stream v2+; `None` for v1 streams and when the server
    /// stored it as invalid, `-1`).
    pub entries_read: Option<u64>,
}

/// One entry of a group's pending entries list (PEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingEntry {
    /// The pending entry's ID.
    pub id: StreamId,
    /// Last delivery time, Unix milliseconds.
    pub delivery_time_ms: i64,
    /// How many times it was delivered.
    pub delivery_count: u64,
}

/// A consumer of the current group; the IDs it owns follow as `StreamConsumerPending` chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// The consumer name.
    pub name: Bytes,
    /// Last time the consumer was seen, Unix milliseconds.
    pub seen_time_ms: i64,
    /// Last time the consumer did something, Unix milliseconds (stream v3+).
    pub active_time_ms: Option<i64>,
}

/// One idempotent producer of a stream and the idempotency IDs it has used (RDB 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmpProducer {
    /// The producer id.
    pub pid: Bytes,
    /// Each idempotency ID with the stream entry ID it produced.
    pub entries: Vec<(Bytes, StreamId)>,
}

/// A stream's IDMP tail (type 26, `STREAM_LISTPACKS_4`, RDB 13; RDB-FORMAT.md §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdmp {
    /// How long idempotency IDs are kept, seconds.
    pub duration_secs: u64,
    /// How many idempotency IDs are kept per producer.
    pub max_entries: u64,
    /// The producers.
    pub producers: Vec<IdmpProducer>,
    /// Counter of idempotency IDs added.
    pub iids_added: u64,
    /// Counter of duplicates seen.
    pub iids_duplicates: u64,
}

/// A piece of a key's value. Each is bounded by the decoder's chunk budget.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ValueChunk {
    /// Bytes of a string value; a large string comes as several pieces to concatenate.
    String(Bytes),
    /// List items, head to tail.
    ListItems(Vec<Bytes>),
    /// Set members.
    SetMembers(Vec<Bytes>),
    /// Sorted set members with their scores.
    SortedSetMembers(Vec<(Bytes, f64)>),
    /// Hash fields.
    HashFields(Vec<HashField>),
    /// Stream entries in ID order.
    StreamEntries(Vec<StreamEntry>),
    /// The stream's metadata (after its entries).
    StreamMeta(StreamMeta),
    /// A consumer group starts.
    StreamGroup(StreamGroup),
    /// Pending entries of the current group.
    StreamPending(Vec<PendingEntry>),
    /// A consumer of the current group starts.
    StreamConsumer(StreamConsumer),
    /// IDs owned by the current consumer.
    StreamConsumerPending(Vec<StreamId>),
    /// The idempotent-producer (IDMP) state of a stream (type 26, RDB 13), after its groups.
    StreamIdmp(StreamIdmp),
    /// A module value: its type and the raw opcode stream after the id, kept byte for byte
    /// (MODULE_2 values are skipped generically, so no module is needed to read past them).
    Module {
        /// The module type.
        module: ModuleType,
        /// The raw value bytes following the module id (up to and including the EOF opcode).
        raw: Bytes,
    },
}

/// How the file's CRC-64 trailer turned out. A mismatch is an error, not an `End`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The stored CRC-64 matched the bytes.
    Verified(u64),
    /// RDB version < 5: the format has no checksum.
    Absent,
    /// The stored value is 0 (`rdbchecksum no`).
    Disabled,
    /// The caller turned checking off; the stored value is given.
    NotChecked(u64),
}

/// One decoded item of an RDB file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The magic and version; always first.
    Header(Header),
    /// An AUX field (`redis-ver`, `repl-id`, `repl-offset`, …).
    Aux {
        /// The field name.
        key: Bytes,
        /// The value (integer-encoded values are given as decimal text).
        value: Bytes,
    },
    /// A module's auxiliary data.
    ModuleAux {
        /// The module type.
        module: ModuleType,
        /// 1 = before the keyspace, 2 = after.
        when: u64,
        /// The raw opcode stream, kept byte for byte.
        raw: Bytes,
    },
    /// A function library (`FUNCTION LOAD` source, starting `#!lua name=…`). For the 7.0
    /// release candidates' `FUNCTION_PRE_GA` opcode only the code is given.
    Function {
        /// The library code.
        code: Bytes,
    },
    /// SELECTDB: following keys are in this db.
    SelectDb(u64),
    /// RESIZEDB hint.
    ResizeDb {
        /// Keys in the db.
        db_size: u64,
        /// Keys with an expiry.
        expires_size: u64,
    },
    /// Cluster slot info (Redis 7.4+ opcode, or Valkey's `slot-info` AUX is reported as `Aux`).
    SlotInfo {
        /// The slot.
        slot: u64,
        /// Keys in the slot.
        size: u64,
        /// Keys with an expiry in the slot.
        expires_size: u64,
    },
    /// Valkey 9 `SLOT_IMPORT` (opcode 243 in `VALKEY` files): an atomic slot migration job
    /// that was in progress when the file was written.
    SlotImport {
        /// The job name (40 bytes in practice).
        job_name: Bytes,
        /// Slot ranges `(start, end)`, inclusive.
        ranges: Vec<(u64, u64)>,
    },
    /// A key starts.
    Key(Key),
    /// A piece of the current key's value.
    Value(ValueChunk),
    /// The current key is complete.
    KeyEnd {
        /// The key's value as a `DUMP`/`RESTORE` payload (type byte, value bytes, 2-byte RDB
        /// version, CRC-64), sliced from the file without re-encoding — present when the
        /// decoder was asked for payloads and the value fits the payload limit.
        restore_payload: Option<Bytes>,
    },
    /// The EOF opcode and trailer; always last.
    End(Checksum),
}
