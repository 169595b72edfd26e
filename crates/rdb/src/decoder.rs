//! The streaming decoder: a state machine over the bytes received so far.
//!
//! Input accumulates in one buffer; `pos` marks what has been consumed. Each step of the state
//! machine parses one small item (an opcode record, one element, one stream entry, one chunk of
//! a large string) from `buf[pos..]`, or finds it incomplete and waits, keeping its state: it
//! resumes at the same item after more input, and every item's completeness is known after
//! reading at most a few header bytes, so 1-byte feeding costs no rescans. Consumed bytes are
//! hashed (CRC-64) and copied into a RESTORE payload, when one is being built, when the buffer is
//! compacted at the next [`Decoder::handle_bytes`].

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::blob::{BlobIter, BlobKind, Val};
use crate::event::*;
use crate::lzf::LzfStream;
use crate::module::module_type;
use crate::reader::{Limits, R, Rd, Stop, StrHead};
use crate::{Error, checksum};

/// Newest Redis RDB version this decoder knows.
pub const NEWEST_REDIS_VERSION: u32 = 13;
/// Newest Valkey (`VALKEY` magic) RDB version this decoder knows.
pub const NEWEST_VALKEY_VERSION: u32 = 80;

/// Configures a [`Decoder`].
#[derive(Debug, Clone)]
pub struct DecoderBuilder {
    chunk_budget: usize,
    max_element: u64,
    max_blob: u64,
    allow_newer: bool,
    verify: bool,
    restore: Option<Option<usize>>,
    skip_values: bool,
    key_names: bool,
}

impl Default for DecoderBuilder {
    fn default() -> Self {
        DecoderBuilder {
            chunk_budget: 64 * 1024,
            max_element: 512 * 1024 * 1024,
            max_blob: 512 * 1024 * 1024,
            allow_newer: false,
            verify: true,
            restore: None,
            skip_values: false,
            key_names: true,
        }
    }
}

impl DecoderBuilder {
    /// The defaults: 64 KiB chunks, 512 MiB element and blob limits, checksum verified, newer
    /// versions refused, no RESTORE payloads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Approximate size in bytes of one [`Event::Value`] chunk (default 64 KiB, minimum 1). A
    /// chunk closes as soon as its payload reaches the budget; a large string comes in pieces of
    /// exactly this size.
    pub fn chunk_budget(mut self, bytes: usize) -> Self {
        self.chunk_budget = bytes.max(1);
        self
    }

    /// Largest single element (key, list item, field, member, AUX value, …) accepted, in bytes
    /// (default 512 MiB, Redis's `proto-max-bulk-len`). Top-level string values are streamed and
    /// not subject to it.
    pub fn max_element_size(mut self, bytes: u64) -> Self {
        self.max_element = bytes;
        self
    }

    /// Largest embedded blob (ziplist, listpack, intset, zipmap, stream node, module value raw
    /// bytes) buffered whole, in bytes (default 512 MiB).
    pub fn max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob = bytes;
        self
    }

    /// Try to decode files whose version is newer than this decoder knows (default `false`:
    /// such files are an [`Error::UnsupportedVersion`]).
    pub fn allow_newer_version(mut self, allow: bool) -> Self {
        self.allow_newer = allow;
        self
    }

    /// Compute and check the CRC-64 trailer (default `true`). When off, [`Checksum::NotChecked`]
    /// reports the stored value.
    pub fn verify_checksum(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Produce [`Event::KeyEnd::restore_payload`](Event::KeyEnd) (the DUMP format: type byte,
    /// value bytes as in the file, 2-byte RDB version, CRC-64). With `Some(max)`, values whose
    /// payload would exceed `max` bytes get `None`, and no more than `max` bytes are buffered.
    pub fn restore_payloads(mut self, max_bytes: Option<usize>) -> Self {
        self.restore = Some(max_bytes);
        self
    }

    /// Skip values (default `false`): every key gives its [`Event::Key`] and then directly its
    /// [`Event::KeyEnd`], with no [`Event::Value`] chunk in between, except a module value,
    /// whose single [`ValueChunk::Module`] chunk still comes (it is what names a module type).
    /// For tools that only list or count keys (`redis-sync rdb --format keys|count`).
    ///
    /// The file is still read record by record and its framing checked as in the full mode
    /// (opcodes, lengths, element counts, embedded ziplists/listpacks/intsets, streams), and the
    /// CRC-64 is still verified, so a corrupt or cut file is still an error, at the same offset.
    /// String values are skipped without being copied and LZF strings without being
    /// decompressed: a bad LZF payload (which the full mode reports as [`Error::BadLzf`]) goes
    /// unnoticed in this mode. RESTORE payloads ([`restore_payloads`](Self::restore_payloads))
    /// are unaffected.
    pub fn skip_values(mut self, skip: bool) -> Self {
        self.skip_values = skip;
        self
    }

    /// Fill in [`Key::key`](crate::Key::key) (default `true`). With `false` every key event
    /// carries an empty name, which saves an allocation per key for tools that only count keys;
    /// errors still name the key.
    pub fn key_names(mut self, names: bool) -> Self {
        self.key_names = names;
        self
    }

    /// Builds the decoder.
    pub fn build(self) -> Decoder {
        Decoder {
            inp: Input {
                buf: BytesMut::new(),
                pos: 0,
                base: 0,
                crc: self
                    .verify
                    .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis)),
                cap: None,
            },
            cfg: self,
            state: State::Magic,
            out: VecDeque::new(),
            flavor: Flavor::Redis,
            version: 0,
            db: 0,
            pend: PendingKey::default(),
            cur_key: Vec::new(),
            in_key: false,
            cur_type: 0,
            acc: Acc::None,
            acc_bytes: 0,
            eof: false,
            failed: None,
            crc_value: 0,
        }
    }
}

/// A sans-IO streaming RDB decoder. See the [crate docs](crate) for the call order.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderBuilder,
    inp: Input,
    state: State,
    out: VecDeque<Event>,
    flavor: Flavor,
    version: u32,
    db: u64,
    pend: PendingKey,
    /// The current key's name (a reused buffer: cloning the event's `Bytes` would allocate).
    cur_key: Vec<u8>,
    in_key: bool,
    cur_type: u8,
    acc: Acc,
    acc_bytes: usize,
    eof: bool,
    failed: Option<Error>,
    crc_value: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        DecoderBuilder::new().build()
    }
}

struct Input {
    buf: BytesMut,
    pos: usize,
    base: u64,
    crc: Option<crc_fast::Digest>,
    cap: Option<Capture>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("buffered", &(self.buf.len() - self.pos))
            .field("offset", &(self.base + self.pos as u64))
            .finish()
    }
}

#[derive(Debug)]
struct Capture {
    start: usize,
    data: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl Capture {
    fn append(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self
            .data
            .len()
            .saturating_add(bytes.len())
            .saturating_add(10)
            > self.limit
        {
            self.overflow = true;
            self.data = Vec::new();
            return;
        }
        self.data.extend_from_slice(bytes);
    }
}

impl Input {
    fn rd(&self) -> Rd<'_> {
        Rd::new(&self.buf[self.pos..], self.base + self.pos as u64)
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Hashes and captures the consumed prefix, then drops it.
    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        if let Some(c) = &mut self.crc {
            c.update(&self.buf[..self.pos]);
        }
        if let Some(cap) = &mut self.cap {
            cap.append(&self.buf[cap.start..self.pos]);
            cap.start = 0;
        }
        self.buf.advance(self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
    }
}

#[derive(Debug, Default)]
struct PendingKey {
    start: Option<u64>,
    expire_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// The encoding of the current value, from its type byte and the file's flavor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    List,
    Set,
    Zset,
    Zset2,
    Hash,
    Module2,
    HashZipmap,
    ListZiplist,
    SetIntset,
    ZsetZiplist,
    HashZiplist,
    Quicklist,
    Quicklist2,
    Stream(u8),
    HashListpack,
    ZsetListpack,
    SetListpack,
    HashMetaPreGa,
    HashLpExPreGa,
    HashMeta,
    HashLpEx,
    ValkeyHash2,
}

impl Kind {
    fn value_type(self) -> ValueType {
        use Kind::*;
        match self {
            String => ValueType::String,
            List | ListZiplist | Quicklist | Quicklist2 => ValueType::List,
            Set | SetIntset | SetListpack => ValueType::Set,
            Zset | Zset2 | ZsetZiplist | ZsetListpack => ValueType::SortedSet,
            Hash | HashZipmap | HashZiplist | HashListpack | HashMetaPreGa | HashLpExPreGa
            | HashMeta | HashLpEx | ValkeyHash2 => ValueType::Hash,
            Stream(_) => ValueType::Stream,
            Module2 => ValueType::Module,
        }
    }
}

/// Element layouts of the count-prefixed types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    List,
    Set,
    ZsetText,
    ZsetBin,
    Hash,
    HashTtlAbs,
    HashTtlRel(i64),
    ValkeyHash2,
}

