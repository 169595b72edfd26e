//! The settings of `redis-sync sync`: the flags (clap), the TOML file (`--config`), and
//! [`Settings`], what the two resolve to (a flag wins over the file, the file over the
//! default). The library crates' builders are made from [`Settings`] in `sync`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use redis_sync_commands::FilterBuilder;
use redis_sync_replica::{SpoolConfig, TlsConfig};
use redis_sync_sink::{Conflict, ErrorPolicy, RateLimit};
use serde::Deserialize;

use crate::url::Endpoint;

/// Environment variable with the source's password (when the URL has none).
pub const SOURCE_PASSWORD_ENV: &str = "REDIS_SYNC_SOURCE_PASSWORD";
/// Environment variable with the target's password (when the URL has none).
pub const TARGET_PASSWORD_ENV: &str = "REDIS_SYNC_TARGET_PASSWORD";

/// `--value-budget`'s default: the largest key held in memory to go as one `RESTORE` (8 MiB).
/// `check` judges the biggest keys against the same number.
pub const DEFAULT_VALUE_BUDGET: u64 = 8 << 20;

/// Where to connect: shared by `sync`, `check` and `verify`.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// The source: `redis://[user:pass@]host:port`, `rediss://…` for TLS, `host:port`, or
    /// `redis+sentinel://host:port[,host:port…]/master-name` (followed across failovers).
    /// The password may also come from $REDIS_SYNC_SOURCE_PASSWORD or --source-password-file.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,

    /// The target: `redis://[user:pass@]host:port[/db]` (any node of a cluster), or
    /// `redis+sentinel://host:port[,host:port…]/master-name[/db]`. The password may also come
    /// from $REDIS_SYNC_TARGET_PASSWORD or --target-password-file.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// A file holding the source's password (first line).
    #[arg(long, value_name = "FILE")]
    pub source_password_file: Option<PathBuf>,

    /// A file holding the target's password (first line).
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,

    /// The target is a cluster (detected with `INFO cluster` when not given).
    #[arg(long)]
    pub target_cluster: bool,

    /// rediss:// source: PEM file of the CA to trust.
    #[arg(
        long = "tls-ca",
        visible_alias = "source-tls-ca",
        value_name = "FILE",
        env = "REDIS_SYNC_SOURCE_TLS_CA"
    )]
    pub tls_ca: Option<PathBuf>,
    /// rediss:// source: accept any certificate (tests and trusted networks only).
    #[arg(
        long = "tls-insecure",
        visible_alias = "source-tls-insecure",
        env = "REDIS_SYNC_SOURCE_TLS_INSECURE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls_insecure: bool,
    /// rediss:// source: the name to send as SNI and to verify the certificate against
    /// (default: the host in the URL).
    #[arg(
        long = "tls-server-name",
        visible_alias = "source-tls-server-name",
        value_name = "NAME",
        env = "REDIS_SYNC_SOURCE_TLS_SERVER_NAME"
    )]
    pub tls_server_name: Option<String>,

    /// rediss:// target: PEM file of the CA to trust (every node of a cluster target; the
    /// cluster needs `tls-cluster yes` so that its nodes announce their TLS ports).
    #[arg(
        long = "target-tls-ca",
        value_name = "FILE",
        env = "REDIS_SYNC_TARGET_TLS_CA"
    )]
    pub target_tls_ca: Option<PathBuf>,
    /// rediss:// target: accept any certificate (tests and trusted networks only).
    #[arg(
        long = "target-tls-insecure",
        env = "REDIS_SYNC_TARGET_TLS_INSECURE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub target_tls_insecure: bool,
    /// rediss:// target: the name to send as SNI and to verify the certificates against
    /// (default: the host of each node's address).
    #[arg(
        long = "target-tls-server-name",
        value_name = "NAME",
        env = "REDIS_SYNC_TARGET_TLS_SERVER_NAME"
    )]
    pub target_tls_server_name: Option<String>,
}

/// Which side TLS settings are for, to name its flags in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
}

/// The flags of the source's TLS settings, for errors.
pub const SOURCE_TLS_FLAGS: &str = "--tls-ca, --tls-insecure, --tls-server-name";
/// The flags of the target's TLS settings, for errors.
pub const TARGET_TLS_FLAGS: &str =
    "--target-tls-ca, --target-tls-insecure, --target-tls-server-name";

