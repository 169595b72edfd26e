#!/usr/bin/env bash
# The live stream against Redis's own replica: a load generator writes to the source while
# `redis-sync sync` forwards the stream to its target and a native replica follows the same
# source; the lag of each is measured the same way, end to end:
#   - the writer (one python3 process) sends a pipelined batch every 5 ms that keeps the asked
#     rate on average (SET s:<n> 16 bytes, INCR c:<n>, LPUSH l:<n> in turn, 1000 counters and
#     lists) and closes each batch with a probe, `HSET lag:probe:<unix-ns> t 1`, timed when it
#     goes into the socket (after the batch before it: the probe waits for its batch);
#   - a reader (another process) holds a PSUBSCRIBE to the probes' keyspace events
#     (notify-keyspace-events Kh on every server; the mix itself raises none) on the redis-sync
#     target, on the replica and on the source itself, and takes the lag of a probe as the
#     moment its event arrives there minus the ns in its name (one machine, one clock).
# Two phases on the same servers:
#   1. fixed rate: $RATE writes/s for $WARMUP_SECS s (warm-up), every consumer caught up, then
#      $FIXED_SECS s measured: p50, p99 and max of the probe lag (goal for redis-sync: p99 <
#      50 ms at 50 k writes/s); redis-sync's own --heartbeat lag over the same seconds beside it;
#   2. rising rates: each rate of $STEPS for $STEP_SECS s, every consumer caught up after each
#      (a probe seen, at most $DRAIN_TIMEOUT s). A lag is flat through a step when every probe of
#      its last second was seen, their p99 is below 1 s and their median at most $FLAT_RISE_MS ms
#      above the first second's: a backlog that grows moves every probe, where a stall of a shared
#      machine moves a few (the p99s are shown too). Each consumer is judged by its hop (its own
#      backlog), the source by its own lag. A step where either is not flat runs once more, the
#      second try deciding (unless a consumer did not catch up at all); a consumer holds a step
#      when flat in it with the source flat too. One that fails is detached before the next step
#      (redis-sync stopped, the replica REPLICAOF NO ONE), so that it takes no CPU from the other.
#      The steps stop when no consumer is left, when the source's own lag was not flat (the source
#      or the machine is the limit: a consumer still there holds "≥" the step before), or when
#      the writer sent less than 95% of the asked rate (it waits when the source is half a second
#      behind).
# Layout (LAYOUT): `together` (default) runs redis-sync and the replica side by side from the
# same source and the same load: the same writes at the same moments, the same noise of a shared
# machine, and the source sends its stream to both; they compete for CPU with each other, the
# writer and the source. `apart` runs the whole of it twice on fresh servers, the native replica
# alone, then redis-sync alone (each then has the machine without the other).
# Beside each consumer's lag: the source's own (its event, the same probe: what the source and
# the machine add before any replica), the hop (seen on the consumer minus seen on the source,
# probe by probe), and for every phase and step the CPU of each process (busy, and queued:
# runnable but waiting for a core) and how busy the whole machine was, which say what limited
# the rate. At the end the counters of the consumers still attached are compared with the
# source's. Prints the results as markdown tables.
#
# Usage: scripts/bench-stream.sh
# Environment:
#   RATE=50000               writes/s of the fixed-rate phase
#   WARMUP_SECS=5            seconds of warm-up before it
#   FIXED_SECS=20            seconds measured at $RATE
#   STEPS="25000 50000 100000 150000 200000 300000 400000 600000 800000"   rising rates (writes/s)
#   STEP_SECS=5              seconds per step (at least 2: its first and last second compare)
#   FLAT_RISE_MS=20          the most a step's median lag may rise (first second to last) and be flat
#   DRAIN_TIMEOUT=30         seconds a consumer has to catch up after a phase (else detached)
#   LAYOUT=together          together | apart (see above)
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the server, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#                            (or valkey-server), e.g. redis-8.6.3, valkey-9.0.0 (5.0 or later)
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=900          seconds after which one run (both phases) is stopped (a failure)
# Needs python3 and Linux (/proc). Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-stream
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
RATE="${RATE:-50000}"
WARMUP_SECS="${WARMUP_SECS:-5}"
FIXED_SECS="${FIXED_SECS:-20}"
STEPS="${STEPS:-25000 50000 100000 150000 200000 300000 400000 600000 800000}"
STEP_SECS="${STEP_SECS:-5}"
FLAT_RISE_MS="${FLAT_RISE_MS:-20}"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-30}"
LAYOUT="${LAYOUT:-together}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"

