//! The replication handshake, as a Redis replica does it (`syncWithMaster` and
//! `slaveTryPartialResynchronization` in Redis's `replication.c`):
//!
//! `AUTH` (optional) → `PING` → `INFO server` (to learn the version) →
//! `REPLCONF listening-port <port>` → `REPLCONF capa eof capa psync2` →
//! `REPLCONF version <v>` (Valkey only) → `PSYNC <replid> <offset>` (or `PSYNC ? -1`).
//!
//! Every reply is awaited under a timeout. `REPLCONF` errors are not fatal (old servers do
//! not know every option, as Redis's own replica tolerates). The `PSYNC` reply may be preceded
//! by bare newlines the source sends while it prepares; they reset the idle timeout.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Config, ResumePoint};
use crate::error::Error;
use crate::transport::Transport;

/// Longest reply line accepted during the handshake: real ones are under 100 bytes; a peer
/// that sends a long line without CRLF is not a Redis server.
const MAX_LINE: usize = 64 * 1024;
/// Longest bulk reply accepted during the handshake (`INFO server` is about 1.5 KB).
const MAX_BULK: usize = 1 << 20;

/// A handshake reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Bulk(Vec<u8>),
    Other(String),
}

/// The connection during the handshake: the transport and the bytes read but not yet used.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) io: Transport,
    pub(crate) buf: BytesMut,
    pub(crate) addr: String,
    /// Bytes read from the socket so far.
    pub(crate) bytes_read: u64,
}

/// What `PSYNC` (or `SYNC`) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncStart {
    /// `+FULLRESYNC <replid> <offset>`: a payload follows.
    Full { replid: String, offset: u64 },
    /// `+CONTINUE [<new replid>]`: the stream continues after the requested offset.
    Continue { new_replid: Option<String> },
    /// The source does not know `PSYNC`; `SYNC` was sent and a payload follows (no offsets).
    Sync,
}

/// What the handshake learned.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    pub(crate) start: SyncStart,
    /// `redis 7.2.4` / `valkey 9.1.2`, when `INFO server` was allowed.
    pub(crate) server: Option<String>,
}

/// One command in RESP (the codec crate's encoder; the handshake's commands are small).
pub(crate) fn encode_command(args: &[&[u8]]) -> BytesMut {
    let mut out = BytesMut::new();
    redis_sync_resp::encode_command(args, &mut out);
    out
}

impl Link {
    pub(crate) fn new(io: Transport, addr: String) -> Link {
        Link {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            addr,
            bytes_read: 0,
        }
    }

    async fn send(&mut self, args: &[&[u8]], step: &str, timeout: Duration) -> Result<(), Error> {
        let bytes = encode_command(args);
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.io.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Io {
                addr,
                during: step.to_string(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                addr,
                step: step.to_string(),
                after: timeout,
            }),
        }
    }

    /// Reads more bytes, under `timeout`.
    async fn fill(&mut self, step: &str, timeout: Duration) -> Result<(), Error> {
        let addr = self.addr.clone();
        self.buf.reserve(8 * 1024);
        match tokio::time::timeout(timeout, self.io.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) => Err(Error::Closed {
                addr,
                during: step.to_string(),
                hint: closed_hint(step),
            }),
            Ok(Ok(n)) => {
                self.bytes_read += n as u64;
                Ok(())
            }
            Ok(Err(source)) if source.kind() == std::io::ErrorKind::ConnectionReset => {
                Err(Error::Closed {
                    addr,
                    during: format!("{step} (connection reset)"),
                    hint: closed_hint(step),
                })
            }
            Ok(Err(source)) => Err(Error::Io {
                addr,
                during: step.to_string(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                addr,
                step: step.to_string(),
                after: timeout,
            }),
        }
    }

    /// One line without its CRLF (a bare `\n` gives an empty line). The timeout applies to
    /// each read, so a source that keeps sending newlines keeps the link alive.
    pub(crate) async fn read_line(
        &mut self,
        step: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let mut line = &line[..i];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.buf.len() > MAX_LINE {
                return Err(Error::Protocol {
                    addr: self.addr.clone(),
                    during: step.to_string(),
                    message: format!("a reply line longer than {MAX_LINE} bytes without CRLF"),
                });
            }
            self.fill(step, timeout).await?;
        }
    }

    /// One reply to a handshake command (status, error or bulk).
    pub(crate) async fn read_reply(
        &mut self,
        step: &str,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let line = loop {
            let line = self.read_line(step, timeout).await?;
            // Newlines are keep-alives, never replies.
            if !line.is_empty() {
                break line;
            }
        };
        let garbage = |line: &str| Error::Protocol {
            addr: self.addr.clone(),
            during: step.to_string(),
            message: format!("unexpected reply {:?}", truncate(line, 80)),
        };
        match line.as_bytes()[0] {
            b'+' => Ok(Reply::Status(line[1..].to_string())),
            b'-' => Ok(Reply::Error(line[1..].to_string())),
            b':' => Ok(Reply::Other(line)),
            b'$' => {
                let len: i64 = line[1..].parse().map_err(|_| garbage(&line))?;
                if len < 0 {
                    return Ok(Reply::Bulk(Vec::new()));
                }
                let len = usize::try_from(len).map_err(|_| garbage(&line))?;
                if len > MAX_BULK {
                    return Err(garbage(&line));
                }
                while self.buf.len() < len + 2 {
                    self.fill(step, timeout).await?;
                }
                let data = self.buf.split_to(len).to_vec();
                self.buf.advance(2);
                Ok(Reply::Bulk(data))
            }
            _ => Err(garbage(&line)),
        }
    }

    /// Sends a command and reads its reply.
    async fn call(
        &mut self,
        args: &[&[u8]],
        step: &str,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        self.send(args, step, timeout).await?;
        self.read_reply(step, timeout).await
    }
}

