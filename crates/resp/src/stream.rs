//! The connection under a [`Client`](crate::Client): plain TCP, or TLS over TCP (feature
//! `tls`). Callers that take the connection over ([`Client::into_parts`](crate::Client::into_parts))
//! match on it: the plain arm is the bare `TcpStream`, so a data path keeps its fastest
//! calls (`into_split`, `try_write`) and only TLS pays for the record layer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::client::ClientError;

/// A plain or TLS connection to a server.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Opens a plain TCP connection to `addr` within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Stream, ClientError> {
        match tokio::time::timeout(timeout, tcp(addr)).await {
            Ok(r) => r.map(Stream::Tcp),
            Err(_) => Err(ClientError::Timeout {
                addr: addr.to_string(),
                what: "accept the connection",
                after: timeout,
            }),
        }
    }

    /// Opens a TCP connection to `addr` and shakes hands with `tls`, both within `timeout`.
    /// A plain port usually waits for a line that the TLS hello never ends, so the timeout's
    /// message says what most likely went wrong.
    #[cfg(feature = "tls")]
    pub async fn connect_tls(
        addr: &str,
        timeout: Duration,
        tls: &crate::TlsConnector,
    ) -> Result<Stream, ClientError> {
        let open = async {
            let tcp = tcp(addr).await?;
            tls.handshake(addr, tcp).await
        };
        match tokio::time::timeout(timeout, open).await {
            Ok(r) => r.map(|s| Stream::Tls(Box::new(s))),
            Err(_) => Err(ClientError::Timeout {
                addr: addr.to_string(),
                what: "complete the TLS handshake (a plain, non-TLS port never does: use \
                       redis:// for it, or the server's tls-port with rediss://)",
                after: timeout,
            }),
        }
    }

    /// The local address of the underlying TCP connection.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp().local_addr()
    }

    /// The underlying TCP connection.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

async fn tcp(addr: &str) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Requests are small and answered one by one, and the data paths batch their own
    // writes: never wait for Nagle.
    stream.set_nodelay(true).ok();
    Ok(stream)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
