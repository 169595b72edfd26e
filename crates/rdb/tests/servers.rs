//! Real server files: for every installed server version, write a data set with every type in
//! small and large encodings, `SAVE`, and decode the dump. Checks: no error, checksum
//! `Verified`, the key count equals `DBSIZE`, element counts equal the server's, the same events
//! whether fed whole or in 1 KiB pieces, and every key's RESTORE payload equals the server's
//! own `DUMP` of that key byte for byte.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use redis_sync_rdb::{Checksum, Decoder, Event, ValueChunk};
use redis_sync_testkit::{Client, Server, ServerVersion, versions};

fn call(c: &mut Client, args: &[&[u8]]) {
    let r = c.call(args).unwrap();
    assert!(
        !r.is_error(),
        "{:?} -> {r:?}",
        String::from_utf8_lossy(args[0])
    );
}

fn s(x: &str) -> &[u8] {
    x.as_bytes()
}

/// Pseudo-random, incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes the data set; returns the expected element count per key.
fn populate(v: &ServerVersion, server: &Server) -> BTreeMap<Vec<u8>, usize> {
    let mut c = server.client();
    let mut want = BTreeMap::new();
    let (maj, min, _) = v.version();
    let redis = format!("{:?}", v.flavor()).to_lowercase().contains("redis");

    // Strings: raw, integer, LZF-compressible, large incompressible, with expiry.
    call(&mut c, &[s("SET"), s("str"), s("hello")]);
    call(&mut c, &[s("SET"), s("int"), s("12345")]);
    call(&mut c, &[s("SET"), s("neg"), s("-70000")]);
    call(&mut c, &[s("SET"), s("lzf"), "abc".repeat(3000).as_bytes()]);
    call(&mut c, &[s("SET"), s("big"), &noise(300_000, 7)]);
    call(
        &mut c,
        &[s("SET"), s("ttl"), s("v"), s("PX"), s("100000000")],
    );
    call(&mut c, &[s("SET"), s("empty"), s("")]);
    for k in ["str", "int", "neg", "lzf", "big", "ttl", "empty"] {
        want.insert(k.as_bytes().to_vec(), 1);
    }

    // Lists: small (ziplist/listpack), large (quicklist, many nodes), a big element (plain
    // node on 7.0+), compressible items.
    let small: Vec<Vec<u8>> = vec![b"a".to_vec(), b"1".to_vec(), b"-5".to_vec(), b"zz".to_vec()];
    let mut args: Vec<&[u8]> = vec![s("RPUSH"), s("list:small")];
    args.extend(small.iter().map(|x| x.as_slice()));
    call(&mut c, &args);
    want.insert(b"list:small".to_vec(), small.len());
    let items: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("item-{i}-{}", "x".repeat(i % 50)).into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![s("RPUSH"), s("list:big")];
    args.extend(items.iter().map(|x| x.as_slice()));
    call(&mut c, &args);
    let plain = noise(20_000, 3);
    call(&mut c, &[s("RPUSH"), s("list:big"), &plain, s("tail")]);
    want.insert(b"list:big".to_vec(), items.len() + 2);

    // Sets: intset, small strings (listpack on 7.2+), large (hashtable).
    call(
        &mut c,
        &[
            s("SADD"),
            s("set:int"),
            s("1"),
            s("2"),
            s("-3"),
            s("70000"),
            s("5000000000"),
        ],
    );
    want.insert(b"set:int".to_vec(), 5);
    call(&mut c, &[s("SADD"), s("set:small"), s("a"), s("b"), s("c")]);
    want.insert(b"set:small".to_vec(), 3);
    let members: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("member:{i}").into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![s("SADD"), s("set:big")];
    args.extend(members.iter().map(|x| x.as_slice()));
    call(&mut c, &args);
    want.insert(b"set:big".to_vec(), members.len());

    // Sorted sets: small (ziplist/listpack), large (skiplist, binary doubles), infinities.
    call(
        &mut c,
        &[
            s("ZADD"),
            s("zset:small"),
            s("1.5"),
            s("a"),
            s("-inf"),
            s("b"),
            s("3"),
            s("c"),
        ],
    );
    want.insert(b"zset:small".to_vec(), 3);
    let pairs: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("{}", i as f64 / 7.0), format!("m{i}")))
        .collect();
    let mut args: Vec<&[u8]> = vec![s("ZADD"), s("zset:big")];
    for (sc, m) in &pairs {
        args.push(sc.as_bytes());
        args.push(m.as_bytes());
    }
    args.extend([s("+inf"), s("top")]);
    call(&mut c, &args);
    want.insert(b"zset:big".to_vec(), pairs.len() + 1);

    // Hashes: small (ziplist/listpack), large (hashtable).
    call(
        &mut c,
        &[
            s("HSET"),
            s("hash:small"),
            s("f1"),
            s("v1"),
            s("f2"),
            s("2"),
        ],
    );
    want.insert(b"hash:small".to_vec(), 2);
    let fields: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("field{i}"), format!("value{i}")))
        .collect();
    let mut args: Vec<&[u8]> = vec![s("HSET"), s("hash:big")];
    for (f, x) in &fields {
        args.push(f.as_bytes());
        args.push(x.as_bytes());
    }
    call(&mut c, &args);
    want.insert(b"hash:big".to_vec(), fields.len());

    // Hash field TTLs: Redis 7.4+, Valkey 9+.
    let hfe = if redis {
        (maj, min) >= (7, 4)
    } else {
        maj >= 9
    };
    if hfe {
        call(
            &mut c,
            &[
                s("HSET"),
                s("hash:ttl"),
                s("a"),
                s("1"),
                s("b"),
                s("2"),
                s("c"),
                s("3"),
            ],
        );
        call(
            &mut c,
            &[
                s("HPEXPIRE"),
                s("hash:ttl"),
                s("100000000"),
                s("FIELDS"),
                s("2"),
                s("a"),
                s("b"),
            ],
        );
        want.insert(b"hash:ttl".to_vec(), 3);
        let mut args: Vec<&[u8]> = vec![s("HSET"), s("hash:ttlbig")];
        for (f, x) in &fields {
            args.push(f.as_bytes());
            args.push(x.as_bytes());
        }
        call(&mut c, &args);
        call(
            &mut c,
            &[
                s("HPEXPIRE"),
                s("hash:ttlbig"),
                s("200000000"),
                s("FIELDS"),
                s("1"),
                s("field7"),
            ],
        );
        want.insert(b"hash:ttlbig".to_vec(), fields.len());
    }

    // Streams with several nodes, deleted entries, a group with PEL and consumers.
    for i in 0..250 {
        let id = format!("{}-{}", 1_000 + i / 3, i % 3);
        let r = c
            .call(&[
                s("XADD"),
                s("stream"),
                id.as_bytes(),
                s("f"),
                format!("{i}").as_bytes(),
                s("g"),
                s("x"),
            ])
            .unwrap();
        assert!(!r.is_error(), "{r:?}");
    }
    call(
        &mut c,
        &[s("XADD"), s("stream"), s("5000-0"), s("other"), s("fields")],
    );
    call(&mut c, &[s("XDEL"), s("stream"), s("1000-1"), s("1010-0")]);
    call(
        &mut c,
        &[s("XGROUP"), s("CREATE"), s("stream"), s("grp"), s("0")],
    );
    call(
        &mut c,
        &[
            s("XREADGROUP"),
            s("GROUP"),
            s("grp"),
            s("alice"),
            s("COUNT"),
            s("5"),
            s("STREAMS"),
            s("stream"),
            s(">"),
        ],
    );
    call(
        &mut c,
        &[
            s("XREADGROUP"),
            s("GROUP"),
            s("grp"),
            s("bob"),
            s("COUNT"),
            s("3"),
            s("STREAMS"),
            s("stream"),
            s(">"),
        ],
    );
    call(
        &mut c,
        &[
            s("XGROUP"),
            s("CREATE"),
            s("stream"),
            s("empty-grp"),
            s("$"),
        ],
    );
    want.insert(b"stream".to_vec(), 249);

    // Another db.
    call(&mut c, &[s("SELECT"), s("9")]);
    call(&mut c, &[s("SET"), s("db9key"), s("x")]);
    call(&mut c, &[s("SELECT"), s("0")]);
    want.insert(b"db9key".to_vec(), 1);

    // Functions (7.0+; Valkey).
    if !redis || maj >= 7 {
        call(
            &mut c,
            &[
                s("FUNCTION"),
                s("LOAD"),
                s("#!lua name=mylib\nredis.register_function('myf', function() return 1 end)"),
            ],
        );
    }
    // Modules on the Stack servers, vector sets on Redis 8.
    if v.module("rejson").is_some() {
        call(
            &mut c,
            &[
                s("JSON.SET"),
                s("json"),
                s("$"),
                s(r#"{"a":[1,2,{"b":"c"}]}"#),
            ],
        );
        want.insert(b"json".to_vec(), 1);
    }
    if v.module("redisbloom").is_some() {
        call(&mut c, &[s("BF.ADD"), s("bloom"), s("x")]);
        want.insert(b"bloom".to_vec(), 1);
    }
    if redis && maj >= 8 {
        call(
            &mut c,
            &[
                s("VADD"),
                s("vset"),
                s("VALUES"),
                s("3"),
                s("0.1"),
                s("0.2"),
                s("0.3"),
                s("e1"),
            ],
        );
        want.insert(b"vset".to_vec(), 1);
    }
    want
}

