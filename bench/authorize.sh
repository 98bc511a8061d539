#!/usr/bin/env bash
# authorize() throughput and latency on one core: Gatehouse's decide (Cedar conditions and entity
# building included) over 10k identities / 1k targets / 100 roles, beside Cedar's is_authorized
# alone as the anchor. Usage: bench/authorize.sh [DECISIONS]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse/target}"
cargo build --release -q -p gatehouse-broker --example authorize_bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
exec taskset -c 0 "$CARGO_TARGET_DIR/release/examples/authorize_bench" "${1:-200000}"
