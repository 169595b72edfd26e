//! The command line: subcommands and their flags, with the help text that teaches them.
//!
//! Parsing is clap's (derive). Each subcommand's arguments are a plain struct that the
//! subcommand's module turns into the library crates' builders.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Parses the process arguments; on a usage error clap prints it and exits with status 2.
pub fn parse() -> Cli {
    Cli::parse()
}

/// redis-sync copies a Redis or Valkey data set into another server and keeps it in step.
#[derive(Debug, Parser)]
#[command(
    name = "redis-sync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    long_about = "redis-sync copies a Redis or Valkey data set into another server and keeps it \
                  in step: a full copy from the source's RDB snapshot, then the live stream of \
                  write commands a replica receives.\n\n\
                  `redis-sync check` runs the prechecks, `redis-sync sync` copies and keeps \
                  in step, `redis-sync verify` compares source and target, `redis-sync cutover` \
                  switches an application over, `redis-sync rdb` decodes RDB files; see \
                  `redis-sync help <command>`."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode an RDB file: JSON, commands for redis-cli --pipe, key names, counts, memory report.
    #[command(long_about = RDB_LONG_ABOUT, after_long_help = RDB_EXAMPLES)]
    Rdb(RdbArgs),
    /// Copy the source into the target, then keep it in step (full copy + live stream).
    #[command(long_about = SYNC_LONG_ABOUT, after_long_help = crate::sync::EXAMPLES)]
    Sync(Box<crate::config::SyncArgs>),
    /// Prechecks before a sync: connectivity, PSYNC permission, versions, memory, settings,
    /// the full copy's estimated time and RDB size, the biggest keys.
    #[command(after_long_help = crate::check::EXAMPLES)]
    Check(crate::check::CheckArgs),
    /// Compare the source and the target: digests, or key by key (type, TTL, value, hash field
    /// TTLs, stream groups).
    #[command(long_about = VERIFY_LONG_ABOUT, after_long_help = VERIFY_EXAMPLES)]
    Verify(crate::verify::VerifyArgs),
    /// Switch over: wait until the target holds every write, pause the source's writes,
    /// compare, report.
    #[command(long_about = CUTOVER_LONG_ABOUT, after_long_help = CUTOVER_EXAMPLES)]
    Cutover(crate::cutover::CutoverArgs),
}

const VERIFY_LONG_ABOUT: &str = "\
Compare the source and the target: does the target hold what the source holds?

Standalone servers that allow DEBUG: equal DEBUG DIGESTs settle the keys, their types and \
values. What the digest does not see is then compared key by key: key TTLs (it hashes only \
whether a key expires), hash field TTLs (Redis 7.4+, Valkey 9.0+), streams' metadata and \
consumer groups (groups, consumers, pending entries) and the values of modules without a \
digest callback (RedisJSON, RedisBloom, RedisTimeSeries: by DUMP). Otherwise (a cluster, \
different digests, --keys, --sample) every key is compared: type, TTL (within \
--ttl-tolerance), value (DEBUG DIGEST-VALUE on the same version, else read), hash field TTLs \
(HPEXPIRETIME, within --ttl-tolerance), streams' groups (XINFO STREAM FULL); then the target \
is scanned for keys the source lacks.

Streams' groups are compared as a native replica keeps them: consumers' seen and active times \
are left out (a replica stamps its own), and so are a group's entries-read and lag when either \
side is Redis older than 7.4 (its replicas do not keep them). Pending entries' delivery times \
are compared exactly.

Differences are checked once more, in case a running sync was still applying them: when the \
target holds a redis-sync checkpoint of this source, once the target has applied the source's \
stream up to the offset read after the first pass (at most --recheck-timeout seconds); \
otherwise after --recheck-after seconds. The report says which (`recheck` in --json).

Kinds of difference: missing, extra, type, ttl, value, field-ttl (a hash field's TTL), \
stream-meta (a stream's last ID, entries added, ...), stream-groups (its groups, consumers or \
pending entries). --repair rewrites each differing key from the source with DUMP/RESTORE, \
which carries groups, pending entries and field TTLs.

Exit status 0: equal (or everything repaired with --repair); 1: different; 2: an error.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  redis-sync verify --source redis://old:6379 --target redis://new:6379
  # every key, a JSON report for a script:
  redis-sync verify --source … --target … --keys --json
  # rewrite what differs from the source:
  redis-sync verify --source … --target … --repair
  # while a sync runs: wait up to 30 s for it to apply the differences before re-checking:
  redis-sync verify --source … --target … --recheck-timeout 30";