impl Side {
    fn flags(self) -> &'static str {
        match self {
            Side::Source => SOURCE_TLS_FLAGS,
            Side::Target => TARGET_TLS_FLAGS,
        }
    }
}

/// The TLS settings of one side: the flag wins over the file. `None` without `rediss://`;
/// then TLS options given for the target are an error (a forgotten `rediss://` would
/// otherwise meet a TLS port in plain text), while the source's are ignored, as they always
/// were. The files are read once here, so a missing or bad CA file is reported, with its
/// flag, before anything connects.
fn tls_settings(
    ep: &Endpoint,
    ca: Option<&PathBuf>,
    insecure: bool,
    server_name: Option<&String>,
    side: Side,
) -> anyhow::Result<Option<TlsConfig>> {
    if ep.tls.is_none() {
        if side == Side::Target && (ca.is_some() || insecure || server_name.is_some()) {
            bail!(
                "TLS options ({}) are set for the target but its URL {ep} is not rediss://: \
                 use rediss://host:port for a TLS port, or drop those options",
                side.flags()
            );
        }
        return Ok(None);
    }
    let tls = TlsConfig {
        ca_file: ca.cloned(),
        insecure,
        server_name: server_name.cloned(),
        ..TlsConfig::default()
    };
    redis_sync_resp::TlsConnector::new(&tls)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{ep}: TLS options {}", side.flags()))?;
    Ok(Some(tls))
}

impl ConnArgs {
    /// The two endpoints, with passwords from the URL, the files or the environment.
    pub fn endpoints(&self, file: &FileConfig) -> anyhow::Result<(Endpoint, Endpoint)> {
        let source = self
            .source
            .as_ref()
            .or(file.source.as_ref())
            .context("no source: give --source URL (or `source = \"…\"` in the config file)")?;
        let target = self
            .target
            .as_ref()
            .or(file.target.as_ref())
            .context("no target: give --target URL (or `target = \"…\"` in the config file)")?;
        let spf = self
            .source_password_file
            .as_ref()
            .or(file.source_password_file.as_ref());
        let tpf = self
            .target_password_file
            .as_ref()
            .or(file.target_password_file.as_ref());
        let mut source = Endpoint::parse(source)
            .context("--source")?
            .with_password_from(SOURCE_PASSWORD_ENV, spf.map(PathBuf::as_path))?;
        let mut target = Endpoint::parse(target)
            .context("--target")?
            .with_password_from(TARGET_PASSWORD_ENV, tpf.map(PathBuf::as_path))?;
        source.tls = tls_settings(
            &source,
            self.tls_ca.as_ref().or(file.tls_ca.as_ref()),
            self.tls_insecure || file.tls_insecure.unwrap_or(false),
            self.tls_server_name
                .as_ref()
                .or(file.tls_server_name.as_ref()),
            Side::Source,
        )?;
        target.tls = tls_settings(
            &target,
            self.target_tls_ca.as_ref().or(file.target_tls_ca.as_ref()),
            self.target_tls_insecure || file.target_tls_insecure.unwrap_or(false),
            self.target_tls_server_name
                .as_ref()
                .or(file.target_tls_server_name.as_ref()),
            Side::Target,
        )?;
        Ok((source, target))
    }
}

/// What `sync` does after the full copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Full copy, then the live stream until stopped.
    #[default]
    Sync,
    /// Full copy only.
    Full,
}

/// `--conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictArg {
    /// Replace keys that exist on the target.
    Overwrite,
    /// Stop at the first key that already exists on the target.
    Block,
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop with a message naming the key, the command and what to do.
    Stop,
    /// Write the command to the dead-letter file and go on (needs --dead-letter).
    Skip,
    /// As skip, and when the target refused it because its copy of the key differs
    /// (WRONGTYPE, not an integer, an XADD ID not above the top), copy that key afresh from the
    /// source and skip the stream's commands on it up to that point.
    Repair,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `redis-sync sync`. Every option may also be set in the `--config` file
