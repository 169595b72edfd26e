//! A plain client connection to the source for the SCAN source: commands are queued and
//! written in one go (pipelining), replies are read in order, whole for small ones (under a
//! size limit, with the RESP decoder) or, for a `DUMP` reply, as a bulk length followed by the
//! payload's bytes in pieces, so a large value passes through without being held.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use redis_sync_resp::{Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::error::Error;
use crate::transport::{Transport, connect};

/// Bytes read from the socket at a time.
const READ: usize = 64 << 10;
/// Longest reply line (`$<len>`, `-ERR …`) accepted before a bulk payload.
const MAX_LINE: usize = 64 << 10;

/// The start of a `DUMP` reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BulkHead {
    /// `$-1`: no such key.
    Null,
    /// `$<len>`: `len` bytes follow (then CRLF).
    Len(u64),
    /// An error reply.
    Error(String),
}

/// One connection: the socket, what was read and not used, what is queued to send.
pub(crate) struct Conn {
    io: Transport,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    pub(crate) addr: String,
    /// The longest wait for a reply's next bytes (`None`: a subscription, silent while the
    /// source is idle).
    timeout: Option<Duration>,
    /// Bytes read since [`take_read`](Self::take_read) was last called.
    bytes_read: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

impl Conn {
    /// Connects (TCP or TLS as `config` says), authenticates, and names the client so that
    /// `CLIENT LIST` on the source shows what it is. `max_frame` bounds every reply read
    /// whole (a `SCAN` page, an error).
    pub(crate) async fn open(config: &Config, name: &str, max_frame: u64) -> Result<Conn, Error> {
        let io = connect(config).await?;
        let mut c = Conn {
            io,
            rbuf: BytesMut::with_capacity(READ),
            wbuf: BytesMut::new(),
            decoder: Decoder::builder()
                .max_bulk_len(max_frame)
                .max_aggregate_len(1 << 20)
                .build(),
            addr: config.addr.clone(),
            timeout: Some(config.timeouts.idle),
            bytes_read: 0,
        };
        if let Some(auth) = &config.auth {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &auth.user {
                args.push(user.as_bytes());
            }
            args.push(auth.password.as_bytes());
            match c.call(&args, "AUTH").await? {
                Frame::Error(e)
                    if !(e.ends_with(b"without any password configured?")
                        || String::from_utf8_lossy(&e).contains("no password is set")) =>
                {
                    return Err(Error::Auth {
                        addr: c.addr.clone(),
                        message: String::from_utf8_lossy(&e).into_owned(),
                    });
                }
                _ => {}
            }
        }
        // Best effort: an ACL user may not be allowed CLIENT.
        let _ = c
            .call(&["CLIENT", "SETNAME", name], "CLIENT SETNAME")
            .await?;
        Ok(c)
    }

    /// Queues a command; [`flush`](Self::flush) sends what is queued.
    pub(crate) fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        redis_sync_resp::encode_command(args, &mut self.wbuf);
    }