const CUTOVER_LONG_ABOUT: &str = "\
Switch an application from the source to the target, safely.

While `redis-sync sync` runs (exactly-once, the default), the target holds a checkpoint of how \
far it is in the source's replication stream. `cutover` reads it from the target:

  1. waits, without pausing anything, until the target is at most --lag bytes behind;
  2. pauses the source's writes (CLIENT PAUSE … WRITE, Redis 6.2+ or Valkey; reads go on), \
at most --max-pause seconds: the source lifts the pause by itself after that, even if this \
process dies;
  3. waits until the target holds every write up to the source's final offset;
  4. compares a sample of keys (--verify-sample, or all with --verify-full);
  5. lifts the pause and reports how long writes were paused, the offsets and the comparison.

Exit status 0: the target held every write and nothing differed; point the application at the \
target now (the sync can then be stopped). 1: behind or different (the writes were resumed on \
the source, nothing was switched). 2: an error (no sync running, wrong pair, unreachable).";

const CUTOVER_EXAMPLES: &str = "\
Examples:
  # while `redis-sync sync --source … --target …` runs:
  redis-sync cutover --source redis://old:6379 --target redis://new:6379
  # see how far the target is, pause nothing:
  redis-sync cutover --source redis://old:6379 --target redis://new:6379 --dry-run
  # a script: JSON report, at most 3 s of paused writes, every key compared:
  redis-sync cutover --source … --target … --max-pause 3 --verify-full --json";

const RDB_LONG_ABOUT: &str = "\
Decode an RDB file: JSON, commands for redis-cli --pipe, key names, counts, memory report.

