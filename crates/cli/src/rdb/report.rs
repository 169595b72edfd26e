//! `--format keys|count|memory`: key names, counts per db and type, biggest keys.
//!
//! Sizes in the memory report are approximate on purpose: they are the bytes of the decoded
//! data (key name, members, fields, values, stream IDs), not what a server allocates for them
//! (no allocator overhead, no encoding savings). They rank keys correctly in practice and cost
//! nothing to compute while streaming.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;

use anyhow::Context;
use redis_sync_rdb::{Event, ValueChunk};

use super::{Output, type_name, write_line};

/// The key being read: its name, type (Redis's `TYPE` name, or the module's type name) and
/// sizes so far.
#[derive(Default)]
struct Current {
    db: u64,
    key: Vec<u8>,
    kind: String,
    bytes: u64,
    elements: u64,
    largest: u64,
}

impl Current {
    fn start(&mut self, k: &redis_sync_rdb::Key) {
        self.db = k.db;
        self.key = k.key.to_vec();
        self.kind = type_name(k.value_type).to_string();
        self.bytes = k.key.len() as u64;
        self.elements = 0;
        self.largest = 0;
    }

    /// Adds a chunk's decoded size, and keeps the largest single argument a copy by commands
    /// needs: a string's whole length (`SET` then `APPEND`s build one string), a collection's
    /// largest element, a module value's raw bytes (it only travels as one `RESTORE`).
    fn add(&mut self, c: &ValueChunk) {
        let (bytes, elements, widest): (usize, usize, u64) = match c {
            ValueChunk::String(s) => (s.len(), 0, self.largest + s.len() as u64),
            ValueChunk::ListItems(v) | ValueChunk::SetMembers(v) => (
                v.iter().map(|i| i.len()).sum(),
                v.len(),
                widest(v.iter().map(|i| i.len())),
            ),
            ValueChunk::SortedSetMembers(v) => (
                v.iter().map(|(m, _)| m.len() + 8).sum(),
                v.len(),
                widest(v.iter().map(|(m, _)| m.len())),
            ),
            ValueChunk::HashFields(v) => (
                v.iter()
                    .map(|f| f.field.len() + f.value.len() + f.expire_ms.map_or(0, |_| 8))
                    .sum(),
                v.len(),
                widest(v.iter().map(|f| f.field.len().max(f.value.len()))),
            ),
            ValueChunk::StreamEntries(v) => (
                v.iter()
                    .map(|e| {
                        16 + e
                            .fields
                            .iter()
                            .map(|(f, x)| f.len() + x.len())
                            .sum::<usize>()
                    })
                    .sum(),
                v.len(),
                widest(
                    v.iter()
                        .flat_map(|e| e.fields.iter().map(|(f, x)| f.len().max(x.len()))),
                ),
            ),
            ValueChunk::StreamPending(v) => (v.len() * 32, 0, 0),
            ValueChunk::StreamConsumerPending(v) => (v.len() * 16, 0, 0),
            ValueChunk::StreamGroup(g) => (g.name.len() + 24, 0, 0),
            ValueChunk::StreamConsumer(c) => (c.name.len() + 16, 0, 0),
            ValueChunk::Module { module, raw } => {
                self.kind = module.name.clone();
                (raw.len(), 0, raw.len() as u64)
            }
            _ => (0, 0, 0),
        };
        self.bytes += bytes as u64;
        self.elements += elements as u64;
        self.largest = self.largest.max(widest);
    }
}

/// The largest of some element sizes.
fn widest(sizes: impl Iterator<Item = usize>) -> u64 {
    sizes.max().unwrap_or(0) as u64
}

/// `--format keys`.
pub(crate) struct KeysOutput<W: Write> {
    out: W,
}

impl<W: Write> KeysOutput<W> {
    pub(crate) fn new(out: W) -> Self {
        KeysOutput { out }
    }
}

impl<W: Write> Output for KeysOutput<W> {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        if let Event::Key(k) = ev {
            write_line(&mut self.out, &k.key).context("writing key names")?;
        }
        Ok(())
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("writing key names")
    }
    fn key(&mut self, k: &redis_sync_rdb::Key) -> anyhow::Result<()> {
        write_line(&mut self.out, &k.key).context("writing key names")
    }
}

