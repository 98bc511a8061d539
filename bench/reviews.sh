#!/usr/bin/env bash
# Access review campaigns at scale (issue "Access reviews", Benchmark), on SQLite and on
# PostgreSQL in turn: 10,000 identities (an HR import: managers, departments) × 20 role
# assignments each (200,000, loaded with SQL, given 30–400 days ago; half of them used through
# a session in the last 120 days, also loaded with SQL). Then:
#   (1) `gatehouse reviews start all` — a campaign over all standing and eligible access: the
#       facts read, 200,000 items planned with evidence and recommendation and written; seconds
#       (goal ≤ 10 s). The anchor: `gatehouse findings --json` over the same data in the same
#       run (it reads the same tables once and computes per holding), and the process start.
#   (2) a reviewer's queue — a manager with 10 reports × 20 items — through `serve`: the HTML
#       page `/reviews` with a browser session and `GET /api/v1/review-queue?limit=50` with a
#       token, N requests each, one at a time; p50 / p95 / max ms (goal p95 ≤ 100 ms). Anchor:
#       `/healthz` in the same run.
#   (3) `gatehouse reviews end` of a campaign over 5 roles (50,000 items, unanswered = revoke):
#       50,000 assignments removed through the audited engine (each an `assignment.remove`
#       event and an access event), applied and verified; seconds (goal ≤ 30 s).
# Usage: bench/reviews.sh [IDENTITIES] [REQUESTS]   (defaults 10000 200; release build)
# GATEHOUSE_BENCH_BACKENDS="sqlite postgres" (default both); PostgreSQL at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
REQ="${2:-200}"
BACKENDS="${GATEHOUSE_BENCH_BACKENDS:-sqlite postgres}"
PG="${GATEHOUSE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
cargo build --release -q --bin gatehouse
G="$CARGO_TARGET_DIR/release/gatehouse"
W=$(mktemp -d)
SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; identities=$N"

now() { date +%s.%N; }
secs() { echo "$(now) - $1" | bc; }

{
  echo '[[targets]]'; echo 'name = "db-01"'; echo 'address = "127.0.0.1:1"'
  for r in $(seq 0 19); do
    printf '\n[[roles]]\nname = "r%s"\ntargets = { names = ["db-01"] }\nlogins = ["%s"]\n' "$r" "$([ "$r" -lt 2 ] && echo root || echo "app$r")"
  done
  cat <<'TOML'

[[reviews]]
name = "all"
owner = "user0"
scope = { all = true }
start = "2099-01-01"

[[reviews]]
name = "five-roles"
owner = "user0"
scope = { roles = ["r0", "r1", "r2", "r3", "r4"] }
start = "2099-01-01"
unanswered = "revoke"
TOML
} > "$W/policy.toml"

python3 - "$N" > "$W/people.csv" <<'PY'
import sys
n = int(sys.argv[1])
depts = ["engineering", "operations", "finance", "sales"]
print("employee_number,first_name,last_name,email,manager,department,title")
for i in range(n):
    mgr = "" if i < 10 else f"E{i // 10:06d}"
    print(f"E{i:06d},First{i},Last{i},user{i}@example.com,{mgr},{depts[i % 4]},Title {i % 37}")
PY

# fixture FILE_PREFIX: assignments.csv and sessions.csv for the identities and roles in the db
# (ids read by the caller into ids.csv / roles.csv).
fixture() {
  python3 - "$W" <<'PY'
import csv, random, sys, time, uuid
w = sys.argv[1]
random.seed(7)
now = int(time.time() * 1000)
day = 86_400_000
ids = [r[0] for r in csv.reader(open(f"{w}/ids.csv")) if r]
roles = [r[0] for r in csv.reader(open(f"{w}/roles.csv")) if r]
with open(f"{w}/assignments.csv", "w", newline="") as a, open(f"{w}/sessions.csv", "w", newline="") as s:
    aw, sw = csv.writer(a), csv.writer(s)
    for i, ident in enumerate(ids):
        for j, role in enumerate(roles):
            aid = str(uuid.uuid4())
            kind = "eligible" if j % 4 == 3 else "standing"
            aw.writerow([aid, role, "identity", ident, kind, "api", now - random.randint(30, 400) * day])
            if (i + j) % 2 == 0 and kind == "standing":
                t = now - random.randint(1, 120) * day
                sw.writerow([str(uuid.uuid4()), ident, f"user{i}", "db-01", "app", "ssh", "shell", "standing", aid, "127.0.0.1", t, t + 60_000, "client_closed", 0, 0])
PY
}

run_backend() {
  local backend="$1" D="$W/$1" URL=() db
  mkdir -p "$D"
  if [ "$backend" = postgres ]; then
    db="gatehouse_bench_reviews"
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    URL=(--database-url "$PG/$db")
  fi
  local g=("$G" --data-dir "$D" "${URL[@]}" --log-level warn)
  "${g[@]}" apply "$W/policy.toml" > /dev/null
  "${g[@]}" hr import "$W/people.csv" > /dev/null
  local q_ids="SELECT id FROM identities ORDER BY employee_number" q_roles="SELECT id FROM roles ORDER BY name"
  if [ "$backend" = postgres ]; then
    psql "$PG/$db" -Atc "$q_ids" > "$W/ids.csv"; psql "$PG/$db" -Atc "$q_roles" > "$W/roles.csv"
  else
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print(r[0]) for r in c.execute(sys.argv[2])]" "$D/gatehouse.db" "$q_ids" > "$W/ids.csv"
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print(r[0]) for r in c.execute(sys.argv[2])]" "$D/gatehouse.db" "$q_roles" > "$W/roles.csv"
  fi
  fixture
  local cols_a="id, role_id, subject_kind, subject_id, kind, source, created_at"
  local cols_s="id, identity_id, identity, target, login, protocol, kind, grant_kind, grant_id, source, started_at, ended_at, end_reason, bytes_up, bytes_down"
  if [ "$backend" = postgres ]; then
    psql "$PG/$db" -qc "\\copy role_assignments ($cols_a) FROM '$W/assignments.csv' CSV" -c "\\copy sessions ($cols_s) FROM '$W/sessions.csv' CSV" -c "ANALYZE"
  else
    python3 - "$D/gatehouse.db" "$W" "$cols_a" "$cols_s" <<'PY'
