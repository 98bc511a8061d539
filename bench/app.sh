#!/usr/bin/env bash
# App gateway benchmark (issue "App gateway", Benchmark), paths side by side in one run, the same
# client (wrk, curl) and the same upstream (nginx serving /1k, /100k and /1g from a temporary
# directory): (1) direct to the upstream (plain HTTP), (2) nginx as a plain reverse proxy (the
# anchor: a proxy that does no auth; keep-alive upstream), plain HTTP, (3) the same nginx proxy
# with TLS on the client side (a self-signed P-256 certificate made here; the fair anchor for
# Gatehouse, whose app listener is always TLS), (4) Gatehouse's app gateway with a valid app
# cookie (app `bench` at https://bench.apps.localhost:PORT), the cookie got through the public
# sign-in flow with curl (web sign-in with a password, /apps/authorize, the app host's callback).
#
# Measures, per round, each path taking its turn: (a) wrk, 64 keep-alive connections, DURATION s,
# on /1k and /100k: requests/s and the p50/p99 latency under that load; (b) wrk with 1
# connection (unloaded latency: what the proxy adds to one request) on /1k: p50/p99; (c) one
# 1 GiB download with curl: MiB/s. Prints tables: medians over the rounds, ratios to the TLS
# anchor (and the plain one) computed per round, their range. (d) Gatehouse's memory for IDLE
# idle websockets (RSS before/after), through a small websocket upstream (python3).
#
# Usage: bench/app.sh [ROUNDS] [DURATION_S] [IDLE_WEBSOCKETS]   (defaults: 3 10 1000; 0 skips (d))
# GATEHOUSE_BENCH_KEEP=FILE keeps the per-round figures; GATEHOUSE_BENCH_PERF=FILE profiles the
# gateway (perf record -g) during one extra wrk run on /1k before the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
DUR="${2:-10}"
IDLE="${3-1000}"
scripts/packages.sh bench
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
cargo build --release -q --bin gatehouse
G="$CARGO_TARGET_DIR/release/gatehouse"
ulimit -n 65536 2>/dev/null || true

W=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in up px; do [ -f "$W/$n/nginx.pid" ] && kill "$(cat "$W/$n/nginx.pid")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
UP=$(free_port); PX=$(free_port); PXS=$(free_port); WEB=$(free_port); APP=$(free_port); SSHP=$(free_port); WS=$(free_port)

# The upstream's files: 1 KiB, 100 KiB, and 1 GiB (sparse: read as zeros, no disk).
mkdir -p "$W/www"
head -c 1024 /dev/urandom > "$W/www/1k"
head -c 102400 /dev/urandom > "$W/www/100k"
truncate -s 1G "$W/www/1g"

# nginx_conf DIR SERVER_BLOCK: a configuration for an nginx run as this user from DIR.
nginx_conf() {
  mkdir -p "$1/logs"
  cat > "$1/nginx.conf" <<EOC
user $(id -un);
worker_processes auto;
daemon on;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  sendfile on; tcp_nopush on;
  default_type application/octet-stream;
$2
}
EOC
  nginx -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log"
}
nginx_conf "$W/up" "  server { listen 127.0.0.1:$UP; root $W/www; }"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -keyout "$W/px.key" -out "$W/px.crt" 2>/dev/null
nginx_conf "$W/px" "  upstream app { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$PX;
    listen 127.0.0.1:$PXS ssl;
    ssl_certificate $W/px.crt; ssl_certificate_key $W/px.key; ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_max_temp_file_size 0;
    }
  }"

# A websocket upstream for the idle test: answers every Upgrade with 101 and then holds the
# connection open, reading and dropping whatever arrives.
cat > "$W/ws.py" <<'EOP'
import asyncio, base64, hashlib, sys
async def serve(r, w):
    head = await r.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    if not key:
        w.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"); await w.drain(); w.close(); return
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    await w.drain()
    while await r.read(65536):
        pass
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await s.serve_forever()
asyncio.run(main())
EOP
python3 "$W/ws.py" "$WS" 2>"$W/ws.log" & pids+=($!)

