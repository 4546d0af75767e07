#!/usr/bin/env bash
# Installs the peer load generators the throughput comparison measures against:
# wrk and h2load (Debian packages wrk, nghttp2-client) and oha (crates.io), and nginx (Debian nginx-light), the fixed-cost
# server of the new-connection comparison. Idempotent: does nothing when all are present.
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx-light >/dev/null
fi
if ! command -v h2load >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nghttp2-client >/dev/null
fi
if ! command -v oha >/dev/null 2>&1; then
  cargo install --locked --quiet oha
fi
wrk --version 2>&1 | head -1 || true
oha --version