/// `--format count`: `db<TAB>type<TAB>keys` lines, then `total<TAB>*<TAB>n`.
pub(crate) struct CountOutput<W: Write> {
    out: W,
    db: u64,
    /// The current key's type name (a module's name is only known from its value chunk).
    kind: Cow<'static, str>,
    counts: BTreeMap<(u64, Cow<'static, str>), u64>,
    /// Keys of one (db, type) in a row are counted here and added to `counts` when the run
    /// ends: no map look-up per key.
    run: Option<(u64, Cow<'static, str>, u64)>,
}

impl<W: Write> CountOutput<W> {
    pub(crate) fn new(out: W) -> Self {
        CountOutput {
            out,
            db: 0,
            kind: Cow::Borrowed(""),
            counts: BTreeMap::new(),
            run: None,
        }
    }

    fn add(&mut self, kind: Cow<'static, str>) {
        match &mut self.run {
            Some((db, k, n)) if *db == self.db && *k == kind => *n += 1,
            _ => {
                self.end_run();
                self.run = Some((self.db, kind, 1));
            }
        }
    }

    fn end_run(&mut self) {
        if let Some((db, kind, n)) = self.run.take() {
            *self.counts.entry((db, kind)).or_insert(0) += n;
        }
    }
}

impl<W: Write> Output for CountOutput<W> {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        match ev {
            Event::Key(k) => {
                self.db = k.db;
                self.kind = Cow::Borrowed(type_name(k.value_type));
            }
            Event::Value(ValueChunk::Module { module, .. }) => {
                self.kind = Cow::Owned(module.name.clone());
            }
            Event::KeyEnd { .. } => {
                let kind = std::mem::replace(&mut self.kind, Cow::Borrowed(""));
                self.add(kind);
            }
            _ => {}
        }
        Ok(())
    }

    fn key(&mut self, k: &redis_sync_rdb::Key) -> anyhow::Result<()> {
        let name = type_name(k.value_type);
        // The common case: one more key of the current run.
        if let Some((db, Cow::Borrowed(kind), n)) = &mut self.run
            && *db == k.db
            && std::ptr::eq(*kind, name)
        {
            *n += 1;
            return Ok(());
        }
        self.db = k.db;
        self.add(Cow::Borrowed(name));
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.end_run();
        let mut text = String::from("db\ttype\tkeys\n");
        for ((db, kind), n) in &self.counts {
            text.push_str(&format!("{db}\t{kind}\t{n}\n"));
        }
        let total: u64 = self.counts.values().sum();
        text.push_str(&format!("total\t*\t{total}\n"));
        self.out
            .write_all(text.as_bytes())
            .context("writing counts")?;
        self.out.flush().context("writing counts")
    }
}

/// One key of a top-N list, with its approximate decoded size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Big {
    /// Decoded bytes: key name, members, fields, values (see the module docs).
    pub(crate) bytes: u64,
    pub(crate) elements: u64,
    pub(crate) db: u64,
    /// `TYPE`'s name, or the module type's name.
    pub(crate) kind: String,
    pub(crate) key: Vec<u8>,
    /// The largest single argument a copy by commands needs (see [`Current::add`]): what
    /// must fit the target's `proto-max-bulk-len`.
    pub(crate) largest: u64,
}

/// The biggest keys of a file, fed its decoder events: the `top` biggest by size and,
/// separately, the `top` with the largest single argument (a 2 MB string can matter more to
/// a target than a 100 MB hash of small fields, and need not rank among the biggest), both
/// bounded min-heaps, plus totals per type. Shared by `rdb --format memory` and `check --rdb`.
pub(crate) struct Biggest {
    top: usize,
    cur: Current,
    by_bytes: BinaryHeap<Reverse<Big>>,
    by_largest: BinaryHeap<Reverse<(u64, Big)>>,
    /// type → (keys, bytes, elements)
    totals: BTreeMap<String, (u64, u64, u64)>,
}

impl Biggest {
    pub(crate) fn new(top: usize) -> Self {
        Biggest {
            top,
            cur: Current::default(),
            by_bytes: BinaryHeap::new(),
            by_largest: BinaryHeap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// Takes one decoder event (every event of a key, in order).
    pub(crate) fn event(&mut self, ev: &Event) {
        match ev {
            Event::Key(k) => self.cur.start(k),
            Event::Value(c) => self.cur.add(c),
            Event::KeyEnd { .. } => {
                let c = std::mem::take(&mut self.cur);
                let t = self.totals.entry(c.kind.clone()).or_insert((0, 0, 0));
                t.0 += 1;
                t.1 += c.bytes;
                t.2 += c.elements;
                if self.top == 0 {
                    return;
                }
                let big = Big {
                    bytes: c.bytes,
                    elements: c.elements,
                    db: c.db,
                    kind: c.kind,
                    key: c.key,
                    largest: c.largest,
                };
                let wide = self.by_largest.len() < self.top
                    || self
                        .by_largest
                        .peek()
                        .is_some_and(|Reverse((min, _))| big.largest > *min);
                if wide {
                    if self.by_largest.len() >= self.top {
                        self.by_largest.pop();
                    }
                    self.by_largest.push(Reverse((big.largest, big.clone())));
                }
                if self.by_bytes.len() < self.top {
                    self.by_bytes.push(Reverse(big));
                } else if self
                    .by_bytes
                    .peek()
                    .is_some_and(|Reverse(min)| big.bytes > min.bytes)
                {
                    self.by_bytes.pop();
                    self.by_bytes.push(Reverse(big));
                }
            }
            _ => {}
        }
    }

    /// Keys seen so far.
    pub(crate) fn keys(&self) -> u64 {
        self.totals.values().map(|t| t.0).sum()
    }

    /// The biggest keys by size, biggest first.
    pub(crate) fn by_bytes(&self) -> Vec<Big> {
        let mut v: Vec<Big> = self.by_bytes.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }

    /// The keys with the largest single argument, largest first.
    pub(crate) fn by_largest(&self) -> Vec<Big> {
        let mut v: Vec<(u64, Big)> = self.by_largest.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, b)| b).collect()
    }
}

