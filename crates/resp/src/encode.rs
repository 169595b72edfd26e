//! Encoding frames and commands straight into a `BytesMut`.
//!
//! [`encode`] writes a [`Frame`] as itself: RESP3 types in RESP3 syntax, so a decoded frame
//! comes back byte for byte. [`encode_resp2`] writes what a Redis server sends a RESP2 client
//! for the same value (maps and sets become arrays, booleans integers, doubles bulk strings, …),
//! for writing to a peer that never said `HELLO 3`. [`encode_command`] is the fast path for
//! requests: an array of bulk strings, sized up front so the buffer grows at most once.
//!
//! A simple string, error or big number cannot hold CR or LF on the wire; like Redis's
//! `addReplyErrorLength`, the encoder writes those bytes as spaces rather than let a payload
//! inject a second frame.

use bytes::{BufMut, BytesMut};

use crate::frame::Frame;

/// Appends `frame` to `out` in its own syntax (RESP3 types as RESP3).
///
/// ```
/// use bytes::BytesMut;
/// use redis_sync_resp::{encode, Frame};
///
/// let mut out = BytesMut::new();
/// encode(&Frame::Map(vec![(Frame::SimpleString("a".into()), Frame::Double(1.5))]), &mut out);
/// assert_eq!(&out[..], b"%1\r\n+a\r\n,1.5\r\n");
/// ```
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::SimpleString(s) => line(out, b'+', s),
        Frame::Error(s) => line(out, b'-', s),
        Frame::Integer(i) => header(out, b':', *i),
        Frame::BulkString(s) => bulk(out, b'$', s),
        Frame::Array(items) => {
            header(out, b'*', items.len() as i64);
            items.iter().for_each(|f| encode(f, out));
        }
        Frame::NullBulkString => out.put_slice(b"$-1\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Null => out.put_slice(b"_\r\n"),
        Frame::Boolean(b) => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Double(d) => {
            out.put_u8(b',');
            double(out, *d);
            out.put_slice(b"\r\n");
        }
        Frame::BigNumber(s) => line(out, b'(', s),
        Frame::BulkError(s) => bulk(out, b'!', s),
        Frame::VerbatimString { format, text } => {
            header(out, b'=', text.len() as i64 + 4);
            out.reserve(text.len() + 6);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Map(pairs) => pairs_(out, b'%', pairs, encode),
        Frame::Set(items) => {
            header(out, b'~', items.len() as i64);
            items.iter().for_each(|f| encode(f, out));
        }
        Frame::Attribute { attributes, data } => {
            pairs_(out, b'|', attributes, encode);
            encode(data, out);
        }
        Frame::Push(items) => {
            header(out, b'>', items.len() as i64);
            items.iter().for_each(|f| encode(f, out));
        }
    }
}

/// Appends `frame` to `out` as RESP2, converting RESP3 types the way Redis does for a RESP2
/// client: null → `$-1`, boolean → `:1`/`:0`, double and big number → bulk string, bulk error →
/// error line, verbatim string → bulk string of its text, map → flat array of keys and values,
/// set and push → array; attributes are dropped (only their data is written).
pub fn encode_resp2(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::Boolean(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
        Frame::Double(d) => {
            let mut tmp = BytesMut::with_capacity(24);
            double(&mut tmp, *d);
            bulk(out, b'$', &tmp);
        }
        Frame::BigNumber(s) => bulk(out, b'$', s),
        Frame::BulkError(s) => line(out, b'-', s),
        Frame::VerbatimString { text, .. } => bulk(out, b'$', text),
        Frame::Map(pairs) => {
            header(out, b'*', 2 * pairs.len() as i64);
            for (k, v) in pairs {
                encode_resp2(k, out);
                encode_resp2(v, out);
            }
        }
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            header(out, b'*', items.len() as i64);
            items.iter().for_each(|f| encode_resp2(f, out));
        }
        Frame::Attribute { data, .. } => encode_resp2(data, out),
        Frame::SimpleString(_)
        | Frame::Error(_)
        | Frame::Integer(_)
        | Frame::BulkString(_)
        | Frame::NullBulkString
        | Frame::NullArray => encode(frame, out),
    }
}