/// (same name, `-` or `_`); a flag given on the command line wins.
#[derive(Debug, Args, Clone, Default)]
pub struct SyncArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// `--source-mode scan` and its `--scan-*` flags (see `source_mode`).
    #[command(flatten)]
    pub scan: crate::source_mode::ScanArgs,

    /// A TOML file with any of these options (e.g. `target = "redis://…"`, `db-map = ["3:0"]`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// `sync`: full copy then the live stream until stopped (SIGINT/SIGTERM); `full`: stop
    /// after the full copy.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,

    /// Exit (status 0) as soon as the target has applied everything the source had when the
    /// full copy ended (or when the partial resynchronisation started).
    #[arg(long)]
    pub until_caught_up: bool,

    /// The source is a Redis Cluster (detected with `INFO cluster` when not given): every
    /// master is found from the node given, and each shard gets its own replication link and
    /// checkpoint, all in this process. A shard's failover is followed (a partial resync with
    /// the promoted replica), and keys moved by resharding are kept (see the README).
    #[arg(long)]
    pub source_cluster: bool,
    /// Only some shards of a cluster source: `K/N`, the K-th of N groups (shards in slot
    /// order, dealt round-robin), so N processes split one cluster; or masters' `host:port` or
    /// node IDs, comma-separated.
    #[arg(long, value_name = "K/N|NODES")]
    pub shards: Option<String>,
    /// With a cluster source, replicate from a replica of each shard when it has a healthy one,
    /// to spare the masters (the master otherwise, and after a failover).
    #[arg(long)]
    pub prefer_replica: bool,

    /// Only this source db (repeat for several).
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u32>,
    /// Skip this source db (repeat for several).
    #[arg(long = "exclude-db", value_name = "N")]
    pub exclude_dbs: Vec<u32>,
    /// Write source db FROM into target db TO, as `FROM:TO` (repeat for several).
    #[arg(long = "db-map", value_name = "FROM:TO")]
    pub db_map: Vec<String>,
    /// Only keys starting with this prefix (repeat: any of them).
    #[arg(long = "key-prefix", value_name = "PREFIX")]
    pub key_prefix: Vec<String>,
    /// Skip keys starting with this prefix.
    #[arg(long = "exclude-key-prefix", value_name = "PREFIX")]
    pub exclude_key_prefix: Vec<String>,
    /// Only keys matching this glob (`*`, `?`, `[a-z]`).
    #[arg(long = "key-glob", value_name = "GLOB")]
    pub key_glob: Vec<String>,
    /// Skip keys matching this glob.
    #[arg(long = "exclude-key-glob", value_name = "GLOB")]
    pub exclude_key_glob: Vec<String>,
    /// Only keys matching this regular expression.
    #[arg(long = "key-regex", value_name = "REGEX")]
    pub key_regex: Vec<String>,
    /// Skip keys matching this regular expression.
    #[arg(long = "exclude-key-regex", value_name = "REGEX")]
    pub exclude_key_regex: Vec<String>,
    /// Only values of this type: string, list, set, zset, hash, stream, … (repeat).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Skip values of this type.
    #[arg(long = "exclude-type", value_name = "TYPE")]
    pub exclude_types: Vec<String>,
    /// Never apply this command from the stream (e.g. `flushall`).
    #[arg(long = "exclude-command", value_name = "NAME")]
    pub exclude_commands: Vec<String>,

    /// Keys that already exist on the target during the full copy: overwrite (default) or
    /// block (stop and name the key).
    #[arg(long, value_enum)]
    pub conflict: Option<ConflictArg>,
    /// A command the target rejects: stop (default), skip (into --dead-letter), or repair (skip,
    /// and copy the key afresh from the source when the target's copy differs).
    #[arg(long = "on-error", value_enum)]
    pub on_error: Option<OnError>,
    /// File that receives the commands skipped under --on-error skip or repair (RESP).
    #[arg(long = "dead-letter", value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// At most this many commands per second to the target.
    #[arg(long = "max-ops", value_name = "N")]
    pub max_ops: Option<f64>,
    /// At most this many bytes per second to the target.
    #[arg(long = "max-bytes", value_name = "N")]
    pub max_bytes: Option<f64>,

    /// Directory of the spool file (the stream waiting for a slow target).
    #[arg(long = "spool-dir", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool file may hold before the sync stops.
    #[arg(long = "spool-limit", value_name = "BYTES")]
    pub spool_limit: Option<u64>,
    /// Seconds of silence on the source link before it is taken as dead and redis-sync
    /// reconnects with a partial resync (default 60, Redis's `repl-timeout`; the source sends
    /// a PING every `repl-ping-replica-period`, 10 s).
    #[arg(long = "source-timeout", value_name = "SECS")]
    pub source_timeout: Option<f64>,
    /// Largest value held in memory to be sent as one RESTORE (default 8 MiB). Bigger keys
    /// stream through as chunked native commands into a temporary key renamed into place, so
    /// memory never follows the biggest key.
    #[arg(long = "value-budget", value_name = "BYTES")]
    pub value_budget: Option<u64>,
    /// Also write each snapshot the source sends to this RDB file, as received: a backup on
    /// the side that `redis-server` loads as its dbfilename (written as FILE.part, renamed
    /// once whole).
    #[arg(long = "tee-rdb", value_name = "FILE")]
    pub tee_rdb: Option<PathBuf>,
    /// Also append the source's command stream to this AOF file (every command, whatever the
    /// filters keep). With --tee-rdb it makes a restorable backup: the snapshot, then each
    /// write after it, each once even across restarts (FILE.idx beside it says where a
    /// restart continues). A new full copy starts the file anew.
    #[arg(long = "tee-aof", value_name = "FILE")]
    pub tee_aof: Option<PathBuf>,
    /// Read a backup instead of a server (no --source): this RDB file, then the writes of
    /// --source-aof if given. Restores what --tee-rdb/--tee-aof wrote, or any dump.rdb. A
    /// directory: its *.rdb files (by name) as one snapshot, e.g. one per shard of a cluster.
    /// Exactly-once like a live sync: a restore stopped half-way continues in the AOF.
    #[arg(
        long = "source-rdb",
        value_name = "FILE|DIR",
        conflicts_with = "source"
    )]
    pub source_rdb: Option<PathBuf>,
    /// Read an AOF instead of a server (no --source): its commands, after --source-rdb or
    /// its own RDB preamble. FILE or the directory of Redis 7's multi-part AOF
    /// (`appendonlydir/`: its manifest names the base and the increments).
    #[arg(
        long = "source-aof",
        value_name = "FILE|DIR",
        conflicts_with = "source"
    )]
    pub source_aof: Option<PathBuf>,
    /// With --source-aof: restore to a point in time: stop at the AOF's first `#TS:` annotation
    /// later than this Unix time (seconds; Redis 7.0+ writes them with
    /// `aof-timestamp-enabled yes`).
    #[arg(long = "until-time", value_name = "UNIX_SECS", requires = "source_aof")]
    pub until_time: Option<u64>,

    /// Checkpoint file (replication ID and applied offset); default derived from the source
    /// and target addresses under ~/.local/state/redis-sync/.
    #[arg(long = "state-file", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Ignore the checkpoint: always start with a full copy.
    #[arg(long = "no-resume")]
    pub no_resume: bool,
    /// Kept for compatibility: a standalone target always holds the checkpoint (hash
    /// `redis-sync:checkpoint:<source>` in db 0), unless --no-transactions.
    #[arg(long = "checkpoint-in-target", hide = true)]
    pub checkpoint_in_target: bool,
    /// At-least-once instead of exactly-once: send the stream without wrapping each batch in
    /// MULTI … EXEC with the checkpoint (for proxies that refuse MULTI). A restart then
    /// resumes from the state file, which may lag the target: commands applied since its
    /// last save are applied again (a list or counter can end up with duplicates).
    #[arg(long = "no-transactions")]
    pub no_transactions: bool,
    /// Empty the synced target dbs (FLUSHDB) before a full copy.
    #[arg(long = "flush-target")]
    pub flush_target: bool,
    /// After a full copy, delete target keys (passing the key filter) that are not in the
    /// source's snapshot. Default: only when a full copy is redone over an earlier sync.
    #[arg(long)]
    pub sweep: bool,

    /// Seconds between status lines.
    #[arg(long = "status-interval", value_name = "SECS")]
    pub status_interval: Option<f64>,
    /// Status lines as JSON objects (on stderr).
    #[arg(long = "status-json")]
    pub status_json: bool,
    /// No progress bar during the full copy, even on a terminal (status lines instead; they
    /// are the default when stderr is not a terminal).
    #[arg(long = "no-progress")]
    pub no_progress: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9121).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Write a heartbeat key `redis-sync:heartbeat:<id>` to the source every SECS seconds
    /// (short TTL, never applied to the target) for a true end-to-end lag.
    #[arg(long, value_name = "SECS")]
    pub heartbeat: Option<f64>,
    /// Log format.
    #[arg(long = "log-format", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The `--config` file: the same options as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub source: Option<String>,
    pub target: Option<String>,
    pub source_password_file: Option<PathBuf>,
    pub target_password_file: Option<PathBuf>,
    pub target_cluster: Option<bool>,
    pub mode: Option<Mode>,
    pub until_caught_up: Option<bool>,
    pub source_cluster: Option<bool>,
    pub shards: Option<String>,
    pub prefer_replica: Option<bool>,
    #[serde(default)]
    pub db: Vec<u32>,
    #[serde(default)]
    pub exclude_db: Vec<u32>,
    #[serde(default)]
    pub db_map: Vec<String>,
    #[serde(default)]
    pub key_prefix: Vec<String>,
    #[serde(default)]
    pub exclude_key_prefix: Vec<String>,
    #[serde(default)]
    pub key_glob: Vec<String>,
    #[serde(default)]
    pub exclude_key_glob: Vec<String>,
    #[serde(default)]
    pub key_regex: Vec<String>,
    #[serde(default)]
    pub exclude_key_regex: Vec<String>,
    #[serde(default, rename = "type")]
    pub types: Vec<String>,
    #[serde(default)]
    pub exclude_type: Vec<String>,
    #[serde(default)]
    pub exclude_command: Vec<String>,
    pub conflict: Option<ConflictArg>,
    pub on_error: Option<OnError>,
    pub dead_letter: Option<PathBuf>,
    pub max_ops: Option<f64>,
    pub max_bytes: Option<f64>,
    pub spool_dir: Option<PathBuf>,
    pub spool_limit: Option<u64>,
    pub value_budget: Option<u64>,
    pub source_timeout: Option<f64>,
    pub state_file: Option<PathBuf>,
    pub no_resume: Option<bool>,
    #[allow(dead_code)] // accepted for old config files; always on now
    pub checkpoint_in_target: Option<bool>,
    pub no_transactions: Option<bool>,
    pub flush_target: Option<bool>,
    pub sweep: Option<bool>,
    pub status_interval: Option<f64>,
    pub status_json: Option<bool>,
    pub metrics: Option<String>,
    pub heartbeat: Option<f64>,
    pub log_format: Option<LogFormat>,
    #[serde(alias = "source-tls-ca")]
    pub tls_ca: Option<PathBuf>,
    #[serde(alias = "source-tls-insecure")]
    pub tls_insecure: Option<bool>,
    #[serde(alias = "source-tls-server-name")]
    pub tls_server_name: Option<String>,
    pub target_tls_ca: Option<PathBuf>,
    pub target_tls_insecure: Option<bool>,
    pub target_tls_server_name: Option<String>,
}