import csv, sqlite3, sys
c = sqlite3.connect(sys.argv[1]); w = sys.argv[2]
c.executemany(f"INSERT INTO role_assignments ({sys.argv[3]}) VALUES (?,?,?,?,?,?,?)", csv.reader(open(f"{w}/assignments.csv")))
c.executemany(f"INSERT INTO sessions ({sys.argv[4]}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", csv.reader(open(f"{w}/sessions.csv")))
c.execute("UPDATE access_version SET version = version + 1"); c.commit(); c.execute("ANALYZE")
PY
  fi
  echo "== $backend: $(wc -l < "$W/assignments.csv") assignments, $(wc -l < "$W/sessions.csv") past sessions loaded"

  local t0 t_version t_findings t_start t_end
  t0=$(now); "${g[@]}" version > /dev/null; t_version=$(secs "$t0")
  t0=$(now); "${g[@]}" findings --json > /dev/null || true; t_findings=$(secs "$t0")
  t0=$(now); "$G" --data-dir "$D" "${URL[@]}" --log-level info reviews start all > "$W/start.txt" 2> "$W/start.log"; t_start=$(secs "$t0")
  grep -o "campaign started.*\|items=.*" "$W/start.log" | tail -1
  cat "$W/start.txt"

  # The queue through serve.
  local WEB SSHP APP TOKEN PASS
  WEB=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  SSHP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  APP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  TOKEN="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  PASS="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$PASS" | "${g[@]}" mfa set-password --identity user1 > /dev/null
  GATEHOUSE_BOOTSTRAP_TOKEN="$TOKEN" "${g[@]}" serve --web-listen "127.0.0.1:$WEB" --ssh-listen "127.0.0.1:$SSHP" \
    --app-listen off 2> "$W/serve-$backend.log" & SPID=$!
  for _ in $(seq 1 200); do curl -sk -o /dev/null "https://127.0.0.1:$WEB/healthz" && break; sleep 0.1; done
  local WO="https://localhost:$WEB" C=(curl -sk --max-time 20 --resolve "localhost:$WEB:127.0.0.1")
  local MT
  MT=$("${C[@]}" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$WO/api/v1/identities/user1/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  local csrf code
  csrf=$("${C[@]}" -c "$W/jar" "$WO/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
  code=$("${C[@]}" -b "$W/jar" -c "$W/jar" -o /dev/null -w '%{http_code}' -H 'Sec-Fetch-Site: same-origin' -H "Origin: $WO" \
    --data-urlencode username=user1 --data-urlencode "password=$PASS" --data-urlencode "csrf=$csrf" "$WO/login")
  [ "$code" = 303 ] || { echo "sign-in answered $code" >&2; exit 1; }
  local total
  total=$("${C[@]}" -H "Authorization: Bearer $MT" "$WO/api/v1/review-queue?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  echo "user1's queue: $total open items"
  lat() { # lat NAME CURL-ARGS...: REQ requests, one at a time; prints p50 p95 max (ms)
    local name="$1" code; shift
    code=$("${C[@]}" -o /dev/null -w '%{http_code}' "$@")
    [ "$code" = 200 ] || { echo "$name answered $code" >&2; exit 1; }
    for _ in $(seq 1 "$REQ"); do "${C[@]}" -o /dev/null -w '%{time_total}\n' "$@"; done \
      | python3 -c 'import sys; v=sorted(float(x)*1000 for x in sys.stdin); n=len(v); print(f"%-44s p50 %7.1f  p95 %7.1f  max %7.1f ms" % (sys.argv[1], v[n//2], v[int(n*0.95)-1], v[-1]))' "$name"
  }
  lat "/healthz (anchor)" "$WO/healthz"
  lat "GET /api/v1/review-queue?limit=50 (token)" -H "Authorization: Bearer $MT" "$WO/api/v1/review-queue?limit=50"
  lat "GET /reviews (the page, browser session)" -b "$W/jar" "$WO/reviews"

  # 50,000 revokes.
  "${g[@]}" reviews start five-roles > "$W/start5.txt"
  local id5
  id5=$(sed -n 's/^Started campaign \([^ ]*\) .*/\1/p' "$W/start5.txt")
  cat "$W/start5.txt"
  t0=$(now); "${g[@]}" reviews end "$id5" > "$W/end.txt" || true; t_end=$(secs "$t0")
  cat "$W/end.txt"
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
  printf '\n%-10s %-52s %8s\n' "$backend" "step" "seconds"
  printf '%-10s %-52s %8.2f\n' "$backend" "process start (gatehouse version)" "$t_version"
  printf '%-10s %-52s %8.2f\n' "$backend" "anchor: gatehouse findings --json (same data)" "$t_findings"
  printf '%-10s %-52s %8.2f   (goal <= 10)\n' "$backend" "reviews start all: 200k items planned and written" "$t_start"
  printf '%-10s %-52s %8.2f   (goal <= 30)\n' "$backend" "reviews end: 50k revokes applied and verified" "$t_end"
  "${g[@]}" audit verify > /dev/null && echo "$backend: audit verify OK"
}

for b in $BACKENDS; do run_backend "$b"; done
