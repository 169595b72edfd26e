//! The checked-in inputs of the cargo-fuzz targets `rdb_decode` and `rdb_mutate`: the seeds,
//! `fuzz/seeds/<target>/`, and the crashes CI kept, `fuzz/regressions/<target>/`, through the
//! target's own checks (`fuzz_checks/<target>.rs`). None may panic; decoding errors are fine.

#[path = "fuzz_checks/rdb_decode.rs"]
mod rdb_decode;

#[path = "fuzz_checks/rdb_mutate.rs"]
mod rdb_mutate;

#[test]
fn rdb_decode_seeds_and_regressions() {
    redis_sync_testkit::check_fuzz_inputs("rdb_decode", rdb_decode::check);
}

#[test]
fn rdb_mutate_seeds_and_regressions() {
    redis_sync_testkit::check_fuzz_inputs("rdb_mutate", rdb_mutate::check);
}

/// The RDB seeds are whole, valid dumps of real servers (`scripts/fuzz-seeds.sh`) holding every
/// type in both its compact and its big encoding, and hash field TTLs where the server has them:
/// what makes them worth mutating.
#[test]
fn rdb_seeds_are_whole_dumps_of_every_type() {
    use redis_sync_rdb::{Checksum, Decoder, Event, ValueChunk, ValueType};
    use std::collections::{BTreeSet, HashSet};

    let seeds = redis_sync_testkit::fuzz_inputs("rdb_mutate");
    let seeds = seeds
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "rdb"));
    let mut n = 0;
    for (path, bytes) in seeds {
        n += 1;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut d = Decoder::builder().verify_checksum(true).build();
        d.handle_bytes(bytes);
        d.handle_eof();
        let (mut types, mut type_bytes, mut field_ttls, mut end) =
            (HashSet::new(), BTreeSet::new(), 0, None);
        while let Some(event) = d.poll_event().unwrap_or_else(|e| panic!("{name}: {e}")) {
            match event {
                Event::Key(k) => {
                    types.insert(k.value_type);
                    type_bytes.insert(k.type_byte);
                }
                Event::Value(ValueChunk::HashFields(fields)) => {
                    field_ttls += fields.iter().filter(|f| f.expire_ms.is_some()).count();
                }
                Event::End(c) => end = Some(c),
                _ => {}
            }
        }
        assert!(
            matches!(end, Some(Checksum::Verified(_))),
            "{name}: {end:?}"
        );
        for t in [
            ValueType::String,
            ValueType::List,
            ValueType::Set,
            ValueType::SortedSet,
            ValueType::Hash,
            ValueType::Stream,
        ] {
            assert!(types.contains(&t), "{name}: no {t:?} key");
        }
        // String, list, intset, set, set-or-listpack, zset, zset-compact, hash, hash-compact,
        // stream: at least 9 distinct type bytes whatever the version.
        assert!(type_bytes.len() >= 9, "{name}: type bytes {type_bytes:?}");
        let has_field_ttls = name.starts_with("valkey-9") || name.as_ref() >= "redis-7.4";
        assert_eq!(
            field_ttls > 0,
            has_field_ttls,
            "{name}: {field_ttls} field TTLs"
        );
    }
    assert!(n >= 4, "only {n} RDB seeds");
}
