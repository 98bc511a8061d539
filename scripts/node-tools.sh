#!/usr/bin/env bash
# Installs the npm packages the tests run, at pinned versions, outside the clone (idempotent):
#   oidc-provider   the OpenID provider the single sign-on tests sign in at
#   axe-core        the accessibility checker the browser tests run on pages
# Usage: scripts/node-tools.sh   (prints the directory; needs node and npm)
set -euo pipefail
dir="${NODE_TOOLS:-$HOME/.cache/gatehouse/node}"
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name":"gatehouse-test-tools","private":true}' > "$dir/package.json"
want="9.13.3"
have="$(node -e "try{console.log(require('$dir/node_modules/oidc-provider/package.json').version)}catch(e){}" 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  (cd "$dir" && npm install --no-audit --no-fund --silent --save-exact "oidc-provider@$want" >&2)
fi
want_axe="4.14.1"
have_axe="$(node -e "try{console.log(require('$dir/node_modules/axe-core/package.json').version)}catch(e){}" 2>/dev/null || true)"
if [ "$have_axe" != "$want_axe" ]; then
  (cd "$dir" && npm install --no-audit --no-fund --silent --save-exact "axe-core@$want_axe" >&2)
fi
echo "$dir"
