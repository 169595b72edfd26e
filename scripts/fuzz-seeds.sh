#!/usr/bin/env bash
# shellcheck disable=SC2016 # RESP frames are in single quotes: their $ is the bulk-string marker
# Regenerates the fuzzers' seed corpus, fuzz/seeds/<target>/, from scratch:
#
#   scripts/fuzz-seeds.sh
#
# - rdb_mutate: one dump.rdb per server version, written by that real server (started on
#   127.0.0.1 in a temporary --dir) after a few keys of every type and encoding: strings (raw,
#   int, LZF-compressed), lists, sets (intset, listpack, hashtable), sorted sets, hashes, streams
#   with deleted entries, consumer groups and pending entries, expires, a second database, a
#   function library on 7.0+ and hash field TTLs where the server has them (Redis 7.4+, Valkey
#   9). The size thresholds are lowered so that a handful of elements gives both the compact and
#   the big encoding of each type, which keeps each file at a few KB.
# - rdb_decode: the same files behind one control byte (rdb_decode's first byte picks the chunk
#   size, the chunk budget and whether the checksum is verified), a different one per file.
# - resp_decode, classify: hand-written inputs, below, in each target's input format.
#
# Servers come from $REDIS_SERVERS_DIR/bin/<name>/ (.ci/run installs them); a missing version is
# skipped with a warning and its old seed kept. Needs redis-cli and python3. The committed seeds
# are what this printed; the files differ byte for byte from run to run (the RDB's ctime and
# used-mem fields), not in what they hold.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEEDS="$ROOT/fuzz/seeds"
REDIS_SERVERS_DIR="${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}"
# name:control byte (hex) for rdb_decode.
VERSIONS=(redis-5.0.6:00 redis-7.0.15:41 redis-7.4.1:3e redis-8.6.3:83 valkey-9.0.0:ff)

die() {
    echo "fuzz-seeds: $*" >&2
    exit 1
}
say() { echo "fuzz-seeds: $*" >&2; }

command -v redis-cli >/dev/null || die "redis-cli is needed (the redis-tools package)"
command -v python3 >/dev/null || die "python3 is needed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-sync-fuzz-seeds.XXXXXX")
PID=""
cleanup() {
    if [[ -n "$PID" ]]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# r ARGS...: one command; an error reply fails the script.
r() {
    local out
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@") || die "redis-cli $* failed"
    [[ "$out" != ERR* && "$out" != WRONGTYPE* && "$out" != NOGROUP* ]] || die "$* -> $out"
}
# try ARGS...: one command whose failure is expected on some versions.
try() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@" >/dev/null 2>&1 || true; }

# The dataset. $1 is the major version (Valkey's counted as Redis's after 7.2).
fill() {
    local major=$1 i
    # Small thresholds: 4 elements stay compact, 6 do not. Old and new names; each server
    # takes the ones it knows.
    for p in hash-max-ziplist-entries hash-max-listpack-entries zset-max-ziplist-entries \
        zset-max-listpack-entries set-max-intset-entries set-max-listpack-entries \
        list-max-ziplist-size list-max-listpack-size stream-node-max-entries; do
        try CONFIG SET "$p" 4
    done

    r SET str:raw hello
    r SET str:int 12345
    r SET str:lzf "$(printf 'redis-sync %.0s' {1..20})"
    r SET str:ttl expiring
    r PEXPIREAT str:ttl 4102444800000
    r SETBIT str:bits 100 1
    r PFADD hll a b c d

    r RPUSH list:small a b 1
    r RPUSH list:big 1 2 3 4 5 6 7 8 nine ten 11 12

    r SADD set:int 1 2 3
    r SADD set:small a b c
    r SADD set:bigint 1 2 3 4 5 6
    r SADD set:big a b c d e f

    r ZADD zset:small 1 a 2.5 b
    r ZADD zset:big -inf a 1 b 2.5 c 3 d 4 e inf f
    r GEOADD geo 13.361389 38.115556 Palermo 15.087269 37.502669 Catania

    r HSET hash:small f1 v1 f2 2
    r HSET hash:big f1 v1 f2 v2 f3 v3 f4 v4 f5 5 f6 v6
    r EXPIRE hash:big 100000000

    for i in 1 2 3 4 5 6 7 8 9; do
        r XADD stream "1-$i" field "value$i" n "$i"
    done
    r XDEL stream 1-2
    r XGROUP CREATE stream g1 0
    r XREADGROUP GROUP g1 alice COUNT 3 STREAMS stream ">"
    r XACK stream g1 1-1
    r XREADGROUP GROUP g1 bob COUNT 1 STREAMS stream ">"
    r XGROUP CREATE stream g2 "\$"
    r XGROUP CREATE stream:empty g 0 MKSTREAM

    if ((major >= 7)); then
        r FUNCTION LOAD "#!lua name=seedlib
redis.register_function('seedfn', function(keys, args) return 1 end)"
    fi
    # Hash field TTLs: Redis 7.4+ and Valkey 9 (older servers answer an unknown command).
    try HSET hash:ttl:small a 1 b 2 c 3
    try HPEXPIREAT hash:ttl:small 4102444800000 FIELDS 1 a
    try HSET hash:ttl:big f1 1 f2 2 f3 3 f4 4 f5 5 f6 6
    try HPEXPIREAT hash:ttl:big 4102444800000 FIELDS 2 f1 f2

    r -n 3 SET db3:key "in database 3"
    r -n 3 RPUSH db3:list x y
}

mkdir -p "$SEEDS"/{rdb_mutate,rdb_decode,resp_decode,classify}

for v in "${VERSIONS[@]}"; do
    name=${v%%:*}
    ctl=${v##*:}
    bin=""
    for b in redis-server valkey-server; do
        [[ -x "$REDIS_SERVERS_DIR/bin/$name/$b" ]] && bin="$REDIS_SERVERS_DIR/bin/$name/$b"
    done
    if [[ -z "$bin" ]]; then
        say "no server $name in $REDIS_SERVERS_DIR/bin: its seeds are left as they are"
        continue
    fi
    ver=$("$bin" --version | sed -nE 's/.* v=([0-9]+)\..*/\1/p')
    major=$ver
    [[ $name == valkey-* ]] && major=7 # Valkey forked from Redis 7.2
    dir="$WORK/$name"
    mkdir -p "$dir"
    PORT=$(free_port)
    "$bin" --bind 127.0.0.1 --port "$PORT" --dir "$dir" --save "" --appendonly no \
        >"$dir/log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" PING 2>/dev/null)" == PONG ]] && break
        sleep 0.1
    done
    [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" PING 2>/dev/null)" == PONG ]] ||
        die "$name did not start: $(tail -5 "$dir/log")"
    fill "$major"
    r SAVE
    try SHUTDOWN NOSAVE
    wait "$PID" 2>/dev/null || true
    PID=""
    cp "$dir/dump.rdb" "$SEEDS/rdb_mutate/$name.rdb"
    {
        printf '%b' "\\x$ctl"
        cat "$dir/dump.rdb"
    } >"$SEEDS/rdb_decode/$name.bin"
    say "$name: $(stat -c %s "$dir/dump.rdb") bytes"