Reads any RDB file (dump.rdb, a replication payload, an AOF's RDB preamble) written by Redis \
2.x to 8.x or Valkey 7.2 to 9.x, every type and encoding, as a stream: memory stays bounded \
whatever the size of the file or of its keys. The checksum is verified. A corrupt or truncated \
file is an error that names the byte offset (and the key, when known); the exit status is then 2.

Output formats (--format):
  jsonl    one JSON object per key and line (the default)
  json     the same objects as one JSON array
  resp     commands that recreate the data set, for `redis-cli --pipe`: DEL + RPUSH/SADD/ZADD/
           HSET/XADD chunks, SET ... PXAT, PEXPIREAT, XSETID, XGROUP, XCLAIM, FUNCTION LOAD.
           Idempotent: loading it twice gives the same data. Keys already expired are left
           out. Module values (RedisJSON, RedisBloom, vector sets) become RESTORE.
  restore  the same, but every key whose payload fits --payload-limit becomes one
           RESTORE ... REPLACE of its bytes as stored in the file: faster to load, exact
           (LRU/LFU, pending entries of deleted stream entries), but the target must be able to
           read the source's RDB version (same or newer server).
  keys     key names, one per line
  count    keys per db and type (tab-separated), then the total
  memory   the biggest keys (--top) and totals per type. Sizes are APPROXIMATE: the bytes of
           the decoded data (key, members, fields, values), not what the server allocates.

JSON shape (jsonl/json), one object per key:
  {\"db\":0, \"key\":\"k\", \"type\":\"list\", \"rdb_type\":18, \"expire_ms\":null, \"value\":...}
  plus \"idle_secs\" / \"lfu_freq\" when the file has them. value by type:
    string  \"text\"                    list, set  [\"a\", \"b\"]
    zset    [[\"member\", 1.5], ...]   (scores that JSON cannot hold: \"inf\", \"-inf\")
    hash    [[\"field\", \"value\"], [\"field\", \"value\", expire_ms], ...]
    stream  {\"entries\":[{\"id\":\"1-0\",\"fields\":[[\"f\",\"v\"]]}], \"length\":n, \"last_id\":\"..\",
             \"first_id\", \"max_deleted_id\", \"entries_added\", \"groups\":[{\"name\", \"last_id\",
             \"entries_read\", \"pending\":[{\"id\",\"delivery_time_ms\",\"delivery_count\"}],
             \"consumers\":[{\"name\",\"seen_time_ms\",\"active_time_ms\",\"pending\":[\"id\"]}]}]}
    module  {\"module\":\"ReJSON-RL\", \"encver\":3, \"raw_len\":123}
  A byte string that is not valid UTF-8, or a string value longer than one decoder chunk
  (1 MiB), is written as {\"hex\":\"...\"} instead of a JSON string, so nothing is lost.

Filters (--db, --key, --type) select keys; function libraries are always included in the
resp and restore outputs (they belong to no db).";

const RDB_EXAMPLES: &str = "\
Examples:

  Look at a dump, one key per line:
    redis-sync rdb dump.rdb | head

  Copy a data set into another server (native commands, any target version):
    redis-sync rdb dump.rdb --format resp | redis-cli -h target --pipe

  The same with RESTORE payloads (target of the same or a newer version):
    redis-sync rdb dump.rdb --format restore | redis-cli -h target --pipe

  Only the session keys of db 0 and 2, as JSON:
    redis-sync rdb dump.rdb --db 0 --db 2 --key 'session:*' --format json

  How many keys of each type, and which keys are the biggest:
    redis-sync rdb dump.rdb --format count
    redis-sync rdb dump.rdb --format memory --top 20

  Read from standard input (e.g. a compressed backup):
    zstd -dc backup.rdb.zst | redis-sync rdb - --format keys --type stream";

/// Output format of `redis-sync rdb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per key and line.
    Jsonl,
    /// A JSON array of key objects.
    Json,
    /// Commands (RESP) that recreate the data set, for `redis-cli --pipe`.
    Resp,
    /// Like resp, with `RESTORE … REPLACE` of each key's payload where it fits.
    Restore,
    /// Key names, one per line.
    Keys,
    /// Keys per db and type.
    Count,
    /// Biggest keys and per-type totals (approximate sizes).
    Memory,
}

/// A key type, for `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// Strings.
    String,
    /// Lists.
    List,
    /// Sets.
    Set,
    /// Sorted sets.
    Zset,
    /// Hashes.
    Hash,
    /// Streams.
    Stream,
    /// Module values (RedisJSON, RedisBloom, vector sets, …).
    Module,
}

/// Arguments of `redis-sync rdb`.
#[derive(Debug, Args)]
pub struct RdbArgs {
    /// The RDB file to read, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// What to print.
    #[arg(long, short, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Only keys of this db (repeat for several dbs).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u64>,

    /// Only keys matching this Redis glob pattern (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes),
    /// as in `KEYS` / `SCAN MATCH`.
    #[arg(long, value_name = "GLOB")]
    pub key: Option<String>,

    /// Only keys of this type (repeat for several types).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub types: Vec<KeyType>,

    /// resp/restore: the oldest server the commands must run on, e.g. `6.2`, `redis-7.0`,
    /// `valkey-8.1`, `latest`. `auto` takes the oldest server that writes the file's RDB
    /// version (what the file's own writer understands).
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pub target_version: String,

    /// resp/restore: the largest RESTORE payload, in bytes, kept in memory for one key. Module
    /// values bigger than this cannot be converted (they have no command form); with
    /// `restore`, bigger keys are written as native commands. Peak memory is about twice this.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub payload_limit: usize,

    /// memory: how many of the biggest keys to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Do not verify the file's CRC-64 checksum.
    #[arg(long)]
    pub no_checksum: bool,

    /// Try files whose RDB version is newer than this build knows.
    #[arg(long)]
    pub allow_newer: bool,

    /// Never show the progress bar (it is shown on stderr for large files when stderr is a
    /// terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// `redis-sync sync --help`: what the command guarantees.
const SYNC_LONG_ABOUT: &str = "\
Copy the source into the target, then keep it in step (full copy + live stream).

Delivery is exactly-once by default, on a standalone or a cluster target: each batch of the
stream commits in MULTI ... EXEC together with a checkpoint kept in the target (one per slot on
a cluster), so a stop or a crash at any instant leaves data and position consistent, and the
next run continues from the target's checkpoint: nothing is applied twice and nothing is lost
(a partial resync when the source's backlog still covers the gap, else a new copy and a sweep).
--no-transactions trades this for speed (at-least-once). Memory stays within a few tens of MiB
whatever the data.";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rdb_flags_parse() {
        let cli = Cli::try_parse_from([
            "redis-sync",
            "rdb",
            "dump.rdb",
            "--format",
            "count",
            "--db",
            "0",
            "--db",
            "3",
            "--key",
            "a*",
            "--type",
            "zset",
            "--type",
            "hash",
        ])
        .expect("parses");
        let Command::Rdb(a) = cli.command else {
            panic!("parsed as rdb")
        };
        assert_eq!(a.format, Format::Count);
        assert_eq!(a.dbs, [0, 3]);
        assert_eq!(a.key.as_deref(), Some("a*"));
        assert_eq!(a.types, [KeyType::Zset, KeyType::Hash]);
        assert_eq!(a.target_version, "auto");
    }

    #[test]
    fn bad_format_is_a_usage_error() {
        assert!(Cli::try_parse_from(["redis-sync", "rdb", "x", "--format", "xml"]).is_err());
    }
}
