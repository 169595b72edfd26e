#!/usr/bin/env bash
# The main job of redis-sync, end to end, on this machine:
#   1. find a server: with ../shared beside the clone, install the tests' server matrix with
#      ../shared/servers/install.sh (cached; DEMO_NO_BUILD=1 skips the source builds that only
#      the tests need); then take one of $REDIS_SERVERS_DIR (default ~/.cache/redis-sync/servers),
#      else install Debian's Redis there with scripts/install-servers.sh (no root, about 15 s,
#      once), else the `redis-server` on PATH (the distribution's),
#   2. build redis-sync (release),
#   3. start two local servers on free loopback ports in a temporary directory: a source filled
#      with data of every type, and an empty target,
#   4. `redis-sync sync --until-caught-up` (full copy + stream, while writes go on),
#   5. `redis-sync verify`, print the result, stop the servers (on any exit).
# Usage: scripts/demo.sh        (from a clone; nothing beside it is needed)
# Environment:
#   REDIS_SERVERS_DIR=DIR   where servers are looked for and installed
#   DEMO_INSTALL=0          run no installer (use what is there, or PATH)
#   DEMO_SERVER=PATH        use this redis-server (or valkey-server) binary
#   RS=PATH                 use this redis-sync binary instead of building one
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REDIS_SERVERS_DIR="${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A server of $REDIS_SERVERS_DIR: the newest Redis 7, else the newest Redis, else the newest
# Valkey (the installers' layout: bin/redis-7.0.15/redis-server, bin/valkey-8.0.1/valkey-server).
installed_server() {
    local pattern name exe
    for pattern in 'redis-7.*' 'redis-*' 'valkey-*'; do
        while read -r name; do
            for exe in redis-server valkey-server; do
                if [[ -x "$REDIS_SERVERS_DIR/bin/$name/$exe" ]]; then
                    echo "$REDIS_SERVERS_DIR/bin/$name/$exe"
                    return
                fi
            done
        done < <(find "$REDIS_SERVERS_DIR/bin" -mindepth 1 -maxdepth 1 -name "$pattern" \
            -printf '%f\n' 2>/dev/null | sort -V -r)
    done
}

say "1. a server"
SHARED_INSTALL="$ROOT/../shared/servers/install.sh"
if [[ -z "${DEMO_SERVER:-}" && "${DEMO_INSTALL:-1}" != 0 && -f "$SHARED_INSTALL" ]]; then
    echo "installing the tests' servers with $SHARED_INSTALL (cached)"
    if [[ "${DEMO_NO_BUILD:-0}" == 1 ]]; then
        bash "$SHARED_INSTALL" --no-build
    else
        bash "$SHARED_INSTALL"
    fi
fi
SERVER="${DEMO_SERVER:-$(installed_server)}"
if [[ -z "$SERVER" && "${DEMO_INSTALL:-1}" != 0 ]]; then
    echo "no server in $REDIS_SERVERS_DIR: installing Debian's with scripts/install-servers.sh"
    if bash "$ROOT/scripts/install-servers.sh" "$REDIS_SERVERS_DIR"; then
        SERVER="$(installed_server)"
    else
        echo "scripts/install-servers.sh failed; looking for a redis-server on PATH" >&2
    fi
fi
if [[ -z "$SERVER" ]] && command -v redis-server >/dev/null; then
    SERVER="$(command -v redis-server)"
fi
if [[ -z "$SERVER" ]]; then
    cat >&2 <<EOF
no redis-server found, in $REDIS_SERVERS_DIR or on PATH. Any of these gives one:
  scripts/install-servers.sh                  Debian's Redis and Valkey, no root needed, into
                                              \$REDIS_SERVERS_DIR (default ~/.cache/redis-sync/servers)
  apt-get install redis-server redis-tools    the distribution's, on PATH
  DEMO_SERVER=/path/to/redis-server $0
EOF
    exit 1
fi
# redis-cli: on PATH, else one an installer put beside a server (any version talks to any).
CLI="$(command -v redis-cli || true)"
if [[ -z "$CLI" ]]; then
    for c in "$(dirname "$SERVER")"/redis-cli "$(dirname "$SERVER")"/valkey-cli \
        "$REDIS_SERVERS_DIR"/bin/*/redis-cli "$REDIS_SERVERS_DIR"/bin/*/valkey-cli; do
        if [[ -x "$c" ]]; then
            CLI="$c"
            break
        fi
    done
fi
if [[ -z "$CLI" ]]; then
    echo "no redis-cli found: run scripts/install-servers.sh, or apt-get install redis-tools" >&2
    exit 1
fi
echo "server: $SERVER"
echo "client: $CLI"

if [[ -n "${RS:-}" ]]; then
    say "2. redis-sync: $RS"
    BIN="$RS"
else
    say "2. build redis-sync (release)"
    cargo build --release -p redis-sync --manifest-path "$ROOT/Cargo.toml"
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/redis-sync"
fi
[[ -x "$BIN" ]] || { echo "redis-sync binary not found at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-demo.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # called by the trap
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
( for _ in $(seq 1 300); do "$CLI" -p "$SP" INCR live:counter >/dev/null; done ) &
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