/// How the entries of a blob group into items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    List,
    Set,
    Zset,
    Hash,
    HashTtl,
}

#[derive(Debug)]
enum State {
    Magic,
    Top,
    Value(V),
    ModuleAux {
        module: ModuleType,
        when: u64,
        scan: ModScan,
    },
    KeyMeta {
        left: u64,
        scan: Option<ModScan>,
    },
    SlotImport {
        job_name: Bytes,
        left: u64,
        ranges: Vec<(u64, u64)>,
    },
    Trailer,
    Done,
}

#[derive(Debug)]
enum V {
    Start(Kind),
    StrRaw {
        left: u64,
    },
    StrLzf {
        lzf: Box<LzfStream>,
        left_in: u64,
        at: u64,
    },
    Elems {
        elem: Elem,
        left: u64,
    },
    Blob {
        it: BlobIter,
        shape: Shape,
    },
    Quick {
        left: u64,
        v2: bool,
        node: Option<BlobIter>,
    },
    Stream(Box<StreamSt>),
    Module {
        module: ModuleType,
        scan: ModScan,
    },
}

#[derive(Debug)]
struct StreamSt {
    ver: u8,
    phase: SPhase,
    left: u64,
    node: Option<NodeIter>,
    first_live: Option<StreamId>,
    groups_left: u64,
    consumers_left: u64,
    idmp: Option<StreamIdmp>,
    idmp_bytes: u64,
    iids_left: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SPhase {
    Nodes,
    Meta,
    Groups,
    Pel,
    Consumers,
    ConsumerPel,
    IdmpHead,
    IdmpProducer,
    IdmpIids,
    IdmpTail,
}

/// One item for the chunk accumulator.
enum Item {
    List(Bytes),
    Set(Bytes),
    Zset(Bytes, f64),
    Hash(HashField),
    Entry(StreamEntry),
    Pending(PendingEntry),
    CPending(StreamId),
}

#[derive(Debug)]
enum Acc {
    None,
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    Zset(Vec<(Bytes, f64)>),
    Hash(Vec<HashField>),
    Entries(Vec<StreamEntry>),
    Pending(Vec<PendingEntry>),
    CPending(Vec<StreamId>),
}

/// Resumable skipper of a module opcode stream (RDB-FORMAT.md §9), keeping its raw bytes.
#[derive(Debug, Default)]
struct ModScan {
    raw: Vec<u8>,
}

impl ModScan {
    /// Parses one opcode item; `Ok(true)` after the EOF opcode.
    fn step(&mut self, r: &mut Rd<'_>, max: u64, keep: bool) -> R<bool> {
        let start = r.p;
        let at = r.off();
        let op = r.len("module opcode")?;
        let lim = Limits { max_element: max };
        match op {
            0 => {}
            1 | 2 => {
                r.len("module integer")?;
            }
            3 => {
                r.take(4)?;
            }
            4 => {
                r.take(8)?;
            }
            5 => r.skip_string(lim, "module string")?,
            _ => {
                return Err(Stop::Fail(Error::corrupt(
                    at,
                    format!("unknown module opcode {op} (expected 0-5)"),
                )));
            }
        }
        if keep {
            let n = (r.p - start) as u64;
            if self.raw.len() as u64 + n > max {
                return Err(Stop::Fail(Error::TooLarge {
                    offset: at,
                    what: "module value",
                    size: self.raw.len() as u64 + n,
                    limit: max,
                    setting: "max_blob_size",
                    key: None,
                }));
            }
            self.raw.extend_from_slice(&r.d[start..r.p]);
        }
        Ok(op == 0)
    }
}

/// Walks one stream node: the master entry, then each entry (RDB-FORMAT.md §10).
#[derive(Debug)]
struct NodeIter {
    it: BlobIter,
    master: StreamId,
    fields: Vec<Bytes>,
    left: u64,
}

const STREAM_ITEM_FLAG_DELETED: i64 = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

impl NodeIter {
    fn new(lp: Bytes, master: StreamId, at: u64) -> Result<Self, Error> {
        let err = |w: &str| Error::blob(at, "stream listpack", w.to_string());
        let mut it = BlobIter::new(lp, BlobKind::Listpack, at)?;
        let int = |it: &mut BlobIter, what: &str| -> Result<i64, Error> {
            it.next()?
                .and_then(|v| v.as_int())
                .ok_or_else(|| err(&format!("master entry: missing or non-integer {what}")))
        };
        let count = int(&mut it, "count")?;
        let deleted = int(&mut it, "deleted count")?;
        let nf = int(&mut it, "field count")?;
        if count < 0 || deleted < 0 || nf < 0 {
            return Err(err("master entry: negative count"));
        }
        let mut fields = Vec::with_capacity((nf as usize).min(1024));
        for _ in 0..nf {
            let f = it
                .next()?
                .ok_or_else(|| err("master entry: missing field name"))?;
            fields.push(f.into_bytes());
        }
        if int(&mut it, "terminator")? != 0 {
            return Err(err("master entry: terminator is not 0"));
        }
        Ok(NodeIter {
            it,
            master,
            fields,
            left: (count as u64).saturating_add(deleted as u64),
        })
    }

    /// The next entry: `Some((deleted, entry))`, or `None` at the node's end.
    fn next(&mut self, at: u64) -> Result<Option<(bool, StreamEntry)>, Error> {
        let err = |w: String| Error::blob(at, "stream listpack", w);
        if self.left == 0 {
            if self.it.next()?.is_some() {
                return Err(err("more entries than the master entry counts".into()));
            }
            return Ok(None);
        }
        self.left -= 1;
        let int = |it: &mut BlobIter, what: &str| -> Result<i64, Error> {
            it.next()?
                .and_then(|v| v.as_int())
                .ok_or_else(|| err(format!("entry: missing or non-integer {what}")))
        };
        let flags = int(&mut self.it, "flags")?;
        let ms_d = int(&mut self.it, "ms delta")?;
        let seq_d = int(&mut self.it, "seq delta")?;
        let id = StreamId {
            ms: add_delta(self.master.ms, ms_d).ok_or_else(|| err("entry ID overflows".into()))?,
            seq: add_delta(self.master.seq, seq_d)
                .ok_or_else(|| err("entry ID overflows".into()))?,
        };
        let mut fields = Vec::new();
        let nf;
        if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            nf = self.fields.len() as i64;
            for f in &self.fields {
                let v = self
                    .it
                    .next()?
                    .ok_or_else(|| err("entry: missing value".into()))?;
                fields.push((f.clone(), v.into_bytes()));
            }
        } else {
            nf = int(&mut self.it, "field count")?;
            if nf < 0 {
                return Err(err("entry: negative field count".into()));
            }
            for _ in 0..nf {
                let f = self
                    .it
                    .next()?
                    .ok_or_else(|| err("entry: missing field".into()))?;
                let v = self
                    .it
                    .next()?
                    .ok_or_else(|| err("entry: missing value".into()))?;
                fields.push((f.into_bytes(), v.into_bytes()));
            }
        }
        let lp_count = int(&mut self.it, "lp-count")?;
        let want = if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            nf + 3
        } else {
            nf * 2 + 4
        };
        if lp_count != want {
            return Err(err(format!(
                "entry {id}: lp-count {lp_count}, expected {want}"
            )));
        }
        Ok(Some((
            flags & STREAM_ITEM_FLAG_DELETED != 0,
            StreamEntry { id, fields },
        )))
    }
}

/// [`Rd::str_head`] with the 6-bit length (short strings) decoded inline.
#[inline(always)]
fn short_str_head(r: &mut Rd<'_>, what: &'static str) -> R<StrHead> {
    match r.d.get(r.p) {
        Some(&b) if b < 0x40 => {
            r.p += 1;
            Ok(StrHead::Raw(b as u64))
        }
        _ => r.str_head(what),
    }
}

fn add_delta(base: u64, d: i64) -> Option<u64> {
    if d >= 0 {
        base.checked_add(d as u64)
    } else {
        base.checked_sub(d.unsigned_abs())
    }
}

fn raw_id(b: &[u8]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..16]);
    StreamId {
        ms: u64::from_be_bytes(ms),
        seq: u64::from_be_bytes(seq),
    }
}

/// What a step did.
enum Step {
    /// Consumed input or queued an event: call again.
    Progress,
    /// The next item is not complete yet.
    NeedMore,
    /// The file is complete.
    Done,
}

