#!/usr/bin/env bash
# Runs the whole test suite the way CI does: system packages, PostgreSQL, formatting, lints, and
# every test on both storage backends (SQLite and the PostgreSQL server on 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "system packages"
scripts/packages.sh test

step "Python tools (PyPI, pinned)"
GATEHOUSE_PY_TOOLS="$(scripts/python-tools.sh)"
export GATEHOUSE_PY_TOOLS

step "Node tools (npm, pinned)"
NODE_TOOLS="$(scripts/node-tools.sh)"
export NODE_TOOLS

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  for v in /etc/postgresql/*; do
    [ -d "$v" ] && pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
export GATEHOUSE_TEST_POSTGRES_URL="${GATEHOUSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (SQLite and PostgreSQL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
step "all green"
