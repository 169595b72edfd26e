//! Arbitrary bytes, arbitrarily chunked, into the RDB decoder: it must never panic or hang, and
//! chunked decoding must give exactly the events (and error) of whole-input decoding.
//!
//! The first byte picks the chunk sizes and the chunk budget; the rest is the input.
//!
//! The checks live in `crates/rdb/tests/fuzz_checks/rdb_decode.rs`, so that `cargo test` runs
//! `fuzz/seeds/rdb_decode/` and `fuzz/regressions/rdb_decode/` through the same code.
#![no_main]

#[path = "../../crates/rdb/tests/fuzz_checks/rdb_decode.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::check(input));
