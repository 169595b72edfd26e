//! Arbitrary argument lists through the command classifier, the cluster splitter, the
//! transaction splitter and a filter.
//!
//! The input's first byte picks a command (or subcommand) from the table, so the fuzzer starts
//! from real names; the rest is split into arguments on 0xff bytes (names, keys with and
//! without tags, counts and keywords all come out of that). A second form, first byte 0xff,
//! uses the raw first argument as the name, for unknown and oddly cased names.
//!
//! Checks: no panic; every key position is a real argument other than the name; a `Slot`
//! route is the slot of every key and `CrossSlot` means two keys differ; every part of a
//! split holds only keys of its slot, and the parts' keys are the original's keys.
//!
//! The checks live in `crates/commands/tests/fuzz_checks/classify.rs`, so that `cargo test` runs
//! `fuzz/seeds/classify/` and `fuzz/regressions/classify/` through the same code.
#![no_main]

#[path = "../../crates/commands/tests/fuzz_checks/classify.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
