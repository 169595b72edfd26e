//! Embedded blob encodings (RDB-FORMAT.md §8): ziplist, listpack, intset and zipmap.
//!
//! Each is one RDB string in the file; the decoder buffers it (bounded by
//! `max_blob_size`), checks its header against its length, and then walks it one entry at a
//! time with [`BlobIter`], checking every entry's bounds, the end marker and the declared count.

use bytes::Bytes;

use crate::Error;

/// One entry of a blob.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(Bytes),
    Int(i64),
}

impl Val {
    /// The entry as bytes (integers as decimal text, as Redis returns them).
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Val::Str(b) => b,
            Val::Int(i) => Bytes::from(i.to_string()),
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Str(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Str(b) => crate::reader::parse_double(b),
        }
    }
}

/// Which encoding a blob uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobKind {
    Ziplist,
    Listpack,
    Intset,
    Zipmap,
}

impl BlobKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlobKind::Ziplist => "ziplist",
            BlobKind::Listpack => "listpack",
            BlobKind::Intset => "intset",
            BlobKind::Zipmap => "zipmap",
        }
    }
}

/// A validated walk over one blob.
#[derive(Debug)]
pub(crate) struct BlobIter {
    data: Bytes,
    kind: BlobKind,
    pos: usize,
    /// Declared entry count, when the header has one.
    declared: Option<u64>,
    /// Entries returned so far.
    seen: u64,
    /// Ziplist: size of the previous entry (checked against the next entry's prevlen).
    prev_size: usize,
    /// Ziplist: where the last entry started (checked against zltail at the end).
    last_start: usize,
    /// Intset: bytes per item.
    width: usize,
    /// Zipmap: the next entry is a value (its free byte follows the length).
    zm_value: bool,
    done: bool,
    /// File offset of the blob's string record, for errors.
    at: u64,
}

impl BlobIter {
    /// Checks the header and prepares the walk.
    pub(crate) fn new(data: Bytes, kind: BlobKind, at: u64) -> Result<Self, Error> {
        let err = |what: String| Error::blob(at, kind.name(), what);
        let len = data.len();
        let mut it = BlobIter {
            data,
            kind,
            pos: 0,
            declared: None,
            seen: 0,
            prev_size: 0,
            last_start: 0,
            width: 0,
            zm_value: false,
            done: false,
            at,
        };
        let d = &it.data;
        match kind {
            BlobKind::Ziplist => {
                if len < 11 {
                    return Err(err(format!("{len} bytes is shorter than an empty ziplist")));
                }
                let zlbytes = u32_le(d, 0) as usize;
                if zlbytes != len {
                    return Err(err(format!(
                        "header says {zlbytes} bytes but the string has {len}"
                    )));
                }
                let zltail = u32_le(d, 4) as usize;
                if zltail >= len {
                    return Err(err(format!("tail offset {zltail} outside {len} bytes")));
                }
                let n = u16_le(d, 8);
                if n != u16::MAX {
                    it.declared = Some(n as u64);
                }
                it.pos = 10;
                it.last_start = 10;
            }
            BlobKind::Listpack => {
                if len < 7 {
                    return Err(err(format!(
                        "{len} bytes is shorter than an empty listpack"
                    )));
                }
                let total = u32_le(d, 0) as usize;
                if total != len {
                    return Err(err(format!(
                        "header says {total} bytes but the string has {len}"
                    )));
                }
                let n = u16_le(d, 4);
                if n != u16::MAX {
                    it.declared = Some(n as u64);
                }
                it.pos = 6;
            }
            BlobKind::Intset => {
                if len < 8 {
                    return Err(err(format!("{len} bytes is shorter than an intset header")));
                }
                let width = u32_le(d, 0) as usize;
                if !matches!(width, 2 | 4 | 8) {
                    return Err(err(format!("encoding {width} is not 2, 4 or 8")));
                }
                let n = u32_le(d, 4) as u64;
                let want = (n as u128) * (width as u128) + 8;
                if want != len as u128 {
                    return Err(err(format!(
                        "{n} items of {width} bytes need {want} bytes but the string has {len}"
                    )));
                }
                it.width = width;
                it.declared = Some(n);
                it.pos = 8;
            }
            BlobKind::Zipmap => {
                if len < 2 {
                    return Err(err(format!("{len} bytes is shorter than an empty zipmap")));
                }
                let n = d[0];
                if n < 254 {
                    // zmlen counts pairs; we count entries (keys and values).
                    it.declared = Some(n as u64 * 2);
                }
                it.pos = 1;
            }
        }
        Ok(it)
    }