impl FileConfig {
    /// Reads and parses a config file (`_` in names is accepted for `-`).
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        // Accept `db_map` as well as `db-map`: normalise the keys of `key = value` lines.
        let normalised: String = text
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, v)) if !k.trim_start().starts_with('#') && !k.contains('"') => {
                    format!("{}={v}\n", k.replace('_', "-"))
                }
                _ => format!("{l}\n"),
            })
            .collect();
        toml::from_str(&normalised)
            .with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Everything `sync` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Endpoint,
    pub target: Endpoint,
    pub target_cluster: Option<bool>,
    /// `--source-cluster` (`None`: detect).
    pub source_cluster: Option<bool>,
    /// `--shards`: which shards of a cluster source this process syncs.
    pub shards: Option<crate::sync::ShardSelect>,
    /// `--prefer-replica`.
    pub prefer_replica: bool,
    /// Set on the settings of one shard of a cluster source: how to find it, and its slots.
    pub shard: Option<std::sync::Arc<crate::sync::ShardLink>>,
    pub mode: Mode,
    pub until_caught_up: bool,
    /// The filter's builder, to rebuild it once the target's mode is known.
    pub filter_builder: FilterBuilder,
    pub conflict: Conflict,
    pub policy: ErrorPolicy,
    pub dead_letter: Option<PathBuf>,
    pub rate: RateLimit,
    pub spool: SpoolConfig,
    pub state_file: PathBuf,
    pub resume: bool,
    pub transactions: bool,
    pub value_budget: usize,
    pub tee_rdb: Option<PathBuf>,
    pub tee_aof: Option<PathBuf>,
    /// `--source-rdb` / `--source-aof`: a backup is the source (`source` then only names it).
    pub files: Option<(Option<PathBuf>, Option<PathBuf>)>,
    /// `--until-time`: where an AOF source ends.
    pub until_time: Option<u64>,
    pub source_timeout: Duration,
    pub flush_target: bool,
    pub sweep: bool,
    pub status_interval: Duration,
    pub status_json: bool,
    /// Draw the full copy's bar on a terminal.
    pub progress: bool,
    pub metrics: Option<SocketAddr>,
    pub heartbeat: Option<Duration>,
    pub log_format: LogFormat,
    /// `--source-mode scan`: read the source with SCAN + DUMP instead of replicating.
    pub scan: Option<redis_sync_replica::ScanOptions>,
}

