//! The crate's one error type.
//!
//! Every decoding error names the byte offset where it was found, counted from the first byte
//! the [`Decoder`](crate::Decoder) ever saw (so for a replication stream it is a stream offset,
//! not an index into the current buffer), what was found there, and what was expected. Running
//! out of bytes is *not* an error: the decoder returns `Ok(None)` for that.

use std::fmt;

/// Something that was wrong in the bytes given to the [`Decoder`](crate::Decoder), or a limit
/// that they went over.
///
/// After any of these (except [`Error::Io`], which the decoder never returns itself) the decoder
/// that returned it is dead: the position of the next frame in the stream is unknown, so every
/// later call returns [`Error::Dead`]. Close the connection and start again with a new decoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A length, count or integer that is not a decimal number in range.
    #[error("invalid {what} `{text}` at byte {offset}: expected {expected}")]
    InvalidNumber {
        /// Stream offset of the first byte of the number.
        offset: u64,
        /// What the number was for, e.g. `"bulk length"`.
        what: &'static str,
        /// The offending text (escaped, truncated to 32 bytes).
        text: Text,
        /// What would have been valid.
        expected: &'static str,
    },
    /// A frame starts with a byte that is not a RESP type.
    #[error(
        "unknown frame type {found} at byte {offset}: expected one of `+ - : $ * _ # , ( ! = % ~ | >` \
         (is this a RESP connection, and in step with the stream?)"
    )]
    UnknownType {
        /// Stream offset of the type byte.
        offset: u64,
        /// The byte found (escaped).
        found: Text,
    },
    /// A command (array of bulk strings) contains something other than a bulk string.
    #[error(
        "expected `$` (a bulk string argument) at byte {offset}, found {found}: a command must be an array of bulk strings"
    )]
    NotABulkString {
        /// Stream offset of the offending byte.
        offset: u64,
        /// The byte found (escaped).
        found: Text,
    },
    /// Bytes that break the frame's syntax: a missing CRLF, a bad boolean, a bad double, …
    #[error("malformed {what} at byte {offset}: found `{found}`, expected {expected}")]
    Malformed {
        /// Stream offset of the offending bytes.
        offset: u64,
        /// The kind of frame or element, e.g. `"bulk string terminator"`.
        what: &'static str,
        /// What was found (escaped, truncated to 32 bytes).
        found: Text,
        /// What would have been valid.
        expected: &'static str,
    },
    /// A bulk string (or bulk error, verbatim string) announces more bytes than allowed.
    #[error(
        "{what} of {len} bytes at byte {offset} is over the limit of {limit} bytes \
         (raise DecoderBuilder::max_bulk_len if the peer is trusted)"
    )]
    BulkTooLong {
        /// Stream offset of the frame's type byte.
        offset: u64,
        /// What kind of frame it was.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// An aggregate (array, map, set, push, attribute, command) announces more elements than allowed.
    #[error(
        "{what} of {len} elements at byte {offset} is over the limit of {limit} \
         (raise DecoderBuilder::max_aggregate_len if the peer is trusted)"
    )]
    AggregateTooLong {
        /// Stream offset of the aggregate's type byte.
        offset: u64,
        /// What kind of aggregate.
        what: &'static str,
        /// The announced number of elements.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Aggregates nested deeper than allowed.
    #[error(
        "aggregate at byte {offset} nests deeper than the limit of {limit} levels \
         (raise DecoderBuilder::max_depth if the peer is trusted)"
    )]
    TooDeep {
        /// Stream offset of the aggregate that went over.
        offset: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A line (simple string, error, double, big number, inline command) with no CRLF within
    /// the limit.
    #[error(
        "{what} starting at byte {offset} has no line end within {limit} bytes \
         (raise DecoderBuilder::max_line_len if such long lines are expected)"
    )]
    LineTooLong {
        /// Stream offset of the line's first byte.
        offset: u64,
        /// What kind of line.
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// The decoder returned an error before and cannot find the next frame any more.
    #[error(
        "the decoder already failed at byte {offset} and cannot resynchronise: \
         close the connection and decode the new one with a new Decoder"
    )]
    Dead {
        /// Stream offset of the first error.
        offset: u64,
    },
    /// An I/O error from the transport (only from the `tokio_util` codecs).
    #[error("I/O error while reading or writing RESP: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The stream offset (bytes since the decoder's first byte) the error is about, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::InvalidNumber { offset, .. }
            | Error::UnknownType { offset, .. }
            | Error::NotABulkString { offset, .. }
            | Error::Malformed { offset, .. }
            | Error::BulkTooLong { offset, .. }
            | Error::AggregateTooLong { offset, .. }
            | Error::TooDeep { offset, .. }
            | Error::LineTooLong { offset, .. }
            | Error::Dead { offset } => Some(*offset),
            Error::Io(_) => None,
        }
    }
}

/// A short, escaped excerpt of the bytes an [`Error`] is about (at most 32 bytes of input).
#[derive(Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// Longest excerpt kept, in input bytes.
    pub const MAX: usize = 32;

    pub(crate) fn new(bytes: &[u8]) -> Text {
        let cut = bytes.len().min(Self::MAX);
        let mut s: String = bytes[..cut].escape_ascii().to_string();
        if bytes.len() > cut {
            s.push('…');
        }
        Text(s)
    }

    pub(crate) fn end_of_input() -> Text {
        Text("end of input".to_string())
    }

    /// The excerpt as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_where_and_what_to_do() {
        let e = Error::InvalidNumber {
            offset: 12,
            what: "bulk length",
            text: Text::new(b"-5x"),
            expected: "a decimal integer",
        };
        assert_eq!(
            e.to_string(),
            "invalid bulk length `-5x` at byte 12: expected a decimal integer"
        );
        assert_eq!(e.offset(), Some(12));
        let e = Error::BulkTooLong {
            offset: 0,
            what: "bulk string",
            len: 1 << 40,
            limit: 512 << 20,
        };
        assert!(e.to_string().contains("max_bulk_len"));
    }

    #[test]
    fn text_is_escaped_and_truncated() {
        assert_eq!(Text::new(b"a\r\n\x00").as_str(), "a\\r\\n\\x00");
        let long = [b'x'; 40];
        assert_eq!(Text::new(&long).as_str(), format!("{}…", "x".repeat(32)));
    }
}