impl Output for Biggest {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        Biggest::event(self, ev);
        Ok(())
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `--format memory`: the `top` biggest keys and per-type totals.
pub(crate) struct MemoryOutput<W: Write> {
    out: W,
    biggest: Biggest,
}

impl<W: Write> MemoryOutput<W> {
    pub(crate) fn new(out: W, top: usize) -> Self {
        MemoryOutput {
            out,
            biggest: Biggest::new(top),
        }
    }
}

impl<W: Write> Output for MemoryOutput<W> {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        self.biggest.event(ev);
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let mut o = Vec::new();
        o.extend_from_slice(
            b"# sizes are APPROXIMATE: bytes of the decoded data (key, members, fields, values),\n\
              # not the memory a server allocates for them\n",
        );
        o.extend_from_slice(format!("# the {} biggest keys\n", self.biggest.top).as_bytes());
        o.extend_from_slice(b"bytes\telements\tdb\ttype\tkey\n");
        for b in self.biggest.by_bytes() {
            o.extend_from_slice(
                format!("{}\t{}\t{}\t{}\t", b.bytes, b.elements, b.db, b.kind).as_bytes(),
            );
            o.extend_from_slice(&b.key);
            o.push(b'\n');
        }
        o.extend_from_slice(b"# per type\ntype\tkeys\tbytes\telements\n");
        let (mut k, mut by, mut el) = (0, 0, 0);
        for (kind, (keys, bytes, elements)) in &self.biggest.totals {
            o.extend_from_slice(format!("{kind}\t{keys}\t{bytes}\t{elements}\n").as_bytes());
            k += keys;
            by += bytes;
            el += elements;
        }
        o.extend_from_slice(format!("total\t{k}\t{by}\t{el}\n").as_bytes());
        self.out
            .write_all(&o)
            .context("writing the memory report")?;
        self.out.flush().context("writing the memory report")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use redis_sync_rdb::{Key, ValueType};

    use super::*;

    fn key(name: &str, t: ValueType, db: u64) -> Event {
        Event::Key(Key {
            db,
            key: Bytes::copy_from_slice(name.as_bytes()),
            value_type: t,
            type_byte: 0,
            expire_ms: None,
            idle_secs: None,
            lfu_freq: None,
            offset: 0,
        })
    }
    const END: Event = Event::KeyEnd {
        restore_payload: None,
    };

    fn list(n: usize) -> Event {
        Event::Value(ValueChunk::ListItems(vec![
            Bytes::from_static(b"0123456789");
            n
        ]))
    }

    #[test]
    fn memory_top_is_bounded_and_sorted() {
        let mut m = MemoryOutput::new(Vec::new(), 2);
        for (i, n) in [5usize, 50, 1, 20].iter().enumerate() {
            for e in [key(&format!("l{i}"), ValueType::List, 0), list(*n), END] {
                m.event(&e).unwrap();
            }
        }
        assert!(m.biggest.by_bytes.len() <= 2);
        m.finish().unwrap();
        let text = String::from_utf8(m.out).unwrap();
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with("\tl1") || l.ends_with("\tl3"))
            .collect();
        assert_eq!(
            rows,
            ["502\t50\t0\tlist\tl1", "202\t20\t0\tlist\tl3"],
            "{text}"
        );
        assert!(text.contains("list\t4\t"), "{text}");
        assert!(text.contains("APPROXIMATE"));
    }

    /// A long string that is not among the biggest keys is still found by its largest
    /// argument (what `check --rdb` compares with the target's `proto-max-bulk-len`).
    #[test]
    fn the_longest_argument_is_kept_apart_from_the_biggest_keys() {
        let mut b = Biggest::new(1);
        let string = |n| Event::Value(ValueChunk::String(Bytes::from(vec![b'x'; n])));
        for e in [
            key("list", ValueType::List, 0),
            list(50),
            END,
            key("s", ValueType::String, 1),
            string(200),
            string(100),
            END,
        ] {
            b.event(&e);
        }
        let names = |v: Vec<Big>| {
            v.into_iter()
                .map(|b| (b.key, b.largest))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(b.by_bytes()), [(b"list".to_vec(), 10)]);
        assert_eq!(names(b.by_largest()), [(b"s".to_vec(), 300)]);
        assert_eq!(b.keys(), 2);
    }

    #[test]
    fn counts_per_db_and_type() {
        let mut c = CountOutput::new(Vec::new());
        for e in [
            key("a", ValueType::List, 0),
            list(1),
            END,
            key("b", ValueType::List, 0),
            END,
            key("c", ValueType::String, 3),
            END,
            key("d", ValueType::List, 0),
            END,
        ] {
            c.event(&e).unwrap();
        }
        c.finish().unwrap();
        assert_eq!(
            String::from_utf8(c.out).unwrap(),
            "db\ttype\tkeys\n0\tlist\t3\n3\tstring\t1\ntotal\t*\t4\n"
        );
    }
}
