#!/usr/bin/env bash
# Per-parameter scaling of the reference server's password hashes (issue 17): PBKDF2
# iterations, argon2id m and t, scrypt N and r, each at x, 2x and 4x, fitted to
# time = a + b·x; exits 1 when a point is more than 15% off its line. Times hashes (CPU
# time of the hashing thread, the least of 7), so it is a figure, not a test: run it on a
# quiet machine (about 40 s).
#   scripts/hash-scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --example hash_scaling
