#!/usr/bin/env bash
# HTTP/2 cost of authbench against h2load (nghttp2, the reference HTTP/2 load generator,
# Debian's nghttp2-client) and `oha --http2`, same run, same target: nginx (Debian, one
# worker, TLS + HTTP/2, `return 200` on /health: a server whose cost per request is fixed),
# GET /health (scenarios/health.toml). As in scripts/tls-throughput.sh, each tool gets core 0
# and one thread, the server core 1, and the tools run in short interleaved rounds in a
# rotating order; oha runs twice per round so oha2/oha gives the noise floor. Measurements:
#   (a) keep-alive, 1 connection x 32 streams;   (b) keep-alive, 8 connections x 32 streams:
#       CPU (user + system, from the tool's rusage) per request, authbench
#       (`--http 2 --h2-connections C -c C*32`) vs `h2load -c C -m 32 -t 1` vs
#       `oha --http2 -c C -p 32`;
#   (c) a new connection per flow (TCP + TLS handshake + ALPN + SETTINGS for each request):
#       CPU per new connection, authbench (`--http 2 --connections per-flow -c 32`) vs
#       h2load in its rate mode (`-r R -c N -n N`: N clients, each opening its own
#       connection for its one request, R of them started per 100 ms), h2load twice per round
#       for the noise floor. `oha --http2 --disable-keepalive` is not a peer here: it keeps
#       its HTTP/2 connections open (measured: 45,000 requests/s on one core, where a TLS
#       handshake alone costs ~300 us).
# Every tool skips certificate verification (h2load never verifies; the others --insecure).
# Usage: scripts/h2-throughput.sh [SECONDS=3] [ROUNDS=5]   (about 4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}; ROUNDS=${2:-5}; STREAMS=32
scripts/install-peers.sh > /dev/null
PIN=1 source scripts/lib.sh
export TOKIO_WORKER_THREADS=1
TIME=(/usr/bin/time -f "%U %S" -o "$TMP/cpu")
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
trap 'kill $(cat "$TMP/ngx.pid" 2>/dev/null) 2>/dev/null; cleanup' EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2> /dev/null
mkdir -p "$TMP/ngx"
# `listen ... ssl http2`: the spelling nginx 1.22 (Debian 12) knows; 1.25.1+ accepts it too.
# http2_max_concurrent_streams 128 (the default) is above every configuration's 32.
cat > "$TMP/ngx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off;
pid $TMP/ngx/nginx.pid; error_log $TMP/ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 100000000; http2_max_requests 100000000;
  client_body_temp_path $TMP/ngx; proxy_temp_path $TMP/ngx; fastcgi_temp_path $TMP/ngx;
  uwsgi_temp_path $TMP/ngx; scgi_temp_path $TMP/ngx;
  server { listen 127.0.0.1:$port ssl http2 backlog=4096;
    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
    location /health { default_type application/json; return 200 '{"status":"healthy"}'; } }
}
CONF
taskset -c 1 "$NGINX" -c "$TMP/ngx/nginx.conf" > /dev/null 2> "$TMP/ngx.err" & echo $! > "$TMP/ngx.pid"
H2URL=https://127.0.0.1:$port
for _ in $(seq 100); do curl -skf --http2 "$H2URL/health" > /dev/null && break; sleep 0.05; done
curl -sk --http2 -o /dev/null -w '%{http_version}' "$H2URL/health" | grep -q '^2' \
  || { cat "$TMP/ngx.err" >&2; echo "nginx does not answer over HTTP/2" >&2; exit 1; }

