//! Redis Cluster hash slots: CRC16/XMODEM of the key (or of its `{hash tag}`) modulo 16384.
//!
//! The rule, as in Redis's `keyHashSlot` (cluster.c): if the key has a `{`, and a `}` after
//! it, and at least one byte between them, only the bytes between the first `{` and the first
//! `}` after it are hashed. Otherwise the whole key is hashed. `{}` (empty) does not count as
//! a tag, and the key is hashed whole.

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), table-driven:
/// `CRC16_TABLES[k][v]` is the CRC of byte `v` followed by `k` zero bytes. `[0]` is the classic
/// 256-entry table; the others let [`crc16`] take four bytes per step with four independent
/// look-ups instead of a chain of four dependent ones (the CRC is linear, so the CRC of a
/// block is the XOR of the CRCs of its bytes in place).
const CRC16_TABLES: [[u16; 256]; 4] = {
    let mut t = [[0u16; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut v = 0;
        while v < 256 {
            // One more zero byte after the CRC of `v` followed by k-1 zeros.
            let prev = t[k - 1][v];
            t[k][v] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            v += 1;
        }
        k += 1;
    }
    t
};

/// CRC16/XMODEM of `data` (`crc16(b"123456789") == 0x31c3`).
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    let t = &CRC16_TABLES;
    let mut crc: u16 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let x = crc ^ u16::from_be_bytes([c[0], c[1]]);
        crc = t[3][usize::from(x >> 8)]
            ^ t[2][usize::from(x & 0xff)]
            ^ t[1][usize::from(c[2])]
            ^ t[0][usize::from(c[3])];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ t[0][usize::from(((crc >> 8) as u8) ^ b)];
    }
    crc
}

/// The index of the first `needle` in `hay`, eight bytes at a time (SWAR: a byte of
/// `word ^ needle*ONES` is zero exactly where the needle is).
#[inline]
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            ^ (ONES * u64::from(needle));
        let zero = w.wrapping_sub(ONES) & !w & HIGHS;
        if zero != 0 {
            // The lowest flagged byte is the first zero byte (borrows only run upwards).
            return Some(base + (zero.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

/// The part of `key` that is hashed: the hash tag if there is a non-empty one, else the key.
#[inline(always)]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = find_byte(key, b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = find_byte(rest, b'}')
            && close > 0
        {
            return &rest[..close];
        }
    }
    key
}

/// The cluster hash slot (0..16384) of `key`, as `CLUSTER KEYSLOT` computes it.
///
/// ```
/// use redis_sync_commands::hash_slot;
/// assert_eq!(hash_slot(b"foo"), 12182);
/// assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
/// assert_eq!(redis_sync_commands::hash_tag(b"foo{}{bar}"), b"foo{}{bar}"); // `{}` is no tag
/// ```
#[inline]
pub fn hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOT_COUNT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain bit-by-bit definition, to check the table-driven one.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b""), 0);
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(
                crc16(&data[..len]),
                crc16_bitwise(&data[..len]),
                "length {len}"
            );
        }
    }

    #[test]
    fn find_byte_matches_position() {
        let hay: Vec<u8> = (0..64usize)
            .map(|i| [b'a', b'{', 0x7a, 0xfb, b'}', 0x00][i * 7 % 13 % 6])
            .collect();
        for start in 0..hay.len() {
            for len in 0..hay.len() - start {
                let h = &hay[start..start + len];
                for needle in [b'{', b'}', 0u8, 0xfb, b'q'] {
                    assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle));
                }
            }
        }
    }

    /// The rule written the plain way: first `{`, first `}` after it, non-empty between.
    fn hash_slot_ref(key: &[u8]) -> u16 {
        let tag = key
            .iter()
            .position(|&b| b == b'{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                rest.iter()
                    .position(|&b| b == b'}')
                    .map(|close| &rest[..close])
            })
            .filter(|t| !t.is_empty())
            .unwrap_or(key);
        crc16_bitwise(tag) & 0x3fff
    }

    /// The word-at-a-time tag search and four-byte CRC steps agree with the plain rule for
    /// every slice of a buffer dense in braces: every tag position, length and alignment.
    #[test]
    fn hash_slot_matches_the_plain_rule() {
        let buf: Vec<u8> = (0..80u32)
            .map(|i| match (i.wrapping_mul(2_654_435_761) >> 11) % 7 {
                0 => b'{',
                1 => b'}',
                2 => 0,
                v => (i * 31 + v) as u8,
            })
            .collect();
        for start in 0..buf.len() {
            for end in start..buf.len() {
                let key = &buf[start..end];
                assert_eq!(hash_slot(key), hash_slot_ref(key), "{key:?}");
            }
        }
    }

    #[test]
    fn tags() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"bar"), 5061);
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"{}"), b"{}");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"}{a"), b"}{a");
        assert_eq!(hash_tag(b"x}{a}"), b"a");
        assert_eq!(hash_slot(b""), 0);
    }
}
