#!/usr/bin/env bash
# The soak figures of streamed results and live metrics (issue: long runs that lose
# nothing), against the reference server (`authbench serve`, core 1) with
# scenarios/health.toml from core 0, one generator thread:
#   1. memory: one long closed-loop run at the highest rate 64 flows at once sustain, with
#      the stream and --metrics on; authbench's peak RSS (VmHWM) at 1 minute and at the end
#      must agree within 10%, and the stream's bytes per interval must not grow with the
#      flows run (first minute vs the rest). A closed loop holds the flows in flight (and so
#      the connections and buffers) constant whatever else the machine does; an open loop's
#      in-flight count, and with it the peak, follows the server's hiccups;
#   2. cost: CPU (user + system) per request of a run that streams (--out-dir) and of one
#      that also serves --metrics, against one that does neither (--no-reports), in
#      interleaved rounds of the same fixed rate, as medians of per-round ratios (goal
#      <= 1.03), with a noise floor (the plain run twice per round).
# Usage: scripts/soak.sh [SOAK_SECONDS=600] [RATE=3000] [ROUNDS=7] [ROUND_SECONDS=5]
#   SOAK_ONLY=1 skips part 2; COST_ONLY=1 skips part 1.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK=${1:-600}; RATE=${2:-3000}; ROUNDS=${3:-7}; RSECS=${4:-5}
PIN=1 source scripts/lib.sh
export TOKIO_WORKER_THREADS=1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

if [ "${COST_ONLY:-0}" != 1 ]; then
echo "== 1. memory: ${SOAK}s closed loop, 64 at once, streamed and with --metrics"
taskset -c 0 "$AB" run --target "$URL" --scenario scenarios/health.toml -c 64 \
  --duration "${SOAK}s" --calibration 0 --no-progress \
  --out-dir "$TMP/soak" --metrics "127.0.0.1:$(free_port)" --metrics-linger 0s > "$TMP/soak.txt" &
PID=$!
sleep 60; AT1=$(hwm_kb $PID)
STREAM=$(ls -d "$TMP"/soak/*.stream)
B1=$(cat "$STREAM/intervals.jsonl" "$STREAM/latency.hlog" | wc -c); L1=$(wc -l < "$STREAM/intervals.jsonl")
sleep $(( SOAK - 62 )); END=$(hwm_kb $PID)
B2=$(cat "$STREAM/intervals.jsonl" "$STREAM/latency.hlog" | wc -c); L2=$(wc -l < "$STREAM/intervals.jsonl")
wait $PID
python3 - "$AT1" "$END" "$B1" "$L1" "$B2" "$L2" "$TMP/soak" <<'PY'
import glob, json, sys
a1, end, b1, l1, b2, l2 = map(int, sys.argv[1:7])
r = json.load(open(glob.glob(sys.argv[7] + "/*-run.json")[0]))
first = b1 / max(l1 - 1, 1); later = (b2 - b1) / max(l2 - l1, 1)
print(f"peak RSS at 1 min {a1 / 1024:.1f} MB, at the end {end / 1024:.1f} MB: ratio {end / a1:.3f} (goal <= 1.10)")
print(f"flows {r['summary']['total_flows']}, {r['summary']['requests_per_s']:.0f} requests/s")
print(f"stream bytes per interval: {first:.0f} in the first minute, {later:.0f} after it (ratio {later / first:.2f})")
PY
fi
[ "${SOAK_ONLY:-0}" = 1 ] && exit 0

echo "== 2. CPU per request: streamed, streamed + --metrics, against neither (${ROUNDS} rounds of ${RSECS}s at ${RATE}/s)"
TIME=(/usr/bin/time -f "%U %S" -o "$TMP/cpu")
one() { # MODE -> "requests cpu_seconds"
  local extra=()
  case $1 in
    plain|plain2) extra=(--no-reports) ;;
    stream) extra=(--out-dir "$TMP/r-$RANDOM") ;;
    metrics) extra=(--out-dir "$TMP/r-$RANDOM" --metrics "127.0.0.1:$(free_port)" --metrics-linger 0s) ;;
  esac
  "${TIME[@]}" taskset -c 0 "$AB" run --target "$URL" --scenario scenarios/health.toml --rate "$RATE" \
    --max-in-flight 256 --duration "${RSECS}s" --calibration 0 --no-progress "${extra[@]}" > "$TMP/one.txt"
  local req; req=$(sed -n 's/^Total Tests Executed: //p' "$TMP/one.txt")
  echo "$req $(awk '{print $1 + $2}' "$TMP/cpu")"
}
MODES=(plain stream metrics plain2)
: > "$TMP/rounds"
for r in $(seq "$ROUNDS"); do
  line=""
  for k in 0 1 2 3; do
    m=${MODES[$(( (k + r) % 4 ))]}
    line="$line $m $(one "$m")"
  done
  echo "$line" >> "$TMP/rounds"
done
python3 - "$TMP/rounds" <<'PY'
import statistics as st, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    rows.append({f[i]: float(f[i + 2]) / max(float(f[i + 1]), 1) for i in range(0, len(f), 3)})
for m in ("stream", "metrics", "plain2"):
    ratios = sorted(r[m] / r["plain"] for r in rows)
    q = st.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    label = {"stream": "streamed", "metrics": "streamed + --metrics", "plain2": "noise floor (plain/plain)"}[m]
    print(f"CPU per request, {label}: {st.median(ratios):.3f}x (quartiles {q[0]:.3f}-{q[2]:.3f})")
print(f"plain: {1e6 * st.median(r['plain'] for r in rows):.1f} us of CPU per flow")
PY
