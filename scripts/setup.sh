#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain: Debian's chromium (the HTML
# report's browser test), groff (the man page test renders `authbench man` with it) and a font, so the PNG charts of `authbench sweep` have text (resvg
# renders with the system's fonts; without any, the chart is drawn but its labels are
# missing). Idempotent and quiet when there is nothing to do; only a missing chromium under
# CI is fatal.
set -uo pipefail

has_fonts() {
    if command -v fc-list >/dev/null 2>&1; then
        [ -n "$(fc-list 2>/dev/null | head -n 1)" ]
    else
        [ -n "$(find /usr/share/fonts /usr/local/share/fonts -type f \( -name '*.ttf' -o -name '*.otf' \) 2>/dev/null | head -n 1)" ]
    fi
}

# Chromium, for the browser test of the HTML report (tests/it/html.rs): Debian's package,
# started headless by the test itself. Fatal under CI, where the test requires it.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing chromium (the HTML report's browser test)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || { echo "error: could not install chromium" >&2; [ -z "${CI:-}" ] || exit 1; }
    else
        echo "warning: no /usr/bin/chromium; the HTML browser test will be skipped" >&2
    fi
fi

# iproute2 (`ip`), for the port-exhaustion test (tests/it/connections.rs brings up the
# loopback of a network namespace with a four-port range). Not fatal: the test says SKIPPED.
if ! command -v ip >/dev/null 2>&1 && ! [ -x /usr/sbin/ip ] && ! [ -x /sbin/ip ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing iproute2 (the port-exhaustion test)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null) \
            || echo "warning: could not install iproute2; the port-exhaustion test will be skipped" >&2
    fi
fi

# nginx (Debian's nginx-light), the real HTTP/2 server scripts/real-stacks.sh puts in front
# of a gallery stack (TLS + h2). Fatal under CI, where that stack runs.
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing nginx-light (the HTTP/2 real stack)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) \
            || { echo "error: could not install nginx-light" >&2; [ "${CI:-}" != true ] || exit 1; }
    fi
fi

# groff, for the man page test (tests/it/cli.rs renders `authbench man` and fails on any
# warning). Debian's groff-base; fatal under CI, where the test requires it.
if ! command -v groff >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing groff-base (the man page test)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq groff-base >/dev/null) \
            || { echo "error: could not install groff-base" >&2; [ -z "${CI:-}" ] || exit 1; }
    else
        echo "warning: no groff; the man page test will be skipped" >&2
    fi
fi

if has_fonts; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing fonts-dejavu-core (text in the sweep charts)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core) \
        || echo "warning: could not install fonts-dejavu-core; PNG charts will have no text" >&2
else
    echo "warning: no fonts found; install fonts-dejavu-core (or any TTF font) for text in PNG charts" >&2
fi
exit 0
