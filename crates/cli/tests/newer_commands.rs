//! The commands of the newest servers, in the live stream: hash field expiry (`HSETEX`,
//! `HGETEX`, `HGETDEL`), stream acknowledgement with deletion (`XACKDEL`, `XDELEX`),
//! conditional deletes (`DELEX`, `DELIFEQ`), `MSETEX` and vector sets (`VADD`, `VREM`, …),
//! each run after the full copy so it reaches the target through the stream, on the newest
//! Redis and the newest Valkey installed. Each server runs the ones it has (`COMMAND INFO`);
//! the target must end equal: digest, field TTLs, the stream's groups and pending entries, and
//! the vector set's elements, vectors and attributes.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use redis_sync_testkit::{Flavor, Reply, Server, ServerVersion, poll_until, versions_where};

#[test]
fn the_newest_redis_commands_replicate_exactly() {
    if let Some(v) = versions_where("Redis 8", |v| v.flavor() == Flavor::Redis).pop() {
        newest_commands(&v);
    }
}

#[test]
fn the_newest_valkey_commands_replicate_exactly() {
    if let Some(v) = versions_where("Valkey", |v| v.flavor() == Flavor::Valkey).pop() {
        newest_commands(&v);
    }
}

/// Each step: the command that must exist, then what to run.
fn steps() -> Vec<(&'static str, Vec<Vec<String>>)> {
    let c = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<String>>();
    vec![
        (
            "HSETEX",
            vec![
                c(&[
                    "HSETEX", "h", "EX", "5000", "FIELDS", "3", "f1", "a", "f2", "b", "f3", "c",
                ]),
                c(&[
                    "HSETEX", "h", "FXX", "PX", "7000000", "FIELDS", "1", "f3", "c2",
                ]),
            ],
        ),
        (
            "HGETEX",
            vec![c(&["HGETEX", "h", "PERSIST", "FIELDS", "1", "f1"])],
        ),
        ("HGETDEL", vec![c(&["HGETDEL", "h", "FIELDS", "1", "f2"])]),
        (
            "MSETEX",
            vec![c(&["MSETEX", "2", "m1", "x", "m2", "y", "EX", "9000"])],
        ),
        (
            "DELEX",
            vec![
                c(&["SET", "d1", "v"]),
                c(&["SET", "d2", "v"]),
                c(&["DELEX", "d1", "IFEQ", "v"]),
                c(&["DELEX", "d2", "IFEQ", "other"]),
            ],
        ),
        (
            "DELIFEQ",
            vec![
                c(&["SET", "e1", "v"]),
                c(&["SET", "e2", "v"]),
                c(&["DELIFEQ", "e1", "v"]),
                c(&["DELIFEQ", "e2", "other"]),
            ],
        ),
        (
            "VADD",
            vec![
                c(&["VADD", "vs", "VALUES", "3", "1", "0", "0", "a"]),
                c(&["VADD", "vs", "VALUES", "3", "0", "1", "0", "b"]),
                c(&["VADD", "vs", "VALUES", "3", "0", "0", "1", "c"]),
                c(&["VREM", "vs", "b"]),
                c(&["VSETATTR", "vs", "a", "{\"n\":1}"]),
            ],
        ),
    ]
}

