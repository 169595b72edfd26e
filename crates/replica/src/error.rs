//! The crate's one error type.
//!
//! Every message says what went wrong, where (the source's address, the handshake step, the
//! payload or stream offset) and what to do about it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while replicating from a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error(
        "cannot connect to {addr}: {source}; check the address and that the server is running and reachable"
    )]
    Connect {
        /// The source's address.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A step took longer than its timeout.
    #[error(
        "no reply from {addr} to {step} within {after:?}; the server may be overloaded, not a Redis/Valkey server, or TLS/plain text may be mismatched (raise the timeout if the source is just slow)"
    )]
    Timeout {
        /// The source's address.
        addr: String,
        /// What was awaited.
        step: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("I/O error talking to {addr} during {during}: {source}")]
    Io {
        /// The source's address.
        addr: String,
        /// What was going on.
        during: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The source closed the connection.
    #[error("{addr} closed the connection during {during}{hint}")]
    Closed {
        /// The source's address.
        addr: String,
        /// What was going on.
        during: String,
        /// Advice, if any (starts with `; `).
        hint: String,
    },
    /// The TLS configuration is unusable (files missing or malformed).
    #[error("TLS configuration error: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {message}")]
    Tls {
        /// The source's address.
        addr: String,
        /// What rustls said, and the likely cause (a plain port, an unknown CA, a name
        /// the certificate does not carry) with what to do.
        message: String,
    },
    /// The source refused the password (or user name and password).
    #[error(
        "authentication to {addr} failed: {message}; check the password (and the user name for an ACL user)"
    )]
    Auth {
        /// The source's address.
        addr: String,
        /// The server's error reply.
        message: String,
    },
    /// The source requires a password and none was given.
    #[error(
        "{addr} requires authentication ({message}); give the password (and the user name for an ACL user)"
    )]
    AuthRequired {
        /// The source's address.
        addr: String,
        /// The server's error reply.
        message: String,
    },
    /// The ACL user may not run a replication command.
    #[error(
        "{addr} denied {command}: {message}; the user needs replication rights, e.g. `ACL SETUSER <user> +psync +sync +replconf +ping`"
    )]
    NoPermission {
        /// The source's address.
        addr: String,
        /// The command that was refused.
        command: String,
        /// The server's error reply.
        message: String,
    },
    /// The source answered a handshake command with an unexpected error.
    #[error("{addr} refused {command}: {message}")]
    Refused {
        /// The source's address.
        addr: String,
        /// The command that was refused.
        command: String,
        /// The server's error reply.
        message: String,
    },
    /// The source refuses both `PSYNC` and `SYNC`: it does not let replicas attach.
    #[error(
        "{addr} does not allow replication ({message}); managed services often disable PSYNC/SYNC: use their own migration feature, or a source (or one of its replicas) that allows it"
    )]
    Unsupported {
        /// The source's address.
        addr: String,
        /// The server's error reply.
        message: String,
    },
    /// The source sent something that is not the replication protocol.
    #[error(
        "protocol error from {addr} during {during}: {message}; is this a Redis or Valkey server (and plain text vs TLS right)?"
    )]
    Protocol {
        /// The source's address.
        addr: String,
        /// What was going on.
        during: String,
        /// What was wrong.
        message: String,
    },
    /// The source aborted the transfer with an error line (e.g. its BGSAVE failed).
    #[error(
        "{addr} aborted the full sync: {message}; check the source's log (disk space, fork failure)"
    )]
    Aborted {
        /// The source's address.
        addr: String,
        /// The error line it sent.
        message: String,
    },
    /// The RDB payload could not be decoded.
    #[error("bad RDB payload from {addr} at payload byte {payload_offset}: {source}")]
    Rdb {
        /// The source's address.
        addr: String,
        /// Bytes of the payload read before the error.
        payload_offset: u64,
        /// The decoder's error.
        source: Box<redis_sync_rdb::Error>,
    },
    /// The command stream could not be decoded.
    #[error("bad command stream from {addr} at replication offset {offset}: {source}")]
    Resp {
        /// The source's address.
        addr: String,
        /// The replication offset of the frame that failed.
        offset: u64,
        /// The decoder's error.
        source: Box<redis_sync_resp::Error>,
    },
    /// The command stream held a frame that is not a command.
    #[error(
        "unexpected frame in the command stream from {addr} at replication offset {offset}: {message}"
    )]
    BadCommand {
        /// The source's address.
        addr: String,
        /// The replication offset of the frame.
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// The spool file could not be written or read.
    #[error(
        "spool file in {dir} failed: {source}; free disk space or choose another spool directory"
    )]
    Spool {
        /// The spool directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The spool reached its size limit: the consumer is too slow for the source.
    #[error(
        "the spool in {dir} reached its limit of {limit} bytes: the consumer (target) is slower than the source's write rate; raise the spool limit or speed up the target"
    )]
    SpoolFull {
        /// The spool directory.
        dir: PathBuf,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// Reconnecting failed too many times in a row.
    #[error("gave up after {attempts} reconnection attempts; last error: {last}")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<Error>,
    },
}

impl Error {
    /// True when retrying cannot help (wrong password, missing rights, bad configuration,
    /// a full spool): the replica stops instead of reconnecting.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Auth { .. }
                | Error::AuthRequired { .. }
                | Error::NoPermission { .. }
                | Error::Unsupported { .. }
                | Error::TlsConfig(_)
                | Error::SpoolFull { .. }
                | Error::Spool { .. }
                | Error::GaveUp { .. }
        )
    }
}
