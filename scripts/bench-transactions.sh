#!/usr/bin/env bash
# The stream cost of exactly-once delivery: how long `redis-sync sync --until-caught-up` takes to
# apply $COMMANDS non-idempotent commands (INCR, LPUSH, SET in turn) waiting in the source's
# replication backlog, with the default flags (each batch commits in MULTI/EXEC together with
# the checkpoint in the target) and with --no-transactions (at-least-once, no MULTI/EXEC).
# Each run is on two fresh local servers (free loopback ports, no persistence, a temporary
# directory): a first `sync --until-caught-up` copies the empty source and leaves the checkpoint,
# the commands are written to the source while no redis-sync runs, then the timed
# `sync --until-caught-up` resumes with a partial resync (checked in its log) and applies them;
# the target's counters and lists are then compared with the source's. The two variants
# alternate (which goes first swaps every round) for $ROUNDS rounds; at the end: the times and
# peak RSS of the timed runs of every round and the median ratio transactions /
# no-transactions, as a markdown table.
#
# Usage: scripts/bench-transactions.sh
# Environment:
#   ROUNDS=5                 rounds (each runs both variants)
#   COMMANDS=300000          commands written to the source's backlog per run
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the server, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#                            (or valkey-server), e.g. redis-8.6.3, redis-6.2.14, valkey-9.0.0
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=1200         seconds after which one redis-sync run is stopped (a failure)
# Needs python3 and /usr/bin/time (Debian's `time` package). Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-transactions
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
ROUNDS="${ROUNDS:-5}"
COMMANDS="${COMMANDS:-300000}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1200}"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$COMMANDS" =~ ^[1-9][0-9]*$ ]] || die "COMMANDS must be a positive integer, not '$COMMANDS'"
check_common
find_server
find_redis_sync
make_work

# The rest of resp.py (bench-lib.sh writes its beginning).
cat >>"$WORK/resp.py" <<'PY'
import statistics

TIMEOUT = 600  # seconds a connection waits for a reply

def command(j):
    # Non-idempotent on purpose: applied twice, a counter or a list would differ.
    if j % 3 == 0:
        return ("INCR", "c:%d" % (j % 100))
    if j % 3 == 1:
        return ("LPUSH", "l:%d" % (j % 100), j)
    return ("SET", "s:%d" % j, "v")

def stream(port, n):
    c = Conn(port)
    for i in range(0, n, 1000):
        c.pipeline([command(j) for j in range(i, min(i + 1000, n))])

def digest(port):
    # What the commands left: every counter, every list's length and head, the number of s:*.
    c = Conn(port)
    counters = c.pipeline([("GET", "c:%d" % k) for k in range(100)])
    lengths = c.pipeline([("LLEN", "l:%d" % k) for k in range(100)])
    heads = c.pipeline([("LINDEX", "l:%d" % k, 0) for k in range(100)])
    strings, cursor = 0, b"0"
    for _ in range(1000000):
        cursor, keys = c.call("SCAN", cursor, "MATCH", "s:*", "COUNT", 10000)
        strings += len(keys)
        if cursor == b"0":
            break
    return repr((counters, lengths, heads, strings))

def stream_op(port, n):
    stream(port, int(n))

def same(source, target):
    if digest(source) != digest(target):
        sys.exit("the target's counters, lists or strings differ from the source's")

def summary():
    # lines "round tx_secs notx_secs": a markdown table and the medians
    rows = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
    tx = [float(r[1]) for r in rows]
    notx = [float(r[2]) for r in rows]
    tx_rss = [int(r[3]) / 1024 for r in rows]
    notx_rss = [int(r[4]) / 1024 for r in rows]
    ratios = [a / b for a, b in zip(tx, notx)]
    print("| round | transactions s | --no-transactions s | ratio | peak RSS MiB (tx / no-tx) |")
    print("|------:|---------------:|--------------------:|------:|--------------------------:|")
    for r, a, b, q, m, n in zip(rows, tx, notx, ratios, tx_rss, notx_rss):
        print("| %s | %.2f | %.2f | %.2f | %.0f / %.0f |" % (r[0], a, b, q, m, n))
    print("| median | %.2f | %.2f | %.2f | %.0f / %.0f |" % (
        statistics.median(tx), statistics.median(notx), statistics.median(ratios),
        statistics.median(tx_rss), statistics.median(notx_rss)))
    print()
    print("median ratio transactions / no-transactions: %.2f (%d rounds)" % (
        statistics.median(ratios), len(ratios)))

main({"stream": stream_op, "same": same, "summary": summary})
PY

# sync_once LOG FLAGS...: `sync --until-caught-up` between the current servers; its peak RSS
# (KiB) in $WORK/rss.
sync_once() {
    local log=$1
    shift
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f %M -o "$WORK/rss" "$RS" sync \
        --source "redis://127.0.0.1:$SP" \
        --target "redis://127.0.0.1:$TP" --state-file "$WORK/state.json" --until-caught-up \
        "$@" 2>"$log"; then
        tail -20 "$log" >&2
        die "redis-sync failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s); flags: ${*:-none}"
    fi
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
}

# one_run LABEL FLAGS...: fresh servers, checkpoint, $COMMANDS in the backlog, timed catch-up;
# the seconds in $R_SECS, the peak RSS (KiB) in $R_RSS.
one_run() {
    local label=$1 start end
    shift
    stop_servers
    rm -rf "$WORK/source" "$WORK/target" "$WORK/state.json"
    start_server source --repl-diskless-sync-delay 0 --repl-backlog-size 512mb
    SP=$PORT
    start_server target
    TP=$PORT
    sync_once "$WORK/first.log" "$@"
    resp stream "$SP" "$COMMANDS"
    start=$(date +%s%N)
    sync_once "$WORK/timed.log" "$@"
    end=$(date +%s%N)
    grep -q 'partial resync: continuing' "$WORK/timed.log" || {
        grep -E 'INFO|WARN|ERROR' "$WORK/timed.log" | tail -10 >&2
        die "$label: the timed run did not continue with a partial resync"
    }
    resp same "$SP" "$TP" || die "$label: the target differs from the source"
    R_SECS=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    R_RSS=$(cat "$WORK/rss")
    stop_servers
}

say "$COMMANDS commands per run, $ROUNDS rounds, $(basename "$SERVER") $SERVER_VERSION"
: >"$WORK/rounds"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order="tx notx"; else order="notx tx"; fi
    for variant in $order; do
        if [[ "$variant" == tx ]]; then
            one_run transactions
            TX=$R_SECS
            TX_RSS=$R_RSS
        else
            one_run no-transactions --no-transactions
            NOTX=$R_SECS
            NOTX_RSS=$R_RSS
        fi
    done
    echo "$round $TX $NOTX $TX_RSS $NOTX_RSS" >>"$WORK/rounds"
    printf 'round %d: transactions %s s, --no-transactions %s s, ratio %s\n' "$round" "$TX" "$NOTX" \
        "$(awk -v a="$TX" -v b="$NOTX" 'BEGIN { printf "%.2f", a / b }')"
done

echo
echo "sync --until-caught-up over $COMMANDS backlog commands (INCR, LPUSH, SET);" \
    "$BUILT; $(basename "$SERVER") $SERVER_VERSION; $(nproc) cores"
echo
resp summary <"$WORK/rounds"