# Each prints "requests/s requests cpu-seconds new-connections". $1: connections, $2: mode.
oha_run() {
  local extra=""; [ "$2" = per-flow ] && extra=--disable-keepalive
  # shellcheck disable=SC2086
  "${TIME[@]}" taskset -c 0 oha --http2 --insecure -z "${SECS}s" -c "$1" -p "$([ "$2" = per-flow ] && echo 1 || echo $STREAMS)" \
    $extra --no-tui --output-format json "$H2URL/health" 2> /dev/null > "$TMP/oha.json"
  python3 - "$TMP/oha.json" "$TMP/cpu" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
n = sum(r["statusCodeDistribution"].values())
# Without keep-alive every request opened (and handshook) its own connection.
print(r["summary"]["requestsPerSec"], n, u + s, n if sys.argv[3] == "per-flow" else 0)
PY
}
# h2load's rate mode: $1 new connections per 100 ms, each for one request, SECS seconds' worth.
h2load_rate() {
  local n=$(( $1 * 10 * SECS ))
  "${TIME[@]}" taskset -c 0 h2load -r "$1" --rate-period 100ms -c "$n" -n "$n" -m 1 -t 1 "$H2URL/health" > "$TMP/h2load.txt" 2>&1 || true
  python3 - "$TMP/h2load.txt" "$TMP/cpu" "$SECS" <<'PY'
import re, sys
t = open(sys.argv[1]).read(); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", t)
if not m:
    sys.exit("h2load printed no request counts:\n" + t)
n = int(m.group(1)); rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", t)
# One connection per request: every succeeded request opened (and handshook) its own.
print(float(rps.group(1)) if rps else n / float(sys.argv[3]), n, u + s, n)
PY
}
h2load_run() {
  "${TIME[@]}" taskset -c 0 h2load -D "$SECS" -c "$1" -m "$STREAMS" -t 1 "$H2URL/health" > "$TMP/h2load.txt" 2>&1 || true
  python3 - "$TMP/h2load.txt" "$TMP/cpu" "$SECS" <<'PY'
import re, sys
t = open(sys.argv[1]).read(); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", t)
if not m:
    sys.exit("h2load printed no request counts:\n" + t)
n = int(m.group(1)); rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", t)
print(float(rps.group(1)) if rps else n / float(sys.argv[3]), n, u + s, 0)
PY
}
ab_run() {
  rm -rf "$TMP/ab"
  local flags=(--h2-connections "$1" -c $(($1 * STREAMS)))
  [ "$2" = per-flow ] && flags=(--connections per-flow -c "$1")
  "${TIME[@]}" taskset -c 0 "$AB" run --http 2 --insecure --target "$H2URL" --scenario scenarios/health.toml \
    "${flags[@]}" --duration "${SECS}s" --calibration 0 --no-progress --out-dir "$TMP/ab" > /dev/null
  python3 - "$TMP/ab" "$TMP/cpu" "$2" <<'PY'
import glob, json, sys
r = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
h = r.get("http") or {}
assert h.get("protocol") == "h2", f"authbench did not speak h2: {h}"
print(r["summary"]["requests_per_s"], r["summary"]["requests"], u + s, h["connections"] if sys.argv[3] == "per-flow" else 0)
PY
}

# One measurement: rounds of the named tools, each "name:function".
measure() {  # $1: label, $2: connections, $3: mode, rest: tools
  local label=$1 conns=$2 mode=$3; shift 3
  local tools=("$@") n=$#
  : > "$TMP/rounds-$label"
  for r in $(seq "$ROUNDS"); do
    line="$r"
    for k in $(seq 0 $((n - 1))); do  # rotate the order so no tool always runs first or last
      IFS=: read -r name fn <<< "${tools[$(( (k + r) % n ))]}"
      line="$line $name $($fn "$conns" "$mode")"
    done
    echo "$line" >> "$TMP/rounds-$label"
    python3 - "$line" "$label" <<'PY'
import sys
f = sys.argv[1].split(); d = {f[i]: float(f[i + 1]) for i in range(1, len(f), 5)}
print(f"({sys.argv[2]}) round {f[0]}: " + "  ".join(f"{k} {v:.0f}/s" for k, v in d.items()))
PY
  done
}

summarize() {  # $1: label, $2: what a unit of work is, $3: the tool run twice (noise floor)
  python3 - "$TMP/rounds-$1" "$1" "$2" "${3:-oha}" <<'PY'
import statistics as st, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    rows.append({f[i]: tuple(map(float, f[i + 1:i + 5])) for i in range(1, len(f), 5)})
label, unit, twice = sys.argv[2], sys.argv[3], sys.argv[4]
tools = list(rows[0])
def spread(xs):
    q = st.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{st.median(xs):.2f} (quartiles {q[0]:.2f}-{q[2]:.2f})"
# Columns: requests/s, requests, CPU seconds, new connections.
k = 1 if unit == "request" else 3
cpu_us = {t: [1e6 * r[t][2] / max(r[t][k], 1) for r in rows] for t in tools}
print(f"[{label}] median requests/s: " + ", ".join(f"{t} {st.median(r[t][0] for r in rows):.0f}" for t in tools))
print(f"[{label}] median generator CPU per {unit}: " + ", ".join(f"{t} {st.median(cpu_us[t]):.2f} us" for t in tools))
for peer in [t for t in ("h2load", "oha") if t in tools]:
    print(f"[{label}] per-round authbench/{peer}: CPU per {unit} {spread([a / o for a, o in zip(cpu_us['ab'], cpu_us[peer])])}; "
          f"requests/s {spread([r['ab'][0] / r[peer][0] for r in rows])}")
print(f"[{label}] noise floor {twice}2/{twice}: CPU per {unit} {spread([a / o for a, o in zip(cpu_us[twice + '2'], cpu_us[twice])])}")
PY
}

echo "target: nginx $H2URL (TLS, HTTP/2); $ROUNDS rounds of ${SECS}s; $STREAMS streams per connection"
measure 1x32 1 shared "oha:oha_run" "h2load:h2load_run" "ab:ab_run" "oha2:oha_run"
measure 8x32 8 shared "oha:oha_run" "h2load:h2load_run" "ab:ab_run" "oha2:oha_run"
measure per-flow 32 per-flow "h2load:h2load_rate" "ab:ab_run" "h2load2:h2load_rate"
summarize 1x32 request
summarize 8x32 request
summarize per-flow connection h2load
