#!/usr/bin/env bash
# A full copy of a mixed data set against Redis's own replica, side by side in one run. The
# source is filled once (per run) with $KEYS keys, the six types in turn (strings, lists, hashes,
# sets, zsets, streams: equal counts), every tenth key of each type large:
#   small  a 60-200 B string, or 5-20 elements of 8-60 B (listpacks; half the sets intsets);
#   large  a 100 KB-1 MB string (log-uniform), or 1,000-10,000 elements of 8-100 B (a quicklist,
#          hashtables, a skiplist, a stream of that many entries);
#   every stream has 1 or 2 consumer groups with pending entries (XREADGROUP, 2 or 100 a group).
# The values are slices of random base64 (LZF, the RDB's compression, cannot shrink them) from a
# seeded generator, so the data is the same every run. With the default KEYS the source's RDB
# (SAVE, then its size) is about 1.2 GB, about 30 KB a key. Then, in alternating rounds:
#   - a native replica: a fresh empty server, `REPLICAOF` the source (diskless, delay 0), timed
#     from the command until `master_link_status:up` and its DBSIZE equals the source's;
#   - `redis-sync sync --mode full` into a fresh empty server, under /usr/bin/time (wall,
#     user+system CPU seconds of redis-sync itself, peak RSS); its target must hold the source's
#     keys and the checkpoint `redis-sync:checkpoint:*`, and once that key is deleted its
#     DEBUG DIGEST must equal the source's and a sample of streams their XINFO STREAM FULL
#     (groups, consumers, pending entries: the digest covers only the entries).
# Which goes first swaps every round. At the end, as a markdown table: each round's times, the
# ratio redis-sync / native, redis-sync's keys/s, MB/s (RDB bytes it read, from its log, per
# second), CPU-seconds per million keys and per GB of RDB, its peak RSS, and the medians.
#
# Usage: scripts/bench-mixed.sh
#   e.g. KEYS=2000 ROUNDS=3 RS=target/release/redis-sync scripts/bench-mixed.sh   (RDB ≈ 60 MB)
# Environment:
#   ROUNDS=5                 rounds (each copies with both)
#   KEYS=40000               keys on the source (RDB ≈ 30 KB a key: 40000 ≈ 1.2 GB)
#   SEED=1                   seed of the data
#   FILL_CACHE=dir           keep the filled source's RDB in dir (mixed-<KEYS>-<SEED>-<server>.rdb)
#                            and load it instead of filling when it is there (default: none)
#   RS=path/to/redis-sync    use this binary (default: cargo build --release -p redis-sync)
#   REDIS_VERSION=redis-7.0.15  the server, $REDIS_SERVERS_DIR/bin/$REDIS_VERSION/redis-server
#                            (or valkey-server), e.g. redis-8.6.3, valkey-9.1.2
#   REDIS_SERVERS_DIR=~/.cache/redis-sync/servers
#   RUN_TIMEOUT=1800         seconds after which the fill or one copy is stopped (a failure)
# Needs python3 (3.9+) and /usr/bin/time. The default (1.2 GB of RDB, about 18 M elements) takes
# about a minute to fill (1,000 keys, 30 MB, a second here, the source busy half of it), then
# seconds to SAVE (for the RDB's size) and to take the source's DEBUG DIGEST; it needs about
# 5 GB of free memory (source and target hold 2 GB each, the source forks for every copy) and
# 1.3 GB of disk in $TMPDIR (the RDB of the SAVE, then the native replica's; 1.2 GB more in
# FILL_CACHE). Only 127.0.0.1 is used.
set -euo pipefail

