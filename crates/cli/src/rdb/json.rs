//! `--format jsonl|json`: one JSON object per key, written as the value's chunks arrive.
//!
//! The shape is documented in `redis-sync rdb --help`. A key's object is streamed (opened at the
//! key, extended per chunk, closed at its end), so a huge list never sits in memory. A string
//! value's first piece is held until it is known to be the only one: a single piece that is
//! valid UTF-8 is a JSON string, anything else `{"hex": "…"}`.

use std::io::{self, Write};

use anyhow::Context;
use bytes::Bytes;
use redis_sync_rdb::rewrite::score;
use redis_sync_rdb::{Event, StreamId, ValueChunk, ValueType};

use super::{Output, type_name};

/// A streaming JSON writer: a stack of open containers and whether each has items yet.
struct Writer<W: Write> {
    out: W,
    /// (closing byte, has items) per open container.
    stack: Vec<(u8, bool)>,
    /// A member name was just written: the next value needs no comma.
    after_key: bool,
}

impl<W: Write> Writer<W> {
    fn sep(&mut self) -> io::Result<()> {
        if self.after_key {
            self.after_key = false;
            return Ok(());
        }
        if let Some((_, has)) = self.stack.last_mut() {
            if *has {
                self.out.write_all(b",")?;
            }
            *has = true;
        }
        Ok(())
    }
    fn open(&mut self, open: u8, close: u8) -> io::Result<()> {
        self.sep()?;
        self.out.write_all(&[open])?;
        self.stack.push((close, false));
        Ok(())
    }
    fn obj(&mut self) -> io::Result<()> {
        self.open(b'{', b'}')
    }
    fn arr(&mut self) -> io::Result<()> {
        self.open(b'[', b']')
    }
    fn close(&mut self) -> io::Result<()> {
        if let Some((c, _)) = self.stack.pop() {
            self.out.write_all(&[c])?;
        }
        Ok(())
    }
    fn close_to(&mut self, depth: usize) -> io::Result<()> {
        while self.stack.len() > depth {
            self.close()?;
        }
        Ok(())
    }
    fn key(&mut self, k: &str) -> io::Result<()> {
        self.sep()?;
        write_str(&mut self.out, k.as_bytes())?;
        self.out.write_all(b":")?;
        self.after_key = true;
        Ok(())
    }
    fn raw(&mut self, text: &str) -> io::Result<()> {
        self.sep()?;
        self.out.write_all(text.as_bytes())
    }
    fn num(&mut self, n: impl std::fmt::Display) -> io::Result<()> {
        self.raw(&n.to_string())
    }
    fn opt_num(&mut self, n: Option<impl std::fmt::Display>) -> io::Result<()> {
        match n {
            Some(n) => self.num(n),
            None => self.raw("null"),
        }
    }
    /// A byte string: a JSON string when it is UTF-8, else `{"hex": "…"}`.
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.sep()?;
        if std::str::from_utf8(b).is_ok() {
            write_str(&mut self.out, b)
        } else {
            self.out.write_all(b"{\"hex\":\"")?;
            write_hex(&mut self.out, b)?;
            self.out.write_all(b"\"}")
        }
    }
    fn id(&mut self, id: StreamId) -> io::Result<()> {
        self.raw(&format!("\"{id}\""))
    }
    fn field(&mut self, k: &str, v: impl std::fmt::Display) -> io::Result<()> {
        self.key(k)?;
        self.num(v)
    }
}

fn write_hex(out: &mut impl Write, b: &[u8]) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = Vec::with_capacity(b.len() * 2);
    for &x in b {
        s.push(HEX[usize::from(x >> 4)]);
        s.push(HEX[usize::from(x & 15)]);
    }
    out.write_all(&s)
}

/// Writes valid UTF-8 `b` as a quoted JSON string.
fn write_str(out: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let mut s = Vec::with_capacity(b.len() + 2);
    s.push(b'"');
    for &c in b {
        match c {
            b'"' => s.extend_from_slice(b"\\\""),
            b'\\' => s.extend_from_slice(b"\\\\"),
            b'\n' => s.extend_from_slice(b"\\n"),
            b'\r' => s.extend_from_slice(b"\\r"),
            b'\t' => s.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => s.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => s.push(c),
        }
    }
    s.push(b'"');
    out.write_all(&s)
}

/// Where in a stream value the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamAt {
    Entries,
    Groups,
    GroupPending,
    Consumer,
}

