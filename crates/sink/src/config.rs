//! [`SinkBuilder`]: every setting of a [`Sink`](crate::Sink), with defaults.

use std::path::PathBuf;
use std::time::Duration;

use redis_sync_resp::TlsConfig;

use crate::conn::{Auth, Dial};
use crate::deadletter::DeadLetterFormat;
use crate::rate::RateLimit;

/// What to do when the target rejects a command with a data or capacity error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// Stop the sink with an error naming the key, the command, the server's error and what
    /// to do. The acknowledged offset stays before the failed command.
    #[default]
    Stop,
    /// Write the command to the dead-letter file, count it in [`Metrics::skipped`](crate::Metrics)
    /// and go on. Requires a dead-letter path: nothing is dropped silently.
    Skip,
    /// As [`Skip`](Self::Skip), and each command refused because the target's copy of its key
    /// differs (`WRONGTYPE`, not an integer or a float, an `XADD` ID not above the top item:
    /// class [`Data`](crate::ErrorClass::Data)) is also handed to the caller as a
    /// [`Repair`](crate::Repair) (see [`Sink::take_repairs`](crate::Sink::take_repairs)), to
    /// copy that key afresh from the source.
    Repair,
}

/// What a full sync does with keys that already exist on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// Replace them (`RESTORE … REPLACE`, or a temporary key renamed over them).
    #[default]
    Overwrite,
    /// Refuse: `RESTORE` without `REPLACE` (the target answers `BUSYKEY`), and keys written by
    /// commands go to a temporary key moved with `RENAMENX`. The error names the key.
    Block,
}

/// Settings the engine task reads.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) seeds: Vec<String>,
    pub(crate) cluster: Option<bool>,
    /// Credentials, connect timeout and (once connected) the TLS connector.
    pub(crate) dial: Dial,
    /// TLS to the target, as configured; made into `dial.tls` by `connect`.
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) window: usize,
    pub(crate) window_bytes: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letter: Option<(PathBuf, DeadLetterFormat)>,
    pub(crate) rate: RateLimit,
    pub(crate) conflict: Conflict,
    pub(crate) max_attempts: u32,
    pub(crate) small_key_commands: usize,
    pub(crate) small_key_bytes: usize,
    pub(crate) max_value_bytes: Option<u64>,
    pub(crate) channel: usize,
    pub(crate) queue_bytes: usize,
    /// Asked where a standalone target's master is before each reconnection.
    pub(crate) locate: Option<crate::locate::Locate>,
}

/// Configures and connects a [`Sink`](crate::Sink).
///
/// ```no_run
/// # async fn f() -> Result<(), redis_sync_sink::Error> {
/// use redis_sync_sink::{ErrorPolicy, Sink};
/// let sink = Sink::builder()
///     .standalone("127.0.0.1:6379")
///     .password("secret")
///     .window(4096, 16 << 20)
///     .policy(ErrorPolicy::Skip)
///     .dead_letter("dead.resp")
///     .connect()
///     .await?;
/// # drop(sink); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SinkBuilder {
    pub(crate) s: Settings,
}

impl Default for SinkBuilder {
    fn default() -> Self {
        SinkBuilder {
            s: Settings {
                seeds: Vec::new(),
                cluster: None,
                dial: Dial {
                    auth: Auth::default(),
                    timeout: Duration::from_secs(5),
                    tls: None,
                },
                tls: None,
                window: 4096,
                window_bytes: 16 * 1024 * 1024,
                batch_bytes: 256 * 1024,
                policy: ErrorPolicy::Stop,
                dead_letter: None,
                rate: RateLimit::none(),
                conflict: Conflict::Overwrite,
                max_attempts: 40,
                small_key_commands: 3,
                small_key_bytes: 1024 * 1024,
                max_value_bytes: None,
                channel: 8192,
                queue_bytes: 16 * 1024 * 1024,
                locate: None,
            },
        }
    }
}

impl SinkBuilder {
    /// A standalone target (`host:port`).
    pub fn standalone(mut self, addr: impl Into<String>) -> Self {
        self.s.seeds = vec![addr.into()];
        self.s.cluster = Some(false);
        self
    }

    /// A cluster target: any of its nodes (`host:port`); the slot map is read from the first
    /// that answers.
    pub fn cluster<I: IntoIterator<Item = S>, S: Into<String>>(mut self, seeds: I) -> Self {
        self.s.seeds = seeds.into_iter().map(Into::into).collect();
        self.s.cluster = Some(true);
        self
    }

    /// A target whose mode is detected at connect (`INFO cluster`).
    pub fn target(mut self, addr: impl Into<String>) -> Self {
        self.s.seeds = vec![addr.into()];
        self.s.cluster = None;
        self
    }