fn decode(data: &[u8], piece: usize) -> Vec<Event> {
    let mut d = Decoder::builder()
        .chunk_budget(4096)
        .restore_payloads(None)
        .build();
    let mut ev = Vec::new();
    for p in data.chunks(piece) {
        d.handle_bytes(p);
        while let Some(e) = d.poll_event().unwrap() {
            ev.push(e);
        }
    }
    d.handle_eof();
    while let Some(e) = d.poll_event().unwrap() {
        ev.push(e);
    }
    ev
}

fn check_version(v: &ServerVersion) {
    let mut b = Server::builder(v);
    for m in ["rejson", "redisbloom"] {
        if v.module(m).is_some() {
            b = b.module(m);
        }
    }
    let server = b.start();
    let want = populate(v, &server);
    let mut c = server.client();
    let dbsize0 = server.dbsize();
    call(&mut c, &[s("SELECT"), s("9")]);
    let dbsize9 = c.call(&[s("DBSIZE")]).unwrap().int();
    call(&mut c, &[s("SELECT"), s("0")]);
    let path = server.save();
    let data = std::fs::read(&path).unwrap();

    let events = decode(&data, usize::MAX);
    assert_eq!(
        events,
        decode(&data, 1024),
        "{}: chunked decode differs",
        v.name()
    );
    match events.first() {
        Some(Event::Header(h)) => assert_eq!(h.version, v.rdb_version(), "{}", v.name()),
        other => panic!("{}: first event {other:?}", v.name()),
    }
    assert!(
        matches!(events.last(), Some(Event::End(Checksum::Verified(_)))),
        "{}: {:?}",
        v.name(),
        events.last()
    );

    // Per key: element count, and the payload equals DUMP.
    let mut keys = 0i64;
    let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut cur: Option<(u64, Vec<u8>)> = None;
    for e in &events {
        match e {
            Event::Key(k) => {
                keys += 1;
                cur = Some((k.db, k.key.to_vec()));
                counts.insert(k.key.to_vec(), 0);
            }
            Event::Value(ch) => {
                let key = &cur.as_ref().unwrap().1;
                let n = match ch {
                    ValueChunk::String(_) => 1 - counts[key].min(1),
                    ValueChunk::ListItems(x) | ValueChunk::SetMembers(x) => x.len(),
                    ValueChunk::SortedSetMembers(x) => x.len(),
                    ValueChunk::HashFields(x) => x.len(),
                    ValueChunk::StreamEntries(x) => x.len(),
                    ValueChunk::Module { .. } => 1,
                    _ => 0,
                };
                *counts.get_mut(key).unwrap() += n;
            }
            Event::KeyEnd { restore_payload } => {
                let (db, key) = cur.take().unwrap();
                call(&mut c, &[s("SELECT"), db.to_string().as_bytes()]);
                let dump = c.call(&[s("DUMP"), &key]).unwrap().bulk().unwrap();
                assert_eq!(
                    restore_payload.as_deref(),
                    Some(dump.as_slice()),
                    "{}: payload of {:?} differs from DUMP",
                    v.name(),
                    String::from_utf8_lossy(&key)
                );
            }
            _ => {}
        }
    }
    assert_eq!(keys, dbsize0 + dbsize9, "{}: keys vs DBSIZE", v.name());
    for (k, n) in &want {
        assert_eq!(
            counts.get(k),
            Some(n),
            "{}: element count of {:?}",
            v.name(),
            String::from_utf8_lossy(k)
        );
    }
    let funcs = events
        .iter()
        .filter(|e| matches!(e, Event::Function { .. }))
        .count();
    eprintln!(
        "{}: RDB {} ok, {} bytes, {keys} keys, {funcs} function libs, {} events",
        v.name(),
        v.rdb_version(),
        data.len(),
        events.len()
    );
}

#[test]
fn every_installed_server_version() {
    let all = versions();
    if all.is_empty() {
        eprintln!("skipping: no servers installed");
        return;
    }
    for v in &all {
        check_version(v);
    }
}
