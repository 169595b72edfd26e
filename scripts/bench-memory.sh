#!/usr/bin/env bash
# Peak memory (RSS) of `redis-sync sync --mode full`, the full copy alone, in three cases:
#   big    a 512 MiB random string (SETRANGE in 1 MiB pieces) and a 1 GiB list of 16384
#          random 64 KiB items: memory must not follow the biggest value (--value-budget);
#   many   $KEYS small keys (DEBUG POPULATE, 16-byte values): memory must not follow the key count;
#   sweep  the same keys copied once, then one stale key written to the target and the copy
#          redone over the first: the second run sweeps (deletes target keys the source lacks),
#          its set of snapshot keys must not follow the key count either.
# Each case runs on two fresh local servers (source and target, free loopback ports, no
# persistence, in a temporary directory), except that `sweep` reuses the servers of a `many`
# run just before it (same keys: the first copy is that run). For each case it prints one line
# (keys copied, RDB bytes from the "snapshot written" log line, wall seconds and peak RSS from
# /usr/bin/time -v), then all of them as a markdown table.
#
# Usage: scripts/bench-memory.sh
# Environment:
#   CASES="big many sweep"   the cases to run, in this order
#   KEYS=10000000            keys of the `many` and `sweep` cases
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the server, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#                            (or valkey-server), e.g. redis-8.6.3, redis-6.2.14, valkey-9.0.0
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=3600         seconds after which one redis-sync run is stopped (a failure)
# Needs python3 and /usr/bin/time (apt-get install time); about 5 GB of free memory for `big`
# and 3 GB for 10M keys (both servers hold the data). Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-memory
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
CASES="${CASES:-big many sweep}"
KEYS="${KEYS:-10000000}"
RUN_TIMEOUT="${RUN_TIMEOUT:-3600}"

for c in $CASES; do
    case "$c" in
        big | many | sweep) ;;
        *) die "unknown case '$c' in CASES (cases: big many sweep)" ;;
    esac
done
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || die "KEYS must be a positive integer, not '$KEYS'"
check_common
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
find_server
find_redis_sync
make_work

# The rest of resp.py (bench-lib.sh writes its beginning).
cat >>"$WORK/resp.py" <<'PY'
TIMEOUT = 3600

def used_memory(c):
    info = c.call("INFO", "memory").decode()
    return next(l.split(":")[1] for l in info.split("\r\n") if l.startswith("used_memory_human:"))

def fill_big(c):
    for i in range(0, 512, 16):  # 512 MiB string, 1 MiB pieces, 16 per round trip
        c.send([("SETRANGE", "big:str", j << 20, os.urandom(1 << 20)) for j in range(i, i + 16)])
        c.replies(16)
    for i in range(0, 16384, 256):  # 1 GiB list of 64 KiB items, 256 per round trip
        c.send([("RPUSH", "big:list", os.urandom(64 << 10)) for _ in range(256)])
        c.replies(256)
    if int(c.call("STRLEN", "big:str")) != 512 << 20 or int(c.call("LLEN", "big:list")) != 16384:
        sys.exit("resp.py: the big keys do not have the expected sizes")

def fill_big_op(port):
    c = Conn(port)
    fill_big(c)
    print("source: %s keys, used_memory %s" % (int(c.call("DBSIZE")), used_memory(c)), file=sys.stderr)

def populate(port, keys):
    c = Conn(port)
    c.call("DEBUG", "POPULATE", keys, "k", 16)
    print("source: %s keys, used_memory %s" % (int(c.call("DBSIZE")), used_memory(c)), file=sys.stderr)

main({"fill-big": fill_big_op, "populate": populate})
PY

# fresh_servers: stop the servers of the last case, start a source and a target.
fresh_servers() {
    stop_servers
    rm -rf "$WORK/source" "$WORK/target" "$WORK/state.json"
    local big=(--proto-max-bulk-len 1gb --client-query-buffer-limit 1gb)
    start_server source --repl-diskless-sync-delay 0 "${big[@]}"
    SP=$PORT
    start_server target "${big[@]}"
    TP=$PORT
    say "source 127.0.0.1:$SP, target 127.0.0.1:$TP ($(basename "$SERVER") $SERVER_VERSION)"
}

# full_copy LABEL: one `sync --mode full` under /usr/bin/time; sets R_KEYS R_RDB R_WALL R_RSS.
full_copy() {
    local label=$1 log="$WORK/$1.log" times="$WORK/$1.time" applied
    say "$label: redis-sync sync --mode full"
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -v -o "$times" "$RS" sync --mode full \
        --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" \
        --state-file "$WORK/state.json" 2>"$log"; then
        tail -20 "$log" >&2
        cat "$times" >&2 2>/dev/null || true
        die "$label: redis-sync failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    fi
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    grep -q 'full copy applied:' "$log" || die "$label: no 'full copy applied' line in the log"
    applied=$(grep -m1 'snapshot written:' "$log") || die "$label: no 'snapshot written' line in the log"
    R_KEYS=$(sed -E 's/.*snapshot written: ([0-9]+) keys.*/\1/' <<<"$applied")
    R_RDB=$(sed -E 's/.* from ([0-9]+) RDB bytes.*/\1/' <<<"$applied")
    R_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s }' "$times")
    R_RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$times")
    [[ -n "$R_WALL" && -n "$R_RSS" ]] || die "$label: cannot read /usr/bin/time's output"
}

ROWS=()
record() { # case expected-keys
    [[ "$R_KEYS" == "$2" ]] || die "$1: copied $R_KEYS keys, expected $2"
    ROWS+=("$1|$R_KEYS|$R_RDB|$R_WALL|$R_RSS")
    printf '%-6s keys=%-9s rdb_bytes=%-11s wall_s=%-7s peak_rss_mib=%s\n' "$1" "$R_KEYS" "$R_RDB" "$R_WALL" "$R_RSS"
}

MANY_LIVE=0 # the servers of a `many` run are still up (with its copy done)
for c in $CASES; do
    case "$c" in
        big)
            MANY_LIVE=0
            fresh_servers
            say "big: writing a 512 MiB string and a 1 GiB list to the source"
            resp fill-big "$SP"
            full_copy big
            record big 2
            ;;
        many)
            fresh_servers
            say "many: DEBUG POPULATE $KEYS"
            resp populate "$SP" "$KEYS"
            full_copy many
            record many "$KEYS"
            MANY_LIVE=1
            ;;
        sweep)
            if ((MANY_LIVE)); then
                say "sweep: redoing the copy of the 'many' case just before"
            else
                fresh_servers
                say "sweep: DEBUG POPULATE $KEYS, first copy"
                resp populate "$SP" "$KEYS"
                full_copy sweep-first
            fi
            MANY_LIVE=0
            resp call "$TP" SET bench:stale 1 >/dev/null
            full_copy sweep
            grep -q 'sweep: removed 1 target keys' "$WORK/sweep.log" ||
                die "sweep: no 'sweep: removed 1 target keys' line in the log: $(grep 'sweep:' "$WORK/sweep.log" || echo none)"
            [[ "$(resp call "$TP" EXISTS bench:stale)" == 0 ]] || die "sweep: the stale key is still on the target"
            record sweep "$KEYS"
            ;;
    esac
done
stop_servers

echo
echo "redis-sync sync --mode full; $BUILT; $(basename "$SERVER") $SERVER_VERSION; $(nproc) cores"
echo
echo "| case | keys | RDB bytes | wall s | peak RSS MiB |"
echo "|------|-----:|----------:|-------:|-------------:|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r c k b w m <<<"$row"
    echo "| $c | $k | $b | $w | $m |"
done
