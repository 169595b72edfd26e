//! [`Command`] and the fast path that decodes one: an array of bulk strings, or an inline line.
//!
//! Almost everything a replica or a proxy reads is a command, so it gets its own decoder loop
//! that knows each element must be a bulk string: no generic frame tree, no recursion. A
//! short command that is all in the buffer is parsed in one pass into inline argument
//! positions, and the `Command` keeps one `Bytes` of its own bytes: one reference-count
//! increment per command instead of one per argument (on this machine those atomic operations,
//! not the parsing, dominate the cost). Everything else takes a careful loop that is resumable
//! like the frame scan (it keeps the arguments already found when bytes run out) and reports
//! errors precisely.
//!
//! Like Redis's `processInputBuffer`, a command that does not start with `*` is an *inline*
//! command: one line split on blanks, with Redis's `sdssplitargs` quoting rules. An empty line
//! (the `\n` keep-alive a master sends a replica) is a command with no arguments.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::decoder::{Decoder, Mode};
use crate::encode;
use crate::error::{Error, Text};
use crate::frame::Frame;
use crate::parse::{self, Ctx, small_int, small_int_at};

/// How many argument positions a [`Command`] keeps without allocating.
const INLINE: usize = 5;

/// Argument positions kept inline.
type InlineRanges = [(u32, u32); INLINE];

/// Where each argument lies in a command's bytes: inline (as `u32`s) for short commands, so
/// decoding one allocates nothing and the `Command` stays small; on the heap otherwise.
///
/// A plain struct of word-aligned fields rather than an enum: a command is moved a few times on
/// its way out of the decoder, and an enum's byte-sized tag in front of the array made those
/// copies misaligned with the stores that wrote it, which stalled store-to-load forwarding
/// (measured: a fifth of the command path's time).
#[derive(Clone)]
struct Ranges {
    /// Number of inline ranges; unused when `heap` is set.
    len: u32,
    at: InlineRanges,
    heap: Option<Box<[(usize, usize)]>>,
}

impl Ranges {
    const EMPTY: Ranges = Ranges {
        len: 0,
        at: [(0, 0); INLINE],
        heap: None,
    };

    fn from_slice(r: &[(usize, usize)]) -> Ranges {
        let mut out = Ranges::EMPTY;
        if r.len() <= INLINE {
            let mut fits = true;
            for (slot, &(s, e)) in out.at.iter_mut().zip(r) {
                match (u32::try_from(s), u32::try_from(e)) {
                    (Ok(s), Ok(e)) => *slot = (s, e),
                    _ => fits = false,
                }
            }
            if fits {
                out.len = r.len() as u32;
                return out;
            }
        }
        out.heap = Some(r.into());
        out
    }

    #[inline]
    fn len(&self) -> usize {
        match &self.heap {
            None => self.len as usize,
            Some(v) => v.len(),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<(usize, usize)> {
        match &self.heap {
            None if i < self.len as usize => {
                let (s, e) = self.at[i];
                Some((s as usize, e as usize))
            }
            None => None,
            Some(v) => v.get(i).copied(),
        }
    }
}

/// A command: its arguments (name first) and the number of bytes it took on the wire.
///
/// A decoded command holds its own bytes as one [`Bytes`] (a zero-copy slice of the decoder's
/// input) and the positions of its arguments, inline for up to five arguments. So decoding a
/// command costs one reference count and no allocation; [`arg_bytes`](Self::arg_bytes) and
/// [`into_args`](Self::into_args) hand out `Bytes` slices when an owner needs them. (The
/// quoted arguments of inline commands with escapes are the only copies.)
///
/// Two commands are equal when their arguments are; [`wire_len`](Self::wire_len) is not compared.
#[derive(Clone)]
pub struct Command {
    wire: Bytes,
    ranges: Ranges,
    wire_len: usize,
}

impl Default for Command {
    fn default() -> Self {
        Command {
            wire: Bytes::new(),
            ranges: Ranges::from_slice(&[]),
            wire_len: 0,
        }
    }
}

impl Command {
    /// A command with these arguments; its [`wire_len`](Self::wire_len) is the length of its
    /// RESP encoding (an array of bulk strings).
    pub fn new<I, A>(args: I) -> Command
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let mut data = BytesMut::new();
        let mut ranges = Vec::new();
        let mut wire_len = 0;
        for a in args {
            let a = a.as_ref();
            ranges.push((data.len(), data.len() + a.len()));
            data.extend_from_slice(a);
            wire_len += encode::bulk_len(a.len());
        }
        wire_len += encode::header_len(ranges.len());
        Command {
            wire: data.freeze(),
            ranges: Ranges::from_slice(&ranges),
            wire_len,
        }
    }

    /// Number of arguments (the name included).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when there are no arguments: a keep-alive newline, an empty inline line or `*0\r\n`
    /// (Redis ignores those).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arguments, command name first, as byte slices.
    pub fn args(&self) -> Args<'_> {
        Args {
            wire: &self.wire,
            ranges: &self.ranges,
            front: 0,
            back: self.ranges.len(),
        }
    }

