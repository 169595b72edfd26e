//! Real RDB files mutated by libFuzzer, randomly chunked. The seeds, `fuzz/seeds/rdb_mutate/`,
//! are small dumps of real servers (`scripts/fuzz-seeds.sh`); for a longer run, add the shared
//! corpus to a scratch corpus directory:
//!
//! ```sh
//! mkdir -p fuzz/corpus/rdb_mutate
//! cp fuzz/seeds/rdb_mutate/* fuzz/corpus/rdb_mutate/
//! find ${REDIS_SYNC_CORPUS:-../shared/rdb-corpus} -name '*.rdb' -exec cp {} fuzz/corpus/rdb_mutate/ \;
//! cargo fuzz run --sanitizer none rdb_mutate fuzz/corpus/rdb_mutate -- -max_total_time=600 \
//!     -max_len=200000
//! ```
//!
//! The checksum is not verified, so mutations reach past the first corrupted byte into every
//! value decoder; chunked decoding must equal whole-input decoding. The chunking comes from a
//! hash of the input, so the file bytes stay as the mutator made them.
//!
//! The checks live in `crates/rdb/tests/fuzz_checks/rdb_mutate.rs`, so that `cargo test` runs
//! `fuzz/seeds/rdb_mutate/` and `fuzz/regressions/rdb_mutate/` through the same code.
#![no_main]

#[path = "../../crates/rdb/tests/fuzz_checks/rdb_mutate.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