    fn err(&self, what: String) -> Error {
        Error::blob(self.at, self.kind.name(), what)
    }

    /// An error about this blob.
    pub(crate) fn error(&self, what: impl Into<String>) -> Error {
        Error::blob(self.at, self.kind.name(), what)
    }

    /// The next entry, `None` at a correct end.
    pub(crate) fn next(&mut self) -> Result<Option<Val>, Error> {
        if self.done {
            return Ok(None);
        }
        let v = match self.kind {
            BlobKind::Ziplist => self.next_ziplist()?,
            BlobKind::Listpack => self.next_listpack()?,
            BlobKind::Intset => self.next_intset()?,
            BlobKind::Zipmap => self.next_zipmap()?,
        };
        match v {
            Some(v) => {
                self.seen += 1;
                if let Some(n) = self.declared
                    && self.seen > n
                {
                    return Err(self.err(format!("more entries than the {n} the header declares")));
                }
                Ok(Some(v))
            }
            None => {
                self.done = true;
                if let Some(n) = self.declared
                    && n != self.seen
                {
                    return Err(self.err(format!(
                        "header declares {n} entries but {} were found",
                        self.seen
                    )));
                }
                Ok(None)
            }
        }
    }

    /// Checks that the end marker at `pos` is the last byte.
    fn end_at(&mut self) -> Result<(), Error> {
        if self.pos + 1 != self.data.len() {
            return Err(self.err(format!(
                "end marker at byte {} but the blob has {} bytes",
                self.pos,
                self.data.len()
            )));
        }
        Ok(())
    }

    fn get(&self, a: usize, n: usize) -> Result<&[u8], Error> {
        a.checked_add(n)
            .and_then(|e| self.data.get(a..e))
            .ok_or_else(|| {
                self.err(format!(
                    "entry at byte {a} needs {n} bytes, past the end ({} bytes)",
                    self.data.len()
                ))
            })
    }

    fn byte(&self, a: usize) -> Result<u8, Error> {
        Ok(self.get(a, 1)?[0])
    }

