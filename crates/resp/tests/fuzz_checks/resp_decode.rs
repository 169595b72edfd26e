//! The checks of the cargo-fuzz target `resp_decode`: both its
//! `fuzz/fuzz_targets/resp_decode.rs` and `tests/fuzz_inputs.rs` include this file, so
//! `cargo test` runs the checked-in seeds and regressions through the same checks.
//!
//! Arbitrary bytes, fed to the RESP decoder in arbitrary chunk sizes (taken from the input's
//! first bytes), through both the frame path and the command fast path.
//!
//! Checks: no panic; chunking never changes the result (the frames, their byte sizes and where
//! an error happens are the same as when the whole input is given at once); byte counts add up;
//! and every decoded frame re-encodes to bytes that decode to the same frame with the size of
//! the re-encoding.
use bytes::BytesMut;
use redis_sync_resp::{Command, Decoder, Frame, encode};

#[derive(Debug, PartialEq)]
enum Outcome<T> {
    Items(Vec<(T, usize)>),
    Failed(Vec<(T, usize)>, Option<u64>),
}

fn run<T>(
    data: &[u8],
    sizes: &[u8],
    mut next: impl FnMut(
        &mut Decoder,
        &mut BytesMut,
    ) -> Result<Option<(T, usize)>, redis_sync_resp::Error>,
) -> Outcome<T> {
    let mut d = Decoder::builder()
        .max_depth(32)
        .max_line_len(4096)
        .max_bulk_len(1 << 20)
        .build();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        // Chunk sizes cycle through `sizes` (1..=256 bytes each); the whole input if none.
        let size = if sizes.is_empty() {
            rest.len()
        } else {
            usize::from(sizes[i % sizes.len()]) + 1
        };
        i += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match next(&mut d, &mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => {
                    assert!(d.is_dead());
                    return Outcome::Failed(out, e.offset());
                }
            }
        }
    }
    let consumed: usize = out.iter().map(|(_, n)| n).sum();
    assert_eq!(consumed as u64, d.position());
    assert_eq!(consumed + buf.len(), data.len());
    Outcome::Items(out)
}

fn frames(
    d: &mut Decoder,
    b: &mut BytesMut,
) -> Result<Option<(Frame, usize)>, redis_sync_resp::Error> {
    d.decode(b)
}

fn commands(
    d: &mut Decoder,
    b: &mut BytesMut,
) -> Result<Option<(Command, usize)>, redis_sync_resp::Error> {
    Ok(d.decode_command(b)?.map(|c| {
        let n = c.wire_len();
        (c, n)
    }))
}

/// The fuzz target's body: panics when a check fails.
pub fn check(input: &[u8]) {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let (sizes, data) = rest.split_at(usize::from(n % 8).min(rest.len()));

    let whole = run(data, &[], frames);
    let chunked = run(data, sizes, frames);
    assert_eq!(whole, chunked);
    let (Outcome::Items(decoded) | Outcome::Failed(decoded, _)) = &whole;
    for (frame, _) in decoded {
        let mut wire = BytesMut::new();
        encode(frame, &mut wire);
        let len = wire.len();
        let again = Decoder::new()
            .decode(&mut wire)
            .expect("re-encoded frame decodes");
        assert_eq!(again, Some((frame.clone(), len)));
        assert!(wire.is_empty());
    }

    let whole = run(data, &[], commands);
    let chunked = run(data, sizes, commands);
    assert_eq!(whole, chunked);
    let (Outcome::Items(decoded) | Outcome::Failed(decoded, _)) = &whole;
    for (cmd, _) in decoded {
        let mut wire = BytesMut::new();
        cmd.encode(&mut wire);
        let again = Decoder::new()
            .decode_command(&mut wire)
            .expect("re-encoded command decodes");
        assert_eq!(again.as_ref(), Some(cmd));
    }
}
