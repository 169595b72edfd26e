#!/usr/bin/env bash
# CI's fuzzing: every cargo-fuzz target (`cargo fuzz list`) for a bounded time, one after the
# other, each from the checked-in seeds (fuzz/seeds/<target>/) and earlier crashes
# (fuzz/regressions/<target>/):
#
#   scripts/fuzz-ci.sh [SECONDS]      # SECONDS per target, default 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; .ci/run installs it) and runs on stable
# Rust: `--sanitizer none` needs no nightly flag. The corpus grows in a scratch copy, so the
# repository is never written to, except when a target fails: then the input that crashed
# (panic, hang longer than UNIT_TIMEOUT, or more than 2 GB of memory) is copied to
# fuzz/regressions/<target>/, to be committed once fixed (`cargo test` replays that directory
# through the target's checks), and the script exits 1 after the other targets have run.
#
# Environment: FUZZ_TARGETS (names, space-separated; default all), FUZZ_TARGET_DIR (cargo's
# target directory for the instrumented build; default fuzz/target), UNIT_TIMEOUT (seconds one
# input may take; default 10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-60}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-10}
TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
# Past this the build or a run has hung: time it out rather than CI's whole budget.
BUILD_LIMIT=1800
RUN_LIMIT=$((SECONDS_EACH + 180))

die() {
    echo "fuzz-ci: $*" >&2
    exit 2
}
[[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive number of seconds"
[[ "$UNIT_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "UNIT_TIMEOUT must be a positive number of seconds"
cargo fuzz --version >/dev/null 2>&1 ||
    die "cargo-fuzz is not installed: cargo install cargo-fuzz --locked"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"

read -ra TARGETS <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
((${#TARGETS[@]})) || die "no fuzz targets"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-fuzz-ci.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

FUZZ=(--sanitizer none --target-dir "$TARGET_DIR")
echo "fuzz-ci: building ${TARGETS[*]} (cargo fuzz build ${FUZZ[*]})"
timeout -k 30 "$BUILD_LIMIT" cargo fuzz build "${FUZZ[@]}" >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    die "cargo fuzz build failed (or took more than $BUILD_LIMIT s)"
}

# stat NAME LOG: a libFuzzer final statistic (-print_final_stats=1), or "?".
stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$2" | tail -n 1 | grep . || echo "?"; }

failed=()
printf '%-12s %10s %8s %13s %6s %8s\n' target execs exec/s corpus cov "peak MB"
for t in "${TARGETS[@]}"; do
    corpus="$WORK/$t/corpus"
    artifacts="$WORK/$t/artifacts"
    log="$WORK/$t/log"
    mkdir -p "$corpus" "$artifacts"
    [[ -d "fuzz/seeds/$t" ]] || die "no seeds for $t in fuzz/seeds/$t"
    cp fuzz/seeds/"$t"/* "$corpus"/
    if [[ -d "fuzz/regressions/$t" ]]; then
        find "fuzz/regressions/$t" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$corpus"/ \;
    fi
    before=$(find "$corpus" -type f | wc -l)

    rc=0
    timeout -k 30 "$RUN_LIMIT" cargo fuzz run "${FUZZ[@]}" "$t" "$corpus" -- \
        -max_total_time="$SECONDS_EACH" -timeout="$UNIT_TIMEOUT" -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?

    after=$(find "$corpus" -type f | wc -l)
    cov=$(sed -nE 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+cov: ([0-9]+).*/\1/p' "$log" | tail -n 1)
    printf '%-12s %10s %8s %13s %6s %8s\n' "$t" "$(stat number_of_executed_units "$log")" \
        "$(stat average_exec_per_sec "$log")" "$before -> $after" "${cov:-?}" \
        "$(stat peak_rss_mb "$log")"

    mapfile -t found < <(find "$artifacts" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    if ((rc == 0 && ${#found[@]} == 0)); then
        continue
    fi
    failed+=("$t")
    echo >&2
    echo "fuzz-ci: FAILED: target $t (exit $rc); the end of its log:" >&2
    tail -n 60 "$log" | sed 's/^/    /' >&2
    if ((${#found[@]} == 0)); then
        ((rc == 124 || rc == 137)) && echo "fuzz-ci: $t did not stop within $RUN_LIMIT s" >&2
        echo "fuzz-ci: $t failed without leaving an input behind" >&2
        continue
    fi
    mkdir -p "fuzz/regressions/$t"
    for f in "${found[@]}"; do
        kept="fuzz/regressions/$t/$(basename "$f")"
        cp "$f" "$kept"
        echo "fuzz-ci: $t: input kept as $kept" >&2
        echo "fuzz-ci:   reproduce: cargo fuzz run --sanitizer none $t $kept" >&2
        echo "fuzz-ci:   fix the bug, then commit $kept: cargo test replays it" >&2
    done
done

if ((${#failed[@]})); then
    echo "fuzz-ci: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-ci: no crash in ${#TARGETS[@]} targets, $SECONDS_EACH s each"
