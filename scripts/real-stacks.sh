#!/usr/bin/env bash
# The scenario gallery, verified against real, unmodified implementations: each stack is
# installed from its registry (pinned), started on a free loopback port with its app from
# scripts/real-stacks/<name>/, measured with `authbench run --flows 20` and its gallery
# scenario, which must reach a 100.00% success rate, and stopped.
#
#   scripts/real-stacks.sh                   # every stack
#   scripts/real-stacks.sh django-session    # some stacks (names of scenarios/<name>.toml)
#   scripts/real-stacks.sh --check [NAME...] # also `authbench check` each one (never fatal)
#   scripts/real-stacks.sh --capacity [NAME...] # also `authbench capacity` each one (a figure,
#                                            # never fatal; REAL_STACKS_SLO, REAL_STACKS_CAPACITY_BUDGET)
#   REAL_STACKS_RUN_ARGS="--connections per-flow" scripts/real-stacks.sh   # extra `run` flags
#
# | stack (scenario)          | implementation                                   |
# |---------------------------|--------------------------------------------------|
# | fastapi-users             | fastapi-users 15.0.5 (SQLAlchemy+JWT), uvicorn   |
# | django-session            | Django 5.2.19: LoginView, login_required, runserver |
# | oauth2-client-credentials | oidc-provider 9.13.3 (npm), Node's own http server |
# | oauth2-authorization-code | oidc-provider 9.13.3 (npm): code flow with PKCE, its dev login and consent pages |
# | django-otp                | Django 5.2.19 with django-otp 1.7.5: password, then a TOTP second factor |
# | fastapi-users-h2 (fastapi-users) | the same app behind nginx (Debian) over TLS with HTTP/2: `run --http 2`, `h2` required in the report |
# | fastapi-users-2w (fastapi-users) | the same app under `uvicorn --workers 2`, run with `--server-pid` of uvicorn's master: the report must count both worker processes and the verdict must be CPU-bound (`uses_cores`) |
#
# The implementations go into a cache outside the clone that later runs reuse (a fast no-op
# when it is up to date): a Python venv (scripts/real-stacks/requirements.txt), an npm prefix
# (scripts/real-stacks/oidc-provider/package-lock.json) and Django's database with its users
# made once. AUTHBENCH_REAL_STACKS_CACHE overrides the place. Reports, logs and each stack's
# working copy go to target/real-stacks/. Every stack runs under `timeout`
# (REAL_STACKS_TIMEOUT seconds, default 150); its server is in a session of its own and its
# whole process group is killed when the stack ends, however it ends. Loopback only.
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=$ROOT/scripts/real-stacks
CACHE=${AUTHBENCH_REAL_STACKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authbench/real-stacks}
OUT=$ROOT/target/real-stacks
VENV=$CACHE/venv
PY=$VENV/bin/python
NPM_PREFIX=$CACHE/npm
AB=${AB:-${CARGO_TARGET_DIR:-$ROOT/target}/release/authbench}
case $AB in /*) ;; *) AB=$ROOT/$AB ;; esac
FLOWS=20
STACK_TIMEOUT=${REAL_STACKS_TIMEOUT:-150}
ALL=(fastapi-users django-session oauth2-client-credentials fastapi-users-h2 fastapi-users-2w oauth2-authorization-code django-otp)

fail() { echo "error: real-stacks: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# One stack, in its own process (the outer part runs `timeout ... "$SELF" --one NAME`).
# ---------------------------------------------------------------------------------------
SRV_PID=""
NGX_PID=""
stop_server() {
    if [ -n "$NGX_PID" ]; then
        kill -TERM -- "-$NGX_PID" 2>/dev/null || true
        sleep 0.2
        kill -KILL -- "-$NGX_PID" 2>/dev/null || true
        NGX_PID=""
    fi
    [ -n "$SRV_PID" ] || return 0
    kill -TERM -- "-$SRV_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 -- "-$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

# start_server DIR CMD...: CMD in DIR, as the leader of a new session (so of a process group
# that stop_server kills whole), output to $WORK/server.log. Not setsid(1): it forks when its
# caller already leads a process group (under job control), and the pid would be lost; here
# the pid of the background job is the server's, and its process group's id.
start_server() {
    local dir=$1; shift
    (cd "$dir" && exec "$PY" -c '
import os, sys
try:
    os.setsid()
except OSError:
    pass  # already the leader of a process group of its own
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >"$WORK/server.log" 2>&1 </dev/null) &
    SRV_PID=$!
    echo "$SRV_PID" >"$WORK/server.pgid"
}

# start_nginx_h2 PORT UPSTREAM: nginx (the Debian package) on PORT over TLS with HTTP/2
# (a certificate made here), proxying to UPSTREAM; its own process group, like the server.
start_nginx_h2() {
    local port=$1 upstream=$2 nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$nginx" ] || fail "nginx is needed for the HTTP/2 stack (scripts/setup.sh installs nginx-light)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    mkdir -p "$WORK/nginx"
    # `listen ... ssl http2` is the spelling every nginx since 1.9.5 knows (1.25.1 added
    # `http2 on;` and warns about this one, without refusing it).
    cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    location / {
      proxy_pass $upstream;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_set_header Connection "";
    }
  }
}
CONF
    ("$PY" -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])' \
        "$nginx" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 </dev/null) &
    NGX_PID=$!
    echo "$NGX_PID" >"$WORK/nginx.pgid"
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL SECONDS: until URL answers 200, the server exits, or the time is up.
wait_ready() {
    "$PY" - "$1" "$2" "$SRV_PID" <<'EOF'
import sys, time, urllib.request
url, limit, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                sys.exit("the server exited during start-up")
    except FileNotFoundError:
        sys.exit("the server exited during start-up")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(f"{url} did not answer 200 within {limit:g} s")
EOF
}

one_stack() {
    local name=$1 port url ready env=() scenario=$1 run_url="" run_args=() workers=1
    WORK=$OUT/stacks/$name
    rm -rf "$WORK"; mkdir -p "$WORK"
    trap stop_server EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    export PYTHONDONTWRITEBYTECODE=1
    port=$(free_port)
    url=http://127.0.0.1:$port
    case $name in
    fastapi-users | fastapi-users-h2 | fastapi-users-2w)
        cp "$SRC/fastapi-users/app.py" "$WORK/"
        # The app's JWT secret (its default, not a secret), so `check` can forge an expired token.
        env+=(AUTHBENCH_JWT_SECRET=real-stacks-jwt-signing-key-not-a-secret-0123456789)
        if [ "$name" = fastapi-users-2w ]; then
            # Two worker processes under uvicorn's master; the tables are made first, so the
            # two workers' start-ups do not race to create them.
            scenario=fastapi-users
            workers=2
            (cd "$WORK" && DATABASE_URL="sqlite+aiosqlite:///$WORK/users.db" "$PY" -c '
import asyncio, app
async def main():
    async with app.engine.begin() as c:
        await c.run_sync(app.Base.metadata.create_all)
asyncio.run(main())')
        fi
        start_server "$WORK" env DATABASE_URL="sqlite+aiosqlite:///$WORK/users.db" \
            "$PY" -m uvicorn app:app --host 127.0.0.1 --port "$port" --no-access-log --log-level warning \
            --workers "$workers"
        ready=$url/health
        if [ "$name" = fastapi-users-2w ]; then
            # The pid a user has: uvicorn's master (start_server's pid, exec'd through).
            # Connections opened at once all go to the first worker to wake (its accept loop
            # takes every pending one), and the other stays idle: measured 0.40 and 0.02
            # cores with 20 flows at once, which the diagnosis rightly calls one worker's
            # work. A connection per flow, 4 flows at a time: later connections arrive while
            # one worker is busy hashing, and the other accepts them.
            run_args=(--server-pid "$SRV_PID" --connections per-flow --concurrency 4)
        fi
        if [ "$name" = fastapi-users-h2 ]; then
            # The same app behind a real HTTP/2 server: nginx terminates TLS and speaks h2.
            scenario=fastapi-users
            local h2port
            h2port=$(free_port)
            start_nginx_h2 "$h2port" "$url"
            run_url=https://127.0.0.1:$h2port
            run_args=(--http 2 --insecure)
        fi
        ;;
    django-session | django-otp)
        cp -r "$SRC/django/." "$WORK/"
        cp "$(django_db_path)" "$WORK/db.sqlite3"
        start_server "$WORK" env REALSTACK_DB="$WORK/db.sqlite3" \
            "$PY" manage.py runserver --noreload "127.0.0.1:$port"
        ready=$url/health
        ;;
    oauth2-client-credentials)
        cp "$SRC/oidc-provider/server.mjs" "$WORK/"
        ln -s "$NPM_PREFIX/node_modules" "$WORK/node_modules"
        # The client's secret, new each run: the server's CLIENT_SECRET, the scenario's api_key.
        # It ends in characters that form-urlencoding changes ('+' is a space to a form
        # decoder), so only credentials encoded per RFC 6749 section 2.3.1 (the scenario's
        # `encode = "form"`) are accepted: plain Basic would send a wrong secret.
        local secret
        secret=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24) + "+/%:")')
        env+=(AUTHBENCH_API_KEY="$secret")
        start_server "$WORK" env PORT="$port" CLIENT_ID=authbench-cc CLIENT_SECRET="$secret" node server.mjs
        ready=$url/.well-known/openid-configuration
        ;;
    oauth2-authorization-code)
        cp "$SRC/oidc-provider/code-flow.mjs" "$WORK/"
        ln -s "$NPM_PREFIX/node_modules" "$WORK/node_modules"
        # The public client and its redirect_uri, as the scenario's [vars] have them.
        start_server "$WORK" env PORT="$port" CLIENT_ID=authbench-spa REDIRECT_URI=http://127.0.0.1:9/cb \
            node code-flow.mjs
        ready=$url/.well-known/openid-configuration
        ;;
    *) fail "unknown stack '$name' (known: ${ALL[*]})" ;;
    esac

    if ! wait_ready "$ready" 30; then
        tail -n 30 "$WORK/server.log" >&2 || true
        fail "$name: the server did not start (log: $WORK/server.log)"
    fi
    if [ -n "$run_url" ]; then
        local up=0
        for _ in $(seq 50); do
            "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "${run_url##*:}" 2>/dev/null && up=1 && break
            sleep 0.1
        done
        [ "$up" = 1 ] || { cat "$WORK/nginx.log" "$WORK/nginx/error.log" >&2 2>/dev/null || true; fail "$name: nginx did not start"; }
        url=$run_url
    fi

    local rc=0
    # shellcheck disable=SC2086 # REAL_STACKS_RUN_ARGS is a list of flags
    env "${env[@]}" "$AB" run --target "$url" --scenario "scenarios/$scenario.toml" --flows "$FLOWS" \
        --no-progress --out-dir "$OUT" "${run_args[@]}" ${REAL_STACKS_RUN_ARGS:-} >"$OUT/$name.txt" 2>&1 || rc=$?
    cat "$OUT/$name.txt"
    if [ "$rc" != 0 ] || ! grep -q '^Success Rate: 100.00%$' "$OUT/$name.txt"; then
        echo "--- the last lines of the $name server's log:" >&2
        tail -n 30 "$WORK/server.log" >&2 || true
        fail "$name: authbench run exited $rc or the success rate is not 100.00% (output: $OUT/$name.txt)"
    fi
    if [ -n "$run_url" ]; then
        local json
        json=$(sed -n 's/^report: \(.*\.json\)$/\1/p' "$OUT/$name.txt" | tail -n 1)
        "$PY" - "$json" <<'EOF' || fail "$name: the report does not say the run spoke h2 (output: $OUT/$name.txt)"
import json, sys
h = json.load(open(sys.argv[1])).get("http") or {}
print(f"   protocol {h.get('protocol')}: {h.get('connections')} connection(s), {h.get('streams')} streams")
sys.exit(0 if h.get("protocol") == "h2" and h.get("connections", 0) > 0 else 1)
EOF
    fi
    if [ "$name" = fastapi-users-2w ]; then
        local json
        json=$(sed -n 's/^report: \(.*\.json\)$/\1/p' "$OUT/$name.txt" | tail -n 1)
        "$PY" - "$json" <<'EOF' || fail "$name: the diagnosis did not count both workers or did not say CPU-bound (output: $OUT/$name.txt)"
import json, sys
r = json.load(open(sys.argv[1]))
p = (r.get("usage") or {}).get("server_process") or {}
d = r.get("diagnosis") or {}
procs = p.get("processes", [])
busy = [x for x in procs if x["cpu_cores"] >= 0.25]
listed = ", ".join("%d %s %.2f" % (x["pid"], x["name"], x["cpu_cores"]) for x in procs)
print(f"   --server-pid {p.get('pid')}: {len(procs)} process(es) counted, {len(busy)} busy ({listed}); "
      f"server {p.get('cpu_cores', 0):.2f} cores; verdict {d.get('verdict')}")
sys.exit(0 if len(busy) >= 2 and d.get("verdict") == "uses_cores" else 1)
EOF
    fi
    if [ "${REAL_STACKS_CHECK:-0}" = 1 ]; then
        # A conformance and security report of the real implementation; findings are not fatal.
        env "${env[@]}" "$AB" check --target "$url" --scenario "scenarios/$scenario.toml" "${run_args[@]}" \
            --out-dir "$OUT" >"$OUT/$name-check.txt" 2>&1 || true
        cat "$OUT/$name-check.txt"
    fi
    if [ "${REAL_STACKS_CAPACITY:-0}" = 1 ]; then
        # The highest rate the stack sustains within an SLO (bounded by its budget; the
        # stack's timeout must cover it: REAL_STACKS_TIMEOUT). Not fatal: a figure, not a check.
        env "${env[@]}" "$AB" capacity --target "$url" --scenario "scenarios/$scenario.toml" "${run_args[@]}" \
            --slo "${REAL_STACKS_SLO:-flow.p99<2s,success>=99%}" --start-rate 2 --step 4s --step-flows 20 \
            --max-duration "${REAL_STACKS_CAPACITY_BUDGET:-100s}" --no-progress --out-dir "$OUT" \
            >"$OUT/$name-capacity.txt" 2>&1 || true
        cat "$OUT/$name-capacity.txt"
    fi
}

# ---------------------------------------------------------------------------------------
# Installation into the cache, each part skipped when its stamp says it is up to date.
# ---------------------------------------------------------------------------------------
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_python() {
    local stamp
    stamp="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum <"$SRC/requirements.txt")"
    if stamp_ok "$VENV/.authbench-stamp" "$stamp" && "$PY" -c 'import fastapi_users, django, django_otp, uvicorn' 2>/dev/null; then
        return
    fi
    echo "== real stacks: installing fastapi-users, Django, django-otp and uvicorn into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$SRC/requirements.txt"
    echo "$stamp" >"$VENV/.authbench-stamp"
}

install_node() {
    local stamp
    stamp="$(node --version) $(cat "$SRC/oidc-provider/package.json" "$SRC/oidc-provider/package-lock.json" | sha256sum)"
    if stamp_ok "$NPM_PREFIX/.authbench-stamp" "$stamp" && [ -f "$NPM_PREFIX/node_modules/oidc-provider/package.json" ]; then
        return
    fi
    echo "== real stacks: installing oidc-provider into $NPM_PREFIX"
    rm -rf "$NPM_PREFIX"
    mkdir -p "$NPM_PREFIX"
    cp "$SRC/oidc-provider/package.json" "$SRC/oidc-provider/package-lock.json" "$NPM_PREFIX/"
    (cd "$NPM_PREFIX" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$stamp" >"$NPM_PREFIX/.authbench-stamp"
}

# Django's database with the users of scenarios/django-session-users.csv, made once per
# version of the project, the users and the venv (hashing 50 passwords with Django's default
# PBKDF2 takes ~25 s); each run works on a copy.
django_db_path() {
    local key
    key=$(cat "$VENV/.authbench-stamp" "$ROOT/scenarios/django-session-users.csv" "$ROOT/scenarios/django-otp-users.csv" \
        $(find "$SRC/django" -type f -name '*.py' -o -type f -name '*.html' | LC_ALL=C sort) | sha256sum | cut -c1-16)
    echo "$CACHE/django-db/$key.sqlite3"
}

install_django_db() {
    local db tmp
    db=$(django_db_path)
    [ -f "$db" ] && return
    echo "== real stacks: making Django's database and its users ($db)"
    mkdir -p "$CACHE/django-db"
    rm -f "$CACHE"/django-db/*.sqlite3 "$CACHE"/django-db/*.tmp
    tmp=$db.tmp
    (cd "$SRC/django" && PYTHONDONTWRITEBYTECODE=1 REALSTACK_DB="$tmp" "$PY" manage.py migrate --verbosity 0 \
        && PYTHONDONTWRITEBYTECODE=1 REALSTACK_DB="$tmp" "$PY" manage.py make_users "$ROOT/scenarios/django-session-users.csv" >/dev/null \
        && PYTHONDONTWRITEBYTECODE=1 REALSTACK_DB="$tmp" "$PY" manage.py make_users "$ROOT/scenarios/django-otp-users.csv" >/dev/null \
        && PYTHONDONTWRITEBYTECODE=1 REALSTACK_DB="$tmp" "$PY" manage.py make_otp_devices "$ROOT/scenarios/django-otp-users.csv" >/dev/null)
    mv "$tmp" "$db"
}

install_all() {
    mkdir -p "$CACHE"
    # One installer at a time (two clones on one machine share the cache).
    exec 9>"$CACHE/.lock"
    flock 9
    install_python
    install_node
    install_django_db
    flock -u 9
}

# ---------------------------------------------------------------------------------------
if [ "${1:-}" = --one ]; then
    one_stack "$2"
    exit 0
fi

if [ "${1:-}" = --check ]; then
    export REAL_STACKS_CHECK=1
    shift
fi
if [ "${1:-}" = --capacity ]; then
    # Also `authbench capacity` each stack; give it time: the default timeout becomes 300 s.
    export REAL_STACKS_CAPACITY=1
    STACK_TIMEOUT=${REAL_STACKS_TIMEOUT:-300}
    shift
fi
STACKS=("$@")
[ ${#STACKS[@]} -gt 0 ] || STACKS=("${ALL[@]}")
for s in "${STACKS[@]}"; do
    [[ " ${ALL[*]} " == *" $s "* ]] || fail "unknown stack '$s' (known: ${ALL[*]})"
done
command -v python3 >/dev/null || fail "python3 is needed (the Python stacks' venv)"
command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are needed (oidc-provider)"

start=$SECONDS
export -f install_python install_node install_django_db install_all django_db_path stamp_ok fail
export ROOT SRC CACHE VENV PY NPM_PREFIX
timeout -k 10 900 bash -c "set -euo pipefail; install_all" || fail "installing the real stacks failed or took over 15 minutes"
mkdir -p "$OUT"
if [ -z "${AB_PREBUILT:-}" ]; then
    cargo build --quiet --release --bin authbench
fi
[ -x "$AB" ] || fail "no authbench binary at $AB"

failed=()
for s in "${STACKS[@]}"; do
    case $s in
    *-h2) echo "== real stack: $s (scenarios/${s%-h2}.toml, $FLOWS flows, HTTP/2 over TLS through nginx)" ;;
    *-2w) echo "== real stack: $s (scenarios/${s%-2w}.toml, $FLOWS flows, 2 uvicorn workers, --server-pid of the master)" ;;
    *) echo "== real stack: $s (scenarios/$s.toml, $FLOWS flows)" ;;
    esac
    rc=0
    timeout -k 10 "$STACK_TIMEOUT" "$SELF" --one "$s" || rc=$?
    # A stack killed by timeout could not stop its own server: do it here.
    for g in server nginx; do
        if [ -f "$OUT/stacks/$s/$g.pgid" ]; then
            kill -KILL -- "-$(cat "$OUT/stacks/$s/$g.pgid")" 2>/dev/null || true
        fi
    done
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "error: real-stacks: $s: did not finish within ${STACK_TIMEOUT} s" >&2
    fi
    [ "$rc" = 0 ] || failed+=("$s")
done

echo "== real stacks: ${#STACKS[@]} run, ${#failed[@]} failed, $((SECONDS - start)) s"
for s in "${STACKS[@]}"; do
    json=$(sed -n 's/^report: \(.*\.json\)$/\1/p' "$OUT/$s.txt" 2>/dev/null | tail -n 1)
    if [ -n "$json" ] && [ -f "$json" ]; then
        "$PY" - "$s" "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
s = r["summary"]
print(f"{sys.argv[1]:<27} success {100 * s['success_rate']:.2f}%, {s['flows_per_s']:.2f} flows/s, "
      f"flow p50 {r['flow']['p50_ms']:.1f} ms, p99 {r['flow']['p99_ms']:.1f} ms ({s['successful_flows']}/{s['total_flows']})")
EOF
    else
        printf '%-27s no result\n' "$s"
    fi
done
[ ${#failed[@]} = 0 ] || fail "failed: ${failed[*]}"
