#!/usr/bin/env bash
# A cluster as the source: redis-sync's full copy of a 3-master cluster (one link, ledger and
# sink per shard, in one process) against the same number of keys from one standalone source,
# both into an empty standalone target.
# One run starts a 3-master cluster (slots split evenly, CLUSTER MEET, cluster_state:ok on every
# node), a standalone source and a target (free loopback ports, no persistence, a temporary
# directory), and fills, once: each master with $KEYS/3 keys of $VALUE_BYTES bytes (DEBUG
# POPULATE with a hash tag the master serves, so every key is in a slot of its own master), the
# standalone source with $KEYS such keys. Every round, in turn (which goes first swaps every
# round): the target flushed, then `sync --mode full` from the cluster (any node) or from the
# standalone source, timed (wall); the target's DBSIZE is checked ($KEYS plus one checkpoint key
# per source). At the end: each round, the medians, the ratio cluster/standalone and the machine.
#
# Usage: scripts/bench-cluster-source.sh
# Environment:
#   ROUNDS=3                 rounds (each runs both sides)
#   KEYS=1200000             keys in all (a multiple of 3)
#   VALUE_BYTES=100          bytes per value (DEBUG POPULATE's size argument)
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the servers, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=600          seconds after which one copy is stopped (a failure)
# Needs python3. Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-cluster-source
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
ROUNDS="${ROUNDS:-3}"
KEYS="${KEYS:-1200000}"
VALUE_BYTES="${VALUE_BYTES:-100}"
RUN_TIMEOUT="${RUN_TIMEOUT:-600}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] && ((KEYS % 3 == 0)) || die "KEYS must be a multiple of 3"
[[ "$VALUE_BYTES" =~ ^[1-9][0-9]*$ ]] || die "VALUE_BYTES must be a positive integer"
check_common
find_server
((${SERVER_VERSION%%.*} >= 7)) || die "needs Redis 7.0 or later (DEBUG POPULATE in a cluster)"
find_redis_sync
make_work
cat >>"$WORK/resp.py" <<'PY'
TIMEOUT = 60

def slots(port, lo, hi):
    Conn(port).call("CLUSTER", "ADDSLOTSRANGE", lo, hi)

def meet(port, other):
    Conn(port).call("CLUSTER", "MEET", "127.0.0.1", other)

def cluster_ok(*ports):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if all(b"cluster_state:ok" in Conn(p).call("CLUSTER", "INFO") for p in ports):
            return
        time.sleep(0.05)
    sys.exit("resp.py: the cluster did not become ok")

def fill(port, keys, size, lo, hi):
    # A hash tag whose slot this master serves, so every key is its own.
    c = Conn(port)
    for t in range(100000):
        tag = "{t%d}" % t
        if int(lo) <= int(c.call("CLUSTER", "KEYSLOT", tag)) <= int(hi):
            c.call("DEBUG", "POPULATE", keys, tag, size)
            return
    sys.exit("resp.py: no hash tag found")

def populate(port, keys, size):
    Conn(port).call("DEBUG", "POPULATE", keys, "key", size)

main({"slots": slots, "meet": meet, "cluster-ok": cluster_ok, "fill": fill, "populate": populate})
PY

say "starting a 3-master cluster, a standalone source and a target ($SERVER_VERSION)"
MASTERS=()
for i in 0 1 2; do
    start_server "m$i" --cluster-enabled yes --cluster-node-timeout 5000 --repl-diskless-sync-delay 0
    MASTERS+=("$PORT")
done
RANGES=("0 5460" "5461 10922" "10923 16383")
for i in 0 1 2; do
    # shellcheck disable=SC2086
    resp slots "${MASTERS[$i]}" ${RANGES[$i]}
done
resp meet "${MASTERS[1]}" "${MASTERS[0]}"
resp meet "${MASTERS[2]}" "${MASTERS[0]}"
resp cluster-ok "${MASTERS[@]}"
start_server standalone --repl-diskless-sync-delay 0
STANDALONE=$PORT
start_server target
TARGET=$PORT
say "filling: $KEYS keys of $VALUE_BYTES bytes, a third per master, and as many in the standalone"
for i in 0 1 2; do
    # shellcheck disable=SC2086
    resp fill "${MASTERS[$i]}" $((KEYS / 3)) "$VALUE_BYTES" ${RANGES[$i]}
done
resp populate "$STANDALONE" "$KEYS" "$VALUE_BYTES"

copy() { # copy SOURCE_PORT EXPECTED_DBSIZE: seconds of one full copy, checked
    resp call "$TARGET" FLUSHALL >/dev/null
    local t0 t1 n
    t0=$(date +%s.%N)
    timeout "$RUN_TIMEOUT" "$RS" sync --source "127.0.0.1:$1" --target "127.0.0.1:$TARGET" \
        --mode full --no-progress --state-file "$WORK/state-$RANDOM$RANDOM.json" \
        >"$WORK/last.log" 2>&1 || die "sync from $1 failed: $(tail -5 "$WORK/last.log")"
    t1=$(date +%s.%N)
    n=$(resp call "$TARGET" DBSIZE)
    ((n == $2)) || die "the target has $n keys, not $2"
    python3 -c "print('%.3f' % ($t1 - $t0))"
}

CLUSTER_S=()
STANDALONE_S=()
for ((r = 1; r <= ROUNDS; r++)); do
    for side in $( ((r % 2)) && echo "cluster standalone" || echo "standalone cluster"); do
        if [[ $side == cluster ]]; then
            s=$(copy "${MASTERS[0]}" $((KEYS + 3)))
            CLUSTER_S+=("$s")
        else
            s=$(copy "$STANDALONE" $((KEYS + 1)))
            STANDALONE_S+=("$s")
        fi
        say "round $r: $side $s s"
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
MC=$(median "${CLUSTER_S[@]}")
MS=$(median "${STANDALONE_S[@]}")
echo
echo "| round | cluster source (3 shards), s | standalone source, s |"
echo "| --- | --- | --- |"
for ((r = 0; r < ROUNDS; r++)); do
    echo "| $((r + 1)) | ${CLUSTER_S[$r]} | ${STANDALONE_S[$r]} |"
done
echo
echo "Median: cluster $MC s, standalone $MS s; ratio cluster/standalone $(python3 -c "print('%.2f' % ($MC / $MS))"); $((KEYS)) keys of $VALUE_BYTES bytes, $SERVER_VERSION, redis-sync $BUILT."
echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB."
