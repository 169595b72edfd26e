//! The one-pass path for a frame that is already whole in the buffer (the common case).
//!
//! The careful path ([`crate::decoder`]) scans a frame resumably and then parses it a second
//! time to build it. When a new frame is already all there, that second parse is waste: this
//! path walks the frame once, writing what it finds into a reusable token list, and the frame
//! is then built from the tokens. It covers the shapes that make up nearly all traffic (simple
//! strings, errors, integers, bulk strings, nulls, arrays of those) and gives up, returning
//! `None`, on anything else: another type, a partial frame, a limit, or an error. The careful
//! path then decides, so errors and their messages come from one place only. It is tried only
//! on a frame's first attempt, so a frame arriving in pieces is never walked more than once by
//! it.

use bytes::{Buf, Bytes};

use crate::frame::Frame;
use crate::parse::{Limits, small_int};

/// One element found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tok {
    Simple(usize, usize),
    Error(usize, usize),
    Bulk(usize, usize),
    Integer(i64),
    NullBulk,
    NullArray,
    Null,
    Array(usize),
}

/// Walks the frame at `pos` (nested `depth` aggregates deep), appending its tokens; returns the
/// position after it, or `None` to hand over to the careful path.
pub(crate) fn scan(
    b: &[u8],
    pos: usize,
    depth: usize,
    lim: &Limits,
    toks: &mut Vec<Tok>,
) -> Option<usize> {
    match *b.get(pos)? {
        b'$' => {
            let (len, data) = small_int(b, pos + 1)?;
            if len == -1 {
                toks.push(Tok::NullBulk);
                return Some(data);
            }
            if len < 0 || len as u64 > lim.max_bulk_len {
                return None;
            }
            let end = data.checked_add(len as usize)?;
            if b.get(end..end.checked_add(2)?)? != b"\r\n" {
                return None;
            }
            toks.push(Tok::Bulk(data, end));
            Some(end + 2)
        }
        b'*' => {
            let (n, body) = small_int(b, pos + 1)?;
            if n == -1 {
                toks.push(Tok::NullArray);
                return Some(body);
            }
            // Same rule as the careful scan: only a non-empty aggregate adds a level.
            if n < 0 || n as u64 > lim.max_aggregate_len || (n > 0 && depth >= lim.max_depth) {
                return None;
            }
            toks.push(Tok::Array(n as usize));
            let mut p = body;
            for _ in 0..n {
                p = scan(b, p, depth + 1, lim, toks)?;
            }
            Some(p)
        }
        b':' => {
            let (v, end) = small_int(b, pos + 1)?;
            toks.push(Tok::Integer(v));
            Some(end)
        }
        tag @ (b'+' | b'-') => {
            let line = b.get(pos + 1..)?;
            let cr = line
                .iter()
                .take(lim.max_line_len + 1)
                .position(|&c| c == b'\r' || c == b'\n')?;
            if line[cr] != b'\r' || cr > lim.max_line_len || *line.get(cr + 1)? != b'\n' {
                return None;
            }
            let (s, e) = (pos + 1, pos + 1 + cr);
            toks.push(if tag == b'+' {
                Tok::Simple(s, e)
            } else {
                Tok::Error(s, e)
            });
            Some(e + 2)
        }
        b'_' => {
            if b.get(pos + 1..pos + 3)? != b"\r\n" {
                return None;
            }
            toks.push(Tok::Null);
            Some(pos + 3)
        }
        _ => None,
    }
}

/// Builds the frames of `toks` (from [`scan`] over the bytes now in `data`).
pub(crate) fn build(data: Bytes, toks: &[Tok]) -> Frame {
    let mut i = 0;
    let mut data = Some(data);
    build_at(&mut data, toks, &mut i)
}

/// `data` is taken by the last bulk string of the frame, which saves a reference-count
/// increment and decrement per frame.
fn build_at(data: &mut Option<Bytes>, toks: &[Tok], i: &mut usize) -> Frame {
    let Some(&t) = toks.get(*i) else {
        return Frame::Null;
    };
    *i += 1;
    let last = *i == toks.len();
    let mut slice = |s: usize, e: usize| match (last, data.take()) {
        (true, Some(mut d)) => {
            d.truncate(e);
            d.advance(s);
            d
        }
        (false, Some(d)) => {
            let out = d.slice(s..e);
            *data = Some(d);
            out
        }
        (_, None) => Bytes::new(),
    };
    match t {
        Tok::Simple(s, e) => Frame::SimpleString(slice(s, e)),
        Tok::Error(s, e) => Frame::Error(slice(s, e)),
        Tok::Bulk(s, e) => Frame::BulkString(slice(s, e)),
        Tok::Integer(v) => Frame::Integer(v),
        Tok::NullBulk => Frame::NullBulkString,
        Tok::NullArray => Frame::NullArray,
        Tok::Null => Frame::Null,
        Tok::Array(n) => {
            // n elements were scanned, each one token at least.
            let mut items = Vec::with_capacity(n.min(toks.len() - *i));
            for _ in 0..n {
                items.push(build_at(data, toks, i));
            }
            Frame::Array(items)
        }
    }
}
