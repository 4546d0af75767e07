#!/usr/bin/env bash
# HTTPS cost of authbench against oha (which uses rustls too), same run, same target: the
# reference server over TLS (`authbench serve --tls`, a generated ECDSA P-256 certificate,
# no session resumption), scenario scenarios/health.toml (GET /health). Installs oha first
# if missing. As in scripts/throughput.sh, each tool gets core 0 and one thread, the server
# core 1, and the tools run in short interleaved rounds in a rotating order; oha runs twice
# per round so oha/oha gives the noise floor. Two measurements:
#   (a) keep-alive, CONNECTIONS connections: CPU (user + system, from the tool's rusage) per
#       request, authbench vs `oha --insecure`;
#   (b) a new connection per flow (`--connections per-flow`; oha: --disable-keepalive):
#       full TLS handshakes per second on the one generator core, and per CPU-second of the
#       generator, authbench vs `oha --insecure --disable-keepalive`.
# authbench runs with --insecure too, so both skip certificate verification; in (b) it also
# runs with --cacert ("ab_verified") to show what verifying every handshake costs.
# Usage: scripts/tls-throughput.sh [SECONDS=4] [CONNECTIONS=32] [ROUNDS=9]   (about 6 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}; CONN=${2:-32}; ROUNDS=${3:-9}
scripts/install-peers.sh > /dev/null
PIN=1 TLS=1 source scripts/lib.sh
export TOKIO_WORKER_THREADS=1
TIME=(/usr/bin/time -f "%U %S" -o "$TMP/cpu")

# Each prints "requests/s requests cpu-seconds new-connections".
oha_run() {  # $1: extra oha flags
  "${TIME[@]}" taskset -c 0 oha -z "${SECS}s" -c "$CONN" --insecure $1 --no-tui --output-format json \
    "$URL/health" 2> /dev/null > "$TMP/oha.json"
  python3 - "$TMP/oha.json" "$TMP/cpu" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
n = sum(r["statusCodeDistribution"].values())
# Without keep-alive every request opened (and handshook) its own connection.
print(r["summary"]["requestsPerSec"], n, u + s, n if sys.argv[3] else 0)
PY
}
ab_run() {  # $1: extra authbench flags
  rm -rf "$TMP/ab"
  # shellcheck disable=SC2086
  "${TIME[@]}" taskset -c 0 "$AB" run --http 1.1 --target "$URL" --scenario scenarios/health.toml -c "$CONN" \
    --duration "${SECS}s" --calibration 0 --no-progress --out-dir "$TMP/ab" $1 > /dev/null
  python3 - "$TMP/ab" "$TMP/cpu" <<'PY'
import glob, json, sys
r = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
tls = sum(st["tls"]["count"] for st in r["steps"])
print(r["summary"]["requests_per_s"], r["summary"]["requests"], u + s, tls)
PY
}

# One measurement: rounds of the named tools, each "name:function:flags".
measure() {  # $1: label, rest: tools
  local label=$1; shift
  local tools=("$@") n=$#
  : > "$TMP/rounds-$label"
  for r in $(seq "$ROUNDS"); do
    line="$r"
    for k in $(seq 0 $((n - 1))); do  # rotate the order so no tool always runs first or last
      IFS=: read -r name fn flags <<< "${tools[$(( (k + r) % n ))]}"
      line="$line $name $($fn "$flags")"
    done
    echo "$line" >> "$TMP/rounds-$label"
    python3 - "$line" "$label" <<'PY'
import sys
f = sys.argv[1].split(); d = {f[i]: float(f[i + 1]) for i in range(1, len(f), 5)}
print(f"({sys.argv[2]}) round {f[0]}: " + "  ".join(f"{k} {v:.0f}/s" for k, v in d.items())
      + f"  (authbench/oha {d['ab'] / d['oha']:.2f})")
PY
  done
}

summarize() {  # $1: label, $2: what a unit of work is
  python3 - "$TMP/rounds-$1" "$1" "$2" <<'PY'
import statistics as st, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    rows.append({f[i]: tuple(map(float, f[i + 1:i + 5])) for i in range(1, len(f), 5)})
label, unit = sys.argv[2], sys.argv[3]
tools = list(rows[0])
def spread(xs):
    q = st.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{st.median(xs):.2f} (quartiles {q[0]:.2f}-{q[2]:.2f})"
# Columns: requests/s, requests, CPU seconds, new connections (each a full TLS handshake).
k = 1 if unit == "request" else 3
per_s = {t: st.median(r[t][0] * r[t][k] / max(r[t][1], 1) for r in rows) for t in tools}
cpu_us = {t: [1e6 * r[t][2] / max(r[t][k], 1) for r in rows] for t in tools}
print(f"[{label}] median {unit}s/s: " + ", ".join(f"{t} {per_s[t]:.0f}" for t in tools))
print(f"[{label}] median generator CPU per {unit}: " + ", ".join(f"{t} {st.median(cpu_us[t]):.2f} us" for t in tools)
      + f"  -> {unit}s per generator CPU-second: " + ", ".join(f"{t} {1e6 / st.median(cpu_us[t]):.0f}" for t in tools))
print(f"[{label}] per-round authbench/oha: {unit}s/s {spread([r['ab'][0] / r['oha'][0] for r in rows])}; "
      f"CPU per {unit} {spread([a / o for a, o in zip(cpu_us['ab'], cpu_us['oha'])])}")
print(f"[{label}] noise floor oha2/oha: {unit}s/s {spread([r['oha2'][0] / r['oha'][0] for r in rows])}; "
      f"CPU per {unit} {spread([a / o for a, o in zip(cpu_us['oha2'], cpu_us['oha'])])}")
if "ab_verified" in tools:
    print(f"[{label}] authbench verifying every certificate (--cacert) / authbench --insecure: CPU per {unit} "
          f"{spread([a / o for a, o in zip(cpu_us['ab_verified'], cpu_us['ab'])])}")
PY
}

echo "target: $URL (TLS, certificate $CACERT); $ROUNDS rounds of ${SECS}s, $CONN connections"
measure keepalive "oha:oha_run:" "ab:ab_run:--insecure" "oha2:oha_run:"
measure handshakes "oha:oha_run:--disable-keepalive" "ab:ab_run:--insecure --connections per-flow" \
  "oha2:oha_run:--disable-keepalive" "ab_verified:ab_run:--cacert $CACERT --connections per-flow"
summarize keepalive request
summarize handshakes handshake
