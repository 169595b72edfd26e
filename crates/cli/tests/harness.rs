//! A `redis-sync` process run in the background by a test, its log in a file (shown when the
//! test fails), stopped with SIGKILL or SIGTERM; and what tests do with the target afterwards.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use redis_sync_testkit::{Server, poll_until};

/// redis-sync processes with their logs in files.
pub struct Harness {
    pub dir: tempfile::TempDir,
    logs: Vec<(String, PathBuf)>,
    child: Option<Child>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            logs: Vec::new(),
            child: None,
        }
    }

    pub fn spawn(&mut self, label: &str, args: &[String]) {
        let n = self.logs.len();
        let err = self.dir.path().join(format!("run-{n}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err).expect("create a log file"))
            .spawn()
            .expect("spawn redis-sync");
        self.child = Some(child);
        self.logs.push((label.to_string(), err));
    }

    /// The log of the `n`-th process started (0: the first).
    pub fn log(&self, n: usize) -> String {
        fs::read_to_string(&self.logs[n].1).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a clean stop) and a check that it exited 0.
    pub fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let status = poll_until(Duration::from_secs(60), "redis-sync to stop", || {
            c.try_wait().expect("wait")
        });
        let n = self.logs.len() - 1;
        assert!(
            status.success(),
            "exit after SIGTERM: {status}\n{}",
            tail(&self.log(n), 30)
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            for (label, path) in &self.logs {
                let text = fs::read_to_string(path).unwrap_or_default();
                eprintln!("--- {label}: the end of its log ---\n{}", tail(&text, 40));
            }
        }
    }
}

/// Removes the checkpoint keys (and other records under their prefix) from a standalone
/// target before comparing digests.
pub fn drop_checkpoints(target: &Server) {
    let keys = target
        .cmd(&["KEYS", "redis-sync:checkpoint:*"])
        .ok()
        .array();
    for k in keys {
        target.cmd(&["DEL", k.text().as_str()]).ok();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
