#!/usr/bin/env bash
# Refreshes Chart.js (the compliance dashboard's charts, web/assets/vendor/) from the npm registry
# at the pinned version, and prints its SHA-256 for web/assets/vendor/README.md.
# Usage: scripts/vendor-chart.sh [VERSION]   (default: the pinned one)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-4.6.1}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf "chart.js-$version.tgz")
cp "$tmp/package/dist/chart.umd.min.js" web/assets/vendor/chart.umd.min.js
cp "$tmp/package/LICENSE.md" web/assets/vendor/chart.js.LICENSE
(cd web/assets/vendor && sha256sum chart.umd.min.js)
echo "chart.js $version vendored; update the version and digest in web/assets/vendor/README.md" >&2