for v in RATE FIXED_SECS STEP_SECS FLAT_RISE_MS DRAIN_TIMEOUT; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ "$WARMUP_SECS" =~ ^[0-9]+$ ]] || die "WARMUP_SECS must be a number of seconds, not '$WARMUP_SECS'"
((STEP_SECS >= 2)) || die "STEP_SECS must be at least 2"
read -ra STEP_LIST <<<"$STEPS"
((${#STEP_LIST[@]})) || die "STEPS is empty"
for s in "${STEP_LIST[@]}"; do
    [[ "$s" =~ ^[1-9][0-9]*$ ]] || die "STEPS must be positive integers (writes/s), not '$s'"
done
case "$LAYOUT" in
    together) RUNS=("redis-sync native") ;;
    apart) RUNS=("native" "redis-sync") ;;
    *) die "LAYOUT must be together or apart, not '$LAYOUT'" ;;
esac
check_common
[[ -r /proc/self/stat ]] || die "needs Linux (/proc)"
find_server
((${SERVER_VERSION%%.*} >= 5)) || die "needs Redis 5.0 or later (REPLICAOF)"
find_redis_sync
make_work
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# The rest of resp.py (bench-lib.sh writes its beginning).
cat >>"$WORK/resp.py" <<'PY'
import json, math, re, select, signal, subprocess

TIMEOUT = 60      # seconds a connection waits for a reply
CYCLE = 60000     # commands of the writer's pre-encoded cycle (a batch is a slice of it)
TICK = 0.005      # seconds between batches (and probes)
PROBE = re.compile(rb"__keyspace@0__:lag:probe:(\d+)\r\n")
NAMES = {"source": "source (its own write)", "redis-sync": "redis-sync", "native": "native replica"}

def replicate(port, source_port):
    # REPLICAOF, then wait (bounded) until the link is up.
    c = Conn(port)
    c.call("REPLICAOF", "127.0.0.1", source_port)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if "master_link_status:up" in c.call("INFO", "replication").decode():
            return
        time.sleep(0.05)
    sys.exit("resp.py: the replica's link did not come up within %d s" % TIMEOUT)

# --- the reader: probe events from every server, one line "name probe-ns seen-ns" each ---------

def reader(out, *specs):
    socks = {}
    for spec in specs:
        name, port = spec.rsplit(":", 1)
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT)
        s.sendall(enc(("PSUBSCRIBE", "__keyspace@0__:lag:probe:*")))
        got = b""
        while not got.endswith(b":1\r\n"):
            data = s.recv(4096)
            if not data:
                sys.exit("resp.py: %s closed the connection" % name)
            got += data
        s.settimeout(None)
        socks[s] = name
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tails = {s: b"" for s in socks}
    with open(out, "w") as f:
        print("ready", flush=True)
        try:
            while socks:
                ready, _, _ = select.select(list(socks), [], [])
                seen = time.time_ns()
                for s in ready:
                    data = s.recv(1 << 16)
                    if not data:
                        del socks[s]
                        continue
                    b = tails[s] + data
                    end = 0
                    for m in PROBE.finditer(b):
                        f.write("%s %s %d\n" % (socks[s], m.group(1).decode(), seen))
                        end = m.end()
                    tails[s] = b[end:][-512:]
                f.flush()
        finally:
            f.flush()

class Samples:
    # The reader's file, read as it grows: seen[name][probe-ns] = seen-ns.
    def __init__(self, path):
        self.f = open(path)
        self.rest = ""
        self.seen = {}
    def poll(self):
        lines = (self.rest + self.f.read()).split("\n")
        self.rest = lines.pop()
        for line in lines:
            name, probe, seen = line.split()
            self.seen.setdefault(name, {}).setdefault(int(probe), int(seen))
    def has(self, name, probe):
        return probe in self.seen.get(name, {})

# --- the writer ---------------------------------------------------------------------------------

