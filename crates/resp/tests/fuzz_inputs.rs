//! The checked-in inputs of the cargo-fuzz target `resp_decode`: the seeds, `fuzz/seeds/<target>/`,
//! and the crashes CI kept, `fuzz/regressions/<target>/`, through the target's own checks
//! (`fuzz_checks/<target>.rs`). None may panic; decoding errors are fine.

#[path = "fuzz_checks/resp_decode.rs"]
mod resp_decode;

#[test]
fn resp_decode_seeds_and_regressions() {
    redis_sync_testkit::check_fuzz_inputs("resp_decode", resp_decode::check);
}
