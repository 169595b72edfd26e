//! Low-level RESP syntax: numbers, lines and one element header at a time.
//!
//! Everything here works on `&[u8]` with positions, never on `Bytes`, so the decoder can first
//! find out *whether* a whole frame is present (cheaply, resumably) and only then cut the frame
//! out of the buffer and build zero-copy slices from it. "Not enough bytes yet" is never an
//! error here: it is `Ok(None)` or [`Head::Partial`], with the least buffer length worth retrying at.
//!
//! Syntax follows the RESP3 specification (redis/redis-specifications, `spec/protocol/RESP3.md`);
//! RESP2 is its subset.

use crate::error::{Error, Text};

/// Limits applied while decoding; see [`DecoderBuilder`](crate::DecoderBuilder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_bulk_len: u64,
    pub max_aggregate_len: u64,
    pub max_depth: usize,
    pub max_line_len: usize,
}

/// Where in the stream the buffer starts, and the limits: what errors need to say where and why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub base: u64,
    pub limits: Limits,
}

impl Ctx {
    #[inline]
    pub fn at(&self, pos: usize) -> u64 {
        self.base + pos as u64
    }
}

/// The most digits a length or integer may have (i64::MAX has 19; one more for leading zeros
/// would already be odd). Bounds the work done on a line of digits that never ends.
const MAX_DIGITS: usize = 20;

/// Reads a signed decimal integer that starts at `start` and ends with CRLF.
///
/// Returns `Ok(None)` when the CRLF has not arrived yet, else the value and the position after
/// the LF. `what` names the number in errors (`"bulk length"`).
#[inline]
pub(crate) fn read_int(
    buf: &[u8],
    start: usize,
    ctx: &Ctx,
    what: &'static str,
) -> Result<Option<(i64, usize)>, Error> {
    let bad = |end: usize| Error::InvalidNumber {
        offset: ctx.at(start),
        what,
        text: Text::new(&buf[start..end.min(buf.len())]),
        expected: "a decimal integer in the range of a signed 64-bit number",
    };
    let mut i = start;
    let neg = match buf.get(i) {
        None => return Ok(None),
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        Some(_) => false,
    };
    let digits = i;
    let mut v: u64 = 0;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                if i - digits >= MAX_DIGITS {
                    return Err(bad(i + 1));
                }
                v = match v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(v) => v,
                    None => return Err(bad(i + 1)),
                };
                i += 1;
            }
            b'\r' if i > digits => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => break,
                Some(_) => return Err(bad(i + 2)),
            },
            _ => return Err(bad(i + 1)),
        }
    }
    let value = if neg {
        if v > 1 << 63 {
            return Err(bad(i));
        }
        (v as i64).wrapping_neg()
    } else {
        if v > i64::MAX as u64 {
            return Err(bad(i));
        }
        v as i64
    };
    Ok(Some((value, i + 2)))
}

/// `<tag><digits>\r\n` at `p`, all present, at most 18 digits, optional `-`: the value and
/// the position after the LF. `None` for anything else (the careful parser then decides).
#[inline(always)]
pub(crate) fn small_int_at(b: &[u8], p: usize, tag: u8) -> Option<(i64, usize)> {
    if *b.get(p)? != tag {
        return None;
    }
    small_int(b, p + 1)
}

#[inline(always)]
pub(crate) fn small_int(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let rest = b.get(start..)?;
    let (neg, digits) = match rest.first()? {
        b'-' => (true, 1),
        _ => (false, 0),
    };
    let mut v: i64 = 0;
    let mut i = digits;
    loop {
        let d = rest.get(i)?.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // 18 digits always fit in an i64; longer numbers take the careful path.
        if i - digits >= 18 {
            return None;
        }
        v = v * 10 + i64::from(d);
        i += 1;
    }
    if i == digits || *rest.get(i)? != b'\r' || *rest.get(i + 1)? != b'\n' {
        return None;
    }
    Some((if neg { -v } else { v }, start + i + 2))
}