/// Appends a command (an array of bulk strings) to `out`, reserving its whole size first.
///
/// ```
/// use bytes::BytesMut;
/// use redis_sync_resp::encode_command;
///
/// let mut out = BytesMut::new();
/// encode_command(&["SET", "k", "v"], &mut out);
/// assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
/// ```
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    encode_args(args.iter().map(AsRef::as_ref), out);
}

/// [`encode_command`] over any exact-size iterator of arguments.
pub(crate) fn encode_args<'a, I>(args: I, out: &mut BytesMut)
where
    I: ExactSizeIterator<Item = &'a [u8]> + Clone,
{
    let total = header_len(args.len()) + args.clone().map(|a| bulk_len(a.len())).sum::<usize>();
    out.reserve(total);
    header(out, b'*', args.len() as i64);
    for a in args {
        header(out, b'$', a.len() as i64);
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// Length of [`encode_command`]'s output for `args`.
pub fn command_len<A: AsRef<[u8]>>(args: &[A]) -> usize {
    header_len(args.len())
        + args
            .iter()
            .map(|a| bulk_len(a.as_ref().len()))
            .sum::<usize>()
}

/// Length of `*<n>\r\n`.
pub(crate) fn header_len(n: usize) -> usize {
    3 + digits(n as u64)
}

/// Length of `$<len>\r\n<bytes>\r\n`.
pub(crate) fn bulk_len(len: usize) -> usize {
    5 + digits(len as u64) + len
}

fn digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// `<tag><decimal>\r\n`.
#[inline]
fn header(out: &mut BytesMut, tag: u8, v: i64) {
    let mut tmp = [0u8; 24];
    let mut i = tmp.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        tmp[i] = b'-';
    }
    i -= 1;
    tmp[i] = tag;
    out.reserve(tmp.len() - i + 2);
    out.put_slice(&tmp[i..]);
    out.put_slice(b"\r\n");
}

#[inline]
fn bulk(out: &mut BytesMut, tag: u8, s: &[u8]) {
    header(out, tag, s.len() as i64);
    out.reserve(s.len() + 2);
    out.put_slice(s);
    out.put_slice(b"\r\n");
}

/// A line frame; CR and LF in the payload become spaces (they would end the line early).
fn line(out: &mut BytesMut, tag: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(tag);
    if s.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            s.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(s);
    }
    out.put_slice(b"\r\n");
}

fn pairs_(out: &mut BytesMut, tag: u8, pairs: &[(Frame, Frame)], enc: fn(&Frame, &mut BytesMut)) {
    header(out, tag, pairs.len() as i64);
    for (k, v) in pairs {
        enc(k, out);
        enc(v, out);
    }
}

