//! [`ReplicaBuilder`]: everything that can be configured, with defaults that work against a
//! local server (no auth, plain TCP, 10 s per handshake step, 60 s idle link timeout).

use std::path::PathBuf;
use std::time::Duration;

/// Credentials sent with `AUTH` before anything else.
#[derive(Clone)]
pub struct Auth {
    /// ACL user name; `None` sends `AUTH <password>` (the `default` user / `requirepass`).
    pub user: Option<String>,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// TLS settings (rustls with the ring provider), shared with the sink and the CLI.
pub use redis_sync_resp::TlsConfig;

/// Timeouts; none of the replica's waits is unbounded.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the TCP connection (and the TLS handshake).
    pub connect: Duration,
    /// Each handshake reply (`AUTH`, `PING`, `REPLCONF`, `INFO`).
    pub handshake: Duration,
    /// Longest silence on an established link (the `PSYNC` reply, the payload, the stream).
    /// The source sends newlines while it prepares the RDB and `PING` every
    /// `repl-ping-replica-period` (10 s) afterwards, so this is Redis's `repl-timeout` (60 s).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// Where bytes go when the consumer is slower than the source.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bytes buffered in memory before spilling to disk.
    pub memory_limit: usize,
    /// Directory of the spool file (an anonymous temporary file); defaults to the system's
    /// temporary directory.
    pub dir: Option<PathBuf>,
    /// Most bytes the spool file may hold; reaching it stops the replica with
    /// [`Error::SpoolFull`](crate::Error::SpoolFull).
    pub file_limit: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            memory_limit: 64 << 20,
            dir: None,
            file_limit: 16 << 30,
        }
    }
}

/// What counts as applied when the replica acknowledges and resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// An event counts as applied once the consumer has received it from
    /// [`Replica::next_event`](crate::Replica::next_event). Right for consumers that apply
    /// each event before asking for the next.
    #[default]
    Delivered,
    /// Only what the consumer reports through [`AppliedOffset::set`](crate::AppliedOffset::set)
    /// counts (for consumers that pipeline writes to a target). Report the offsets of
    /// [`ReplicaEvent::Position`](crate::ReplicaEvent::Position)s too, once everything before
    /// them is applied (a [`Ledger`](crate::Ledger) does it): an idle source's offset grows by
    /// its `PING`s only.
    Manual,
}

/// How often and how long to retry after the link is lost.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    /// Consecutive failed attempts before giving up; `None` retries for ever.
    pub max_attempts: Option<u32>,
    /// First pause; doubles after each failure.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            max_attempts: Some(20),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Where to continue a replication stream, e.g. from a checkpoint written before a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The replication ID (from `+FULLRESYNC` or `+CONTINUE <new id>`).
    pub replid: String,
    /// The last replication offset applied; the replica asks for `offset + 1`.
    pub offset: u64,
    /// The database selected at that offset (the source does not repeat `SELECT` on `+CONTINUE`).
    pub db: u32,
}

/// The replica's configuration; build one with [`ReplicaBuilder`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) addr: String,
    pub(crate) auth: Option<Auth>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) spool: SpoolConfig,
    pub(crate) listening_port: u16,
    pub(crate) announce_version: Option<String>,
    pub(crate) ack_mode: AckMode,
    pub(crate) ack_interval: Duration,
    pub(crate) reconnect: Reconnect,
    pub(crate) resume: Option<ResumePoint>,
    pub(crate) event_capacity: usize,
    pub(crate) rdb_restore_payloads: bool,
    pub(crate) rdb_restore_limit: Option<usize>,
    pub(crate) rdb_tee: Option<std::path::PathBuf>,
    /// Read a backup (RDB and/or AOF files) instead of a server.
    pub(crate) files: Option<crate::files::Files>,
    /// Asked for the source's address before each reconnection (see [`ReplicaBuilder::locate`]).
    pub(crate) locate: Option<Locate>,
    /// Read the keyspace with SCAN + DUMP instead of replicating.
    pub(crate) scan: Option<crate::scan::ScanOptions>,
}

