#!/usr/bin/env bash
# The project's test command (the README's second line, and what .ci/run calls):
# formatting, lints, the whole test suite, and a check of every scenario file.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo doc (no warnings, no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

echo "== the floors: every import points down, no cycle between modules, long files say why"
cargo test --quiet --test it floors

echo "== cargo test"
cargo test

echo "== tests that need both cores to themselves, one at a time"
cargo test --test it -- --ignored --test-threads=1

echo "== the reference server as a newcomer runs it: 20 flows at the default cost 12"
cargo run --quiet --release -- run --flows 20 --no-progress --out-dir target/ci-reports | tee target/ci-run.txt
grep -q '^Success Rate: 100.00%$' target/ci-run.txt

echo "== authbench check: the reference server passes every conformance and security probe"
cargo run --quiet --release -- check --cost 4 --out-dir target/ci-reports --junit target/ci-check.xml

echo "== refresh tokens under load: rotation, reuse detection, logout"
cargo run --quiet --release -- run --flows 50 --concurrency 20 --cost 4 --scenario scenarios/refresh.toml \
    --no-progress --out-dir target/ci-reports | tee target/ci-refresh.txt
grep -q '^Success Rate: 100.00%$' target/ci-refresh.txt

echo "== every scenario file validates"
cargo run --quiet --release -- validate scenarios/*.toml

echo "== a bcrypt cost sweep writes its table, Markdown, JSON and chart"
cargo run --quiet --release -- sweep --costs 4..=8 --flows 10 --out-dir target/ci-reports

echo "== a capacity search writes its JSON and chart, and gates on the sustainable rate (bounded: 30 s)"
cargo run --quiet --release -- capacity --cost 4 --slo 'flow.p99<1s,success>=99%' --start-rate 10 \
    --step 2s --step-flows 10 --max-duration 30s --threshold 'capacity>=5/s' --no-progress --out-dir target/ci-reports

echo "== the scenario gallery against real implementations: fastapi-users, Django, oidc-provider"
scripts/real-stacks.sh

echo "== live metrics: a real Prometheus scrapes a run and agrees with its report"
scripts/prometheus.sh

echo "== scale-out: the Kubernetes manifests validate and agree with the CLI"
scripts/check-manifests.sh

echo "== scale-out: 4 shards with one start, merged, against one run of the same totals"
scripts/distributed.sh 4

echo "== scale-out: the container image (static musl binary FROM scratch), proven from its filesystem"
scripts/container.sh
