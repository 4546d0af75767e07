#!/usr/bin/env bash
# Checks deploy/kubernetes/: every manifest against the Kubernetes schemas
# (kubernetes-validate from PyPI, strict: unknown fields are errors), and against the CLI:
# every flag the manifests pass to authbench exists for its subcommand, every $(VAR) they
# use is defined, N agrees between the Job and the settings, and the settings' values are
# well-formed (the start time, the thresholds, the totals split over N).
#
#   scripts/check-manifests.sh
#
# kubernetes-validate goes into a venv in the cache (AUTHBENCH_K8S_CACHE, default
# ~/.cache/authbench/k8s-validate), reused by later runs. KUBERNETES_VERSION picks the
# schemas (default 1.31.0, the oldest release still in wide use with Indexed Jobs GA).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${AUTHBENCH_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authbench/k8s-validate}
K8S=${KUBERNETES_VERSION:-1.31.0}
PIN=kubernetes-validate==1.37.0
DIR=deploy/kubernetes
AB=${AB:-${CARGO_TARGET_DIR:-$ROOT/target}/release/authbench}
case $AB in /*) ;; *) AB=$ROOT/$AB ;; esac

fail() { echo "error: check-manifests: $*" >&2; exit 1; }

if ! "$CACHE/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null \
    || [ "$(cat "$CACHE/.pin" 2>/dev/null)" != "$PIN" ]; then
    echo "== installing $PIN into $CACHE"
    rm -rf "$CACHE"
    python3 -m venv "$CACHE" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$CACHE/bin/pip" install --quiet "$PIN" pyyaml || fail "pip install $PIN failed"
    echo "$PIN" >"$CACHE/.pin"
fi
[ -x "$AB" ] || cargo build --quiet --release --bin authbench

FILES=()
while IFS= read -r f; do FILES+=("$f"); done < <("$CACHE/bin/python" -c '
import sys, yaml
k = yaml.safe_load(open(sys.argv[1] + "/kustomization.yaml"))
for r in k["resources"]:
    print(sys.argv[1] + "/" + r)' "$DIR")
[ ${#FILES[@]} -gt 0 ] || fail "no resources in $DIR/kustomization.yaml"

echo "== Kubernetes $K8S schemas (strict): ${FILES[*]}"
"$CACHE/bin/kubernetes-validate" --strict --quiet -k "$K8S" "${FILES[@]}"

# The validator must be able to fail: a Job with a misspelt field is refused.
BAD=$(mktemp); trap 'rm -f "$BAD"' EXIT
sed 's/^  completions:/  completion:/' "$DIR/generators-job.yaml" >"$BAD"
if "$CACHE/bin/kubernetes-validate" --strict --quiet -k "$K8S" "$BAD" >/dev/null 2>&1; then
    fail "the validator accepted a Job with a misspelt field: it checks nothing"
fi

echo "== agreement with the CLI ($("$AB" --version))"
"$CACHE/bin/python" - "$AB" "${FILES[@]}" <<'PY'
import re, subprocess, sys
from datetime import datetime
import yaml

ab, files = sys.argv[1], sys.argv[2:]
docs = [d for f in files for d in yaml.safe_load_all(open(f)) if d]
errors = []
settings = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "authbench-settings")["data"]
helps = {}

def flags_of(sub):
    if sub not in helps:
        out = subprocess.run([ab, sub, "--help"], capture_output=True, text=True, check=True).stdout
        helps[sub] = set(re.findall(r"(--[a-z][a-z0-9-]*)", out))
    return helps[sub]

jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
for name, job in jobs.items():
    pod = job["spec"]["template"]["spec"]
    for c in pod.get("containers", []):
        if "authbench" not in c["image"]:
            continue
        args = c["args"]
        sub = args[0]
        defined = set(settings) if any(
            e.get("configMapRef", {}).get("name") == "authbench-settings" for e in c.get("envFrom", [])) else set()
        defined |= {e["name"] for e in c.get("env", [])}
        for a in args[1:]:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                if var not in defined:
                    errors.append(f"job/{name}: {a} uses $({var}), which the container does not define")
            if a.startswith("--"):
                flag = a.split("=", 1)[0]
                if flag not in flags_of(sub):
                    errors.append(f"job/{name}: `authbench {sub}` has no flag {flag}")

gen = jobs["authbench-generators"]["spec"]
n = int(settings["AUTHBENCH_SHARDS"])
for field in ("completions", "parallelism"):
    if gen.get(field) != n:
        errors.append(f"job/authbench-generators: {field} is {gen.get(field)}, AUTHBENCH_SHARDS is {n}: they must agree")
if gen.get("completionMode") != "Indexed":
    errors.append("job/authbench-generators: completionMode must be Indexed (--shard auto reads JOB_COMPLETION_INDEX)")
if gen.get("backoffLimit") != 0:
    errors.append("job/authbench-generators: backoffLimit must be 0 (a retried generator runs its share twice)")
for k in ("AUTHBENCH_FLOWS", "AUTHBENCH_CONCURRENCY"):
    if int(settings[k]) < n:
        errors.append(f"settings: {k}={settings[k]} cannot be split over {n} shards")
try:
    datetime.fromisoformat(settings["AUTHBENCH_START_AT"].replace("Z", "+00:00"))
except ValueError as e:
    errors.append(f"settings: AUTHBENCH_START_AT is not an RFC 3339 time: {e}")
for k in ("AUTHBENCH_SUCCESS_THRESHOLD", "AUTHBENCH_LATENCY_THRESHOLD"):
    # `run` parses its thresholds before it connects: against a closed port, a good
    # threshold ends in "cannot reach the target", a bad one in its own message.
    r = subprocess.run([ab, "run", "--target", "http://127.0.0.1:9", "--api-key", "k", "--no-reports",
                        "--connect-timeout", "1s", "--threshold", settings[k]], capture_output=True, text=True)
    if "cannot reach the target" not in r.stderr:
        errors.append(f"settings: {k}={settings[k]!r}: {r.stderr.strip()}")
for e in errors:
    print("error:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{len(docs)} objects; flags checked against `authbench {' / '.join(sorted(helps))} --help`; N={n} agrees")
PY
echo "manifests: OK"
