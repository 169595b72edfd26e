//! Real-world files: every valid RDB of the shared corpus that a current server can load is
//! loaded twice into the newest Redis (or Valkey, for `VALKEY` files): once natively
//! (`DEBUG RELOAD NOSAVE`) and once by replaying `redis-sync rdb --format resp` (then
//! `restore`). Both must give the same data (`compare_data` over everything the server holds).
//! This covers encodings the reference data set cannot produce any more (zipmap, ziplist,
//! RDB 2–9 layouts) with the server itself as the oracle.

use std::path::PathBuf;

use redis_sync_testkit::{
    Flavor, Server, ServerVersion, compare_data, corpus_dir, describe, versions,
};

use crate::util::{flush, redis_sync, try_replay};

/// Files where a native load and the commands legitimately differ: `(path suffix, format,
/// why)`. A failure on one of these is reported but does not fail the test.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "stream_listpacks_1.rdb",
        "resp",
        "the file's stream length (120) disagrees with its live entries (118); the loader keeps \
         the stored length, commands can only count real entries",
    ),
    (
        "dump-stream.rdb",
        "resp",
        "same inconsistent stream length as stream_listpacks_1.rdb",
    ),
    (
        "listpack-bug.rdb",
        "resp",
        "same inconsistent stream length as stream_listpacks_1.rdb",
    ),
    (
        "zset_zl_v6.rdb",
        "resp",
        "scores of -0: a loaded ziplist keeps -0, ZADD on 7.0+ stores 0 in a listpack",
    ),
    (
        "stream_v13.rdb",
        "",
        "Redis 8.6 IDMP state: not carried by commands; RESTORE keeps idempotency IDs that the \
         file loader drops as expired",
    ),
    (
        "stream_v13_idmp.rdb",
        "",
        "Redis 8.6 IDMP state, as stream_v13.rdb",
    ),
];

fn known(name: &str, format: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(suffix, f, _)| name.ends_with(suffix) && (f.is_empty() || *f == format))
        .map(|(_, _, why)| *why)
}

/// `(path, rdb version, valkey magic)` of every file the MANIFEST calls a valid RDB.
fn valid_files(dir: &std::path::Path) -> Vec<(PathBuf, u32, bool)> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let mut out = Vec::new();
    for line in manifest.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 11 || c[6] != "rdb" || c[9] != "ok" || c[10] == "MISMATCH" {
            continue;
        }
        let Ok(version) = c[7].parse::<u32>() else {
            continue;
        };
        let path = dir.join(c[0]);
        let valkey = std::fs::read(&path).is_ok_and(|b| b.starts_with(b"VALKEY"));
        out.push((path, version, valkey));
    }
    out
}

/// A server of version `v` that loaded `file` at start-up; `Err` says why it would not (a
/// failed load makes the server exit, which is why this is a fresh process per file).
fn load_natively(
    v: &ServerVersion,
    file: &std::path::Path,
) -> Result<(Server, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(file, dir.path().join("dump.rdb")).map_err(|e| e.to_string())?;
    let server = Server::builder(v)
        .arg("--dir")
        .arg(dir.path())
        .try_start()
        .map_err(|e| {
            // The log's warning lines (` # `) say why the load failed.
            let text = e.to_string();
            let why: Vec<&str> = text.lines().filter(|l| l.contains(" # ")).take(2).collect();
            if why.is_empty() {
                text.chars().take(300).collect()
            } else {
                why.join(" | ")
            }
        })?;
    Ok((server, dir))
}

#[test]
fn corpus_files_replay_like_a_native_load() {
    let Some(dir) = corpus_dir() else { return };
    let all = versions();
    let newest = |f: Flavor| all.iter().rfind(|v| v.flavor() == f).cloned();
    let (Some(redis), valkey) = (newest(Flavor::Redis), newest(Flavor::Valkey)) else {
        return;
    };
    let replay_redis = Server::builder(&redis).start();
    let replay_valkey = valkey.as_ref().map(|v| Server::builder(v).start());
    let (mut checked, mut not_loadable, mut failures) = (0, Vec::new(), Vec::new());
    let mut known_differences = Vec::new();
    for (file, version, is_valkey) in valid_files(&dir) {
        let (v, target) = match (is_valkey, &valkey, &replay_valkey) {
            (false, _, _) => (&redis, &replay_redis),
            (true, Some(v), Some(t)) => (v, t),
            _ => continue,
        };
        let name = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let native = match load_natively(v, &file) {
            Ok(s) => s,
            Err(e) => {
                // Modules not loaded, dbs beyond 16, pre-GA formats, …: the server cannot be
                // the oracle for this file.
                not_loadable.push(format!("{name} (RDB {version}): {e}"));
                continue;
            }
        };
        let native = &native.0;
        let started = std::time::Instant::now();
        let info = describe(native);
        for format in ["resp", "restore"] {
            flush(target);
            // Tell the converter which server it writes for (the default would be the oldest
            // that writes the file's version, without newer options such as ENTRIESREAD).
            let (major, minor, _) = v.version();
            let target_version = match v.flavor() {
                Flavor::Redis => format!("{major}.{minor}"),
                Flavor::Valkey => format!("valkey-{major}.{minor}"),
            };
            let out = redis_sync(&[
                "rdb",
                file.to_str().expect("UTF-8 path"),
                "--format",
                format,
                "--target-version",
                &target_version,
            ]);
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                failures.push(format!("{name} --format {format}: {err}"));
                continue;
            }
            if let Err(e) = try_replay(target, &out.stdout) {
                failures.push(format!("{name} --format {format}: {e}"));
                continue;
            }
            if let Err(e) = compare_data(native, target, &info) {
                match known(&name, format) {
                    Some(why) => known_differences.push(format!("{name} --format {format}: {why}")),
                    None => failures.push(format!("{name} --format {format}: {e}")),
                }
            }
        }
        checked += 1;
        if started.elapsed().as_secs() >= 3 {
            eprintln!("corpus: {name} took {:?}", started.elapsed());
        }
    }
    eprintln!(
        "corpus: {checked} files replayed like a native load; {} known differences: {:#?}; \
         {} not loadable by the server: {:#?}",
        known_differences.len(),
        known_differences,
        not_loadable.len(),
        not_loadable
    );
    let shown: Vec<String> = failures
        .iter()
        .map(|f| f.chars().take(600).collect())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        shown.join("\n\n")
    );
    assert!(checked > 50, "only {checked} corpus files could be checked");
}
