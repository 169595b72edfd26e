//! TLS for [`Client`](crate::Client) and for the callers that take its stream over (feature
//! `tls`): rustls with the ring provider, a CA file or an explicit insecure mode, an optional
//! client certificate and SNI.
//!
//! It lives here, beside the one client, so the replication link, the sink and the CLI build
//! their TLS the same way: [`TlsConnector::new`] reads and checks the files once, and every
//! connection made with it ([`Client::connect_tls`](crate::Client::connect_tls),
//! [`Stream::connect_tls`](crate::Stream::connect_tls)) shakes hands under the connect timeout
//! and explains a failed handshake (a plain port, an unknown CA, a name the certificate does
//! not carry) instead of printing rustls's words alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::client::ClientError;

/// TLS settings (tokio-rustls with the ring provider).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) to trust. Required unless `insecure` is set.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers with `tls-auth-clients yes`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// The name to send as SNI and to verify the certificate against; defaults to the host part
    /// of the address.
    pub server_name: Option<String>,
    /// Accept any server certificate. For tests and trusted networks only.
    pub insecure: bool,
}

/// A [`TlsConfig`] made ready for handshakes: its files read and checked once, shared by
/// every connection (cheap to clone).
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: Option<String>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> ClientError {
    ClientError::TlsConfig {
        message: message.into(),
    }
}

fn read_pem_file(path: &Path, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| config_error(format!("cannot read the {what} {}: {e}", path.display())))
}

fn roots(ca: &Path) -> Result<RootCertStore, ClientError> {
    let pem = read_pem_file(ca, "CA file")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            config_error(format!("bad certificate in CA file {}: {e}", ca.display()))
        })?;
        roots.add(cert).map_err(|e| {
            config_error(format!(
                "unusable certificate in CA file {}: {e}",
                ca.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(config_error(format!(
            "the CA file {} holds no PEM certificate",
            ca.display()
        )));
    }
    Ok(roots)
}

impl TlsConnector {
    /// Reads the CA file (and the client certificate and key, when given) and builds the
    /// rustls configuration. Fails with [`ClientError::TlsConfig`] when a file is missing or
    /// malformed, or when neither a CA file nor `insecure` is given: nothing is verified
    /// against the system's roots, because Redis servers are mostly signed by a private CA.
    pub fn new(tls: &TlsConfig) -> Result<TlsConnector, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(e.to_string()))?;
        let builder = if tls.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerifier(provider.clone())))
        } else {
            let Some(ca) = &tls.ca_file else {
                return Err(config_error(
                    "no CA file given: set a CA file (PEM) to verify the server's certificate, \
                     or the insecure option to skip verification",
                ));
            };
            builder.with_root_certificates(roots(ca)?)
        };
        let config = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let pem = read_pem_file(cert, "client certificate")?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        config_error(format!("bad client certificate {}: {e}", cert.display()))
                    })?;
                let key_pem = read_pem_file(key, "client key")?;
                let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| config_error(format!("bad client key {}: {e}", key.display())))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    config_error(format!("client certificate and key do not match: {e}"))
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(config_error(
                    "a client certificate needs both the certificate file and the key file",
                ));
            }
        };
        if let Some(name) = &tls.server_name {
            // Checked now, so a bad name is a configuration error and not one per connection.
            server_name(Some(name), "")?;
        }
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name: tls.server_name.clone(),
        })
    }

    /// Shakes hands over `tcp`, connected to `addr` (`host:port`, whose host is the default
    /// server name). The caller bounds the time.
    pub(crate) async fn handshake(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ClientError> {
        let name = server_name(self.server_name.as_deref(), addr)?;
        self.inner
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(addr, &e))
    }
}

/// The SNI name: the configured one, else the host part of `addr` (brackets of an IPv6
/// address removed; an IP address is sent as none and verified against the certificate's IP
/// names).
fn server_name(configured: Option<&str>, addr: &str) -> Result<ServerName<'static>, ClientError> {
    let host = match configured {
        Some(n) => n.to_string(),
        None => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    ServerName::try_from(host.clone())
        .map_err(|e| config_error(format!("invalid TLS server name {host:?}: {e}")))
}

/// A failed handshake, with what most likely causes it. rustls reports its errors inside the
/// `io::Error`; a server that closes the connection, or answers with something that is not
/// TLS, is almost always a plain (non-TLS) port.
fn handshake_error(addr: &str, e: &std::io::Error) -> ClientError {
    let hint = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::PeerSentOversizedRecord) => {
            Some(HINT_PLAIN)
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => Some(
            "the server's certificate is not issued for the name checked: connect by a name \
             the certificate carries, or set the TLS server name (SNI) to one of them",
        ),
        Some(rustls::Error::InvalidCertificate(_)) => Some(
            "the server's certificate is not trusted: give the CA file (PEM) of the CA that \
             signed it (or, for tests only, the insecure option)",
        ),
        Some(rustls::Error::AlertReceived(_)) => Some(
            "the server refused the handshake: if it requires client certificates \
             (tls-auth-clients yes), give a client certificate and key",
        ),
        Some(_) => None,
        None => matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::InvalidData
        )
        .then_some(HINT_PLAIN),
    };
    ClientError::Tls {
        addr: addr.to_string(),
        message: e.to_string(),
        hint: hint.unwrap_or(
            "check that the server listens for TLS on this port (tls-port), the CA file and the \
             server name (SNI)",
        ),
    }
}

/// Said when a TLS client meets a server that does not speak TLS on the port.
pub(crate) const HINT_PLAIN: &str = "the server does not speak TLS on this port (is it the \
     plain port?): use redis:// for a plain port, or the server's tls-port with rediss://";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_fix() {
        let e = TlsConnector::new(&TlsConfig::default()).expect_err("no CA");
        assert!(e.to_string().contains("CA file"), "{e}");
        let e = TlsConnector::new(&TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        })
        .expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = TlsConnector::new(&TlsConfig {
            insecure: true,
            cert_file: Some("c.pem".into()),
            ..TlsConfig::default()
        })
        .expect_err("cert without key");
        assert!(e.to_string().contains("key file"), "{e}");
        let c = TlsConnector::new(&TlsConfig {
            insecure: true,
            ..TlsConfig::default()
        });
        assert!(c.is_ok());
    }

    #[test]
    fn server_name_defaults_to_the_host() {
        assert!(server_name(None, "[::1]:6379").is_ok());
        assert!(server_name(None, "localhost:6380").is_ok());
        assert!(server_name(Some("redis.internal"), "10.0.0.1:6380").is_ok());
        assert!(server_name(Some("bad name!"), "h:1").is_err());
    }
}