# Gatehouse: identity `bench` with a password and no privilege, a standing role on app `bench`.
cat > "$W/policy.toml" <<EOC
[[identities]]
username = "bench"

[[targets]]
name = "bench"
kind = "http"
address = "http://127.0.0.1:$UP"

[[targets]]
name = "ws"
kind = "http"
address = "http://127.0.0.1:$WS"

[[roles]]
name = "bench-app"
targets = { names = ["bench", "ws"] }
protocols = ["http"]

[[assignments]]
role = "bench-app"
to = "bench"
kind = "standing"
EOC
D="$W/data"
"$G" --data-dir "$D" apply "$W/policy.toml" >/dev/null
PASS="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PASS" | "$G" --data-dir "$D" mfa set-password --identity bench >/dev/null
# An administrator exists (bootstrap token), so the web UI is not in first-run set-up.
GATEHOUSE_BOOTSTRAP_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$G" --data-dir "$D" --log-level warn serve --web-listen "127.0.0.1:$WEB" --ssh-listen "127.0.0.1:$SSHP" \
  --app-listen "127.0.0.1:$APP" 2>"$W/serve.log" & GPID=$!
pids+=($GPID)
for port in $UP $PX $PXS $WEB $APP $WS; do wait_port "$port"; done

# The app cookie, through the public flow.
WO="https://localhost:$WEB"
C=(curl -sk --max-time 10 --resolve "bench.apps.localhost:$APP:127.0.0.1" --resolve "ws.apps.localhost:$APP:127.0.0.1")
csrf=$("${C[@]}" -c "$W/web.jar" "$WO/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
[ -n "$csrf" ] || { echo "no csrf token on /login" >&2; exit 1; }
code=$("${C[@]}" -b "$W/web.jar" -c "$W/web.jar" -o /dev/null -w '%{http_code}' -H 'Sec-Fetch-Site: same-origin' -H "Origin: $WO" \
  --data-urlencode username=bench --data-urlencode "password=$PASS" --data-urlencode "csrf=$csrf" "$WO/login")
[ "$code" = 303 ] || [ "$code" = 302 ] || { echo "web sign-in answered $code" >&2; exit 1; }
# app_cookie NAME: the __Host-gh_app cookie value for app NAME.
app_cookie() {
  local host="$1.apps.localhost:$APP" loc
  loc=$("${C[@]}" -c "$W/$1.jar" -o /dev/null -w '%{redirect_url}' -H 'Accept: text/html' "https://$host/")
  case "$loc" in "$WO/apps/authorize?"*) ;; *) echo "$1: app host sent us to '$loc'" >&2; exit 1 ;; esac
  loc=$("${C[@]}" -b "$W/web.jar" -o /dev/null -w '%{redirect_url}' "$loc")
  case "$loc" in "https://$host/.gatehouse/callback?code="*) ;; *) echo "$1: authorize sent us to '$loc'" >&2; exit 1 ;; esac
  "${C[@]}" -b "$W/$1.jar" -c "$W/$1.jar" -o /dev/null "$loc"
  awk '$6 == "__Host-gh_app" {print $7}' "$W/$1.jar"
}
COOKIE=$(app_cookie bench)
[ -n "$COOKIE" ] || { echo "no app cookie" >&2; exit 1; }
GH="bench.apps.localhost:$APP"
for f in 1k 100k; do
  cmp -s <("${C[@]}" -H "Cookie: __Host-gh_app=$COOKIE" "https://$GH/$f") "$W/www/$f" || { echo "gatehouse /$f differs from the file" >&2; exit 1; }
  cmp -s <(curl -sk "https://127.0.0.1:$PXS/$f") "$W/www/$f" || { echo "nginx proxy /$f differs" >&2; exit 1; }
done

