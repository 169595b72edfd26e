//! Opening a connection to a target node: TCP or TLS, `AUTH`, and the request/reply calls the
//! sink makes before it starts pipelining (server version, `proto-max-bulk-len`, RDB version
//! probe, cluster topology).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis_sync_resp::{Client, ClientError, Frame, Stream, TlsConnector, info_field};

use crate::error::Error;

/// Credentials for the target (`AUTH password` or `AUTH user password`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// ACL user name (Redis 6+); `None` for the `default` user.
    pub user: Option<String>,
    /// The password.
    pub password: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How every connection to a target node is opened: the credentials, the connect timeout and,
/// for a TLS target, the connector (its CA and client certificate read once, when the sink
/// connects). Every node of a cluster is dialled the same way: with `tls-cluster yes` the
/// nodes announce their TLS ports in the topology.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) auth: Auth,
    pub(crate) timeout: Duration,
    pub(crate) tls: Option<TlsConnector>,
}

/// How long a request/reply call may wait for its answer. The sink's own questions (topology,
/// probe, a checkpoint read back) are small; a node that does not answer them within this is
/// treated like a lost connection (retried), never waited on for ever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected, authenticated node, used request/reply (the project's one client,
/// [`redis_sync_resp::Client`], with the sink's errors).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) addr: String,
    client: Client,
}

/// The sink's error for a failed call.
fn client_error(e: ClientError) -> Error {
    match e {
        ClientError::Connect { addr, source } | ClientError::Io { addr, source } => {
            Error::connect(&addr, source)
        }
        ClientError::Protocol { addr, source } => Error::Protocol {
            addr,
            message: source.to_string(),
        },
        ClientError::Tls {
            addr,
            message,
            hint,
        } => Error::Tls {
            addr,
            message: format!("{message}; {hint}"),
        },
        ClientError::TlsConfig { message } => Error::Config(format!("TLS: {message}")),
        other => {
            let (addr, kind) = match &other {
                ClientError::Timeout { addr, .. } => (addr.clone(), std::io::ErrorKind::TimedOut),
                ClientError::Closed { addr } => (addr.clone(), std::io::ErrorKind::ConnectionReset),
                _ => (String::new(), std::io::ErrorKind::Other),
            };
            Error::connect(&addr, std::io::Error::new(kind, other.to_string()))
        }
    }
}

impl Conn {
    pub(crate) async fn open(addr: &str, dial: &Dial) -> Result<Conn, Error> {
        let (auth, timeout) = (&dial.auth, dial.timeout);
        let mut client = match &dial.tls {
            // A TLS connect that times out most often met a plain port, which waits for a
            // line the TLS hello never ends: report it as a TLS failure, with that hint,
            // rather than as an unreachable server.
            Some(tls) => Client::connect_tls(addr, timeout, tls)
                .await
                .map_err(|e| match e {
                    ClientError::Timeout { .. } => Error::Tls {
                        addr: addr.to_string(),
                        message: e.to_string(),
                    },
                    other => client_error(other),
                })?,
            None => Client::connect(addr, timeout).await.map_err(client_error)?,
        };
        client.set_timeout(REPLY_TIMEOUT.max(timeout));
        if let Some(password) = &auth.password
            && let Some(e) = client
                .auth(auth.user.as_deref(), password)
                .await
                .map_err(client_error)?
        {
            return Err(Error::Auth {
                addr: addr.to_string(),
                message: String::from_utf8_lossy(&e).into_owned(),
            });
        }
        Ok(Conn {
            addr: addr.to_string(),
            client,
        })
    }

    /// Sends one command and reads its reply (an error reply is `Ok(Frame::Error)`).
    pub(crate) async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, Error> {
        self.client.call(args).await.map_err(client_error)
    }

    /// Sends several commands in one write and reads all their replies.
    pub(crate) async fn call_many(&mut self, cmds: &[Vec<Bytes>]) -> Result<Vec<Frame>, Error> {
        self.client.pipeline(cmds).await.map_err(client_error)
    }

    /// The stream and the bytes read but not decoded yet (none, in practice: every call read
    /// exactly its replies).
    pub(crate) fn into_stream(self) -> (Stream, BytesMut) {
        self.client.into_parts()
    }
}

/// What the sink learned about the target when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetInfo {
    /// `redis` or `valkey`.
    pub flavor: String,
    /// The server version, `(major, minor, patch)` (Valkey's own numbering for Valkey).
    pub version: (u32, u32, u32),
    /// The RDB version of the target's `DUMP` payloads (from a probe key), if it could be
    /// learned; RESTORE is used only when the source payload's version is loadable by it.
    pub rdb_version: Option<u16>,
    /// The target's `proto-max-bulk-len` (512 MiB when `CONFIG GET` is refused).
    pub proto_max_bulk_len: u64,
    /// True when the target runs in cluster mode.
    pub cluster: bool,
}

impl TargetInfo {
    /// True when `RESTORE … ABSTTL` and `IDLETIME`/`FREQ` exist (Redis 5.0+, every Valkey).
    pub fn has_absttl(&self) -> bool {
        self.flavor == "valkey" || self.version >= (5, 0, 0)
    }

