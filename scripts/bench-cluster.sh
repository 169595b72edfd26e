#!/usr/bin/env bash
# A cluster target (3 masters, no replicas): redis-sync's full copy and stream rate against the
# sum of what the masters ingest when the same data is written to them directly.
# One run starts a standalone source and a 3-master cluster (free loopback ports, no persistence,
# a temporary directory; `redis-cli --cluster create`, then cluster_state:ok on every node), and
# prepares, once, the data of both sides: $KEYS strings `key:<i>` of $VALUE_BYTES bytes (the keys
# and values of DEBUG POPULATE) and $COMMANDS commands spread over all slots (SET s:<j>, INCR on
# 10,000 counters in turn), each split by the master that owns its slot. Every round, in turn:
#   - direct: the cluster flushed, the keys written as SETs, then the commands, each master
#     by a client of its own, all three at once, the whole of its share pipelined (sent in one
#     go, the replies read as they come): the time until the last master answered, i.e. the
#     summed rate the masters ingest;
#   - redis-sync: the cluster flushed, the source refilled (FLUSHALL, DEBUG POPULATE), then
#     `sync --mode full` (timed under /usr/bin/time: wall, CPU-s, peak RSS; every key checked:
#     the masters' DBSIZEs add up to $KEYS + 1, the keys and redis-sync's cluster-wide
#     checkpoint hash), the commands written to the source while no redis-sync runs (they wait
#     in its replication backlog), then `sync --until-caught-up`, which resumes from the
#     checkpoint with a partial resync (checked in its log) and exits once they are applied:
#     the run's wall time and the part from the partial resync to the exit (from its log: the
#     start reads the 16,384 slot checkpoints first); the counters and the key count are then
#     compared with the source's (less the checkpoint keys: one per slot the stream touched).
# Which side goes first swaps every round. Both sides' masters' CPU-seconds (INFO cpu) are
# recorded. At the end: each round, the medians and the machine, as markdown tables.
#
# Usage: scripts/bench-cluster.sh
# Environment:
#   ROUNDS=3                 rounds (each runs both sides)
#   KEYS=1000000             keys of the full copy
#   VALUE_BYTES=10           bytes per value (DEBUG POPULATE's size argument)
#   COMMANDS=1000000         stream commands
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the servers, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#                            (or valkey-server), e.g. redis-8.6.3, valkey-9.1.2
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   REDIS_CLI=redis-cli      the redis-cli (5.0 or later) that creates the cluster
#   RUN_TIMEOUT=1200         seconds after which one step (a copy, a catch-up, a direct
#                            write) is stopped (a failure)
# Needs python3 and /usr/bin/time (apt-get install time). Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-cluster
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
ROUNDS="${ROUNDS:-3}"
KEYS="${KEYS:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-10}"
COMMANDS="${COMMANDS:-1000000}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1200}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || die "KEYS must be a positive integer, not '$KEYS'"
[[ "$VALUE_BYTES" =~ ^[1-9][0-9]*$ ]] || die "VALUE_BYTES must be a positive integer"
[[ "$COMMANDS" =~ ^[1-9][0-9]*$ ]] || die "COMMANDS must be a positive integer, not '$COMMANDS'"
check_common
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
command -v "$REDIS_CLI" >/dev/null || die "no $REDIS_CLI (REDIS_CLI) to create the cluster"
find_server
((${SERVER_VERSION%%.*} >= 5)) || die "needs Redis 5.0 or later"
find_redis_sync
make_work

# The rest of resp.py (bench-lib.sh writes its beginning).
cat >>"$WORK/resp.py" <<'PY'
import binascii, json, random, re, statistics, threading
from datetime import datetime

TIMEOUT = 600  # seconds a connection waits for a reply

def slot(key):
    # CRC16 (XMODEM, which binascii.crc_hqx is from 0) of the key or its {hash tag}, mod 16384.
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return binascii.crc_hqx(key, 0) & 16383

def cluster_port():
    # A free port whose cluster bus port (+10000) is free too.
    for _ in range(1000):
        port = random.randrange(20000, 55000)
        socks = []
        try:
            for p in (port, port + 10000):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            print(port)
            return
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    sys.exit("resp.py: no free port pair")

def wait_cluster(*ports):
    # Up to 30 s until every node says cluster_state:ok and sees all 16384 slots.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ok = True
        for p in ports:
            info = Conn(p).call("CLUSTER", "INFO").decode()
            ok = ok and "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
        if ok:
            return
        time.sleep(0.1)
    sys.exit("resp.py: the cluster did not reach cluster_state:ok within 30 s")