# url PATH FILE / extra wrk arguments per path.
url() {
  case $1 in
    direct) echo "http://127.0.0.1:$UP/$2" ;;
    nginx) echo "http://127.0.0.1:$PX/$2" ;;
    nginx-tls) echo "https://127.0.0.1:$PXS/$2" ;;
    gatehouse) echo "https://127.0.0.1:$APP/$2" ;;
  esac
}
hdr() { [ "$1" = gatehouse ] && printf '%s\n' -H "Host: $GH" -H "Cookie: __Host-gh_app=$COOKIE"; true; }
PATHS="direct nginx nginx-tls gatehouse"

# run_wrk PATH FILE CONNS SECONDS: prints "req/s p50_ms p99_ms"; fails on any error or non-2xx.
run_wrk() {
  local out args=()
  mapfile -t args < <(hdr "$1")
  out=$(wrk -t "$([ "$3" -gt 1 ] && nproc || echo 1)" -c "$3" -d "${4}s" --latency "${args[@]}" "$(url "$1" "$2")")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then echo "$1 /$2: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2; echo "$out" > "$W/wrk-failed"; exit 1; fi
  python3 - <<EOP
import re
out = """$out"""
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
print(f"{rps:.1f} {p50:.3f} {p99:.3f}")
EOP
}
# download PATH: MiB/s of one 1 GiB download.
download() {
  local args=() r code size speed
  mapfile -t args < <(hdr "$1")
  r=$(curl -sk --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "${args[@]}" "$(url "$1" 1g)")
  read -r code size speed <<<"$r"
  [ "$code" = 200 ] && [ "$size" = 1073741824 ] || { echo "$1: 1 GiB download got $r" >&2; exit 1; }
  echo "$speed / 1048576" | bc -l
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
echo "$(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(curl -V | head -1 | cut -d' ' -f1-2,5); $ROUNDS rounds of ${DUR}s per wrk run"
for p in nginx-tls gatehouse; do
  echo "TLS $p: $(openssl s_client -connect "127.0.0.1:$([ $p = gatehouse ] && echo "$APP" || echo "$PXS")" -servername bench.apps.localhost </dev/null 2>/dev/null | grep -m1 -E '^New,' )"
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up: every path once (connections, caches), not counted.
for p in $PATHS; do run_wrk "$p" 1k 64 2 >/dev/null; done
# GATEHOUSE_BENCH_PERF=FILE: a perf profile of the gateway during one wrk run on /1k (not counted).
if [ -n "${GATEHOUSE_BENCH_PERF:-}" ]; then
  perf record -F 999 -g -o "$GATEHOUSE_BENCH_PERF" -p "$GPID" 2>/dev/null & PERF=$!
  run_wrk gatehouse 1k 64 "$DUR" >/dev/null
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
fi
: > "$W/rounds"
for round in $(seq "$ROUNDS"); do
  for p in $PATHS; do
    # (An assignment, so that a failed measurement stops the script under set -e.)
    r=$(run_wrk "$p" 1k 64 "$DUR"); echo "$round $p rps1k $r" >> "$W/rounds"
    r=$(run_wrk "$p" 100k 64 "$DUR"); echo "$round $p rps100k $r" >> "$W/rounds"
    r=$(run_wrk "$p" 1k 1 "$DUR"); echo "$round $p lat1k $r" >> "$W/rounds"
    r=$(download "$p"); echo "$round $p dl $r 0 0" >> "$W/rounds"
  done
  echo "round $round done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${GATEHOUSE_BENCH_KEEP:-}" ] && cp "$W/rounds" "$GATEHOUSE_BENCH_KEEP"
python3 - "$W/rounds" <<'EOP'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
v = {(int(r), p, m): tuple(map(float, x)) for r, p, m, *x in rows}
rounds = sorted({k[0] for k in v}); paths = list(dict.fromkeys(k[1] for k in v))
def med(p, m, i): return st.median(v[(r, p, m)][i] for r in rounds)
def ratio(p, m, i, anchor):
    rs = [v[(r, p, m)][i] / v[(r, anchor, m)][i] for r in rounds]
    return f"{st.median(rs):5.2f} ({min(rs):.2f}–{max(rs):.2f})"
