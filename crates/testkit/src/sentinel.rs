//! Redis Sentinel for the tests: a few `redis-server --sentinel` processes monitoring one
//! master (every Redis and Valkey version runs a sentinel from the server binary and a config
//! file), with short timeouts so a failover completes in a few seconds.

use std::io::{self, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::catalog::ServerVersion;
use crate::client::{Client, Reply};
use crate::poll::poll_until;
use crate::server::Server;

/// How to start the sentinels; see [`Sentinels::builder`].
#[derive(Debug, Clone)]
pub struct SentinelsBuilder {
    version: ServerVersion,
    count: usize,
    name: String,
    down_after_ms: u64,
    failover_timeout_ms: u64,
}

impl SentinelsBuilder {
    /// How many sentinels (default 3; the quorum is a majority of them).
    pub fn count(mut self, n: usize) -> Self {
        self.count = n.max(1);
        self
    }
    /// The master's name (default `mymaster`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
    /// `down-after-milliseconds` (default 1000: a dead master is noticed within a second).
    pub fn down_after_ms(mut self, ms: u64) -> Self {
        self.down_after_ms = ms;
        self
    }

    /// Starts the sentinels monitoring `master` (with its password, if any) and waits until
    /// each sees the master, its `replicas` replicas and the other sentinels, so a failover
    /// can start at once. Panics with a sentinel's log on failure.
    #[track_caller]
    pub fn start(self, master: &Server, replicas: usize) -> Sentinels {
        let quorum = self.count / 2 + 1;
        let mut nodes = Vec::new();
        for _ in 0..self.count {
            let node = (0..5)
                .find_map(|_| self.spawn(master, quorum).ok())
                .unwrap_or_else(|| panic!("could not start a sentinel ({})", self.version));
            nodes.push(node);
        }
        let s = Sentinels {
            name: self.name,
            nodes,
        };
        let others = s.nodes.len() - 1;
        poll_until(
            Duration::from_secs(30),
            "every sentinel to see the master, its replicas and the other sentinels",
            || {
                s.nodes
                    .iter()
                    .all(|n| {
                        let f = n.master_fields(&s.name);
                        let num = |k: &str| {
                            f.iter()
                                .find(|(a, _)| a == k)
                                .and_then(|(_, v)| v.parse::<usize>().ok())
                                .unwrap_or(0)
                        };
                        num("num-slaves") >= replicas && num("num-other-sentinels") >= others
                    })
                    .then_some(())
            },
        );
        s
    }

    fn spawn(&self, master: &Server, quorum: usize) -> io::Result<SentinelNode> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::Builder::new()
            .prefix("redis-sync-sentinel-")
            .tempdir()?;
        let conf = dir.path().join("sentinel.conf");
        let name = &self.name;
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel.log\n\
             sentinel monitor {name} 127.0.0.1 {mport} {quorum}\n\
             sentinel down-after-milliseconds {name} {down}\n\
             sentinel failover-timeout {name} {fo}\n\
             sentinel parallel-syncs {name} 1\n",
            dir = dir.path().display(),
            mport = master.port(),
            down = self.down_after_ms,
            fo = self.failover_timeout_ms,
        );
        if let Some(pw) = master.password() {
            text.push_str(&format!("sentinel auth-pass {name} {pw}\n"));
        }
        std::fs::File::create(&conf)?.write_all(text.as_bytes())?;
        let child = Command::new(self.version.bin())
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut node = SentinelNode { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = node.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "sentinel exited with {status}; log:\n{}",
                    node.log()
                )));
            }
            if let Ok(mut c) = Client::connect(port)
                && matches!(c.call(&["PING"]), Ok(Reply::Status(_)))
            {
                return Ok(node);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "sentinel on {port}: no PING reply within 10 s; log:\n{}",
                    node.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One sentinel process, killed when dropped.
#[derive(Debug)]
struct SentinelNode {
    port: u16,
    child: Child,
    dir: TempDir,
}

impl SentinelNode {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    fn call(&self, args: &[&str]) -> Option<Reply> {
        Client::connect(self.port).ok()?.call(args).ok()
    }

    /// `SENTINEL MASTER name` as `(field, value)` pairs (empty when it does not answer).
    fn master_fields(&self, name: &str) -> Vec<(String, String)> {
        let Some(Reply::Array(Some(items))) = self.call(&["SENTINEL", "MASTER", name]) else {
            return Vec::new();
        };
        items
            .chunks(2)
            .filter_map(|p| match p {
                [Reply::Bulk(Some(k)), Reply::Bulk(Some(v))] => Some((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The port of the master this sentinel names.
    fn master_port(&self, name: &str) -> Option<u16> {
        match self.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])? {
            Reply::Array(Some(items)) => match items.get(1)? {
                Reply::Bulk(Some(p)) => std::str::from_utf8(p).ok()?.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Drop for SentinelNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sentinels monitoring one master; see [`Sentinels::builder`].
#[derive(Debug)]
pub struct Sentinels {
    name: String,
    nodes: Vec<SentinelNode>,
}

impl Sentinels {
    /// A builder for sentinels of `version`: 3 of them, master `mymaster`,
    /// `down-after-milliseconds 1000`, `failover-timeout 5000`.
    pub fn builder(version: &ServerVersion) -> SentinelsBuilder {
        SentinelsBuilder {
            version: version.clone(),
            count: 3,
            name: "mymaster".into(),
            down_after_ms: 1000,
            failover_timeout_ms: 5000,
        }
    }

    /// The master's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sentinels' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis+sentinel://[:password@]127.0.0.1:P1,127.0.0.1:P2,…/name`.
    pub fn url(&self, password: Option<&str>) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
        format!("redis+sentinel://{auth}{}/{}", hosts.join(","), self.name)
    }

    /// The port of the master the first sentinel that answers names.
    #[track_caller]
    pub fn master_port(&self) -> u16 {
        self.nodes
            .iter()
            .find_map(|n| n.master_port(&self.name))
            .unwrap_or_else(|| panic!("no sentinel names a master for {}", self.name))
    }

    /// Runs `SENTINEL FAILOVER` (again while the sentinel answers that no replica is ready
    /// yet) and waits until every sentinel names a new master that says `master` to `ROLE`.
    /// Returns the new master's port.
    #[track_caller]
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        poll_until(
            Duration::from_secs(30),
            "SENTINEL FAILOVER to start",
            || {
                match self.nodes[0].call(&["SENTINEL", "FAILOVER", &self.name]) {
                    Some(Reply::Status(_)) => Some(()),
                    // NOGOODSLAVE / INPROG: a replica not seen yet, or a failover under way.
                    _ => None,
                }
            },
        );
        self.wait_master_moved(old)
    }

    /// Waits until every sentinel names a master other than `old` that says `master` to
    /// `ROLE`, and returns its port.
    #[track_caller]
    pub fn wait_master_moved(&self, old: u16) -> u16 {
        poll_until(
            Duration::from_secs(60),
            "every sentinel to name the promoted master",
            || {
                let ports: Vec<Option<u16>> = self
                    .nodes
                    .iter()
                    .map(|n| n.master_port(&self.name))
                    .collect();
                let first = ports.first().copied().flatten()?;
                if first == old || ports.iter().any(|p| *p != Some(first)) {
                    return None;
                }
                let role = Client::connect(first).ok()?.call(&["ROLE"]).ok()?;
                match role {
                    Reply::Array(Some(items)) if matches!(items.first(), Some(Reply::Bulk(Some(r))) if r == b"master") => {
                        Some(first)
                    }
                    _ => None,
                }
            },
        )
    }

    /// The sentinels' logs (for failure messages).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- sentinel {} ---\n{}", n.port, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
