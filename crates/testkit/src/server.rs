//! One server process: how it is started, talked to and stopped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use tempfile::TempDir;

use crate::catalog::ServerVersion;
use crate::client::{Client, Reply};
use crate::poll::poll_until;
use crate::tls::TestCerts;

/// How to start a server; see [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    version: ServerVersion,
    password: Option<String>,
    args: Vec<OsString>,
    modules: Vec<String>,
    replica_of: Option<(u16, Option<String>)>,
    cluster: bool,
    /// TLS only: the certificate files and the kit's client configuration.
    tls: Option<(Vec<OsString>, Arc<ClientConfig>)>,
}

impl ServerBuilder {
    /// `requirepass`: clients (and the kit's own helpers) authenticate with it.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }
    /// Any extra `--name value` configuration, e.g. `.arg("--maxmemory").arg("10mb")`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Loads a Redis Stack module by name (`"rejson"`, `"redisbloom"`, …); panics when this
    /// version does not ship it.
    #[track_caller]
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_string());
        self
    }
    /// Starts as a replica of `master` (using the master's password, if any).
    pub fn replica_of(mut self, master: &Server) -> Self {
        self.replica_of = Some((master.port, master.password.clone()));
        self
    }
    /// Listens for TLS only (`--port 0 --tls-port PORT`, no client certificates asked), with
    /// the certificate of `certs`; [`Server::port`] is then the TLS port, and the kit's own
    /// client ([`Server::cmd`], [`Server::digest`], …) talks TLS. Fails at start when the
    /// server is built without TLS.
    pub fn tls(mut self, certs: &TestCerts) -> Self {
        let args = vec![
            "--tls-cert-file".into(),
            certs.server_cert().into_os_string(),
            "--tls-key-file".into(),
            certs.server_key().into_os_string(),
            "--tls-ca-cert-file".into(),
            certs.ca().into_os_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        match certs.client_config() {
            Ok(config) => self.tls = Some((args, config)),
            Err(e) => panic!("cannot read the test CA {}: {e}", certs.ca().display()),
        }
        self
    }
    /// Starts with `cluster-enabled yes` (used by [`crate::Cluster`]).
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Starts the server and waits (10 s deadline) until it answers `PING`. Panics with the
    /// server's log on failure: in a test, a server that cannot start is a failed test.
    #[track_caller]
    pub fn start(self) -> Server {
        let name = self.version.name().to_string();
        match self.try_start() {
            Ok(s) => s,
            Err(e) => panic!("could not start {name}: {e}"),
        }
    }

    /// Like [`start`](Self::start), returning the error instead of panicking.
    pub fn try_start(self) -> io::Result<Server> {
        let mut last = None;
        // A port found free can be taken by a parallel test before the server binds it: retry.
        for _ in 0..5 {
            match self.spawn_once() {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    fn spawn_once(&self) -> io::Result<Server> {
        let port = free_port(self.cluster)?;
        let dir = tempfile::Builder::new()
            .prefix("redis-sync-test-")
            .tempdir()?;
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(self.version.bin());
        match &self.tls {
            None => cmd.arg("--port").arg(port.to_string()),
            Some((files, _)) => cmd
                .args(["--port", "0", "--tls-port"])
                .arg(port.to_string())
                .args(files),
        };
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--dbfilename",
            "dump.rdb",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(&log);
        if self.version.needs_debug_flag() {
            cmd.args(["--enable-debug-command", "yes"]);
        }
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        for m in &self.modules {
            let path = self.version.module(m).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} ships no module {m:?}", self.version.name()),
                )
            })?;
            cmd.arg("--loadmodule").arg(path);
        }
        if let Some((mport, mpass)) = &self.replica_of {
            let key = if self.version.at_least(5, 0) {
                "--replicaof"
            } else {
                "--slaveof"
            };
            cmd.args([key, "127.0.0.1", &mport.to_string()]);
            if let Some(pw) = mpass {
                cmd.args(["--masterauth", pw]);
            }
        }
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "3000"])
                .arg("--cluster-config-file")
                .arg(dir.path().join("nodes.conf"));
        }
        cmd.args(&self.args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn()?;
        let mut server = Server {
            version: self.version.clone(),
            port,
            password: self.password.clone(),
            child,
            dir,
            command: cmd,
            tls: self.tls.as_ref().map(|(_, c)| c.clone()),
        };
        server.wait_ready()?;
        Ok(server)
    }
}

