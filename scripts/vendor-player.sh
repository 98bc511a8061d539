#!/usr/bin/env bash
# Refreshes the asciinema-player files served from the binary (web/assets/vendor/) from the npm
# registry at the pinned version, and prints their SHA-256 for web/assets/vendor/README.md.
# Usage: scripts/vendor-player.sh [VERSION]   (default: the pinned one)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.18.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "asciinema-player@$version" >/dev/null && tar xzf "asciinema-player-$version.tgz")
cp "$tmp/package/dist/bundle/asciinema-player.min.js" "$tmp/package/dist/bundle/asciinema-player.css" web/assets/vendor/
cp "$tmp/package/LICENSE" web/assets/vendor/asciinema-player.LICENSE
(cd web/assets/vendor && sha256sum asciinema-player.min.js asciinema-player.css)
echo "asciinema-player $version vendored; update the version and digests in web/assets/vendor/README.md" >&2
