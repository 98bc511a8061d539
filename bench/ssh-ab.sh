#!/usr/bin/env bash
# A/B throughput of two gatehouse binaries against direct OpenSSH, in one run: the same target
# sshd, two gateways side by side (each with its own data directory), and rounds in which direct,
# A and B take turns, so the shared machine's changes of speed weigh on all three alike. Prints
# each round and the median ratio to direct; then the connect latency of `ssh … true`, the three
# taking turns CONNECTS times. For trying a change before running bench/ssh.sh.
#
# Usage: bench/ssh-ab.sh BIN_A BIN_B [SIZE_MIB] [ROUNDS] [CONNECTS]   (defaults: 256 5 30;
# ROUNDS 0 measures latency only)
set -euo pipefail
cd "$(dirname "$0")/.."
A="${1:?usage: bench/ssh-ab.sh BIN_A BIN_B [SIZE_MIB] [ROUNDS]}"
B="${2:?usage: bench/ssh-ab.sh BIN_A BIN_B [SIZE_MIB] [ROUNDS]}"
SIZE="${3:-256}"
ROUNDS="${4:-5}"
CONNECTS="${5:-30}"
scripts/packages.sh bench
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

. bench/ssh-env.sh
T=$(free_port)
for side in a b; do
  bin=$A; [ $side = b ] && bin=$B
  "$bin" --data-dir "$W/$side" ssh ca >> "$W/ca.pub"
done
start_sshd target "$T"
bench_policy "$T" > "$W/policy.toml"
declare -A PORT
for side in a b; do
  bin=$A; [ $side = b ] && bin=$B
  PORT[$side]=$(free_port); web=$(free_port)
  "$bin" --data-dir "$W/$side" apply "$W/policy.toml" >/dev/null
  "$bin" --data-dir "$W/$side" --log-level warn serve --web-listen "127.0.0.1:$web" --ssh-listen "127.0.0.1:${PORT[$side]}" --app-listen off 2>"$W/$side.log" & pids+=($!)
done
for port in $T "${PORT[a]}" "${PORT[b]}"; do wait_port "$port"; done
direct() { ssh "${O[@]}" -p "$T" "$LOGIN@127.0.0.1" "$@"; }
a()      { ssh "${O[@]}" -p "${PORT[a]}" "$LOGIN@db@127.0.0.1" "$@"; }
b()      { ssh "${O[@]}" -p "${PORT[b]}" "$LOGIN@db@127.0.0.1" "$@"; }
for path in direct a b; do $path true || { echo "$path: cannot connect" >&2; exit 1; }; done
bytes=$((SIZE * 1048576))
now() { date +%s.%N; }
timed() { local s e; s=$(now); "$@"; e=$(now); echo "$SIZE / ($e - $s)" | bc -l; }
down() { $1 "head -c $bytes /dev/zero" | cat > /dev/null; }
up()   { head -c "$bytes" /dev/zero | $1 'cat > /dev/null'; }

echo "A = $A"; echo "B = $B"; echo "$SIZE MiB each way, $ROUNDS rounds, MiB/s and ratio to direct in the same round"
if [ "$ROUNDS" -gt 0 ]; then
printf '%-6s %8s %8s %8s %7s %7s | %8s %8s %8s %7s %7s\n' round "d.dir" "d.A" "d.B" "A/dir" "B/dir" "u.dir" "u.A" "u.B" "A/dir" "B/dir"
: > "$W/ratios"
for r in $(seq "$ROUNDS"); do
  # A and B swap places every round.
  if [ $((r % 2)) = 1 ]; then
    dd=$(timed down direct); da=$(timed down a); db=$(timed down b)
    ud=$(timed up direct); ua=$(timed up a); ub=$(timed up b)
  else
    dd=$(timed down direct); db=$(timed down b); da=$(timed down a)
    ud=$(timed up direct); ub=$(timed up b); ua=$(timed up a)
  fi
  printf '%-6s %8.1f %8.1f %8.1f %7.2f %7.2f | %8.1f %8.1f %8.1f %7.2f %7.2f\n' "$r" "$dd" "$da" "$db" \
    "$(echo "$da / $dd" | bc -l)" "$(echo "$db / $dd" | bc -l)" "$ud" "$ua" "$ub" "$(echo "$ua / $ud" | bc -l)" "$(echo "$ub / $ud" | bc -l)"
  echo "$(echo "$da / $dd" | bc -l) $(echo "$db / $dd" | bc -l) $(echo "$ua / $ud" | bc -l) $(echo "$ub / $ud" | bc -l)" >> "$W/ratios"
done
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
printf 'median ratio to direct: down A %.2f B %.2f, up A %.2f B %.2f\n' \
  "$(awk '{print $1}' "$W/ratios" | median)" "$(awk '{print $2}' "$W/ratios" | median)" \
  "$(awk '{print $3}' "$W/ratios" | median)" "$(awk '{print $4}' "$W/ratios" | median)"
fi

# Connect latency: `ssh … true`, the three taking turns.
if [ "$CONNECTS" -gt 0 ]; then
for path in direct a b; do $path true; done
for _ in $(seq "$CONNECTS"); do
  for path in direct a b; do
    s=$(date +%s%N); $path true; e=$(date +%s%N); echo "$path $(( (e - s) / 1000 ))"
  done
done > "$W/lat"
printf '\nconnect latency, `ssh … true` x %s (ms)\n%-8s %8s %8s\n' "$CONNECTS" path p50 p90
for path in direct a b; do
  awk -v p="$path" '$1 == p {print $2 / 1000}' "$W/lat" | sort -n |
    awk -v p="$path" '{v[NR] = $1} END {printf "%-8s %8.1f %8.1f\n", p, v[int((NR + 1) / 2)], v[int(NR * 0.9)]}'
done
fi