type LocateFn = dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
    + Send
    + Sync;

/// Finds where the source is now (see [`ReplicaBuilder::locate`]).
#[derive(Clone)]
pub(crate) struct Locate(pub(crate) std::sync::Arc<LocateFn>);

impl std::fmt::Debug for Locate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locate(..)")
    }
}

/// Builds a [`Replica`](crate::Replica).
///
/// ```
/// use std::time::Duration;
/// use redis_sync_replica::ReplicaBuilder;
///
/// let builder = ReplicaBuilder::new("127.0.0.1:6379")
///     .password(Some("app-user"), "secret")
///     .handshake_timeout(Duration::from_secs(5))
///     .listening_port(6380);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaBuilder {
    config: Config,
}

impl ReplicaBuilder {
    /// A replica of the source at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        ReplicaBuilder {
            config: Config {
                addr: addr.into(),
                auth: None,
                tls: None,
                timeouts: Timeouts::default(),
                spool: SpoolConfig::default(),
                listening_port: 0,
                announce_version: None,
                ack_mode: AckMode::Delivered,
                ack_interval: Duration::from_secs(1),
                reconnect: Reconnect::default(),
                resume: None,
                event_capacity: 1024,
                rdb_restore_payloads: false,
                rdb_restore_limit: None,
                rdb_tee: None,
                files: None,
                locate: None,
                scan: None,
            },
        }
    }

    /// `AUTH [user] password` before the handshake.
    pub fn password(mut self, user: Option<&str>, password: &str) -> Self {
        self.config.auth = Some(Auth {
            user: user.map(str::to_string),
            password: password.to_string(),
        });
        self
    }

    /// Connects with TLS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// All timeouts at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// Timeout for opening the connection (TCP and TLS).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.timeouts.connect = t;
        self
    }

    /// Timeout for each handshake reply.
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.config.timeouts.handshake = t;
        self
    }

    /// Longest silence on an established link.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.config.timeouts.idle = t;
        self
    }

    /// The spool settings.
    pub fn spool(mut self, spool: SpoolConfig) -> Self {
        self.config.spool = spool;
        self
    }

    /// The port announced with `REPLCONF listening-port` (shown in the source's
    /// `INFO replication`); 0 (the default) announces the local port of the connection.
    pub fn listening_port(mut self, port: u16) -> Self {
        self.config.listening_port = port;
        self
    }

    /// The version sent with `REPLCONF version` to Valkey sources (Valkey 9.1 picks the RDB
    /// format by it). By default the source's own version is sent, as a replica of the same
    /// version would.
    pub fn announce_version(mut self, version: impl Into<String>) -> Self {
        self.config.announce_version = Some(version.into());
        self
    }

    /// What counts as applied for ACKs and resumption (default [`AckMode::Delivered`]).
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.config.ack_mode = mode;
        self
    }

    /// How often `REPLCONF ACK` is sent (default 1 s, as Redis replicas do).
    pub fn ack_interval(mut self, every: Duration) -> Self {
        self.config.ack_interval = every;
        self
    }

    /// The reconnection policy.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// Starts with `PSYNC <replid> <offset + 1>` instead of a full sync (a checkpoint).
    pub fn resume_from(mut self, point: ResumePoint) -> Self {
        self.config.resume = Some(point);
        self
    }

    /// How many events may wait for the consumer before the decoder pauses (the socket is
    /// still read; bytes go to the spool). Default 1024.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.config.event_capacity = n.max(1);
        self
    }

    /// Asks the RDB decoder for each key's `RESTORE` payload
    /// (`Event::KeyEnd { restore_payload }`).
    pub fn rdb_restore_payloads(mut self, yes: bool) -> Self {
        self.config.rdb_restore_payloads = yes;
        self
    }

    /// With [`rdb_restore_payloads`](Self::rdb_restore_payloads): keys whose payload would
    /// exceed `bytes` get none (and no more than `bytes` are buffered), so memory does not
    /// follow the biggest key; the consumer writes those keys with native commands.
    pub fn rdb_restore_limit(mut self, bytes: usize) -> Self {
        self.config.rdb_restore_limit = Some(bytes);
        self
    }

    /// Reads a backup instead of a server: an RDB file, an AOF (with or without an RDB
    /// preamble; or the directory of Redis 7's multi-part AOF, read by its manifest: the base
    /// and the increments), or an RDB and the AOF of the writes after it (what `--tee-rdb` and
    /// `--tee-aof` of `redis-sync sync` write). The events are a live source's: a
    /// `FullResync`, the snapshot, `RdbDone`, then each AOF command with its byte position in
    /// the AOF as its offset, and the stream ends at the end of the AOF. A
    /// [`resume_from`](Self::resume_from) point of the same files (its replication ID is made
    /// from their contents) continues in the AOF with a `Continued`, no snapshot.
    pub fn from_files(
        mut self,
        rdb: Option<impl Into<std::path::PathBuf>>,
        aof: Option<impl Into<std::path::PathBuf>>,
    ) -> Self {
        self.config.files = Some(crate::files::Files {
            rdb: rdb.map(Into::into),
            aof: aof.map(Into::into),
            until: None,
        });
        self
    }

    /// Reads the source with ordinary commands instead of `PSYNC`, for servers that refuse
    /// replication (managed services): `SCAN` + `DUMP`/`PTTL` for the copy, and with
    /// [`ScanOptions::notify`](crate::ScanOptions::notify) the keys that keyspace
    /// notifications name, read again and handed out as `RESTORE … REPLACE ABSTTL` or `DEL`
    /// commands. The events are a live source's (`FullResync`, the snapshot as `Rdb` events,
    /// `RdbDone`, `Command`s), but the offsets are synthetic: nothing can resume such a run
    /// ([`resume_from`](Self::resume_from) is ignored; each run is a full copy), and the copy
    /// is no point-in-time snapshot (see the `scan` module's limits).
    pub fn from_scan(mut self, options: crate::ScanOptions) -> Self {
        self.config.scan = Some(options);
        self
    }

    /// With [`from_files`](Self::from_files): end the stream at the AOF's first `#TS:`
    /// annotation later than `unix_secs` (Redis 7.0+ writes them with
    /// `aof-timestamp-enabled yes`), for a restore to a point in time.
    pub fn until_time(mut self, unix_secs: u64) -> Self {
        if let Some(f) = &mut self.config.files {
            f.until = Some(unix_secs);
        }
        self
    }

    /// Also writes each snapshot the source sends, as received, to the RDB file `path` (a
    /// backup taken on the side: `redis-server` loads it as its `dbfilename`). It is written
    /// as `path.part` and renamed to `path` once complete, so a file at `path` is always a
    /// whole snapshot. A write error stops the copy to the file (logged), not the replica.
    pub fn tee_rdb(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.rdb_tee = Some(path.into());
        self
    }

    /// Asks `locate` where the source is before each reconnection, so the replica follows a
    /// failover: a promoted replica keeps the old master's replication ID as its second one and
    /// so accepts `PSYNC` from where the old master left off (no full copy when its backlog
    /// covers the gap): the master of a cluster shard, or the master a sentinel names. A `None`
    /// answer keeps the last address.
    /// The answer is awaited under the connect timeout.
    pub fn locate<F, Fut>(mut self, locate: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<String>> + Send + 'static,
    {
        self.config.locate = Some(Locate(std::sync::Arc::new(move || Box::pin(locate()))));
        self
    }

    /// The finished configuration.
    pub fn config(self) -> Config {
        self.config
    }

    /// Starts replicating (see [`Replica::start`](crate::Replica::start)).
    pub fn start(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> crate::Replica {
        crate::Replica::start(self.config, shutdown)
    }
}