    fn next_ziplist(&mut self) -> Result<Option<Val>, Error> {
        let start = self.pos;
        let b = self.byte(start)?;
        if b == 0xff {
            self.end_at()?;
            let zltail = u32_le(&self.data, 4) as usize;
            if zltail != self.last_start {
                return Err(self.err(format!(
                    "tail offset {zltail} but the last entry starts at {}",
                    self.last_start
                )));
            }
            return Ok(None);
        }
        // prevlen
        let (prevlen, mut p) = if b < 254 {
            (b as usize, start + 1)
        } else if b == 254 {
            (u32_le(self.get(start + 1, 4)?, 0) as usize, start + 5)
        } else {
            return Err(self.err(format!("invalid prevlen byte {b:#04x} at byte {start}")));
        };
        if prevlen != self.prev_size {
            return Err(self.err(format!(
                "entry at byte {start} says the previous entry has {prevlen} bytes, it has {}",
                self.prev_size
            )));
        }
        let e = self.byte(p)?;
        let v = match e >> 6 {
            0 => {
                let n = (e & 0x3f) as usize;
                let s = self.data.slice(p + 1..p + 1 + self.get(p + 1, n)?.len());
                p += 1 + n;
                Val::Str(s)
            }
            1 => {
                let n = (((e & 0x3f) as usize) << 8) | self.byte(p + 1)? as usize;
                self.get(p + 2, n)?;
                let s = self.data.slice(p + 2..p + 2 + n);
                p += 2 + n;
                Val::Str(s)
            }
            2 => {
                let n = u32::from_be_bytes(arr(self.get(p + 1, 4)?)) as usize;
                self.get(p + 5, n)?;
                let s = self.data.slice(p + 5..p + 5 + n);
                p += 5 + n;
                Val::Str(s)
            }
            _ => {
                let (v, n) = match e {
                    0xc0 => (i16::from_le_bytes(arr(self.get(p + 1, 2)?)) as i64, 2),
                    0xd0 => (i32::from_le_bytes(arr(self.get(p + 1, 4)?)) as i64, 4),
                    0xe0 => (i64::from_le_bytes(arr(self.get(p + 1, 8)?)), 8),
                    0xf0 => {
                        let s = self.get(p + 1, 3)?;
                        ((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64, 3)
                    }
                    0xfe => (self.byte(p + 1)? as i8 as i64, 1),
                    0xf1..=0xfd => (((e & 0x0f) as i64) - 1, 0),
                    _ => {
                        return Err(
                            self.err(format!("invalid entry encoding {e:#04x} at byte {p}"))
                        );
                    }
                };
                p += 1 + n;
                Val::Int(v)
            }
        };
        if p >= self.data.len() {
            return Err(self.err(format!("entry at byte {start} runs into the end marker")));
        }
        self.prev_size = p - start;
        self.last_start = start;
        self.pos = p;
        Ok(Some(v))
    }

    fn next_listpack(&mut self) -> Result<Option<Val>, Error> {
        let start = self.pos;
        let e = self.byte(start)?;
        if e == 0xff {
            self.end_at()?;
            return Ok(None);
        }
        let (v, len) = if e & 0x80 == 0 {
            (Val::Int((e & 0x7f) as i64), 1)
        } else if e & 0xc0 == 0x80 {
            let n = (e & 0x3f) as usize;
            self.get(start + 1, n)?;
            (Val::Str(self.data.slice(start + 1..start + 1 + n)), 1 + n)
        } else if e & 0xe0 == 0xc0 {
            let u = (((e & 0x1f) as u16) << 8) | self.byte(start + 1)? as u16;
            let v = if u >= 4096 { u as i64 - 8192 } else { u as i64 };
            (Val::Int(v), 2)
        } else if e & 0xf0 == 0xe0 {
            let n = (((e & 0x0f) as usize) << 8) | self.byte(start + 1)? as usize;
            self.get(start + 2, n)?;
            (Val::Str(self.data.slice(start + 2..start + 2 + n)), 2 + n)
        } else {
            match e {
                0xf0 => {
                    let n = u32_le(self.get(start + 1, 4)?, 0) as usize;
                    self.get(start + 5, n)?;
                    (Val::Str(self.data.slice(start + 5..start + 5 + n)), 5 + n)
                }
                0xf1 => (
                    Val::Int(i16::from_le_bytes(arr(self.get(start + 1, 2)?)) as i64),
                    3,
                ),
                0xf2 => {
                    let s = self.get(start + 1, 3)?;
                    (
                        Val::Int((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64),
                        4,
                    )
                }
                0xf3 => (
                    Val::Int(i32::from_le_bytes(arr(self.get(start + 1, 4)?)) as i64),
                    5,
                ),
                0xf4 => (
                    Val::Int(i64::from_le_bytes(arr(self.get(start + 1, 8)?))),
                    9,
                ),
                _ => {
                    return Err(
                        self.err(format!("invalid entry encoding {e:#04x} at byte {start}"))
                    );
                }
            }
        };
        let bl = backlen_size(len);
        let back = self.get(start + len, bl)?;
        // Decode the backlen (read backwards: the last byte holds the low 7 bits).
        let mut got: u64 = 0;
        for (i, &b) in back.iter().rev().enumerate() {
            got |= ((b & 0x7f) as u64) << (7 * i);
        }
        if got != len as u64 {
            return Err(self.err(format!(
                "entry at byte {start} has {len} bytes but its back-length says {got}"
            )));
        }
        let p = start + len + bl;
        if p >= self.data.len() {
            return Err(self.err(format!("entry at byte {start} runs into the end marker")));
        }
        self.pos = p;
        Ok(Some(v))
    }

    fn next_intset(&mut self) -> Result<Option<Val>, Error> {
        if self.pos == self.data.len() {
            return Ok(None);
        }
        let s = self.get(self.pos, self.width)?;
        let v = match self.width {
            2 => i16::from_le_bytes(arr(s)) as i64,
            4 => i32::from_le_bytes(arr(s)) as i64,
            _ => i64::from_le_bytes(arr(s)),
        };
        self.pos += self.width;
        Ok(Some(Val::Int(v)))
    }

    fn next_zipmap(&mut self) -> Result<Option<Val>, Error> {
        let start = self.pos;
        let b = self.byte(start)?;
        if b == 0xff {
            if self.zm_value {
                return Err(self.err(format!("end marker at byte {start} where a value is due")));
            }
            self.end_at()?;
            return Ok(None);
        }
        let (n, mut p) = match b {
            0..=253 => (b as usize, start + 1),
            _ => (u32_le(self.get(start + 1, 4)?, 0) as usize, start + 5),
        };
        let mut free = 0usize;
        if self.zm_value {
            free = self.byte(p)? as usize;
            p += 1;
        }
        self.get(p, n)?;
        let v = Val::Str(self.data.slice(p..p + n));
        p += n;
        self.get(p, free)?;
        p += free;
        if p >= self.data.len() {
            return Err(self.err(format!("entry at byte {start} runs into the end marker")));
        }
        self.pos = p;
        self.zm_value = !self.zm_value;
        Ok(Some(v))
    }
}

/// Size of a listpack entry's back-length for an entry of `len` bytes.
fn backlen_size(len: usize) -> usize {
    if len <= 127 {
        1
    } else if len < 16383 {
        2
    } else if len < 2097151 {
        3
    } else if len < 268435455 {
        4
    } else {
        5
    }
}

fn u32_le(d: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = d.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u16_le(d: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = d.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Builds a listpack of the given entries (strings and ints), as Redis would.
    pub(crate) fn listpack(items: &[Val]) -> Vec<u8> {
        let mut body = Vec::new();
        for it in items {
            let mut e = Vec::new();
            match it {
                Val::Int(i) if (0..=127).contains(i) => e.push(*i as u8),
                Val::Int(i) => {
                    e.push(0xf4);
                    e.extend_from_slice(&i.to_le_bytes());
                }
                Val::Str(s) if s.len() < 64 => {
                    e.push(0x80 | s.len() as u8);
                    e.extend_from_slice(s);
                }
                Val::Str(s) if s.len() < 4096 => {
                    e.push(0xe0 | (s.len() >> 8) as u8);
                    e.push(s.len() as u8);
                    e.extend_from_slice(s);
                }
                Val::Str(s) => {
                    e.push(0xf0);
                    e.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    e.extend_from_slice(s);
                }
            }
            let l = e.len();
            let bl = backlen_size(l);
            let mut back = vec![0u8; bl];
            for (i, slot) in back.iter_mut().rev().enumerate() {
                *slot = ((l >> (7 * i)) & 0x7f) as u8;
            }
            for (i, slot) in back.iter_mut().enumerate() {
                if i > 0 {
                    *slot |= 0x80;
                }
            }
            e.extend_from_slice(&back);
            body.extend_from_slice(&e);
        }
        let total = 6 + body.len() + 1;
        let mut out = Vec::new();
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(items.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xff);
        out
    }

    fn all(b: Vec<u8>, k: BlobKind) -> Result<Vec<Val>, Error> {
        let mut it = BlobIter::new(Bytes::from(b), k, 0)?;
        let mut v = Vec::new();
        while let Some(x) = it.next()? {
            v.push(x);
        }
        Ok(v)
    }

    fn s(x: &str) -> Val {
        Val::Str(Bytes::copy_from_slice(x.as_bytes()))
    }

    #[test]
    fn listpack_roundtrip_and_corruption() {
        let long = "x".repeat(200);
        let items = vec![s("a"), Val::Int(5), Val::Int(-70000), s(&long), s("")];
        let lp = listpack(&items);
        assert_eq!(all(lp.clone(), BlobKind::Listpack).unwrap(), items);
        // Count mismatch.
        let mut bad = lp.clone();
        bad[4] = 9;
        assert!(all(bad, BlobKind::Listpack).is_err());
        // Total bytes mismatch.
        let mut bad = lp.clone();
        bad[0] = bad[0].wrapping_add(1);
        assert!(all(bad, BlobKind::Listpack).is_err());
        // Hostile string length.
        let mut bad = lp.clone();
        bad[6] = 0xf0;
        assert!(all(bad, BlobKind::Listpack).is_err());
        // Every truncation is an error, never a panic.
        for cut in 0..lp.len() {
            assert!(all(lp[..cut].to_vec(), BlobKind::Listpack).is_err());
        }
    }

    #[test]
    fn listpack_int_encodings() {
        // 13-bit -1 (0xdf 0xff), int16 300, int24 -3, int32 1<<20.
        let mut e: Vec<Vec<u8>> = vec![
            vec![0xdf, 0xff],
            vec![0xf1, 0x2c, 0x01],
            vec![0xf2, 0xfd, 0xff, 0xff],
            vec![0xf3, 0, 0, 0x10, 0],
        ];
        let mut body = Vec::new();
        for x in e.iter_mut() {
            let l = x.len() as u8;
            x.push(l);
            body.extend_from_slice(x);
        }
        let mut lp = Vec::new();
        lp.extend_from_slice(&((6 + body.len() + 1) as u32).to_le_bytes());
        lp.extend_from_slice(&4u16.to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        assert_eq!(
            all(lp, BlobKind::Listpack).unwrap(),
            vec![Val::Int(-1), Val::Int(300), Val::Int(-3), Val::Int(1 << 20)]
        );
    }

    #[test]
    fn ziplist_entries() {
        // entries: "ab" (00000010), int8 -2 (fe), imm 5 (f6), int24 (f0)
        let mut body = Vec::new();
        let entries: Vec<Vec<u8>> = vec![
            vec![0x02, b'a', b'b'],
            vec![0xfe, 0xfe],
            vec![0xf6],
            vec![0xf0, 0x00, 0x00, 0x80],
        ];
        let mut prev = 0usize;
        let mut last = 10;
        for e in &entries {
            last = 10 + body.len();
            body.push(prev as u8);
            body.extend_from_slice(e);
            prev = e.len() + 1;
        }
        let mut z = Vec::new();
        z.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        z.extend_from_slice(&(last as u32).to_le_bytes());
        z.extend_from_slice(&4u16.to_le_bytes());
        z.extend_from_slice(&body);
        z.push(0xff);
        assert_eq!(
            all(z.clone(), BlobKind::Ziplist).unwrap(),
            vec![s("ab"), Val::Int(-2), Val::Int(5), Val::Int(-8388608)]
        );
        let mut bad = z.clone();
        bad[4] = 11; // wrong zltail
        assert!(all(bad, BlobKind::Ziplist).is_err());
        let mut bad = z.clone();
        bad[14] = 9; // wrong prevlen of the second entry
        assert!(all(bad, BlobKind::Ziplist).is_err());
        for cut in 0..z.len() {
            assert!(all(z[..cut].to_vec(), BlobKind::Ziplist).is_err());
        }
    }

    #[test]
    fn intset_and_zipmap() {
        let mut is = Vec::new();
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&2u32.to_le_bytes());
        is.extend_from_slice(&(-5i16).to_le_bytes());
        is.extend_from_slice(&7i16.to_le_bytes());
        assert_eq!(
            all(is.clone(), BlobKind::Intset).unwrap(),
            vec![Val::Int(-5), Val::Int(7)]
        );
        let mut bad = is.clone();
        bad[4] = 0xff; // hostile length
        assert!(all(bad, BlobKind::Intset).is_err());
        let mut bad = is;
        bad[0] = 3;
        assert!(all(bad, BlobKind::Intset).is_err());

        // zipmap {"k": "vv"} with 1 free byte
        let zm = vec![1, 1, b'k', 2, 1, b'v', b'v', 0, 0xff];
        assert_eq!(
            all(zm.clone(), BlobKind::Zipmap).unwrap(),
            vec![s("k"), s("vv")]
        );
        let mut bad = zm;
        bad[0] = 2;
        assert!(all(bad, BlobKind::Zipmap).is_err());
    }
}
