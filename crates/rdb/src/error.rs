//! The crate's one error type. Every variant says where (byte offset, key when known) and what.

use bytes::Bytes;

use crate::event::Flavor;

/// Why decoding stopped. After an error the [`Decoder`](crate::Decoder) is dead: every later
/// call to [`poll_event`](crate::Decoder::poll_event) returns the same error again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The first 9 bytes are not `REDISnnnn` / `VALKEYnnn`.
    #[error(
        "not an RDB file: bad magic {found:?} at offset 0 (expected \"REDIS\" + 4 digits or \"VALKEY\" + 3 digits); check that the input is a dump.rdb or a replication payload"
    )]
    BadMagic {
        /// The bytes found, lossily as text.
        found: String,
    },
    /// The version is newer than this decoder knows (or is not a valid version at all).
    #[error(
        "unsupported RDB version {version} ({flavor:?} magic) at offset {offset}: this decoder knows up to {newest}; upgrade redis-sync, or set DecoderBuilder::allow_newer_version(true) to try anyway"
    )]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
        /// The magic's family.
        flavor: Flavor,
        /// The newest version known for that family.
        newest: u32,
        /// Byte offset of the version digits.
        offset: u64,
    },
    /// The input ended before the file did.
    #[error(
        "truncated RDB: input ended at offset {offset} while reading {context}{}; the file or transfer was cut short",
        fmt_key(key)
    )]
    Truncated {
        /// How many bytes were received.
        offset: u64,
        /// What was being read.
        context: &'static str,
        /// The key being read, if any.
        key: Option<Bytes>,
    },
    /// A length prefix (RDB-FORMAT.md §3) uses an invalid first byte.
    #[error(
        "corrupt RDB at offset {offset}{}: bad length encoding byte {byte:#04x} ({context})",
        fmt_key(key)
    )]
    BadLength {
        /// Byte offset of the length's first byte.
        offset: u64,
        /// The offending byte.
        byte: u8,
        /// Where a length was expected.
        context: &'static str,
        /// The key being read, if any.
        key: Option<Bytes>,
    },
    /// An embedded ziplist / listpack / intset / zipmap / stream node is inconsistent.
    #[error(
        "corrupt RDB at offset {offset}{}: invalid {encoding}: {what}",
        fmt_key(key)
    )]
    BadBlob {
        /// Byte offset of the blob's string record in the file.
        offset: u64,
        /// `ziplist`, `listpack`, `intset`, `zipmap`, `stream listpack`.
        encoding: &'static str,
        /// What was wrong, with the position inside the blob.
        what: String,
        /// The key being read, if any.
        key: Option<Bytes>,
    },
    /// An LZF-compressed string does not decompress to its declared length.
    #[error("corrupt RDB at offset {offset}{}: bad LZF data: {what}", fmt_key(key))]
    BadLzf {
        /// Byte offset of the compressed string record.
        offset: u64,
        /// What was wrong.
        what: String,
        /// The key being read, if any.
        key: Option<Bytes>,
    },
    /// Any other structural problem (bad value, inconsistent counts, invalid opcode payload).
    #[error("corrupt RDB at offset {offset}{}: {what}", fmt_key(key))]
    Corrupt {
        /// Byte offset where the problem was seen.
        offset: u64,
        /// What was wrong.
        what: String,
        /// The key being read, if any.
        key: Option<Bytes>,
    },
    /// A type or opcode byte this decoder does not know for this file's version and flavor.
    #[error(
        "unknown RDB type/opcode {byte} ({byte:#04x}) at offset {offset} in a {flavor:?} RDB version {version}{}; the file is corrupt or was written by a server/fork this decoder does not support",
        fmt_key(key)
    )]
    UnknownType {
        /// The byte.
        byte: u8,
        /// Byte offset of the type byte.
        offset: u64,
        /// The file's RDB version.
        version: u32,
        /// The file's flavor.
        flavor: Flavor,
        /// The key, when the byte was a value type whose key was already read (never today).
        key: Option<Bytes>,
    },
    /// A known construct this decoder cannot read (module pre-GA values, layouts of RDB 14+).
    #[error("unsupported RDB content at offset {offset}{}: {what}", fmt_key(key))]
    Unsupported {
        /// Byte offset.
        offset: u64,
        /// What it is and what to do.
        what: String,
        /// The key, if known.
        key: Option<Bytes>,
    },
    /// A size exceeds one of the decoder's configured limits.
    #[error(
        "limit exceeded at offset {offset}{}: {what} of {size} bytes is over the limit of {limit}; raise DecoderBuilder::{setting} if the file is trusted",
        fmt_key(key)
    )]
    TooLarge {
        /// Byte offset of the record.
        offset: u64,
        /// What is too large.
        what: &'static str,
        /// Its declared size.
        size: u64,
        /// The configured limit.
        limit: u64,
        /// The builder method that sets the limit.
        setting: &'static str,
        /// The key, if known.
        key: Option<Bytes>,
    },
    /// The CRC-64 trailer does not match the bytes.
    #[error(
        "checksum mismatch at offset {offset}: the file's CRC-64 trailer is {stored:#018x} but the bytes hash to {computed:#018x}; the file is corrupt (or disable checking with DecoderBuilder::verify_checksum(false))"
    )]
    ChecksumMismatch {
        /// The value stored in the file.
        stored: u64,
        /// The value computed over magic..EOF opcode.
        computed: u64,
        /// Byte offset of the trailer.
        offset: u64,
    },
}

