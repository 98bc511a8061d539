#!/usr/bin/env bash
# SSH gateway benchmark, four paths side by side in one run, same cipher (aes128-gcm) and the
# same client: (1) direct OpenSSH to the target's sshd, (2) OpenSSH ProxyJump through a second
# sshd as bastion, (3) a plain TCP relay (socat) in front of the target, which only copies the
# encrypted bytes: the cost of any third process on the path, (4) Gatehouse (recording on).
# Measures (a) bulk transfer of SIZE MiB each way, (b) connect latency of `ssh … true` × N,
# (c) the gateway's memory per idle interactive session at each count in IDLE. Prints tables
# with ratios to direct; paste them into BENCHMARKS.md.
#
# Usage: bench/ssh.sh [SIZE_MIB] [N] [IDLE_COUNTS]   (defaults: 1024 50 "100 1000")
# GATEHOUSE_BENCH_ROUNDS=R transfer rounds (default 5); GATEHOUSE_BENCH_SMAPS=DIR keeps the
# gateway's /proc/PID/smaps before and after each idle count.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-1024}"
N="${2:-50}"
IDLE="${3-100 1000}"
ROUNDS="${GATEHOUSE_BENCH_ROUNDS:-5}"
scripts/packages.sh bench
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
T=$(free_port); B=$(free_port); R=$(free_port); P=$(free_port); WEB=$(free_port)
"$G" --data-dir "$W/data" ssh ca > "$W/ca.pub"
start_sshd target "$T"
start_sshd bastion "$B"
start_relay "$R" "$T"
bench_policy "$T" > "$W/policy.toml"
"$G" --data-dir "$W/data" apply "$W/policy.toml" >/dev/null
"$G" --data-dir "$W/data" --log-level warn serve --web-listen "127.0.0.1:$WEB" --ssh-listen "127.0.0.1:$P" --app-listen off 2>"$W/serve.log" & GPID=$!
pids+=($GPID)
for port in $P $T $B $R; do wait_port "$port"; done

direct()   { ssh "${O[@]}" -p "$T" "$LOGIN@127.0.0.1" "$@"; }
jump()     { ssh "${O[@]}" -o "ProxyCommand=ssh ${O[*]} -p $B -W %h:%p $LOGIN@127.0.0.1" -p "$T" "$LOGIN@127.0.0.1" "$@"; }
relay()    { ssh "${O[@]}" -p "$R" "$LOGIN@127.0.0.1" "$@"; }
gatehouse(){ ssh "${O[@]}" -p "$P" "$LOGIN@db@127.0.0.1" "$@"; }
PATHS="direct jump relay gatehouse"
for path in $PATHS; do $path true || { echo "$path: cannot connect" >&2; exit 1; }; done

