//! Primitive reads from the decoder's input buffer (RDB-FORMAT.md §3–§5).
//!
//! A [`Rd`] walks a slice of the bytes received so far. Every read either succeeds, reports
//! [`Stop::Incomplete`] (the bytes have not arrived yet: the caller keeps its state and retries
//! after more input, from the same place) or fails with an [`Error`]. Reads only check lengths
//! against the bytes present and never allocate by a length before its bytes are there.

use bytes::Bytes;

use crate::Error;
use crate::lzf;

/// Why a read did not produce a value.
#[derive(Debug)]
pub(crate) enum Stop {
    /// More input is needed.
    Incomplete,
    /// The input is invalid.
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

pub(crate) type R<T> = Result<T, Stop>;

/// The header of an RDB string (§4).
#[derive(Debug, Clone, Copy)]
pub(crate) enum StrHead {
    /// `len` raw bytes follow.
    Raw(u64),
    /// An integer encoding (already read).
    Int(i64),
    /// LZF: `clen` compressed bytes follow, decompressing to `ulen`.
    Lzf { clen: u64, ulen: u64 },
}

/// Limits for materialised strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_element: u64,
}

/// A cursor over received bytes; `base` is the absolute file offset of `d[0]`.
#[derive(Debug)]
pub(crate) struct Rd<'a> {
    pub(crate) d: &'a [u8],
    pub(crate) p: usize,
    pub(crate) base: u64,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(d: &'a [u8], base: u64) -> Self {
        Rd { d, p: 0, base }
    }

    /// Absolute offset of the cursor.
    pub(crate) fn off(&self) -> u64 {
        self.base + self.p as u64
    }

    pub(crate) fn u8(&mut self) -> R<u8> {
        // `ok_or_else`, not `ok_or`: building (and dropping) a `Stop` on every read shows up
        // in profiles.
        let b = *self.d.get(self.p).ok_or_else(|| Stop::Incomplete)?;
        self.p += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.p.checked_add(n).ok_or_else(|| Stop::Incomplete)?;
        let s = self.d.get(self.p..end).ok_or_else(|| Stop::Incomplete)?;
        self.p = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u64_le(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64_le(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64_le(&mut self) -> R<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// RDB length or encoded-object marker: `Ok(Ok(len))` or `Ok(Err(enc))` for `11xxxxxx`.
    pub(crate) fn len_or_enc(&mut self, context: &'static str) -> R<Result<u64, u8>> {
        let at = self.off();
        let b0 = self.u8()?;
        match b0 >> 6 {
            0 => Ok(Ok((b0 & 0x3f) as u64)),
            1 => {
                let b1 = self.u8()?;
                Ok(Ok((((b0 & 0x3f) as u64) << 8) | b1 as u64))
            }
            2 => match b0 {
                0x80 => Ok(Ok(u32::from_be_bytes(self.array()?) as u64)),
                0x81 => Ok(Ok(u64::from_be_bytes(self.array()?))),
                _ => Err(Stop::Fail(Error::BadLength {
                    offset: at,
                    byte: b0,
                    context,
                    key: None,
                })),
            },
            _ => Ok(Err(b0 & 0x3f)),
        }
    }

    /// A plain RDB length (an encoded marker is an error here).
    pub(crate) fn len(&mut self, context: &'static str) -> R<u64> {
        let at = self.off();
        match self.len_or_enc(context)? {
            Ok(n) => Ok(n),
            Err(enc) => Err(Stop::Fail(Error::BadLength {
                offset: at,
                byte: 0xc0 | enc,
                context,
                key: None,
            })),
        }
    }

    /// The header of an RDB string.
    pub(crate) fn str_head(&mut self, context: &'static str) -> R<StrHead> {
        let at = self.off();
        match self.len_or_enc(context)? {
            Ok(n) => Ok(StrHead::Raw(n)),
            Err(0) => Ok(StrHead::Int(self.u8()? as i8 as i64)),
            Err(1) => Ok(StrHead::Int(i16::from_le_bytes(self.array()?) as i64)),
            Err(2) => Ok(StrHead::Int(i32::from_le_bytes(self.array()?) as i64)),
            Err(3) => {
                let clen = self.len("LZF compressed length")?;
                let ulen = self.len("LZF uncompressed length")?;
                Ok(StrHead::Lzf { clen, ulen })
            }
            Err(enc) => Err(Stop::Fail(Error::BadLength {
                offset: at,
                byte: 0xc0 | enc,
                context,
                key: None,
            })),
        }
    }

    /// A whole string, materialised (integers as decimal text, LZF decompressed).
    pub(crate) fn string(&mut self, lim: Limits, what: &'static str) -> R<Bytes> {
        let at = self.off();
        match self.str_head(what)? {
            StrHead::Int(v) => Ok(Bytes::from(v.to_string())),
            StrHead::Raw(n) => {
                check(at, n, lim.max_element, what)?;
                Ok(Bytes::copy_from_slice(self.take(n as usize)?))
            }
            StrHead::Lzf { clen, ulen } => {
                check(at, ulen, lim.max_element, what)?;
                check(at, clen, lim.max_element, what)?;
                let input = self.take(clen as usize)?;
                let out = lzf::decompress(input, ulen as usize).map_err(|what| Error::BadLzf {
                    offset: at,
                    what,
                    key: None,
                })?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// Skips a string without materialising it (returns its raw bytes in the file).
    pub(crate) fn skip_string(&mut self, lim: Limits, what: &'static str) -> R<()> {
        let at = self.off();
        match self.str_head(what)? {
            StrHead::Int(_) => Ok(()),
            StrHead::Raw(n) | StrHead::Lzf { clen: n, .. } => {
                check(at, n, lim.max_element, what)?;
                self.take(n as usize)?;
                Ok(())
            }
        }
    }

    /// The old string form of a double (ZSET type 3, §5).
    pub(crate) fn string_double(&mut self) -> R<f64> {
        let at = self.off();
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.take(n as usize)?;
                parse_double(s).ok_or_else(|| {
                    Stop::Fail(Error::corrupt(
                        at,
                        format!("invalid score {:?}", String::from_utf8_lossy(s)),
                    ))
                })
            }
        }
    }
}

/// Fails with `TooLarge` when `n > limit`.
pub(crate) fn check(at: u64, n: u64, limit: u64, what: &'static str) -> Result<(), Error> {
    if n > limit {
        return Err(Error::TooLarge {
            offset: at,
            what,
            size: n,
            limit,
            setting: "max_element_size",
            key: None,
        });
    }
    Ok(())
}

/// Parses a score written as text (`%.17g`, `inf`, `-inf`, `nan`).
pub(crate) fn parse_double(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?.trim();
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_element: 1 << 20,
        }
    }

    #[test]
    fn lengths() {
        let mut r = Rd::new(
            &[
                0x05, 0x41, 0x02, 0x80, 0, 0, 1, 0, 0x81, 0, 0, 0, 0, 0, 0, 0, 9,
            ],
            0,
        );
        assert_eq!(r.len("t").unwrap(), 5);
        assert_eq!(r.len("t").unwrap(), 0x102);
        assert_eq!(r.len("t").unwrap(), 256);
        assert_eq!(r.len("t").unwrap(), 9);
        assert!(matches!(r.len("t"), Err(Stop::Incomplete)));
        let mut r = Rd::new(&[0x82], 7);
        assert!(matches!(
            r.len("t"),
            Err(Stop::Fail(Error::BadLength {
                offset: 7,
                byte: 0x82,
                ..
            }))
        ));
        let mut r = Rd::new(&[0x80, 0, 0], 0);
        assert!(matches!(r.len("t"), Err(Stop::Incomplete)));
    }

    #[test]
    fn strings() {
        let mut r = Rd::new(
            &[
                0xc0, 0xff, 0xc1, 0x39, 0x30, 0xc2, 0, 0, 0, 0x80, 3, b'a', b'b', b'c',
            ],
            0,
        );
        assert_eq!(r.string(lim(), "s").unwrap(), "-1");
        assert_eq!(r.string(lim(), "s").unwrap(), "12345");
        assert_eq!(r.string(lim(), "s").unwrap(), "-2147483648");
        assert_eq!(r.string(lim(), "s").unwrap(), "abc");
        // Hostile length: an error before any allocation, not a wait.
        let mut r = Rd::new(&[0x80, 0xff, 0xff, 0xff, 0xff], 0);
        assert!(matches!(
            r.string(lim(), "s"),
            Err(Stop::Fail(Error::TooLarge { .. }))
        ));
        // Unknown encoding.
        let mut r = Rd::new(&[0xc4], 0);
        assert!(matches!(
            r.string(lim(), "s"),
            Err(Stop::Fail(Error::BadLength { .. }))
        ));
        // LZF "abcabcabc".
        let mut r = Rd::new(&[0xc3, 6, 9, 2, b'a', b'b', b'c', 4 << 5, 2], 0);
        assert_eq!(r.string(lim(), "s").unwrap(), "abcabcabc");
        let mut r = Rd::new(&[0xc3, 6, 10, 2, b'a', b'b', b'c', 4 << 5, 2], 0);
        assert!(matches!(
            r.string(lim(), "s"),
            Err(Stop::Fail(Error::BadLzf { .. }))
        ));
    }

    #[test]
    fn doubles() {
        let mut r = Rd::new(&[253, 254, 255, 3, b'1', b'.', b'5', 1, b'x'], 0);
        assert!(r.string_double().unwrap().is_nan());
        assert_eq!(r.string_double().unwrap(), f64::INFINITY);
        assert_eq!(r.string_double().unwrap(), f64::NEG_INFINITY);
        assert_eq!(r.string_double().unwrap(), 1.5);
        assert!(r.string_double().is_err());
    }
}