class Writer:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT)
        self.s.settimeout(None)   # blocking; reads without waiting use MSG_DONTWAIT
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parts, self.offs = [], [0]
        value = b"v" * 16
        for j in range(CYCLE):
            if j % 3 == 0:
                c = enc(("SET", "s:%d" % j, value))
            elif j % 3 == 1:
                c = enc(("INCR", "c:%d" % (j % 1000)))
            else:
                c = enc(("LPUSH", "l:%d" % (j % 1000), j))
            parts.append(c)
            self.offs.append(self.offs[-1] + len(c))
        one = b"".join(parts)
        self.buf = memoryview(one + one)
        self.pos = 0
        self.sent = 0      # commands sent, probes included
        self.replies = 0   # every reply is one line (+OK, :n)

    def chunk(self, n):
        a = self.offs[self.pos]
        e = self.pos + n
        b = self.offs[e] if e <= CYCLE else self.offs[CYCLE] + self.offs[e - CYCLE]
        self.pos = e % CYCLE
        return self.buf[a:b]

    def read_replies(self, wait=False):
        if wait:
            r, _, _ = select.select([self.s], [], [], TIMEOUT)
            if not r:
                sys.exit("resp.py: no reply from the source for %d s" % TIMEOUT)
        while True:
            try:
                data = self.s.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                sys.exit("resp.py: the source closed the writer's connection")
            self.replies += data.count(b"\r\n")

    def probe(self):
        ns = time.time_ns()
        self.s.sendall(enc(("HSET", b"lag:probe:%d" % ns, "t", "1")))
        self.sent += 1
        return ns

    def run(self, rate, secs):
        # `rate` writes/s for `secs` s: each tick sends what is due so far (at most a cycle),
        # then a probe. At most half a second of the rate (20000 at least) waits for replies:
        # beyond it the source is the limit and the writer waits for it.
        probes, writes, cap = [], 0, max(rate // 2, 20000)
        t0 = time.monotonic()
        nxt = t0
        while True:
            t = time.monotonic()
            if t >= t0 + secs:
                break
            due = min(int(rate * (t - t0)) - writes, CYCLE)
            if due > 0:
                self.s.sendall(self.chunk(due))
                writes += due
                self.sent += due
            probes.append(self.probe())
            self.read_replies()
            while self.sent - self.replies > cap:
                self.read_replies(wait=True)
            nxt += TICK
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()
        return writes, probes, time.monotonic() - t0

# --- CPU of the processes (% of one core) and of the machine ---------------------------------

CLK = os.sysconf("SC_CLK_TCK")

def proc_times(pid):
    # (CPU seconds, seconds runnable but waiting for a core) of a process, all its threads: the
    # first from /proc/PID/stat (threads gone included), the second from each thread's schedstat.
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    wait = 0
    for t in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                wait += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return (int(fields[11]) + int(fields[12])) / CLK, wait / 1e9

def machine_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)

def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2] not in "ZX"

class Cpu:
    # start() ... stop(): {name: [busy %, queued %]} of one core, and "machine": busy % of all.
    def __init__(self, pids):
        self.pids = pids
    def start(self):
        self.t0 = time.monotonic()
        self.m0 = machine_times()
        self.c0 = {k: proc_times(p) for k, p in self.pids.items()}
    def stop(self):
        wall = time.monotonic() - self.t0
        out = {}
        for k, p in self.pids.items():
            c = proc_times(p)
            if c is not None and self.c0[k] is not None:
                out[k] = [round(100 * (c[i] - self.c0[k][i]) / wall) for i in (0, 1)]
        m = machine_times()
        out["machine"] = round(100 * (m[0] - self.m0[0]) / max(m[1] - self.m0[1], 1))
        return out

# --- lag figures --------------------------------------------------------------------------------

def pct(lags, q):
    return lags[max(0, math.ceil(q * len(lags)) - 1)] if lags else math.inf

def lags_ms(samples, name, probes, hop=False):
    # The lag of each probe (sorted, ms; never seen: inf): end to end, or with hop=True from the
    # moment the source applied it (seen on the consumer minus seen on the source).
    seen, src = samples.seen.get(name, {}), samples.seen.get("source", {})
    out = []
    for p in probes:
        if p not in seen or (hop and p not in src):
            out.append(math.inf)
        else:
            out.append((seen[p] - (src[p] if hop else p)) / 1e6)
    return sorted(out)

def figures(samples, name, probes):
    lags = lags_ms(samples, name, probes)
    row = {"probes": len(probes), "seen": sum(math.isfinite(x) for x in lags),
           "p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": lags[-1] if lags else math.inf}
    if name != "source":
        hop = lags_ms(samples, name, probes, hop=True)
        row["hop_p50"], row["hop_p99"] = pct(hop, 0.5), pct(hop, 0.99)
    return row

