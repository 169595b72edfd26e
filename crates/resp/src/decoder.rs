//! [`Decoder`]: incremental, zero-copy decoding of frames from a `BytesMut`.
//!
//! Decoding a frame happens in two steps. First a *scan* checks that the whole frame is in the
//! buffer, validating it as it goes; the scan is resumable: when bytes run out it remembers the
//! element it stopped at, the nesting above it, and the least buffer length worth retrying at,
//! so a 100 MiB bulk string arriving in 16 KiB reads is looked at once when its last byte is
//! there, not once per read, and a huge array is not rescanned from its first element. Second,
//! the frame's bytes are split off the buffer (`BytesMut::split_to`, no copy) and the [`Frame`]
//! is built from `Bytes` slices of them. Nothing is allocated before the bytes it describes
//! have arrived, so a hostile length like `$9999999999999` costs nothing but an error.
//!
//! A frame that is already whole the first time it is looked at (nearly all of them when
//! reading pipelined traffic) skips the two steps: [`crate::quick`] walks it once and builds it
//! from the tokens it found. It gives up on anything unusual, and then the two steps above
//! decide, so both paths accept exactly the same input and every error comes from one place.

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Text};
use crate::frame::Frame;
use crate::parse::{self, Ctx, Head, Limits};
use crate::quick;

/// Deepest nesting [`DecoderBuilder::max_depth`] accepts: building a frame recurses once per
/// level, and this keeps that well inside a 2 MiB thread stack.
pub const MAX_DEPTH_LIMIT: usize = 512;

/// Configures a [`Decoder`]'s limits. Every limit protects memory or time against a broken or
/// hostile peer; the defaults suit a Redis replication stream.
#[derive(Debug, Clone)]
pub struct DecoderBuilder {
    limits: Limits,
}

impl Default for DecoderBuilder {
    fn default() -> Self {
        DecoderBuilder {
            limits: Limits {
                max_bulk_len: 512 * 1024 * 1024,
                max_aggregate_len: 64 * 1024 * 1024,
                max_depth: 64,
                max_line_len: 64 * 1024,
            },
        }
    }
}

impl DecoderBuilder {
    /// Longest bulk string, bulk error or verbatim string, in bytes. Default 512 MiB (Redis's
    /// `proto-max-bulk-len`).
    pub fn max_bulk_len(mut self, bytes: u64) -> Self {
        self.limits.max_bulk_len = bytes;
        self
    }

    /// Most elements in one array, set, push or command, or pairs in one map or attribute.
    /// Default 64 Mi. Memory is never reserved for more elements than the bytes present can hold.
    pub fn max_aggregate_len(mut self, elements: u64) -> Self {
        self.limits.max_aggregate_len = elements;
        self
    }

    /// Deepest nesting of aggregates (a top-level array is depth 1). Default 64, at most
    /// [`MAX_DEPTH_LIMIT`] (larger values are clamped).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.limits.max_depth = depth.min(MAX_DEPTH_LIMIT);
        self
    }

    /// Longest line (simple string, error, double, big number, inline command) without its
    /// CRLF. Default 64 KiB (Redis's limit for inline commands).
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.limits.max_line_len = bytes;
        self
    }

    /// The decoder.
    pub fn build(self) -> Decoder {
        Decoder {
            limits: self.limits,
            base: 0,
            need: 0,
            mode: Mode::Idle,
            pos: 0,
            hint: 0,
            stack: Vec::new(),
            remaining: 0,
            ranges: Vec::new(),
            toks: Vec::new(),
            dead: None,
        }
    }
}

/// What a partly seen frame is being decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Idle,
    Frame,
    Command,
    Inline,
}

