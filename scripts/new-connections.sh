#!/usr/bin/env bash
# New connections: `--connections per-flow` (one new TCP connection per flow, one GET /health
# each) against `oha --disable-keepalive`, same target, same concurrency, in the same run.
# The target is nginx (one worker, `return 200` on /health: a server whose cost per
# connection is fixed and small, as in the issue's measurement), pinned to core 1; the
# generators get core 0, one thread each, as in throughput.sh. SERVER=reference uses the
# reference server (`authbench serve`) instead. Prints, as medians over interleaved rounds in
# a rotating order:
#   - new connections per second of each tool, and authbench/oha taken within each round;
#   - CPU (user + system, from the tool's own rusage) per new connection, and its ratio;
#   - the noise floor: oha runs twice per round, oha/oha is one tool against itself;
# and first, once, where the TIME_WAIT sockets of FLOWS_TW flows end up: on the generator's
# side or the server's (`ss -tan state time-wait`, by port). Whoever closes first keeps the
# TIME_WAIT for 60 s; on the generator's side it holds one of its ~28,000 ephemeral ports.
# AB_BIN=path measures that authbench binary instead of this tree's (a before/after figure).
# Usage: scripts/new-connections.sh [FLOWS=20000] [CONNECTIONS=32] [ROUNDS=9] [FLOWS_TW=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-20000}; CONN=${2:-32}; ROUNDS=${3:-9}; FLOWS_TW=${4:-10000}
scripts/install-peers.sh > /dev/null
PIN=1 source scripts/lib.sh
[ -n "${AB_BIN:-}" ] && cp "$AB_BIN" "$TMP/authbench-under-test" && AB=$TMP/authbench-under-test
export TOKIO_WORKER_THREADS=1
TIME=(/usr/bin/time -f "%e %U %S" -o "$TMP/cpu")
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# Servers started here (by start_server, which runs in a command substitution) note their
# PIDs in a file, killed on exit before lib.sh's cleanup.
trap 'kill $(cat "$TMP/pids" 2>/dev/null) 2>/dev/null; cleanup' EXIT

# Starts a server pinned to core 1 on a free port; prints its URL. `name` keeps the files apart.
start_server() {
  local name=$1 port url
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "${SERVER:-nginx}" = nginx ]; then
    mkdir -p "$TMP/ngx-$name"
    cat > "$TMP/ngx-$name/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off;
pid $TMP/ngx-$name/nginx.pid; error_log $TMP/ngx-$name/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/ngx-$name; proxy_temp_path $TMP/ngx-$name; fastcgi_temp_path $TMP/ngx-$name;
  uwsgi_temp_path $TMP/ngx-$name; scgi_temp_path $TMP/ngx-$name;
  server { listen 127.0.0.1:$port backlog=4096;
    location /health { default_type application/json; return 200 '{"status":"healthy"}'; } }
}
CONF
    taskset -c 1 "$NGINX" -c "$TMP/ngx-$name/nginx.conf" > /dev/null 2> "$TMP/ngx-$name.err" &
  else
    taskset -c 1 "$AB" serve --addr "127.0.0.1:$port" --cost 4 --api-key k > /dev/null 2>&1 &
  fi
  echo $! >> "$TMP/pids"
  url="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$url/health" > /dev/null && break; sleep 0.05; done
  echo "$url"
}
URL=$(start_server main)

# Each prints "connections/s connections cpu-seconds".
oha_run() {
  "${TIME[@]}" taskset -c 0 oha -n "$1" -c "$CONN" --disable-keepalive --no-tui \
    --output-format json "$URL/health" 2> /dev/null > "$TMP/oha.json"
  python3 - "$TMP/oha.json" "$TMP/cpu" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); e, u, s = map(float, open(sys.argv[2]).read().split()[-3:])