fn merged<T: Clone>(flag: &[T], file: &[T]) -> Vec<T> {
    if flag.is_empty() {
        file.to_vec()
    } else {
        flag.to_vec()
    }
}

impl Settings {
    /// Flags over file over defaults.
    pub fn resolve(a: &SyncArgs) -> anyhow::Result<Settings> {
        let f = match &a.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let files = (a.source_rdb.is_some() || a.source_aof.is_some())
            .then(|| (a.source_rdb.clone(), a.source_aof.clone()));
        let (source, target) = match &files {
            None => a.conn.endpoints(&f)?,
            Some((rdb, aof)) => {
                // The backup names the source in logs and in the target's checkpoint key.
                let path = rdb.as_ref().or(aof.as_ref()).context("no file")?;
                for p in [rdb, aof].into_iter().flatten() {
                    if !p.exists() {
                        bail!("{}: no such file or directory", p.display());
                    }
                }
                let mut conn = a.conn.clone();
                conn.source = Some("127.0.0.1:1".into());
                let (mut source, target) = conn.endpoints(&f)?;
                source.host = path
                    .file_name()
                    .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
                source.port = 0;
                source.password = None;
                source.user = None;
                if a.heartbeat.is_some() || f.heartbeat.is_some() {
                    bail!("--heartbeat needs a server as the source, not a file");
                }
                (source, target)
            }
        };
        let target_cluster = if a.conn.target_cluster {
            Some(true)
        } else {
            f.target_cluster.filter(|c| *c)
        };
        let cluster = target_cluster == Some(true);

        let mut fb = FilterBuilder::default().cluster_target(cluster);
        for db in merged(&a.dbs, &f.db) {
            fb = fb.include_db(db);
        }
        for db in merged(&a.exclude_dbs, &f.exclude_db) {
            fb = fb.exclude_db(db);
        }
        let mut maps = merged(&a.db_map, &f.db_map);
        if let Some(db) = target.db
            && maps.is_empty()
            && db != 0
        {
            // redis://host/3 as the target: the source's db 0 goes to db 3.
            maps.push(format!("0:{db}"));
        }
        for m in maps {
            let (from, to) = m
                .split_once(':')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .with_context(|| format!("--db-map {m:?}: expected FROM:TO, e.g. 3:0"))?;
            fb = fb.map_db(from, to);
        }
        for p in merged(&a.key_prefix, &f.key_prefix) {
            fb = fb.include_key_prefix(p);
        }
        for p in merged(&a.exclude_key_prefix, &f.exclude_key_prefix) {
            fb = fb.exclude_key_prefix(p);
        }
        for p in merged(&a.key_glob, &f.key_glob) {
            fb = fb.include_key_glob(p);
        }
        for p in merged(&a.exclude_key_glob, &f.exclude_key_glob) {
            fb = fb.exclude_key_glob(p);
        }
        for p in merged(&a.key_regex, &f.key_regex) {
            fb = fb.include_key_regex(p);
        }
        for p in merged(&a.exclude_key_regex, &f.exclude_key_regex) {
            fb = fb.exclude_key_regex(p);
        }
        for t in merged(&a.types, &f.types) {
            fb = fb.include_type(t);
        }
        for t in merged(&a.exclude_types, &f.exclude_type) {
            fb = fb.exclude_type(t);
        }
        for c in merged(&a.exclude_commands, &f.exclude_command) {
            fb = fb.exclude_command(c);
        }
        // Build once now so a bad pattern is reported before anything connects.
        fb.clone().build().context("invalid filter")?;

        let conflict = match a.conflict.or(f.conflict) {
            Some(ConflictArg::Block) => Conflict::Block,
            _ => Conflict::Overwrite,
        };
        let dead_letter = a.dead_letter.clone().or(f.dead_letter);
        let policy = match a.on_error.or(f.on_error) {
            Some(OnError::Skip) => {
                if dead_letter.is_none() {
                    bail!(
                        "--on-error skip needs --dead-letter FILE: skipped commands are kept \
                         there, never dropped silently"
                    );
                }
                ErrorPolicy::Skip
            }
            Some(OnError::Repair) => {
                if files.is_some() {
                    bail!(
                        "--on-error repair copies keys afresh from a source server; a backup \
                         file cannot give them: use --on-error skip --dead-letter FILE"
                    );
                }
                if dead_letter.is_none() {
                    bail!(
                        "--on-error repair needs --dead-letter FILE: the refused commands are \
                         kept there while their keys are copied afresh"
                    );
                }
                ErrorPolicy::Repair
            }
            _ => ErrorPolicy::Stop,
        };
        let mut rate = RateLimit::none();
        rate.ops_per_sec = a.max_ops.or(f.max_ops).filter(|r| *r > 0.0);
        rate.bytes_per_sec = a.max_bytes.or(f.max_bytes).filter(|r| *r > 0.0);

        // The stream waiting for a slow target: a little in memory, the rest on disk (see
        // `MEMORY` in sync/mod.rs for the whole budget).
        let mut spool = SpoolConfig {
            dir: a.spool_dir.clone().or(f.spool_dir),
            memory_limit: 8 << 20,
            ..SpoolConfig::default()
        };
        if let Some(l) = a.spool_limit.or(f.spool_limit) {
            spool.file_limit = l;
        }

        let state_file = match a.state_file.clone().or(f.state_file) {
            Some(p) => p,
            None => default_state_file(&source, &target),
        };
        let metrics = match a.metrics.clone().or(f.metrics) {
            None => None,
            Some(m) => {
                let m = if m.starts_with(':') {
                    format!("127.0.0.1{m}")
                } else if !m.contains(':') {
                    format!("127.0.0.1:{m}")
                } else {
                    m
                };
                Some(
                    m.parse::<SocketAddr>()
                        .with_context(|| format!("--metrics {m:?}: expected IP:PORT"))?,
                )
            }
        };
        let secs = |s: f64, what: &str| -> anyhow::Result<Duration> {
            Duration::try_from_secs_f64(s).with_context(|| format!("{what}: bad number of seconds"))
        };
        let status_interval = secs(
            a.status_interval.or(f.status_interval).unwrap_or(5.0),
            "--status-interval",
        )?
        .max(Duration::from_millis(100));
        let heartbeat = match a.heartbeat.or(f.heartbeat) {
            Some(s) => Some(secs(s, "--heartbeat")?.max(Duration::from_millis(100))),
            None => None,
        };
        let source_cluster = if a.source_cluster {
            Some(true)
        } else {
            f.source_cluster.filter(|c| *c)
        };
        let shards = match a.shards.as_ref().or(f.shards.as_ref()) {
            Some(spec) => Some(crate::sync::ShardSelect::parse(spec)?),
            None => None,
        };
        let prefer_replica = a.prefer_replica || f.prefer_replica.unwrap_or(false);
        if (shards.is_some() || prefer_replica) && files.is_some() {
            bail!("--shards and --prefer-replica need a cluster as the source, not a file");
        }
        let mut settings = Settings {
            source,
            target,
            target_cluster,
            source_cluster,
            shards,
            prefer_replica,
            shard: None,
            mode: a.mode.or(f.mode).unwrap_or_default(),
            until_caught_up: a.until_caught_up || f.until_caught_up.unwrap_or(false),
            filter_builder: fb,
            conflict,
            policy,
            dead_letter,
            rate,
            spool,
            state_file,
            resume: !(a.no_resume || f.no_resume.unwrap_or(false)),
            transactions: !(a.no_transactions || f.no_transactions.unwrap_or(false)),
            source_timeout: Duration::from_secs_f64(
                a.source_timeout
                    .or(f.source_timeout)
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .unwrap_or(60.0)
                    .min(86_400.0),
            ),
            value_budget: usize::try_from(
                a.value_budget
                    .or(f.value_budget)
                    .unwrap_or(DEFAULT_VALUE_BUDGET),
            )
            .unwrap_or(usize::MAX)
            .max(4096),
            tee_rdb: a.tee_rdb.clone(),
            tee_aof: a.tee_aof.clone(),
            files,
            until_time: a.until_time,
            flush_target: a.flush_target || f.flush_target.unwrap_or(false),
            sweep: a.sweep || f.sweep.unwrap_or(false),
            status_interval,
            status_json: a.status_json || f.status_json.unwrap_or(false),
            progress: !a.no_progress,
            metrics,
            heartbeat,
            log_format: a.log_format.or(f.log_format).unwrap_or_default(),
            scan: None,
        };
        crate::source_mode::apply(&a.scan, &mut settings)?;
        Ok(settings)
    }
}