    /// Argument `i` (0 is the name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.ranges.get(i).map(|(s, e)| &self.wire[s..e])
    }

    /// Argument `i` as a zero-copy [`Bytes`] slice (one reference-count increment).
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        self.ranges.get(i).map(|(s, e)| self.wire.slice(s..e))
    }

    /// The command name (first argument) as sent, e.g. `b"set"`; `None` when empty.
    pub fn name(&self) -> Option<&[u8]> {
        self.arg(0)
    }

    /// The arguments as zero-copy [`Bytes`] slices.
    pub fn into_args(self) -> Vec<Bytes> {
        let n = self.ranges.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n.saturating_sub(1) {
            if let Some((s, e)) = self.ranges.get(i) {
                out.push(self.wire.slice(s..e));
            }
        }
        if let Some((s, e)) = n.checked_sub(1).and_then(|last| self.ranges.get(last)) {
            // The last argument takes over the command's own handle.
            let mut last = self.wire;
            last.truncate(e);
            last.advance(s);
            out.push(last);
        }
        out
    }

    /// Bytes this command took on the wire (for replication offsets).
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// The command as a frame: an array of bulk strings.
    pub fn to_frame(&self) -> Frame {
        let slice = |(s, e)| Frame::BulkString(self.wire.slice(s..e));
        Frame::Array(
            (0..self.len())
                .filter_map(|i| self.ranges.get(i).map(slice))
                .collect(),
        )
    }

    /// Appends the command to `out` as an array of bulk strings.
    pub fn encode(&self, out: &mut BytesMut) {
        encode::encode_args(self.args(), out);
    }
}

impl PartialEq for Command {
    fn eq(&self, other: &Command) -> bool {
        self.args().eq(other.args())
    }
}

impl Eq for Command {}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Arg<'a>(&'a [u8]);
        impl fmt::Debug for Arg<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_struct("Command")
            .field("args", &self.args().map(Arg).collect::<Vec<_>>())
            .field("wire_len", &self.wire_len)
            .finish()
    }
}

/// Iterator over a [`Command`]'s arguments, as byte slices; see [`Command::args`].
#[derive(Clone)]
pub struct Args<'a> {
    wire: &'a [u8],
    ranges: &'a Ranges,
    front: usize,
    back: usize,
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.clone().map(|a| a.escape_ascii().to_string()))
            .finish()
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (s, e) = self.ranges.get(self.front)?;
        self.front += 1;
        Some(&self.wire[s..e])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Args<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        let (s, e) = self.ranges.get(self.back)?;
        Some(&self.wire[s..e])
    }
}

impl ExactSizeIterator for Args<'_> {}

