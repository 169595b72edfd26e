//! Real Redis and Valkey servers for redis-sync's tests.
//!
//! Every test that talks to a server starts a real `redis-server` or `valkey-server` process
//! through this crate: on a free `127.0.0.1` port, in its own temporary directory, with
//! persistence off (`--save ""`), killed when the [`Server`] is dropped (also when the test
//! panics). There are no mocks of Redis anywhere in the project.
//!
//! Binaries come from `$REDIS_SERVERS_DIR/bin/<name>/` (default `~/.cache/redis-sync/servers`)
//! as installed by the project's `scripts/install-servers.sh` (Debian's packages) or by
//! `../shared/servers/install.sh` (the whole matrix), else a `redis-server` on `PATH`. [`versions`] lists what is there so a test can run across the whole matrix. Under
//! `CI=true` a missing server is a failing test whose message says how to install it; outside CI
//! a test may skip, and says so on stderr.
//!
//! ```no_run
//! use redis_sync_testkit::{versions, Server};
//!
//! for v in versions() {
//!     let server = Server::builder(&v).start();
//!     server.cmd(&["SET", "k", "v"]).ok();
//!     println!("{}: {}", v.name(), server.digest());
//! }
//! ```
#![deny(missing_docs)]

mod catalog;
mod client;
mod cluster;
mod dataset;
mod poll;
mod sentinel;
mod server;
mod tls;

pub use catalog::{Flavor, ServerVersion, find, require, versions, versions_where};
pub use client::{Client, Reply};
pub use cluster::{Cluster, ClusterBuilder};
pub use dataset::{
    DatasetInfo, DatasetOptions, WrittenKey, assert_same_data, compare_data, data_dbsize,
    data_digest, describe, unix_ms, write_dataset, xinfo_view,
};
pub use poll::poll_until;
pub use sentinel::{Sentinels, SentinelsBuilder};
pub use server::{Server, ServerBuilder};
pub use tls::TestCerts;

/// How to get the test servers: said by every test that finds none (or not the one it needs).
pub const SERVERS_HINT: &str = "install servers with `scripts/install-servers.sh` from the \
     project root (Debian's Redis 7.0 and Valkey 8.0, no root needed; `--build` adds the Redis 8 \
     of Debian's sid and experimental, compiled from their source packages) or, for the whole \
     matrix (Redis 5.0 to 8.6, Valkey 8.0 to 9.1, Redis Stack), `bash ../shared/servers/install.sh` \
     where the project's shared folder is beside the clone; both write to $REDIS_SERVERS_DIR \
     (default ~/.cache/redis-sync/servers): export REDIS_SERVERS_DIR=<that folder>";

/// How to get the RDB corpus: said by every test that needs it and finds none.
pub const CORPUS_HINT: &str = "the corpus is the project's shared `rdb-corpus` folder (200 \
     RDB files from public repositories, each listed with its repository, path and commit in its \
     MANIFEST.tsv), looked for at ../shared/rdb-corpus beside the project root; a clone alone has \
     no ../shared: copy that folder from a checkout that has it and set \
     REDIS_SYNC_CORPUS=/path/to/rdb-corpus (the folder holding MANIFEST.tsv)";

/// True when running under CI (`CI=true`): missing servers fail tests instead of skipping them.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The shared RDB corpus (`$REDIS_SYNC_CORPUS`, else `../shared/rdb-corpus` beside the project
/// root), when its `MANIFEST.tsv` is there. Missing under CI it panics with how to point at it;
/// elsewhere it prints a skip note and returns `None`.
pub fn corpus_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("REDIS_SYNC_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/rdb-corpus")
        });
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir);
    }
    if in_ci() {
        panic!("RDB corpus not found at {}: {CORPUS_HINT}", dir.display());
    }
    eprintln!(
        "skipping: RDB corpus not found at {}: {CORPUS_HINT}",
        dir.display()
    );
    None
}

/// The checked-in inputs of the cargo-fuzz target `target`: every file of `fuzz/seeds/<target>/`
/// and `fuzz/regressions/<target>/` (crashes that `scripts/fuzz-ci.sh` kept), sorted by path,
/// with their bytes. Dotfiles are left out. Panics when the target has no seeds, so a moved
/// directory cannot make a regression test pass on nothing.
pub fn fuzz_inputs(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let fuzz = fuzz.canonicalize().unwrap_or(fuzz);
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.push((path, bytes));
            }
        }
    }
    assert!(
        out.iter().any(|(p, _)| p.starts_with(fuzz.join("seeds"))),
        "no seeds for fuzz target {target} in {}",
        fuzz.join("seeds").join(target).display()
    );
    out.sort();
    out
}

/// Runs `check` (a fuzz target's body) on every input of [`fuzz_inputs`]`(target)` and panics
/// after the last one, naming each input that panicked and how to replay it under the fuzzer.
pub fn check_fuzz_inputs(target: &str, check: fn(&[u8])) {
    let inputs = fuzz_inputs(target);
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| check(bytes)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs of fuzz target {target} panicked (replay one with \
         `cargo fuzz run --sanitizer none {target} FILE`):\n  {}",
        failed.len(),
        inputs.len(),
        failed.join("\n  ")
    );
}
