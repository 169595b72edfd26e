//! A small request/reply client for the CLI's own questions to a server (`INFO`, `CONFIG GET`,
//! `SCAN`, `DEBUG DIGEST`, the heartbeat): one connection, plain or TLS as the endpoint says,
//! one command at a time or a pipelined batch, every wait bounded by a timeout. The data path
//! uses the sink instead.

use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use redis_sync_resp::{ClientError, Decoder, Frame, TlsConnector, info_fields};

use crate::config::{SOURCE_TLS_FLAGS, TARGET_TLS_FLAGS};
use crate::url::Endpoint;

/// Largest reply accepted (a `SCAN` page or an `INFO`; values are read through `DUMP` or
/// digests, and a bigger one is an error rather than an allocation).
const MAX_REPLY: u64 = 512 << 20;

/// One connection to a server: the project's one client ([`redis_sync_resp::Client`]) with
/// the endpoint's credentials and db, and errors for the CLI.
#[derive(Debug)]
pub struct Client {
    inner: redis_sync_resp::Client,
}

impl Client {
    /// Connects to `ep` (TCP, or TLS for `rediss://`; `AUTH` when it has a password) and
    /// selects its db if the URL names one. A sentinel endpoint connects to its master now,
    /// which a failover may have moved since the command started.
    pub async fn connect(ep: &Endpoint, timeout: Duration) -> anyhow::Result<Client> {
        let addr = crate::sentinel::master_addr(ep).await?;
        Self::connect_addr(ep, &addr, timeout).await
    }

    /// Connects to `addr` with `ep`'s credentials and TLS settings (a cluster node found
    /// through `ep`).
    pub async fn connect_addr(
        ep: &Endpoint,
        addr: &str,
        timeout: Duration,
    ) -> anyhow::Result<Client> {
        let inner = match &ep.tls {
            None => redis_sync_resp::Client::connect(addr, timeout).await?,
            Some(tls) => {
                // Built per connection: the CLI opens few, and each names its own error.
                let connector = TlsConnector::new(tls).map_err(|e| tls_error(ep, e))?;
                redis_sync_resp::Client::connect_tls(addr, timeout, &connector)
                    .await
                    .map_err(|e| tls_error(ep, e))?
            }
        }
        .with_decoder(Decoder::builder().max_bulk_len(MAX_REPLY).build());
        let mut c = Client { inner };
        if let Some(pw) = &ep.password
            && let Some(e) = c.inner.auth(ep.user.as_deref(), pw).await?
        {
            bail!(
                "{addr} refused the credentials: {} (check the user and password)",
                String::from_utf8_lossy(&e)
            );
        }
        if let Some(db) = ep.db {
            let r = c.call(&["SELECT", &db.to_string()]).await?;
            if let Frame::Error(e) = r {
                bail!("SELECT {db} on {addr}: {}", String::from_utf8_lossy(&e));
            }
        }
        Ok(c)
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        self.inner.addr()
    }

    /// Sends one command and returns its reply (an error reply is `Ok(Frame::Error)`).
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Frame> {
        Ok(self.inner.call(args).await?)
    }

    /// Sends the commands in one write and returns their replies in order.
    pub async fn pipeline(&mut self, cmds: &[Vec<Bytes>]) -> anyhow::Result<Vec<Frame>> {
        Ok(self.inner.pipeline(cmds).await?)
    }

    /// `call` that turns an error reply into an error naming the command.
    pub async fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Frame> {
        match self.call(args).await? {
            Frame::Error(e) | Frame::BulkError(e) => bail!(
                "{} answered `{}` with: {}",
                self.addr(),
                args.first()
                    .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&e)
            ),
            f => Ok(f),
        }
    }

    /// `INFO section` as `(field, value)` pairs.
    pub async fn info(&mut self, section: &str) -> anyhow::Result<Vec<(String, String)>> {
        let f = self.ok(&["INFO", section]).await?;
        let text = text(&f).unwrap_or_default();
        Ok(info_fields(&text)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// One `CONFIG GET name` value (`None` when refused or unknown).
    pub async fn config_get(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        match self.call(&["CONFIG", "GET", name]).await? {
            Frame::Array(items) => Ok(items.get(1).and_then(text)),
            Frame::Map(items) => Ok(items.first().and_then(|(_, v)| text(v))),
            _ => Ok(None),
        }
    }
}

/// A failed TLS connection, with where its settings come from when they may be the cause
/// (the client does not know which side `ep` is: both sets of flags are named).
fn tls_error(ep: &Endpoint, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Tls { .. } | ClientError::TlsConfig { .. } | ClientError::Timeout { .. } => {
            anyhow::Error::from(e).context(format!(
                "{ep} over TLS (options: {SOURCE_TLS_FLAGS} for the source; \
                 {TARGET_TLS_FLAGS} for the target)"
            ))
        }
        other => other.into(),
    }
}

/// The field/value pairs of a reply that is a flat array (RESP2: `HGETALL`, `SENTINEL MASTER`)
/// or a map (RESP3); empty for anything else.
pub fn pairs(f: &Frame) -> Vec<(String, String)> {
    match f {
        Frame::Array(items) => items
            .chunks(2)
            .filter_map(|p| Some((text(p.first()?)?, text(p.get(1)?)?)))
            .collect(),
        Frame::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The text of a string-like reply.
pub fn text(f: &Frame) -> Option<String> {
    match f {
        Frame::SimpleString(b) | Frame::BulkString(b) => Some(String::from_utf8_lossy(b).into()),
        Frame::VerbatimString { text, .. } => Some(String::from_utf8_lossy(text).into()),
        Frame::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A field of an `INFO` reply.
pub fn field<'a>(info: &'a [(String, String)], name: &str) -> Option<&'a str> {
    info.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `(major, minor, patch)` from `7.2.4`.
pub fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The flavor and version of a server from its `INFO server`.
pub fn server_version(info: &[(String, String)]) -> (&'static str, (u32, u32, u32)) {
    match field(info, "valkey_version") {
        Some(v) => ("valkey", parse_version(v)),
        None => (
            "redis",
            parse_version(field(info, "redis_version").unwrap_or("0")),
        ),
    }
}

/// The master nodes of a cluster (`CLUSTER SLOTS`), as `host:port`, each once.
pub async fn cluster_masters(c: &mut Client) -> anyhow::Result<Vec<String>> {
    let f = c.ok(&["CLUSTER", "SLOTS"]).await?;
    let mut out: Vec<String> = Vec::new();
    for range in f.as_slice().unwrap_or(&[]) {
        let Some(parts) = range.as_slice() else {
            continue;
        };
        let Some(node) = parts.get(2).and_then(Frame::as_slice) else {
            continue;
        };
        let host = node.first().and_then(text).unwrap_or_default();
        let port = node.get(1).and_then(Frame::as_integer).unwrap_or(0);
        let host = if host.is_empty() {
            c.addr()
                .rsplit_once(':')
                .map_or("127.0.0.1".to_string(), |(h, _)| h.to_string())
        } else {
            host
        };
        let addr = format!("{host}:{port}");
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}