def owners(port):
    # The port of the master of each of the 16384 slots (CLUSTER SLOTS).
    owner = [0] * 16384
    for r in Conn(port).call("CLUSTER", "SLOTS"):
        for s in range(int(r[0]), int(r[1]) + 1):
            owner[s] = int(r[2][1])
    return owner

def stream_command(j):
    if j % 2:
        k = b"s:%d" % j
        return k, b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n" % (len(k), k)
    k = b"c:%d" % (j // 2 % 10000)
    return k, b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(k), k)

def prepare(work, node, source, keys, vbytes, commands):
    # Files of pre-encoded commands: load.<port> and cmds.<port> for each master (its slots'
    # share), cmds.source (every command, in order); plan.json says how many each holds.
    keys, vbytes, commands = int(keys), int(vbytes), int(commands)
    owner = owners(node)
    masters = sorted(set(owner))
    plan = {"source": int(source), "masters": masters, "load": {}, "cmds": {}}
    load = {p: [] for p in masters}
    for i in range(keys):
        k = b"key:%d" % i
        v = (b"value:%d" % i)[:vbytes].ljust(vbytes, b"\0")
        load[owner[slot(k)]].append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    cmds = {p: [] for p in masters}
    everything = []
    for j in range(commands):
        k, c = stream_command(j)
        cmds[owner[slot(k)]].append(c)
        everything.append(c)
    for p in masters:
        with open("%s/load.%d" % (work, p), "wb") as f:
            f.write(b"".join(load[p]))
        plan["load"][str(p)] = len(load[p])
        with open("%s/cmds.%d" % (work, p), "wb") as f:
            f.write(b"".join(cmds[p]))
        plan["cmds"][str(p)] = len(cmds[p])
    with open("%s/cmds.source" % work, "wb") as f:
        f.write(b"".join(everything))
    plan["cmds"]["source"] = commands
    with open("%s/plan.json" % work, "w") as f:
        json.dump(plan, f)

def blast(jobs):
    # jobs: (port, file, replies). One client per port, all started together; each sends its
    # whole file at once (a thread) and reads the replies (one line each) as they come. Prints
    # the seconds from the start until the last reply of the slowest.
    barrier = threading.Barrier(len(jobs) + 1)
    ends, errors = [None] * len(jobs), []
    def one(i, port, path, count):
        data = open(path, "rb").read()
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        barrier.wait()
        threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
        seen, prev = 0, b"\n"
        while seen < count:
            chunk = c.recv(1 << 20)
            if not chunk:
                errors.append("connection to %d closed" % port)
                return
            if (prev == b"\n" and chunk[:1] == b"-") or b"\n-" in chunk:
                errors.append("an error reply from %d" % port)
                return
            seen += chunk.count(b"\n")
            prev = chunk[-1:]
        ends[i] = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,) + job) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    if errors or None in ends:
        sys.exit("resp.py: " + "; ".join(errors or ["a client did not finish"]))
    print("%.3f" % (max(ends) - t0))

def direct(work, what):
    # load | cmds: to the masters, each its share; source: every command to the source.
    plan = json.load(open("%s/plan.json" % work))
    if what == "source":
        blast([(plan["source"], "%s/cmds.source" % work, plan["cmds"]["source"])])
    else:
        blast([(p, "%s/%s.%d" % (work, what, p), plan[what][str(p)]) for p in plan["masters"]])

def flush(*ports):
    for p in ports:
        c = Conn(p)
        c.call("FLUSHALL")
        c.call("CONFIG", "RESETSTAT")

def cpu(*ports):
    # used_cpu_sys + used_cpu_user, summed over the servers.
    total = 0.0
    for p in ports:
        for line in Conn(p).call("INFO", "cpu").decode().split("\r\n"):
            if line.startswith(("used_cpu_sys:", "used_cpu_user:")):
                total += float(line.split(":")[1])
    print("%.2f" % total)

def cmdstats(*ports):
    # The commands the servers ran since the last CONFIG RESETSTAT, summed: "name calls" lines,
    # most first.
    calls = {}
    for p in ports:
        for line in Conn(p).call("INFO", "commandstats").decode().split("\r\n"):
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m:
                calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
    for name, n in sorted(calls.items(), key=lambda x: -x[1]):
        if name not in ("info", "config|resetstat", "ping", "cluster|info", "cluster|slots"):
            print(name, n)

def checkpoint_keys(c):
    n, cursor = 0, b"0"
    while True:
        cursor, keys = c.call("SCAN", cursor, "MATCH", "redis-sync:checkpoint:*", "COUNT", 10000)
        n += len(keys)
        if cursor == b"0":
            return n