now() { date +%s.%N; }
bytes=$((SIZE * 1048576))
# Seconds one transfer takes.
timed() { local s e; s=$(now); "$@"; e=$(now); echo "$e - $s" | bc -l; }
down() { $1 "head -c $bytes /dev/zero" | cat > /dev/null; }
up()   { head -c "$bytes" /dev/zero | $1 'cat > /dev/null'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
echo "openssh: $(ssh -V 2>&1); cipher aes128-gcm@openssh.com, kex curve25519-sha256; $SIZE MiB each way, $ROUNDS rounds"
# GATEHOUSE_BENCH_PERF=FILE: record a perf profile of the gateway during its transfers.
if [ -n "${GATEHOUSE_BENCH_PERF:-}" ]; then
  perf record -F 999 -g -o "$GATEHOUSE_BENCH_PERF" -p "$GPID" 2>/dev/null & PERF=$!
  down gatehouse; up gatehouse
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
fi
# In each round every path moves SIZE MiB each way, the paths taking turns, so that a change in
# the machine's speed during the run (it is shared) weighs on all of them alike. A path's ratio
# is the median, over the rounds, of its speed over direct's in the same round; the range shows
# how much single rounds differ on this machine.
: > "$W/rounds"
for round in $(seq "$ROUNDS"); do
  for path in $PATHS; do
    echo "$round $path $(echo "$SIZE / $(timed down "$path")" | bc -l) $(echo "$SIZE / $(timed up "$path")" | bc -l)" >> "$W/rounds"
  done
done
python3 - "$W/rounds" <<'EOP'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
speed = {(r, p): (float(d), float(u)) for r, p, d, u in rows}
rounds = sorted({int(r) for r, *_ in rows})
paths = list(dict.fromkeys(p for _, p, *_ in rows))
print(f"\n{'path':<10} {'down MiB/s':>10} {'ratio':>6} {'range':>10}   {'up MiB/s':>10} {'ratio':>6} {'range':>10}")
for p in paths:
    cols = []
    for i in (0, 1):
        mine = [speed[(str(r), p)][i] for r in rounds]
        ratios = [speed[(str(r), p)][i] / speed[(str(r), "direct")][i] for r in rounds]
        cols.append(f"{st.median(mine):10.1f} {st.median(ratios):6.2f} {min(ratios):4.2f}–{max(ratios):4.2f}")
    print(f"{p:<10} {cols[0]}   {cols[1]}")
EOP
# CPU the gateway spends per transfer (user + system, from /proc), to tell CPU-bound from waiting.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$GPID/stat"; }
c0=$(cpu_s); s0=$(now); down gatehouse; s1=$(now); c1=$(cpu_s); up gatehouse; s2=$(now); c2=$(cpu_s)

printf 'gateway CPU: %.2f s for %s MiB down (%.0f%% of one core), %.2f s up (%.0f%%)\n' \
  "$(echo "$c1 - $c0" | bc -l)" "$SIZE" "$(echo "100 * ($c1 - $c0) / ($s1 - $s0)" | bc -l)" \
  "$(echo "$c2 - $c1" | bc -l)" "$(echo "100 * ($c2 - $c1) / ($s2 - $s1)" | bc -l)"

# Where the CPU goes, per GiB moved, for one transfer each way on each path: the client side
# (ssh with head/cat, from this shell's children times), the sshd session processes (sampled
# while they run: they are not reaped by their listener), the middle (the gateway, or the
# relay's socat child, sampled the same way), and how busy the whole machine was.
# `times` runs in this shell (a command substitution would be a subshell with no children).
children_s() { times > "$W/times"; CH=$(awk 'NR==2 {gsub(/[ms]/," "); print $1*60+$2+$3*60+$4}' "$W/times"); }
sampler() { # prints the CPU seconds of new sshd and of new socat processes seen until $W/stop exists
  python3 - "$W/stop" <<'EOP'
import os, sys, time
stop, seen = sys.argv[1], {"sshd": {}, "socat": {}}
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
        name = st[st.index("(") + 1:st.rindex(")")]
        if name in seen:
            seen[name][p] = max(seen[name].get(p, 0), int(f[11]) + int(f[12]))
    if done:
        break
    time.sleep(0.1)
print(sum(seen["sshd"].values()) / hz, sum(seen["socat"].values()) / hz)
EOP
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
printf '\nCPU seconds per GiB (one transfer each way; machine has %s cores)\n%-10s %-5s %8s %8s %8s %8s %10s\n' \
  "$(nproc)" path dir client sshd middle total "machine busy"
gib=$(echo "$SIZE / 1024" | bc -l)
for path in $PATHS; do
  for dir in down up; do
    rm -f "$W/stop" "$W/stop.ready"; sampler > "$W/sampled" & SAMPLER=$!
    while [ ! -e "$W/stop.ready" ]; do sleep 0.02; done
    children_s; k0=$CH; g0=$(cpu_s); read -r b0 t0 < <(busy)
    $dir $path
    read -r b1 t1 < <(busy); children_s; k1=$CH; g1=$(cpu_s)
    sleep 0.3; touch "$W/stop"; wait "$SAMPLER"; read -r h g < "$W/sampled"
    [ "$path" = gatehouse ] && g=$(echo "$g1 - $g0" | bc -l)
    printf '%-10s %-5s %8.2f %8.2f %8.2f %8.2f %9.0f%%\n' $path $dir \
      "$(echo "($k1 - $k0) / $gib" | bc -l)" "$(echo "$h / $gib" | bc -l)" "$(echo "$g / $gib" | bc -l)" \
      "$(echo "($k1 - $k0 + $h + $g) / $gib" | bc -l)" "$(echo "100 * ($b1 - $b0) / ($t1 - $t0)" | bc -l)"
  done
done

printf '\nconnect latency, `ssh … true` x %s (ms)\n%-10s %8s %8s %8s %12s\n' "$N" path p50 p90 max "p50 - direct"
declare -A P50
for path in $PATHS; do
  : > "$W/lat.$path"
  for _ in $(seq "$N"); do s=$(now); $path true; e=$(now); echo "($e - $s) * 1000" | bc -l >> "$W/lat.$path"; done
  sort -n "$W/lat.$path" -o "$W/lat.$path"
  P50[$path]=$(awk -v n="$N" 'NR==int((n+1)/2){print}' "$W/lat.$path")
done
for path in $PATHS; do
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
