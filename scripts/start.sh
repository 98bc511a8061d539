#!/usr/bin/env bash
# Installs Gatehouse and starts it on the embedded default: SQLite in ./gatehouse-data.
# Builds the release binary (the first build takes ~15 minutes on 2 cores), then runs
# `gatehouse serve` with any arguments given here, e.g. scripts/start.sh --web-listen 127.0.0.1:9090
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/packages.sh build
command -v cargo >/dev/null || { echo "error: cargo not found: install Rust from https://rustup.rs" >&2; exit 2; }
cargo build --release --locked --bin gatehouse
bin="${CARGO_TARGET_DIR:-target}/release/gatehouse"
echo "starting $bin serve $* (stop with Ctrl-C)" >&2
exec "$bin" serve "$@"
