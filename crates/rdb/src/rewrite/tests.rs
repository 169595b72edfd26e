//! The converter on hand-built event sequences.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::*;
use crate::event::{Header, StreamEntry};

const NOW: i64 = 1_700_000_000_000;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn key(db: u64, name: &str, t: ValueType, expire: Option<i64>) -> Event {
    Event::Key(Key {
        db,
        key: b(name),
        value_type: t,
        type_byte: 0,
        expire_ms: expire,
        idle_secs: None,
        lfu_freq: None,
        offset: 100,
    })
}

fn end() -> Event {
    Event::KeyEnd {
        restore_payload: None,
    }
}

fn run(rw: &mut Rewriter, events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        rw.handle_event(e, NOW, &mut out).unwrap();
    }
    text(&out)
}

fn text(out: &[Command]) -> Vec<String> {
    out.iter()
        .map(|c| {
            c.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn convert(events: &[Event]) -> Vec<String> {
    run(&mut Rewriter::default(), events)
}

fn sid(ms: u64, seq: u64) -> StreamId {
    StreamId { ms, seq }
}

#[test]
fn string_with_expiry_uses_pxat_or_pexpireat() {
    let ev = [
        Event::Header(Header {
            flavor: crate::event::Flavor::Redis,
            version: 12,
        }),
        key(0, "s", ValueType::String, Some(NOW + 5000)),
        Event::Value(ValueChunk::String(b("hello"))),
        end(),
    ];
    assert_eq!(
        convert(&ev),
        ["SELECT 0", &format!("SET s hello PXAT {}", NOW + 5000)]
    );
    let mut old = Rewriter::builder()
        .target(TargetVersion::redis(6, 0))
        .build();
    assert_eq!(
        run(&mut old, &ev),
        [
            "SELECT 0",
            "SET s hello",
            &format!("PEXPIREAT s {}", NOW + 5000)
        ]
    );
}

#[test]
fn empty_and_chunked_strings() {
    let ev = [key(0, "e", ValueType::String, None), end()];
    assert_eq!(convert(&ev), ["SELECT 0", "SET e "]);
    let ev = [
        key(0, "big", ValueType::String, Some(NOW + 1)),
        Event::Value(ValueChunk::String(b("aaa"))),
        Event::Value(ValueChunk::String(b("bbb"))),
        Event::Value(ValueChunk::String(b("cc"))),
        end(),
    ];
    assert_eq!(
        convert(&ev),
        [
            "SELECT 0",
            "SET big aaa",
            "APPEND big bbb",
            "APPEND big cc",
            &format!("PEXPIREAT big {}", NOW + 1)
        ]
    );
}

#[test]
fn expired_keys_are_skipped_entirely() {
    let ev = [
        key(0, "gone", ValueType::List, Some(NOW)),
        Event::Value(ValueChunk::ListItems(vec![b("x")])),
        end(),
        key(0, "kept", ValueType::String, Some(NOW + 1)),
        Event::Value(ValueChunk::String(b("v"))),
        end(),
    ];
    let mut rw = Rewriter::default();
    let out = run(&mut rw, &ev);
    assert_eq!(out, ["SELECT 0", &format!("SET kept v PXAT {}", NOW + 1)]);
    assert_eq!(rw.stats().expired_skipped, 1);
    assert_eq!(rw.stats().keys, 1);
}

#[test]
fn aggregates_delete_first_and_follow_chunks() {
    let ev = [
        key(0, "l", ValueType::List, None),
        Event::Value(ValueChunk::ListItems(vec![b("a"), b("b")])),
        Event::Value(ValueChunk::ListItems(vec![b("c")])),
        Event::Value(ValueChunk::ListItems(vec![])),
        end(),
        key(0, "st", ValueType::Set, Some(NOW + 9)),
        Event::Value(ValueChunk::SetMembers(vec![b("1"), b("2")])),
        end(),
        key(2, "z", ValueType::SortedSet, None),
        Event::Value(ValueChunk::SortedSetMembers(vec![
            (b("a"), 0.1),
            (b("b"), 1e300),
            (b("c"), -0.0),
            (b("d"), f64::INFINITY),
            (b("e"), f64::NEG_INFINITY),
            (b("f"), -2.5),
        ])),
        end(),
    ];
    assert_eq!(
        convert(&ev),
        [
            "SELECT 0",
            "DEL l",
            "RPUSH l a b",
            "RPUSH l c",
            "DEL st",
            "SADD st 1 2",
            &format!("PEXPIREAT st {}", NOW + 9),
            "SELECT 2",
            "DEL z",
            "ZADD z 0.1 a 1e300 b -0 c inf d -inf e -2.5 f",
        ]
    );
}

#[test]
fn hash_field_ttls_grouped_and_expired_fields_dropped() {
    let f = |n: &str, t: Option<i64>| HashField {
        field: b(n),
        value: b("v"),
        expire_ms: t,
    };
    let ev = [
        key(0, "h", ValueType::Hash, None),
        Event::Value(ValueChunk::HashFields(vec![
            f("a", None),
            f("b", Some(NOW + 10)),
            f("c", Some(NOW + 10)),
            f("d", Some(NOW - 1)),
            f("e", Some(NOW + 5)),
        ])),
        end(),
    ];
    let mut rw = Rewriter::default();
    assert_eq!(
        run(&mut rw, &ev),
        [
            "SELECT 0",
            "DEL h",
            "HSET h a v b v c v e v",
            &format!("HPEXPIREAT h {} FIELDS 1 e", NOW + 5),
            &format!("HPEXPIREAT h {} FIELDS 2 b c", NOW + 10),
        ]
    );
    assert_eq!(rw.stats().expired_fields_skipped, 1);
    let mut old = Rewriter::builder()
        .target(TargetVersion::redis(3, 2))
        .build();
    assert_eq!(run(&mut old, &ev[..2])[2], "HMSET h a v b v c v e v");
}

fn stream_events(entries: bool) -> Vec<Event> {
    let mut ev = vec![key(0, "s", ValueType::Stream, None)];
    if entries {
        ev.push(Event::Value(ValueChunk::StreamEntries(vec![
            StreamEntry {
                id: sid(1, 0),
                fields: vec![(b("f"), b("1"))],
            },
            StreamEntry {
                id: sid(1, 1),
                fields: vec![(b("f"), b("2")), (b("g"), b("x"))],
            },
        ])));
        ev.push(Event::Value(ValueChunk::StreamEntries(vec![StreamEntry {
            id: sid(3, 0),
            fields: vec![(b("f"), b("3"))],
        }])));
    }
    ev.extend([
        Event::Value(ValueChunk::StreamMeta(StreamMeta {
            length: if entries { 3 } else { 0 },
            last_id: sid(4, 0),
            first_id: Some(sid(1, 0)),
            max_deleted_id: Some(sid(4, 0)),
            entries_added: Some(5),
        })),
        Event::Value(ValueChunk::StreamGroup(StreamGroup {
            name: b("g"),
            last_id: sid(3, 0),
            entries_read: Some(u64::MAX),
        })),
        Event::Value(ValueChunk::StreamPending(vec![
            PendingEntry {
                id: sid(1, 0),
                delivery_time_ms: 111,
                delivery_count: 2,
            },
            PendingEntry {
                id: sid(1, 1),
                delivery_time_ms: 111,
                delivery_count: 2,
            },
        ])),
        Event::Value(ValueChunk::StreamPending(vec![PendingEntry {
            id: sid(3, 0),
            delivery_time_ms: 222,
            delivery_count: 1,
        }])),
        Event::Value(ValueChunk::StreamConsumer(StreamConsumer {
            name: b("alice"),
            seen_time_ms: 5,
            active_time_ms: Some(6),
        })),
        Event::Value(ValueChunk::StreamConsumerPending(vec![
            sid(1, 0),
            sid(1, 1),
        ])),
        Event::Value(ValueChunk::StreamConsumerPending(vec![sid(3, 0)])),
        Event::Value(ValueChunk::StreamConsumer(StreamConsumer {
            name: b("bob"),
            seen_time_ms: 5,
            active_time_ms: None,
        })),
        Event::Value(ValueChunk::StreamGroup(StreamGroup {
            name: b("g2"),
            last_id: sid(0, 0),
            entries_read: Some(0),
        })),
        end(),
    ]);
    ev
}

#[test]
fn stream_with_groups_pel_and_consumers() {
    assert_eq!(
        convert(&stream_events(true)),
        [
            "SELECT 0",
            "DEL s",
            "XADD s 1-0 f 1",
            "XADD s 1-1 f 2 g x",
            "XADD s 3-0 f 3",
            "XSETID s 4-0 ENTRIESADDED 5 MAXDELETEDID 4-0",
            "XGROUP CREATE s g 3-0 ENTRIESREAD -1",
            "XGROUP CREATECONSUMER s g alice",
            "XCLAIM s g alice 0 1-0 1-1 TIME 111 RETRYCOUNT 2 FORCE JUSTID",
            "XCLAIM s g alice 0 3-0 TIME 222 RETRYCOUNT 1 FORCE JUSTID",
            "XGROUP CREATECONSUMER s g bob",
            "XGROUP CREATE s g2 0-0 ENTRIESREAD 0",
        ]
    );
}

#[test]
fn empty_stream_is_created_and_old_targets_get_old_syntax() {
    let mut old = Rewriter::builder()
        .target(TargetVersion::redis(5, 0))
        .build();
    let out = run(&mut old, &stream_events(false));
    assert_eq!(
        out[..7],
        [
            "SELECT 0",
            "DEL s",
            "XGROUP CREATE s redis-sync:tmp-group 0 MKSTREAM",
            "XGROUP DESTROY s redis-sync:tmp-group",
            "XSETID s 4-0",
            "XGROUP CREATE s g 3-0",
            "XREADGROUP GROUP g alice COUNT 1 STREAMS s 0-0",
        ]
    );
}

#[test]
fn pel_is_released_as_consumers_claim() {
    let mut rw = Rewriter::default();
    let ev = stream_events(true);
    let mut out = Vec::new();
    // Up to and including both PEL chunks: three entries held.
    for e in &ev[..7] {
        rw.handle_event(e, NOW, &mut out).unwrap();
    }
    assert_eq!(rw.key.as_ref().unwrap().pel.len(), 3);
    for e in &ev[7..10] {
        rw.handle_event(e, NOW, &mut out).unwrap();
    }
    assert!(
        rw.key.as_ref().unwrap().pel.is_empty(),
        "claimed entries leave the held PEL"
    );
}

#[test]
fn module_values_need_a_payload() {
    let module = ModuleType {
        id: 1,
        name: "ReJSON-RL".into(),
        encver: 3,
    };
    let chunk = Event::Value(ValueChunk::Module {
        module,
        raw: b("raw"),
    });
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    rw.handle_event(&key(0, "j", ValueType::Module, None), NOW, &mut out)
        .unwrap();
    rw.handle_event(&chunk, NOW, &mut out).unwrap();
    let err = rw.handle_event(&end(), NOW, &mut out).unwrap_err();
    assert!(err.to_string().contains("ReJSON-RL"), "{err}");
    assert!(err.to_string().contains("offset 100"), "{err}");
    // The converter carries on with the next key, and a payload makes it a RESTORE.
    let with = Event::KeyEnd {
        restore_payload: Some(b("PAYLOAD")),
    };
    for e in [key(0, "j", ValueType::Module, Some(NOW + 7)), chunk, with] {
        rw.handle_event(&e, NOW, &mut out).unwrap();
    }
    assert_eq!(
        text(&out),
        [
            "SELECT 0",
            &format!("RESTORE j {} PAYLOAD REPLACE ABSTTL", NOW + 7)
        ]
    );
    assert_eq!(rw.stats().failed, 1);
    assert_eq!(rw.stats().restored, 1);
}

#[test]
fn restore_mode_prefers_the_payload_and_falls_back() {
    let mut rw = Rewriter::builder().mode(Mode::Restore).build();
    let mut k = Key {
        db: 1,
        key: b("l"),
        value_type: ValueType::List,
        type_byte: 18,
        expire_ms: None,
        idle_secs: Some(30),
        lfu_freq: None,
        offset: 0,
    };
    let items = Event::Value(ValueChunk::ListItems(vec![b("a")]));
    let with = Event::KeyEnd {
        restore_payload: Some(b("P")),
    };
    let out = run(&mut rw, &[Event::Key(k.clone()), items.clone(), with]);
    assert_eq!(out, ["SELECT 1", "RESTORE l 0 P REPLACE IDLETIME 30"]);
    // Without a payload the held native commands come out.
    let out = run(&mut rw, &[Event::Key(k.clone()), items.clone(), end()]);
    assert_eq!(out, ["DEL l", "RPUSH l a"]);
    // Before 5.0: relative TTL, no ABSTTL / IDLETIME.
    let mut old = Rewriter::builder()
        .mode(Mode::Restore)
        .target(TargetVersion::redis(4, 0))
        .build();
    k.expire_ms = Some(NOW + 1500);
    let with = Event::KeyEnd {
        restore_payload: Some(b("P")),
    };
    let out = run(&mut old, &[Event::Key(k), items, with]);
    assert_eq!(out, ["SELECT 1", "RESTORE l 1500 P REPLACE"]);
}

#[test]
fn restore_hold_is_bounded() {
    let mut rw = Rewriter::builder()
        .mode(Mode::Restore)
        .restore_hold_limit(100)
        .build();
    let mut out = Vec::new();
    rw.handle_event(&key(0, "l", ValueType::List, None), NOW, &mut out)
        .unwrap();
    for _ in 0..10 {
        let chunk = Event::Value(ValueChunk::ListItems(vec![b("0123456789"); 3]));
        rw.handle_event(&chunk, NOW, &mut out).unwrap();
    }
    let held = rw.key.as_ref().unwrap().held.len();
    assert_eq!(held, 0, "past the limit commands stream out");
    assert_eq!(out.len(), 1 + 1 + 10, "SELECT, DEL and ten RPUSH");
}

#[test]
fn functions_and_db_changes() {
    let ev = [
        Event::Function {
            code: b("#!lua name=lib\nredis.register_function('f', function() return 1 end)"),
        },
        key(0, "a", ValueType::String, None),
        Event::Value(ValueChunk::String(b("1"))),
        end(),
        key(0, "b", ValueType::String, None),
        Event::Value(ValueChunk::String(b("2"))),
        end(),
        key(3, "c", ValueType::String, None),
        Event::Value(ValueChunk::String(b("3"))),
        end(),
    ];
    let out = convert(&ev);
    assert!(out[0].starts_with("FUNCTION LOAD REPLACE #!lua name=lib"));
    assert_eq!(
        out[1..],
        ["SELECT 0", "SET a 1", "SET b 2", "SELECT 3", "SET c 3"]
    );
}

#[test]
fn out_of_order_events_are_errors_not_panics() {
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    let e = rw.handle_event(&Event::Value(ValueChunk::ListItems(vec![])), NOW, &mut out);
    assert!(matches!(e, Err(RewriteError::OutOfOrder { .. })));
    assert!(rw.handle_event(&end(), NOW, &mut out).is_err());
    rw.handle_event(&key(0, "s", ValueType::Stream, None), NOW, &mut out)
        .unwrap();
    let c = StreamConsumer {
        name: b("c"),
        seen_time_ms: 0,
        active_time_ms: None,
    };
    let e = rw.handle_event(&Event::Value(ValueChunk::StreamConsumer(c)), NOW, &mut out);
    assert!(e.is_err());
}

#[test]
fn replay_twice_is_idempotent_in_shape() {
    // Every aggregate starts with DEL, so a second replay rebuilds rather than appends.
    let out = convert(&stream_events(true));
    let dels = out.iter().filter(|c| c.starts_with("DEL ")).count();
    assert_eq!(dels, 1);
    assert_eq!(out[1], "DEL s");
}

#[test]
fn old_targets_report_what_they_cannot_take() {
    let mut old = Rewriter::builder()
        .target(TargetVersion::redis(6, 2))
        .build();
    let mut out = Vec::new();
    let f = Event::Function {
        code: b("#!lua name=mylib\nredis.register_function('f', f)"),
    };
    let err = old.handle_event(&f, NOW, &mut out).unwrap_err();
    assert!(err.to_string().contains("mylib"), "{err}");
    assert!(out.is_empty());
    let field = HashField {
        field: b("f"),
        value: b("v"),
        expire_ms: Some(NOW + 1),
    };
    old.handle_event(&key(0, "h", ValueType::Hash, None), NOW, &mut out)
        .unwrap();
    old.handle_event(
        &Event::Value(ValueChunk::HashFields(vec![field])),
        NOW,
        &mut out,
    )
    .unwrap();
    let err = old.handle_event(&end(), NOW, &mut out).unwrap_err();
    assert!(matches!(err, RewriteError::TargetTooOld { .. }), "{err}");
    assert_eq!(
        text(&out),
        ["SELECT 0", "DEL h", "HSET h f v"],
        "the data is still written"
    );
}

#[test]
fn empty_aggregates_get_no_restore() {
    let mut rw = Rewriter::builder().mode(Mode::Restore).build();
    let with = Event::KeyEnd {
        restore_payload: Some(b("P")),
    };
    let out = run(&mut rw, &[key(0, "s", ValueType::Set, None), with]);
    assert_eq!(out, ["SELECT 0", "DEL s"]);
}

#[test]
fn stream_v1_entries_added_defaults_to_length() {
    let meta = StreamMeta {
        length: 7,
        last_id: sid(9, 0),
        first_id: None,
        max_deleted_id: None,
        entries_added: None,
    };
    let ev = [
        key(0, "s", ValueType::Stream, None),
        Event::Value(ValueChunk::StreamMeta(meta)),
        end(),
    ];
    assert_eq!(convert(&ev).last().unwrap(), "XSETID s 9-0 ENTRIESADDED 7");
}

#[test]
fn restore_mode_skips_payloads_with_expired_fields_or_after_a_flush() {
    let mut rw = Rewriter::builder().mode(Mode::Restore).build();
    let f = |n: &str, t: Option<i64>| HashField {
        field: b(n),
        value: b("v"),
        expire_ms: t,
    };
    let chunk = Event::Value(ValueChunk::HashFields(vec![
        f("a", None),
        f("b", Some(NOW - 1)),
    ]));
    let with = Event::KeyEnd {
        restore_payload: Some(b("P")),
    };
    let out = run(
        &mut rw,
        &[key(0, "h", ValueType::Hash, None), chunk, with.clone()],
    );
    assert_eq!(out, ["SELECT 0", "DEL h", "HSET h a v"]);
    // Past the hold limit the natives are complete by the key's end: no second copy.
    let mut rw = Rewriter::builder()
        .mode(Mode::Restore)
        .restore_hold_limit(10)
        .build();
    let items = Event::Value(ValueChunk::ListItems(vec![b("0123456789"); 3]));
    let out = run(&mut rw, &[key(0, "l", ValueType::List, None), items, with]);
    assert_eq!(
        out,
        [
            "SELECT 0",
            "DEL l",
            "RPUSH l 0123456789 0123456789 0123456789"
        ]
    );
}

#[test]
fn stream_v1_groups_get_the_loaders_entries_read() {
    let meta = StreamMeta {
        length: 3,
        last_id: sid(9, 0),
        first_id: Some(sid(2, 0)),
        max_deleted_id: None,
        entries_added: None,
    };
    let group = |ms| {
        Event::Value(ValueChunk::StreamGroup(StreamGroup {
            name: b("g"),
            last_id: sid(ms, 0),
            entries_read: None,
        }))
    };
    let ev = [
        key(0, "s", ValueType::Stream, None),
        Event::Value(ValueChunk::StreamMeta(meta)),
        group(9),
        group(5),
        group(2),
        group(1),
        group(10),
        end(),
    ];
    let out = convert(&ev);
    let reads: Vec<&str> = out
        .iter()
        .filter(|c| c.starts_with("XGROUP CREATE s g"))
        .map(|c| c.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(reads, ["3", "-1", "1", "0", "-1"]);
}

#[test]
fn unknown_entries_read_of_v2_streams_stays_unknown() {
    let meta = StreamMeta {
        length: 0,
        last_id: sid(9, 0),
        first_id: Some(sid(0, 0)),
        max_deleted_id: Some(sid(0, 0)),
        entries_added: Some(4),
    };
    let g = StreamGroup {
        name: b("g"),
        last_id: sid(9, 0),
        entries_read: None,
    };
    let ev = [
        key(0, "s", ValueType::Stream, None),
        Event::Value(ValueChunk::StreamMeta(meta)),
        Event::Value(ValueChunk::StreamGroup(g)),
        end(),
    ];
    assert_eq!(
        convert(&ev).last().unwrap(),
        "XGROUP CREATE s g 9-0 ENTRIESREAD -1"
    );
}

#[test]
fn plain_strings_are_set_in_restore_mode_unless_only_restore_can_say_it_all() {
    let with = |k: Event| {
        vec![
            k,
            Event::Value(ValueChunk::String(b("hello"))),
            Event::KeyEnd {
                restore_payload: Some(b("P")),
            },
        ]
    };
    let mut rw = Rewriter::builder()
        .mode(Mode::Restore)
        .plain_strings(true)
        .build();
    let out = run(&mut rw, &with(key(0, "s", ValueType::String, None)));
    assert_eq!(out, ["SELECT 0", "SET s hello"]);
    let out = run(
        &mut rw,
        &with(key(0, "t", ValueType::String, Some(NOW + 9))),
    );
    assert_eq!(out, [format!("SET t hello PXAT {}", NOW + 9)]);
    // LRU data: only RESTORE sets it.
    let Event::Key(mut idle) = key(0, "i", ValueType::String, None) else {
        unreachable!()
    };
    idle.idle_secs = Some(5);
    let out = run(&mut rw, &with(Event::Key(idle)));
    assert_eq!(out, ["RESTORE i 0 P REPLACE IDLETIME 5"]);
    // A TTL on a target without SET … PXAT (before 6.2): RESTORE, one command.
    let mut old = Rewriter::builder()
        .mode(Mode::Restore)
        .plain_strings(true)
        .target(TargetVersion::redis(6, 0))
        .build();
    let out = run(
        &mut old,
        &with(key(0, "t", ValueType::String, Some(NOW + 9))),
    );
    assert_eq!(
        out,
        [
            "SELECT 0",
            &format!("RESTORE t {} P REPLACE ABSTTL", NOW + 9)
        ]
    );
    // Off (the default): RESTORE.
    let mut rw = Rewriter::builder().mode(Mode::Restore).build();
    let out = run(&mut rw, &with(key(0, "s", ValueType::String, None)));
    assert_eq!(out, ["SELECT 0", "RESTORE s 0 P REPLACE"]);
}
