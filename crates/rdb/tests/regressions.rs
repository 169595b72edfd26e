//! Regression tests for inputs found by fuzzing (`fuzz/fuzz_targets/rdb_*.rs`). Each file in
//! `tests/regressions/` is a fuzz input: its first byte picks the chunking (as in `rdb_decode`),
//! the rest is the RDB bytes. Decoding must not panic, and must give the same events and error
//! whatever the chunking.
#![allow(clippy::unwrap_used)]

use redis_sync_rdb::{Decoder, DecoderBuilder};

fn run(b: DecoderBuilder, data: &[u8], step: usize) -> (Vec<String>, Option<String>) {
    let mut d = b.build();
    let mut events = Vec::new();
    for piece in data.chunks(step.max(1)) {
        d.handle_bytes(piece);
        loop {
            match d.poll_event() {
                Ok(Some(e)) => events.push(format!("{e:?}")),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
    d.handle_eof();
    loop {
        match d.poll_event() {
            Ok(Some(e)) => events.push(format!("{e:?}")),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e.to_string())),
        }
    }
}

fn check(data: &[u8]) {
    for budget in [1usize, 7, 64, 65536] {
        let b = Decoder::builder().chunk_budget(budget);
        let whole = run(b.clone(), data, data.len());
        for step in [1, 2, 3, 17, 100] {
            assert_eq!(
                whole,
                run(b.clone(), data, step),
                "budget {budget}, step {step}"
            );
        }
    }
}

/// An LZF error message used to give the position within the piece of input fed, not within
/// the compressed string, so it differed with the chunking.
#[test]
fn lzf_error_position_is_independent_of_chunking() {
    let input = include_bytes!("regressions/fuzz-lzf-error-position.bin");
    check(&input[1..]);
    let (_, err) = run(Decoder::builder(), &input[1..], 1);
    let err = err.unwrap();
    assert!(
        err.contains("bad LZF data") && err.contains("offset 100"),
        "{err}"
    );
}

/// An error in the same step as a key's start (a small string value read right after the key)
/// used to drop the already queued `Key` event, which 1-byte feeding had delivered.
#[test]
fn events_before_an_error_do_not_depend_on_chunking() {
    let input = include_bytes!("regressions/fuzz-2.bin");
    check(&input[1..]);
    let (events, err) = run(Decoder::builder(), &input[1..], input.len());
    assert!(err.unwrap().contains("bad length encoding"));
    assert!(events.last().unwrap().starts_with("Key("), "{events:?}");
}