impl Decoder {
    /// A decoder with the default settings ([`DecoderBuilder::new`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a decoder with non-default settings.
    pub fn builder() -> DecoderBuilder {
        DecoderBuilder::new()
    }

    /// Feeds input bytes (any amount, any split). Then call [`poll_event`](Self::poll_event)
    /// until it returns `Ok(None)`.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.inp.compact();
        self.inp.buf.extend_from_slice(bytes);
    }

    /// Says the input has ended. After this, [`poll_event`](Self::poll_event) returns the
    /// remaining events and then `Ok(None)` if the file was complete, or an
    /// [`Error::Truncated`] naming the offset where it was cut.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// Bytes consumed so far (the file offset of the next unread byte). After
    /// [`Event::End`] it is the RDB's total length; any bytes after it are not consumed.
    pub fn offset(&self) -> u64 {
        self.inp.offset()
    }

    /// The header, once [`Event::Header`] has been returned.
    pub fn header(&self) -> Option<Header> {
        (self.version != 0).then_some(Header {
            flavor: self.flavor,
            version: self.version,
        })
    }

    /// True once [`Event::End`] has been produced.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes received but not consumed yet (after [`Event::End`]: whatever followed the RDB,
    /// e.g. the commands of an AOF with an RDB preamble).
    pub fn buffered(&self) -> &[u8] {
        &self.inp.buf[self.inp.pos..]
    }

    /// A fast path for [`skip_values`](DecoderBuilder::skip_values) decoders: goes through
    /// the plain string keys that are next in the buffer, calling `on_key` once for each (the
    /// call stands for the key's [`Event::Key`] and [`Event::KeyEnd`], which are then not
    /// returned by [`poll_event`](Self::poll_event)), and stops at the first record that is
    /// anything else (another type, an opcode that is not a key's expiry/LRU/LFU, a record
    /// not complete in the buffer, anything invalid), when `on_key` returns `false`, or when
    /// events are already queued. Returns the number of keys passed to `on_key`.
    ///
    /// Always call [`poll_event`](Self::poll_event) after it: that decodes (or reports as an
    /// error) whatever stopped the fast path, exactly as without it, so a caller that calls
    /// `skim_keys` and then `poll_event` in a loop sees the same keys, in the same order, as one
    /// that only calls `poll_event`. Without `skip_values`, it does nothing and returns 0.
    ///
    /// ```
    /// use redis_sync_rdb::{Decoder, Event};
    ///
    /// // REDIS0011, SELECTDB 0, "a" = "1", "b" = "hello", EOF, checksum disabled.
    /// let mut file = b"REDIS0011".to_vec();
    /// file.extend_from_slice(&[0xfe, 0, 0, 1, b'a', 0xc0, 1, 0, 1, b'b', 5]);
    /// file.extend_from_slice(b"hello");
    /// file.push(0xff);
    /// file.extend_from_slice(&[0; 8]);
    ///
    /// let mut d = Decoder::builder().skip_values(true).build();
    /// d.handle_bytes(&file);
    /// d.handle_eof();
    /// let mut names = Vec::new();
    /// loop {
    ///     d.skim_keys(|k| {
    ///         names.push(k.key.clone());
    ///         true
    ///     });
    ///     match d.poll_event()? {
    ///         Some(Event::Key(k)) => names.push(k.key),
    ///         Some(_) => {}
    ///         None => break,
    ///     }
    /// }
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), redis_sync_rdb::Error>(())
    /// ```
    pub fn skim_keys(&mut self, mut on_key: impl FnMut(&crate::event::Key) -> bool) -> u64 {
        if !self.cfg.skip_values
            || self.failed.is_some()
            || !self.out.is_empty()
            || !matches!(self.state, State::Top)
            || self.pend.start.is_some()
            || self.in_key
            || self.inp.cap.is_some()
            || self.cfg.restore.is_some()
        {
            return 0;
        }
        let max = self.cfg.max_element;
        let names = self.cfg.key_names;
        let mut n = 0;
        let mut key = crate::event::Key {
            db: self.db,
            key: Bytes::new(),
            value_type: ValueType::String,
            type_byte: 0,
            expire_ms: None,
            idle_secs: None,
            lfu_freq: None,
            offset: 0,
        };
        loop {
            let at = self.inp.offset();
            let mut r = self.inp.rd();
            key.expire_ms = None;
            key.idle_secs = None;
            key.lfu_freq = None;
            key.offset = at;
            let name = (|| -> R<&[u8]> {
                loop {
                    match r.u8()? {
                        0 => break,
                        0xfc => key.expire_ms = Some(r.i64_le()?),
                        0xfd => key.expire_ms = Some(i32::from_le_bytes(r.array()?) as i64 * 1000),
                        0xf8 => key.idle_secs = Some(r.len("IDLE seconds")?),
                        0xf9 => key.lfu_freq = Some(r.u8()?),
                        _ => return Err(Stop::Incomplete),
                    }
                }
                let StrHead::Raw(len) = short_str_head(&mut r, "key name")? else {
                    return Err(Stop::Incomplete);
                };
                if len > max {
                    return Err(Stop::Incomplete);
                }
                let name = r.take(len as usize)?;
                match short_str_head(&mut r, "string value")? {
                    StrHead::Int(_) => {}
                    StrHead::Raw(len) => {
                        r.take(len as usize)?;
                    }
                    StrHead::Lzf { clen, ulen } => {
                        if clen == 0 || ulen == 0 {
                            return Err(Stop::Incomplete);
                        }
                        r.take(clen as usize)?;
                    }
                }
                Ok(name)
            })();
            // Anything unusual is left to `poll_event`, which reports it properly.
            let Ok(name) = name else { break };
            if names {
                key.key = Bytes::copy_from_slice(name);
            }
            self.inp.pos += r.p;
            n += 1;
            if !on_key(&key) {
                break;
            }
        }
        n
    }

    /// The next event: `Ok(Some(event))`, `Ok(None)` when more input is needed (or, after
    /// [`Event::End`], forever), or the error that stopped decoding (after the events decoded
    /// before it; returned again on every later call).
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            // Events queued before an error are still delivered, so that the events before the
            // error do not depend on how the input was split.
            if let Some(ev) = self.out.pop_front() {
                return Ok(Some(ev));
            }
            if let Some(e) = &self.failed {
                return Err(e.clone());
            }
            match self.step() {
                Ok(Step::Progress) => {}
                Ok(Step::Done) => {
                    if self.out.is_empty() {
                        return Ok(None);
                    }
                }
                Ok(Step::NeedMore) => {
                    if !self.out.is_empty() {
                        continue;
                    }
                    if !self.eof {
                        return Ok(None);
                    }
                    let e = Error::Truncated {
                        offset: self.inp.base + self.inp.buf.len() as u64,
                        context: self.context(),
                        key: None,
                    };
                    self.fail(e);
                }
                Err(e) => self.fail(e),
            }
        }
    }

    fn fail(&mut self, e: Error) {
        let e = e.with_key(self.in_key.then_some(self.cur_key.as_slice()));
        self.failed = Some(e);
    }

    fn context(&self) -> &'static str {
        match &self.state {
            State::Magic => "the magic header",
            State::Top => "an opcode or key record",
            State::Value(V::Start(_)) => "a value header",
            State::Value(V::StrRaw { .. } | V::StrLzf { .. }) => "a string value",
            State::Value(V::Elems { .. }) => "a value element",
            State::Value(V::Blob { .. }) => "a value element",
            State::Value(V::Quick { .. }) => "a quicklist node",
            State::Value(V::Stream(_)) => "a stream",
            State::Value(V::Module { .. }) => "a module value",
            State::ModuleAux { .. } => "module aux data",
            State::KeyMeta { .. } => "key metadata",
            State::SlotImport { .. } => "a slot-import record",
            State::Trailer => "the CRC-64 trailer",
            State::Done => "nothing",
        }
    }

    fn lim(&self) -> Limits {
        Limits {
            max_element: self.cfg.max_element,
        }
    }

    fn step(&mut self) -> Result<Step, Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Magic => self.step_magic(),
            State::Top => self.step_top(),
            State::Value(v) => self.step_value(v),
            State::ModuleAux { module, when, scan } => self.step_module_aux(module, when, scan),
            State::KeyMeta { left, scan } => self.step_key_meta(left, scan),
            State::SlotImport {
                job_name,
                left,
                ranges,
            } => self.step_slot_import(job_name, left, ranges),
            State::Trailer => self.step_trailer(),
            State::Done => {
                self.state = State::Done;
                Ok(Step::Done)
            }
        }
    }

    /// Runs a parse attempt over the unconsumed bytes. On success the bytes it read are
    /// consumed; on `Incomplete` nothing is, and `None` is returned.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Rd<'_>) -> R<T>) -> Result<Option<T>, Error> {
        let mut r = self.inp.rd();
        match f(&mut r) {
            Ok(v) => {
                self.inp.pos += r.p;
                Ok(Some(v))
            }
            Err(Stop::Incomplete) => Ok(None),
            Err(Stop::Fail(e)) => Err(e),
        }
    }

    fn step_magic(&mut self) -> Result<Step, Error> {
        let allow = self.cfg.allow_newer;
        let got = self.attempt(|r| r.array::<9>())?;
        let Some(m) = got else {
            self.state = State::Magic;
            return Ok(Step::NeedMore);
        };
        let bad = || Error::BadMagic {
            found: String::from_utf8_lossy(&m).into_owned(),
        };
        let (flavor, digits, newest, voff) = if &m[..5] == b"REDIS" {
            (Flavor::Redis, &m[5..], NEWEST_REDIS_VERSION, 5)
        } else if &m[..6] == b"VALKEY" {
            (Flavor::Valkey, &m[6..], NEWEST_VALKEY_VERSION, 6)
        } else {
            return Err(bad());
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let version = digits.iter().fold(0u32, |a, d| a * 10 + (d - b'0') as u32);
        let too_old = version == 0 || (flavor == Flavor::Valkey && version < 80);
        if too_old
            || (version > newest && !allow)
            || (flavor == Flavor::Redis && version >= 80 && !allow)
        {
            return Err(Error::UnsupportedVersion {
                version,
                flavor,
                newest,
                offset: voff,
            });
        }
        self.flavor = flavor;
        self.version = version;
        self.out
            .push_back(Event::Header(Header { flavor, version }));
        self.state = State::Top;
        Ok(Step::Progress)
    }

    fn kind_of(&self, t: u8, at: u64) -> Result<Kind, Error> {
        use Kind::*;
        let unsupported = |what: std::string::String| Error::Unsupported {
            offset: at,
            what,
            key: None,
        };
        let valkey = self.flavor == Flavor::Valkey;
        Ok(match t {
            0 => String,
            1 => List,
            2 => Set,
            3 => Zset,
            4 => Hash,
            5 => Zset2,
            6 => {
                return Err(unsupported(
                    "a MODULE_PRE_GA value (type 6, Redis 4.0 release candidates) cannot be skipped without its module; load the file into a server with the module and save it again".into(),
                ));
            }
            7 => Module2,
            9 => HashZipmap,
            10 => ListZiplist,
            11 => SetIntset,
            12 => ZsetZiplist,
            13 => HashZiplist,
            14 => Quicklist,
            15 => Stream(1),
            16 => HashListpack,
            17 => ZsetListpack,
            18 => Quicklist2,
            19 => Stream(2),
            20 => SetListpack,
            21 => Stream(3),
            22 if valkey => ValkeyHash2,
            23 if valkey => {
                return Err(unsupported(
                    "Valkey PATH_HASH (type 23, RDB 81) is not supported".into(),
                ));
            }
            22 => HashMetaPreGa,
            23 => HashLpExPreGa,
            24 if !valkey => HashMeta,
            25 if !valkey => HashLpEx,
            26 if !valkey => Stream(4),
            27..=33 if !valkey => {
                return Err(unsupported(format!(
                    "type {t} (Redis RDB 14+) has a layout this decoder does not know"
                )));
            }
            _ => {
                return Err(Error::UnknownType {
                    byte: t,
                    offset: at,
                    version: self.version,
                    flavor: self.flavor,
                    key: None,
                });
            }
        })
    }

    fn step_top(&mut self) -> Result<Step, Error> {
        let lim = self.lim();
        let at = self.inp.offset();
        let Some(op) = self.inp.buf.get(self.inp.pos).copied() else {
            self.state = State::Top;
            return Ok(Step::NeedMore);
        };
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => {
                        self.state = State::Top;
                        return Ok(Step::NeedMore);
                    }
                }
            };
        }
        match op {
            0xff => {
                self.inp.pos += 1;
                self.inp.compact();
                if let Some(c) = self.inp.crc.take() {
                    self.crc_value = c.finalize();
                }
                if self.version >= 5 {
                    self.state = State::Trailer;
                } else {
                    self.out.push_back(Event::End(Checksum::Absent));
                    self.state = State::Done;
                }
            }
            0xfe => {
                let db = need!(self.attempt(|r| {
                    r.u8()?;
                    r.len("SELECTDB db number")
                })?);
                self.db = db;
                self.out.push_back(Event::SelectDb(db));
                self.state = State::Top;
            }
            0xfd => {
                let t = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok(i32::from_le_bytes(r.array()?))
                })?);
                self.pend.start.get_or_insert(at);
                self.pend.expire_ms = Some(t as i64 * 1000);
                self.state = State::Top;
            }
            0xfc => {
                let t = need!(self.attempt(|r| {
                    r.u8()?;
                    r.i64_le()
                })?);
                self.pend.start.get_or_insert(at);
                self.pend.expire_ms = Some(t);
                self.state = State::Top;
            }
            0xfb => {
                let (a, b) = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok((r.len("RESIZEDB db size")?, r.len("RESIZEDB expires size")?))
                })?);
                self.out.push_back(Event::ResizeDb {
                    db_size: a,
                    expires_size: b,
                });
                self.state = State::Top;
            }
            0xfa => {
                let (key, value) = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok((r.string(lim, "AUX key")?, r.string(lim, "AUX value")?))
                })?);
                self.out.push_back(Event::Aux { key, value });
                self.state = State::Top;
            }
            0xf9 => {
                let f = need!(self.attempt(|r| {
                    r.u8()?;
                    r.u8()
                })?);
                self.pend.start.get_or_insert(at);
                self.pend.freq = Some(f);
                self.state = State::Top;
            }
            0xf8 => {
                let i = need!(self.attempt(|r| {
                    r.u8()?;
                    r.len("IDLE seconds")
                })?);
                self.pend.start.get_or_insert(at);
                self.pend.idle = Some(i);
                self.state = State::Top;
            }
            0xf7 => {
                let (id, op2, when) = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok((
                        r.len("MODULE_AUX module id")?,
                        r.len("MODULE_AUX opcode")?,
                        r.len("MODULE_AUX when")?,
                    ))
                })?);
                if op2 != 2 {
                    return Err(Error::corrupt(
                        at,
                        format!(
                            "MODULE_AUX: expected the UINT opcode 2 before `when`, found {op2}"
                        ),
                    ));
                }
                self.state = State::ModuleAux {
                    module: module_type(id),
                    when,
                    scan: ModScan::default(),
                };
            }
            0xf6 => {
                let code = need!(self.attempt(|r| {
                    r.u8()?;
                    r.string(lim, "function name")?;
                    r.string(lim, "function engine")?;
                    if r.len("function has-description flag")? != 0 {
                        r.string(lim, "function description")?;
                    }
                    r.string(lim, "function code")
                })?);
                self.out.push_back(Event::Function { code });
                self.state = State::Top;
            }
            0xf5 => {
                let code = need!(self.attempt(|r| {
                    r.u8()?;
                    r.string(lim, "function library")
                })?);
                self.out.push_back(Event::Function { code });
                self.state = State::Top;
            }
            0xf4 => {
                let (slot, size, expires_size) = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok((
                        r.len("SLOT_INFO slot")?,
                        r.len("SLOT_INFO size")?,
                        r.len("SLOT_INFO expires size")?,
                    ))
                })?);
                self.out.push_back(Event::SlotInfo {
                    slot,
                    size,
                    expires_size,
                });
                self.state = State::Top;
            }
            0xf3 if self.flavor == Flavor::Valkey => {
                let (job_name, n) = need!(self.attempt(|r| {
                    r.u8()?;
                    Ok((
                        r.string(lim, "SLOT_IMPORT job name")?,
                        r.len("SLOT_IMPORT range count")?,
                    ))
                })?);
                if n > 16384 {
                    return Err(Error::corrupt(
                        at,
                        format!("SLOT_IMPORT with {n} slot ranges (at most 16384)"),
                    ));
                }
                self.state = State::SlotImport {
                    job_name,
                    left: n,
                    ranges: Vec::new(),
                };
            }
            0xf3 => {
                let n = need!(self.attempt(|r| {
                    r.u8()?;
                    r.len("KEY_META class count")
                })?);
                self.pend.start.get_or_insert(at);
                self.state = State::KeyMeta {
                    left: n,
                    scan: None,
                };
            }
            0xf2 => {
                return Err(Error::Unsupported {
                    offset: at,
                    what: match self.flavor {
                        Flavor::Valkey => "Valkey opcode 242 (UPDATE, RDB 81) is not supported",
                        _ => "Redis opcode 242 (HASH_TEMPLATES, RDB 15) is not supported",
                    }
                    .into(),
                    key: None,
                });
            }
            t => {
                let kind = self.kind_of(t, at)?;
                let key = if self.cfg.key_names {
                    let key = need!(self.attempt(|r| {
                        r.u8()?;
                        r.string(lim, "key name")
                    })?);
                    self.cur_key.clear();
                    self.cur_key.extend_from_slice(&key);
                    key
                } else {
                    // Only the reused buffer gets the name (for errors): no allocation.
                    let mut r = self.inp.rd();
                    let got = (|| {
                        r.u8()?;
                        let at = r.off();
                        if let StrHead::Raw(n) = r.str_head("key name")? {
                            crate::reader::check(at, n, lim.max_element, "key name")?;
                            return Ok(Some(r.take(n as usize)?));
                        }
                        // An integer or LZF name: read it the ordinary way below.
                        Ok(None)
                    })();
                    match got {
                        Ok(Some(name)) => {
                            self.cur_key.clear();
                            self.cur_key.extend_from_slice(name);
                            self.inp.pos += r.p;
                        }
                        Ok(None) => {
                            let key = need!(self.attempt(|r| {
                                r.u8()?;
                                r.string(lim, "key name")
                            })?);
                            self.cur_key.clear();
                            self.cur_key.extend_from_slice(&key);
                        }
                        Err(Stop::Incomplete) => need!(None),
                        Err(Stop::Fail(e)) => return Err(e),
                    }
                    Bytes::new()
                };
                let pend = std::mem::take(&mut self.pend);
                self.in_key = true;
                self.cur_type = t;
                if let Some(limit) = self.cfg.restore {
                    self.inp.cap = Some(Capture {
                        start: self.inp.pos,
                        data: vec![t],
                        limit: limit.unwrap_or(usize::MAX),
                        overflow: false,
                    });
                }
                self.out.push_back(Event::Key(crate::event::Key {
                    db: self.db,
                    key,
                    value_type: kind.value_type(),
                    type_byte: t,
                    expire_ms: pend.expire_ms,
                    idle_secs: pend.idle,
                    lfu_freq: pend.freq,
                    offset: pend.start.unwrap_or(at),
                }));
                // Go straight on with the value: a small string key completes in this step.
                return match self.start_value(kind)? {
                    Step::NeedMore => Ok(Step::Progress),
                    s => Ok(s),
                };
            }
        }
        Ok(Step::Progress)
    }

    fn step_trailer(&mut self) -> Result<Step, Error> {
        let at = self.inp.offset();
        let Some(stored) = self.attempt(|r| r.u64_le())? else {
            self.state = State::Trailer;
            return Ok(Step::NeedMore);
        };
        let c = if stored == 0 {
            Checksum::Disabled
        } else if !self.cfg.verify {
            Checksum::NotChecked(stored)
        } else if stored == self.crc_value {
            Checksum::Verified(stored)
        } else {
            return Err(Error::ChecksumMismatch {
                stored,
                computed: self.crc_value,
                offset: at,
            });
        };
        self.out.push_back(Event::End(c));
        self.state = State::Done;
        Ok(Step::Progress)
    }

    fn step_module_aux(
        &mut self,
        module: ModuleType,
        when: u64,
        mut scan: ModScan,
    ) -> Result<Step, Error> {
        let max = self.cfg.max_blob;
        loop {
            match self.attempt(|r| scan.step(r, max, true))? {
                None => {
                    self.state = State::ModuleAux { module, when, scan };
                    return Ok(Step::NeedMore);
                }
                Some(false) => continue,
                Some(true) => break,
            }
        }
        self.out.push_back(Event::ModuleAux {
            module,
            when,
            raw: Bytes::from(scan.raw),
        });
        self.state = State::Top;
        Ok(Step::Progress)
    }

    fn step_key_meta(&mut self, mut left: u64, mut scan: Option<ModScan>) -> Result<Step, Error> {
        let max = self.cfg.max_blob;
        loop {
            if let Some(s) = &mut scan {
                match self.attempt(|r| s.step(r, max, false))? {
                    None => {
                        self.state = State::KeyMeta { left, scan };
                        return Ok(Step::NeedMore);
                    }
                    Some(false) => {}
                    Some(true) => {
                        scan = None;
                        left -= 1;
                    }
                }
            } else if left == 0 {
                self.state = State::Top;
                return Ok(Step::Progress);
            } else {
                if self.attempt(|r| r.array::<4>())?.is_none() {
                    self.state = State::KeyMeta { left, scan };
                    return Ok(Step::NeedMore);
                }
                scan = Some(ModScan::default());
            }
        }
    }

    fn step_slot_import(
        &mut self,
        job_name: Bytes,
        mut left: u64,
        mut ranges: Vec<(u64, u64)>,
    ) -> Result<Step, Error> {
        while left > 0 {
            match self.attempt(|r| Ok((r.len("slot range start")?, r.len("slot range end")?)))? {
                Some(rg) => {
                    ranges.push(rg);
                    left -= 1;
                }
                None => {
                    self.state = State::SlotImport {
                        job_name,
                        left,
                        ranges,
                    };
                    return Ok(Step::NeedMore);
                }
            }
        }
        self.out.push_back(Event::SlotImport { job_name, ranges });
        self.state = State::Top;
        Ok(Step::Progress)
    }

    // ----- values -----

    fn push(&mut self, item: Item) {
        if self.cfg.skip_values {
            return;
        }
        let size;
        macro_rules! put {
            ($variant:ident, $v:expr) => {{
                if !matches!(self.acc, Acc::$variant(_)) {
                    self.flush();
                    self.acc = Acc::$variant(Vec::new());
                }
                if let Acc::$variant(vec) = &mut self.acc {
                    vec.push($v);
                }
            }};
        }
        match item {
            Item::List(b) => {
                size = b.len();
                put!(List, b)
            }
            Item::Set(b) => {
                size = b.len();
                put!(Set, b)
            }
            Item::Zset(b, s) => {
                size = b.len() + 8;
                put!(Zset, (b, s))
            }
            Item::Hash(h) => {
                size = h.field.len() + h.value.len();
                put!(Hash, h)
            }
            Item::Entry(e) => {
                size = 16
                    + e.fields
                        .iter()
                        .map(|(f, v)| f.len() + v.len())
                        .sum::<usize>();
                put!(Entries, e)
            }
            Item::Pending(p) => {
                size = 32;
                put!(Pending, p)
            }
            Item::CPending(p) => {
                size = 16;
                put!(CPending, p)
            }
        }
        // Count a per-item overhead so that many tiny items still close a chunk.
        self.acc_bytes += size + 16;
        if self.acc_bytes >= self.cfg.chunk_budget {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.acc_bytes = 0;
        let chunk = match std::mem::replace(&mut self.acc, Acc::None) {
            Acc::None => return,
            Acc::List(v) => ValueChunk::ListItems(v),
            Acc::Set(v) => ValueChunk::SetMembers(v),
            Acc::Zset(v) => ValueChunk::SortedSetMembers(v),
            Acc::Hash(v) => ValueChunk::HashFields(v),
            Acc::Entries(v) => ValueChunk::StreamEntries(v),
            Acc::Pending(v) => ValueChunk::StreamPending(v),
            Acc::CPending(v) => ValueChunk::StreamConsumerPending(v),
        };
        self.out.push_back(Event::Value(chunk));
    }

    fn chunk(&mut self, c: ValueChunk) {
        if self.cfg.skip_values && !matches!(c, ValueChunk::Module { .. }) {
            return;
        }
        self.flush();
        self.out.push_back(Event::Value(c));
    }

    /// The value is complete: flush, build the RESTORE payload, emit `KeyEnd`.
    fn finish_value(&mut self) -> Step {
        self.flush();
        let payload = self.inp.cap.take().and_then(|mut cap| {
            let (start, pos) = (cap.start, self.inp.pos);
            cap.append(&self.inp.buf[start..pos]);
            if cap.overflow {
                return None;
            }
            let v = u16::try_from(self.version).unwrap_or(u16::MAX);
            cap.data.extend_from_slice(&v.to_le_bytes());
            let crc = checksum::crc64(&cap.data);
            cap.data.extend_from_slice(&crc.to_le_bytes());
            Some(Bytes::from(cap.data))
        });
        self.out.push_back(Event::KeyEnd {
            restore_payload: payload,
        });
        self.in_key = false;
        self.state = State::Top;
        Step::Progress
    }

    fn read_blob(&mut self, kind: BlobKind, pre: usize) -> Result<Option<BlobIter>, Error> {
        let max = self.cfg.max_blob;
        let at = self.inp.offset() + pre as u64;
        let got = self.attempt(|r| {
            r.take(pre)?;
            read_blob_bytes(r, max)
        })?;
        match got {
            None => Ok(None),
            Some(b) => Ok(Some(BlobIter::new(b, kind, at)?)),
        }
    }

    fn step_value(&mut self, v: V) -> Result<Step, Error> {
        macro_rules! wait {
            ($v:expr) => {{
                self.state = State::Value($v);
                return Ok(Step::NeedMore);
            }};
        }
        let lim = self.lim();
        let budget = self.cfg.chunk_budget;
        match v {
            V::Start(kind) => self.start_value(kind),
            V::StrRaw { left } if self.cfg.skip_values => {
                // Skip whatever part of the string is here, without copying.
                let avail = (self.inp.buf.len() - self.inp.pos) as u64;
                let n = avail.min(left);
                if n == 0 {
                    wait!(V::StrRaw { left })
                }
                self.inp.pos += n as usize;
                let left = left - n;
                if left == 0 {
                    return Ok(self.finish_value());
                }
                self.state = State::Value(V::StrRaw { left });
                Ok(Step::Progress)
            }
            V::StrRaw { left } => {
                let n = left.min(budget as u64) as usize;
                let Some(b) = self.attempt(|r| Ok(Bytes::copy_from_slice(r.take(n)?)))? else {
                    wait!(V::StrRaw { left })
                };
                self.chunk(ValueChunk::String(b));
                let left = left - n as u64;
                if left == 0 {
                    return Ok(self.finish_value());
                }
                self.state = State::Value(V::StrRaw { left });
                Ok(Step::Progress)
            }
            V::StrLzf {
                mut lzf,
                mut left_in,
                at,
            } => {
                let avail = (self.inp.buf.len() - self.inp.pos) as u64;
                let n = avail.min(left_in) as usize;
                let input = &self.inp.buf[self.inp.pos..self.inp.pos + n];
                let used = lzf.feed(input, budget).map_err(|what| Error::BadLzf {
                    offset: at,
                    what,
                    key: None,
                })?;
                self.inp.pos += used;
                left_in -= used as u64;
                if lzf.pending() >= budget {
                    let piece = lzf.take(budget);
                    self.chunk(ValueChunk::String(Bytes::from(piece)));
                } else if left_in == 0 {
                    if lzf.produced() != lzf.ulen() {
                        return Err(Error::BadLzf {
                            offset: at,
                            what: format!(
                                "decompressed to {} bytes but the header declares {}",
                                lzf.produced(),
                                lzf.ulen()
                            ),
                            key: None,
                        });
                    }
                    let piece = lzf.take(budget);
                    if !piece.is_empty() {
                        self.chunk(ValueChunk::String(Bytes::from(piece)));
                    }
                    return Ok(self.finish_value());
                } else if used == 0 {
                    if left_in > 0 && (n as u64) >= left_in {
                        // The whole remaining input is here and still cut mid-instruction.
                        return Err(Error::BadLzf {
                            offset: at,
                            what: "the compressed data ends inside an instruction".into(),
                            key: None,
                        });
                    }
                    wait!(V::StrLzf { lzf, left_in, at })
                }
                self.state = State::Value(V::StrLzf { lzf, left_in, at });
                Ok(Step::Progress)
            }
            V::Elems { elem, mut left } => {
                // Several elements per step keeps the per-event overhead low.
                while left > 0 {
                    let at = self.inp.offset();
                    let got = self.attempt(|r| parse_elem(r, elem, lim, at))?;
                    let Some(item) = got else {
                        wait!(V::Elems { elem, left })
                    };
                    left -= 1;
                    self.push(item);
                    if !self.out.is_empty() {
                        break;
                    }
                }
                if left == 0 {
                    return Ok(self.finish_value());
                }
                self.state = State::Value(V::Elems { elem, left });
                Ok(Step::Progress)
            }
            V::Blob { mut it, shape } => {
                loop {
                    match blob_item(&mut it, shape)? {
                        None => return Ok(self.finish_value()),
                        Some(item) => self.push(item),
                    }
                    if !self.out.is_empty() {
                        break;
                    }
                }
                self.state = State::Value(V::Blob { it, shape });
                Ok(Step::Progress)
            }
            V::Quick { left, v2, node } => self.step_quick(left, v2, node),
            V::Stream(st) => self.step_stream(st),
            V::Module { module, mut scan } => {
                let max = self.cfg.max_blob;
                loop {
                    match self.attempt(|r| scan.step(r, max, true))? {
                        None => wait!(V::Module { module, scan }),
                        Some(false) => {}
                        Some(true) => break,
                    }
                }
                self.chunk(ValueChunk::Module {
                    module,
                    raw: Bytes::from(scan.raw),
                });
                Ok(self.finish_value())
            }
        }
    }

    fn start_value(&mut self, kind: Kind) -> Result<Step, Error> {
        use Kind::*;
        let budget = self.cfg.chunk_budget as u64;
        let lim = self.lim();
        macro_rules! wait {
            () => {{
                self.state = State::Value(V::Start(kind));
                return Ok(Step::NeedMore);
            }};
        }
        macro_rules! count {
            ($ctx:expr) => {
                match self.attempt(|r| r.len($ctx))? {
                    Some(n) => n,
                    None => wait!(),
                }
            };
        }
        let elems = |this: &mut Self, elem: Elem, n: u64| {
            if n == 0 {
                this.finish_value()
            } else {
                this.state = State::Value(V::Elems { elem, left: n });
                Step::Progress
            }
        };
        let blob = |this: &mut Self, bk: BlobKind, shape: Shape, pre: usize| match this
            .read_blob(bk, pre)?
        {
            None => Ok(None),
            Some(it) => {
                this.state = State::Value(V::Blob { it, shape });
                Ok(Some(Step::Progress))
            }
        };
        macro_rules! blob {
            ($bk:expr, $shape:expr, $pre:expr) => {
                match blob(self, $bk, $shape, $pre)? {
                    Some(s) => return Ok(s),
                    None => wait!(),
                }
            };
        }
        match kind {
            String if self.cfg.skip_values => {
                let at = self.inp.offset();
                let Some((head, done)) = self.attempt(|r| {
                    let head = r.str_head("string value")?;
                    match head {
                        StrHead::Int(_) => Ok((head, true)),
                        StrHead::Raw(n) | StrHead::Lzf { clen: n, .. } => {
                            if let StrHead::Lzf { clen, ulen } = head
                                && (ulen == 0 || clen == 0)
                            {
                                return Err(Stop::Fail(Error::BadLzf {
                                    offset: at,
                                    what: format!("compressed length {clen}, uncompressed {ulen}"),
                                    key: None,
                                }));
                            }
                            // A whole small string is skipped in this step.
                            let here = (r.d.len() - r.p) as u64;
                            if n <= here {
                                r.take(n as usize)?;
                                return Ok((head, true));
                            }
                            Ok((head, false))
                        }
                    }
                })?
                else {
                    wait!()
                };
                if done {
                    return Ok(self.finish_value());
                }
                let left = match head {
                    StrHead::Raw(n) | StrHead::Lzf { clen: n, .. } => n,
                    StrHead::Int(_) => 0,
                };
                self.state = State::Value(V::StrRaw { left });
                Ok(Step::Progress)
            }
            String => {
                let at = self.inp.offset();
                let Some((head, whole)) = self.attempt(|r| {
                    let head = r.str_head("string value")?;
                    if let StrHead::Raw(n) = head
                        && n <= budget
                    {
                        return Ok((head, Some(Bytes::copy_from_slice(r.take(n as usize)?))));
                    }
                    Ok((head, None))
                })?
                else {
                    wait!()
                };
                if let Some(b) = whole {
                    self.chunk(ValueChunk::String(b));
                    return Ok(self.finish_value());
                }
                match head {
                    StrHead::Int(i) => {
                        self.chunk(ValueChunk::String(Bytes::from(i.to_string())));
                        Ok(self.finish_value())
                    }
                    StrHead::Raw(n) => {
                        if n == 0 {
                            self.chunk(ValueChunk::String(Bytes::new()));
                            return Ok(self.finish_value());
                        }
                        self.state = State::Value(V::StrRaw { left: n });
                        Ok(Step::Progress)
                    }
                    StrHead::Lzf { clen, ulen } => {
                        if ulen == 0 || clen == 0 {
                            return Err(Error::BadLzf {
                                offset: at,
                                what: format!("compressed length {clen}, uncompressed {ulen}"),
                                key: None,
                            });
                        }
                        let _ = budget;
                        self.state = State::Value(V::StrLzf {
                            lzf: Box::new(LzfStream::new(ulen)),
                            left_in: clen,
                            at,
                        });
                        Ok(Step::Progress)
                    }
                }
            }
            List => {
                let n = count!("list length");
                Ok(elems(self, Elem::List, n))
            }
            Set => {
                let n = count!("set size");
                Ok(elems(self, Elem::Set, n))
            }
            Zset => {
                let n = count!("sorted set size");
                Ok(elems(self, Elem::ZsetText, n))
            }
            Zset2 => {
                let n = count!("sorted set size");
                Ok(elems(self, Elem::ZsetBin, n))
            }
            Hash => {
                let n = count!("hash size");
                Ok(elems(self, Elem::Hash, n))
            }
            HashMetaPreGa => {
                let n = count!("hash size");
                Ok(elems(self, Elem::HashTtlAbs, n))
            }
            ValkeyHash2 => {
                let n = count!("hash size");
                Ok(elems(self, Elem::ValkeyHash2, n))
            }
            HashMeta => {
                let Some((min, n)) = self.attempt(|r| Ok((r.i64_le()?, r.len("hash size")?)))?
                else {
                    wait!()
                };
                Ok(elems(self, Elem::HashTtlRel(min), n))
            }
            HashZipmap => blob!(BlobKind::Zipmap, Shape::Hash, 0),
            ListZiplist => blob!(BlobKind::Ziplist, Shape::List, 0),
            SetIntset => blob!(BlobKind::Intset, Shape::Set, 0),
            ZsetZiplist => blob!(BlobKind::Ziplist, Shape::Zset, 0),
            HashZiplist => blob!(BlobKind::Ziplist, Shape::Hash, 0),
            HashListpack => blob!(BlobKind::Listpack, Shape::Hash, 0),
            ZsetListpack => blob!(BlobKind::Listpack, Shape::Zset, 0),
            SetListpack => blob!(BlobKind::Listpack, Shape::Set, 0),
            HashLpExPreGa => blob!(BlobKind::Listpack, Shape::HashTtl, 0),
            HashLpEx => blob!(BlobKind::Listpack, Shape::HashTtl, 8),
            Quicklist | Quicklist2 => {
                let n = count!("quicklist node count");
                if n == 0 {
                    return Ok(self.finish_value());
                }
                self.state = State::Value(V::Quick {
                    left: n,
                    v2: kind == Quicklist2,
                    node: None,
                });
                Ok(Step::Progress)
            }
            Stream(ver) => {
                let n = count!("stream node count");
                self.state = State::Value(V::Stream(Box::new(StreamSt {
                    ver,
                    phase: SPhase::Nodes,
                    left: n,
                    node: None,
                    first_live: None,
                    groups_left: 0,
                    consumers_left: 0,
                    idmp: None,
                    idmp_bytes: 0,
                    iids_left: 0,
                })));
                Ok(Step::Progress)
            }
            Module2 => {
                let Some(id) = self.attempt(|r| r.len("module type id"))? else {
                    wait!()
                };
                let _ = lim;
                self.state = State::Value(V::Module {
                    module: module_type(id),
                    scan: ModScan::default(),
                });
                Ok(Step::Progress)
            }
        }
    }

    fn step_quick(
        &mut self,
        mut left: u64,
        v2: bool,
        mut node: Option<BlobIter>,
    ) -> Result<Step, Error> {
        let lim = self.lim();
        let max = self.cfg.max_blob;
        loop {
            if let Some(it) = &mut node {
                match it.next()? {
                    Some(v) => self.push(Item::List(v.into_bytes())),
                    None => node = None,
                }
                if !self.out.is_empty() {
                    break;
                }
                continue;
            }
            if left == 0 {
                return Ok(self.finish_value());
            }
            let at = self.inp.offset();
            let got = self.attempt(|r| {
                let container = if v2 { r.len("quicklist container")? } else { 2 };
                match container {
                    1 => Ok(Err(r.string(lim, "plain list element")?)),
                    2 => {
                        let at = r.off();
                        Ok(Ok((at, read_blob_bytes(r, max)?)))
                    }
                    c => Err(Stop::Fail(Error::corrupt(
                        at,
                        format!("quicklist node container {c} (expected 1 = plain or 2 = packed)"),
                    ))),
                }
            })?;
            let Some(got) = got else {
                self.state = State::Value(V::Quick { left, v2, node });
                return Ok(Step::NeedMore);
            };
            left -= 1;
            match got {
                Err(plain) => {
                    self.push(Item::List(plain));
                    if !self.out.is_empty() {
                        break;
                    }
                }
                Ok((at, b)) => {
                    if b.is_empty() {
                        return Err(Error::corrupt(at, "empty quicklist node"));
                    }
                    let bk = if v2 {
                        BlobKind::Listpack
                    } else {
                        BlobKind::Ziplist
                    };
                    node = Some(BlobIter::new(b, bk, at)?);
                }
            }
        }
        self.state = State::Value(V::Quick { left, v2, node });
        Ok(Step::Progress)
    }

    fn step_stream(&mut self, mut st: Box<StreamSt>) -> Result<Step, Error> {
        let lim = self.lim();
        let max = self.cfg.max_blob;
        macro_rules! wait {
            () => {{
                self.state = State::Value(V::Stream(st));
                return Ok(Step::NeedMore);
            }};
        }
        macro_rules! get {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => wait!(),
                }
            };
        }
        let ver = st.ver;
        loop {
            if !self.out.is_empty() {
                break;
            }
            match st.phase {
                SPhase::Nodes => {
                    if let Some(node) = &mut st.node {
                        let at = self.inp.offset();
                        match node.next(at)? {
                            Some((deleted, e)) => {
                                if !deleted {
                                    st.first_live.get_or_insert(e.id);
                                    self.push(Item::Entry(e));
                                }
                            }
                            None => st.node = None,
                        }
                        continue;
                    }
                    if st.left == 0 {
                        st.phase = SPhase::Meta;
                        continue;
                    }
                    let at = self.inp.offset();
                    let (key, lp_at, lp) = get!(self.attempt(|r| {
                        let key = r.string(lim, "stream node key")?;
                        let lp_at = r.off();
                        Ok((key, lp_at, read_blob_bytes(r, max)?))
                    })?);
                    if key.len() != 16 {
                        return Err(Error::corrupt(
                            at,
                            format!("stream node key has {} bytes, expected 16", key.len()),
                        ));
                    }
                    if lp.len() <= 7 {
                        return Err(Error::blob(
                            lp_at,
                            "stream listpack",
                            "empty listpack inside stream",
                        ));
                    }
                    st.left -= 1;
                    st.node = Some(NodeIter::new(lp, raw_id(&key), lp_at)?);
                }
                SPhase::Meta => {
                    let (meta, groups) = get!(self.attempt(|r| {
                        let length = r.len("stream length")?;
                        let last_id = StreamId {
                            ms: r.len("stream last id")?,
                            seq: r.len("stream last id")?,
                        };
                        let mut meta = StreamMeta {
                            length,
                            last_id,
                            first_id: None,
                            max_deleted_id: None,
                            entries_added: None,
                        };
                        if ver >= 2 {
                            meta.first_id = Some(StreamId {
                                ms: r.len("stream first id")?,
                                seq: r.len("stream first id")?,
                            });
                            meta.max_deleted_id = Some(StreamId {
                                ms: r.len("stream max deleted id")?,
                                seq: r.len("stream max deleted id")?,
                            });
                            meta.entries_added = Some(r.len("stream entries added")?);
                        }
                        Ok((meta, r.len("stream group count")?))
                    })?);
                    let mut meta = meta;
                    if ver == 1 {
                        meta.first_id = Some(st.first_live.unwrap_or_default());
                    }
                    self.chunk(ValueChunk::StreamMeta(meta));
                    st.groups_left = groups;
                    st.phase = SPhase::Groups;
                }
                SPhase::Groups => {
                    if st.groups_left == 0 {
                        if ver >= 4 {
                            st.phase = SPhase::IdmpHead;
                            continue;
                        }
                        return Ok(self.finish_value());
                    }
                    let (g, pel) = get!(self.attempt(|r| {
                        let name = r.string(lim, "consumer group name")?;
                        let last_id = StreamId {
                            ms: r.len("group last id")?,
                            seq: r.len("group last id")?,
                        };
                        let entries_read = if ver >= 2 {
                            let n = r.len("group entries read")?;
                            (n != u64::MAX).then_some(n)
                        } else {
                            None
                        };
                        let pel = r.len("group PEL size")?;
                        Ok((
                            StreamGroup {
                                name,
                                last_id,
                                entries_read,
                            },
                            pel,
                        ))
                    })?);
                    self.chunk(ValueChunk::StreamGroup(g));
                    st.groups_left -= 1;
                    st.left = pel;
                    st.phase = SPhase::Pel;
                }
                SPhase::Pel => {
                    if st.left == 0 {
                        st.consumers_left = get!(self.attempt(|r| r.len("consumer count"))?);
                        st.phase = SPhase::Consumers;
                        continue;
                    }
                    let p = get!(self.attempt(|r| {
                        let id = raw_id(r.take(16)?);
                        let t = r.i64_le()?;
                        let n = r.len("delivery count")?;
                        Ok(PendingEntry {
                            id,
                            delivery_time_ms: t,
                            delivery_count: n,
                        })
                    })?);
                    st.left -= 1;
                    self.push(Item::Pending(p));
                }
                SPhase::Consumers => {
                    if st.consumers_left == 0 {
                        st.phase = SPhase::Groups;
                        continue;
                    }
                    let (c, pel) = get!(self.attempt(|r| {
                        let name = r.string(lim, "consumer name")?;
                        let seen = r.i64_le()?;
                        let active = if ver >= 3 { Some(r.i64_le()?) } else { None };
                        let pel = r.len("consumer PEL size")?;
                        Ok((
                            StreamConsumer {
                                name,
                                seen_time_ms: seen,
                                active_time_ms: active,
                            },
                            pel,
                        ))
                    })?);
                    self.chunk(ValueChunk::StreamConsumer(c));
                    st.consumers_left -= 1;
                    st.left = pel;
                    st.phase = SPhase::ConsumerPel;
                }
                SPhase::ConsumerPel => {
                    if st.left == 0 {
                        st.phase = SPhase::Consumers;
                        continue;
                    }
                    let id = get!(self.attempt(|r| Ok(raw_id(r.take(16)?)))?);
                    st.left -= 1;
                    self.push(Item::CPending(id));
                }
                SPhase::IdmpHead => {
                    let (d, m, n) = get!(self.attempt(|r| Ok((
                        r.len("IDMP duration")?,
                        r.len("IDMP max entries")?,
                        r.len("IDMP producer count")?
                    )))?);
                    self.flush();
                    st.idmp = Some(StreamIdmp {
                        duration_secs: d,
                        max_entries: m,
                        producers: Vec::new(),
                        iids_added: 0,
                        iids_duplicates: 0,
                    });
                    st.left = n;
                    st.phase = SPhase::IdmpProducer;
                }
                SPhase::IdmpProducer => {
                    if st.left == 0 {
                        st.phase = SPhase::IdmpTail;
                        continue;
                    }
                    let (pid, n) = get!(self.attempt(|r| Ok((
                        r.string(lim, "IDMP producer id")?,
                        r.len("IDMP entry count")?
                    )))?);
                    st.left -= 1;
                    st.idmp_bytes += pid.len() as u64 + 32;
                    if let Some(i) = &mut st.idmp {
                        i.producers.push(IdmpProducer {
                            pid,
                            entries: Vec::new(),
                        });
                    }
                    st.iids_left = n;
                    st.phase = SPhase::IdmpIids;
                }
                SPhase::IdmpIids => {
                    if st.iids_left == 0 {
                        st.phase = SPhase::IdmpProducer;
                        continue;
                    }
                    let at = self.inp.offset();
                    let (iid, id) = get!(self.attempt(|r| Ok((
                        r.string(lim, "IDMP iid")?,
                        StreamId {
                            ms: r.len("IDMP entry id")?,
                            seq: r.len("IDMP entry id")?,
                        }
                    )))?);
                    st.iids_left -= 1;
                    st.idmp_bytes += iid.len() as u64 + 32;
                    if st.idmp_bytes > max {
                        return Err(Error::TooLarge {
                            offset: at,
                            what: "stream IDMP data",
                            size: st.idmp_bytes,
                            limit: max,
                            setting: "max_blob_size",
                            key: None,
                        });
                    }
                    if let Some(p) = st.idmp.as_mut().and_then(|i| i.producers.last_mut()) {
                        p.entries.push((iid, id));
                    }
                }
                SPhase::IdmpTail => {
                    let (a, d) = get!(self.attempt(|r| Ok((
                        r.len("IDMP iids added")?,
                        r.len("IDMP iids duplicates")?
                    )))?);
                    if let Some(mut i) = st.idmp.take() {
                        i.iids_added = a;
                        i.iids_duplicates = d;
                        self.chunk(ValueChunk::StreamIdmp(i));
                    }
                    return Ok(self.finish_value());
                }
            }
        }
        self.state = State::Value(V::Stream(st));
        Ok(Step::Progress)
    }
}

