//! One test per encoding and opcode with hand-built bytes (RDB-FORMAT.md), including hostile
//! lengths, truncation and corruption. Every file is also decoded 1 byte at a time and must give
//! the same events.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use redis_sync_rdb::{
    Checksum, Decoder, DecoderBuilder, Error, Event, Flavor, HashField, ValueChunk, ValueType,
    crc64,
};

/// `REDIS%04d` + body + EOF + CRC-64 (for version >= 5).
fn rdb(version: u32, body: &[u8]) -> Vec<u8> {
    let mut f = format!("REDIS{version:04}").into_bytes();
    f.extend_from_slice(body);
    f.push(0xff);
    if version >= 5 {
        let c = crc64(&f);
        f.extend_from_slice(&c.to_le_bytes());
    }
    f
}

fn valkey(body: &[u8]) -> Vec<u8> {
    let mut f = b"VALKEY080".to_vec();
    f.extend_from_slice(body);
    f.push(0xff);
    let c = crc64(&f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

fn run(b: DecoderBuilder, data: &[u8], step: usize) -> Result<Vec<Event>, Error> {
    let mut d = b.build();
    let mut ev = Vec::new();
    for p in data.chunks(step.max(1)) {
        d.handle_bytes(p);
        while let Some(e) = d.poll_event()? {
            ev.push(e);
        }
    }
    d.handle_eof();
    while let Some(e) = d.poll_event()? {
        ev.push(e);
    }
    Ok(ev)
}

/// Decodes whole and 1 byte at a time; both must agree.
fn decode_with(b: DecoderBuilder, data: &[u8]) -> Result<Vec<Event>, Error> {
    let a = run(b.clone(), data, data.len());
    let c = run(b, data, 1);
    assert_eq!(format!("{a:?}"), format!("{c:?}"), "1-byte feeding differs");
    a
}

fn decode(data: &[u8]) -> Result<Vec<Event>, Error> {
    decode_with(Decoder::builder(), data)
}

/// The value chunks of the only key.
fn chunks(data: &[u8]) -> Vec<ValueChunk> {
    decode(data)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Value(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn s(x: &str) -> Bytes {
    Bytes::copy_from_slice(x.as_bytes())
}

/// RDB string: 6/14/32-bit length + bytes.
fn rstr(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let n = b.len();
    if n < 64 {
        v.push(n as u8);
    } else if n < 16384 {
        v.push(0x40 | (n >> 8) as u8);
        v.push(n as u8);
    } else {
        v.push(0x80);
        v.extend_from_slice(&(n as u32).to_be_bytes());
    }
    v.extend_from_slice(b);
    v
}

fn key(t: u8, name: &str) -> Vec<u8> {
    let mut v = vec![t];
    v.extend(rstr(name.as_bytes()));
    v
}

fn listpack(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for it in items {
        let mut e = Vec::new();
        if let Some(i) = std::str::from_utf8(it)
            .ok()
            .and_then(|x| x.parse::<i64>().ok())
        {
            if (0..128).contains(&i) {
                e.push(i as u8);
            } else {
                e.push(0xf4);
                e.extend_from_slice(&i.to_le_bytes());
            }
        } else if it.len() < 64 {
            e.push(0x80 | it.len() as u8);
            e.extend_from_slice(it);
        } else {
            e.push(0xe0 | (it.len() >> 8) as u8);
            e.push(it.len() as u8);
            e.extend_from_slice(it);
        }
        let l = e.len();
        if l < 128 {
            e.push(l as u8);
        } else {
            e.push((l >> 7) as u8);
            e.push((l & 127) as u8 | 128);
        }
        body.extend(e);
    }
    let mut out = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend(body);
    out.push(0xff);
    out
}

fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut last = 10usize;
    for it in items {
        last = 10 + body.len();
        let mut e = vec![prev as u8];
        e.push(it.len() as u8); // 6-bit string
        e.extend_from_slice(it);
        prev = e.len();
        body.extend(e);
    }
    let mut out = ((10 + body.len() + 1) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(last as u32).to_le_bytes());
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend(body);
    out.push(0xff);
    out
}

#[test]
fn string_encodings() {
    let mut body = vec![0xfe, 0];
    body.extend(key(0, "i8"));
    body.extend([0xc0, 0x85]);
    body.extend(key(0, "i16"));
    body.extend([0xc1, 0x00, 0x80]);
    body.extend(key(0, "i32"));
    body.extend([0xc2, 0xff, 0xff, 0xff, 0x7f]);
    body.extend(key(0, "raw"));
    body.extend(rstr(b"hello"));
    body.extend(key(0, "empty"));
    body.push(0);
    // LZF "abcabcabc".
    body.extend(key(0, "lzf"));
    body.extend([0xc3, 6, 9, 2, b'a', b'b', b'c', 4 << 5, 2]);
    let c = chunks(&rdb(9, &body));
    let want: Vec<ValueChunk> = ["-123", "-32768", "2147483647", "hello", "", "abcabcabc"]
        .iter()
        .map(|x| ValueChunk::String(s(x)))
        .collect();
    assert_eq!(c, want);
}

#[test]
fn large_strings_stream_in_budget_pieces() {
    // A 10,000-byte raw string and an LZF string of 1 + 264*40 bytes, budget 1000.
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut body = key(0, "raw");
    body.extend(rstr(&big));
    let mut lzf = vec![0, b'z'];
    for _ in 0..40 {
        lzf.extend([7 << 5, 255, 0]); // copy 264 bytes at distance 1
    }
    let ulen = 1 + 264 * 40;
    body.extend(key(0, "lzf"));
    body.push(0xc3);
    let clen = rstr(&lzf);
    body.extend(&clen[..clen.len() - lzf.len()]);
    body.extend([0x40 | (ulen >> 8) as u8, ulen as u8]);
    body.extend(&lzf);
    let ev = decode_with(Decoder::builder().chunk_budget(1000), &rdb(9, &body)).unwrap();
    let mut per_key: Vec<Vec<usize>> = Vec::new();
    let mut all: Vec<Vec<u8>> = Vec::new();
    for e in &ev {
        match e {
            Event::Key(_) => {
                per_key.push(Vec::new());
                all.push(Vec::new());
            }
            Event::Value(ValueChunk::String(b)) => {
                per_key.last_mut().unwrap().push(b.len());
                all.last_mut().unwrap().extend_from_slice(b);
            }
            _ => {}
        }
    }
    assert_eq!(per_key[0], vec![1000; 10]);
    assert_eq!(all[0], big);
    assert_eq!(per_key[1].len(), 11);
    assert!(per_key[1][..10].iter().all(|&n| n == 1000));
    assert_eq!(all[1], vec![b'z'; ulen]);
}

#[test]
fn bad_lzf_is_an_error() {
    for (name, payload) in [
        (
            "declared too long",
            vec![0xc3, 6, 10, 2, b'a', b'b', b'c', 4 << 5, 2],
        ),
        ("reference before start", vec![0xc3, 2, 3, 1 << 5, 0]),
        ("cut instruction", vec![0xc3, 2, 5, 5, b'a']),
    ] {
        let mut body = key(0, "k");
        body.extend(payload);
        let e = decode(&rdb(9, &body)).unwrap_err();
        assert!(matches!(e, Error::BadLzf { .. }), "{name}: {e}");
        assert!(e.to_string().contains("key \"k\""), "{name}: {e}");
    }
}

#[test]
fn plain_aggregates() {
    let mut body = Vec::new();
    body.extend(key(1, "list"));
    body.push(2);
    body.extend(rstr(b"a"));
    body.extend([0xc0, 7]);
    body.extend(key(2, "set"));
    body.push(1);
    body.extend(rstr(b"m"));
    body.extend(key(3, "zset"));
    body.push(4);
    body.extend(rstr(b"a"));
    body.extend([3, b'1', b'.', b'5']);
    body.extend(rstr(b"b"));
    body.push(254);
    body.extend(rstr(b"c"));
    body.push(255);
    body.extend(rstr(b"d"));
    body.push(253);
    body.extend(key(5, "zset2"));
    body.push(1);
    body.extend(rstr(b"x"));
    body.extend(2.25f64.to_le_bytes());
    body.extend(key(4, "hash"));
    body.push(1);
    body.extend(rstr(b"f"));
    body.extend(rstr(b"v"));
    let c = chunks(&rdb(9, &body));
    assert_eq!(c[0], ValueChunk::ListItems(vec![s("a"), s("7")]));
    assert_eq!(c[1], ValueChunk::SetMembers(vec![s("m")]));
    let ValueChunk::SortedSetMembers(z) = &c[2] else {
        panic!()
    };
    assert_eq!(z[0], (s("a"), 1.5));
    assert_eq!(z[1], (s("b"), f64::INFINITY));
    assert_eq!(z[2], (s("c"), f64::NEG_INFINITY));
    assert!(z[3].1.is_nan());
    assert_eq!(c[3], ValueChunk::SortedSetMembers(vec![(s("x"), 2.25)]));
    assert_eq!(
        c[4],
        ValueChunk::HashFields(vec![HashField {
            field: s("f"),
            value: s("v"),
            expire_ms: None
        }])
    );
}

#[test]
fn aggregates_chunk_by_budget() {
    let mut body = key(1, "list");
    body.extend([0x40, 100]);
    for i in 0..100 {
        body.extend(rstr(format!("item{i:03}").as_bytes()));
    }
    let ev = decode_with(Decoder::builder().chunk_budget(230), &rdb(9, &body)).unwrap();
    let sizes: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Value(ValueChunk::ListItems(v)) => Some(v.len()),
            _ => None,
        })
        .collect();
    // 7 bytes + 16 overhead = 23 per item: 10 items per chunk.
    assert_eq!(sizes, vec![10; 10]);
}

#[test]
fn empty_aggregates_are_key_then_key_end() {
    let mut body = key(1, "l");
    body.push(0);
    body.extend(key(14, "q"));
    body.push(0);
    let ev = decode(&rdb(9, &body)).unwrap();
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| match e {
            Event::Key(_) => "key",
            Event::KeyEnd { .. } => "end",
            Event::Value(_) => "value",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["other", "key", "end", "key", "end", "other"]);
}

#[test]
fn blob_encodings() {
    let mut body = Vec::new();
    body.extend(key(10, "zl"));
    body.extend(rstr(&ziplist(&[b"a", b"b"])));
    let mut is = 4u32.to_le_bytes().to_vec();
    is.extend(2u32.to_le_bytes());
    is.extend((-1i32).to_le_bytes());
    is.extend(100000i32.to_le_bytes());
    body.extend(key(11, "is"));
    body.extend(rstr(&is));
    body.extend(key(12, "zzl"));
    body.extend(rstr(&ziplist(&[b"m", b"2.5"])));
    body.extend(key(13, "hzl"));
    body.extend(rstr(&ziplist(&[b"f", b"v"])));
    body.extend(key(9, "zm"));
    body.extend(rstr(&[1, 1, b'f', 2, 0, b'v', b'w', 0xff]));
    body.extend(key(16, "hlp"));
    body.extend(rstr(&listpack(&[b"f", b"1000"])));
    body.extend(key(17, "zlp"));
    body.extend(rstr(&listpack(&[b"m", b"-3"])));
    body.extend(key(20, "slp"));
    body.extend(rstr(&listpack(&[b"x", b"5"])));
    let c = chunks(&rdb(10, &body));
    assert_eq!(c[0], ValueChunk::ListItems(vec![s("a"), s("b")]));
    assert_eq!(c[1], ValueChunk::SetMembers(vec![s("-1"), s("100000")]));
    assert_eq!(c[2], ValueChunk::SortedSetMembers(vec![(s("m"), 2.5)]));
    let hf = |f: &str, v: &str| HashField {
        field: s(f),
        value: s(v),
        expire_ms: None,
    };
    assert_eq!(c[3], ValueChunk::HashFields(vec![hf("f", "v")]));
    assert_eq!(c[4], ValueChunk::HashFields(vec![hf("f", "vw")]));
    assert_eq!(c[5], ValueChunk::HashFields(vec![hf("f", "1000")]));
    assert_eq!(c[6], ValueChunk::SortedSetMembers(vec![(s("m"), -3.0)]));
    assert_eq!(c[7], ValueChunk::SetMembers(vec![s("x"), s("5")]));
}

#[test]
fn quicklists() {
    let mut body = key(14, "q1");
    body.push(2);
    body.extend(rstr(&ziplist(&[b"a", b"b"])));
    body.extend(rstr(&ziplist(&[b"c"])));
    body.extend(key(18, "q2"));
    body.push(2);
    body.push(2);
    body.extend(rstr(&listpack(&[b"x", b"7"])));
    body.push(1);
    body.extend(rstr(&[b'P'; 100]));
    let c = chunks(&rdb(10, &body));
    assert_eq!(c[0], ValueChunk::ListItems(vec![s("a"), s("b"), s("c")]));
    assert_eq!(
        c[1],
        ValueChunk::ListItems(vec![s("x"), s("7"), Bytes::from(vec![b'P'; 100])])
    );
    // Unknown container.
    let mut body = key(18, "q");
    body.extend([1, 3]);
    body.extend(rstr(b"x"));
    assert!(matches!(
        decode(&rdb(10, &body)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn hash_field_ttls() {
    let hf = |f: &str, v: &str, t: Option<i64>| HashField {
        field: s(f),
        value: s(v),
        expire_ms: t,
    };
    // Redis 24 HASH_METADATA: minExpire 1000; ttl 0 = none, else ttl + min - 1.
    let mut body = key(24, "h24");
    body.extend(1000i64.to_le_bytes());
    body.push(2);
    body.push(0);
    body.extend(rstr(b"a"));
    body.extend(rstr(b"1"));
    body.push(6);
    body.extend(rstr(b"b"));
    body.extend(rstr(b"2"));
    // Redis 22 pre-GA: absolute.
    body.extend(key(22, "h22"));
    body.push(1);
    body.extend([0x40 | (5000u32 >> 8) as u8, 5000u32 as u8]);
    body.extend(rstr(b"c"));
    body.extend(rstr(b"3"));
    // Redis 25 HASH_LISTPACK_EX: minExpire + listpack triplets.
    body.extend(key(25, "h25"));
    body.extend(1234i64.to_le_bytes());
    body.extend(rstr(&listpack(&[b"d", b"4", b"0", b"e", b"5", b"99999"])));
    // Redis 23 pre-GA listpack triplets.
    body.extend(key(23, "h23"));
    body.extend(rstr(&listpack(&[b"f", b"6", b"777"])));
    let c = chunks(&rdb(12, &body));
    assert_eq!(
        c[0],
        ValueChunk::HashFields(vec![hf("a", "1", None), hf("b", "2", Some(1005))])
    );
    assert_eq!(c[1], ValueChunk::HashFields(vec![hf("c", "3", Some(5000))]));
    assert_eq!(
        c[2],
        ValueChunk::HashFields(vec![hf("d", "4", None), hf("e", "5", Some(99999))])
    );
    assert_eq!(c[3], ValueChunk::HashFields(vec![hf("f", "6", Some(777))]));

    // Valkey 22 HASH_2: field, value, 8-byte expiry (-1 = none).
    let mut body = key(22, "v");
    body.push(2);
    body.extend(rstr(b"a"));
    body.extend(rstr(b"1"));
    body.extend((-1i64).to_le_bytes());
    body.extend(rstr(b"b"));
    body.extend(rstr(b"2"));
    body.extend(42i64.to_le_bytes());
    let ev = decode(&valkey(&body)).unwrap();
    assert!(matches!(&ev[0], Event::Header(h) if h.flavor == Flavor::Valkey && h.version == 80));
    assert!(matches!(&ev[1], Event::Key(k) if k.value_type == ValueType::Hash));
    assert_eq!(
        ev[2],
        Event::Value(ValueChunk::HashFields(vec![
            hf("a", "1", None),
            hf("b", "2", Some(42))
        ]))
    );
}

#[test]
fn opcodes() {
    let mut body = vec![0xfa];
    body.extend(rstr(b"redis-ver"));
    body.extend(rstr(b"7.0.0"));
    body.extend([0xfa]);
    body.extend(rstr(b"redis-bits"));
    body.extend([0xc0, 64]);
    body.extend([0xf5]);
    body.extend(rstr(b"#!lua name=x\n"));
    body.extend([0xf6]);
    body.extend(rstr(b"name"));
    body.extend(rstr(b"LUA"));
    body.push(1);
    body.extend(rstr(b"desc"));
    body.extend(rstr(b"code"));
    body.extend([0xfe, 3, 0xfb, 2, 1, 0xf4, 0x40 | 0x30, 0x39, 1, 0]);
    body.push(0xfd);
    body.extend(100i32.to_le_bytes());
    body.extend(key(0, "sec"));
    body.extend(rstr(b"v"));
    body.push(0xfc);
    body.extend(1234567i64.to_le_bytes());
    body.extend([0xf8, 0x40 | 1, 0]);
    body.extend([0xf9, 9]);
    body.extend(key(0, "ms"));
    body.extend(rstr(b"v"));
    let ev = decode(&rdb(10, &body)).unwrap();
    assert_eq!(
        ev[1],
        Event::Aux {
            key: s("redis-ver"),
            value: s("7.0.0")
        }
    );
    assert_eq!(
        ev[2],
        Event::Aux {
            key: s("redis-bits"),
            value: s("64")
        }
    );
    assert_eq!(
        ev[3],
        Event::Function {
            code: s("#!lua name=x\n")
        }
    );
    assert_eq!(ev[4], Event::Function { code: s("code") });
    assert_eq!(ev[5], Event::SelectDb(3));
    assert_eq!(
        ev[6],
        Event::ResizeDb {
            db_size: 2,
            expires_size: 1
        }
    );
    assert_eq!(
        ev[7],
        Event::SlotInfo {
            slot: 12345,
            size: 1,
            expires_size: 0
        }
    );
    let Event::Key(k) = &ev[8] else {
        panic!("{:?}", ev[8])
    };
    assert_eq!(
        (k.db, k.expire_ms, k.idle_secs, k.lfu_freq),
        (3, Some(100_000), None, None)
    );
    let Event::Key(k) = &ev[11] else {
        panic!("{:?}", ev[11])
    };
    assert_eq!(
        (k.expire_ms, k.idle_secs, k.lfu_freq),
        (Some(1234567), Some(256), Some(9))
    );
    assert!(matches!(ev.last(), Some(Event::End(Checksum::Verified(_)))));
}

#[test]
fn modules() {
    // MODULE_AUX for ReJSON-RL v3, when = 2, one UINT, EOF; then a module value.
    let id = [0x81, 0x45, 0xe2, 0x52, 0x38, 0xdf, 0x91, 0x2c, 0x03];
    let mut body = vec![0xf7];
    body.extend(id);
    body.extend([2, 2]); // opcode UINT, when = 2
    body.extend([2, 5, 0]); // UINT 5, EOF
    body.extend(key(7, "json"));
    body.extend(id);
    body.extend([5]);
    body.extend(rstr(b"{\"a\":1}"));
    body.extend([4]);
    body.extend(1.5f64.to_le_bytes());
    body.extend([3, 0, 0, 0, 0, 1, 7, 0]);
    let ev = decode(&rdb(9, &body)).unwrap();
    let Event::ModuleAux { module, when, raw } = &ev[1] else {
        panic!("{:?}", ev[1])
    };
    assert_eq!(
        (module.name.as_str(), module.encver, *when),
        ("ReJSON-RL", 3, 2)
    );
    assert_eq!(&raw[..], &[2, 5, 0]);
    let Event::Key(k) = &ev[2] else { panic!() };
    assert_eq!(k.value_type, ValueType::Module);
    let Event::Value(ValueChunk::Module { module, raw }) = &ev[3] else {
        panic!("{:?}", ev[3])
    };
    assert_eq!(module.name, "ReJSON-RL");
    assert_eq!(raw.len(), 1 + 8 + 1 + 8 + 1 + 4 + 2 + 1);
    assert_eq!(raw.last(), Some(&0));

    // Unknown module opcode, and MODULE_PRE_GA.
    let mut body = key(7, "m");
    body.extend(id);
    body.push(9);
    assert!(matches!(decode(&rdb(9, &body)), Err(Error::Corrupt { .. })));
    let mut body = key(6, "m");
    body.extend(id);
    assert!(matches!(
        decode(&rdb(9, &body)),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn key_meta_and_slot_import() {
    // Redis 13 KEY_META: one class, its opcode stream (a UINT then EOF), then the key.
    let mut body = vec![0xf3, 1, 1, 2, 3, 4, 2, 9, 0];
    body.extend(key(0, "k"));
    body.extend(rstr(b"v"));
    let ev = decode(&rdb(13, &body)).unwrap();
    assert!(matches!(&ev[1], Event::Key(k) if k.key == "k" && k.offset == 9));
    // Valkey SLOT_IMPORT.
    let mut body = vec![0xf3];
    body.extend(rstr(&[b'j'; 40]));
    body.extend([2, 0, 10, 0x40 | 0x3f, 0xff, 0x40 | 0x3f, 0xff]);
    let ev = decode(&valkey(&body)).unwrap();
    assert_eq!(
        ev[1],
        Event::SlotImport {
            job_name: Bytes::from(vec![b'j'; 40]),
            ranges: vec![(0, 10), (16383, 16383)]
        }
    );
}

#[test]
fn header_errors_and_versions() {
    assert!(matches!(
        decode(b"REDIX0009\xff"),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        decode(b"REDIS00a9\xff"),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        decode(&rdb(14, &[])),
        Err(Error::UnsupportedVersion {
            version: 14,
            newest: 13,
            ..
        })
    ));
    assert!(matches!(
        decode(b"REDIS0000\xff"),
        Err(Error::UnsupportedVersion { .. })
    ));
    let ev = decode_with(Decoder::builder().allow_newer_version(true), &rdb(14, &[])).unwrap();
    assert!(matches!(ev.last(), Some(Event::End(Checksum::Verified(_)))));
    // v1-4: no checksum.
    let ev = decode(&rdb(1, &[])).unwrap();
    assert_eq!(ev.last(), Some(&Event::End(Checksum::Absent)));
    // Disabled checksum.
    let mut f = b"REDIS0009\xff".to_vec();
    f.extend([0; 8]);
    assert_eq!(
        decode(&f).unwrap().last(),
        Some(&Event::End(Checksum::Disabled))
    );
    // Mismatch names both values.
    let mut f = rdb(9, &[]);
    let n = f.len();
    f[n - 1] ^= 1;
    let e = decode(&f).unwrap_err();
    let Error::ChecksumMismatch {
        stored,
        computed,
        offset,
    } = e.clone()
    else {
        panic!("{e}")
    };
    assert_ne!(stored, computed);
    assert_eq!(offset, 10);
    assert!(e.to_string().contains(&format!("{stored:#018x}")));
}

#[test]
fn unknown_types_and_bad_lengths() {
    let e = decode(&rdb(9, &[8])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownType {
                byte: 8,
                offset: 9,
                version: 9,
                ..
            }
        ),
        "{e}"
    );
    let e = decode(&valkey(&[24])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownType {
                byte: 24,
                flavor: Flavor::Valkey,
                ..
            }
        ),
        "{e}"
    );
    let e = decode(&rdb(9, &[0xfe, 0x82])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadLength {
                byte: 0x82,
                offset: 10,
                ..
            }
        ),
        "{e}"
    );
    let e = decode(&rdb(12, &[27])).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn hostile_lengths_fail_without_allocating() {
    // A key name claiming 2^64-1 bytes; a list claiming 2^62 elements with none present; an
    // intset claiming 2^32-1 items; an LZF string claiming a 1 TiB output.
    let mut huge_key = vec![0, 0x81];
    huge_key.extend([0xff; 8]);
    let e = decode(&rdb(9, &huge_key)).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");

    let mut list = key(1, "l");
    list.push(0x81);
    list.extend((1u64 << 62).to_be_bytes());
    let e = decode(&rdb(9, &list)).unwrap_err();
    assert!(matches!(e, Error::BadLength { byte: 0xff, .. }), "{e}");

    let mut is = 2u32.to_le_bytes().to_vec();
    is.extend(u32::MAX.to_le_bytes());
    let mut body = key(11, "s");
    body.extend(rstr(&is));
    let e = decode(&rdb(9, &body)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadBlob {
                encoding: "intset",
                ..
            }
        ),
        "{e}"
    );

    let mut body = key(1, "l");
    body.push(1);
    body.extend([0xc3, 2, 0x81]);
    body.extend((1u64 << 40).to_be_bytes());
    body.extend([0, b'a']);
    let e = decode(&rdb(9, &body)).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");

    // A blob over max_blob_size.
    let mut body = key(10, "z");
    body.extend(rstr(&ziplist(&[&b"a"[..]; 10])));
    let e = decode_with(Decoder::builder().max_blob_size(20), &rdb(9, &body)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                setting: "max_blob_size",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn corrupt_blobs_name_the_key() {
    let mut zl = ziplist(&[b"a", b"b"]);
    zl[8] = 3; // count says 3
    let mut body = key(10, "badzl");
    body.extend(rstr(&zl));
    let e = decode(&rdb(9, &body)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadBlob {
                encoding: "ziplist",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("badzl"), "{e}");
    let mut lp = listpack(&[b"a", b"b", b"c"]);
    lp[0] += 1;
    let mut body = key(16, "badlp");
    body.extend(rstr(&lp));
    let e = decode(&rdb(10, &body)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadBlob {
                encoding: "listpack",
                ..
            }
        ),
        "{e}"
    );
    // Odd number of entries in a hash listpack.
    let mut body = key(16, "odd");
    body.extend(rstr(&listpack(&[b"a", b"b", b"c"])));
    assert!(matches!(
        decode(&rdb(10, &body)),
        Err(Error::BadBlob { .. })
    ));
}

#[test]
fn truncation_names_offset_and_key() {
    let mut body = key(1, "trunc");
    body.push(3);
    body.extend(rstr(b"a"));
    let f = rdb(9, &body);
    let cut = &f[..f.len() - 10];
    let e = decode(cut).unwrap_err();
    let Error::Truncated { offset, key, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*offset, cut.len() as u64);
    assert_eq!(key.as_deref(), Some(&b"trunc"[..]));
    // Empty input.
    assert!(matches!(
        decode(b""),
        Err(Error::Truncated { offset: 0, .. })
    ));
    // Errors are sticky.
    let mut d = Decoder::new();
    d.handle_bytes(b"NOTANRDB!");
    let e1 = d.poll_event().unwrap_err();
    assert_eq!(d.poll_event().unwrap_err(), e1);
}

#[test]
fn restore_payloads_and_limit() {
    let mut body = key(0, "k");
    body.extend(rstr(b"hello"));
    body.extend(key(1, "big"));
    body.push(3);
    for _ in 0..3 {
        body.extend(rstr(&[b'x'; 50]));
    }
    let f = rdb(9, &body);
    let ev = decode_with(
        Decoder::builder()
            .restore_payloads(Some(100))
            .chunk_budget(10),
        &f,
    )
    .unwrap();
    let payloads: Vec<Option<Bytes>> = ev
        .iter()
        .filter_map(|e| match e {
            Event::KeyEnd { restore_payload } => Some(restore_payload.clone()),
            _ => None,
        })
        .collect();
    let mut want = vec![0u8, 5];
    want.extend(b"hello");
    want.extend(9u16.to_le_bytes());
    let c = crc64(&want);
    want.extend(c.to_le_bytes());
    assert_eq!(payloads[0].as_deref(), Some(&want[..]));
    assert_eq!(payloads[1], None, "over the 100-byte limit");
    // Without the option, no payloads.
    let ev = decode(&f).unwrap();
    assert!(ev.iter().all(|e| !matches!(
        e,
        Event::KeyEnd {
            restore_payload: Some(_)
        }
    )));
}

#[test]
fn trailing_bytes_are_left_alone() {
    let mut f = rdb(9, &[]);
    let len = f.len() as u64;
    f.extend(b"*1\r\n$4\r\nPING\r\n");
    let mut d = Decoder::new();
    d.handle_bytes(&f);
    while d.poll_event().unwrap().is_some() {}
    assert!(d.is_done());
    assert_eq!(d.offset(), len);
    assert_eq!(d.buffered(), b"*1\r\n$4\r\nPING\r\n");
    d.handle_eof();
    assert_eq!(d.poll_event().unwrap(), None);
}

/// A 16 MiB string and a 200,000-element list, fed in 8 KiB pieces that are generated on the
/// fly: every chunk stays within the budget and the decoder never holds more than one piece
/// plus one element of unconsumed input.
#[test]
fn large_values_stream_with_bounded_buffering() {
    const PIECE: usize = 8 << 10;
    let string_len = 16usize << 20;
    let mut head = b"REDIS0009".to_vec();
    head.extend(key(0, "s"));
    head.push(0x80);
    head.extend((string_len as u32).to_be_bytes());
    let mut d = Decoder::builder()
        .chunk_budget(4096)
        .verify_checksum(false)
        .build();
    let mut max_buffered = 0;
    let mut got = 0usize;
    let mut items = 0usize;
    let mut max_chunk = 0usize;
    let mut feed = |d: &mut Decoder, bytes: &[u8]| {
        for p in bytes.chunks(PIECE) {
            d.handle_bytes(p);
            max_buffered = max_buffered.max(d.buffered().len());
            while let Some(e) = d.poll_event().unwrap() {
                match e {
                    Event::Value(ValueChunk::String(b)) => {
                        max_chunk = max_chunk.max(b.len());
                        got += b.len();
                    }
                    Event::Value(ValueChunk::ListItems(v)) => {
                        max_chunk = max_chunk.max(v.iter().map(|b| b.len() + 16).sum());
                        items += v.len();
                    }
                    _ => {}
                }
            }
        }
    };
    feed(&mut d, &head);
    let zeros = vec![0u8; PIECE];
    for _ in 0..string_len / PIECE {
        feed(&mut d, &zeros);
    }
    let mut list = key(1, "l");
    list.push(0x80);
    list.extend(200_000u32.to_be_bytes());
    feed(&mut d, &list);
    let mut batch = Vec::new();
    for i in 0..200_000u32 {
        batch.extend(rstr(format!("element-{i}").as_bytes()));
        if batch.len() >= PIECE {
            feed(&mut d, &batch);
            batch.clear();
        }
    }
    batch.push(0xff);
    batch.extend([0; 8]);
    feed(&mut d, &batch);
    d.handle_eof();
    assert_eq!(d.poll_event().unwrap(), None);
    assert!(d.is_done());
    assert_eq!(got, string_len);
    assert_eq!(items, 200_000);
    assert!(max_chunk <= 4096 + 64, "chunk of {max_chunk} bytes");
    assert!(max_buffered <= 2 * PIECE, "buffered {max_buffered} bytes");
}

/// The async crates move decoders and events across tasks.
#[test]
fn decoder_and_events_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Decoder>();
    check::<DecoderBuilder>();
    check::<Event>();
    check::<Error>();
}
