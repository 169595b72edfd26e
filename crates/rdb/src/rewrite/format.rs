//! Text forms of numbers for command arguments, and RESP encoding of a command.

use bytes::{BufMut, Bytes, BytesMut};

/// A sorted-set score as `ZADD` parses it (`strtod`), so that it reads back as the same `f64`.
///
/// Rust's float formatting prints the shortest digit string that round-trips. Positional form
/// is used for ordinary magnitudes and exponent form for very large or small ones (so `1e300`
/// stays 5 bytes instead of 301). Infinities are `inf` / `-inf`, which `ZADD` accepts; `-0.0`
/// keeps its sign (`-0`).
pub fn score(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f.is_nan() {
        // Not storable in a sorted set; kept for completeness (ZADD rejects it loudly).
        return "nan".into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// An integer argument.
pub(crate) fn int(i: impl std::fmt::Display) -> Bytes {
    Bytes::from(i.to_string())
}

/// Appends `cmd` as a RESP array of bulk strings (what `redis-cli --pipe` and every server
/// read) to `out`.
pub fn write_resp(cmd: &[Bytes], out: &mut Vec<u8>) {
    out.reserve(16 + cmd.iter().map(|a| a.len() + 16).sum::<usize>());
    out.push(b'*');
    out.extend_from_slice(cmd.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in cmd {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// [`write_resp`] into a fresh buffer.
pub fn to_resp(cmd: &[Bytes]) -> Bytes {
    let mut v = Vec::new();
    write_resp(cmd, &mut v);
    let mut b = BytesMut::with_capacity(v.len());
    b.put_slice(&v);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip() {
        let cases = [
            0.1,
            -2.5,
            1e300,
            -1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            123456789.125,
            1e16,
            f64::from_bits(1e16f64.to_bits() - 1),
            1e-4,
            9.99e-5,
            3.0,
            -0.0,
            0.0,
        ];
        for f in cases {
            let s = score(f);
            let back: f64 = s.parse().expect("parses");
            assert_eq!(back.to_bits(), f.to_bits(), "{f} printed as {s}");
        }
        assert_eq!(score(0.1), "0.1");
        assert_eq!(score(1e300), "1e300");
        assert_eq!(score(3.0), "3");
        assert_eq!(score(-0.0), "-0");
        assert_eq!(score(f64::INFINITY), "inf");
        assert_eq!(score(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn resp_encoding() {
        let cmd = [
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"k"),
            Bytes::new(),
        ];
        assert_eq!(
            &to_resp(&cmd)[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }
}
