#!/usr/bin/env bash
# Makes docs/progress.png, the README's picture of the full copy's progress bar: a source of
# 3,000,000 keys, a sync in a 100x10 tmux terminal (--max-bytes slows the copy so the bar is
# mid-way), a capture of the screen after 8 s, rendered by scripts/render-screen.py.
# Needs tmux, Pillow and a built binary (cargo build -p redis-sync).
# Usage: scripts/progress-screenshot.sh [redis-server]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER=${1:-$(command -v redis-server)}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/redis-sync"
WORK=$(mktemp -d)
SESSION="redis-sync-shot-$$"
cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    redis-cli -p 27401 shutdown nosave >/dev/null 2>&1 || true
    redis-cli -p 27402 shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for port in 27401 27402; do
    mkdir -p "$WORK/$port"
    "$SERVER" --port "$port" --bind 127.0.0.1 --dir "$WORK/$port" --save "" --daemonize yes \
        --logfile "$WORK/$port/log" --repl-diskless-sync yes --repl-diskless-sync-delay 0 \
        --enable-debug-command yes
done
for _ in $(seq 1 50); do redis-cli -p 27402 ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p 27401 DEBUG POPULATE 3000000 user: 120 >/dev/null
tmux new-session -d -s "$SESSION" -x 100 -y 10 \
    "$BIN sync --source 127.0.0.1:27401 --target 127.0.0.1:27402 --state-file $WORK/state.json --max-bytes 5000000; sleep 60"
sleep 8
tmux capture-pane -p -t "$SESSION" > "$WORK/screen.txt"
cat "$WORK/screen.txt"
python3 "$ROOT/scripts/render-screen.py" "$WORK/screen.txt" "$ROOT/docs/progress.png"
echo "wrote $ROOT/docs/progress.png"
