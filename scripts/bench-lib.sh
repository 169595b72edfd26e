# shellcheck shell=bash
# What the scripts/bench-*.sh share. Sourced by them, not run:
#   BENCH_NAME=bench-memory
#   source "$(dirname "$0")/bench-lib.sh"
# Sourcing sets ROOT, REDIS_SERVERS_DIR and REDIS_VERSION (the defaults of the environment
# variables both scripts take) and defines functions, which the script calls in this order:
#   check_common            RUN_TIMEOUT is a number of seconds, python3 and timeout are there
#   find_server             SERVER, SERVER_VERSION and DEBUG_FLAG from $REDIS_VERSION
#   find_redis_sync         RS (the binary in $RS, or cargo build --release) and BUILT
#   make_work               WORK, a temporary directory removed on exit with the servers
#                           stopped; $WORK/resp.py begun (a tiny RESP client: free-port, wait),
#                           which the script ends with its own operations and main({...})
#   start_server NAME ARGS  a server on a free loopback port, in $PORT
#   fresh_target            stop all but the source ($SOURCE_PID), a new empty target in $TP
#   stop_servers            stop every server started
#   die, say, resp          an error (exits), a progress line, a call of resp.py
# The script sets `set -euo pipefail` and BENCH_NAME (the prefix of die's messages and of the
# temporary directory's name) before sourcing, and RUN_TIMEOUT before check_common.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REDIS_SERVERS_DIR="${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}"
REDIS_VERSION="${REDIS_VERSION:-redis-7.0.15}"

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}
say() { echo "[$(date +%T)] $*" >&2; }

check_common() {
    [[ "$RUN_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT must be a number of seconds"
    command -v python3 >/dev/null || die "python3 is needed"
    command -v timeout >/dev/null || die "timeout (coreutils) is needed"
}

# The server binary and whether it takes --enable-debug-command (7.0+; bench-memory needs it for
# DEBUG POPULATE).
find_server() {
    local name
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
}

# The redis-sync binary: $RS, or else built with cargo; BUILT says which, for the results.
find_redis_sync() {
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
}

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

# make_work: the temporary directory, the traps that clean it up, and the shared beginning of
# $WORK/resp.py. The script appends its own part: TIMEOUT (seconds a connection waits for a
# reply), its operations, and main({"name": function taking the arguments as strings, ...}).
make_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-$BENCH_NAME.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # A tiny RESP client, so that only python3 is needed.
    cat >"$WORK/resp.py" <<'PY'
import os, socket, sys, time

def enc(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += [b"$%d\r\n" % len(a), a, b"\r\n"]
    return b"".join(out)

class Conn:
    def __init__(self, port, timeout=None):
        timeout = TIMEOUT if timeout is None else timeout
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
    def replies(self, n):
        for _ in range(n):
            self.reply()
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

def call(port, *args):
    # One command; prints the reply.
    r = Conn(port).call(*args)
    print(r.decode() if isinstance(r, bytes) else r)

def native(port, source_port, keys):
    # A native replica: REPLICAOF, then wait (bounded) until the link is up and every key is
    # there; prints the seconds it took.
    c = Conn(port)
    t0 = time.monotonic()
    c.call("REPLICAOF", "127.0.0.1", source_port)
    deadline = t0 + TIMEOUT
    while time.monotonic() < deadline:
        info = c.call("INFO", "replication").decode()
        if "master_link_status:up" in info and int(c.call("DBSIZE")) == int(keys):
            print("%.3f" % (time.monotonic() - t0))
            return
        time.sleep(0.005)
    sys.exit("resp.py: the native replica did not finish within %d s" % TIMEOUT)

def main(ops):
    # The operations every script has (free-port, wait, call, native), then the script's own.
    op, args = sys.argv[1], sys.argv[2:]
    ops = {"call": call, "native": native, **ops}
    if op == "free-port":
        print(free_port())
    elif op == "wait":
        sys.exit(wait(int(args[0]), int(args[1])))
    elif op in ops:
        ops[op](*args)
    else:
        sys.exit("resp.py: unknown operation " + op)

# The script's part follows.
PY
}
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
            # shellcheck disable=SC2034 # PORT is for the script
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

# fresh_target: stop every server but the source ($SOURCE_PID), start an empty one in $TP (and
# forget the last run's state file).
fresh_target() {
    local pid keep=()
    for pid in "${PIDS[@]}"; do
        if [[ "$pid" == "$SOURCE_PID" ]]; then
            keep+=("$pid")
        else
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    PIDS=("${keep[@]}")
    rm -rf "$WORK/target" "$WORK/state.json"
    start_server target
    # shellcheck disable=SC2034 # TP is for the script that sourced this file
    TP=$PORT
}
