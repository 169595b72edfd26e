//! Opening the link: TCP, or TLS over TCP, both under the connect timeout. The TLS itself
//! (rustls, ring provider) is `redis-sync-resp`'s, shared with the sink and the CLI; this
//! module only turns its errors into the replica's.

use redis_sync_resp::{ClientError, Stream, TlsConnector};

use crate::config::Config;
use crate::error::Error;

/// A plain or TLS connection to the source.
pub(crate) type Transport = Stream;

/// The local port, announced with `REPLCONF listening-port` when none is configured.
pub(crate) fn local_port(io: &Transport) -> u16 {
    io.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// Opens the connection described by `config` within `timeouts.connect`.
pub(crate) async fn connect(config: &Config) -> Result<Transport, Error> {
    let addr = &config.addr;
    let timeout = config.timeouts.connect;
    let opened = match &config.tls {
        // Built per connection: the files are read again, so a renewed CA or client
        // certificate is picked up by the next reconnect.
        Some(t) => {
            let connector = TlsConnector::new(t).map_err(error)?;
            Stream::connect_tls(addr, timeout, &connector).await
        }
        None => Stream::connect(addr, timeout).await,
    };
    opened.map_err(|e| match e {
        ClientError::Timeout { addr, after, .. } => Error::Timeout {
            addr,
            step: if config.tls.is_some() {
                "connect and TLS handshake"
            } else {
                "connect"
            }
            .to_string(),
            after,
        },
        other => error(other),
    })
}

fn error(e: ClientError) -> Error {
    match e {
        ClientError::Connect { addr, source } => Error::Connect { addr, source },
        ClientError::TlsConfig { message } => Error::TlsConfig(message),
        ClientError::Tls {
            addr,
            message,
            hint,
        } => Error::Tls {
            addr,
            message: format!("{message}; {hint}"),
        },
        other => Error::TlsConfig(other.to_string()),
    }
}