/// RESP3 spelling of a double: `inf`, `-inf`, `nan`, else Rust's shortest round-trip form.
fn double(out: &mut BytesMut, d: f64) {
    use std::fmt::Write;
    if d.is_nan() {
        out.put_slice(b"nan");
    } else if d == f64::INFINITY {
        out.put_slice(b"inf");
    } else if d == f64::NEG_INFINITY {
        out.put_slice(b"-inf");
    } else {
        // `{:?}` is the shortest text that parses back to the same f64 (`1.5`, `1e300`).
        // Writing into a BytesMut cannot fail.
        let _ = write!(out, "{d:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(f: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(f, &mut out);
        out.to_vec()
    }

    fn enc2(f: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_resp2(f, &mut out);
        out.to_vec()
    }

    #[test]
    fn golden_bytes() {
        let s = |t: &'static str| Bytes::from_static(t.as_bytes());
        let cases: Vec<(Frame, &[u8])> = vec![
            (Frame::SimpleString(s("OK")), b"+OK\r\n"),
            (Frame::Error(s("ERR x")), b"-ERR x\r\n"),
            (Frame::Integer(-42), b":-42\r\n"),
            (Frame::Integer(i64::MIN), b":-9223372036854775808\r\n"),
            (Frame::BulkString(s("hello")), b"$5\r\nhello\r\n"),
            (Frame::BulkString(s("")), b"$0\r\n\r\n"),
            (Frame::NullBulkString, b"$-1\r\n"),
            (Frame::NullArray, b"*-1\r\n"),
            (Frame::Null, b"_\r\n"),
            (Frame::Boolean(true), b"#t\r\n"),
            (Frame::Double(f64::NEG_INFINITY), b",-inf\r\n"),
            (Frame::Double(f64::NAN), b",nan\r\n"),
            (Frame::Double(3.25), b",3.25\r\n"),
            (
                Frame::BigNumber(s("-123456789012345678901234567890")),
                b"(-123456789012345678901234567890\r\n",
            ),
            (Frame::BulkError(s("SYNTAX x")), b"!8\r\nSYNTAX x\r\n"),
            (
                Frame::VerbatimString {
                    format: *b"txt",
                    text: s("hi"),
                },
                b"=6\r\ntxt:hi\r\n",
            ),
            (
                Frame::Array(vec![Frame::Integer(1), Frame::Null]),
                b"*2\r\n:1\r\n_\r\n",
            ),
            (Frame::Set(vec![Frame::Boolean(false)]), b"~1\r\n#f\r\n"),
            (Frame::Push(vec![]), b">0\r\n"),
            (
                Frame::Map(vec![(Frame::Integer(1), Frame::Integer(2))]),
                b"%1\r\n:1\r\n:2\r\n",
            ),
            (
                Frame::Attribute {
                    attributes: vec![(Frame::SimpleString(s("ttl")), Frame::Integer(3))],
                    data: Box::new(Frame::Integer(7)),
                },
                b"|1\r\n+ttl\r\n:3\r\n:7\r\n",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(enc(&f), want, "{f:?}");
        }
    }

    #[test]
    fn resp2_downgrade_like_redis() {
        let s = |t: &'static str| Bytes::from_static(t.as_bytes());
        assert_eq!(enc2(&Frame::Null), b"$-1\r\n");
        assert_eq!(enc2(&Frame::Boolean(true)), b":1\r\n");
        assert_eq!(enc2(&Frame::Double(1.5)), b"$3\r\n1.5\r\n");
        assert_eq!(enc2(&Frame::BulkError(s("ERR x"))), b"-ERR x\r\n");
        assert_eq!(
            enc2(&Frame::VerbatimString {
                format: *b"txt",
                text: s("a")
            }),
            b"$1\r\na\r\n"
        );
        assert_eq!(
            enc2(&Frame::Map(vec![(
                Frame::SimpleString(s("k")),
                Frame::Set(vec![Frame::Null])
            )])),
            b"*2\r\n+k\r\n*1\r\n$-1\r\n"
        );
        let attr = Frame::Attribute {
            attributes: vec![],
            data: Box::new(Frame::Integer(1)),
        };
        assert_eq!(enc2(&attr), b":1\r\n");
    }

    #[test]
    fn line_payloads_cannot_inject_frames() {
        assert_eq!(
            enc(&Frame::Error(Bytes::from_static(b"ERR a\r\n+OK"))),
            b"-ERR a  +OK\r\n"
        );
    }

    #[test]
    fn command_len_matches_encoding() {
        for args in [
            vec![],
            vec!["PING".to_string()],
            vec!["SET".into(), "k".repeat(12), "v".repeat(1000)],
        ] {
            let mut out = BytesMut::new();
            encode_command(&args, &mut out);
            assert_eq!(out.len(), command_len(&args));
        }
    }
}
