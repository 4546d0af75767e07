#!/usr/bin/env bash
# Peak RSS of authbench running 100,000 and 1,000,000 flows of scenarios/health.toml
# against the reference server: must stay under 64 MB and flat (no per-request storage).
# The peer in the same run: oha sending the same 1,000,000 requests (it keeps every sample).
# Usage: scripts/memory.sh [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
CONN=${1:-32}
scripts/install-peers.sh > /dev/null
source scripts/lib.sh
declare -A RSS
for n in 100000 1000000; do
  start=$(date +%s.%N)
  rss=$(scripts/peak_rss.py "$AB" run --target "$URL" --scenario scenarios/health.toml -n "$n" -c "$CONN" \
      --calibration 0 --no-progress --out-dir "$TMP/r$n" 2>&1 >/dev/null | sed -n 's/^peak_rss_mb=//p')
  secs=$(python3 -c "import time; print(f'{time.time()-$start:.1f}')")
  RSS[$n]=$rss
  echo "$n flows: peak RSS ${rss} MB (${secs}s)"
done
OHA=$(scripts/peak_rss.py oha -n 1000000 -c "$CONN" --no-tui --output-format json "$URL/health" \
    2>&1 >/dev/null | sed -n 's/^peak_rss_mb=//p')
echo "oha, 1000000 requests: peak RSS ${OHA} MB"
python3 - "${RSS[100000]}" "${RSS[1000000]}" "$OHA" <<'PY'
import sys
a, b, o = map(float, sys.argv[1:])
print(f"1M/100k peak RSS ratio = {b/a:.2f} (flat: ~1.0); 1M peak = {b:.1f} MB (limit 64 MB)")
print(f"authbench/oha peak RSS at 1M requests = {b/o:.2f}")
sys.exit(0 if b < 64 and b / a < 1.2 else 1)
PY