/// Decodes RESP2/RESP3 [`Frame`]s, or [`Command`](crate::Command)s, from a growing `BytesMut`.
///
/// # Call order
///
/// Append bytes read from the connection to one `BytesMut` and call [`decode`](Self::decode)
/// (or [`decode_command`](Self::decode_command)) until it returns `Ok(None)`; then read more
/// and repeat. Each returned frame has been split off the front of the buffer, along with the
/// number of bytes it took on the wire. Between a call that returned `Ok(None)` and the next,
/// only *append* to the buffer: the decoder remembers how far it got into the bytes already
/// there.
///
/// A call that returns `Ok(None)` because the buffer is shorter than what the current frame is
/// known to need costs one comparison.
///
/// # Errors
///
/// After an error the decoder is dead: the next frame's start is unknown, so every later call
/// returns [`Error::Dead`]. Drop the connection.
///
/// ```
/// use bytes::BytesMut;
/// use redis_sync_resp::{Decoder, Frame};
///
/// let mut decoder = Decoder::new();
/// let mut buf = BytesMut::from(&b"+OK\r\n:4"[..]);
/// assert_eq!(decoder.decode(&mut buf)?, Some((Frame::SimpleString("OK".into()), 5)));
/// assert_eq!(decoder.decode(&mut buf)?, None); // `:4` needs its CRLF
/// buf.extend_from_slice(b"2\r\n");
/// assert_eq!(decoder.decode(&mut buf)?, Some((Frame::Integer(42), 5)));
/// assert_eq!(decoder.position(), 10);
/// # Ok::<(), redis_sync_resp::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    pub(crate) limits: Limits,
    /// Stream offset of the buffer's first byte (bytes consumed so far).
    pub(crate) base: u64,
    /// Do not look again before the buffer has this many bytes.
    pub(crate) need: usize,
    pub(crate) mode: Mode,
    /// Start of the first element not yet fully seen.
    pub(crate) pos: usize,
    /// Where a line search may resume.
    pub(crate) hint: usize,
    /// Frame scan: elements still expected at each open aggregate level.
    pub(crate) stack: Vec<u64>,
    /// Command scan: arguments still expected.
    pub(crate) remaining: u64,
    /// Command scan: payload ranges of the arguments seen so far.
    pub(crate) ranges: Vec<(usize, usize)>,
    /// Quick path: tokens of the frame being built (kept for its allocation).
    pub(crate) toks: Vec<quick::Tok>,
    /// Offset of the error that killed the decoder.
    pub(crate) dead: Option<u64>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the default limits (see [`DecoderBuilder`]).
    pub fn new() -> Decoder {
        DecoderBuilder::default().build()
    }

    /// A builder to set limits.
    pub fn builder() -> DecoderBuilder {
        DecoderBuilder::default()
    }

    /// Bytes consumed so far: the stream offset of the next frame.
    pub fn position(&self) -> u64 {
        self.base
    }

    /// True after an error: every later call fails with [`Error::Dead`].
    pub fn is_dead(&self) -> bool {
        self.dead.is_some()
    }

    /// Decodes the next frame at the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is consumed), or
    /// the frame and the number of bytes it took, which have been split off `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<(Frame, usize)>, Error> {
        if let Some(offset) = self.dead {
            return Err(Error::Dead { offset });
        }
        if buf.len() < self.need {
            return Ok(None);
        }
        if self.mode != Mode::Frame {
            // A new frame: if it is all there, one pass builds it (see `quick`).
            let mut toks = std::mem::take(&mut self.toks);
            toks.clear();
            let quick = quick::scan(buf, 0, 0, &self.limits, &mut toks);
            let result = quick.map(|len| {
                let frame = quick::build(buf.split_to(len).freeze(), &toks);
                self.finish(len);
                (frame, len)
            });
            // Keep the allocation for the next frame, unless one huge frame made it big.
            if toks.capacity() <= 1 << 16 {
                self.toks = toks;
            }
            if result.is_some() {
                return Ok(result);
            }
        }
        self.enter(Mode::Frame);
        let len = match self.scan_frame(buf) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.kill(e)),
        };
        let ctx = self.ctx();
        let data = buf.split_to(len).freeze();
        self.finish(len);
        let mut pos = 0;
        match build(&data, &mut pos, &ctx) {
            Ok(frame) if pos == len => Ok(Some((frame, len))),
            Ok(_) => Err(self.kill(disagree(&ctx, pos))),
            Err(e) => Err(self.kill(e)),
        }
    }

    pub(crate) fn ctx(&self) -> Ctx {
        Ctx {
            base: self.base,
            limits: self.limits,
        }
    }

    /// Starts (or continues) a frame in `mode`; switching modes mid-frame restarts the scan at
    /// the buffer's start, which is always correct because nothing was consumed.
    #[inline]
    pub(crate) fn enter(&mut self, mode: Mode) {
        if self.mode != mode {
            self.mode = mode;
            self.pos = 0;
            self.hint = 0;
            self.need = 0;
            self.stack.clear();
            self.remaining = 0;
            self.ranges.clear();
        }
    }

    /// A frame of `len` bytes was split off the buffer.
    #[inline]
    pub(crate) fn finish(&mut self, len: usize) {
        self.base += len as u64;
        self.mode = Mode::Idle;
        self.pos = 0;
        self.hint = 0;
        self.need = 0;
    }

    pub(crate) fn kill(&mut self, e: Error) -> Error {
        self.dead = Some(e.offset().unwrap_or(self.base));
        e
    }

    /// Resumable check that a whole frame is present; returns its length.
    fn scan_frame(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        let ctx = self.ctx();
        // Each turn either returns or moves `pos` forward: bounded by the buffer's length.
        loop {
            match parse::scan_head(buf, self.pos, self.hint, &ctx)? {
                Head::Partial { need, hint } => {
                    self.need = need;
                    self.hint = hint;
                    return Ok(None);
                }
                Head::Aggregate { body, count } => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(Error::TooDeep {
                            offset: ctx.at(self.pos),
                            limit: self.limits.max_depth,
                        });
                    }
                    self.stack.push(count);
                    self.pos = body;
                    self.hint = 0;
                }
                Head::Scalar { end } => {
                    self.pos = end;
                    self.hint = 0;
                    // One element done: close every aggregate it completes.
                    loop {
                        match self.stack.last_mut() {
                            None => return Ok(Some(end)),
                            Some(left) => {
                                *left -= 1;
                                if *left > 0 {
                                    break;
                                }
                                self.stack.pop();
                            }
                        }
                    }
                }
            }
        }
    }
}