    /// `AUTH password` on every connection.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.s.dial.auth.password = Some(password.into());
        self
    }

    /// `AUTH user password` on every connection (Redis 6+ ACL users).
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.s.dial.auth.user = Some(user.into());
        self.s.dial.auth.password = Some(password.into());
        self
    }

    /// Connect to every node over TLS (rustls, ring provider): a CA file or `insecure`, an
    /// optional client certificate and server name. The files are read when the sink connects,
    /// which fails with [`Error::Tls`](crate::Error::Tls) naming the target if they are
    /// unusable. For a cluster, the nodes must announce their TLS ports (`tls-cluster yes`).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.s.tls = Some(tls);
        self
    }

    /// The in-flight window per node: at most `commands` commands and `bytes` bytes sent and
    /// not yet answered (default 4096 and 16 MiB). Bytes are what the commands cost in memory:
    /// their RESP size plus about 256 bytes each for the sink's bookkeeping. A command bigger
    /// than `bytes` still goes, alone.
    pub fn window(mut self, commands: usize, bytes: usize) -> Self {
        self.s.window = commands.max(1);
        self.s.window_bytes = bytes.max(1);
        self
    }

    /// Most bytes of commands queued in the sink and not yet sent (default 16 MiB), counted as
    /// in [`window`](Self::window): a caller that writes faster than the target takes them
    /// waits in `write`, so memory does not follow the gap between the source's speed and the
    /// target's. A command bigger than this still goes, alone.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.s.queue_bytes = bytes.clamp(64 * 1024, u32::MAX as usize);
        self
    }

    /// Write to a socket as soon as this many bytes are buffered (default 256 KiB); smaller
    /// batches go when there is nothing more to send right now.
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.s.batch_bytes = bytes.max(1);
        self
    }

    /// The error policy (default [`ErrorPolicy::Stop`]).
    pub fn policy(mut self, policy: ErrorPolicy) -> Self {
        self.s.policy = policy;
        self
    }

    /// Where skipped commands go (RESP format; required by [`ErrorPolicy::Skip`] and
    /// [`ErrorPolicy::Repair`]).
    pub fn dead_letter(mut self, path: impl Into<PathBuf>) -> Self {
        self.s.dead_letter = Some((path.into(), DeadLetterFormat::Resp));
        self
    }

    /// The dead-letter file with an explicit format.
    pub fn dead_letter_as(mut self, path: impl Into<PathBuf>, format: DeadLetterFormat) -> Self {
        self.s.dead_letter = Some((path.into(), format));
        self
    }

    /// Throughput limits and the adaptive back-off (default none).
    pub fn rate(mut self, rate: RateLimit) -> Self {
        self.s.rate = rate;
        self
    }

    /// The full sync's conflict mode (default [`Conflict::Overwrite`]).
    pub fn conflict(mut self, conflict: Conflict) -> Self {
        self.s.conflict = conflict;
        self
    }

    /// How many times one command is tried on retryable errors, redirections and lost
    /// connections before the sink gives up (default 40, with back-off up to 1 s: about 30 s).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.s.max_attempts = attempts.max(1);
        self
    }

    /// Timeout of each connection attempt (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.s.dial.timeout = timeout;
        self
    }

    /// A full-sync key of more than `commands` commands or `bytes` bytes is written to a
    /// temporary key and renamed into place (default 3 commands, 1 MiB).
    pub fn small_key(mut self, commands: usize, bytes: usize) -> Self {
        self.s.small_key_commands = commands.max(1);
        self.s.small_key_bytes = bytes;
        self
    }

    /// A standalone target whose master can move (Redis Sentinel): before each reconnection
    /// the sink asks `locate` for the master's `host:port` (`None` keeps the last address),
    /// checks that the node says `master` to `ROLE`, and takes a `READONLY` reply as "this node
    /// became a replica: find the master" rather than as a fatal error. Reconnecting is retried
    /// for about three minutes, the time a failover may take.
    ///
    /// Checkpointed transactions stay exactly-once across the switch: those in flight are
    /// resolved by their stamp on the new master, and if the new master lacks one the old one
    /// had acknowledged (asynchronous replication), the sink stops with
    /// [`Error::Regressed`](crate::Error::Regressed) instead of going on with a hole. Plain
    /// writes ([`Sink::write`](crate::Sink::write)) are at-least-once, as after any lost
    /// connection, and an acknowledged one the failover lost is not detected.
    ///
    /// Without it (the default) nothing changes: a lost connection reconnects to the same
    /// address. Ignored for a cluster target, which follows its failovers through its slot map.
    pub fn locate<F, Fut>(mut self, locate: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<String>> + Send + 'static,
    {
        self.s.locate = Some(crate::locate::Locate(std::sync::Arc::new(move || {
            Box::pin(locate())
        })));
        self
    }

    /// The largest value argument to send (default: the target's `proto-max-bulk-len`);
    /// see [`Sink::max_value_bytes`](crate::Sink::max_value_bytes).
    pub fn max_value_bytes(mut self, bytes: u64) -> Self {
        self.s.max_value_bytes = Some(bytes);
        self
    }
}
