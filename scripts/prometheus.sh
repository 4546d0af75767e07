#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package, on loopback) scrapes a run's live
# metrics (`run --metrics`) every second; its HTTP API is then asked for the flow and
# request counters, which must equal the run's own report exactly.
#
#   scripts/prometheus.sh            (installs prometheus with apt-get when missing, as root)
#
# Bounded: Prometheus runs under `timeout`, the run lasts 6 s at 20 flows/s against the
# in-process server at bcrypt cost 4, and everything is in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
AB=${AB:-${CARGO_TARGET_DIR:-$ROOT/target}/release/authbench}
case $AB in /*) ;; *) AB=$ROOT/$AB ;; esac
fail() { echo "error: prometheus.sh: $*" >&2; exit 1; }

if ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Debian's prometheus"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
            || fail "could not install prometheus"
    else
        fail "no prometheus on PATH (Debian: apt-get install prometheus)"
    fi
fi
[ -x "$AB" ] || cargo build --quiet --release --bin authbench

TMP=$(mktemp -d)
PROM_PID=
cleanup() {
    [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MPORT=$(free_port)
PPORT=$(free_port)
cat >"$TMP/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: authbench
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
YML
timeout -k 5 120 prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PPORT" >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
python3 - "$PPORT" <<'PY' || { cat "$TMP/prometheus.log" >&2; fail "prometheus did not become ready"; }
import sys, time, urllib.request
for _ in range(300):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/-/ready", timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
echo "== prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') on 127.0.0.1:$PPORT scrapes 127.0.0.1:$MPORT every second"
"$AB" run --no-progress --cost 4 --calibration 0 --rate 20 --duration 6s \
    --metrics "127.0.0.1:$MPORT" --metrics-linger 4s --out-dir "$TMP/reports" >"$TMP/run.txt"
python3 - "$PPORT" "$TMP/reports" <<'PY'
import glob, json, sys, urllib.parse, urllib.request
port, reports = sys.argv[1], sys.argv[2]
report = json.load(open(glob.glob(reports + "/*-run.json")[0]))
def query(q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    out = json.load(urllib.request.urlopen(url, timeout=5))
    assert out["status"] == "success", out
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance"))): float(r["value"][1])
            for r in out["data"]["result"]}
# The target is gone by now: take each series' last scraped value.
flows = query("last_over_time(authbench_flows_completed_total[5m])")
requests = query("last_over_time(authbench_requests_total[5m])")
ok = flows.get((("__name__", "authbench_flows_completed_total"), ("result", "ok")))
failed = flows.get((("__name__", "authbench_flows_completed_total"), ("result", "failed")))
s = report["summary"]
print(f"prometheus: {ok:.0f} ok + {failed:.0f} failed flows; the report: {s['successful_flows']} + {s['failed_flows']}")
assert ok == s["successful_flows"] and failed == s["failed_flows"], (flows, s)
assert s["total_flows"] >= 60, s
for st in report["steps"]:
    got = requests.get((("__name__", "authbench_requests_total"), ("step", st["name"])))
    assert got == st["requests"], (st["name"], got, st["requests"])
print(f"prometheus: requests per step equal the report's ({', '.join(str(st['requests']) for st in report['steps'])})")
PY
echo "prometheus.sh: ok"
