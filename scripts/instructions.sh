#!/usr/bin/env bash
# The client's own cost per request in instructions (callgrind, user space, all threads),
# for the session features against their absence: the cookie jar on (the default) and off
# when the server sets no cookie, a [data] feeder (values unused, then sent as headers), and
# a cookie really set and sent back. Each figure is differential, (Ir(2N) - Ir(N)) / N
# requests, so start-up (the scenario, the data file, the runtime) cancels out.
# Servers: the reference server (GET /health) and, for the cookie round trip, a small
# Python HTTP/1.1 server whose /login sets a cookie (its speed does not matter: only the
# client's instructions are counted). Installs valgrind when it is missing.
# Usage: scripts/instructions.sh [N=10000] [CONNECTIONS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; CONN=${2:-8}
if ! command -v valgrind >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
source scripts/lib.sh
export TOKIO_WORKER_THREADS=1

python3 -c "
with open('$TMP/users.csv', 'w') as f:
    f.write('email,password\n')
    for i in range(1000):
        f.write(f'user{i:07d}@example.com,Pw-{i:010d}\n')
"
health() {  # name, top-level lines, step lines
  printf 'name = "%s"\n%s\n[[steps]]\nname = "health"\npath = "/health"\nexpect = 200\n%s\n' "$1" "$2" "$3" > "$TMP/$1.toml"
}
health jar-on "" ""
health jar-off "cookies = false" ""
health feeder $'[data]\nfile = "users.csv"' ""
health feeder-headers $'[data]\nfile = "users.csv"' 'headers = { X-User = "{{email}}", X-Password = "{{password}}" }'
two() {  # name, cookies
  printf 'name = "%s"\ncookies = %s\n[[steps]]\nname = "login"\npath = "/login"\n[[steps]]\nname = "page"\npath = "/page"\n' "$1" "$2" > "$TMP/$1.toml"
}
two cookie-set true
two cookie-ignored false

# The cookie server: /login sets a cookie, /page answers; keep-alive HTTP/1.1.
cat > "$TMP/cookie_server.py" <<'PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        if self.path == "/login":
            self.send_header("Set-Cookie", "sessionid=0123456789abcdef0123456789abcdef; Path=/; HttpOnly")
            self.send_header("Set-Cookie", "csrftoken=fedcba9876543210; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/cookie_server.py" > "$TMP/cookie_port" & PY_PID=$!
trap 'kill $PY_PID 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do [ -s "$TMP/cookie_port" ] && break; sleep 0.05; done
COOKIE_URL="http://127.0.0.1:$(cat "$TMP/cookie_port")"

# Instructions of one run of n flows.
ir() {  # scenario, url, n
  local out="$TMP/cg.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$AB" run --target "$2" --scenario "$1" \
    -n "$3" -c "$CONN" --calibration 0 --no-progress --no-reports > /dev/null 2> "$TMP/cg.err"
  sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out"
}
per_request() {  # scenario, url, requests per flow
  local a b
  a=$(ir "$1" "$2" "$N"); b=$(ir "$1" "$2" $((2 * N)))
  python3 -c "print(f'{($b - $a) / ($N * $3):,.0f}')"
}
echo "instructions per request (callgrind, differential over $N flows, $CONN connections, 1 worker thread):"
for s in jar-on jar-off feeder feeder-headers; do
  echo "  health, $s: $(per_request "$TMP/$s.toml" "$URL" 1)"
done
for s in cookie-ignored cookie-set; do
  echo "  login+page against a server that sets 2 cookies, $s: $(per_request "$TMP/$s.toml" "$COOKIE_URL" 2)"
done