def halves(samples, name, probes, hop=False):
    # p50 and p99 of a step's first and last second.
    first = [p for p in probes if p < probes[0] + 1e9]
    last = [p for p in probes if p > probes[-1] - 1e9]
    out = {}
    for part, ps in (("first", first), ("last", last)):
        lags = lags_ms(samples, name, ps, hop)
        out["p50_" + part], out["p99_" + part] = pct(lags, 0.5), pct(lags, 0.99)
    return out

def not_flat(h, rise):
    # Why a lag (halves()) did not stay flat through a step, or None. The trend is the median's:
    # a backlog that grows moves every probe, a stall of the shared machine a few (the p99s).
    if not math.isfinite(h["p99_last"]):
        return "probes of its last second never seen"
    if h["p99_last"] >= 1000:
        return "last-second p99 %s ms ≥ 1 s" % ms(h["p99_last"])
    if h["p50_last"] > h["p50_first"] + rise:
        return "p50 rose from %s ms in the first second to %s ms in the last" % (
            ms(h["p50_first"]), ms(h["p50_last"]))
    return None

def rs_status(path, start, end):
    # redis-sync's --status-json lines between two offsets of its log: heartbeat and lag.
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read(end - start).decode(errors="replace")
    except OSError:
        return None
    hb, lag = [], []
    for line in text.splitlines():
        if line.startswith("{") and '"state"' in line:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("heartbeat_lag_secs") is not None:
                hb.append(1000 * j["heartbeat_lag_secs"])
            lag.append(1000 * j.get("lag_secs", 0))
    return {"lines": len(lag), "hb": sorted(hb), "lag": sorted(lag)}

# --- the run: both phases -----------------------------------------------------------------------