/// Reads a blob string (raw or LZF) whole, bounded by `max`.
fn read_blob_bytes(r: &mut Rd<'_>, max: u64) -> R<Bytes> {
    r.string(Limits { max_element: max }, "embedded blob")
        .map_err(|e| match e {
            Stop::Fail(Error::TooLarge {
                offset,
                what,
                size,
                limit,
                key,
                ..
            }) => Stop::Fail(Error::TooLarge {
                offset,
                what,
                size,
                limit,
                setting: "max_blob_size",
                key,
            }),
            e => e,
        })
}

fn parse_elem(r: &mut Rd<'_>, elem: Elem, lim: Limits, at: u64) -> R<Item> {
    Ok(match elem {
        Elem::List => Item::List(r.string(lim, "list element")?),
        Elem::Set => Item::Set(r.string(lim, "set member")?),
        Elem::ZsetText => {
            let m = r.string(lim, "sorted set member")?;
            Item::Zset(m, r.string_double()?)
        }
        Elem::ZsetBin => {
            let m = r.string(lim, "sorted set member")?;
            let s = r.f64_le()?;
            Item::Zset(m, s)
        }
        Elem::Hash => Item::Hash(HashField {
            field: r.string(lim, "hash field")?,
            value: r.string(lim, "hash value")?,
            expire_ms: None,
        }),
        Elem::HashTtlAbs | Elem::HashTtlRel(_) => {
            let ttl = r.len("hash field TTL")?;
            let expire = match (ttl, elem) {
                (0, _) => None,
                (t, Elem::HashTtlRel(min)) => Some(
                    i64::try_from(t)
                        .ok()
                        .and_then(|t| t.checked_add(min))
                        .and_then(|t| t.checked_sub(1))
                        .ok_or_else(|| {
                            Stop::Fail(Error::corrupt(at, format!("hash field TTL {t} overflows")))
                        })?,
                ),
                (t, _) => Some(i64::try_from(t).map_err(|_| {
                    Stop::Fail(Error::corrupt(at, format!("hash field TTL {t} overflows")))
                })?),
            };
            Item::Hash(HashField {
                field: r.string(lim, "hash field")?,
                value: r.string(lim, "hash value")?,
                expire_ms: expire,
            })
        }
        Elem::ValkeyHash2 => {
            let field = r.string(lim, "hash field")?;
            let value = r.string(lim, "hash value")?;
            let t = r.i64_le()?;
            Item::Hash(HashField {
                field,
                value,
                expire_ms: (t != -1).then_some(t),
            })
        }
    })
}

