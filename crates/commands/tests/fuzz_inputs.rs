//! The checked-in inputs of the cargo-fuzz target `classify`: the seeds, `fuzz/seeds/<target>/`,
//! and the crashes CI kept, `fuzz/regressions/<target>/`, through the target's own checks
//! (`fuzz_checks/<target>.rs`). None may panic; decoding errors are fine.

#[path = "fuzz_checks/classify.rs"]
mod classify;

#[test]
fn classify_seeds_and_regressions() {
    redis_sync_testkit::check_fuzz_inputs("classify", classify::check);
}