/// The `jsonl` / `json` output.
pub(crate) struct JsonOutput<W: Write> {
    w: Writer<W>,
    lines: bool,
    records: u64,
    /// Stack depth of the open `"value"` container's parent (the key object).
    record_depth: usize,
    string_first: Option<Bytes>,
    string_pieces: u64,
    stream: StreamAt,
    /// Depth of the `groups` array (inside it: group objects).
    groups_depth: usize,
    value_type: Option<ValueType>,
}

impl<W: Write> JsonOutput<W> {
    pub(crate) fn new(out: W, lines: bool) -> Self {
        JsonOutput {
            w: Writer {
                out,
                stack: Vec::new(),
                after_key: false,
            },
            lines,
            records: 0,
            record_depth: 0,
            string_first: None,
            string_pieces: 0,
            stream: StreamAt::Entries,
            groups_depth: 0,
            value_type: None,
        }
    }

    fn start(&mut self, k: &redis_sync_rdb::Key) -> io::Result<()> {
        if !self.lines {
            let lead: &[u8] = if self.records == 0 { b"[\n" } else { b",\n" };
            self.w.out.write_all(lead)?;
        }
        self.records += 1;
        self.record_depth = self.w.stack.len();
        self.w.obj()?;
        self.w.field("db", k.db)?;
        self.w.key("key")?;
        self.w.bytes(&k.key)?;
        self.w.key("type")?;
        self.w.raw(&format!("\"{}\"", type_name(k.value_type)))?;
        self.w.field("rdb_type", k.type_byte)?;
        self.w.key("expire_ms")?;
        self.w.opt_num(k.expire_ms)?;
        if let Some(idle) = k.idle_secs {
            self.w.field("idle_secs", idle)?;
        }
        if let Some(f) = k.lfu_freq {
            self.w.field("lfu_freq", f)?;
        }
        self.w.key("value")?;
        self.value_type = Some(k.value_type);
        self.string_first = None;
        self.string_pieces = 0;
        match k.value_type {
            ValueType::List | ValueType::Set | ValueType::SortedSet | ValueType::Hash => {
                self.w.arr()?
            }
            ValueType::Stream => {
                self.w.obj()?;
                self.w.key("entries")?;
                self.w.arr()?;
                self.stream = StreamAt::Entries;
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes the current group object, giving it an empty `consumers` if it had none.
    fn end_group(&mut self) -> io::Result<()> {
        match self.stream {
            StreamAt::GroupPending => {
                self.w.close_to(self.groups_depth + 1)?;
                self.w.key("consumers")?;
                self.w.raw("[]")?;
            }
            StreamAt::Consumer => {}
            _ => return Ok(()),
        }
        self.w.close_to(self.groups_depth)
    }

    fn chunk(&mut self, c: &ValueChunk) -> io::Result<()> {
        let w = &mut self.w;
        match c {
            ValueChunk::String(piece) => {
                self.string_pieces += 1;
                if self.string_pieces == 1 {
                    self.string_first = Some(piece.clone());
                    return Ok(());
                }
                if let Some(first) = self.string_first.take() {
                    w.sep()?;
                    w.out.write_all(b"{\"hex\":\"")?;
                    write_hex(&mut w.out, &first)?;
                }
                write_hex(&mut w.out, piece)?;
            }
            ValueChunk::ListItems(items) | ValueChunk::SetMembers(items) => {
                for i in items {
                    w.bytes(i)?;
                }
            }
            ValueChunk::SortedSetMembers(pairs) => {
                for (m, s) in pairs {
                    w.arr()?;
                    w.bytes(m)?;
                    if s.is_finite() {
                        w.raw(&score(*s))?;
                    } else {
                        w.raw(&format!("\"{}\"", score(*s)))?;
                    }
                    w.close()?;
                }
            }
            ValueChunk::HashFields(fields) => {
                for f in fields {
                    w.arr()?;
                    w.bytes(&f.field)?;
                    w.bytes(&f.value)?;
                    if let Some(t) = f.expire_ms {
                        w.num(t)?;
                    }
                    w.close()?;
                }
            }
            ValueChunk::StreamEntries(entries) => {
                for e in entries {
                    w.obj()?;
                    w.key("id")?;
                    w.id(e.id)?;
                    w.key("fields")?;
                    w.arr()?;
                    for (f, v) in &e.fields {
                        w.arr()?;
                        w.bytes(f)?;
                        w.bytes(v)?;
                        w.close()?;
                    }
                    w.close()?;
                    w.close()?;
                }
            }
            ValueChunk::StreamMeta(m) => {
                // Close the entries array: back to the stream object.
                w.close_to(self.record_depth + 2)?;
                w.field("length", m.length)?;
                w.key("last_id")?;
                w.id(m.last_id)?;
                for (name, id) in [
                    ("first_id", m.first_id),
                    ("max_deleted_id", m.max_deleted_id),
                ] {
                    w.key(name)?;
                    match id {
                        Some(id) => w.id(id)?,
                        None => w.raw("null")?,
                    }
                }
                w.key("entries_added")?;
                w.opt_num(m.entries_added)?;
                w.key("groups")?;
                w.arr()?;
                self.groups_depth = w.stack.len();
                self.stream = StreamAt::Groups;
            }
            ValueChunk::StreamGroup(g) => {
                self.end_group()?;
                let w = &mut self.w;
                w.obj()?;
                w.key("name")?;
                w.bytes(&g.name)?;
                w.key("last_id")?;
                w.id(g.last_id)?;
                w.key("entries_read")?;
                // u64::MAX is the server's "unknown" (-1).
                w.opt_num(g.entries_read.map(|n| i64::try_from(n).unwrap_or(-1)))?;
                w.key("pending")?;
                w.arr()?;
                self.stream = StreamAt::GroupPending;
            }
            ValueChunk::StreamPending(pel) => {
                for p in pel {
                    w.obj()?;
                    w.key("id")?;
                    w.id(p.id)?;
                    w.field("delivery_time_ms", p.delivery_time_ms)?;
                    w.field("delivery_count", p.delivery_count)?;
                    w.close()?;
                }
            }
            ValueChunk::StreamConsumer(c) => {
                if self.stream == StreamAt::GroupPending {
                    w.close_to(self.groups_depth + 1)?;
                    w.key("consumers")?;
                    w.arr()?;
                } else {
                    // Close the previous consumer: back to the consumers array.
                    w.close_to(self.groups_depth + 2)?;
                }
                w.obj()?;
                w.key("name")?;
                w.bytes(&c.name)?;
                w.field("seen_time_ms", c.seen_time_ms)?;
                w.key("active_time_ms")?;
                w.opt_num(c.active_time_ms)?;
                w.key("pending")?;
                w.arr()?;
                self.stream = StreamAt::Consumer;
            }
            ValueChunk::StreamConsumerPending(ids) => {
                for id in ids {
                    w.id(*id)?;
                }
            }
            ValueChunk::Module { module, raw } => {
                w.obj()?;
                w.key("module")?;
                w.bytes(module.name.as_bytes())?;
                w.field("encver", module.encver)?;
                w.field("raw_len", raw.len())?;
                w.close()?;
            }
            // Redis 8.6 idempotent-producer state: not part of the JSON shape.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        match self.value_type {
            Some(ValueType::String) => match (self.string_pieces, self.string_first.take()) {
                (0, _) => self.w.bytes(b"")?,
                (_, Some(first)) => self.w.bytes(&first)?,
                // Several pieces: the hex string is open; close it.
                (_, None) => self.w.out.write_all(b"\"}")?,
            },
            Some(ValueType::Stream) => self.end_group()?,
            _ => {}
        }
        if self.w.after_key {
            // A value that got no chunk at all (a module value without its chunk): null.
            self.w.raw("null")?;
        }
        self.w.close_to(self.record_depth)?;
        if self.lines {
            self.w.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

impl<W: Write> Output for JsonOutput<W> {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        let r = match ev {
            Event::Key(k) => self.start(k),
            Event::Value(c) => self.chunk(c),
            Event::KeyEnd { .. } => self.end(),
            _ => Ok(()),
        };
        r.context("writing JSON")
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if !self.lines {
            let tail: &[u8] = if self.records == 0 { b"[]\n" } else { b"\n]\n" };
            self.w.out.write_all(tail).context("writing JSON")?;
        }
        self.w.out.flush().context("writing JSON")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use redis_sync_rdb::{
        HashField, Key, PendingEntry, StreamConsumer, StreamEntry, StreamGroup, StreamMeta,
    };

    use super::*;

    fn key(t: ValueType) -> Event {
        Event::Key(Key {
            db: 1,
            key: Bytes::from_static(b"k"),
            value_type: t,
            type_byte: 0,
            expire_ms: None,
            idle_secs: None,
            lfu_freq: None,
            offset: 0,
        })
    }

    fn render(lines: bool, events: &[Event]) -> String {
        let mut o = JsonOutput::new(Vec::new(), lines);
        for e in events {
            o.event(e).unwrap();
        }
        o.finish().unwrap();
        String::from_utf8(o.w.out).unwrap()
    }

    const END: Event = Event::KeyEnd {
        restore_payload: None,
    };

    #[test]
    fn strings_text_binary_and_pieces() {
        let s = |v: &'static [u8]| Event::Value(ValueChunk::String(Bytes::from_static(v)));
        let out = render(true, &[key(ValueType::String), s(b"a\"b\n"), END]);
        assert_eq!(
            out,
            "{\"db\":1,\"key\":\"k\",\"type\":\"string\",\"rdb_type\":0,\"expire_ms\":null,\"value\":\"a\\\"b\\n\"}\n"
        );
        let out = render(true, &[key(ValueType::String), s(b"\xff"), END]);
        assert!(out.contains("\"value\":{\"hex\":\"ff\"}}"), "{out}");
        let out = render(true, &[key(ValueType::String), s(b"ab"), s(b"c"), END]);
        assert!(out.contains("\"value\":{\"hex\":\"616263\"}}"), "{out}");
    }

    #[test]
    fn aggregates() {
        let b = |v: &'static str| Bytes::from_static(v.as_bytes());
        let out = render(
            false,
            &[
                key(ValueType::SortedSet),
                Event::Value(ValueChunk::SortedSetMembers(vec![
                    (b("a"), 0.1),
                    (b("b"), f64::NEG_INFINITY),
                ])),
                END,
                key(ValueType::Hash),
                Event::Value(ValueChunk::HashFields(vec![
                    HashField {
                        field: b("f"),
                        value: b("v"),
                        expire_ms: None,
                    },
                    HashField {
                        field: b("g"),
                        value: b("w"),
                        expire_ms: Some(5),
                    },
                ])),
                END,
            ],
        );
        assert!(out.starts_with("[\n{"), "{out}");
        assert!(
            out.contains("\"value\":[[\"a\",0.1],[\"b\",\"-inf\"]]}"),
            "{out}"
        );
        assert!(
            out.contains("\"value\":[[\"f\",\"v\"],[\"g\",\"w\",5]]}"),
            "{out}"
        );
        assert!(out.ends_with("}\n]\n"), "{out}");
    }

    #[test]
    fn stream_shape() {
        let b = |v: &'static str| Bytes::from_static(v.as_bytes());
        let id = |ms| StreamId { ms, seq: 0 };
        let out = render(
            true,
            &[
                key(ValueType::Stream),
                Event::Value(ValueChunk::StreamEntries(vec![StreamEntry {
                    id: id(1),
                    fields: vec![(b("f"), b("v"))],
                }])),
                Event::Value(ValueChunk::StreamMeta(StreamMeta {
                    length: 1,
                    last_id: id(1),
                    first_id: Some(id(1)),
                    max_deleted_id: None,
                    entries_added: Some(1),
                })),
                Event::Value(ValueChunk::StreamGroup(StreamGroup {
                    name: b("g"),
                    last_id: id(1),
                    entries_read: Some(u64::MAX),
                })),
                Event::Value(ValueChunk::StreamPending(vec![PendingEntry {
                    id: id(1),
                    delivery_time_ms: 7,
                    delivery_count: 2,
                }])),
                Event::Value(ValueChunk::StreamConsumer(StreamConsumer {
                    name: b("c"),
                    seen_time_ms: 8,
                    active_time_ms: None,
                })),
                Event::Value(ValueChunk::StreamConsumerPending(vec![id(1)])),
                Event::Value(ValueChunk::StreamGroup(StreamGroup {
                    name: b("g2"),
                    last_id: id(0),
                    entries_read: None,
                })),
                END,
            ],
        );
        let expected = concat!(
            "{\"db\":1,\"key\":\"k\",\"type\":\"stream\",\"rdb_type\":0,\"expire_ms\":null,",
            "\"value\":{\"entries\":[{\"id\":\"1-0\",\"fields\":[[\"f\",\"v\"]]}],",
            "\"length\":1,\"last_id\":\"1-0\",\"first_id\":\"1-0\",\"max_deleted_id\":null,",
            "\"entries_added\":1,\"groups\":[",
            "{\"name\":\"g\",\"last_id\":\"1-0\",\"entries_read\":-1,",
            "\"pending\":[{\"id\":\"1-0\",\"delivery_time_ms\":7,\"delivery_count\":2}],",
            "\"consumers\":[{\"name\":\"c\",\"seen_time_ms\":8,\"active_time_ms\":null,",
            "\"pending\":[\"1-0\"]}]},",
            "{\"name\":\"g2\",\"last_id\":\"0-0\",\"entries_read\":null,\"pending\":[],",
            "\"consumers\":[]}]}}\n"
        );
        assert_eq!(out, expected);
    }
}
