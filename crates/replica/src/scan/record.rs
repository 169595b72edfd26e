//! The synthetic RDB of the SCAN source: each `DUMP` payload is framed as an RDB key record so
//! that the one streaming RDB decoder reads it, and the rest of the pipeline (filters, the
//! RESTORE-or-native loader, progress, sweep) sees the same events as from a snapshot.
//!
//! A `DUMP` payload is `<type byte> <value as in an RDB> <RDB version: 2 bytes LE> <CRC-64: 8
//! bytes LE>` (Redis `cluster.c`, `createDumpPayload`; the CRC covers everything before it).
//! An RDB key record is `[0xFC <ms: 8 bytes LE>] <type byte> <key as an RDB string> <value>`
//! (RDB-FORMAT.md §4), so a record is made of the payload's first byte, the key, and the
//! payload's value bytes, streamed through as they arrive: a large value is never held whole.
//! The file around the records is `REDIS<4 digits>` (or `VALKEY<3 digits>` for Valkey 9's
//! version 80 and later), `0xFE <db>` where the db changes, and `0xFF` with a zero checksum
//! (`rdbchecksum no`: each payload's own CRC-64 is checked here instead).
//!
//! Sans-IO: bytes in, bytes out.

/// A payload ends with the 2-byte RDB version and the 8-byte CRC-64.
pub(crate) const TRAILER: u64 = 10;

/// Opcodes (RDB-FORMAT.md §3).
const EXPIRETIME_MS: u8 = 0xFC;
const SELECTDB: u8 = 0xFE;
const FUNCTION2: u8 = 0xF5;
const EOF: u8 = 0xFF;

/// The file header for payloads of RDB `version`: Valkey 9 numbers its format 80 and up, and
/// only reads it under its own magic.
pub(crate) fn header(version: u16) -> Vec<u8> {
    if version >= 80 {
        format!("VALKEY{version:03}").into_bytes()
    } else {
        format!("REDIS{version:04}").into_bytes()
    }
}

/// `SELECTDB db`.
pub(crate) fn select_db(db: u32, out: &mut Vec<u8>) {
    out.push(SELECTDB);
    length(u64::from(db), out);
}

/// A function library (`FUNCTION2` opcode, RDB 10+: its code as an RDB string).
pub(crate) fn function(code: &[u8], out: &mut Vec<u8>) {
    out.push(FUNCTION2);
    length(code.len() as u64, out);
    out.extend_from_slice(code);
}

/// The end of the file: the EOF opcode and a checksum of 0 ("not computed").
pub(crate) fn end(out: &mut Vec<u8>) {
    out.push(EOF);
    out.extend_from_slice(&[0; 8]);
}

/// What comes before a key's value bytes: its expiry, its type byte (the payload's first
/// byte) and its name.
pub(crate) fn key_start(key: &[u8], type_byte: u8, expire_ms: Option<i64>, out: &mut Vec<u8>) {
    if let Some(ms) = expire_ms {
        out.push(EXPIRETIME_MS);
        out.extend_from_slice(&ms.to_le_bytes());
    }
    out.push(type_byte);
    length(key.len() as u64, out);
    out.extend_from_slice(key);
}

/// An RDB length (RDB-FORMAT.md §2): 6 bits, 14 bits, 32 bits or 64 bits big-endian.
pub(crate) fn length(n: u64, out: &mut Vec<u8>) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if let Ok(n32) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n32.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// What a piece of a payload holds, by position.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// The type byte, in the piece that holds the payload's first byte.
    pub(crate) type_byte: Option<u8>,
    /// Value bytes (neither the type byte nor the trailer).
    pub(crate) value: &'a [u8],
}

/// One `DUMP` payload of a known length, taken apart as its pieces arrive: the type byte, the
/// value bytes to stream on, and the trailer, whose version and CRC-64 are checked at the end.
#[derive(Debug)]
pub(crate) struct Payload {
    len: u64,
    seen: u64,
    trailer: [u8; TRAILER as usize],
    crc: crc_fast::Digest,
}

