#!/usr/bin/env bash
# The main job of redis-sync, end to end, on this machine:
#   1. install the test servers (../shared/servers/install.sh, cached; DEMO_NO_BUILD=1 skips
#      the source builds that only the test matrix needs),
#   2. build redis-sync (release),
#   3. start two local servers on free loopback ports in a temporary directory: a source filled
#      with data of every type, and an empty target,
#   4. `redis-sync sync --until-caught-up` (full copy + stream, while writes go on),
#   5. `redis-sync verify`, print the result, stop the servers (on any exit).
# Usage: scripts/demo.sh        (from a fresh clone with ../shared beside it)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED="$ROOT/../shared"
export REDIS_SERVERS_DIR="${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. servers ($REDIS_SERVERS_DIR)"
if [[ -f "$SHARED/servers/install.sh" ]]; then
    if [[ "${DEMO_NO_BUILD:-0}" == 1 ]]; then
        bash "$SHARED/servers/install.sh" --no-build
    else
        bash "$SHARED/servers/install.sh"
    fi
else
    echo "no $SHARED/servers/install.sh: using the servers already installed" >&2
fi

# The newest Redis 7 (the Debian package is always there), else any redis-server.
SERVER=""
for name in redis-7.4.1 redis-7.2.4 redis-7.0.15; do
    if [[ -x "$REDIS_SERVERS_DIR/bin/$name/redis-server" ]]; then
        SERVER="$REDIS_SERVERS_DIR/bin/$name/redis-server"
        break
    fi
done
SERVER="${SERVER:-$(command -v redis-server || true)}"
[[ -n "$SERVER" ]] || { echo "no redis-server found: run $SHARED/servers/install.sh" >&2; exit 1; }
CLI="$(command -v redis-cli || true)"
[[ -n "$CLI" ]] || { echo "no redis-cli found: apt-get install redis-tools" >&2; exit 1; }

say "2. build redis-sync (release)"
cargo build --release -p redis-sync --manifest-path "$ROOT/Cargo.toml"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/redis-sync"
[[ -x "$BIN" ]] || { echo "built binary not found at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-demo.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port" >&2
    exit 1
}

start() { # name port extra-args...
    local name=$1 port=$2
    shift 2
    mkdir -p "$WORK/$name"
    local debug=()
    if "$SERVER" --version | grep -qE 'v=([7-9]|[1-9][0-9])\.'; then
        debug=(--enable-debug-command yes)
    fi
    "$SERVER" --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" --dbfilename dump.rdb \
        --save "" --appendonly no --daemonize no --logfile "$WORK/$name/server.log" \
        "${debug[@]}" "$@" &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        "$CLI" -p "$port" PING >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "$name did not start; its log:" >&2
    cat "$WORK/$name/server.log" >&2
    exit 1
}

say "3. two local servers ($("$SERVER" --version | awk '{print $3}'))"
SP=$(free_port)
TP=$(free_port)
while [[ "$TP" == "$SP" ]]; do TP=$(free_port); done
start source "$SP" --repl-diskless-sync-delay 0
start target "$TP"
src() { "$CLI" -p "$SP" "$@" >/dev/null; }
src DEBUG POPULATE 20000 demo:key 64
src SET greeting "hello from the source"
src SET session:1 alice EX 3600
src RPUSH queue a b c d e
src SADD tags red green blue
src ZADD scores 1 ann 2 bob 3 cy
src HSET user:1 name ada lang rust
src XADD events '*' kind signup user 1
src XADD events '*' kind login user 1
src XGROUP CREATE events workers 0
src XREADGROUP GROUP workers w1 COUNT 1 STREAMS events '>'
src PFADD visitors a b c
src SETBIT flags 7 1
src GEOADD places 13.36 38.11 palermo
src -n 3 SET other:db three
echo "source 127.0.0.1:$SP: $("$CLI" -p "$SP" DBSIZE) keys in db 0, more in db 3"
echo "target 127.0.0.1:$TP: empty"

say "4. redis-sync sync --until-caught-up (with writes on the source meanwhile)"
( for i in $(seq 1 300); do "$CLI" -p "$SP" INCR live:counter >/dev/null; done ) &
WRITER=$!
"$BIN" sync --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" \
    --until-caught-up --state-file "$WORK/state.json" --status-interval 1
wait "$WRITER"
# The writes that came after the copy caught up: a second run resumes (partial resync).
"$BIN" sync --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" \
    --until-caught-up --state-file "$WORK/state.json" --status-interval 1

say "5. redis-sync verify"
set +e
"$BIN" verify --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" --keys
STATUS=$?
set -e
echo
echo "source db0=$("$CLI" -p "$SP" DBSIZE) keys, target db0=$("$CLI" -p "$TP" DBSIZE) keys," \
    "live:counter $("$CLI" -p "$SP" GET live:counter) / $("$CLI" -p "$TP" GET live:counter)"
if [[ $STATUS -eq 0 ]]; then
    echo "RESULT: the target equals the source"
else
    echo "RESULT: the target differs from the source (see above)"
fi
exit $STATUS
