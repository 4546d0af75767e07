#!/usr/bin/env bash
# Raw request throughput of authbench against its peers, same run, same target, same
# connection count: GET /health on the reference server (`authbench serve`), scenario
# scenarios/health.toml. Prints requests/s of wrk, oha and authbench and the ratios
# authbench/oha and authbench/wrk. Installs wrk and oha first if missing.
# Every tool gets the same single core (core 0, one thread: wrk -t1, oha and authbench with
# TOKIO_WORKER_THREADS=1) and the server the other (core 1), as in ../shared/MEASURED.md, so
# the ratio compares the tools' cost per request rather than who grabs more of a shared CPU.
# Usage: scripts/throughput.sh [SECONDS=10] [CONNECTIONS=32] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; CONN=${2:-32}; ROUNDS=${3:-3}
scripts/install-peers.sh > /dev/null
PIN=1 source scripts/lib.sh
export TOKIO_WORKER_THREADS=1

wrk_rps() { taskset -c 0 wrk -t1 -c"$CONN" -d"${SECS}s" "$URL/health" | awk '/^Requests\/sec:/ {print $2}'; }
oha_rps() { taskset -c 0 oha -z "${SECS}s" -c "$CONN" --no-tui --output-format json "$URL/health" 2>/dev/null \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['summary']['requestsPerSec'])"; }
ab_rps() {
  rm -rf "$TMP/ab"
  taskset -c 0 "$AB" run --target "$URL" --scenario scenarios/health.toml -c "$CONN" --duration "${SECS}s" \
    --calibration 0 --no-progress --out-dir "$TMP/ab" > /dev/null
  python3 -c "import json,glob; r=json.load(open(glob.glob('$TMP/ab/*.json')[0])); print(r['summary']['requests_per_s'])"
}
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

declare -a W O A
for r in $(seq "$ROUNDS"); do   # interleaved, so drift in the machine hits every tool alike
  W+=("$(wrk_rps)"); O+=("$(oha_rps)"); A+=("$(ab_rps)")
  echo "round $r: wrk ${W[-1]}  oha ${O[-1]}  authbench ${A[-1]} requests/s"
done
w=$(median "${W[@]}"); o=$(median "${O[@]}"); a=$(median "${A[@]}")
python3 - "$w" "$o" "$a" <<'PY'
import sys
w, o, a = map(float, sys.argv[1:])
print(f"median requests/s: wrk {w:.0f}, oha {o:.0f}, authbench {a:.0f}")
print(f"authbench/oha = {a/o:.2f} (target >= 1.00), authbench/wrk = {a/w:.2f} (target >= 0.70)")
PY