impl Payload {
    /// A payload of `len` bytes (the `DUMP` reply's bulk length); `None` when it is too short
    /// to be one (a type byte and the trailer at least).
    pub(crate) fn new(len: u64) -> Option<Payload> {
        (len > TRAILER).then(|| Payload {
            len,
            seen: 0,
            trailer: [0; TRAILER as usize],
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis),
        })
    }

    /// Bytes still to come.
    pub(crate) fn remaining(&self) -> u64 {
        self.len - self.seen
    }

    /// Takes the next piece (at most [`remaining`](Self::remaining) bytes; more is the
    /// caller's bug and is ignored).
    pub(crate) fn handle<'a>(&mut self, piece: &'a [u8]) -> Split<'a> {
        let take = usize::try_from(self.remaining()).map_or(piece.len(), |r| r.min(piece.len()));
        let piece = &piece[..take];
        // The CRC covers all but its own 8 bytes.
        let crc_end = self.len - 8;
        let covered = usize::try_from(crc_end.saturating_sub(self.seen)).unwrap_or(usize::MAX);
        self.crc.update(&piece[..covered.min(piece.len())]);
        let mut split = Split::default();
        let mut rest = piece;
        if self.seen == 0 && !rest.is_empty() {
            split.type_byte = Some(rest[0]);
            rest = &rest[1..];
            self.seen = 1;
        }
        let value_end = self.len - TRAILER;
        let value_len = usize::try_from(value_end.saturating_sub(self.seen))
            .unwrap_or(usize::MAX)
            .min(rest.len());
        split.value = &rest[..value_len];
        self.seen += value_len as u64;
        for &b in &rest[value_len..] {
            // In the trailer now: seen >= value_end.
            let at = usize::try_from(self.seen - value_end).unwrap_or(0);
            if let Some(slot) = self.trailer.get_mut(at) {
                *slot = b;
            }
            self.seen += 1;
        }
        split
    }

    /// The payload's RDB version, once it is whole and its CRC-64 matched.
    pub(crate) fn finish(self) -> Result<u16, String> {
        if self.seen != self.len {
            return Err(format!("cut short: {} of {} bytes", self.seen, self.len));
        }
        let version = u16::from_le_bytes([self.trailer[0], self.trailer[1]]);
        let mut crc = [0u8; 8];
        crc.copy_from_slice(&self.trailer[2..]);
        let stored = u64::from_le_bytes(crc);
        let computed = self.crc.finalize();
        if stored != computed {
            return Err(format!(
                "CRC-64 mismatch (stored {stored:#018x}, computed {computed:#018x})"
            ));
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_sync_rdb::{Checksum, Decoder, DecoderBuilder, Event, ValueChunk};

    /// `DUMP` of the string "hello" as Redis 7.0 writes it (type 0, RDB string, version 10).
    fn dump_hello(version: u16) -> Vec<u8> {
        let mut p = vec![0u8, 5];
        p.extend_from_slice(b"hello");
        p.extend_from_slice(&version.to_le_bytes());
        let crc = redis_sync_rdb::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    fn record(payload: &[u8], key: &[u8], expire: Option<i64>, cut: usize) -> Vec<u8> {
        let mut p = Payload::new(payload.len() as u64).expect("long enough");
        let mut out = Vec::new();
        let mut value = Vec::new();
        let mut type_byte = None;
        for piece in payload.chunks(cut) {
            let s = p.handle(piece);
            type_byte = type_byte.or(s.type_byte);
            value.extend_from_slice(s.value);
        }
        assert_eq!(p.finish(), Ok(10));
        key_start(key, type_byte.expect("type"), expire, &mut out);
        out.extend_from_slice(&value);
        out
    }

    #[test]
    fn a_payload_in_any_pieces_becomes_a_record_the_decoder_reads() {
        let payload = dump_hello(10);
        for cut in 1..=payload.len() {
            let mut file = header(10);
            select_db(3, &mut file);
            file.extend(record(&payload, b"k", Some(1_900_000_000_000), cut));
            end(&mut file);
            let mut d: Decoder = DecoderBuilder::new().restore_payloads(None).build();
            d.handle_bytes(&file);
            let mut events = Vec::new();
            while let Some(e) = d.poll_event().expect("decodes") {
                events.push(e);
            }
            assert!(
                matches!(&events[2], Event::Key(k) if k.key == "k" && k.db == 3
                && k.expire_ms == Some(1_900_000_000_000))
            );
            assert_eq!(events[3], Event::Value(ValueChunk::String("hello".into())));
            // The decoder rebuilds the same payload, so RESTORE gets the source's bytes.
            assert_eq!(
                events[4],
                Event::KeyEnd {
                    restore_payload: Some(payload.clone().into())
                }
            );
            assert_eq!(events[5], Event::End(Checksum::Disabled));
        }
    }

    #[test]
    fn a_damaged_or_short_payload_is_refused() {
        let mut payload = dump_hello(10);
        payload[3] ^= 1;
        let mut p = Payload::new(payload.len() as u64).expect("long enough");
        p.handle(&payload);
        assert!(p.finish().expect_err("bad crc").contains("CRC-64"));
        let payload = dump_hello(10);
        let mut p = Payload::new(payload.len() as u64).expect("long enough");
        p.handle(&payload[..5]);
        assert!(p.finish().expect_err("short").contains("cut short"));
        assert!(Payload::new(10).is_none());
    }

    #[test]
    fn lengths_and_headers_follow_the_format() {
        let enc = |n| {
            let mut v = Vec::new();
            length(n, &mut v);
            v
        };
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16_383), [0x7f, 0xff]);
        assert_eq!(enc(16_384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(header(9), b"REDIS0009");
        assert_eq!(header(80), b"VALKEY080");
    }
}
