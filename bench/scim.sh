#!/usr/bin/env bash
# SCIM user creates per second from one client: N POST /scim/v2/Users (default 5000), one after
# another on one keep-alive HTTP connection, each provisioning an identity with its birthright
# role, audited, on SQLite. The anchor, in the same run, is the same client asking for
# GET /scim/v2/ServiceProviderConfig N times (what the client and HTTP cost without any work).
# Usage: bench/scim.sh [N]   (release build; prints rates and the ratio)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
n="${1:-5000}"
cargo build --release -q --bin gatehouse
bin="$CARGO_TARGET_DIR/release/gatehouse"
work="$(mktemp -d)"
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
sshport="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); N=$n"

cat > "$work/policy.toml" <<'TOML'
[[targets]]
name = "db-01"
kind = "ssh"
address = "127.0.0.1:1"

[[roles]]
name = "eng-base"
targets = { names = ["db-01"] }
logins = ["dev"]
birthright = { department = ["engineering"] }

[[roles]]
name = "ops-base"
targets = { names = ["db-01"] }
logins = ["ops"]
birthright = { department = ["operations"] }
TOML
"$bin" --data-dir "$work/d" apply "$work/policy.toml" >/dev/null
"$bin" --data-dir "$work/d" serve --web-listen "127.0.0.1:$port" --ssh-listen "127.0.0.1:$sshport" --app-listen off \
  --web-tls off --log-level warn > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
token="$("$bin" --data-dir "$work/d" scim client add bench 2>/dev/null)"

/usr/bin/python3 - "$port" "$token" "$n" <<'PY'
import http.client, json, sys, time
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
def run(label, req):
    t = time.perf_counter()
    for i in range(n):
        st = req(i)
    dt = time.perf_counter() - t
    print(f"{label:<44} {n} in {dt:6.2f} s = {n/dt:7.0f}/s ({dt/n*1000:.2f} ms each)")
    return n / dt
def get(i):
    c.request("GET", "/scim/v2/ServiceProviderConfig", headers=h)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
def create(i):
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
            "userName": f"user{i:06d}@example.com", "active": True,
            "name": {"givenName": "User", "familyName": f"N{i}"},
            "emails": [{"value": f"user{i:06d}@example.com", "type": "work", "primary": True}],
            ent: {"employeeNumber": f"E{i:06d}", "department": ["engineering", "operations", "finance"][i % 3]}}
    c.request("POST", "/scim/v2/Users", body=json.dumps(body), headers=h)
    r = c.getresponse(); r.read()
    assert r.status == 201, (r.status, r.read())
anchor = run("anchor: GET /ServiceProviderConfig", get)
rate = run("POST /Users (identity + birthright + audit)", create)
print(f"creates/s over the anchor: {rate/anchor:.2f}x; goal >= 1000/s: {'met' if rate >= 1000 else 'NOT met'}")
PY
"$bin" --data-dir "$work/d" audit verify | tail -1
