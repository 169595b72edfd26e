//! CRC-64/Jones as Redis computes it (RDB-FORMAT.md §11), via `crc-fast`'s `Crc64Redis`.

/// CRC-64/REDIS of `bytes` (poly `0xad93d23594c935a9` reflected, init 0, xorout 0).
pub fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xe9c6d914c4b8d9ca);
    }
}
