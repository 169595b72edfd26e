//! Shared input generators for the criterion benches in this folder.
//!
//! The benches compare redis-sync's crates with peer crates on the same bytes, in one run, so
//! that the README can report a ratio rather than an absolute figure from a noisy machine.

/// Appends `n` pipelined `SET key:{12 digits} <value>` commands, each value `value_len` bytes,
/// as RESP arrays of bulk strings (what a client or a replication stream sends).
pub fn pipelined_sets(n: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let mut out = Vec::with_capacity(n * (value_len + 48));
    for i in 0..n {
        out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$16\r\n");
        out.extend_from_slice(format!("key:{i:012}").as_bytes());
        out.extend_from_slice(format!("\r\n${value_len}\r\n").as_bytes());
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_sets_are_well_formed() {
        let b = pipelined_sets(2, 5);
        let text = String::from_utf8(b).expect("ascii");
        assert!(
            text.starts_with("*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000000\r\n$5\r\nxxxxx\r\n*3")
        );
        assert_eq!(text.matches("*3\r\n").count(), 2);
    }
}