impl Decoder {
    /// Decodes the next command at the front of `buf`: an array of bulk strings (`*3\r\n$3\r\nSET
    /// ...`), or, when the first byte is not `*`, an inline command line (`PING\r\n`, or the bare
    /// `\n` keep-alive, which gives an empty command).
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole command (nothing is consumed),
    /// else the command, which has been split off `buf`; [`Command::wire_len`] says how many
    /// bytes that was. An array element that is not a bulk string is an error (as in Redis).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use redis_sync_resp::Decoder;
    ///
    /// let mut decoder = Decoder::new();
    /// let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\nPING\r\n"[..]);
    /// let get = decoder.decode_command(&mut buf)?.expect("whole");
    /// assert_eq!(get.wire_len(), 20);
    /// assert_eq!(get.arg(1), Some(&b"k"[..]));
    /// assert_eq!(get.into_args(), ["GET", "k"]);
    /// assert!(decoder.decode_command(&mut buf)?.expect("keep-alive").is_empty());
    /// assert_eq!(decoder.decode_command(&mut buf)?.expect("inline").name(), Some(&b"PING"[..]));
    /// # Ok::<(), redis_sync_resp::Error>(())
    /// ```
    pub fn decode_command(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, Error> {
        if let Some(offset) = self.dead {
            return Err(Error::Dead { offset });
        }
        if buf.len() < self.need {
            return Ok(None);
        }
        if self.mode != Mode::Command && self.mode != Mode::Inline {
            // The common case first: a short command, all there, in one pass.
            let mut ranges = Ranges::EMPTY;
            if let Some((len, n)) = quick_command(buf, self.limits.max_bulk_len, &mut ranges.at) {
                ranges.len = n;
                let wire = buf.split_to(len).freeze();
                self.finish(len);
                return Ok(Some(Command {
                    wire,
                    ranges,
                    wire_len: len,
                }));
            }
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            self.enter(if first == b'*' {
                Mode::Command
            } else {
                Mode::Inline
            });
        }
        let result = if self.mode == Mode::Command {
            self.scan_multibulk(buf)
        } else {
            self.scan_inline(buf)
        };
        result.map_err(|e| self.kill(e))
    }

    fn scan_multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, Error> {
        let b: &[u8] = buf;
        if self.pos == 0 {
            let (n, body) = match small_int(b, 1) {
                Some(v) => v,
                None => match parse::read_int(b, 1, &self.ctx(), "command length")? {
                    Some(v) => v,
                    None => {
                        self.need = b.len() + 1;
                        return Ok(None);
                    }
                },
            };
            let limit = self.limits.max_aggregate_len;
            if n > 0 && n as u64 > limit {
                let e = Error::AggregateTooLong {
                    offset: self.base,
                    what: "command",
                    len: n as u64,
                    limit,
                };
                return Err(e);
            }
            // Redis skips `*0` and negative counts as empty commands; so do we.
            self.remaining = n.max(0) as u64;
            self.pos = body;
            self.ranges.clear();
            // Never more than the bytes present can hold (an argument takes >= 6 bytes).
            self.ranges
                .reserve((self.remaining as usize).min(b.len() / 6));
        }
        let max_bulk = self.limits.max_bulk_len;
        let mut pos = self.pos;
        let mut remaining = self.remaining;
        while remaining > 0 {
            // Fast path: a complete, well-formed `$<len>\r\n`; anything else takes the slow
            // path below, which reports partial input and errors precisely.
            let (data, end) = match small_int_at(b, pos, b'$') {
                Some((len, data)) if len >= 0 && (len as u64) <= max_bulk => {
                    (data, data + len as usize)
                }
                _ => match self.slow_bulk_header(b, pos)? {
                    Some(v) => v,
                    None => {
                        self.pos = pos;
                        self.remaining = remaining;
                        return Ok(None);
                    }
                },
            };
            if end + 2 > b.len() {
                self.need = end + 2;
                self.pos = pos;
                self.remaining = remaining;
                return Ok(None);
            }
            if b[end] != b'\r' || b[end + 1] != b'\n' {
                return Err(
                    parse::check_crlf(b, end, &self.ctx(), "bulk string argument")
                        .err()
                        .unwrap_or_else(|| Error::Malformed {
                            offset: self.base + end as u64,
                            what: "bulk string argument",
                            found: Text::new(&b[end..end + 2]),
                            expected: "CRLF",
                        }),
                );
            }
            self.ranges.push((data, end));
            pos = end + 2;
            remaining -= 1;
        }
        let len = pos;
        let wire = buf.split_to(len).freeze();
        let ranges = Ranges::from_slice(&self.ranges);
        self.ranges.clear();
        self.remaining = 0;
        self.finish(len);
        Ok(Some(Command {
            wire,
            ranges,
            wire_len: len,
        }))
    }

    /// The bulk header at `p` the careful way: `Ok(None)` (with `need` set) when incomplete,
    /// else its payload range, or the precise error.
    #[cold]
    fn slow_bulk_header(&mut self, b: &[u8], p: usize) -> Result<Option<(usize, usize)>, Error> {
        let ctx = self.ctx();
        match b.get(p) {
            Some(b'$') => {}
            Some(&c) => {
                return Err(Error::NotABulkString {
                    offset: ctx.at(p),
                    found: Text::new(&[c]),
                });
            }
            None => {
                self.need = p + 1;
                return Ok(None);
            }
        }
        let Some((len, data)) = parse::read_int(b, p + 1, &ctx, "bulk length")? else {
            self.need = b.len() + 1;
            return Ok(None);
        };
        if len < 0 {
            return Err(Error::InvalidNumber {
                offset: ctx.at(p + 1),
                what: "bulk length",
                text: Text::new(&b[p + 1..data - 2]),
                expected: "a length of 0 or more (a command argument cannot be null)",
            });
        }
        let end = parse::bulk_end(b, p, len, data, "bulk string argument", &ctx)?;
        Ok(Some((data, end)))
    }

    fn scan_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, Error> {
        let ctx = self.ctx();
        let max = self.limits.max_line_len;
        let from = self.hint;
        let Some(nl) = buf
            .get(from..)
            .and_then(|r| r.iter().position(|&c| c == b'\n'))
            .map(|i| from + i)
        else {
            if buf.len() > max {
                return Err(Error::LineTooLong {
                    offset: ctx.base,
                    what: "inline command",
                    limit: max,
                });
            }
            self.hint = buf.len();
            self.need = buf.len() + 1;
            return Ok(None);
        };
        if nl > max {
            return Err(Error::LineTooLong {
                offset: ctx.base,
                what: "inline command",
                limit: max,
            });
        }
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let len = nl + 1;
        // Split first (an error must consume nothing), then cut the line off the buffer.
        let pieces = split_inline(&buf[..line_end], &ctx)?;
        let line = buf.split_to(len).freeze();
        self.finish(len);
        let command = if pieces.iter().all(|p| matches!(p, Piece::Slice(..))) {
            let ranges: Vec<(usize, usize)> = pieces
                .iter()
                .map(|p| {
                    if let Piece::Slice(s, e) = p {
                        (*s, *e)
                    } else {
                        (0, 0)
                    }
                })
                .collect();
            Command {
                wire: line,
                ranges: Ranges::from_slice(&ranges),
                wire_len: len,
            }
        } else {
            // Unescaped quotes: the arguments get their own buffer.
            let mut data = BytesMut::new();
            let mut ranges = Vec::with_capacity(pieces.len());
            for p in &pieces {
                let bytes = match p {
                    Piece::Slice(s, e) => &line[*s..*e],
                    Piece::Owned(v) => &v[..],
                };
                ranges.push((data.len(), data.len() + bytes.len()));
                data.extend_from_slice(bytes);
            }
            Command {
                wire: data.freeze(),
                ranges: Ranges::from_slice(&ranges),
                wire_len: len,
            }
        };
        Ok(Some(command))
    }
}

/// A whole command of 1 to [`INLINE`] arguments with well-formed headers and lengths in
/// limits, at the start of `b`: its length, argument count and argument positions. `None`
/// means "take the careful path" (partial, long, unusual or invalid input), never an error:
/// whatever this accepts, the careful path accepts identically.
#[inline]
fn quick_command(b: &[u8], max_bulk: u64, at: &mut InlineRanges) -> Option<(usize, u32)> {
    let (n, mut pos) = small_int_at(b, 0, b'*')?;
    if !(1..=INLINE as i64).contains(&n) || b.len() > u32::MAX as usize {
        return None;
    }
    for slot in at.iter_mut().take(n as usize) {
        let (len, data) = small_int_at(b, pos, b'$')?;
        if len < 0 || len as u64 > max_bulk {
            return None;
        }
        let end = data.checked_add(len as usize)?;
        if b.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        *slot = (data as u32, end as u32);
        pos = end + 2;
    }
    Some((pos, n as u32))
}

/// Splits an inline command line like Redis's `sdssplitargs`: blanks separate arguments;
/// `"..."` takes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>` escapes; `'...'` takes `\'`;
/// a closing quote must be followed by a blank or the end of the line; a NUL ends the line.
fn split_inline(b: &[u8], ctx: &Ctx) -> Result<Vec<Piece>, Error> {
    let unbalanced = || Error::Malformed {
        offset: ctx.base,
        what: "inline command",
        found: Text::new(b),
        expected: "balanced quotes, each closing quote followed by a blank or the line end",
    };
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && blank(b[i]) {
            i += 1;
        }
        if at(i) == 0 {
            return Ok(args);
        }
        let start = i;
        // Bytes of the argument, once a quote forces a copy; `None` while it is a plain slice.
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let c = at(i);
            match c {
                b'"' | b'\'' => {
                    let o = owned.get_or_insert_with(|| b[start..i].to_vec());
                    i += 1;
                    loop {
                        let q = at(i);
                        if q == 0 {
                            return Err(unbalanced());
                        } else if q == c {
                            i += 1;
                            if at(i) != 0 && !blank(at(i)) {
                                return Err(unbalanced());
                            }
                            break;
                        } else if q == b'\\'
                            && c == b'"'
                            && at(i + 1) == b'x'
                            && hex(at(i + 2)).is_some()
                            && hex(at(i + 3)).is_some()
                        {
                            o.push(hex(at(i + 2)).unwrap_or(0) * 16 + hex(at(i + 3)).unwrap_or(0));
                            i += 4;
                        } else if q == b'\\' && c == b'"' && at(i + 1) != 0 {
                            o.push(match at(i + 1) {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            i += 2;
                        } else if q == b'\\' && c == b'\'' && at(i + 1) == b'\'' {
                            o.push(b'\'');
                            i += 2;
                        } else {
                            o.push(q);
                            i += 1;
                        }
                    }
                    // After a closing quote comes a blank or the end: the argument is done.
                    break;
                }
                0 | b' ' | b'\t' | b'\n' | b'\r' => break,
                _ => {
                    if let Some(o) = owned.as_mut() {
                        o.push(c);
                    }
                    i += 1;
                }
            }
        }
        args.push(match owned {
            Some(o) => Piece::Owned(o),
            None => Piece::Slice(start, i),
        });
    }
}

/// One inline argument: a range of the line, or bytes unescaped from quotes.
enum Piece {
    Slice(usize, usize),
    Owned(Vec<u8>),
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