/// A free loopback port (and, for a cluster node, a free bus port at `port + 10000`).
fn free_port(cluster: bool) -> io::Result<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if !cluster {
            return Ok(port);
        }
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port pair for a cluster node",
    ))
}

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    version: ServerVersion,
    port: u16,
    password: Option<String>,
    child: Child,
    dir: TempDir,
    /// How it was started (to start it again, same port and directory).
    command: Command,
    /// TLS only: the kit's client configuration.
    tls: Option<Arc<ClientConfig>>,
}

impl Server {
    /// A builder for `version`.
    pub fn builder(version: &ServerVersion) -> ServerBuilder {
        ServerBuilder {
            version: version.clone(),
            password: None,
            args: Vec::new(),
            modules: Vec::new(),
            replica_of: None,
            cluster: false,
            tls: None,
        }
    }

    /// Stops the server with `SHUTDOWN SAVE` (its data goes to its RDB file) and starts it
    /// again on the same port and directory, as a restart after maintenance would; returns
    /// once it answers `PING` with the data loaded.
    #[track_caller]
    pub fn restart(&mut self) {
        let _ = self.client().call(&["SHUTDOWN", "SAVE"]);
        poll_until(Duration::from_secs(30), "the server to exit", || {
            self.child.try_wait().ok().flatten()
        });
        let mut last = None;
        for _ in 0..50 {
            match self.command.spawn() {
                Ok(child) => {
                    self.child = child;
                    match self.wait_ready() {
                        Ok(()) => return,
                        Err(e) => last = Some(e),
                    }
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart {}: {last:?}", self.version.name());
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = self.log();
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!("exited with {status}; log:\n{log}"),
                ));
            }
            if let Ok(mut c) = self.try_client()
                && matches!(c.call(&["PING"]), Ok(Reply::Status(_)))
            {
                // Another test's server may have taken the port between our probe and our
                // server's bind: then the PONG is not ours. Check the process id.
                let pid = c.call(&["INFO", "server"]).ok().and_then(|r| match r {
                    Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b)
                        .lines()
                        .find_map(|l| l.strip_prefix("process_id:").map(|v| v.trim().to_string())),
                    _ => None,
                });
                if pid.as_deref() == Some(self.child.id().to_string().as_str()) {
                    return Ok(());
                }
                if self.child.try_wait()?.is_none() {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("port {} answered, but not from our server", self.port),
                ));
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "no PING reply within 10 s; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The version this server runs.
    pub fn version(&self) -> &ServerVersion {
        &self.version
    }
    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// The password, if the server requires one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    /// Its working directory (where `dump.rdb` is saved).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn try_client(&self) -> io::Result<Client> {
        let mut c = match &self.tls {
            Some(config) => Client::connect_tls(self.port, config.clone())?,
            None => Client::connect(self.port)?,
        };
        if let Some(pw) = &self.password {
            c.call(&["AUTH", pw.as_str()])?;
        }
        Ok(c)
    }

    /// A new authenticated connection. Panics when the server is unreachable.
    #[track_caller]
    pub fn client(&self) -> Client {
        match self.try_client() {
            Ok(c) => c,
            Err(e) => {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "cannot connect to {} on {}: {e}; the end of its log:\n{}",
                    self.version,
                    self.port,
                    tail.join("\n")
                )
            }
        }
    }

    /// Runs one command on a new connection and returns the reply (errors included).
    #[track_caller]
    pub fn cmd<A: AsRef<[u8]>>(&self, args: &[A]) -> Reply {
        match self.client().call(args) {
            Ok(r) => r,
            Err(e) => panic!(
                "I/O error talking to {} on {}: {e}",
                self.version, self.port
            ),
        }
    }

    /// `DEBUG DIGEST`: one hash of the whole keyspace, the equality oracle.
    #[track_caller]
    pub fn digest(&self) -> String {
        self.cmd(&["DEBUG", "DIGEST"]).ok().text()
    }

    /// `INFO section` as a map of `field → value`.
    #[track_caller]
    pub fn info(&self, section: &str) -> BTreeMap<String, String> {
        let text = self.cmd(&["INFO", section]).ok().text();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    /// `DBSIZE` of the current db 0.
    #[track_caller]
    pub fn dbsize(&self) -> i64 {
        self.cmd(&["DBSIZE"]).ok().int()
    }

    /// Runs `SAVE` and returns the path of the RDB file it wrote.
    #[track_caller]
    pub fn save(&self) -> PathBuf {
        self.cmd(&["SAVE"]).ok();
        self.dir.path().join("dump.rdb")
    }

    /// Waits until `INFO replication` says the link to the master is up (replicas only).
    #[track_caller]
    pub fn wait_replica_synced(&self) {
        poll_until(Duration::from_secs(30), "master_link_status:up", || {
            (self
                .info("replication")
                .get("master_link_status")
                .map(String::as_str)
                == Some("up"))
            .then_some(())
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
