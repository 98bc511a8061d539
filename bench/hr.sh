#!/usr/bin/env bash
# HR import: N generated records (default 100000) through `gatehouse hr import` on SQLite with
# the full joiner / mover / leaver engine applied and audited, beside the dry run of the same
# file (parse + plan only) as the anchor; then a delta feed with 10% movers and 1% leavers.
# Usage: bench/hr.sh [N]   (release build; prints times and records per second)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
n="${1:-100000}"
cargo build --release -q --bin gatehouse
bin="$CARGO_TARGET_DIR/release/gatehouse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
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
birthright = { department = ["operations"], employment_type = ["employee"] }

[[roles]]
name = "fin-base"
targets = { names = ["db-01"] }
logins = ["fin"]
birthright = { department = ["finance"] }
TOML
"$bin" --data-dir "$work/d" apply "$work/policy.toml" >/dev/null

gen() { # gen FILE MOVE_PERCENT LEAVE_PERMILLE
  python3 - "$n" "$2" "$3" > "$1" <<'PY'
import sys
n, move, leave = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
depts = ["engineering", "operations", "finance", "sales"]
print("employee_number,first_name,last_name,email,manager,department,title,employment_type,start_date,end_date,sponsor,status")
for i in range(n):
    d = depts[i % 4]
    if move and i % 100 < move:
        d = depts[(i + 1) % 4]
    status = "terminated" if leave and i % 1000 < leave else ""
    mgr = "" if i < 10 else f"E{i // 10:06d}"
    et = "contractor" if i % 20 == 0 else "employee"
    sponsor, end = (mgr or "E000000", "2099-12-31") if et == "contractor" else ("", "")
    print(f"E{i:06d},First{i},Last{i},user{i}@example.com,{mgr},{d},Title {i % 37},{et},2024-01-01,{end},{sponsor},{status}")
PY
}
gen "$work/hr0.csv" 0 0
gen "$work/hr1.csv" 10 10

t() { local s; s=$(date +%s.%N); "$@" > "$work/out.txt" 2>&1 || true; echo "$(date +%s.%N) - $s" | bc; }
dry=$(t "$bin" --data-dir "$work/d" hr import --dry-run "$work/hr0.csv")
full=$(t "$bin" --data-dir "$work/d" hr import "$work/hr0.csv")
tail -2 "$work/out.txt"
audit=$(sqlite3 "$work/d/gatehouse.db" "SELECT COUNT(*) FROM audit_events" 2>/dev/null || echo "?")
delta=$(t "$bin" --data-dir "$work/d" hr import "$work/hr1.csv")
tail -2 "$work/out.txt"
again=$(t "$bin" --data-dir "$work/d" hr import "$work/hr1.csv")
printf '\n%-34s %8s %12s\n' "run" "seconds" "records/s"
for row in "dry run (parse + plan), initial load:$dry" "initial load, applied and audited:$full" "delta (10% movers, 1% leavers):$delta" "same delta again (no change):$again"; do
  name="${row%%:*}"; secs="${row##*:}"
  printf '%-34s %8.2f %12.0f\n' "$name" "$secs" "$(echo "$n / $secs" | bc -l)"
done
echo "audit events after the initial load: $audit (goal: initial load <= 10 s)"
"$bin" --data-dir "$work/d" audit verify > /dev/null && echo "audit verify: OK"
