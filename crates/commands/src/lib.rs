//! The command classifier of redis-sync: a sans-IO library that decides, for every command of
//! a replication stream, what it is, which keys it touches, which hash slot they live in,
//! whether a replica applies it, and how to rewrite it for a cluster target or a filter.
//!
//! - [`table`]: every command and subcommand of Redis 8.x, Redis 7.x and Valkey 9.x (union),
//!   generated from the servers' own `COMMAND` / `COMMAND DOCS` replies: arity, flags, ACL
//!   categories, key specs, tips, the version that introduced it, and which server has it.
//!   [`lookup`] resolves `args` (name first, subcommands included) to a [`CommandDef`].
//! - [`key_positions`]: the key arguments, read from the key specs (index or keyword search,
//!   range or key count: `EVAL`/`FCALL` numkeys, `XREAD … STREAMS`, `ZUNIONSTORE`, `LMPOP`,
//!   `SINTERCARD`, `GEORADIUS … STORE`, plus Redis's own procedures for `SORT … STORE` and
//!   `MIGRATE … KEYS`).
//! - [`hash_slot`]: CRC16/XMODEM with `{hash tags}`, as `CLUSTER KEYSLOT`.
//! - [`Classifier`]: all of the above for one command, plus its [`Route`] on a cluster and its
//!   [`SyncAction`] (apply, skip with a reason, refuse with a message). No allocation per
//!   command once warm.
//! - [`split_for_cluster`], [`split_transaction`], [`cross_slot_move`]: per-slot rewriting
//!   where the meaning survives (`DEL`, `UNLINK`, `EXISTS`, `TOUCH`, `MSET`, `MULTI`/`EXEC`),
//!   a [`Error::CrossSlot`] naming keys and slots where it does not, and what a sink needs to
//!   emulate a cross-slot `RENAME`/`COPY` when the user asks for it.
//! - [`learn_commands`]: module commands (`JSON.SET`, `BF.ADD`, `TS.ADD`, `FT.*`, …) learned
//!   at run time from the source's own `COMMAND` reply ([`CommandSpecs::parse`], sans-IO), so
//!   that everything above knows their keys too; the generated table always wins.
//! - [`Filter`]: database include/exclude/mapping, key prefix/glob/regex, data type and
//!   command filters, and the always-dropped heartbeat key. It returns a [`Decision`] only; the
//!   caller keeps counting every received byte towards the replication offset.
//!
//! Arguments are any `&[A]` with `A: AsRef<[u8]>` (`bytes::Bytes`, `Vec<u8>`, `&str`, …),
//! name first; outputs that reuse arguments clone them (cheap for `Bytes`). Nothing here does
//! I/O or depends on the RESP codec.
//!
//! ```
//! use redis_sync_commands::{Classifier, ClusterPlan, Route, SyncAction, SyncOptions};
//! use redis_sync_commands::{hash_slot, split_for_cluster};
//!
//! // Classify a command from the stream.
//! let mut classifier = Classifier::new(SyncOptions::default());
//! let c = classifier.classify(&["HSET", "user:1", "name", "ada"]).expect("known command");
//! assert_eq!(c.command.name, "hset");
//! assert_eq!(c.sync, SyncAction::Apply);
//! assert_eq!(c.route, Route::Slot(hash_slot(b"user:1")));
//! assert_eq!(hash_slot(b"user:1"), 10778);
//!
//! // A cross-slot MSET for a cluster target becomes one MSET per slot.
//! let ClusterPlan::Split(parts) = split_for_cluster(&["MSET", "a", "1", "b", "2"]).expect("splits")
//! else {
//!     panic!("a and b are in different slots")
//! };
//! assert_eq!(parts.len(), 2);
//! assert_eq!((parts[0].slot, parts[0].args.as_slice()), (15495, &["MSET", "a", "1"][..]));
//! assert_eq!((parts[1].slot, parts[1].args.as_slice()), (3300, &["MSET", "b", "2"][..]));
//! ```
#![deny(missing_docs)]

mod classify;
mod error;
mod filter;
mod glob;
mod keys;
mod learn;
mod plan;
mod slot;
mod split;
mod sync;
pub mod table;

pub use classify::{Classification, Classified, Classifier, Route, classify};
pub use error::{Error, KeySlot};
pub use filter::{DataType, Decision, DropReason, Filter, FilterBuilder, HEARTBEAT_PREFIX};
pub use glob::glob_match;
pub use keys::{KeyPos, key_positions};
pub use learn::{CommandSpecs, Learned, ReplyValue, learn_commands};
pub use slot::{SLOT_COUNT, crc16, hash_slot, hash_tag};
pub use split::{
    ClusterPlan, MoveKind, MovePlan, SlotCommand, TransactionPlan, TxPart, cross_slot_move,
    split_for_cluster, split_transaction, split_with_keys,
};
pub use sync::{RefuseReason, SkipReason, SyncAction, SyncOptions, sync_action, sync_table};
pub use table::{CommandDef, command, commands, lookup};
