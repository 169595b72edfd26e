//! [`Frame`]: one RESP2 or RESP3 value.
//!
//! One enum covers both protocol versions because a connection may switch (`HELLO 3`) and a
//! replica sees both: RESP2 commands in the replication stream, RESP3 replies on its own
//! connection. The RESP2 nulls (`$-1`, `*-1`) stay distinct from RESP3's `_` so that a decoded
//! frame re-encodes to exactly the bytes it came from, which keeps byte counts honest.
//!
//! Strings are [`Bytes`] slices of the decoder's input: decoding copies no payload.

use bytes::Bytes;

/// One RESP value (RESP2 or RESP3), as decoded by [`Decoder`](crate::Decoder) or given to
/// [`encode`](crate::encode).
///
/// Re-encoding a decoded frame with [`encode`](crate::encode) gives back the exact input bytes,
/// except for the spelling of doubles (`,1.50` comes back as `,1.5`) and integers (`:+1` and
/// `:01` come back as `:1`).
#[derive(Debug, Clone)]
pub enum Frame {
    /// `+OK\r\n`: a status line (no CR or LF inside).
    SimpleString(Bytes),
    /// `-ERR message\r\n`: an error line (no CR or LF inside).
    Error(Bytes),
    /// `:42\r\n`: a signed 64-bit integer.
    Integer(i64),
    /// `$5\r\nhello\r\n`: a binary-safe string.
    BulkString(Bytes),
    /// `*2\r\n...`: an array.
    Array(Vec<Frame>),
    /// RESP2 null bulk string, `$-1\r\n`.
    NullBulkString,
    /// RESP2 null array, `*-1\r\n`.
    NullArray,
    /// RESP3 null, `_\r\n`.
    Null,
    /// RESP3 boolean, `#t\r\n` / `#f\r\n`.
    Boolean(bool),
    /// RESP3 double, `,3.14\r\n`, also `,inf`, `,-inf` and `,nan`. Two NaNs compare equal.
    Double(f64),
    /// RESP3 big number, `(3492890328409238509324850943850943825024385\r\n`: the digits, with
    /// an optional leading `-`.
    BigNumber(Bytes),
    /// RESP3 bulk error, `!21\r\nSYNTAX invalid syntax\r\n`.
    BulkError(Bytes),
    /// RESP3 verbatim string, `=15\r\ntxt:Some string\r\n`: a 3-byte format (`txt`, `mkd`) and the text.
    VerbatimString {
        /// The format, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text after `format:`.
        text: Bytes,
    },
    /// RESP3 map, `%2\r\n...`: key/value pairs in wire order.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 set, `~2\r\n...`: elements in wire order.
    Set(Vec<Frame>),
    /// RESP3 attribute, `|1\r\n...`, with the value it annotates (which follows it on the wire).
    Attribute {
        /// The attribute map's key/value pairs.
        attributes: Vec<(Frame, Frame)>,
        /// The frame the attributes belong to.
        data: Box<Frame>,
    },
    /// RESP3 push (out-of-band message: pub/sub, client tracking), `>3\r\n...`.
    Push(Vec<Frame>),
}

impl Frame {
    /// The payload of a simple string, bulk string, verbatim string, error, bulk error or big
    /// number.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::SimpleString(b)
            | Frame::Error(b)
            | Frame::BulkString(b)
            | Frame::BulkError(b)
            | Frame::BigNumber(b)
            | Frame::VerbatimString { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The value of an integer frame.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Frame::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array, set or push frame.
    pub fn as_slice(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }

    /// True for the three nulls (`$-1`, `*-1`, `_`).
    pub fn is_null(&self) -> bool {
        matches!(self, Frame::Null | Frame::NullBulkString | Frame::NullArray)
    }

    /// True for an error or a bulk error.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }

    /// The frame without its attributes (RESP3 attributes are optional annotations).
    pub fn strip_attributes(&self) -> &Frame {
        let mut f = self;
        while let Frame::Attribute { data, .. } = f {
            f = data;
        }
        f
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        use Frame::*;
        match (self, other) {
            (SimpleString(a), SimpleString(b))
            | (Error(a), Error(b))
            | (BulkString(a), BulkString(b))
            | (BigNumber(a), BigNumber(b))
            | (BulkError(a), BulkError(b)) => a == b,
            (Integer(a), Integer(b)) => a == b,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (NullBulkString, NullBulkString) | (NullArray, NullArray) | (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (Double(a), Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (
                VerbatimString {
                    format: fa,
                    text: ta,
                },
                VerbatimString {
                    format: fb,
                    text: tb,
                },
            ) => fa == fb && ta == tb,
            (Map(a), Map(b)) => a == b,
            (
                Attribute {
                    attributes: aa,
                    data: da,
                },
                Attribute {
                    attributes: ab,
                    data: db,
                },
            ) => aa == ab && da == db,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_equals_nan_and_variants_differ() {
        assert_eq!(Frame::Double(f64::NAN), Frame::Double(f64::NAN));
        assert_ne!(Frame::Null, Frame::NullBulkString);
        assert_ne!(Frame::Array(vec![]), Frame::Set(vec![]));
        let f = Frame::Attribute {
            attributes: vec![],
            data: Box::new(Frame::Integer(1)),
        };
        assert_eq!(f.strip_attributes(), &Frame::Integer(1));
        assert!(Frame::BulkError(Bytes::new()).is_error());
        assert!(Frame::NullArray.is_null());
    }
}