/// Groups blob entries into one item of the given shape; `None` at the blob's end.
fn blob_item(it: &mut BlobIter, shape: Shape) -> Result<Option<Item>, Error> {
    let Some(first) = it.next()? else {
        return Ok(None);
    };
    let odd = |it: &BlobIter| it.error("entry count is not a multiple of the entries per element");
    Ok(Some(match shape {
        Shape::List => Item::List(first.into_bytes()),
        Shape::Set => Item::Set(first.into_bytes()),
        Shape::Zset => {
            let s = it.next()?.ok_or_else(|| odd(it))?;
            let score = s
                .as_f64()
                .ok_or_else(|| it.error(format!("invalid score {s:?}")))?;
            Item::Zset(first.into_bytes(), score)
        }
        Shape::Hash => {
            let v = it.next()?.ok_or_else(|| odd(it))?;
            Item::Hash(HashField {
                field: first.into_bytes(),
                value: v.into_bytes(),
                expire_ms: None,
            })
        }
        Shape::HashTtl => {
            let v = it.next()?.ok_or_else(|| odd(it))?;
            let t = it.next()?.ok_or_else(|| odd(it))?;
            let t = match t {
                Val::Int(t) => t,
                other => other
                    .as_int()
                    .ok_or_else(|| it.error("hash field TTL is not an integer"))?,
            };
            Item::Hash(HashField {
                field: first.into_bytes(),
                value: v.into_bytes(),
                expire_ms: (t != 0).then_some(t),
            })
        }
    }))
}