fn disagree(ctx: &Ctx, pos: usize) -> Error {
    Error::Malformed {
        offset: ctx.at(pos),
        what: "frame",
        found: Text::end_of_input(),
        expected: "the frame the scan validated (internal error: please report it)",
    }
}

/// Builds the frame at `*pos` from bytes the scan has validated, advancing `*pos` past it.
/// Recursion depth is bounded by the scan's depth limit.
fn build(data: &Bytes, pos: &mut usize, ctx: &Ctx) -> Result<Frame, Error> {
    let buf: &[u8] = data;
    let p = *pos;
    let Some(&tag) = buf.get(p) else {
        return Err(disagree(ctx, p));
    };
    match tag {
        b'$' | b'!' | b'=' => {
            let Some((len, start)) = parse::read_int(buf, p + 1, ctx, "length")? else {
                return Err(disagree(ctx, p));
            };
            if len == -1 && tag == b'$' {
                *pos = start;
                return Ok(Frame::NullBulkString);
            }
            let end = parse::bulk_end(buf, p, len, start, "bulk string", ctx)?;
            if end + 2 > buf.len() || (tag == b'=' && end - start < 4) {
                return Err(disagree(ctx, p));
            }
            *pos = end + 2;
            Ok(match tag {
                b'$' => Frame::BulkString(data.slice(start..end)),
                b'!' => Frame::BulkError(data.slice(start..end)),
                _ => Frame::VerbatimString {
                    format: [buf[start], buf[start + 1], buf[start + 2]],
                    text: data.slice(start + 4..end),
                },
            })
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some((n, body)) = parse::read_int(buf, p + 1, ctx, "length")? else {
                return Err(disagree(ctx, p));
            };
            *pos = body;
            if n == -1 && tag == b'*' {
                return Ok(Frame::NullArray);
            }
            let n = parse::aggregate_len(buf, p, body, n, ctx)? as usize;
            // The scan saw every element, but cap by the bytes anyway: an element takes >= 3.
            let cap = n.min((buf.len() - body) / 3);
            Ok(match tag {
                b'*' | b'~' | b'>' => {
                    let mut items = Vec::with_capacity(cap);
                    for _ in 0..n {
                        items.push(build(data, pos, ctx)?);
                    }
                    match tag {
                        b'*' => Frame::Array(items),
                        b'~' => Frame::Set(items),
                        _ => Frame::Push(items),
                    }
                }
                _ => {
                    let mut pairs = Vec::with_capacity(cap / 2);
                    for _ in 0..n {
                        let k = build(data, pos, ctx)?;
                        let v = build(data, pos, ctx)?;
                        pairs.push((k, v));
                    }
                    if tag == b'%' {
                        Frame::Map(pairs)
                    } else {
                        Frame::Attribute {
                            attributes: pairs,
                            data: Box::new(build(data, pos, ctx)?),
                        }
                    }
                }
            })
        }
        b':' => match parse::read_int(buf, p + 1, ctx, "integer")? {
            Some((v, end)) => {
                *pos = end;
                Ok(Frame::Integer(v))
            }
            None => Err(disagree(ctx, p)),
        },
        _ => {
            let Some(cr) = buf[p + 1..]
                .iter()
                .position(|&b| b == b'\r')
                .map(|i| p + 1 + i)
            else {
                return Err(disagree(ctx, p));
            };
            *pos = cr + 2;
            let line = || data.slice(p + 1..cr);
            Ok(match tag {
                b'+' => Frame::SimpleString(line()),
                b'-' => Frame::Error(line()),
                b'(' => Frame::BigNumber(line()),
                b'_' => Frame::Null,
                b'#' => Frame::Boolean(buf[p + 1] == b't'),
                b',' => match parse::parse_double(&buf[p + 1..cr]) {
                    Some(d) => Frame::Double(d),
                    None => return Err(disagree(ctx, p)),
                },
                _ => return Err(disagree(ctx, p)),
            })
        }
    }
}

/// Decodes every frame in `input` (which must end at a frame boundary) with default limits.
/// A convenience for tests and tools; streams should use a [`Decoder`].
pub fn decode_all(input: &[u8]) -> Result<Vec<(Frame, usize)>, Error> {
    let mut buf = BytesMut::from(input);
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    while let Some(f) = decoder.decode(&mut buf)? {
        out.push(f);
    }
    if buf.is_empty() {
        Ok(out)
    } else {
        Err(Error::Malformed {
            offset: decoder.position(),
            what: "input",
            found: Text::new(&buf),
            expected: "a whole frame: the input ends in the middle of one",
        })
    }
}
