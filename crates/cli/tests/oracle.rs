//! The real-server oracle: for every installed server version, write the reference data set,
//! SAVE, decode the dump with `redis-sync rdb`, replay the `resp` and (separately) the `restore`
//! commands into an empty server of the same version, and compare with the source: `DEBUG
//! DIGEST`, `XINFO STREAM … FULL`, `DUMP` of module values, functions (testkit's
//! `compare_data`). The `count`, `keys` and `jsonl` outputs are checked against the source too.

use std::collections::BTreeMap;

use redis_sync_testkit::{
    DatasetInfo, DatasetOptions, Flavor, Server, ServerVersion, compare_data, versions,
    write_dataset,
};

use crate::util::{flush, rdb, replay, server_with_modules};

/// Checks one version; returns a description of each failure.
fn check_version(v: &ServerVersion) -> Vec<String> {
    let mut failures = Vec::new();
    let source = server_with_modules(v);
    let info = write_dataset(&source, &DatasetOptions::default());
    let dump = source.save();
    let target = server_with_modules(v);

    for format in ["resp", "restore"] {
        flush(&target);
        let out = rdb(&dump, format);
        let n = replay(&target, &out);
        match compare_data(&source, &target, &info) {
            Ok(()) => eprintln!("{v}: --format {format}: {n} commands, target equals source"),
            Err(e) => failures.push(format!("{v} --format {format}: {e}")),
        }
        if format == "resp" {
            // Idempotence: a second replay over the loaded data changes nothing.
            replay(&target, &out);
            if let Err(e) = compare_data(&source, &target, &info) {
                failures.push(format!("{v} --format resp replayed twice: {e}"));
            }
        }
    }
    failures.extend(check_count(v, &source, &dump, &info));
    failures.extend(check_keys_and_json(v, &dump, &info));
    failures
}

/// `--format count` against DBSIZE of each db, and against the per-type counts written.
fn check_count(
    v: &ServerVersion,
    source: &Server,
    dump: &std::path::Path,
    info: &DatasetInfo,
) -> Vec<String> {
    let text = String::from_utf8(rdb(dump, "count")).expect("UTF-8 count output");
    let mut per_db: BTreeMap<u32, i64> = BTreeMap::new();
    let mut per_type: BTreeMap<(u32, String), usize> = BTreeMap::new();
    let mut total = None;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "{v}: count line {line:?}");
        let n: i64 = cols[2].parse().expect("a count");
        if cols[0] == "total" {
            total = Some(n);
            continue;
        }
        let db: u32 = cols[0].parse().expect("a db number");
        *per_db.entry(db).or_insert(0) += n;
        per_type.insert((db, cols[1].to_string()), n as usize);
    }
    let mut failures = Vec::new();
    let mut client = source.client();
    let mut sum = 0;
    for db in &info.dbs {
        client
            .call(&["SELECT", &db.to_string()])
            .expect("SELECT")
            .ok();
        let size = client.call(&["DBSIZE"]).expect("DBSIZE").int();
        sum += size;
        if per_db.get(db).copied().unwrap_or(0) != size {
            failures.push(format!(
                "{v} --format count: db {db} has {size} keys, output {text}"
            ));
        }
    }
    if total != Some(sum) {
        failures.push(format!(
            "{v} --format count: total {total:?}, DBSIZE sum {sum}"
        ));
    }
    if per_type != info.counts() {
        failures.push(format!(
            "{v} --format count per type: {per_type:?} written {:?}",
            info.counts()
        ));
    }
    failures
}

/// `--format keys` lists every key once; `--format jsonl` gives one well-formed object per key
/// with the right db, name and type.
fn check_keys_and_json(
    v: &ServerVersion,
    dump: &std::path::Path,
    info: &DatasetInfo,
) -> Vec<String> {
    let mut failures = Vec::new();
    let keys = rdb(dump, "keys");
    let mut listed: Vec<&[u8]> = keys
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    listed.sort();
    let mut written: Vec<&[u8]> = info.keys.iter().map(|k| k.key.as_bytes()).collect();
    written.sort();
    if listed != written {
        failures.push(format!(
            "{v} --format keys: {} listed, {} written",
            listed.len(),
            written.len()
        ));
    }
    let jsonl = String::from_utf8(rdb(dump, "jsonl")).expect("JSON is UTF-8");
    let mut seen = Vec::new();
    for line in jsonl.lines() {
        let obj: serde_json::Value = match serde_json::from_str(line) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{v} --format jsonl: bad JSON ({e}): {:.300}", line));
                continue;
            }
        };
        let key = obj["key"].as_str().unwrap_or("?").to_string();
        let kind = obj["type"].as_str().unwrap_or("?").to_string();
        seen.push((obj["db"].as_u64().unwrap_or(99) as u32, key, kind));
    }
    seen.sort();
    let mut expected: Vec<(u32, String, String)> = info
        .keys
        .iter()
        .map(|k| {
            let kind = match k.kind.as_str() {
                "string" | "list" | "set" | "zset" | "hash" | "stream" => k.kind.clone(),
                _ => "module".to_string(),
            };
            (k.db, k.key.clone(), kind)
        })
        .collect();
    expected.sort();
    if seen != expected {
        failures.push(format!(
            "{v} --format jsonl keys: {seen:?} expected {expected:?}"
        ));
    }
    let json = rdb(dump, "json");
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Array(a)) if a.len() == info.keys.len() => {}
        Ok(other) => failures.push(format!(
            "{v} --format json: not an array of every key: {:.200}",
            other
        )),
        Err(e) => failures.push(format!("{v} --format json: bad JSON: {e}")),
    }
    failures
}

#[test]
fn every_version_round_trips_through_resp_and_restore() {
    let all = versions();
    let mut failures = Vec::new();
    for v in &all {
        failures.extend(check_version(v));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("oracle passed on {} versions", all.len());
}

/// The oracle has teeth: dropping the commands that only groups, the PEL, expiry, field TTLs
/// or functions depend on (invisible to a plain key listing) makes the comparison fail. Run on
/// the newest Redis and the newest Valkey.
#[test]
fn oracle_detects_missing_commands() {
    let all = versions();
    let newest = |f: Flavor| all.iter().rfind(|v| v.flavor() == f && v.at_least(7, 0));
    for v in [newest(Flavor::Redis), newest(Flavor::Valkey)]
        .into_iter()
        .flatten()
    {
        let source = server_with_modules(v);
        let info = write_dataset(&source, &DatasetOptions::default());
        let out = rdb(&source.save(), "resp");
        let target = server_with_modules(v);
        let without = |name: &[u8]| -> Vec<u8> {
            let mut kept = Vec::new();
            for (args, range) in crate::util::split_commands(&out) {
                if !args[0].eq_ignore_ascii_case(name) {
                    kept.extend_from_slice(&out[range]);
                }
            }
            kept
        };
        let mut dropped: Vec<&[u8]> = vec![b"XCLAIM", b"PEXPIREAT", b"XSETID", b"FUNCTION"];
        if info.hash_field_ttls {
            dropped.push(b"HPEXPIREAT");
        }
        for name in dropped {
            flush(&target);
            replay(&target, &without(name));
            let name = String::from_utf8_lossy(name);
            assert!(
                compare_data(&source, &target, &info).is_err(),
                "{v}: the oracle must notice that every {name} is missing"
            );
        }
    }
}
