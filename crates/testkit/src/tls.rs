//! TLS for test servers: a throw-away CA and a server certificate made with the `openssl`
//! command, servers that listen for TLS only, and the kit's own client over rustls.
//!
//! The kit's client talks TLS with rustls directly, not through `redis-sync-resp`'s connector:
//! the code under test must not be the code that checks it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;

use crate::in_ci;

/// A CA, a server certificate for `localhost` and `127.0.0.1` and a client certificate (for
/// servers with `tls-auth-clients yes`), in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// Makes the CA and the certificate with `openssl`. Without the command: under `CI=true`
    /// panics (a TLS test must not pass by skipping), elsewhere prints a skip note and returns
    /// `None`.
    pub fn generate() -> Option<TestCerts> {
        let dir = tempfile::Builder::new()
            .prefix("redis-sync-certs-")
            .tempdir()
            .ok()?;
        match make(dir.path()) {
            Some(()) => Some(TestCerts { dir }),
            None if in_ci() => panic!(
                "the `openssl` command is needed to make test certificates (apt-get install \
                 openssl)"
            ),
            None => {
                eprintln!("skipped: the `openssl` command is needed to make test certificates");
                None
            }
        }
    }

    /// The CA certificate (PEM) that signed the server's.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }
    /// The server's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    /// A client certificate (PEM) signed by the same CA.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.crt")
    }
    /// The client certificate's private key (PEM).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// A rustls client configuration trusting [`ca`](Self::ca).
    pub(crate) fn client_config(&self) -> std::io::Result<Arc<ClientConfig>> {
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.ca()).map_err(|e| bad(e.to_string()))? {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// The name the kit's client checks the server's certificate against.
pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]))
}

fn make(dir: &Path) -> Option<()> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| ())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .ok()?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=redis-sync test CA",
    ])?;
    for name in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=localhost",
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])?;
    }
    Some(())
}