def run(cfg):
    cfg = json.loads(cfg)
    cons = cfg["consumers"]          # name -> {"port", "pids": {label: pid}}
    pids = {"source": cfg["source_pid"], "writer": os.getpid()}
    for c in cons.values():
        pids.update(c["pids"])
    path = cfg["work"] + "/probes-%s.txt" % cfg["run"]
    rd = subprocess.Popen([sys.executable, __file__, "reader", path, "source:%d" % cfg["source"]]
                          + ["%s:%d" % (n, c["port"]) for n, c in cons.items()],
                          stdout=subprocess.PIPE, text=True)
    if rd.stdout.readline().strip() != "ready":
        sys.exit("resp.py: the probe reader did not start")
    pids["reader"] = rd.pid
    cpu = Cpu(pids)
    samples = Samples(path)
    w = Writer(cfg["source"])
    active = list(cons)
    result = {"run": cfg["run"], "consumers": list(cons), "notes": [], "rise": cfg["rise"],
              "step_secs": cfg["step_secs"]}

    def barrier(probe):
        # Until every active consumer (and the source) saw `probe`; returns those that did not.
        deadline = time.monotonic() + cfg["drain_timeout"]
        waiting = set(active) | {"source"}
        while waiting and time.monotonic() < deadline:
            time.sleep(0.01)
            w.read_replies()
            samples.poll()
            waiting = {n for n in waiting if not samples.has(n, probe)}
        if "source" in waiting:
            sys.exit("resp.py: the source did not apply the writes within %d s"
                     % cfg["drain_timeout"])
        return waiting

    def detach(name, why):
        if name not in active:
            return
        active.remove(name)
        result["notes"].append("%s detached: %s" % (NAMES[name], why))
        if name == "redis-sync":
            if alive(cons[name]["pids"]["redis-sync"]):
                os.kill(cons[name]["pids"]["redis-sync"], signal.SIGTERM)
        else:
            Conn(cons[name]["port"]).call("REPLICAOF", "NO", "ONE")

    def check_alive():
        if "redis-sync" in active and not alive(cons["redis-sync"]["pids"]["redis-sync"]):
            active.remove("redis-sync")
            result["notes"].append("redis-sync exited by itself (see its log)")

    # 1. fixed rate
    if cfg["warmup"]:
        _, probes, _ = w.run(cfg["rate"], cfg["warmup"])
        for n in barrier(probes[-1]):
            detach(n, "not caught up %d s after the warm-up" % cfg["drain_timeout"])
    log = cfg.get("rs_log")
    log0 = os.path.getsize(log) if log else 0
    cpu.start()
    writes, probes, secs = w.run(cfg["rate"], cfg["fixed"])
    load = cpu.stop()
    late = barrier(probes[-1])
    fixed = {"rate": cfg["rate"], "sent": writes / secs, "secs": secs, "cpu": load, "rows": {}}
    for n in ["source"] + list(cons):
        fixed["rows"][n] = figures(samples, n, probes)
    if log:
        fixed["status"] = rs_status(log, log0, os.path.getsize(log))
    for n in late:
        detach(n, "not caught up %d s after the fixed-rate phase" % cfg["drain_timeout"])
    result["fixed"] = fixed

    # 2. rising rates. Each consumer is judged by its hop (its own backlog: what the source's
    # lag does not explain), the source by its own lag; a step where either is not flat runs
    # once more (a stall of the shared machine is no trend) and the second try decides, except
    # for a consumer that did not even catch up. A consumer holds a step when flat in it and the
    # source was flat too; one that is not is detached; the steps stop when the source's own lag
    # was not flat (it, or the machine, is the limit) or the writer did not send the rate.
    steps = []
    verdicts = {n: {"held": None, "failed": None} for n in cons}
    result["end"] = "the last of STEPS"
    for rate in cfg["steps"]:
        check_alive()
        if not active:
            result["end"] = "no consumer left"
            break
        judged = list(active)
        retry = None           # at the second try: the consumers it judges again
        failing = {}           # not flat in the try that decides
        behind = {}            # did not catch up: detached at once, no second try
        for attempt in (1, 2):
            time.sleep(0.5)
            on = list(active)
            cpu.start()
            writes, probes, secs = w.run(rate, cfg["step_secs"])
            load = cpu.stop()
            late = barrier(probes[-1])
            step = {"rate": rate, "try": attempt, "sent": writes / secs, "cpu": load,
                    "rows": {}, "limited": writes < 0.95 * rate * secs}
            steps.append(step)
            src = step["rows"]["source"] = figures(samples, "source", probes)
            src.update(halves(samples, "source", probes))
            step["source_not_flat"] = not_flat(src, cfg["rise"])
            failing = {}
            for n in on:
                row = step["rows"][n] = figures(samples, n, probes)
                row.update(halves(samples, n, probes))
                hop = halves(samples, n, probes, hop=True)
                row["hop_p50_first"], row["hop_p50_last"] = hop["p50_first"], hop["p50_last"]
                why = not_flat(hop, cfg["rise"])
                if n in late:
                    behind[n] = "not caught up %d s after the step" % cfg["drain_timeout"]
                    row["held"] = False
                    detach(n, "at %d writes/s: %s" % (rate, behind[n]))
                elif retry is None or n in retry:
                    row["held"] = why is None      # judged by this try
                    if why:
                        failing[n] = why
                else:
                    row["flat"] = why is None      # flat in the first try already
            if attempt == 1 and (failing or step["source_not_flat"]) and not step["limited"] \
                    and active:
                for n in failing:
                    step["rows"][n]["retried"] = True
                retry = set(failing)
                continue
            break
        last = steps[-1]
        failing.update(behind)
        for n in judged:
            if n in failing:
                verdicts[n]["failed"] = {"rate": rate, "why": failing[n],
                                         "machine": last["cpu"]["machine"],
                                         "source_not_flat": last["source_not_flat"]}
                detach(n, "at %d writes/s: %s" % (rate, failing[n]))
            elif n in active and not last["source_not_flat"]:
                verdicts[n]["held"] = [last["sent"] if last["limited"] else rate, last["limited"]]
        if last["source_not_flat"]:
            result["end"] = "at %s writes/s the source's own lag was not flat (%s): the source, " \
                "or the machine, is the limit" % (kw(rate), last["source_not_flat"])
            break
        if last["limited"]:
            result["end"] = "the writer sent %s writes/s of the %s asked" % (
                kw(last["sent"]), kw(rate))
            break
    result["verdicts"] = verdicts
    result["steps"] = steps

    # The consumers still attached hold what the source holds (every counter).
    check_alive()
    keys = [("GET", "c:%d" % k) for k in range(1000)]
    want = Conn(cfg["source"]).pipeline(keys)
    for n in active:
        if Conn(cons[n]["port"]).pipeline(keys) != want:
            sys.exit("resp.py: the counters of %s differ from the source's" % NAMES[n])
        result["notes"].append("%s: still attached at the end, its counters match the source's"
                               % NAMES[n])
    rd.terminate()
    rd.wait(TIMEOUT)
    with open(cfg["out"], "w") as f:
        json.dump(result, f)