impl Error {
    /// The byte offset the error refers to (0 for a bad magic).
    pub fn offset(&self) -> u64 {
        match self {
            Error::BadMagic { .. } => 0,
            Error::UnsupportedVersion { offset, .. }
            | Error::Truncated { offset, .. }
            | Error::BadLength { offset, .. }
            | Error::BadBlob { offset, .. }
            | Error::BadLzf { offset, .. }
            | Error::Corrupt { offset, .. }
            | Error::UnknownType { offset, .. }
            | Error::Unsupported { offset, .. }
            | Error::TooLarge { offset, .. }
            | Error::ChecksumMismatch { offset, .. } => *offset,
        }
    }

    /// The key being decoded when the error happened, if any.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Error::Truncated { key, .. }
            | Error::BadLength { key, .. }
            | Error::BadBlob { key, .. }
            | Error::BadLzf { key, .. }
            | Error::Corrupt { key, .. }
            | Error::UnknownType { key, .. }
            | Error::Unsupported { key, .. }
            | Error::TooLarge { key, .. } => key.as_ref(),
            _ => None,
        }
    }

    /// Attach the current key to an error raised by a low-level reader that did not know it.
    pub(crate) fn with_key(mut self, current: Option<&[u8]>) -> Self {
        let Some(current) = current else { return self };
        match &mut self {
            Error::Truncated { key, .. }
            | Error::BadLength { key, .. }
            | Error::BadBlob { key, .. }
            | Error::BadLzf { key, .. }
            | Error::Corrupt { key, .. }
            | Error::UnknownType { key, .. }
            | Error::Unsupported { key, .. }
            | Error::TooLarge { key, .. }
                if key.is_none() =>
            {
                *key = Some(Bytes::copy_from_slice(current));
            }
            _ => {}
        }
        self
    }

    pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt {
            offset,
            what: what.into(),
            key: None,
        }
    }

    pub(crate) fn blob(offset: u64, encoding: &'static str, what: impl Into<String>) -> Self {
        Error::BadBlob {
            offset,
            encoding,
            what: what.into(),
            key: None,
        }
    }
}

/// Formats `key` for messages: printable ASCII kept, other bytes escaped, long keys cut.
fn fmt_key(key: &Option<Bytes>) -> String {
    let Some(key) = key else {
        return String::new();
    };
    let mut s = String::from(" (key \"");
    for &b in key.iter().take(80) {
        if b.is_ascii_graphic() || b == b' ' {
            if b == b'"' || b == b'\\' {
                s.push('\\');
            }
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if key.len() > 80 {
        s.push_str("\"…");
    } else {
        s.push('"');
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_offset_and_key() {
        let e = Error::corrupt(42, "bad thing").with_key(Some(&b"k\x01"[..]));
        let m = e.to_string();
        assert!(m.contains("offset 42"), "{m}");
        assert!(m.contains("key \"k\\x01\""), "{m}");
        assert_eq!(e.offset(), 42);
        assert_eq!(e.key().map(|k| &k[..]), Some(&b"k\x01"[..]));
    }
}