    /// True when the target can load a `DUMP` payload of RDB version `payload`.
    ///
    /// Redis refuses payloads newer than its own RDB version. Valkey 9 writes version 80 and
    /// loads Redis versions up to 11, but treats 12..=79 as foreign (they are Redis 7.4+
    /// formats it does not read).
    pub fn can_load(&self, payload: u16) -> bool {
        match self.rdb_version {
            None => false,
            Some(t) if t >= 80 => payload <= 11 || (80..=t).contains(&payload),
            Some(t) => payload <= t,
        }
    }
}

/// The RDB version of a `DUMP` payload: its last 10 bytes are the 2-byte version
/// (little-endian) and the 8-byte CRC-64.
pub fn payload_rdb_version(payload: &[u8]) -> Option<u16> {
    let n = payload.len();
    (n >= 11).then(|| u16::from_le_bytes([payload[n - 10], payload[n - 9]]))
}

fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::BulkString(b) | Frame::SimpleString(b) => Some(String::from_utf8_lossy(b).into()),
        Frame::VerbatimString { text, .. } => Some(String::from_utf8_lossy(text).into()),
        _ => None,
    }
}

fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// Asks a node for its version, `proto-max-bulk-len`, cluster mode and RDB version.
pub(crate) async fn probe(conn: &mut Conn) -> Result<TargetInfo, Error> {
    let mut info = conn.call(&["INFO", "server"]).await?;
    // A target that is loading its data or running a long script answers later.
    for attempt in 0..100u64 {
        match &info {
            Frame::Error(e) if e.starts_with(b"LOADING") || e.starts_with(b"BUSY ") => {
                tokio::time::sleep(Duration::from_millis(20 * attempt.min(25))).await;
                info = conn.call(&["INFO", "server"]).await?;
            }
            _ => break,
        }
    }
    if let Frame::Error(e) = &info
        && (e.starts_with(b"NOAUTH") || e.starts_with(b"WRONGPASS") || e.starts_with(b"NOPERM"))
    {
        // NOAUTH (no or wrong password) or NOPERM: nothing will work.
        return Err(Error::Auth {
            addr: conn.addr.clone(),
            message: String::from_utf8_lossy(e).into_owned(),
        });
    }
    let info = text(&info).unwrap_or_default();
    let (flavor, version) = match info_field(&info, "valkey_version") {
        Some(v) => ("valkey", parse_version(v)),
        None => (
            "redis",
            parse_version(info_field(&info, "redis_version").unwrap_or_default()),
        ),
    };
    let cluster_info = conn.call(&["INFO", "cluster"]).await?;
    let cluster =
        text(&cluster_info).is_some_and(|t| info_field(&t, "cluster_enabled") == Some("1"));
    let mut proto_max_bulk_len = 512 * 1024 * 1024;
    if let Frame::Array(items) = conn.call(&["CONFIG", "GET", "proto-max-bulk-len"]).await?
        && let Some(v) = items.get(1).and_then(text)
        && let Ok(v) = v.parse()
    {
        proto_max_bulk_len = v;
    }
    let rdb_version = probe_rdb_version(conn).await?;
    Ok(TargetInfo {
        flavor: flavor.to_string(),
        version,
        rdb_version,
        proto_max_bulk_len,
        cluster,
    })
}

/// Writes a probe key, `DUMP`s it and deletes it, all in one `MULTI`/`EXEC` (so no reader
/// ever sees it), and reads the payload's RDB version. In a cluster the key must hash to a
/// slot this node serves, so a few names are tried.
async fn probe_rdb_version(conn: &mut Conn) -> Result<Option<u16>, Error> {
    for i in 0..48 {
        let key = Bytes::from(format!("redis-sync:probe:{{{i}}}"));
        let cmds = vec![
            vec![Bytes::from_static(b"MULTI")],
            vec![
                Bytes::from_static(b"SET"),
                key.clone(),
                Bytes::from_static(b"x"),
            ],
            vec![Bytes::from_static(b"DUMP"), key.clone()],
            vec![Bytes::from_static(b"DEL"), key.clone()],
            vec![Bytes::from_static(b"EXEC")],
        ];
        let replies = conn.call_many(&cmds).await?;
        match replies.last() {
            Some(Frame::Array(items)) => {
                return Ok(items
                    .get(1)
                    .and_then(Frame::as_bytes)
                    .and_then(|p| payload_rdb_version(p)));
            }
            // MOVED inside MULTI makes EXEC fail with EXECABORT: try another slot.
            Some(Frame::Error(e)) if e.starts_with(b"EXECABORT") => {
                let moved = replies
                    .iter()
                    .any(|r| matches!(r, Frame::Error(e) if e.starts_with(b"MOVED")));
                if !moved {
                    return Ok(None);
                }
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_rules() {
        let mut t = TargetInfo {
            flavor: "redis".into(),
            version: (7, 0, 15),
            rdb_version: Some(10),
            proto_max_bulk_len: 1,
            cluster: false,
        };
        assert!(t.can_load(9) && t.can_load(10) && !t.can_load(11));
        t.rdb_version = Some(80);
        assert!(t.can_load(11) && t.can_load(80) && !t.can_load(12) && !t.can_load(81));
        t.rdb_version = None;
        assert!(!t.can_load(9));
        let mut p = vec![0u8; 20];
        p[10] = 12;
        assert_eq!(payload_rdb_version(&p), Some(12));
        assert_eq!(payload_rdb_version(&p[..5]), None);
    }
}