/// Finds the CR of the CRLF that ends a line starting at `start`, searching from `from`.
///
/// `Ok(Ok(cr))` when found, `Ok(Err(searched))` when the buffer ends first (`searched` is where
/// the next search may resume), an error when the line is longer than `max` or a CR is not
/// followed by LF.
#[inline]
pub(crate) fn find_line_end(
    buf: &[u8],
    start: usize,
    from: usize,
    max: usize,
    ctx: &Ctx,
    what: &'static str,
) -> Result<Result<usize, usize>, Error> {
    let from = from.max(start);
    let too_long = || Error::LineTooLong {
        offset: ctx.at(start),
        what,
        limit: max,
    };
    // A line may hold neither CR nor LF (RESP3 spec, "simple types"): stop at either.
    match buf
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\r' || b == b'\n'))
    {
        Some(i) => {
            let cr = from + i;
            if cr - start > max {
                return Err(too_long());
            }
            if buf[cr] == b'\n' {
                return Err(Error::Malformed {
                    offset: ctx.at(cr),
                    what,
                    found: Text::new(b"\n"),
                    expected: "no LF inside the line, CRLF (`\\r\\n`) at its end",
                });
            }
            match buf.get(cr + 1) {
                None => Ok(Err(cr)),
                Some(b'\n') => Ok(Ok(cr)),
                Some(_) => Err(Error::Malformed {
                    offset: ctx.at(cr),
                    what,
                    found: Text::new(&buf[cr..(cr + 2).min(buf.len())]),
                    expected: "CRLF (`\\r\\n`) to end the line",
                }),
            }
        }
        None if buf.len().saturating_sub(start) > max => Err(too_long()),
        None => Ok(Err(buf.len().max(from))),
    }
}

/// One element header read at some position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// The element is not complete: retry when the buffer holds at least `need` bytes; a line
    /// search may resume at `hint`.
    Partial { need: usize, hint: usize },
    /// A complete element (scalar, null, or empty aggregate) ending before `end`.
    Scalar { end: usize },
    /// An aggregate header: `count` child elements start at `body`.
    Aggregate { body: usize, count: u64 },
}

/// Validates the element starting at `pos` (its header, and its whole payload for scalars)
/// without building anything. `hint` resumes a line search cut short by a previous call.
pub(crate) fn scan_head(buf: &[u8], pos: usize, hint: usize, ctx: &Ctx) -> Result<Head, Error> {
    let Some(&tag) = buf.get(pos) else {
        return Ok(Head::Partial {
            need: pos + 1,
            hint: 0,
        });
    };
    let partial_line = Head::Partial {
        need: buf.len() + 1,
        hint: 0,
    };
    match tag {
        b'$' | b'!' | b'=' => {
            let what = match tag {
                b'$' => "bulk string",
                b'!' => "bulk error",
                _ => "verbatim string",
            };
            let Some((len, data)) = read_int(buf, pos + 1, ctx, length_name(tag))? else {
                return Ok(partial_line);
            };
            if len == -1 && tag == b'$' {
                return Ok(Head::Scalar { end: data });
            }
            let end = bulk_end(buf, pos, len, data, what, ctx)?;
            if end + 2 > buf.len() {
                return Ok(Head::Partial {
                    need: end + 2,
                    hint: 0,
                });
            }
            check_crlf(buf, end, ctx, what)?;
            if tag == b'=' && (len < 4 || buf[data + 3] != b':') {
                return Err(Error::Malformed {
                    offset: ctx.at(data),
                    what,
                    found: Text::new(&buf[data..end]),
                    expected: "a 3-byte format, a colon, then the text (`txt:...`)",
                });
            }
            Ok(Head::Scalar { end: end + 2 })
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some((n, body)) = read_int(buf, pos + 1, ctx, length_name(tag))? else {
                return Ok(partial_line);
            };
            if n == -1 && tag == b'*' {
                return Ok(Head::Scalar { end: body });
            }
            let n = aggregate_len(buf, pos, body, n, ctx)?;
            let count = match tag {
                b'%' => 2 * n,
                b'|' => 2 * n + 1,
                _ => n,
            };
            if count == 0 {
                Ok(Head::Scalar { end: body })
            } else {
                Ok(Head::Aggregate { body, count })
            }
        }
        b':' => match read_int(buf, pos + 1, ctx, "integer")? {
            Some((_, end)) => Ok(Head::Scalar { end }),
            None => Ok(partial_line),
        },
        b'+' | b'-' | b'(' | b',' | b'#' | b'_' => {
            let what = line_name(tag);
            let max = ctx.limits.max_line_len;
            match find_line_end(buf, pos + 1, hint, max, ctx, what)? {
                Err(searched) => Ok(Head::Partial {
                    need: buf.len() + 1,
                    hint: searched,
                }),
                Ok(cr) => {
                    check_line(tag, &buf[pos + 1..cr], pos + 1, ctx)?;
                    Ok(Head::Scalar { end: cr + 2 })
                }
            }
        }
        _ => Err(Error::UnknownType {
            offset: ctx.at(pos),
            found: Text::new(&[tag]),
        }),
    }
}

