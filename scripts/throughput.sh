#!/usr/bin/env bash
# Raw request throughput of authbench against its peers, same run, same target, same
# connection count: GET /health on the reference server (`authbench serve`), scenario
# scenarios/health.toml. Installs wrk and oha first if missing.
#
# Every tool gets the same single core (core 0, one thread: wrk -t1, oha and authbench with
# TOKIO_WORKER_THREADS=1) and the server the other (core 1), so
# the ratio compares the tools' cost per request rather than who grabs more of a shared CPU.
# The machine is shared and noisy (one tool's rate moves ±15% from round to round), so the
# tools run in short interleaved rounds, in a rotating order, and the figures are medians:
#   - requests/s of each tool, and the median over rounds of authbench/oha and authbench/wrk
#     (each ratio taken within one round, so drift between rounds cancels);
#   - CPU (user + system) per request of each tool, from its own rusage;
#   - the noise floor: oha runs twice per round, and oha/oha shows how far apart one tool
#     lands from itself.
# Usage: scripts/throughput.sh [SECONDS=4] [CONNECTIONS=32] [ROUNDS=15]   (about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}; CONN=${2:-32}; ROUNDS=${3:-15}
scripts/install-peers.sh > /dev/null
PIN=1 source scripts/lib.sh
export TOKIO_WORKER_THREADS=1
TIME=(/usr/bin/time -f "%U %S" -o "$TMP/cpu")

# Each prints "requests/s requests cpu-seconds".
wrk_run() {
  "${TIME[@]}" taskset -c 0 wrk -t1 -c"$CONN" -d"${SECS}s" "$URL/health" > "$TMP/wrk.txt"
  python3 - "$TMP/wrk.txt" "$TMP/cpu" <<'PY'
import re, sys
t = open(sys.argv[1]).read(); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(re.search(r"Requests/sec:\s*([\d.]+)", t)[1], re.search(r"(\d+) requests in", t)[1], u + s)
PY
}
oha_run() {
  "${TIME[@]}" taskset -c 0 oha -z "${SECS}s" -c "$CONN" --no-tui --output-format json "$URL/health" \
    2> /dev/null > "$TMP/oha.json"
  python3 - "$TMP/oha.json" "$TMP/cpu" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(r["summary"]["requestsPerSec"], sum(r["statusCodeDistribution"].values()), u + s)
PY
}
ab_run() {
  rm -rf "$TMP/ab"
  "${TIME[@]}" taskset -c 0 "$AB" run --target "$URL" --scenario scenarios/health.toml -c "$CONN" \
    --duration "${SECS}s" --calibration 0 --no-progress --out-dir "$TMP/ab" > /dev/null
  python3 - "$TMP/ab" "$TMP/cpu" <<'PY'
import glob, json, sys
r = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(r["summary"]["requests_per_s"], r["summary"]["requests"], u + s)
PY
}

# oha runs twice per round ("oha2"): oha2/oha is the same tool against itself, the noise
# floor against which authbench/oha is to be read.
oha2_run() { oha_run; }
TOOLS=(wrk oha ab oha2)
: > "$TMP/rounds"
for r in $(seq "$ROUNDS"); do
  line="$r"
  for k in 0 1 2 3; do   # rotate the order so no tool always runs first or last
    t=${TOOLS[$(( (k + r) % 4 ))]}
    line="$line $t $(${t}_run)"
  done
  echo "$line" >> "$TMP/rounds"
  python3 - "$line" <<'PY'
import sys
f = sys.argv[1].split(); d = {f[i]: float(f[i + 1]) for i in range(1, len(f), 4)}
print(f"round {f[0]}: wrk {d['wrk']:.0f}  oha {d['oha']:.0f} / {d['oha2']:.0f}  authbench {d['ab']:.0f}"
      f" requests/s  (authbench/oha {d['ab'] / d['oha']:.2f})")
PY
done
python3 - "$TMP/rounds" <<'PY'
import statistics as st, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    rows.append({f[i]: (float(f[i + 1]), float(f[i + 2]), float(f[i + 3])) for i in range(1, len(f), 4)})
rps = {t: st.median(r[t][0] for r in rows) for t in ("wrk", "oha", "ab")}
cpu = {t: st.median(1e6 * r[t][2] / r[t][1] for r in rows) for t in ("wrk", "oha", "ab")}
def spread(xs):
    q = st.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return st.median(xs), q[0], q[2]
vs_oha, o_lo, o_hi = spread([r["ab"][0] / r["oha"][0] for r in rows])
vs_wrk, w_lo, w_hi = spread([r["ab"][0] / r["wrk"][0] for r in rows])
aa, a_lo, a_hi = spread([r["oha2"][0] / r["oha"][0] for r in rows])
print(f"median requests/s: wrk {rps['wrk']:.0f}, oha {rps['oha']:.0f}, authbench {rps['ab']:.0f}")
print(f"median CPU per request: wrk {cpu['wrk']:.2f} us, oha {cpu['oha']:.2f} us, authbench {cpu['ab']:.2f} us"
      f" (authbench/oha {cpu['ab'] / cpu['oha']:.2f})")
print(f"authbench/oha = {vs_oha:.2f} (target >= 1.00; quartiles {o_lo:.2f}-{o_hi:.2f}), "
      f"authbench/wrk = {vs_wrk:.2f} (target >= 0.70; quartiles {w_lo:.2f}-{w_hi:.2f})"
      f"  [per-round ratios over {len(rows)} rounds]")
print(f"noise floor: oha/oha (the same tool twice in a round) = {aa:.2f} (quartiles {a_lo:.2f}-{a_hi:.2f})")
PY
