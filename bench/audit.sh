#!/usr/bin/env bash
# Audit log benchmark: append throughput (one event per transaction, eight writers, batched) and
# `gatehouse audit verify` time over EVENTS events, on SQLite and PostgreSQL. Anchors measured
# in the same run: plain inserts of same-shaped rows without the chain, and a bare scan of the
# log without hashing. Prints a table with ratios; paste it into BENCHMARKS.md.
#
# Usage: bench/audit.sh [EVENTS]   (default 1000000; needs PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-1000000}"
PG="${GATEHOUSE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --locked --bin gatehouse -p gatehouse -q
cargo build --release --locked -p gatehouse-broker --example audit_bench -q
bench="$target/release/examples/audit_bench"
bin="$target/release/gatehouse"

work=$(mktemp -d)
db="gh_bench_$$"
cleanup() { rm -rf "$work"; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null

# Best of three runs of a command, in seconds.
best_of_3() {
  local best=""
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    best=$(python3 -c "b='$best'; t=$e-$s; print(f'{min(t, float(b)) if b else t:.3f}')")
  done
  echo "$best"
}

declare -A R
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then
    url="sqlite://$work/data/gatehouse.db?mode=rwc"; mkdir -p "$work/data"
    cli=("$bin" --data-dir "$work/data")
  else
    url="$PG/$db"; cli=("$bin" --database-url "$url")
  fi
  echo "== $backend: appending $EVENTS events" >&2
  while read -r k v; do R[$backend.$k]=$v; done < <("$bench" "$url" "$EVENTS")
  echo "== $backend: gatehouse audit verify (best of 3)" >&2
  "${cli[@]}" audit verify >&2
  R[$backend.verify_cli_s]=$(best_of_3 "${cli[@]}" audit verify)
done

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
printf '\nAudit log, %s events; %s, %s cores; %s\n\n' "$EVENTS" "$cpu" "$(nproc)" "$(date -u +%Y-%m-%d)"
printf '| measure | SQLite | PostgreSQL | goal |\n|---|---|---|---|\n'
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
row "append, 1 event per transaction (events/s)" "${R[sqlite.single_chain_per_s]}" "${R[postgres.single_chain_per_s]}" "≥ 1,000"
row "  anchor: plain insert, 1 row per transaction" "${R[sqlite.single_plain_per_s]}" "${R[postgres.single_plain_per_s]}" ""
row "  ratio chain / plain" "$(ratio "${R[sqlite.single_chain_per_s]}" "${R[sqlite.single_plain_per_s]}")" "$(ratio "${R[postgres.single_chain_per_s]}" "${R[postgres.single_plain_per_s]}")" ""
row "append, 8 writers, 1 event per transaction (events/s)" "${R[sqlite.concurrent8_chain_per_s]}" "${R[postgres.concurrent8_chain_per_s]}" ""
row "append, batched 1,000 per transaction (events/s)" "${R[sqlite.batched_chain_per_s]}" "${R[postgres.batched_chain_per_s]}" "≥ 20,000"
row "  anchor: plain insert, batched the same way" "${R[sqlite.batched_plain_per_s]}" "${R[postgres.batched_plain_per_s]}" ""
row "  ratio chain / plain" "$(ratio "${R[sqlite.batched_chain_per_s]}" "${R[sqlite.batched_plain_per_s]}")" "$(ratio "${R[postgres.batched_chain_per_s]}" "${R[postgres.batched_plain_per_s]}")" ""
row "\`gatehouse audit verify\`, $EVENTS events (s, best of 3)" "${R[sqlite.verify_cli_s]}" "${R[postgres.verify_cli_s]}" "≤ 5"
row "  verify in-process (s)" "${R[sqlite.verify_inproc_s]}" "${R[postgres.verify_inproc_s]}" ""
row "  anchor: bare scan of the log, no hashing (s)" "${R[sqlite.scan_s]}" "${R[postgres.scan_s]}" ""
row "  ratio verify / scan" "$(ratio "${R[sqlite.verify_inproc_s]}" "${R[sqlite.scan_s]}")" "$(ratio "${R[postgres.verify_inproc_s]}" "${R[postgres.scan_s]}")" ""
row "  for comparison: naive row-by-row stream, no hashing (s)" "${R[sqlite.row_stream_s]}" "${R[postgres.row_stream_s]}" ""