fn closed_hint(step: &str) -> String {
    if step.starts_with("PING") || step.starts_with("AUTH") {
        "; the port may be a TLS port (enable TLS) or not a Redis/Valkey server".to_string()
    } else {
        String::new()
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

fn error_code(message: &str) -> &str {
    message.split_whitespace().next().unwrap_or("")
}

/// Runs the handshake on a fresh link. `resume` selects `PSYNC <replid> <offset+1>`.
pub(crate) async fn handshake(
    link: &mut Link,
    config: &Config,
    resume: Option<&ResumePoint>,
) -> Result<Handshake, Error> {
    let t = config.timeouts.handshake;
    let addr = link.addr.clone();

    if let Some(auth) = &config.auth {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &auth.user {
            args.push(user.as_bytes());
        }
        args.push(auth.password.as_bytes());
        match link.call(&args, "AUTH", t).await? {
            Reply::Status(_) => {}
            Reply::Error(e)
                if e.contains("without any password") || e.contains("no password is set") =>
            {
                tracing::warn!(%addr, "the source has no password, continuing without: {e}");
            }
            Reply::Error(e) => return Err(Error::Auth { addr, message: e }),
            other => {
                return Err(Error::Protocol {
                    addr,
                    during: "AUTH".into(),
                    message: format!("unexpected reply {other:?}"),
                });
            }
        }
    }

    // PING: a source still loading its dataset answers -LOADING; wait for it (bounded).
    let deadline = tokio::time::Instant::now() + config.timeouts.idle;
    let mut pause = Duration::from_millis(50);
    loop {
        match link.call(&[b"PING"], "PING", t).await? {
            Reply::Status(_) => break,
            Reply::Error(e) if error_code(&e) == "NOAUTH" => {
                return Err(Error::AuthRequired { addr, message: e });
            }
            // Redis's replica accepts these too: the user may lack +ping but still replicate.
            Reply::Error(e)
                if error_code(&e) == "NOPERM" || e.contains("operation not permitted") =>
            {
                break;
            }
            Reply::Error(e)
                if error_code(&e) == "LOADING" && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(%addr, "source is loading its dataset; retrying PING");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Reply::Error(e) => {
                return Err(Error::Refused {
                    addr,
                    command: "PING".into(),
                    message: e,
                });
            }
            other => {
                return Err(Error::Protocol {
                    addr,
                    during: "PING".into(),
                    message: format!("unexpected reply {other:?}"),
                });
            }
        }
    }

    // The version: Valkey wants `REPLCONF version`, and events report it.
    let mut server = None;
    let mut valkey_version = None;
    if let Reply::Bulk(info) = link.call(&[b"INFO", b"server"], "INFO server", t).await? {
        let text = String::from_utf8_lossy(&info);
        let field = |name: &str| redis_sync_resp::info_field(&text, name).map(str::to_string);
        if let Some(v) = field("valkey_version") {
            server = Some(format!("valkey {v}"));
            valkey_version = Some(v);
        } else if let Some(v) = field("redis_version") {
            server = Some(format!("redis {v}"));
        }
    }

    let port = if config.listening_port == 0 {
        crate::transport::local_port(&link.io)
    } else {
        config.listening_port
    };
    let port = port.to_string();
    if let Reply::Error(e) = link
        .call(
            &[b"REPLCONF", b"listening-port", port.as_bytes()],
            "REPLCONF listening-port",
            t,
        )
        .await?
    {
        tracing::info!(%addr, "(non critical) REPLCONF listening-port refused: {e}");
    }
    if let Reply::Error(e) = link
        .call(
            &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
            "REPLCONF capa",
            t,
        )
        .await?
    {
        tracing::info!(%addr, "(non critical) REPLCONF capa refused: {e}");
    }
    if let Some(v) = config.announce_version.clone().or(valkey_version)
        && let Reply::Error(e) = link
            .call(
                &[b"REPLCONF", b"version", v.as_bytes()],
                "REPLCONF version",
                t,
            )
            .await?
    {
        tracing::info!(%addr, "(non critical) REPLCONF version refused: {e}");
    }

    let (replid, offset) = match resume {
        Some(p) => (p.replid.clone(), (p.offset + 1).to_string()),
        None => ("?".to_string(), "-1".to_string()),
    };
    link.send(
        &[b"PSYNC", replid.as_bytes(), offset.as_bytes()],
        "PSYNC",
        t,
    )
    .await?;
    let idle = config.timeouts.idle;
    let line = loop {
        let line = link.read_line("the PSYNC reply", idle).await?;
        if !line.is_empty() {
            break line;
        }
    };
    let start = parse_psync_reply(&addr, &line)?;
    let start = match start {
        Some(s) => s,
        None => {
            tracing::warn!(%addr, "the source does not support PSYNC ({line}); falling back to SYNC: no partial resynchronisation, no offsets");
            link.send(&[b"SYNC"], "SYNC", t).await?;
            SyncStart::Sync
        }
    };
    Ok(Handshake { start, server })
}

/// Parses the `PSYNC` reply. `Ok(None)` means "not supported: use SYNC".
pub(crate) fn parse_psync_reply(addr: &str, line: &str) -> Result<Option<SyncStart>, Error> {
    let bad = |message: String| Error::Protocol {
        addr: addr.to_string(),
        during: "the PSYNC reply".into(),
        message,
    };
    if let Some(rest) = line.strip_prefix("+FULLRESYNC") {
        let mut parts = rest.split_whitespace();
        let (Some(replid), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("malformed {line:?}")));
        };
        if replid.len() != 40 || !replid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(format!("malformed replication ID in {line:?}")));
        }
        let offset: u64 = offset
            .parse()
            .map_err(|_| bad(format!("malformed offset in {line:?}")))?;
        return Ok(Some(SyncStart::Full {
            replid: replid.to_string(),
            offset,
        }));
    }
    if let Some(rest) = line.strip_prefix("+CONTINUE") {
        let id = rest.trim();
        if id.is_empty() {
            return Ok(Some(SyncStart::Continue { new_replid: None }));
        }
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(format!("malformed replication ID in {line:?}")));
        }
        return Ok(Some(SyncStart::Continue {
            new_replid: Some(id.to_string()),
        }));
    }
    if let Some(e) = line.strip_prefix('-') {
        let code = error_code(e);
        return match code {
            // Redis's replica: "try later" (PSYNC_TRY_LATER).
            "NOMASTERLINK" | "LOADING" => Err(Error::Refused {
                addr: addr.to_string(),
                command: "PSYNC".into(),
                message: format!("{e} (will retry)"),
            }),
            "NOPERM" => Err(Error::NoPermission {
                addr: addr.to_string(),
                command: "PSYNC".into(),
                message: e.to_string(),
            }),
            "NOAUTH" => Err(Error::AuthRequired {
                addr: addr.to_string(),
                message: e.to_string(),
            }),
            _ => Ok(None),
        };
    }
    Err(bad(format!("unexpected reply {:?}", truncate(line, 80))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn psync_replies() {
        assert_eq!(
            parse_psync_reply("a", &format!("+FULLRESYNC {ID} 42")).expect("ok"),
            Some(SyncStart::Full {
                replid: ID.into(),
                offset: 42
            })
        );
        assert_eq!(
            parse_psync_reply("a", "+CONTINUE").expect("ok"),
            Some(SyncStart::Continue { new_replid: None })
        );
        assert_eq!(
            parse_psync_reply("a", &format!("+CONTINUE {ID}")).expect("ok"),
            Some(SyncStart::Continue {
                new_replid: Some(ID.into())
            })
        );
        assert_eq!(
            parse_psync_reply("a", "-ERR unknown command 'PSYNC'").expect("ok"),
            None
        );
        assert!(matches!(
            parse_psync_reply(
                "a",
                "-NOMASTERLINK Can't SYNC while not connected with my master"
            ),
            Err(Error::Refused { .. })
        ));
        assert!(matches!(
            parse_psync_reply("a", "-NOPERM this user has no permissions"),
            Err(Error::NoPermission { .. })
        ));
        assert!(matches!(
            parse_psync_reply("a", "+FULLRESYNC x 1"),
            Err(Error::Protocol { .. })
        ));
        assert!(matches!(
            parse_psync_reply("a", "HTTP/1.1 400"),
            Err(Error::Protocol { .. })
        ));
        assert!(matches!(
            parse_psync_reply("a", &format!("+FULLRESYNC {ID} -5")),
            Err(Error::Protocol { .. })
        ));
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(&encode_command(&[b"PING"])[..], b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            &encode_command(&[b"REPLCONF", b"ACK", b"12"])[..],
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n12\r\n"
        );
    }
}
