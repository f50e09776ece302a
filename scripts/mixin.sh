#!/usr/bin/env bash
# Renders the monitoring mixin (mixin/) into alerts/, dashboards/ and the Kubernetes
# objects built from them, or checks that they match (what tests/mixin.rs runs).
#
#   scripts/mixin.sh generate
#   scripts/mixin.sh check
#
# The jsonnet evaluator (PyPI, pinned in mixin/requirements.txt) is installed once
# under target/mixin/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/mixin/venv"
if ! cmp -s "$root/mixin/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/mixin/requirements.txt"
  cp "$root/mixin/requirements.txt" "$venv/requirements.txt"
fi
exec "$venv/bin/python" "$root/scripts/mixin.py" "${1:-check}"
