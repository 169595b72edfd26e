//! `DecoderBuilder::skip_values` and `key_names`: the same keys (db, name, type, expiry, offset),
//! the same file-level events and the same end as the full mode, with no value chunks except a
//! module's; on the RDB corpus and on dumps saved by real servers, whole and fed 1 byte at a
//! time.
#![allow(clippy::unwrap_used)]

use redis_sync_rdb::{Decoder, DecoderBuilder, Error, Event, ValueChunk};
use redis_sync_testkit::{Server, corpus_dir, versions};

/// Decodes `data` in pieces of `piece` bytes; the events before the error, and the error.
fn decode(builder: DecoderBuilder, data: &[u8], piece: usize) -> (Vec<Event>, Option<Error>) {
    decode_with(builder, data, piece, false)
}

/// [`decode`], with `skim` also through `Decoder::skim_keys` before every `poll_event` (a
/// skimmed key is recorded as its `Key` and `KeyEnd` events).
fn decode_with(
    builder: DecoderBuilder,
    data: &[u8],
    piece: usize,
    skim: bool,
) -> (Vec<Event>, Option<Error>) {
    let mut d = builder.build();
    let mut events = Vec::new();
    let pieces = data.chunks(piece.max(1)).map(Some).chain([None]);
    for p in pieces {
        match p {
            Some(p) => d.handle_bytes(p),
            None => d.handle_eof(),
        }
        loop {
            if skim {
                d.skim_keys(|k| {
                    events.push(Event::Key(k.clone()));
                    events.push(Event::KeyEnd {
                        restore_payload: None,
                    });
                    true
                });
            }
            match d.poll_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

/// The full mode's events as the skip mode should give them: no value chunks but modules'.
fn skimmed(events: Vec<Event>, names: bool) -> Vec<Event> {
    events
        .into_iter()
        .filter(|e| !matches!(e, Event::Value(c) if !matches!(c, ValueChunk::Module { .. })))
        .map(|e| match e {
            Event::Key(mut k) if !names => {
                k.key = Default::default();
                Event::Key(k)
            }
            e => e,
        })
        .collect()
}

/// Checks both skip modes against the full mode on one file; `Ok(keys)` when it decodes.
fn check_file(what: &str, data: &[u8], one_byte: bool) -> Result<usize, String> {
    let (full, full_err) = decode(Decoder::builder(), data, usize::MAX);
    let keys = full.iter().filter(|e| matches!(e, Event::Key(_))).count();
    for (names, skim) in [(true, false), (false, false), (true, true), (false, true)] {
        let builder = Decoder::builder().skip_values(true).key_names(names);
        let mut pieces = vec![usize::MAX, 4096, 7];
        if one_byte {
            pieces.push(1);
        }
        for piece in pieces {
            let (got, err) = decode_with(builder.clone(), data, piece, skim);
            let want = skimmed(full.clone(), names);
            match (&full_err, &err) {
                (None, None) => {
                    if got != want {
                        let at = got.iter().zip(&want).position(|(a, b)| a != b);
                        return Err(format!(
                            "{what} (names {names}, skim {skim}, pieces of {piece}): events differ at {at:?} \
                             ({} vs {} events)",
                            got.len(),
                            want.len()
                        ));
                    }
                }
                // Only the LZF payload of a string is not looked at in the skip mode.
                (Some(Error::BadLzf { .. }), _) => {}
                (Some(a), Some(b)) => {
                    if std::mem::discriminant(a) != std::mem::discriminant(b)
                        || !want.starts_with(&got)
                    {
                        return Err(format!(
                            "{what} (names {names}, skim {skim}, pieces of {piece}): error {b} vs {a}"
                        ));
                    }
                }
                (a, b) => {
                    return Err(format!(
                        "{what} (names {names}, skim {skim}, pieces of {piece}): full mode {a:?}, skip mode {b:?}"
                    ));
                }
            }
        }
    }
    Ok(keys)
}

#[test]
fn corpus_skip_mode_matches_full_mode() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let (f, k) = (
        header.iter().position(|h| *h == "local_file").unwrap(),
        header.iter().position(|h| *h == "kind").unwrap(),
    );
    let (mut files, mut keys, mut failures) = (0, 0, Vec::new());
    for line in lines {
        let v: Vec<&str> = line.split('\t').collect();
        if !matches!(v.get(k), Some(&"rdb" | &"rdb-preamble-aof")) {
            continue;
        }
        let data = std::fs::read(dir.join(v[f])).unwrap();
        // 1-byte feeding for the smaller files (the big ones are covered by other sizes).
        match check_file(v[f], &data, data.len() <= 256 * 1024) {
            Ok(n) => keys += n,
            Err(e) => failures.push(e),
        }
        files += 1;
    }
    println!("{files} files, {keys} keys, {} failures", failures.len());
    assert!(files >= 190, "only {files} RDB files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn skip_mode_skips_large_strings_without_buffering_them() {
    // REDIS0011, a 1 MiB raw string and an LZF string, fed in 4 KiB pieces.
    let mut file = b"REDIS0011".to_vec();
    file.extend_from_slice(&[0xfe, 0x00, 0x00, 3]);
    file.extend_from_slice(b"big");
    file.push(0x80);
    file.extend_from_slice(&(1u32 << 20).to_be_bytes());
    file.extend(std::iter::repeat_n(b'x', 1 << 20));
    // LZF "abcabcabc": key "lzf".
    file.extend_from_slice(&[0x00, 3]);
    file.extend_from_slice(b"lzf");
    file.extend_from_slice(&[0xc3, 6, 9, 2, b'a', b'b', b'c', 4 << 5, 2]);
    file.push(0xff);
    file.extend_from_slice(&[0; 8]);
    let mut d = Decoder::builder().skip_values(true).build();
    let mut events = Vec::new();
    for piece in file.chunks(4096) {
        d.handle_bytes(piece);
        while let Some(e) = d.poll_event().unwrap() {
            events.push(e);
        }
        assert!(
            d.buffered().len() <= 4096,
            "{} bytes held",
            d.buffered().len()
        );
    }
    d.handle_eof();
    assert_eq!(d.poll_event().unwrap(), None);
    let names: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Key(k) => Some(k.key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["big", "lzf"]);
    assert_eq!(events.len(), 2 + 2 * 2 + 1, "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Value(_))));
    // A cut file is still an error.
    let (_, err) = decode(
        Decoder::builder().skip_values(true),
        &file[..file.len() - 20],
        usize::MAX,
    );
    assert!(matches!(err, Some(Error::Truncated { .. })), "{err:?}");
}

#[test]
fn real_server_dumps_skip_mode_matches_full_mode() {
    let all = versions();
    if all.is_empty() {
        eprintln!("skipping: no servers installed");
        return;
    }
    // The oldest and the newest of each flavor (the encodings differ most between them).
    let mut picked: Vec<usize> = Vec::new();
    for (i, v) in all.iter().enumerate() {
        let same: Vec<usize> = (0..all.len())
            .filter(|&j| all[j].flavor() == v.flavor())
            .collect();
        if (same.first() == Some(&i) || same.last() == Some(&i)) && !picked.contains(&i) {
            picked.push(i);
        }
    }
    for v in picked.iter().map(|&i| &all[i]) {
        let server = Server::builder(v).start();
        let mut c = server.client();
        let cmds: &[&[&str]] = &[
            &["SET", "s", "hello"],
            &["SET", "n", "12345"],
            &["SET", "long", &"y".repeat(100_000)],
            &["SET", "comp", &"ab".repeat(5_000)],
            &["RPUSH", "l", "a", "b", "c"],
            &["SADD", "set", "1", "2", "3"],
            &["SADD", "sset", "x", "y"],
            &["ZADD", "z", "1", "a", "2.5", "b"],
            &["HSET", "h", "f", "v", "g", "w"],
            &["PEXPIRE", "s", "100000000"],
            &["SELECT", "2"],
            &["SET", "other", "v"],
            &["SELECT", "0"],
        ];
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let r = c.call(&args).unwrap();
            assert!(!r.is_error(), "{}: {cmd:?}: {r:?}", v.name());
        }
        let big: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
        let mut args: Vec<&[u8]> = vec![b"RPUSH", b"biglist"];
        args.extend(big.iter().map(|m| m.as_bytes()));
        assert!(!c.call(&args).unwrap().is_error());
        args[0] = b"SADD";
        args[1] = b"bigset";
        assert!(!c.call(&args).unwrap().is_error());
        if v.at_least(5, 0) {
            let r = c.call(&["XADD", "st", "*", "f", "v"]).unwrap();
            assert!(!r.is_error(), "{r:?}");
        }
        let r = c.call(&["DEBUG", "POPULATE", "3000"]).unwrap();
        let populated = !r.is_error();
        let path = server.save();
        let data = std::fs::read(&path).unwrap();
        let keys = check_file(v.name(), &data, true).unwrap();
        let want = server.dbsize() as usize + 1;
        assert_eq!(
            keys,
            want,
            "{}: keys in the dump (dbsize of db 0 + 1 in db 2)",
            v.name()
        );
        println!(
            "{}: {keys} keys agree (populate: {populated}, {} bytes)",
            v.name(),
            data.len()
        );
    }
}
