#!/usr/bin/env bash
# Peak RSS of authbench with a 1,000,000-row [data] feeder: generates users.csv
# (email,password), then runs a health-like flow (GET /health carrying the row's email and
# password as headers) that reads it, against the reference server, beside the same run
# without a feeder (scenarios/health.toml). The whole file is loaded whatever the flow count.
# Must stay well under 200 MB; the values are kept in one buffer with offsets, so the
# feeder's share is about the file's size plus 8 bytes per value.
# Usage: scripts/feeder-memory.sh [FLOWS=1000000] [ROWS=1000000] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-1000000}; ROWS=${2:-1000000}; CONN=${3:-32}
source scripts/lib.sh
python3 - "$TMP/users.csv" "$ROWS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("email,password\n")
    for i in range(n):
        f.write(f"user{i:07d}@example.com,Pw-{i * 2654435761 % 4294967296:010x}\n")
PY
cat > "$TMP/feeder.toml" <<'EOF'
name = "health-feeder"
description = "GET /health with a [data] row per flow"
[data]
file = "users.csv"
order = "sequential"
[[steps]]
name = "health"
path = "/health"
headers = { X-User = "{{email}}", X-Password = "{{password}}" }
expect = 200
EOF
size=$(python3 -c "import os; print(f'{os.path.getsize(\"$TMP/users.csv\") / 1e6:.1f}')")
echo "users.csv: $ROWS rows, $size MB"
run() {  # scenario, label
  local start rss secs ok
  start=$(date +%s.%N)
  rss=$(scripts/peak_rss.py "$AB" run --target "$URL" --scenario "$1" -n "$FLOWS" -c "$CONN" \
      --calibration 0 --no-progress --out-dir "$TMP/r-$2" 2>&1 >/dev/null | sed -n 's/^peak_rss_mb=//p')
  secs=$(python3 -c "import time; print(f'{time.time()-$start:.1f}')")
  ok=$(python3 -c "import glob, json; print(json.load(open(glob.glob('$TMP/r-$2/*.json')[0]))['summary']['successful_flows'])")
  echo "$2: $FLOWS flows ($ok ok), peak RSS ${rss} MB (${secs}s)" >&2
  echo "$rss"
}
BASE=$(run scenarios/health.toml "without feeder")
FEED=$(run "$TMP/feeder.toml" "with $ROWS-row feeder")
LOAD=$(scripts/peak_rss.py "$AB" validate "$TMP/feeder.toml" 2>&1 >/dev/null | sed -n 's/^peak_rss_mb=//p')
echo "loading the file alone (authbench validate): peak RSS ${LOAD} MB"
python3 - "$BASE" "$FEED" "$size" <<'PY'
import sys
base, feed, size = map(float, sys.argv[1:])
print(f"feeder's share = {feed - base:.1f} MB for a {size:.1f} MB file; peak with feeder {feed:.1f} MB (limit 200 MB)")
sys.exit(0 if feed < 200 else 1)
PY
