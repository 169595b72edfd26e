#!/usr/bin/env bash
# A full copy against Redis's own replica, side by side in one run: the same source (filled
# once with DEBUG POPULATE $KEYS keys of $VALUE_BYTES bytes), copied in alternating rounds by
#   - a native replica: a fresh empty server, `REPLICAOF` the source (diskless, delay 0), timed
#     from the command until `master_link_status:up` and its DBSIZE equals the source's;
#   - `redis-sync sync --mode full` into a fresh empty server, under /usr/bin/time (wall,
#     user+system CPU seconds of redis-sync itself, peak RSS), its target's DBSIZE checked.
# Which goes first swaps every round. At the end: each round's times, the median ratio
# redis-sync / native, redis-sync's CPU-seconds per million keys, the target's RESTORE µs per
# call (INFO commandstats), and the machine, as a markdown table.
#
# Usage: scripts/bench-full-copy.sh
# Environment:
#   ROUNDS=5                 rounds (each copies with both)
#   KEYS=1000000             keys on the source
#   VALUE_BYTES=10           bytes per value (DEBUG POPULATE's size argument)
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the server, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=1800         seconds after which one copy is stopped (a failure)
# Needs python3 and /usr/bin/time. Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-full-copy
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
ROUNDS="${ROUNDS:-5}"
KEYS="${KEYS:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-10}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1800}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || die "KEYS must be a positive integer"
[[ "$VALUE_BYTES" =~ ^[1-9][0-9]*$ ]] || die "VALUE_BYTES must be a positive integer"
check_common
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
find_server
((${#DEBUG_FLAG[@]})) || [[ "${SERVER_VERSION%%.*}" -ge 5 ]] || die "needs Redis 5.0 or later"
find_redis_sync
make_work

cat >>"$WORK/resp.py" <<'PY'
TIMEOUT = 3600

def restore_usec(port):
    info = Conn(port).call("INFO", "commandstats").decode()
    for line in info.split("\r\n"):
        if line.startswith("cmdstat_restore:"):
            print(line.split("usec_per_call=")[1].split(",")[0])
            return
    print("-")

main({"restore-usec": restore_usec})
PY

start_server source --repl-diskless-sync yes --repl-diskless-sync-delay 0
SP=$PORT
say "source 127.0.0.1:$SP ($(basename "$SERVER") $SERVER_VERSION): DEBUG POPULATE $KEYS key $VALUE_BYTES"
resp call "$SP" DEBUG POPULATE "$KEYS" key "$VALUE_BYTES" >/dev/null
[[ "$(resp call "$SP" DBSIZE)" == "$KEYS" ]] || die "the source does not hold $KEYS keys"
SOURCE_PID=${PIDS[0]}

run_native() {
    fresh_target
    N_WALL=$(timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" native "$TP" "$SP" "$KEYS") ||
        die "the native replica failed"
}

run_rs() {
    local log="$WORK/rs.log" times="$WORK/rs.time"
    fresh_target
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f "%e %U %S %M" -o "$times" "$RS" sync --mode full \
        --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" \
        --state-file "$WORK/state.json" 2>"$log"; then
        tail -20 "$log" >&2
        die "redis-sync failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    fi
    read -r R_WALL R_USER R_SYS R_RSS <"$times"
    local held
    held=$(resp call "$TP" DBSIZE)
    # The target holds the keys and redis-sync's checkpoint.
    [[ "$held" == "$((KEYS + 1))" ]] || die "redis-sync's target holds $held keys, expected $KEYS + 1"
    R_RESTORE=$(resp restore-usec "$TP")
}

ROWS=()
RATIOS=()
CPUS=()
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_native
        run_rs
    else
        run_rs
        run_native
    fi
    ratio=$(python3 -c "print('%.2f' % ($R_WALL / $N_WALL))")
    cpu=$(python3 -c "print('%.2f' % (($R_USER + $R_SYS) * 1e6 / $KEYS))")
    rss=$((R_RSS / 1024))
    say "round $r: native ${N_WALL}s, redis-sync ${R_WALL}s (${ratio}x), ${cpu} CPU-s per 1M keys, ${rss} MiB, RESTORE ${R_RESTORE} µs"
    ROWS+=("$r|$N_WALL|$R_WALL|$ratio|$cpu|$rss|$R_RESTORE")
    RATIOS+=("$ratio")
    CPUS+=("$cpu")
done
stop_servers

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo
echo "full copy of $KEYS keys ($VALUE_BYTES-byte values), $(basename "$SERVER") $SERVER_VERSION, $BUILT;"
echo "$(nproc) cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo
echo "| round | native replica s | redis-sync s | ratio | redis-sync CPU-s / 1M keys | peak RSS MiB | target RESTORE µs/call |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r r n w q c m u <<<"$row"
    echo "| $r | $n | $w | $q | $c | $m | $u |"
done
echo "| **median** | | | **$(median "${RATIOS[@]}")×** | **$(median "${CPUS[@]}")** | | |"