print("\nthroughput, 64 keep-alive connections: requests/s, median over rounds; ratio to the anchors per round, median (range)")
print(f"{'path':<10} {'1k req/s':>9} {'/ nginx-tls':>18} {'/ nginx':>18}   {'100k req/s':>10} {'/ nginx-tls':>18} {'/ nginx':>18}")
for p in paths:
    print(f"{p:<10} {med(p,'rps1k',0):9.0f} {ratio(p,'rps1k',0,'nginx-tls'):>18} {ratio(p,'rps1k',0,'nginx'):>18}   "
          f"{med(p,'rps100k',0):10.0f} {ratio(p,'rps100k',0,'nginx-tls'):>18} {ratio(p,'rps100k',0,'nginx'):>18}")
print("\nlatency (ms), median over rounds of each round's wrk percentile; added = minus direct's in the same round, median (range)")
print(f"{'path':<10} {'load':<12} {'p50':>7} {'p50 added':>22} {'p99':>7} {'p99 added':>22}")
for m, label in (("lat1k", "1 conn, 1k"), ("rps1k", "64 conn, 1k"), ("rps100k", "64 conn, 100k")):
    for p in paths:
        cols = []
        for i in (1, 2):
            add = [v[(r, p, m)][i] - v[(r, "direct", m)][i] for r in rounds]
            cols.append(f"{med(p, m, i):7.3f} {st.median(add):8.3f} ({min(add):.3f}–{max(add):.3f})")
        print(f"{p:<10} {label:<12} {cols[0]} {cols[1]}")
print("\n1 GiB download (curl): MiB/s, median over rounds; ratios per round, median (range)")
print(f"{'path':<10} {'MiB/s':>8} {'/ nginx-tls':>18} {'/ nginx':>18}")
for p in paths:
    print(f"{p:<10} {med(p,'dl',0):8.0f} {ratio(p,'dl',0,'nginx-tls'):>18} {ratio(p,'dl',0,'nginx'):>18}")
EOP

# Idle websockets through Gatehouse: RSS of the gateway before and after IDLE are open.
if [ -n "$IDLE" ] && [ "$IDLE" -gt 0 ]; then
  WSC=$(app_cookie ws)
  rss_kib() { awk '/VmRSS/{print $2}' "/proc/$GPID/status"; }
  sleep 1; before=$(rss_kib)
  python3 - "$APP" "$WSC" "$IDLE" "$W/ws.ready" <<'EOP' & WSPID=$!
import asyncio, ssl, sys, os, base64
port, cookie, n, ready = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
async def one(i, held):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="ws.apps.localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    w.write((f"GET /socket/{i} HTTP/1.1\r\nHost: ws.apps.localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: __Host-gh_app={cookie}\r\n\r\n").encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"websocket {i}: {head.splitlines()[0]!r}")
    held.append((r, w))
async def main():
    held = []
    for i in range(0, n, 50):
        await asyncio.gather(*(one(j, held) for j in range(i, min(n, i + 50))))
    open(ready, "w").write(str(len(held)))
    await asyncio.sleep(3600)
asyncio.run(main())
EOP
  pids+=($WSPID)
  for _ in $(seq 600); do [ -e "$W/ws.ready" ] && break; kill -0 "$WSPID" 2>/dev/null || { echo "websocket client failed" >&2; exit 1; }; sleep 0.2; done
  sleep 3; after=$(rss_kib)
  printf '\nidle websockets through Gatehouse (gateway RSS)\n%-10s %12s %12s %16s\n' websockets "before KiB" "after KiB" "KiB per socket"
  printf '%-10s %12s %12s %16.1f\n' "$(cat "$W/ws.ready")" "$before" "$after" "$(echo "($after - $before) / $IDLE" | bc -l)"
  kill "$WSPID" 2>/dev/null || true
fi
