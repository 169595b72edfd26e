//! Opening the link: TCP, or TLS over TCP with rustls (ring provider), both under the connect
//! timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{Config, TlsConfig};
use crate::error::Error;

/// A plain or TLS connection to the source.
#[derive(Debug)]
pub(crate) enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// The local port, announced with `REPLCONF listening-port` when none is configured.
    pub(crate) fn local_port(&self) -> u16 {
        let tcp = match self {
            Transport::Tcp(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        };
        tcp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens the connection described by `config` within `timeouts.connect`.
pub(crate) async fn connect(config: &Config) -> Result<Transport, Error> {
    let addr = config.addr.clone();
    let timeout = config.timeouts.connect;
    let tls = match &config.tls {
        Some(t) => Some((connector(t)?, server_name(t, &addr)?)),
        None => None,
    };
    let fut = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| Error::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok(Transport::Tcp(tcp)),
            Some((connector, name)) => {
                let s = connector.connect(name, tcp).await.map_err(|e| Error::Tls {
                    addr: addr.clone(),
                    message: e.to_string(),
                })?;
                Ok(Transport::Tls(Box::new(s)))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            addr: addr.clone(),
            step: if config.tls.is_some() {
                "connect and TLS handshake"
            } else {
                "connect"
            }
            .to_string(),
            after: timeout,
        }),
    }
}

fn server_name(tls: &TlsConfig, addr: &str) -> Result<ServerName<'static>, Error> {
    let host = match &tls.server_name {
        Some(n) => n.clone(),
        None => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    ServerName::try_from(host.clone())
        .map_err(|e| Error::TlsConfig(format!("invalid TLS server name {host:?}: {e}")))
}

fn read_pem_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::TlsConfig(format!("cannot read the {what} {}: {e}", path.display())))
}

fn connector(tls: &TlsConfig) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(e.to_string()))?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerifier(provider.clone())))
    } else {
        let Some(ca) = &tls.ca_file else {
            return Err(Error::TlsConfig(
                "no CA file given: set a CA file (PEM) to verify the source, or the insecure option to skip verification".into(),
            ));
        };
        let pem = read_pem_file(ca, "CA file")?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                Error::TlsConfig(format!("bad certificate in CA file {}: {e}", ca.display()))
            })?;
            roots.add(cert).map_err(|e| {
                Error::TlsConfig(format!(
                    "unusable certificate in CA file {}: {e}",
                    ca.display()
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(Error::TlsConfig(format!(
                "the CA file {} holds no PEM certificate",
                ca.display()
            )));
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let pem = read_pem_file(cert, "client certificate")?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::TlsConfig(format!("bad client certificate {}: {e}", cert.display()))
                })?;
            let key_pem = read_pem_file(key, "client key")?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| Error::TlsConfig(format!("bad client key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                Error::TlsConfig(format!("client certificate and key do not match: {e}"))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::TlsConfig(
                "a client certificate needs both the certificate file and the key file".into(),
            ));
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts every certificate (the explicit insecure option), still checking signatures.
#[derive(Debug)]
struct NoVerifier(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