fn newest_commands(v: &ServerVersion) {
    let source = Server::builder(v).start();
    let target = Server::builder(v).start();
    source.cmd(&["SET", "before", "copy"]).ok();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("sync.log");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_redis-sync"))
            .args([
                "sync",
                "--source",
                &source.addr(),
                "--target",
                &target.addr(),
            ])
            .arg("--state-file")
            .arg(dir.path().join("state.json"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .expect("spawn redis-sync"),
    );
    wait_for(&target, "before");

    let mut ran = Vec::new();
    let has = |name: &str| {
        !matches!(
            source.cmd(&["COMMAND", "INFO", name]).array().first(),
            None | Some(Reply::Array(None)) | Some(Reply::Bulk(None))
        )
    };
    for (name, cmds) in steps() {
        if !has(name) {
            continue;
        }
        for c in cmds {
            source.cmd(&c).ok();
        }
        ran.push(name);
    }
    // Streams: XACKDEL and XDELEX (Redis 8.2+).
    if has("XACKDEL") {
        for i in 0..4 {
            source
                .cmd(&["XADD", "s", &format!("{}-0", i + 1), "n", &i.to_string()])
                .ok();
        }
        source.cmd(&["XGROUP", "CREATE", "s", "g", "0"]).ok();
        source
            .cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "3",
                "STREAMS",
                "s",
                ">",
            ])
            .ok();
        source.cmd(&["XACKDEL", "s", "g", "IDS", "1", "1-0"]).ok();
        source.cmd(&["XDELEX", "s", "IDS", "1", "4-0"]).ok();
        ran.push("XACKDEL/XDELEX");
    }
    assert!(!ran.is_empty(), "{v} has none of the newest commands");
    source.cmd(&["SET", "after", "stream"]).ok();
    wait_for(&target, "after");
    child.terminate();

    let checkpoints = target
        .cmd(&["KEYS", "redis-sync:checkpoint:*"])
        .ok()
        .array();
    for k in checkpoints {
        target.cmd(&["DEL", k.text().as_str()]).ok();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(source.digest(), target.digest(), "{v} ran {ran:?}\n{text}");
    if has("HSETEX") {
        for f in ["f1", "f2", "f3"] {
            let ttl = |s: &Server| s.cmd(&["HPEXPIRETIME", "h", "FIELDS", "1", f]).ok();
            assert_eq!(ttl(&source), ttl(&target), "{v}: the TTL of field {f}");
        }
    }
    if has("XACKDEL") {
        let full = |s: &Server| s.cmd(&["XINFO", "STREAM", "s", "FULL"]).ok();
        assert_eq!(
            strip_times(full(&source)),
            strip_times(full(&target)),
            "{v}: the stream"
        );
    }
    if has("VADD") {
        // Not `DUMP`: each server builds its own HNSW graph (random levels), as a native
        // replica does; the elements, their vectors and attributes must be equal.
        let view = |s: &Server| {
            let mut v = vec![s.cmd(&["VCARD", "vs"]).ok(), s.cmd(&["VDIM", "vs"]).ok()];
            for e in ["a", "b", "c"] {
                v.push(s.cmd(&["VEMB", "vs", e]).ok());
                v.push(s.cmd(&["VGETATTR", "vs", e]).ok());
            }
            v
        };
        assert_eq!(view(&source), view(&target), "{v}: the vector set");
    }
    eprintln!("{v}: {ran:?} replicated exactly");
}

/// `XINFO STREAM … FULL` without the consumers' seen/active times, which a replica sets itself.
fn strip_times(r: Reply) -> Reply {
    match r {
        Reply::Array(Some(items)) => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < items.len() {
                let name = match &items[i] {
                    Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                if matches!(name.as_str(), "seen-time" | "active-time") && i + 1 < items.len() {
                    i += 2;
                    continue;
                }
                out.push(strip_times(items[i].clone()));
                i += 1;
            }
            Reply::Array(Some(out))
        }
        other => other,
    }
}

fn wait_for(target: &Server, key: &str) {
    poll_until(
        Duration::from_secs(60),
        &format!("{key} on the target"),
        || (target.cmd(&["EXISTS", key]).int() == 1).then_some(()),
    );
}

/// The sync process, stopped when dropped.
struct Child(std::process::Child);

impl Child {
    /// SIGTERM, and its exit status 0.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = poll_until(Duration::from_secs(60), "redis-sync to stop", || {
            self.0.try_wait().expect("wait")
        });
        assert!(status.success(), "exit after SIGTERM: {status}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