/// `~/.local/state/redis-sync/<source>-to-<target>.json` (or in the current directory when
/// there is no home).
fn default_state_file(source: &Endpoint, target: &Endpoint) -> PathBuf {
    let clean = |e: &Endpoint| {
        crate::sentinel::checkpoint_name(e).replace([':', '[', ']', '/', ',', '@'], "_")
    };
    let name = format!("{}-to-{}.json", clean(source), clean(target));
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/redis-sync").join(name),
        None => PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "source = \"redis://:pw@127.0.0.1:1\"\ntarget = \"127.0.0.1:2\"\n\
             db_map = [\"3:0\"]\nconflict = \"block\"\nstatus-interval = 2.5\nmax-ops = 10\n",
        )
        .expect("write");
        let args = SyncArgs {
            config: Some(path),
            conflict: Some(ConflictArg::Overwrite),
            ..SyncArgs::default()
        };
        let s = Settings::resolve(&args).expect("resolves");
        assert_eq!(s.source.password.as_deref(), Some("pw"));
        assert_eq!(s.target.addr(), "127.0.0.1:2");
        assert_eq!(s.conflict, Conflict::Overwrite);
        assert_eq!(s.status_interval, Duration::from_millis(2500));
        assert_eq!(s.rate.ops_per_sec, Some(10.0));
        let filter = s.filter_builder.clone().build().expect("filter");
        assert_eq!(filter.target_db(3).expect("db"), Some(0));
    }

    #[test]
    fn target_tls_settings_come_from_the_file_and_need_rediss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "source = \"127.0.0.1:1\"\ntarget = \"rediss://127.0.0.1:2\"\n\
             target-tls-insecure = true\ntarget_tls_server_name = \"redis.internal\"\n",
        )
        .expect("write");
        let args = SyncArgs {
            config: Some(path),
            ..SyncArgs::default()
        };
        let s = Settings::resolve(&args).expect("resolves");
        let tls = s.target.tls.expect("TLS to the target");
        assert!(tls.insecure);
        assert_eq!(tls.server_name.as_deref(), Some("redis.internal"));
        assert!(s.source.tls.is_none());

        // A CA flag for a redis:// target is a forgotten rediss://.
        let args = SyncArgs {
            conn: ConnArgs {
                source: Some("127.0.0.1:1".into()),
                target: Some("redis://127.0.0.1:2".into()),
                target_tls_insecure: true,
                ..ConnArgs::default()
            },
            ..SyncArgs::default()
        };
        let e = Settings::resolve(&args).expect_err("needs rediss://");
        assert!(e.to_string().contains("rediss://"), "{e}");
    }

    #[test]
    fn unknown_file_keys_and_skip_without_dead_letter_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "sourse = \"x\"\n").expect("write");
        let args = SyncArgs {
            config: Some(path),
            ..SyncArgs::default()
        };
        assert!(Settings::resolve(&args).is_err());
        let args = SyncArgs {
            conn: ConnArgs {
                source: Some("127.0.0.1:1".into()),
                target: Some("127.0.0.1:2".into()),
                ..ConnArgs::default()
            },
            on_error: Some(OnError::Skip),
            ..SyncArgs::default()
        };
        let e = Settings::resolve(&args).expect_err("needs dead letter");
        assert!(e.to_string().contains("--dead-letter"), "{e}");
    }
}