def keys(*ports):
    # "keys checkpoint_keys" summed over the masters.
    conns = [Conn(p) for p in ports]
    print(sum(int(c.call("DBSIZE")) for c in conns), sum(checkpoint_keys(c) for c in conns))

def same_counters(work, node):
    # Every counter c:<k> the commands wrote, on the source and on the master of its slot.
    plan = json.load(open("%s/plan.json" % work))
    owner = owners(int(node))
    names = [b"c:%d" % k for k in range(min(10000, (plan["cmds"]["source"] + 1) // 2))]
    want = Conn(plan["source"]).pipeline([("GET", k) for k in names])
    conns = {p: Conn(p) for p in plan["masters"]}
    got = [conns[owner[slot(k)]].call("GET", k) for k in names]
    if want != got:
        bad = next(k for k, a, b in zip(names, want, got) if a != b)
        sys.exit("resp.py: counter %s differs (source %r, target %r)" % (bad.decode(), *[
            x for a, b, k in zip(want, got, names) if k == bad for x in (a, b)]))

def span(log, first, last):
    # Seconds between the first log line containing `first` and the first containing `last`.
    when = {}
    for line in open(log, errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        for pat in (first, last):
            if pat in line and pat not in when:
                stamp = line.split()[0].replace("Z", "+00:00")
                when[pat] = datetime.fromisoformat(stamp).timestamp()
    if first not in when or last not in when:
        sys.exit("resp.py: %s lacks %r or %r" % (log, first, last))
    print("%.3f" % (when[last] - when[first]))

def table(rows, header, cols, ratio):
    # cols: (format, function of a row); the median row bolds column `ratio`.
    print("| round | " + " | ".join(header) + " |")
    print("|---:" * (len(header) + 1) + "|")
    for r in rows:
        print("| %d | " % r["round"] + " | ".join(fmt % f(r) for fmt, f in cols) + " |")
    cells = [fmt % statistics.median(f(r) for r in rows) for fmt, f in cols]
    cells[ratio] = "**%s×**" % cells[ratio]
    print("| **median** | " + " | ".join(cells) + " |")

def summary(keys, commands):
    keys, commands = int(keys), int(commands)
    names = ("round d_load d_load_cpu d_cmds d_cmds_cpu c_wall c_cpu c_rss c_mcpu "
             "s_wall s_span s_cpu s_rss s_mcpu execs src").split()
    rows = [dict(zip(names, map(float, l.split()))) for l in sys.stdin.read().splitlines() if l.strip()]
    print("Full copy of %d keys (direct: SETs pipelined to the 3 masters at once):" % keys)
    print()
    table(rows, ["direct s", "keys/s", "redis-sync s", "keys/s", "ratio",
                 "redis-sync CPU-s / 1M keys", "masters CPU-s direct", "masters CPU-s redis-sync",
                 "peak RSS MiB"],
          [("%.3f", lambda r: r["d_load"]), ("%.0f", lambda r: keys / r["d_load"]),
           ("%.3f", lambda r: r["c_wall"]), ("%.0f", lambda r: keys / r["c_wall"]),
           ("%.2f", lambda r: r["c_wall"] / r["d_load"]), ("%.2f", lambda r: r["c_cpu"] * 1e6 / keys),
           ("%.2f", lambda r: r["d_load_cpu"]), ("%.2f", lambda r: r["c_mcpu"]),
           ("%.0f", lambda r: r["c_rss"] / 1024)], 4)
    print()
    print("Stream of %d commands (SET, INCR; all slots). redis-sync: the catch-up run, and its part "
          "from the partial resync to the exit (applying), on which its rate and the ratio are:" % commands)
    print()
    table(rows, ["direct s", "commands/s", "redis-sync run s", "applying s", "commands/s", "ratio",
                 "redis-sync CPU-s / 1M commands", "masters CPU-s direct", "masters CPU-s redis-sync",
                 "target EXECs / command", "peak RSS MiB"],
          [("%.3f", lambda r: r["d_cmds"]), ("%.0f", lambda r: commands / r["d_cmds"]),
           ("%.3f", lambda r: r["s_wall"]), ("%.3f", lambda r: r["s_span"]),
           ("%.0f", lambda r: commands / r["s_span"]), ("%.2f", lambda r: r["s_span"] / r["d_cmds"]),
           ("%.2f", lambda r: r["s_cpu"] * 1e6 / commands), ("%.2f", lambda r: r["d_cmds_cpu"]),
           ("%.2f", lambda r: r["s_mcpu"]), ("%.2f", lambda r: r["execs"] / commands),
           ("%.0f", lambda r: r["s_rss"] / 1024)], 5)
    print()
    src = statistics.median(r["src"] for r in rows)
    print("The source itself took the %d commands in %.2f s (median; %.0f commands/s, one client)." % (
        commands, src, commands / src))

main({"cluster-port": cluster_port, "wait-cluster": wait_cluster, "prepare": prepare,
      "direct": direct, "flush": flush, "cpu": cpu, "cmdstats": cmdstats, "keys": keys,
      "same-counters": same_counters, "span": span, "summary": summary})
PY

# start_node NAME: a cluster-enabled server on a free loopback port whose bus port (+10000) is
# free too, in $PORT (start_server's loop, with another choice of port).
start_node() {
    local name=$1 try port pid
    mkdir -p "$WORK/$name"
    for ((try = 1; try <= 5; try++)); do
        port=$(resp cluster-port)
        "$SERVER" --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" --save "" --appendonly no \
            --daemonize no --logfile "$WORK/$name/server.log" --cluster-enabled yes \
            --cluster-config-file "$WORK/$name/nodes.conf" --cluster-node-timeout 5000 &
        pid=$!
        PIDS+=("$pid")
        if resp wait "$port" "$pid"; then
            PORT=$port
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset 'PIDS[-1]'
        rm -f "$WORK/$name/nodes.conf"
        echo "$name did not start on port $port (try $try)" >&2
    done
    tail -20 "$WORK/$name/server.log" >&2 || true
    die "$name did not start"
}

# The source keeps every stream command in its backlog (about 40 bytes each) between the runs.
start_server source --repl-diskless-sync yes --repl-diskless-sync-delay 0 \
    --repl-backlog-size $((COMMANDS * 64 + 16 * 1024 * 1024))
SP=$PORT
MASTERS=()
for i in 1 2 3; do
    start_node "node$i"
    MASTERS+=("$PORT")
done
say "source on port $SP, cluster on ports ${MASTERS[*]} ($(basename "$SERVER") $SERVER_VERSION)"
if ! timeout 120 "$REDIS_CLI" --cluster create "${MASTERS[@]/#/127.0.0.1:}" --cluster-replicas 0 \
    --cluster-yes >"$WORK/create.log" 2>&1; then
    tail -20 "$WORK/create.log" >&2
    die "redis-cli --cluster create failed"
fi
resp wait-cluster "${MASTERS[@]}" || die "the cluster is not ok"
NP=${MASTERS[0]}
say "preparing $KEYS keys and $COMMANDS commands for the direct writes"
timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" prepare "$WORK" "$NP" "$SP" "$KEYS" "$VALUE_BYTES" \
    "$COMMANDS" || die "preparing the direct writes failed"

secs() { python3 -c "print('%.2f' % ($1))"; }
step() { timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" "$@"; }

run_direct() {
    local c0 c1 c2
    resp flush "${MASTERS[@]}"
    c0=$(resp cpu "${MASTERS[@]}")
    D_LOAD=$(step direct "$WORK" load) || die "direct: writing the keys failed"
    c1=$(resp cpu "${MASTERS[@]}")
    D_CMDS=$(step direct "$WORK" cmds) || die "direct: writing the commands failed"
    c2=$(resp cpu "${MASTERS[@]}")
    D_LOAD_CPU=$(secs "$c1 - $c0")
    D_CMDS_CPU=$(secs "$c2 - $c1")
    local held
    read -r held _ < <(resp keys "${MASTERS[@]}")
    [[ "$held" == "$EXPECTED" ]] || die "direct: the masters hold $held keys, expected $EXPECTED"
    resp flush "${MASTERS[@]}"
}

# rs_run LOG TIMES ARGS...: redis-sync sync from the source into the cluster, under time.
rs_run() {
    local log=$1 times=$2
    shift 2
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f "%e %U %S %M" -o "$times" "$RS" sync \
        --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$NP" --target-cluster \
        --state-file "$WORK/state.json" "$@" 2>"$log"; then
        tail -20 "$log" >&2
        die "redis-sync ${*} failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    fi
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
}

run_rs() {
    local c0 c1 c2 user sys held ckpt src_keys
    resp flush "${MASTERS[@]}"
    resp call "$SP" FLUSHALL >/dev/null
    resp call "$SP" DEBUG POPULATE "$KEYS" key "$VALUE_BYTES" >/dev/null
    rm -f "$WORK/state.json"

    c0=$(resp cpu "${MASTERS[@]}")
    rs_run "$WORK/full.log" "$WORK/full.time" --mode full
    c1=$(resp cpu "${MASTERS[@]}")
    read -r C_WALL user sys C_RSS <"$WORK/full.time"
    C_CPU=$(secs "$user + $sys")
    C_MCPU=$(secs "$c1 - $c0")
    read -r held ckpt < <(resp keys "${MASTERS[@]}")
    # The keys and one checkpoint key: the cluster-wide hash redis-sync:checkpoint:<source>.
    [[ "$held" == "$((KEYS + 1))" && "$ckpt" == 1 ]] ||
        die "after the full copy the masters hold $held keys ($ckpt checkpoint keys), expected $KEYS + 1"
    resp cmdstats "${MASTERS[@]}" >"$WORK/full.cmdstats"

    SRC=$(step direct "$WORK" source) || die "writing the commands to the source failed"
    for p in "${MASTERS[@]}"; do resp call "$p" CONFIG RESETSTAT >/dev/null; done
    c1=$(resp cpu "${MASTERS[@]}")
    rs_run "$WORK/stream.log" "$WORK/stream.time" --until-caught-up
    c2=$(resp cpu "${MASTERS[@]}")
    grep -q 'partial resync: continuing' "$WORK/stream.log" || {
        grep -E 'INFO|WARN|ERROR' "$WORK/stream.log" | tail -10 >&2
        die "the catch-up run did not continue with a partial resync"
    }
    read -r S_WALL user sys S_RSS <"$WORK/stream.time"
    S_CPU=$(secs "$user + $sys")
    S_MCPU=$(secs "$c2 - $c1")
    S_SPAN=$(resp span "$WORK/stream.log" "partial resync: continuing" "stopped (caught up)")
    resp cmdstats "${MASTERS[@]}" >"$WORK/stream.cmdstats"
    EXECS=$(awk '$1 == "exec" { print $2 }' "$WORK/stream.cmdstats")
    read -r held ckpt < <(resp keys "${MASTERS[@]}")
    CKPT=$ckpt
    src_keys=$(resp call "$SP" DBSIZE)
    [[ "$src_keys" == "$EXPECTED" && "$((held - ckpt))" == "$src_keys" ]] ||
        die "after the stream the masters hold $held keys ($ckpt checkpoint keys), the source $src_keys, expected $EXPECTED"
    resp same-counters "$WORK" "$NP" || die "the target's counters differ from the source's"
}

# After the keys and the commands: the keys, one s:<j> per odd j, the counters.
EXPECTED=$((KEYS + COMMANDS / 2 + ((COMMANDS + 1) / 2 < 10000 ? (COMMANDS + 1) / 2 : 10000)))
say "$KEYS keys, $COMMANDS commands, $ROUNDS rounds"
: >"$WORK/rounds"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_direct
        run_rs
    else
        run_rs
        run_direct
    fi
    say "round $r: full copy: direct ${D_LOAD}s, redis-sync ${C_WALL}s ($(secs "$C_WALL / $D_LOAD")x);" \
        "stream: direct ${D_CMDS}s, redis-sync ${S_WALL}s, applying ${S_SPAN}s ($(secs "$S_SPAN / $D_CMDS")x)"
    echo "$r $D_LOAD $D_LOAD_CPU $D_CMDS $D_CMDS_CPU $C_WALL $C_CPU $C_RSS $C_MCPU" \
        "$S_WALL $S_SPAN $S_CPU $S_RSS $S_MCPU ${EXECS:-0} $SRC" >>"$WORK/rounds"
done
stop_servers

echo
echo "3-master cluster (no replicas) and a standalone source, $(basename "$SERVER") $SERVER_VERSION," \
    "$BUILT; $KEYS keys of $VALUE_BYTES bytes, $COMMANDS commands, $ROUNDS rounds;"
echo "$(nproc) cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
resp summary "$KEYS" "$COMMANDS" <"$WORK/rounds"
echo
echo "Checkpoint keys redis-sync writes into the cluster: 1 after the full copy (the cluster-wide" \
    "hash redis-sync:checkpoint:<source>), $CKPT after the stream (that hash and one" \
    "redis-sync:checkpoint:<source>:{<tag>} per slot the stream touched)."
echo "redis-sync's commands on the masters in the last round: full copy:" \
    "$(head -6 "$WORK/full.cmdstats" | paste -sd, | sed 's/,/, /g');" \
    "stream: $(head -6 "$WORK/stream.cmdstats" | paste -sd, | sed 's/,/, /g')."
