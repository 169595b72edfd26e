//! [`Command`] and the fast path that decodes one: an array of bulk strings, or an inline line.
//!
//! Almost everything a replica or a proxy reads is a command, so it gets its own decoder loop
//! that knows each element must be a bulk string: no generic frame tree, no recursion, one
//! `Vec<Bytes>` per command whose elements are slices of the input. The loop is resumable like
//! the frame scan: it keeps the arguments already found when bytes run out.
//!
//! Like Redis's `processInputBuffer`, a command that does not start with `*` is an *inline*
//! command: one line split on blanks, with Redis's `sdssplitargs` quoting rules. An empty line
//! (the `\n` keep-alive a master sends a replica) is a command with no arguments.

use bytes::{Bytes, BytesMut};

use crate::decoder::{Decoder, Mode};
use crate::encode;
use crate::error::{Error, Text};
use crate::frame::Frame;
use crate::parse::{self, Ctx};

/// A command: its arguments (name first) and the number of bytes it took on the wire.
///
/// The arguments of a decoded command are zero-copy slices of the decoder's input (except the
/// quoted arguments of inline commands that contain escapes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    args: Vec<Bytes>,
    wire_len: usize,
}

impl Command {
    /// A command with these arguments; its [`wire_len`](Self::wire_len) is the length of its
    /// RESP encoding (an array of bulk strings).
    pub fn new<I, A>(args: I) -> Command
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        let args: Vec<Bytes> = args.into_iter().map(Into::into).collect();
        let wire_len = encode::command_len(&args);
        Command { args, wire_len }
    }

    /// The arguments, command name first. Empty for a keep-alive newline, an empty inline line
    /// or `*0\r\n` (Redis ignores those).
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// The arguments, by value.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }

    /// The command name (first argument) as sent, e.g. `b"set"`; `None` when empty.
    pub fn name(&self) -> Option<&[u8]> {
        self.args.first().map(|a| &a[..])
    }

    /// Bytes this command took on the wire (for replication offsets).
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// True when there are no arguments (see [`args`](Self::args)).
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The command as a frame: an array of bulk strings.
    pub fn to_frame(&self) -> Frame {
        Frame::Array(self.args.iter().cloned().map(Frame::BulkString).collect())
    }
}

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
    /// assert_eq!(get.args(), ["GET", "k"]);
    /// assert_eq!(get.wire_len(), 20);
    /// assert!(decoder.decode_command(&mut buf)?.expect("keep-alive").is_empty());
    /// assert_eq!(decoder.decode_command(&mut buf)?.expect("inline").args(), ["PING"]);
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
        let ctx = self.ctx();
        let b: &[u8] = buf;
        if self.pos == 0 {
            let Some((n, body)) = parse::read_int(b, 1, &ctx, "command length")? else {
                self.need = b.len() + 1;
                return Ok(None);
            };
            let limit = self.limits.max_aggregate_len;
            if n > 0 && n as u64 > limit {
                return Err(Error::AggregateTooLong {
                    offset: ctx.base,
                    what: "command",
                    len: n as u64,
                    limit,
                });
            }
            // Redis skips `*0` and negative counts as empty commands; so do we.
            self.remaining = n.max(0) as u64;
            self.pos = body;
            self.ranges.clear();
        }
        while self.remaining > 0 {
            let p = self.pos;
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
            if end + 2 > b.len() {
                self.need = end + 2;
                return Ok(None);
            }
            parse::check_crlf(b, end, &ctx, "bulk string argument")?;
            self.ranges.push((data, end));
            self.pos = end + 2;
            self.remaining -= 1;
        }
        let len = self.pos;
        let wire = buf.split_to(len).freeze();
        let args = self.ranges.iter().map(|&(s, e)| wire.slice(s..e)).collect();
        self.ranges.clear();
        self.finish(len);
        Ok(Some(Command {
            args,
            wire_len: len,
        }))
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
        let wire = buf.split_to(len).freeze();
        self.finish(len);
        let args = pieces
            .into_iter()
            .map(|p| match p {
                Piece::Slice(s, e) => wire.slice(s..e),
                Piece::Owned(v) => Bytes::from(v),
            })
            .collect();
        Ok(Some(Command {
            args,
            wire_len: len,
        }))
    }
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
