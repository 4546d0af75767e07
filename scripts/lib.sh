# Shared by the figure scripts (source it): builds authbench and starts the reference server
# on a free loopback port. Sets AB (the binary), URL (the server) and TMP (a scratch
# directory); both the server and TMP go away when the script exits. With TLS=1 the server
# serves HTTPS and CACERT is its certificate (PEM).
cargo build --quiet --release --bin authbench
TMP=$(mktemp -d); SRV_PID=""
# A copy, taken right after the build: with a target directory shared between work trees
# (CARGO_TARGET_DIR), another tree's build replaces target/release/authbench at any time.
cp "${CARGO_TARGET_DIR:-$PWD/target}/release/authbench" "$TMP/authbench"
AB=$TMP/authbench
cleanup() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
# With PIN=1 the server gets core 1 and the load generators core 0 (see throughput.sh).
SERVE_PREFIX=(); [ "${PIN:-0}" = 1 ] && SERVE_PREFIX=(taskset -c 1)
SERVE_TLS=(); CACERT=""
[ "${TLS:-0}" = 1 ] && CACERT=$TMP/cert.pem && SERVE_TLS=(--tls --tls-cert-out "$CACERT")
"${SERVE_PREFIX[@]}" "$AB" serve --addr 127.0.0.1:0 --cost 4 --api-key k "${SERVE_TLS[@]}" > "$TMP/srv.txt" & SRV_PID=$!
URL=""
for _ in $(seq 100); do
  URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$TMP/srv.txt"); [ -n "$URL" ] && break; sleep 0.05
done
[ -n "$URL" ] || { echo "the reference server did not start" >&2; exit 1; }
