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
# alternate (which goes first swaps every round) for $ROUNDS rounds; at the end: the times of
# every round and the median ratio transactions / no-transactions, as a markdown table.
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
# Needs python3. Only 127.0.0.1 is used.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REDIS_SERVERS_DIR="${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}"
REDIS_VERSION="${REDIS_VERSION:-redis-7.0.15}"
ROUNDS="${ROUNDS:-5}"
COMMANDS="${COMMANDS:-300000}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1200}"

die() {
    echo "bench-transactions: $*" >&2
    exit 1
}
say() { echo "[$(date +%T)] $*" >&2; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$COMMANDS" =~ ^[1-9][0-9]*$ ]] || die "COMMANDS must be a positive integer, not '$COMMANDS'"
[[ "$RUN_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT must be a number of seconds"
command -v python3 >/dev/null || die "python3 is needed"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"

# The server binary and whether it takes --enable-debug-command (7.0+).
SERVER=""
for name in redis-server valkey-server; do
    if [[ -x "$REDIS_SERVERS_DIR/bin/$REDIS_VERSION/$name" ]]; then
        SERVER="$REDIS_SERVERS_DIR/bin/$REDIS_VERSION/$name"
        break
    fi
done
[[ -n "$SERVER" ]] || die "no server at $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/ (REDIS_VERSION=$REDIS_VERSION)"
SERVER_VERSION=$("$SERVER" --version | sed -nE 's/.* v=([0-9][0-9.]*).*/\1/p')
[[ -n "$SERVER_VERSION" ]] || die "cannot read the version of $SERVER"
DEBUG_FLAG=()
if ((${SERVER_VERSION%%.*} >= 7)); then
    DEBUG_FLAG=(--enable-debug-command yes)
fi

if [[ -n "${RS:-}" ]]; then
    [[ -x "$RS" ]] || die "RS=$RS is not an executable"
    BUILT="binary $RS"
else
    say "cargo build --release -p redis-sync"
    cargo build --release -p redis-sync --manifest-path "$ROOT/Cargo.toml" >&2
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    RS="$TARGET_DIR/release/redis-sync"
    [[ -x "$RS" ]] || die "built binary not found at $RS"
    BUILT="commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
        BUILT="$BUILT + uncommitted changes"
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-bench-transactions.XXXXXX")
PIDS=()

stop_servers() {
    local pid i alive
    ((${#PIDS[@]})) || return 0
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # SIGTERM with no save points: each server exits at once; SIGKILL after 10 s.
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in "${PIDS[@]}"; do
            if kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]; then
                alive=1
            fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A tiny RESP client, so that only python3 is needed.
cat >"$WORK/resp.py" <<'PY'
import os, socket, statistics, sys, time

def enc(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += [b"$%d\r\n" % len(a), a, b"\r\n"]
    return b"".join(out)

class Conn:
    def __init__(self, port, timeout=600):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        self.f = self.s.makefile("rb")
    def send(self, cmds):
        self.s.sendall(b"".join(enc(c) for c in cmds))
    def reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            sys.exit("resp.py: connection closed")
        kind, body = line[:1], line[1:-2]
        if kind == b"-":
            sys.exit("resp.py: server error: " + body.decode(errors="replace"))
        if kind in (b"+", b":"):
            return body
        if kind == b"$":
            n = int(body)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(max(int(body), 0))]
        sys.exit("resp.py: unexpected reply %r" % line)
    def call(self, *args):
        self.send([args])
        return self.reply()
    def pipeline(self, cmds):
        self.send(cmds)
        return [self.reply() for _ in cmds]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def wait(port, pid):
    # Up to 10 s for the server we started (its process id, not just anything on the port).
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return 1
        try:
            info = Conn(port, timeout=2).call("INFO", "server").decode()
            if "process_id:%d\r\n" % pid in info:
                return 0
            return 1
        except (OSError, SystemExit):
            time.sleep(0.1)
    return 1

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

def main():
    op, args = sys.argv[1], sys.argv[2:]
    if op == "free-port":
        print(free_port())
    elif op == "wait":
        sys.exit(wait(int(args[0]), int(args[1])))
    elif op == "stream":
        stream(args[0], int(args[1]))
    elif op == "same":
        if digest(args[0]) != digest(args[1]):
            sys.exit("the target's counters, lists or strings differ from the source's")
    elif op == "summary":
        # lines "round tx_secs notx_secs": a markdown table and the medians
        rows = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
        tx = [float(r[1]) for r in rows]
        notx = [float(r[2]) for r in rows]
        ratios = [a / b for a, b in zip(tx, notx)]
        print("| round | transactions s | --no-transactions s | ratio |")
        print("|------:|---------------:|--------------------:|------:|")
        for r, a, b, q in zip(rows, tx, notx, ratios):
            print("| %s | %.2f | %.2f | %.2f |" % (r[0], a, b, q))
        print("| median | %.2f | %.2f | %.2f |" % (
            statistics.median(tx), statistics.median(notx), statistics.median(ratios)))
        print()
        print("median ratio transactions / no-transactions: %.2f (%d rounds)" % (
            statistics.median(ratios), len(ratios)))
    else:
        sys.exit("resp.py: unknown operation " + op)

main()
PY
resp() { python3 "$WORK/resp.py" "$@"; }

# start_server NAME ARGS...: a server on a free loopback port, in $PORT. Up to 5 tries, in case
# another process takes the port between choosing and binding it.
start_server() {
    local name=$1 try port pid
    shift
    mkdir -p "$WORK/$name"
    for ((try = 1; try <= 5; try++)); do
        port=$(resp free-port)
        "$SERVER" --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" --save "" --appendonly no \
            --daemonize no --logfile "$WORK/$name/server.log" \
            ${DEBUG_FLAG[@]+"${DEBUG_FLAG[@]}"} "$@" &
        pid=$!
        PIDS+=("$pid")
        if resp wait "$port" "$pid"; then
            PORT=$port
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset 'PIDS[-1]'
        echo "$name did not start on port $port (try $try)" >&2
    done
    tail -20 "$WORK/$name/server.log" >&2 || true
    die "$name did not start"
}

# sync_once LOG FLAGS...: `sync --until-caught-up` between the current servers.
sync_once() {
    local log=$1
    shift
    if ! timeout "$RUN_TIMEOUT" "$RS" sync --source "redis://127.0.0.1:$SP" \
        --target "redis://127.0.0.1:$TP" --state-file "$WORK/state.json" --until-caught-up \
        "$@" 2>"$log"; then
        tail -20 "$log" >&2
        die "redis-sync failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s); flags: ${*:-none}"
    fi
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
}

# one_run LABEL FLAGS...: fresh servers, checkpoint, $COMMANDS in the backlog, timed catch-up;
# the seconds in $R_SECS.
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
        else
            one_run no-transactions --no-transactions
            NOTX=$R_SECS
        fi
    done
    echo "$round $TX $NOTX" >>"$WORK/rounds"
    printf 'round %d: transactions %s s, --no-transactions %s s, ratio %s\n' "$round" "$TX" "$NOTX" \
        "$(awk -v a="$TX" -v b="$NOTX" 'BEGIN { printf "%.2f", a / b }')"
done

echo
echo "sync --until-caught-up over $COMMANDS backlog commands (INCR, LPUSH, SET);" \
    "$BUILT; $(basename "$SERVER") $SERVER_VERSION; $(nproc) cores"
echo
resp summary <"$WORK/rounds"
