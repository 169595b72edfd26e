//! `redis-sync rdb` as a user meets it: errors, filters, help, stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use redis_sync_testkit::{DatasetOptions, Server, versions, write_dataset};

use crate::util::{rdb, redis_sync};

/// A dump of the reference data set from the newest installed server, in a temp dir.
fn dump() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let v = versions().pop()?;
    let s = Server::builder(&v).start();
    write_dataset(&s, &DatasetOptions::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dump.rdb");
    std::fs::copy(s.save(), &path).expect("copy the dump");
    Some((dir, path))
}

#[test]
fn truncated_file_fails_naming_the_offset() {
    let Some((dir, path)) = dump() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.rdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = redis_sync(&["rdb", cut.to_str().unwrap(), "--format", "count"]);
    assert_eq!(out.status.code(), Some(2), "exit status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offset"), "message names the offset: {err}");
    assert!(err.contains("cut.rdb"), "message names the file: {err}");
    assert!(
        err.contains(&(bytes.len() / 2).to_string()),
        "offset is where it was cut: {err}"
    );
}

#[test]
fn corrupt_byte_fails_with_an_offset() {
    let Some((dir, path)) = dump() else { return };
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&bad, &bytes).unwrap();
    let out = redis_sync(&["rdb", bad.to_str().unwrap(), "--format", "resp"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offset"), "{err}");
}

#[test]
fn missing_file_and_bad_flags() {
    let out = redis_sync(&["rdb", "/nonexistent/dump.rdb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dump.rdb"));
    let out = redis_sync(&["rdb", "x.rdb", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_teaches_with_examples() {
    let out = redis_sync(&["rdb", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "redis-cli",
        "--pipe",
        "Examples",
        "--format",
        "APPROXIMATE",
        "hex",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}: {help}");
    }
}

#[test]
fn filters_select_keys() {
    let Some((_dir, path)) = dump() else { return };
    let p = path.to_str().unwrap();
    let keys = |extra: &[&str]| {
        let mut args = vec!["rdb", p, "--format", "keys"];
        args.extend_from_slice(extra);
        let out = redis_sync(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        keys(&["--db", "3"]),
        ["db3:expiring", "db3:list", "db3:string"]
    );
    assert_eq!(keys(&["--key", "db3:*", "--type", "list"]), ["db3:list"]);
    assert_eq!(keys(&["--key", "set:[is]*"]), ["set:intset", "set:small"]);
    let streams = keys(&["--type", "stream"]);
    assert!(
        streams.iter().all(|k| k.starts_with("stream:")),
        "{streams:?}"
    );
    assert!(!streams.is_empty());
}

#[test]
fn reads_standard_input_and_survives_a_closed_pipe() {
    let Some((_dir, path)) = dump() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["rdb", "-", "--format", "count"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, rdb(&path, "count"));

    // A reader that goes away early (like `| head -1`) is not an error.
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-sync"))
        .args(["rdb", path.to_str().unwrap(), "--format", "resp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn memory_report_lists_the_biggest_keys() {
    let Some((_dir, path)) = dump() else { return };
    let out = redis_sync(&[
        "rdb",
        path.to_str().unwrap(),
        "--format",
        "memory",
        "--top",
        "3",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("APPROXIMATE"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("bytes\t"))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].ends_with("str:large"),
        "the 300 KB string is the biggest: {text}"
    );
}
