#!/usr/bin/env bash
# Installs the Python tools the tests run, at pinned versions from PyPI, into a virtualenv outside
# the clone (idempotent: nothing is downloaded when the pinned versions are there):
#   scim2-cli + scim2-tester  the SCIM compliance check (`scim2 --url URL test`)
#   scim2-server              a SCIM server for the push connector's tests
#   paramiko                  an SSH client other than OpenSSH for the gateway's tests
# Usage: scripts/python-tools.sh   (prints the virtualenv's directory)
set -euo pipefail
venv="${GATEHOUSE_PY_TOOLS:-$HOME/.cache/gatehouse/venv}"
pins=(scim2-cli==0.6.0 scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3 scim2-server==0.8.3 pydantic==2.14.4
  paramiko==4.0.0)
# Debian's python3 (not a pyenv shim): its venv module comes from the python3-venv package.
py=/usr/bin/python3
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv" >&2
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "scim2-tester==0.5.2" \
  || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "scim2-server==0.8.3" \
  || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "paramiko==4.0.0"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
fi
echo "$venv"
