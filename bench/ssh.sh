#!/usr/bin/env bash
# SSH gateway benchmark, three paths side by side in one run, same cipher (aes128-gcm) and the
# same client: (1) direct OpenSSH to the target's sshd, (2) OpenSSH ProxyJump through a second
# sshd as bastion, (3) Gatehouse (recording on). Measures (a) bulk transfer of SIZE MiB each way,
# (b) connect latency of `ssh … true` × N, (c) the gateway's memory per idle interactive session
# at each count in IDLE. Prints a table with ratios to direct; paste it into BENCHMARKS.md.
#
# Usage: bench/ssh.sh [SIZE_MIB] [N] [IDLE_COUNTS]   (defaults: 1024 50 "100 1000")
# GATEHOUSE_BENCH_SMAPS=DIR keeps the gateway's /proc/PID/smaps before and after each idle count.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-1024}"
N="${2:-50}"
IDLE="${3-100 1000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
cargo build --release -q --bin gatehouse
G="$CARGO_TARGET_DIR/release/gatehouse"
ulimit -n 65536 2>/dev/null || true

W=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "$W/idle-marker" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

. bench/ssh-env.sh
T=$(free_port); B=$(free_port); P=$(free_port); WEB=$(free_port)
"$G" --data-dir "$W/data" ssh ca > "$W/ca.pub"
start_sshd target "$T"
start_sshd bastion "$B"
bench_policy "$T" > "$W/policy.toml"
"$G" --data-dir "$W/data" apply "$W/policy.toml" >/dev/null
"$G" --data-dir "$W/data" --log-level warn serve --web-listen "127.0.0.1:$WEB" --ssh-listen "127.0.0.1:$P" 2>"$W/serve.log" & GPID=$!
pids+=($GPID)
for port in $P $T $B; do wait_port "$port"; done

direct()   { ssh "${O[@]}" -p "$T" "$LOGIN@127.0.0.1" "$@"; }
jump()     { ssh "${O[@]}" -o "ProxyCommand=ssh ${O[*]} -p $B -W %h:%p $LOGIN@127.0.0.1" -p "$T" "$LOGIN@127.0.0.1" "$@"; }
gatehouse(){ ssh "${O[@]}" -p "$P" "$LOGIN@db@127.0.0.1" "$@"; }
for path in direct jump gatehouse; do $path true || { echo "$path: cannot connect" >&2; exit 1; }; done

