#!/usr/bin/env bash
# Installs the Debian packages Gatehouse builds and tests with, if any is missing (idempotent:
# nothing is downloaded when all are present). Run by start.sh, test.sh and the benchmarks.
# Usage: scripts/packages.sh [build|test|bench]
set -euo pipefail

packages=(ca-certificates gcc libc6-dev pkg-config curl)
if [ "${1:-build}" = test ] || [ "${1:-build}" = bench ]; then
  # openssh-client is the engineer, openssh-server the target, asciinema plays recordings.
  # chromium + chromium-driver drive the web UI tests; python3-venv holds the PyPI SCIM tools;
  # slapd + ldap-utils are the directory, nodejs (with npm, as the machine has it) runs the OpenID provider;
  # putty-tools (plink, psftp, puttygen) is an SSH client other than OpenSSH for the gateway's tests;
  # socat's OpenSSL listener is the TLS terminator in front of the outbound HTTPS tests' receivers
  # (and the benchmarks' plain TCP relay). jupyter-notebook is the real web application (its
  # terminal is xterm.js over a websocket) that the browser drives through the app gateway.
  packages+=(postgresql postgresql-client procps openssh-client openssh-server asciinema bsdutils
    chromium chromium-driver python3 python3-venv
    slapd ldap-utils nodejs putty-tools socat jupyter-notebook)
fi
if [ "${1:-build}" = bench ]; then
  # bc does the benchmarks' arithmetic (socat, above, is the plain TCP relay the SSH benchmark
  # sets beside the gateway), perf profiles on request; nginx is the app benchmark's upstream and
  # its anchor (a reverse proxy that does no auth), wrk its HTTP load generator.
  packages+=(bc linux-perf nginx wrk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
