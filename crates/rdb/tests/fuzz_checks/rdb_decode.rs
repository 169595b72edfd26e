//! The checks of the cargo-fuzz target `rdb_decode`: both its
//! `fuzz/fuzz_targets/rdb_decode.rs` and `tests/fuzz_inputs.rs` include this file, so
//! `cargo test` runs the checked-in seeds and regressions through the same checks.
//!
//! Arbitrary bytes, arbitrarily chunked, into the RDB decoder: it must never panic or hang, and
//! chunked decoding must give exactly the events (and error) of whole-input decoding.
//!
//! The first byte picks the chunk sizes and the chunk budget; the rest is the input.
use redis_sync_rdb::{Decoder, DecoderBuilder};

fn run(b: DecoderBuilder, data: &[u8], step: usize) -> (Vec<String>, Option<String>) {
    let mut d = b.build();
    let mut events = Vec::new();
    let mut pos = 0;
    loop {
        let n = step.min(data.len() - pos);
        d.handle_bytes(&data[pos..pos + n]);
        pos += n;
        if pos == data.len() {
            d.handle_eof();
        }
        loop {
            match d.poll_event() {
                Ok(Some(e)) => events.push(format!("{e:?}")),
                Ok(None) => break,
                Err(e) => {
                    // Dead decoders keep returning the error.
                    assert_eq!(d.poll_event().err(), Some(e.clone()));
                    return (events, Some(e.to_string()));
                }
            }
        }
        if pos == data.len() {
            return (events, None);
        }
    }
}

/// The fuzz target's body: panics when a check fails.
pub fn check(input: &[u8]) {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let budget = [1usize, 7, 64, 65536][(ctl & 3) as usize];
    let step = 1 + (ctl >> 2) as usize;
    let b = Decoder::builder()
        .chunk_budget(budget)
        .max_element_size(1 << 20)
        .max_blob_size(1 << 20)
        .restore_payloads(Some(1 << 16))
        .verify_checksum(ctl & 0x80 == 0);
    let whole = run(b.clone(), data, data.len().max(1));
    let chunked = run(b, data, step);
    assert_eq!(whole, chunked);
}