/// Checks a bulk length against the limits; returns where its payload ends (before the CRLF).
#[inline]
pub(crate) fn bulk_end(
    buf: &[u8],
    pos: usize,
    len: i64,
    data: usize,
    what: &'static str,
    ctx: &Ctx,
) -> Result<usize, Error> {
    if len < 0 {
        return Err(Error::InvalidNumber {
            offset: ctx.at(pos + 1),
            what: length_name(buf[pos]),
            text: Text::new(&buf[pos + 1..data.saturating_sub(2)]),
            expected: if buf[pos] == b'$' {
                "-1 (null) or a length of 0 or more"
            } else {
                "a length of 0 or more"
            },
        });
    }
    let len = len as u64;
    let limit = ctx.limits.max_bulk_len;
    match usize::try_from(len).ok().and_then(|l| data.checked_add(l)) {
        Some(end) if len <= limit && end <= usize::MAX - 2 => Ok(end),
        _ => Err(Error::BulkTooLong {
            offset: ctx.at(pos),
            what,
            len,
            limit,
        }),
    }
}

/// Checks an aggregate's announced element count against the limits.
#[inline]
pub(crate) fn aggregate_len(
    buf: &[u8],
    pos: usize,
    body: usize,
    n: i64,
    ctx: &Ctx,
) -> Result<u64, Error> {
    let tag = buf[pos];
    if n < 0 {
        return Err(Error::InvalidNumber {
            offset: ctx.at(pos + 1),
            what: length_name(tag),
            text: Text::new(&buf[pos + 1..body.saturating_sub(2)]),
            expected: if tag == b'*' {
                "-1 (null) or a count of 0 or more"
            } else {
                "a count of 0 or more"
            },
        });
    }
    let limit = ctx.limits.max_aggregate_len;
    if n as u64 > limit {
        return Err(Error::AggregateTooLong {
            offset: ctx.at(pos),
            what: aggregate_name(tag),
            len: n as u64,
            limit,
        });
    }
    Ok(n as u64)
}

#[inline]
pub(crate) fn check_crlf(
    buf: &[u8],
    end: usize,
    ctx: &Ctx,
    what: &'static str,
) -> Result<(), Error> {
    if buf.get(end..end + 2) == Some(b"\r\n") {
        Ok(())
    } else {
        Err(Error::Malformed {
            offset: ctx.at(end),
            what,
            found: Text::new(&buf[end.min(buf.len())..(end + 2).min(buf.len())]),
            expected: "CRLF (`\\r\\n`) right after the announced number of bytes",
        })
    }
}

/// Validates the text of a line frame (`_`, `#`, `,`, `(`; simple strings and errors take anything).
fn check_line(tag: u8, line: &[u8], at: usize, ctx: &Ctx) -> Result<(), Error> {
    let (ok, expected) = match tag {
        b'_' => (line.is_empty(), "nothing between `_` and CRLF"),
        b'#' => (line == b"t" || line == b"f", "`t` or `f`"),
        b',' => (
            parse_double(line).is_some(),
            "a decimal or exponent number, `inf`, `-inf` or `nan`",
        ),
        b'(' => (
            is_big_number(line),
            "decimal digits with an optional leading `-`",
        ),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Malformed {
            offset: ctx.at(at),
            what: line_name(tag),
            found: Text::new(line),
            expected,
        })
    }
}

