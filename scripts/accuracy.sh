#!/usr/bin/env bash
# Checks authbench's latency figures against a known truth (examples/delay_server.rs):
#  1. a server that answers every request after a fixed 20 ms, 50 concurrent flows:
#     the reported p50 must be within 1 ms of 20 ms;
#  2. a server that stalls for 1 s once during a 10 s open-loop run at 100 flows/s:
#     the corrected (intended-start) p99 must show the stall (>= 500 ms), service time not.
# Usage: scripts/accuracy.sh   (prints the figures; exits 1 if a figure is off)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --example delay_server --bin authbench
AB=target/release/authbench
SRV=target/release/examples/delay_server
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

start_server() { # args... -> sets URL
  "$SRV" "$@" > "$out/srv.txt" &
  pids+=($!)
  for _ in $(seq 100); do
    URL=$(sed -n 's/^listening on //p' "$out/srv.txt"); [ -n "$URL" ] && return 0; sleep 0.05
  done
  echo "delay server did not start" >&2; exit 1
}
jq_py() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

fail=0
start_server --delay-ms 20 --threads 1
"$AB" run --target "$URL" --scenario scenarios/health.toml -n 5000 -c 50 --calibration 0 \
  --no-progress --out-dir "$out/a" > /dev/null
j=$(ls "$out"/a/*.json)
p50=$(jq_py "$j" "r['steps'][0]['latency']['p50_ms']")
echo "fixed 20 ms server, 50 concurrent flows, 5000 flows: p50 = ${p50} ms (error $(python3 -c "print(f'{$p50-20:+.3f}')") ms)"
python3 -c "import sys; sys.exit(0 if abs($p50-20) <= 1 else 1)" || { echo "FAIL: p50 not within 1 ms of 20 ms"; fail=1; }

start_server --stall-after-ms 3000 --stall-ms 1000 --threads 1
"$AB" run --target "$URL" --scenario scenarios/health.toml --rate 100 --duration 10s \
  --max-in-flight 4 --calibration 0 --no-progress --out-dir "$out/b" > /dev/null
j=$(ls "$out"/b/*.json)
cp99=$(jq_py "$j" "r['flow_intended']['p99_ms']")
sp99=$(jq_py "$j" "r['flow']['p99_ms']")
late=$(jq_py "$j" "r['summary']['late_flows']")
n=$(jq_py "$j" "r['summary']['total_flows']")
echo "1 s stall in a 10 s open-loop run at 100/s ($n flows, $late late): corrected p99 = ${cp99} ms, service-time p99 = ${sp99} ms"
python3 -c "import sys; sys.exit(0 if $cp99 >= 500 and $sp99 < 500 else 1)" || { echo "FAIL: the stall is not where it should be"; fail=1; }
exit $fail