    /// Sends the queued commands.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let bytes = self.wbuf.split();
        let write = self.io.write_all(&bytes);
        let done = match self.timeout {
            Some(t) => tokio::time::timeout(t, write).await,
            None => Ok(write.await),
        };
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Io {
                addr: self.addr.clone(),
                during: "sending SCAN/DUMP commands".into(),
                source,
            }),
            Err(_) => Err(self.timed_out("sending SCAN/DUMP commands")),
        }
    }

    /// Sends one command and reads its reply (nothing else may be in flight).
    pub(crate) async fn call<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        step: &str,
    ) -> Result<Frame, Error> {
        self.queue(args);
        self.flush().await?;
        self.read_frame(step).await
    }

    /// Bytes read from the socket since the last call (for the metrics).
    pub(crate) fn take_read(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    /// Bytes received and not yet used: none means the next read waits for the source.
    pub(crate) fn buffered(&self) -> usize {
        self.rbuf.len()
    }

    /// Reads wait without a limit from now on (a subscription is silent while the source
    /// is).
    pub(crate) fn untimed(&mut self) {
        self.timeout = None;
    }

    fn timed_out(&self, step: &str) -> Error {
        Error::Timeout {
            addr: self.addr.clone(),
            step: step.to_string(),
            after: self.timeout.unwrap_or_default(),
        }
    }

    async fn fill(&mut self, step: &str) -> Result<(), Error> {
        self.rbuf.reserve(READ);
        let read = self.io.read_buf(&mut self.rbuf);
        let done = match self.timeout {
            Some(t) => tokio::time::timeout(t, read).await,
            None => Ok(read.await),
        };
        match done {
            Ok(Ok(0)) => Err(Error::Closed {
                addr: self.addr.clone(),
                during: step.to_string(),
                hint: String::new(),
            }),
            Ok(Ok(n)) => {
                self.bytes_read += n as u64;
                Ok(())
            }
            Ok(Err(source)) => Err(Error::Io {
                addr: self.addr.clone(),
                during: step.to_string(),
                source,
            }),
            Err(_) => Err(self.timed_out(step)),
        }
    }

    /// The next reply, whole.
    pub(crate) async fn read_frame(&mut self, step: &str) -> Result<Frame, Error> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some((frame, _))) => return Ok(frame),
                Ok(None) => self.fill(step).await?,
                Err(source) => {
                    return Err(Error::Resp {
                        addr: self.addr.clone(),
                        offset: self.decoder.position(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    /// The start of a bulk reply: its length (its bytes are then read with
    /// [`read_payload`](Self::read_payload) and [`end_bulk`](Self::end_bulk)), a null, or an
    /// error. Nothing is allocated by the announced length.
    pub(crate) async fn read_bulk_head(&mut self, step: &str) -> Result<BulkHead, Error> {
        let line = loop {
            if let Some(i) = self.rbuf.iter().position(|&b| b == b'\n') {
                let line = self.rbuf.split_to(i + 1);
                break line;
            }
            if self.rbuf.len() > MAX_LINE {
                return Err(self.garbage(step, &self.rbuf[..80.min(self.rbuf.len())]));
            }
            self.fill(step).await?;
        };
        let text = line.strip_suffix(b"\r\n").unwrap_or(&line[..]);
        match text.first() {
            Some(b'-') => Ok(BulkHead::Error(
                String::from_utf8_lossy(&text[1..]).into_owned(),
            )),
            Some(b'$') | Some(b'_') if text == b"$-1" || text == b"_" => Ok(BulkHead::Null),
            Some(b'$') => std::str::from_utf8(&text[1..])
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .map(BulkHead::Len)
                .ok_or_else(|| self.garbage(step, text)),
            _ => Err(self.garbage(step, text)),
        }
    }

    /// Up to `max` bytes of the bulk being read (at least one; waits for them).
    pub(crate) async fn read_payload(&mut self, max: u64, step: &str) -> Result<Bytes, Error> {
        if self.rbuf.is_empty() {
            self.fill(step).await?;
        }
        let n = usize::try_from(max).map_or(self.rbuf.len(), |m| m.min(self.rbuf.len()));
        Ok(self.rbuf.split_to(n).freeze())
    }

    /// The CRLF after a bulk's bytes.
    pub(crate) async fn end_bulk(&mut self, step: &str) -> Result<(), Error> {
        while self.rbuf.len() < 2 {
            self.fill(step).await?;
        }
        if &self.rbuf[..2] != b"\r\n" {
            return Err(self.garbage(step, &self.rbuf[..2]));
        }
        self.rbuf.advance(2);
        Ok(())
    }

    fn garbage(&self, step: &str, what: &[u8]) -> Error {
        Error::Protocol {
            addr: self.addr.clone(),
            during: step.to_string(),
            message: format!("unexpected reply {:?}", String::from_utf8_lossy(what)),
        }
    }
}

/// The text of a reply that should be a string.
pub(crate) fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::BulkString(b) | Frame::SimpleString(b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Frame::VerbatimString { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    }
}

/// The message of an error reply.
pub(crate) fn error_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Error(e) | Frame::BulkError(e) => Some(String::from_utf8_lossy(e).into_owned()),
        _ => None,
    }
}