BENCH_NAME=bench-mixed
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-lib.sh"
ROUNDS="${ROUNDS:-5}"
KEYS="${KEYS:-40000}"
SEED="${SEED:-1}"
FILL_CACHE="${FILL_CACHE:-}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1800}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || die "KEYS must be a positive integer, not '$KEYS'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "SEED must be a number, not '$SEED'"
check_common
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 3.9 or later is needed"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
find_server
((${#DEBUG_FLAG[@]})) || [[ "${SERVER_VERSION%%.*}" -ge 5 ]] || die "needs Redis 5.0 or later"
find_redis_sync
make_work

# The rest of resp.py (bench-lib.sh writes its beginning).
cat >>"$WORK/resp.py" <<'PY'
import base64, random

TIMEOUT = 3600

TYPES = (b"string", b"list", b"hash", b"set", b"zset", b"stream")

def key_of(i):
    return b"%s:%d" % (TYPES[i % 6], i)

def is_large(i):
    return (i // 6) % 10 == 9

def cmd(args):
    # args are bytes; the RESP of one command.
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%s\r\n" % (len(a), a) for a in args])

def key_commands(i, rng, val):
    # The commands that make key i (a list of (RESP bytes, replies expected)).
    t, large, key = i % 6, is_large(i), key_of(i)
    rr = rng.randrange
    out = []
    n = rr(1000, 10001) if large else rr(5, 21)
    def chunks(head, items, per):  # items: a flat list of arguments, `per` of them an element
        step = 1000 * per
        for o in range(0, len(items), step):
            out.append((cmd(head + items[o:o + step]), 1))
    if t == 0:
        size = int(100000 * 10 ** rng.random()) if large else rr(60, 201)
        out.append((cmd([b"SET", key, val(size)]), 1))
    elif t == 1:
        lo, hi = (20, 100) if large else (10, 60)
        chunks([b"RPUSH", key], [val(rr(lo, hi + 1)) for _ in range(n)], 1)
    elif t == 2:
        lo, hi = (20, 100) if large else (10, 60)
        items = []
        for j in range(n):
            items += (b"field:%d" % j, val(rr(lo, hi + 1)))
        chunks([b"HSET", key], items, 2)
    elif t == 3:
        if not large and (i // 6) % 2:
            chunks([b"SADD", key], [b"%d" % rr(1 << 40) for _ in range(n)], 1)  # an intset
        else:
            chunks([b"SADD", key], [val(rr(8, 41)) for _ in range(n)], 1)
    elif t == 4:
        items = []
        for _ in range(n):
            items += (b"%.3f" % (rng.random() * 1e6), val(rr(8, 41)))
        chunks([b"ZADD", key], items, 2)
    else:
        for j in range(n):
            out.append((cmd([b"XADD", key, b"%d-%d" % (1700000000000 + j // 3, j % 3),
                             b"f1", val(rr(8, 41)), b"f2", val(rr(8, 41))]), 1))
        groups = 2 if (i // 6) % 2 else 1
        count = b"100" if large else b"2"
        for g in range(1, groups + 1):
            out.append((cmd([b"XGROUP", b"CREATE", key, b"g%d" % g, b"0"]), 1))
            for c in range(1, g + 1):  # g1: one consumer, g2: two
                out.append((cmd([b"XREADGROUP", b"GROUP", b"g%d" % g, b"c%d" % c, b"COUNT", count,
                                 b"STREAMS", key, b">"]), 1))
    return out

def fill(port, keys, seed):
    keys = int(keys)
    rng = random.Random(int(seed))
    pool = base64.b64encode(rng.randbytes(3 << 20))
    top = len(pool)
    rr = rng.randrange
    def val(n):
        o = rr(top - n)
        return pool[o:o + n]
    c = Conn(port)
    batch, size, expect, owed = [], 0, 0, 0
    t0 = time.monotonic()
    step = max(keys // 10, 1)
    for i in range(keys):
        for data, replies in key_commands(i, rng, val):
            batch.append(data)
            size += len(data)
            expect += replies
        if size >= 4 << 20 or i == keys - 1:
            # Send this batch, then read the replies of the one before: the server works on
            # one batch while this generates the next.
            c.s.sendall(b"".join(batch))
            c.replies(owed)
            batch, size, owed, expect = [], 0, expect, 0
        if (i + 1) % step == 0:
            print("fill: %d of %d keys, %.0f s" % (i + 1, keys, time.monotonic() - t0), file=sys.stderr)
    c.replies(owed)
    if int(c.call("DBSIZE")) != keys:
        sys.exit("resp.py: the source holds %s keys, expected %d" % (c.call("DBSIZE"), keys))

def info_field(port, section, field):
    info = Conn(port).call("INFO", section).decode()
    print(next(l.split(":", 1)[1] for l in info.split("\r\n") if l.startswith(field + ":")))

def loaded(port):
    # Wait (bounded) until the server has loaded its RDB.
    c = Conn(port)
    deadline = time.monotonic() + TIMEOUT
    while "\r\nloading:0\r\n" not in c.call("INFO", "persistence").decode():
        if time.monotonic() > deadline:
            sys.exit("resp.py: the source did not load its RDB within %d s" % TIMEOUT)
        time.sleep(0.1)

def drop_checkpoint(port):
    # Delete redis-sync's checkpoint key(s); print how many.
    c = Conn(port)
    found, cursor = [], b"0"
    while True:
        cursor, batch = c.call("SCAN", cursor, "MATCH", "redis-sync:checkpoint:*", "COUNT", 1000)
        found += batch
        if cursor == b"0":
            break
    if found:
        c.call("DEL", *found)
    print(len(found))

def streams_sample(port, keys, full):
    # A digest of XINFO STREAM key FULL for every 7th stream (and every large one): groups,
    # consumers and pending entries, which DEBUG DIGEST leaves out. A consumer's seen-time and
    # active-time are left out (XINFO CONSUMERS gives them relative to now: "idle", "inactive").
    import hashlib
    skip = {b"seen-time", b"active-time", b"idle", b"inactive"}
    def flat(x, h):
        if isinstance(x, list):
            h.update(b"[")
            prev = None
            for y in x:
                if not (isinstance(prev, bytes) and prev in skip):
                    flat(y, h)
                prev = y
            h.update(b"]")
        else:
            h.update(repr(x).encode())
    c = Conn(port)
    h = hashlib.sha1()
    for i in range(5, int(keys), 6):
        if not (is_large(i) or (i // 6) % 7 == 0):
            continue
        key = key_of(i)
        if full == "1":
            flat(c.call("XINFO", "STREAM", key, "FULL", "COUNT", "250"), h)
            continue
        # Redis 5.0 has no XINFO STREAM FULL.
        flat(c.call("XINFO", "STREAM", key), h)
        for g in c.call("XINFO", "GROUPS", key):
            flat(g, h)
            flat(c.call("XINFO", "CONSUMERS", key, g[1]), h)
            flat(c.call("XPENDING", key, g[1]), h)
    print(h.hexdigest())

main({"fill": fill, "info-field": info_field, "loaded": loaded, "drop-checkpoint": drop_checkpoint, "streams-sample": streams_sample})
PY

# The source: filled, or loaded from $FILL_CACHE.
CACHED=""
if [[ -n "$FILL_CACHE" ]]; then
    mkdir -p "$FILL_CACHE"
    CACHED="$FILL_CACHE/mixed-$KEYS-$SEED-$(basename "$(dirname "$SERVER")").rdb"
fi
mkdir -p "$WORK/source"
if [[ -n "$CACHED" && -f "$CACHED" ]]; then
    cp "$CACHED" "$WORK/source/dump.rdb"
fi
start_server source --repl-diskless-sync yes --repl-diskless-sync-delay 0
SP=$PORT
SOURCE_PID=${PIDS[0]}
if [[ -f "$WORK/source/dump.rdb" ]]; then
    say "source 127.0.0.1:$SP ($(basename "$SERVER") $SERVER_VERSION): loading $CACHED"
    resp loaded "$SP"
    FILLED="loaded from $CACHED"
else
    say "source 127.0.0.1:$SP ($(basename "$SERVER") $SERVER_VERSION): filling $KEYS keys"
    t0=$(date +%s)
    timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" fill "$SP" "$KEYS" "$SEED" ||
        die "the fill failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    FILLED="filled in $(($(date +%s) - t0)) s"
fi
HELD=$(resp call "$SP" DBSIZE)
[[ "$HELD" == "$KEYS" ]] || die "the source holds $HELD keys, not $KEYS"
resp call "$SP" SAVE >/dev/null
RDB_FILE_BYTES=$(stat -c %s "$WORK/source/dump.rdb")
if [[ -n "$CACHED" && ! -f "$CACHED" ]]; then
    cp "$WORK/source/dump.rdb" "$CACHED.tmp" && mv "$CACHED.tmp" "$CACHED"
fi
rm -f "$WORK/source/dump.rdb"
SOURCE_MEM=$(resp info-field "$SP" memory used_memory_human)
SOURCE_DIGEST=$(resp call "$SP" DEBUG DIGEST)
XINFO_FULL=$((${SERVER_VERSION%%.*} >= 6))
SOURCE_STREAMS=$(resp streams-sample "$SP" "$KEYS" "$XINFO_FULL")
say "source: $KEYS keys, RDB $RDB_FILE_BYTES bytes, used_memory $SOURCE_MEM, $FILLED"

# same_as_source WHO: the target's DEBUG DIGEST and stream sample equal the source's.
same_as_source() {
    [[ "$(resp call "$TP" DEBUG DIGEST)" == "$SOURCE_DIGEST" ]] ||
        die "$1: the target's DEBUG DIGEST differs from the source's"
    [[ "$(resp streams-sample "$TP" "$KEYS" "$XINFO_FULL")" == "$SOURCE_STREAMS" ]] ||
        die "$1: the target's streams (XINFO STREAM FULL) differ from the source's"
}

run_native() {
    fresh_target
    N_WALL=$(timeout "$RUN_TIMEOUT" python3 "$WORK/resp.py" native "$TP" "$SP" "$KEYS") ||
        die "the native replica failed"
    same_as_source "native replica"
}

run_rs() {
    local log="$WORK/rs.log" times="$WORK/rs.time" held line
    fresh_target
    if ! timeout "$RUN_TIMEOUT" /usr/bin/time -f "%e %U %S %M" -o "$times" "$RS" sync --mode full \
        --source "redis://127.0.0.1:$SP" --target "redis://127.0.0.1:$TP" \
        --state-file "$WORK/state.json" 2>"$log"; then
        tail -20 "$log" >&2
        die "redis-sync failed (or ran over RUN_TIMEOUT=$RUN_TIMEOUT s)"
    fi
    read -r R_WALL R_USER R_SYS R_RSS <"$times"
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    line=$(grep -m1 'snapshot written:' "$log") || die "no 'snapshot written' line in redis-sync's log"
    R_RDB=$(sed -E 's/.* from ([0-9]+) RDB bytes.*/\1/' <<<"$line")
    [[ "$R_RDB" =~ ^[0-9]+$ ]] || die "cannot read the RDB bytes from: $line"
    # The target holds the keys and redis-sync's checkpoint; without it, the source's data.
    held=$(resp call "$TP" DBSIZE)
    [[ "$held" == "$((KEYS + 1))" ]] || die "redis-sync's target holds $held keys, expected $KEYS + 1"
    [[ "$(resp drop-checkpoint "$TP")" == 1 ]] || die "no redis-sync:checkpoint:* key on the target"
    same_as_source redis-sync
}

ROWS=()
NATIVES=()
WALLS=()
RATIOS=()
KPS=()
MBPS=()
CPUS=()
CPUGB=()
RSSS=()
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_native
        run_rs
    else
        run_rs
        run_native
    fi
    read -r ratio kps mbps cpu cpugb < <(python3 -c "
w, n, u, s, k, b = $R_WALL, $N_WALL, $R_USER, $R_SYS, $KEYS, $R_RDB
print('%.2f %.0f %.1f %.2f %.2f' % (w / n, k / w, b / 1e6 / w, (u + s) * 1e6 / k, (u + s) * 1e9 / b))")
    rss=$((R_RSS / 1024))
    say "round $r: native ${N_WALL}s, redis-sync ${R_WALL}s (${ratio}x), $kps keys/s, $mbps MB/s, ${cpu} CPU-s per 1M keys, $cpugb per GB, ${rss} MiB"
    ROWS+=("$r|$N_WALL|$R_WALL|$ratio|$kps|$mbps|$cpu|$cpugb|$rss")
    RATIOS+=("$ratio")
    NATIVES+=("$N_WALL")
    WALLS+=("$R_WALL")
    KPS+=("$kps")
    MBPS+=("$mbps")
    CPUS+=("$cpu")
    CPUGB+=("$cpugb")
    RSSS+=("$rss")
done
stop_servers

# median FORMAT VALUES...: the median, printed with printf's FORMAT.
median() {
    local f=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v f="$f" '{ a[NR] = $1 }
        END { printf f, (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo
echo "full copy of a mixed data set: $KEYS keys (strings, lists, hashes, sets, zsets, streams with"
echo "groups; 10 % large), RDB $RDB_FILE_BYTES bytes, source used_memory $SOURCE_MEM;"
echo "$(basename "$SERVER") $SERVER_VERSION, $BUILT ($("$RS" --version 2>/dev/null || echo '?'));"
echo "$(nproc) cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo
echo "| round | native replica s | redis-sync s | ratio | keys/s | MB/s | CPU-s / 1M keys | CPU-s / GB | peak RSS MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r r n w q k m c g s <<<"$row"
    echo "| $r | $n | $w | $q | $k | $m | $c | $g | $s |"
done
echo "| **median** | $(median %.3f "${NATIVES[@]}") | $(median %.2f "${WALLS[@]}") |" \
    "**$(median %.2f "${RATIOS[@]}")×** | $(median %.0f "${KPS[@]}") | $(median %.1f "${MBPS[@]}") |" \
    "**$(median %.2f "${CPUS[@]}")** | $(median %.2f "${CPUGB[@]}") | **$(median %.0f "${RSSS[@]}")** |"