n = r["statusCodeDistribution"].get("200", 0)
print(n / e, n, u + s)
PY
}
ab_run() {
  rm -rf "$TMP/ab"
  "${TIME[@]}" taskset -c 0 "$AB" run --target "$URL" --scenario scenarios/health.toml -c "$CONN" \
    --flows "$1" --connections per-flow --calibration 0 --no-progress --out-dir "$TMP/ab" > /dev/null
  python3 - "$TMP/ab" "$TMP/cpu" <<'PY'
import glob, json, sys
r = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0])); e, u, s = map(float, open(sys.argv[2]).read().split()[-3:])
n = r["summary"]["successful_flows"] if "successful_flows" in r["summary"] else r["summary"]["flows"]
print(n / e, n, u + s)
PY
}
oha2_run() { oha_run "$@"; }

# Each tool's TIME_WAITs are counted against a server of its own, started for it: on
# loopback a new connect may recycle another socket's TIME_WAIT (tcp_tw_reuse), so two
# tools sharing one server port would blur each other's counts.
tw() { ss -Htan state time-wait "( $1 = :$2 )" | wc -l; }
tw_of() {
  local url port
  url=$(start_server "tw-$1"); port=${url##*:}
  URL=$url "${1}_run" "$FLOWS_TW" > /dev/null
  echo "$(tw dport "$port") $(tw sport "$port")"
}
read -r ab_c ab_s < <(tw_of ab)
read -r oha_c oha_s < <(tw_of oha)
echo "TIME_WAIT after $FLOWS_TW per-flow flows: authbench side $ab_c ($(python3 -c "print(f'{100*$ab_c/$FLOWS_TW:.1f}')")%), server side $ab_s;" \
  "oha side $oha_c ($(python3 -c "print(f'{100*$oha_c/$FLOWS_TW:.1f}')")%), server side $oha_s"

TOOLS=(oha ab oha2)
: > "$TMP/rounds"
for r in $(seq "$ROUNDS"); do
  line="$r"
  for k in 0 1 2; do
    t=${TOOLS[$(( (k + r) % 3 ))]}
    line="$line $t $(${t}_run "$FLOWS")"
  done
  echo "$line" >> "$TMP/rounds"
  python3 - "$line" <<'PY'
import sys
f = sys.argv[1].split(); d = {f[i]: (float(f[i + 1]), float(f[i + 2]), float(f[i + 3])) for i in range(1, len(f), 4)}
print(f"round {f[0]}: oha {d['oha'][0]:.0f} / {d['oha2'][0]:.0f}  authbench {d['ab'][0]:.0f} new connections/s;"
      f" CPU per connection oha {1e6 * d['oha'][2] / d['oha'][1]:.1f} us, authbench {1e6 * d['ab'][2] / d['ab'][1]:.1f} us")
PY
done
python3 - "$TMP/rounds" <<'PY'
import statistics as st, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    rows.append({f[i]: (float(f[i + 1]), float(f[i + 2]), float(f[i + 3])) for i in range(1, len(f), 4)})
def spread(xs):
    q = st.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{st.median(xs):.2f} (quartiles {q[0]:.2f}-{q[2]:.2f})"
cpu = lambda r, t: r[t][2] / r[t][1]
print(f"median new connections/s: oha {st.median(r['oha'][0] for r in rows):.0f}, authbench {st.median(r['ab'][0] for r in rows):.0f}")
print(f"median CPU per new connection: oha {1e6 * st.median(cpu(r, 'oha') for r in rows):.1f} us, authbench {1e6 * st.median(cpu(r, 'ab') for r in rows):.1f} us")
print(f"connections/s authbench/oha = {spread([r['ab'][0] / r['oha'][0] for r in rows])} (target >= 1.00)")
print(f"CPU per connection authbench/oha = {spread([cpu(r, 'ab') / cpu(r, 'oha') for r in rows])} (target <= 1.00)")
print(f"noise floor: oha2/oha connections/s = {spread([r['oha2'][0] / r['oha'][0] for r in rows])},"
      f" CPU = {spread([cpu(r, 'oha2') / cpu(r, 'oha') for r in rows])}  [{len(rows)} rounds]")
PY
