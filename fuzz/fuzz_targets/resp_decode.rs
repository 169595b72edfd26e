//! Arbitrary bytes, fed to the RESP decoder in arbitrary chunk sizes (taken from the input's
//! first bytes), through both the frame path and the command fast path.
//!
//! Checks: no panic; chunking never changes the result (the frames, their byte sizes and where
//! an error happens are the same as when the whole input is given at once); byte counts add up;
//! and every decoded frame re-encodes to bytes that decode to the same frame with the size of
//! the re-encoding.
//!
//! The checks live in `crates/resp/tests/fuzz_checks/resp_decode.rs`, so that `cargo test` runs
//! `fuzz/seeds/resp_decode/` and `fuzz/regressions/resp_decode/` through the same code.
#![no_main]

#[path = "../../crates/resp/tests/fuzz_checks/resp_decode.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::check(input));