/// Parses a RESP3 double's text (`1.5`, `-2e10`, `inf`, `-inf`, `nan`).
pub(crate) fn parse_double(line: &[u8]) -> Option<f64> {
    // Rust's parser also takes `infinity` and `NaN`; the spec's spellings are a subset.
    let s = std::str::from_utf8(line).ok()?;
    if s.is_empty() || s.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    s.parse::<f64>().ok()
}

fn is_big_number(line: &[u8]) -> bool {
    let digits = line
        .strip_prefix(b"-")
        .or_else(|| line.strip_prefix(b"+"))
        .unwrap_or(line);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn length_name(tag: u8) -> &'static str {
    match tag {
        b'$' => "bulk length",
        b'!' => "bulk error length",
        b'=' => "verbatim string length",
        b'*' => "array length",
        b'%' => "map length",
        b'~' => "set length",
        b'>' => "push length",
        b'|' => "attribute length",
        _ => "length",
    }
}

fn aggregate_name(tag: u8) -> &'static str {
    match tag {
        b'*' => "array",
        b'%' => "map",
        b'~' => "set",
        b'>' => "push",
        b'|' => "attribute",
        _ => "aggregate",
    }
}

fn line_name(tag: u8) -> &'static str {
    match tag {
        b'+' => "simple string",
        b'-' => "error",
        b'(' => "big number",
        b',' => "double",
        b'#' => "boolean",
        b'_' => "null",
        _ => "line",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CTX: Ctx = Ctx {
        base: 100,
        limits: Limits {
            max_bulk_len: 1000,
            max_aggregate_len: 10,
            max_depth: 4,
            max_line_len: 16,
        },
    };

    #[test]
    fn integers() {
        assert_eq!(read_int(b"42\r\n", 0, &CTX, "x").unwrap(), Some((42, 4)));
        assert_eq!(
            read_int(b"-9223372036854775808\r\n", 0, &CTX, "x").unwrap(),
            Some((i64::MIN, 22))
        );
        assert_eq!(read_int(b"+7\r\n", 0, &CTX, "x").unwrap(), Some((7, 4)));
        assert_eq!(read_int(b"42\r", 0, &CTX, "x").unwrap(), None);
        assert_eq!(read_int(b"-", 0, &CTX, "x").unwrap(), None);
        for bad in [
            &b"9223372036854775808\r\n"[..],
            b"-9223372036854775809\r\n",
            b"\r\n",
            b"-\r\n",
            b"1x",
            b"4\rx",
        ] {
            assert!(
                read_int(bad, 0, &CTX, "x").is_err(),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
        // Endless zeros stop at the digit limit instead of waiting for ever.
        assert!(read_int(&[b'0'; 64], 0, &CTX, "x").is_err());
        let e = read_int(b"$-5x\r\n", 1, &CTX, "bulk length").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid bulk length `-5x` at byte 101: expected a decimal integer in the range of a signed 64-bit number"
        );
    }

    #[test]
    fn lines() {
        assert_eq!(
            find_line_end(b"+OK\r\n", 1, 1, 16, &CTX, "l").unwrap(),
            Ok(3)
        );
        assert_eq!(
            find_line_end(b"+OK\r", 1, 1, 16, &CTX, "l").unwrap(),
            Err(3)
        );
        assert_eq!(find_line_end(b"+OK", 1, 1, 16, &CTX, "l").unwrap(), Err(3));
        assert!(find_line_end(b"+OK\rx", 1, 1, 16, &CTX, "l").is_err());
        assert!(find_line_end(&[b'+'; 40], 1, 1, 16, &CTX, "l").is_err());
        assert!(find_line_end(b"+O\nK\r\n", 1, 1, 16, &CTX, "l").is_err());
    }

    #[test]
    fn doubles() {
        for (s, v) in [
            ("1.5", 1.5),
            ("-2e3", -2000.0),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("10", 10.0),
        ] {
            assert_eq!(parse_double(s.as_bytes()), Some(v));
        }
        assert!(parse_double(b"nan").unwrap().is_nan());
        assert!(parse_double(b"").is_none());
        assert!(parse_double(b"1 ").is_none());
        assert!(parse_double(b"abc").is_none());
    }
}