now() { date +%s.%N; }
bytes=$((SIZE * 1048576))
# Seconds one transfer takes.
timed() { local s e; s=$(now); "$@"; e=$(now); echo "$e - $s" | bc -l; }
down() { $1 "head -c $bytes /dev/zero" | cat > /dev/null; }
up()   { head -c "$bytes" /dev/zero | $1 'cat > /dev/null'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
echo "openssh: $(ssh -V 2>&1); cipher aes128-gcm@openssh.com, kex curve25519-sha256; $SIZE MiB each way, best of 3 taking turns"
printf '\n%-10s %12s %8s %12s %8s\n' path "down MiB/s" ratio "up MiB/s" ratio
declare -A D U
# GATEHOUSE_BENCH_PERF=FILE: record a perf profile of the gateway during its transfers.
if [ -n "${GATEHOUSE_BENCH_PERF:-}" ]; then
  perf record -F 999 -g -o "$GATEHOUSE_BENCH_PERF" -p "$GPID" 2>/dev/null & PERF=$!
  down gatehouse; up gatehouse
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
fi
# Best of 3 for each path and direction, the paths taking turns within each round so that a
# change in the machine's speed during the run (it is shared) weighs on all three alike.
for round in 1 2 3; do
  for path in direct jump gatehouse; do
    d=$(echo "$SIZE / $(timed down $path)" | bc -l); u=$(echo "$SIZE / $(timed up $path)" | bc -l)
    if [ -z "${D[$path]:-}" ] || [ "$(echo "$d > ${D[$path]}" | bc -l)" = 1 ]; then D[$path]=$d; fi
    if [ -z "${U[$path]:-}" ] || [ "$(echo "$u > ${U[$path]}" | bc -l)" = 1 ]; then U[$path]=$u; fi
  done
done
# CPU the gateway spends per transfer (user + system, from /proc), to tell CPU-bound from waiting.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$GPID/stat"; }
c0=$(cpu_s); s0=$(now); down gatehouse; s1=$(now); c1=$(cpu_s); up gatehouse; s2=$(now); c2=$(cpu_s)
for path in direct jump gatehouse; do
  printf '%-10s %12.1f %8.2f %12.1f %8.2f\n' $path "${D[$path]}" "$(echo "${D[$path]} / ${D[direct]}" | bc -l)" \
    "${U[$path]}" "$(echo "${U[$path]} / ${U[direct]}" | bc -l)"
done

printf 'gateway CPU: %.2f s for %s MiB down (%.0f%% of one core), %.2f s up (%.0f%%)\n' \
  "$(echo "$c1 - $c0" | bc -l)" "$SIZE" "$(echo "100 * ($c1 - $c0) / ($s1 - $s0)" | bc -l)" \
  "$(echo "$c2 - $c1" | bc -l)" "$(echo "100 * ($c2 - $c1) / ($s2 - $s1)" | bc -l)"

# Where the CPU goes, per GiB moved, for one transfer each way on each path: the client side
# (ssh with head/cat, from this shell's children times), the sshd session processes (sampled
# while they run: they are not reaped by their listener), the gateway, and how busy the whole
# machine was.
# `times` runs in this shell (a command substitution would be a subshell with no children).
children_s() { times > "$W/times"; CH=$(awk 'NR==2 {gsub(/[ms]/," "); print $1*60+$2+$3*60+$4}' "$W/times"); }
sshd_sampler() { # prints the CPU seconds of sshd processes seen until $W/stop exists
  python3 - "$W/stop" <<'EOP'
import os, sys, time
stop, seen = sys.argv[1], {}
# Processes from before this transfer (listeners, unreaped sessions of earlier ones) do not count.
before = set(p for p in os.listdir("/proc") if p.isdigit())
hz = os.sysconf("SC_CLK_TCK")
open(stop + ".ready", "w").close()
while True:
    done = os.path.exists(stop)
    for p in os.listdir("/proc"):
        if not p.isdigit() or p in before:
            continue
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        if st[st.index("(") + 1:st.rindex(")")] == "sshd":
            seen[p] = max(seen.get(p, 0), int(f[11]) + int(f[12]))
    if done:
        break
    time.sleep(0.1)
print(sum(seen.values()) / hz)
EOP
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
printf '\nCPU seconds per GiB (one transfer each way; machine has %s cores)\n%-10s %-5s %8s %8s %8s %8s %10s\n' \
  "$(nproc)" path dir client sshd gateway total "machine busy"
gib=$(echo "$SIZE / 1024" | bc -l)
for path in direct jump gatehouse; do
  for dir in down up; do
    rm -f "$W/stop" "$W/stop.ready"; sshd_sampler > "$W/sshd_s" & SAMPLER=$!
    while [ ! -e "$W/stop.ready" ]; do sleep 0.02; done
    children_s; k0=$CH; g0=$(cpu_s); read -r b0 t0 < <(busy)
    $dir $path
    read -r b1 t1 < <(busy); children_s; k1=$CH; g1=$(cpu_s)
    sleep 0.3; touch "$W/stop"; wait "$SAMPLER"; h=$(cat "$W/sshd_s")
    g=0; [ "$path" = gatehouse ] && g=$(echo "$g1 - $g0" | bc -l)
    printf '%-10s %-5s %8.2f %8.2f %8.2f %8.2f %9.0f%%\n' $path $dir \
      "$(echo "($k1 - $k0) / $gib" | bc -l)" "$(echo "$h / $gib" | bc -l)" "$(echo "$g / $gib" | bc -l)" \
      "$(echo "($k1 - $k0 + $h + $g) / $gib" | bc -l)" "$(echo "100 * ($b1 - $b0) / ($t1 - $t0)" | bc -l)"
  done
done

printf '\nconnect latency, `ssh … true` x %s (ms)\n%-10s %8s %8s %8s %12s\n' "$N" path p50 p90 max "p50 - direct"
declare -A P50
for path in direct jump gatehouse; do
  : > "$W/lat.$path"
  for _ in $(seq "$N"); do s=$(now); $path true; e=$(now); echo "($e - $s) * 1000" | bc -l >> "$W/lat.$path"; done
  sort -n "$W/lat.$path" -o "$W/lat.$path"
  P50[$path]=$(awk -v n="$N" 'NR==int((n+1)/2){print}' "$W/lat.$path")
done
for path in direct jump gatehouse; do
  p90=$(awk -v n="$N" 'NR==int(n*0.9){print}' "$W/lat.$path"); mx=$(tail -1 "$W/lat.$path")
  printf '%-10s %8.1f %8.1f %8.1f %12.1f\n' $path "${P50[$path]}" "$p90" "$mx" "$(echo "${P50[$path]} - ${P50[direct]}" | bc -l)"
done

rss_kib() { awk '/VmRSS/{print $2}' "/proc/$GPID/status"; }
threads() { ls "/proc/$GPID/task" | wc -l; }
printf '\nidle interactive sessions through Gatehouse (gateway RSS)\n%-8s %12s %12s %16s %8s\n' sessions "before KiB" "after KiB" "KiB per session" threads
for count in $IDLE; do
  sleep 1
  before=$(rss_kib)
  [ -n "${GATEHOUSE_BENCH_SMAPS:-}" ] && cp "/proc/$GPID/smaps" "$GATEHOUSE_BENCH_SMAPS/before.$count"
  for i in $(seq "$count"); do
    gatehouse -tt "exec sleep 3600 # $W/idle-marker" < /dev/null > /dev/null 2>&1 &
    [ $((i % 50)) -eq 0 ] && sleep 0.5
  done
  # Wait until every session is open (each is a row with no end yet).
  for _ in $(seq 600); do
    live=$(curl -s "http://127.0.0.1:$WEB/healthz" >/dev/null; ls "$W/data/recordings"/*/*/*/*.cast 2>/dev/null | wc -l)
    open=$(ss -tn state established "( sport = :$P )" | tail -n +2 | wc -l)
    [ "$open" -ge "$count" ] && break
    sleep 0.2
  done
  sleep 3
  after=$(rss_kib)
  [ -n "${GATEHOUSE_BENCH_SMAPS:-}" ] && cp "/proc/$GPID/smaps" "$GATEHOUSE_BENCH_SMAPS/after.$count"
  printf '%-8s %12s %12s %16.1f %8s\n' "$count" "$before" "$after" "$(echo "($after - $before) / $count" | bc -l)" "$(threads)"
  pkill -f "$W/idle-marker" 2>/dev/null || true
  sleep 3
done