done

# resp_decode: byte 0 is n, the next n % 8 bytes are chunk sizes minus one (none: the whole input
# at once), the rest is the stream. Each file holds frames of one kind of traffic.
resp() {
    local file=$1 head=$2
    shift 2
    {
        printf '%b' "$head"
        printf '%b' "$@"
    } >"$SEEDS/resp_decode/$file"
}
resp resp2-replies '\x00' '+OK\r\n' '-ERR unknown command\r\n' ':0\r\n' ':-9223372036854775808\r\n' \
    '$5\r\nhello\r\n' '$0\r\n\r\n' '$-1\r\n' '*-1\r\n' '*0\r\n' \
    '*3\r\n:1\r\n*2\r\n+a\r\n$1\r\nb\r\n$-1\r\n'
resp resp3-replies '\x03\x00\x04\x10' '_\r\n' '#t\r\n' '#f\r\n' ',3.14\r\n' ',-inf\r\n' ',nan\r\n' \
    ',1e10\r\n' '(3492890328409238509324850943850943825024385\r\n' \
    '!21\r\nSYNTAX invalid syntax\r\n' '=15\r\ntxt:Some string\r\n' \
    '%2\r\n+first\r\n:1\r\n+second\r\n#f\r\n' '~3\r\n+a\r\n:2\r\n_\r\n' \
    '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n' \
    '>3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n'
resp replication-stream '\x02\x06\x01' '+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n' \
    '*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n' '*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n' \
    '*5\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n$0\r\n\r\n' \
    '*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n' '*1\r\n$4\r\nPING\r\n' '\r\n'
resp inline-commands '\x01\x02' 'PING\r\n' 'SET key "a b\\x41\\n" '"'"'c d'"'"'\r\n' '\n' \
    'GET  spaced   out\n' '   \r\n' 'ECHO ""\r\n'
resp resp3-nested '\x05\x00\x00\x01\x02\x03' \
    '*2\r\n%1\r\n~1\r\n>1\r\n:1\r\n|1\r\n+a\r\n+b\r\n*1\r\n*1\r\n*1\r\n$3\r\nend\r\n' \
    '*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n'
resp errors '\x00' '*1\r\n$4\r\nPING\r\n' '$3\r\nab\r\n'
resp bad-length '\x00' ':12x\r\n'
resp too-long '\x00' '$2000000\r\n'

# classify: byte 0 picks a command of the table (0xff: the first argument is the name), the rest
# are the arguments, separated by 0xff bytes.
classify() {
    local file=$1 a sep=''
    shift
    {
        printf '\xff'
        for a in "$@"; do
            printf '%b%s' "$sep" "$a"
            sep='\xff'
        done
    } >"$SEEDS/classify/$file"
}
classify set SET key value EX 10
classify mset MSET '{a}1' 1 '{a}2' 2 b 3
classify eval EVAL 'return 1' 2 k1 k2 arg
classify xreadgroup XREADGROUP GROUP g c COUNT 1 STREAMS s1 s2 '>' '>'
classify sort SORT list BY 'w_*' GET '#' STORE dst
classify zunionstore ZUNIONSTORE dst 2 a b WEIGHTS 1 2
classify migrate MIGRATE 127.0.0.1 6379 '' 0 5000 KEYS k1 k2
classify object OBJECT ENCODING key
classify lowercase-unknown 'cLiEnT' setname x
classify unknown NOSUCHCOMMAND a b
classify georadius GEORADIUS geo 15 37 200 km STORE dst
classify filtered SET 'tmp:1' v
printf '\x00' >"$SEEDS/classify/table-first"
printf '\x07key\xffvalue' >"$SEEDS/classify/table-pick"

say "seeds in $SEEDS: $(find "$SEEDS" -type f | wc -l) files, $(du -sh "$SEEDS" | cut -f1)"
