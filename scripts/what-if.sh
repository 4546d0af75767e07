#!/usr/bin/env bash
# Checks the sweep's "if hashing used every core" capacity against a known truth: the same
# reference server measured with its hashing moved off the event loop. Two sweeps of the
# spawned `authbench serve` over the same costs and load:
#   - `--hash-mode inline` (bcrypt on one event loop: the service serializes), whose rows
#     give the what-if: min(cores / hashing per flow, parallelism / floor per flow);
#   - `--hash-mode pool` (bcrypt on a pool sized to the cores), whose rows give the capacity
#     that change actually reaches.
# Prints both per cost and their ratio; exits 1 if any cost is off by more than 15%.
# Usage: scripts/what-if.sh [COSTS=9,10,11] [FLOWS=40] [CONCURRENCY=8]   (about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
COSTS=${1:-9,10,11}; FLOWS=${2:-40}; CONC=${3:-8}
cargo build --quiet --release
AB=$PWD/target/release/authbench
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for mode in inline pool; do
  "$AB" sweep --costs "$COSTS" --flows "$FLOWS" -c "$CONC" --target "http://127.0.0.1:$PORT" \
    --spawn "$AB serve --addr 127.0.0.1:$PORT --cost {cost} --hash-mode $mode --api-key k" \
    --api-key k --no-progress --color never --out-dir "$TMP/$mode" > "$TMP/$mode.txt"
done
python3 - "$TMP" <<'PY'
import glob, json, sys
def rows(mode):
    r = json.load(open(glob.glob(f"{sys.argv[1]}/{mode}/*-sweep.json")[0]))
    return {row["cost"]: row for row in r["rows"]}
inline, pool = rows("inline"), rows("pool")
bad = 0
print("cost  what-if (inline run)  measured (pool run)  what-if/measured")
for cost in sorted(inline):
    w = inline[cost].get("capacity_if_parallel_flows_per_s")
    m = pool[cost].get("capacity_flows_per_s")
    if w is None or m is None:
        print(f"{cost:>4}  {w}  {m}  (missing)"); bad += 1; continue
    ratio = w / m
    bad += abs(ratio - 1) > 0.15
    print(f"{cost:>4}  {w:>20.1f}  {m:>19.1f}  {ratio:>16.3f}")
sys.exit(1 if bad else 0)
PY
