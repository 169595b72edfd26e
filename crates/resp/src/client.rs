//! A request/reply connection over TCP, or TLS with the `tls` feature (feature `client`): one
//! command or one pipelined batch at a time, every wait bounded by a timeout.
//!
//! It is the one client the project uses for its own questions to a server (a target's
//! topology and checkpoint, a source's `INFO`, the CLI's prechecks and verify); the data paths
//! (the sink's pipelines, the replication link) take its socket over with
//! [`Client::into_parts`] or run their own loops on top of the [`Decoder`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Decoder, Frame, Stream, encode_command};

/// Why a [`Client`] call failed. Every variant names the server's address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source} (is the server running and reachable?)")]
    Connect {
        /// The address dialled.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Reading or writing failed on an open connection.
    #[error("{addr}: {source}")]
    Io {
        /// The server's address.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The server did not accept the connection, take the request or answer in time.
    #[error("{addr} did not {what} within {after:?}")]
    Timeout {
        /// The server's address.
        addr: String,
        /// What it did not do: `accept the connection`, `take the request`, `answer`.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The server closed the connection before answering.
    #[error("{addr} closed the connection")]
    Closed {
        /// The server's address.
        addr: String,
    },
    /// The TLS settings are unusable: a file missing or malformed, no CA and not insecure
    /// (feature `tls`).
    #[error("TLS configuration error: {message}")]
    TlsConfig {
        /// What is wrong, naming the file.
        message: String,
    },
    /// The TLS handshake failed (feature `tls`).
    #[error("TLS handshake with {addr} failed: {message}; {hint}")]
    Tls {
        /// The server's address.
        addr: String,
        /// What rustls said.
        message: String,
        /// The likely cause and what to do.
        hint: &'static str,
    },
    /// The server sent bytes that are not a valid reply (or one over the size limit).
    #[error("{addr} sent an invalid reply: {source}")]
    Protocol {
        /// The server's address.
        addr: String,
        /// The decoding error.
        source: crate::Error,
    },
}

/// One connection to a server, used request/reply.
///
/// ```no_run
/// # async fn demo() -> Result<(), redis_sync_resp::ClientError> {
/// use std::time::Duration;
/// use redis_sync_resp::{Client, Frame};
///
/// let mut c = Client::connect("127.0.0.1:6379", Duration::from_secs(5)).await?;
/// if let Frame::BulkString(info) = c.call(&["INFO", "server"]).await? {
///     let text = String::from_utf8_lossy(&info);
///     println!("{:?}", redis_sync_resp::info_field(&text, "redis_version"));
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    addr: String,
    stream: Stream,
    buf: BytesMut,
    decoder: Decoder,
    timeout: Duration,
}

impl Client {
    /// Connects to `addr` (`host:port`); `timeout` bounds the connect and then every write and
    /// every wait for a reply. Replies are limited to the [`Decoder`]'s default limits; see
    /// [`Client::with_decoder`].
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, ClientError> {
        let stream = Stream::connect(addr, timeout).await?;
        Ok(Client::new(addr, stream, timeout))
    }

    /// Like [`connect`](Self::connect), over TLS: `timeout` bounds the connect and the
    /// handshake together.
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        timeout: Duration,
        tls: &crate::TlsConnector,
    ) -> Result<Client, ClientError> {
        let stream = Stream::connect_tls(addr, timeout, tls).await?;
        Ok(Client::new(addr, stream, timeout))
    }

    fn new(addr: &str, stream: Stream, timeout: Duration) -> Client {
        Client {
            addr: addr.to_string(),
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            decoder: Decoder::new(),
            timeout,
        }
    }

    /// Replaces the reply decoder (to change its limits, e.g. a larger
    /// [`max_bulk_len`](crate::DecoderBuilder::max_bulk_len) for big `SCAN` pages).
    pub fn with_decoder(mut self, decoder: Decoder) -> Client {
        self.decoder = decoder;
        self
    }

    /// Changes the timeout of later writes and replies (the connect's stays what it was).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `AUTH [user] password`: `Ok(None)` when accepted, `Ok(Some(message))` with the server's
    /// error when refused.
    pub async fn auth(
        &mut self,
        user: Option<&str>,
        password: &str,
    ) -> Result<Option<Bytes>, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = user {
            args.push(u.as_bytes());
        }
        args.push(password.as_bytes());
        match self.call(&args).await? {
            Frame::Error(e) | Frame::BulkError(e) => Ok(Some(e)),
            _ => Ok(None),
        }
    }

    /// Sends one command and reads its reply (an error reply is `Ok(Frame::Error)`).
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ClientError> {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.write(&out).await?;
        self.read().await
    }

    /// Sends the commands in one write and reads their replies, in order.
    pub async fn pipeline<A: AsRef<[u8]>>(
        &mut self,
        cmds: &[Vec<A>],
    ) -> Result<Vec<Frame>, ClientError> {
        let mut out = BytesMut::new();
        for c in cmds {
            encode_command(c, &mut out);
        }
        self.write(&out).await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for _ in cmds {
            replies.push(self.read().await?);
        }
        Ok(replies)
    }

    /// The socket and the bytes read but not decoded yet (none after a call: each reads
    /// exactly its replies), for a caller that takes the connection over.
    pub fn into_parts(self) -> (Stream, BytesMut) {
        (self.stream, self.buf)
    }

    async fn write(&mut self, out: &[u8]) -> Result<(), ClientError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io {
                addr: self.addr.clone(),
                source,
            }),
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                what: "take the request",
                after: self.timeout,
            }),
        }
    }

    async fn read(&mut self) -> Result<Frame, ClientError> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some((frame, _))) => return Ok(frame),
                Ok(None) => {}
                Err(source) => {
                    return Err(ClientError::Protocol {
                        addr: self.addr.clone(),
                        source,
                    });
                }
            }
            let read = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf));
            match read.await {
                Ok(Ok(0)) => {
                    return Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(ClientError::Io {
                        addr: self.addr.clone(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(ClientError::Timeout {
                        addr: self.addr.clone(),
                        what: "answer",
                        after: self.timeout,
                    });
                }
            }
        }
    }
}
