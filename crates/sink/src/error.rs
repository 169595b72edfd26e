//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::classify::ErrorClass;

/// Why the sink stopped or refused something. Every message names where (address, key,
/// command) and what to do. Cheap to clone: a stopped sink hands the same error to every
/// caller that tries to write after it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Could not connect to (or lost) a target node and every retry failed.
    #[error("cannot connect to target {addr}: {source} (is the server running and reachable?)")]
    Connect {
        /// The node's address.
        addr: String,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The TLS handshake with a target node failed (a plain port, an untrusted certificate, a
    /// name the certificate does not carry), or the TLS settings are unusable.
    #[error("TLS to target {addr} failed: {message}")]
    Tls {
        /// The node's address.
        addr: String,
        /// What went wrong, with the likely cause and what to do.
        message: String,
    },
    /// Authentication was refused at connect time.
    #[error("target {addr} refused authentication: {message} (check the sink's user and password)")]
    Auth {
        /// The node's address.
        addr: String,
        /// The server's reply.
        message: String,
    },
    /// The target rejected a command and the error policy (or the error's class) says stop.
    #[error(
        "target {addr} rejected `{command}`{key_part} in db {db}{offset_part}: {message} \
         ({class} error). What to do: {advice}",
        key_part = key.as_ref().map(|k| format!(" on key `{k}`")).unwrap_or_default(),
        offset_part = offset.map(|o| format!(" (source offset {o})")).unwrap_or_default()
    )]
    Rejected {
        /// The node that answered.
        addr: String,
        /// The error's class.
        class: ErrorClass,
        /// The key the command wrote, when it has one (escaped, truncated).
        key: Option<String>,
        /// The command, arguments truncated.
        command: String,
        /// The database.
        db: u32,
        /// The server's error reply.
        message: String,
        /// How to fix it.
        advice: &'static str,
        /// The source replication offset at the end of the rejected command, when known.
        offset: Option<u64>,
        /// The command was inside a checkpointed transaction that committed anyway (Redis
        /// does not roll back): what the target now holds.
        committed: Option<Box<Committed>>,
    },
    /// A retryable error (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, connection reset) went on for
    /// more attempts than allowed.
    #[error(
        "gave up on `{command}` after {attempts} attempts: last error {message} (the target \
         stayed unavailable; check its state, or raise the sink's retry limit)"
    )]
    RetriesExhausted {
        /// The command, arguments truncated.
        command: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// A full-sync key already exists on the target and the conflict mode is `block`.
    #[error(
        "key `{key}` in db {db} already exists on the target (conflict mode block): empty the \
         target, or run with conflict mode overwrite"
    )]
    Conflict {
        /// The key (escaped, truncated).
        key: String,
        /// The database.
        db: u32,
    },
    /// The target sent bytes that are not RESP.
    #[error("target {addr} sent an invalid reply: {message} (is this a Redis-compatible server?)")]
    Protocol {
        /// The node's address.
        addr: String,
        /// The decoder's error.
        message: String,
    },
    /// The cluster topology could not be read or makes no sense.
    #[error("cannot read the cluster topology: {message}")]
    Topology {
        /// What went wrong, with the nodes tried.
        message: String,
    },
    /// A file (dead letter, file sink) could not be written.
    #[error("cannot write {}: {source} (check the path and free disk space)", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A full-sync key could not be turned into commands for the target.
    #[error("cannot write key from the source: {0}")]
    Convert(String),
    /// The configuration is not usable.
    #[error("invalid sink configuration: {0}")]
    Config(String),
    /// After a failover, the target's new master does not hold transactions the old one had
    /// acknowledged (asynchronous replication lost them): the sink stops rather than go on
    /// with a hole in the target. Resume from the checkpoint the new master holds.
    #[error(
        "the target's new master {addr} lost acknowledged writes in the failover: its \
         checkpoint {key} is at offset {held_part}, offset {committed} had been committed \
         (replication to it is asynchronous); resume from its checkpoint",
        held_part = held.map_or_else(|| "none".to_string(), |o| o.to_string())
    )]
    Regressed {
        /// The new master.
        addr: String,
        /// The checkpoint key that is behind.
        key: String,
        /// The offset of the checkpoint the new master holds, if any.
        held: Option<u64>,
        /// The offset of the last transaction acknowledged on this key.
        committed: u64,
    },
    /// The sink was shut down (or its task ended) and takes no more writes.
    #[error("the sink is shut down and takes no more writes")]
    Closed,
}

/// A checkpointed transaction ([`Sink::write_transaction`](crate::Sink::write_transaction))
/// committed although some of its commands failed: every other command of it, and its
/// checkpoint, are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// End offsets of the commands that failed, in order.
    pub failed: Vec<u64>,
    /// The offset the transaction's checkpoint holds (its last command's end).
    pub through: u64,
}

impl Error {
    /// The error class when the target rejected a command.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Error::Rejected { class, .. } => Some(*class),
            Error::Conflict { .. } => Some(ErrorClass::Data),
            Error::RetriesExhausted { .. } => Some(ErrorClass::Retryable),
            Error::Auth { .. } => Some(ErrorClass::Fatal),
            _ => None,
        }
    }

    pub(crate) fn file(path: &std::path::Path, source: io::Error) -> Error {
        Error::File {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn connect(addr: &str, source: io::Error) -> Error {
        Error::Connect {
            addr: addr.to_string(),
            source: Arc::new(source),
        }
    }
}

/// A command for messages: arguments escaped, each cut to 40 bytes, at most 6 of them.
pub(crate) fn show_command(args: &[bytes::Bytes]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i == 6 {
            out.push_str(&format!(" … ({} more)", args.len() - 6));
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&show_bytes(a, 40));
    }
    out
}

/// Bytes for messages: printable ASCII as is, the rest `\xNN`, cut to `max` bytes.
pub(crate) fn show_bytes(b: &[u8], max: usize) -> String {
    let mut s: String = b
        .iter()
        .take(max)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > max {
        s.push_str(&format!("…({} bytes)", b.len()));
    }
    s
}