# --- the report ---------------------------------------------------------------------------------

def ms(x):
    return "∞" if not math.isfinite(x) else ("%.1f" % x if x < 100 else "%.0f" % x)

def kw(x):
    return "%.0f k" % (x / 1000) if x >= 10000 else "%.1f k" % (x / 1000)

def bq(load, k):
    v = load.get(k)
    return "%d/%d" % tuple(v) if v else "-"

def cpu_of(load, n):
    if n == "redis-sync":
        return "%s + %s" % (bq(load, "redis-sync"), bq(load, "target"))
    if n == "native":
        return bq(load, "replica")
    return ""

def report(*paths):
    results = [json.load(open(p)) for p in paths]
    f0 = results[0]["fixed"]
    print("### lag at a fixed rate (%s writes/s for %.0f s)" % (kw(f0["rate"]), f0["secs"]))
    print()
    print("| run | consumer | writes/s sent | probes seen | p50 ms | p99 ms | max ms | hop p50 / p99 ms | CPU % busy/queued | source | writer | machine busy % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        f = r["fixed"]
        for n, row in f["rows"].items():
            hop = "%s / %s" % (ms(row["hop_p50"]), ms(row["hop_p99"])) if "hop_p50" in row else ""
            print("| %s | %s | %s | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["run"], NAMES[n], kw(f["sent"]), row["seen"], row["probes"], ms(row["p50"]),
                ms(row["p99"]), ms(row["max"]), hop, cpu_of(f["cpu"], n), bq(f["cpu"], "source"),
                bq(f["cpu"], "writer"), f["cpu"]["machine"]))
    print()
    for r in results:
        st = r["fixed"].get("status")
        if st and st["lines"]:
            hb = st["hb"]
            print("redis-sync's own view of the same seconds (%d --status-json lines, one a second, "
                  "ms resolution): --heartbeat lag median %s ms, max %s ms; lag_secs max %s ms." % (
                      st["lines"], ms(pct(hb, 0.5)) if hb else "-", ms(hb[-1]) if hb else "-",
                      ms(st["lag"][-1])))
            print()
    print("### rising rates (%d s a step)" % results[0]["step_secs"])
    print()
    print("| run | writes/s asked | sent | consumer | p50 first s → last s | p99 first s → last s | max ms | hop p50 first s → last s | probes seen | flat | CPU % busy/queued | source | writer | machine busy % |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        for s in r["steps"]:
            for n, row in s["rows"].items():
                if n == "source":
                    flat = "no" if s["source_not_flat"] else "yes"
                    hop = ""
                else:
                    hop = "%s → %s" % (ms(row["hop_p50_first"]), ms(row["hop_p50_last"]))
                    if "held" not in row:
                        flat = "(%s)" % ("yes" if row.get("flat") else "no")
                    elif row.get("retried"):
                        flat = "no, try again"
                    else:
                        flat = "yes" if row["held"] else "**no**"
                print("| %s | %s%s | %s | %s | %s → %s | %s → %s | %s | %s | %d / %d | %s | %s | %s | %s | %s |" % (
                    r["run"], kw(s["rate"]), " (2nd)" if s["try"] == 2 else "", kw(s["sent"]),
                    NAMES[n], ms(row["p50_first"]), ms(row["p50_last"]), ms(row["p99_first"]),
                    ms(row["p99_last"]), ms(row["max"]), hop, row["seen"], row["probes"], flat,
                    cpu_of(s["cpu"], n), bq(s["cpu"], "source"), bq(s["cpu"], "writer"),
                    s["cpu"]["machine"]))
    print()
    print("Flat: every probe of the step's last second seen, their p99 below 1 s, and their median "
          "at most %d ms above the first second's; a consumer is judged by its hop (seen on "
          "it minus seen on the source, probe by probe: its own backlog), the source by its own "
          "lag. \"no, try again\": the step ran once more and the second try decides; \"(yes)\": "
          "flat in the first try already. CPU %% is of one core over the phase or step: busy "
          "(user + system), then queued (runnable but waiting for a core); redis-sync's is "
          "redis-sync + its target. Machine busy %% is of all %d cores, every process on the "
          "machine." % (results[0]["rise"], os.cpu_count()))
    print()
    for r in results:
        for n, v in r["verdicts"].items():
            if v["held"] is None:
                text = "< %s writes/s" % kw(r["steps"][0]["rate"]) if v["failed"] else "unknown"
            else:
                text = "%s%s writes/s" % ("≥ " if v["failed"] is None else "", kw(v["held"][0]))
            f = v["failed"]
            if f:
                text += " (not flat at %s: %s; the machine %d%% busy%s)" % (
                    kw(f["rate"]), f["why"], f["machine"],
                    ", the source's own lag not flat either" if f["source_not_flat"] else "")
            else:
                text += " (the steps ended: %s)" % r["end"]
            print("- highest rate held with flat lag, %s: %s" % (NAMES[n], text))
    for r in results:
        for note in r["notes"]:
            print("- %s: %s" % (r["run"], note))

main({"replicate": replicate, "reader": reader,
      "run": run, "report": report})
PY

# one_run NAME CONSUMERS: fresh servers, the consumers attached and streaming, then both phases;
# the results in $WORK/result-NAME.json.
one_run() {
    local run=$1 consumers=$2 c i cons="" sp spid log=""
    stop_servers
    rm -rf "$WORK/source" "$WORK/target" "$WORK/replica" "$WORK/state.json"
    start_server source --repl-diskless-sync yes --repl-diskless-sync-delay 0 \
        --repl-backlog-size 256mb --notify-keyspace-events Kh
    sp=$PORT
    spid=${PIDS[-1]}
    for c in $consumers; do
        if [[ "$c" == redis-sync ]]; then
            start_server target --notify-keyspace-events Kh
            local tp=$PORT tpid=${PIDS[-1]} rspid
            log="$WORK/rs-$run.log"
            "$RS" sync --source "redis://127.0.0.1:$sp" --target "redis://127.0.0.1:$tp" \
                --state-file "$WORK/state.json" --status-json --status-interval 1 \
                --heartbeat 1 --no-progress 2>"$log" &
            rspid=$!
            PIDS+=("$rspid")
            for ((i = 0; i < 600; i++)); do
                grep -q '"state":"streaming"' "$log" && break
                kill -0 "$rspid" 2>/dev/null || {
                    tail -20 "$log" >&2
                    die "redis-sync exited before streaming"
                }
                sleep 0.1
            done
            grep -q '"state":"streaming"' "$log" || die "redis-sync not streaming after 60 s"
            cons+=",\"redis-sync\":{\"port\":$tp,\"pids\":{\"redis-sync\":$rspid,\"target\":$tpid}}"
        else
            start_server replica --notify-keyspace-events Kh
            local rp=$PORT rpid=${PIDS[-1]}
            resp replicate "$rp" "$sp"
            cons+=",\"native\":{\"port\":$rp,\"pids\":{\"replica\":$rpid}}"
        fi
    done
    say "run $run: source 127.0.0.1:$sp, $consumers attached; $RATE writes/s for $WARMUP_SECS + $FIXED_SECS s, then steps of $STEP_SECS s: $STEPS"
    local cfg
    cfg=$(printf '{"run":"%s","work":"%s","out":"%s","source":%d,"source_pid":%d,"consumers":{%s},"rs_log":%s,"rate":%d,"warmup":%d,"fixed":%d,"steps":[%s],"step_secs":%d,"rise":%d,"drain_timeout":%d}' \
        "$run" "$WORK" "$WORK/result-$run.json" "$sp" "$spid" "${cons#,}" \
        "$([[ -n "$log" ]] && echo "\"$log\"" || echo null)" "$RATE" "$WARMUP_SECS" "$FIXED_SECS" \
        "$(IFS=,; echo "${STEP_LIST[*]}")" "$STEP_SECS" "$FLAT_RISE_MS" "$DRAIN_TIMEOUT")
    if ! timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" run "$cfg"; then
        [[ -z "$log" ]] || grep -v '^{' "$log" | tail -10 >&2
        die "run $run failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    fi
    stop_servers
    RESULTS+=("$WORK/result-$run.json")
}

RESULTS=()
for consumers in "${RUNS[@]}"; do
    if [[ "$LAYOUT" == together ]]; then name=together; else name=$consumers; fi
    one_run "$name" "$consumers"
done

echo
echo "stream lag, $(basename "$SERVER") $SERVER_VERSION (source, target, replica), $BUILT, layout $LAYOUT;"
echo "$(nproc) cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), load average before: $LOAD_BEFORE"
echo
resp report "${RESULTS[@]}"
