#!/usr/bin/env bash
# The distributed path, proven on one machine: N shard processes (`run --shard i/N`,
# one `--start-at` two seconds ahead, the same for all) against one reference server,
# `merge`d, then compared with one `run` of the same totals.
#
#   scripts/distributed.sh [N] [FLOWS] [CONCURRENCY]     # defaults: 4 400 20
#
# The scenario is the default one with every account named by `{{seq}}` alone (no run id),
# so two shards that used the same number would register the same e-mail twice and fail
# with 409: 100% success is the proof that the shards' numbers are disjoint; the saved
# accounts (--save-users) are checked for duplicates too. Checks: the merged flow count is
# FLOWS, success rates equal, flow p50 within 2x of the single run's (the shards and the
# single run share this machine's cores, so this is a sanity bound, not a benchmark), the
# merge's start skew, and that the shards' loads overlapped.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}; FLOWS=${2:-400}; CONC=${3:-20}
source scripts/lib.sh
STAMP=$(date +%s%N)
sed "s/{{run_id}}/dist-$STAMP/" scenarios/pyairtable.toml >"$TMP/shard.toml"
sed "s/{{run_id}}/single-$STAMP/" scenarios/pyairtable.toml >"$TMP/single.toml"
COMMON=(--target "$URL" --api-key k --flows "$FLOWS" --concurrency "$CONC" --no-progress --calibration 0)

START=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)
echo "== $N shards of $FLOWS flows at concurrency $CONC, starting together at $START"
pids=()
for i in $(seq 0 $((N - 1))); do
    "$AB" run "${COMMON[@]}" --scenario "$TMP/shard.toml" --shard "$i/$N" --start-at "$START" \
        --out-dir "$TMP/shards/shard-$i" --save-users "$TMP/users-$i.csv" >"$TMP/shard-$i.txt" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] || { tail -n 20 "$TMP"/shard-*.txt >&2; echo "error: a shard failed" >&2; exit 1; }
"$AB" merge "$TMP/shards" -o "$TMP/merged.json" >"$TMP/merge.txt"
grep -E '^(start skew|Success Rate)' "$TMP/merge.txt"

echo "== one run of the same totals"
"$AB" run "${COMMON[@]}" --scenario "$TMP/single.toml" --out-dir "$TMP/single" >"$TMP/single.txt"

python3 - "$TMP" "$N" "$FLOWS" <<'PY'
import csv, glob, json, sys
tmp, n, flows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
merged = json.load(open(f"{tmp}/merged.json"))
single = json.load(open(glob.glob(f"{tmp}/single/*-run.json")[0]))
emails = []
for f in sorted(glob.glob(f"{tmp}/users-*.csv")):
    emails += [row["email"] for row in csv.DictReader(open(f))]
dups = len(emails) - len(set(emails))
def row(name, r):
    s, fl = r["summary"], r["flow"]
    return f"| {name} | {s['total_flows']} | {100 * s['success_rate']:.2f}% | {fl['p50_ms']:.1f} | {fl['p95_ms']:.1f} | {s['flows_per_s']:.1f} |"
print("| run | flows | success | flow p50 ms | flow p95 ms | flows/s |")
print("|---|---|---|---|---|---|")
print(row(f"{n} shards, merged", merged))
print(row("one run", single))
skew = merged["config"].get("start", {}).get("skew_ms")
print(f"start skew across the shards: {skew:.1f} ms; accounts saved: {len(emails)}, duplicates: {dups}")
errors = []
if merged["summary"]["total_flows"] != flows or single["summary"]["total_flows"] != flows:
    errors.append("flow counts differ from the total asked for")
if merged["summary"]["success_rate"] != single["summary"]["success_rate"]:
    errors.append("success rates differ")
if merged["summary"]["success_rate"] < 1.0:
    errors.append("the shards did not all succeed (a duplicate {{seq}} registers an e-mail twice)")
if dups or len(emails) != flows:
    errors.append(f"{dups} duplicate accounts, {len(emails)} saved of {flows}")
ratio = merged["flow"]["p50_ms"] / max(single["flow"]["p50_ms"], 1e-9)
if not 0.5 <= ratio <= 2.0:
    errors.append(f"flow p50 merged/single {ratio:.2f} is outside 0.5-2")
if skew is None or skew > 1000:
    errors.append(f"start skew {skew} ms")
for e in errors:
    print("error:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
echo "distributed: OK"
