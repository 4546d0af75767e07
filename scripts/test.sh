#!/usr/bin/env bash
# The project's test command (the README's second line, and what .ci/run calls):
# formatting, lints, the whole test suite, and a check of every scenario file.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test

echo "== the reference server as a newcomer runs it: 20 flows at the default cost 12"
cargo run --quiet --release -- run --flows 20 --no-progress --out-dir target/ci-reports | tee target/ci-run.txt
grep -q '^Success Rate: 100.00%$' target/ci-run.txt

echo "== every scenario file validates"
cargo run --quiet --release -- validate scenarios/*.toml
