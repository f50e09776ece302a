#!/usr/bin/env bash
# Validates every Kubernetes manifest we ship, offline: core kinds with
# kubernetes-validate --strict (PyPI, pinned in tests/schema/requirements.txt; unknown
# fields are errors), prometheus-operator kinds against the operator's CRD schemas
# (npm, pinned in tests/schema/package-lock.json), and the Helm post-renderer's output
# over tests/fixtures/helm/janssen-rendered.yaml.
#
#   scripts/validate-manifests.sh            # everything we ship
#   scripts/validate-manifests.sh FILE...    # these files only
#
# The validators are installed once under target/schema/ from the package registries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools=target/schema
mkdir -p "$tools"

if ! cmp -s tests/schema/requirements.txt "$tools/venv/requirements.txt" 2>/dev/null; then
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check -r tests/schema/requirements.txt
  cp tests/schema/requirements.txt "$tools/venv/requirements.txt"
fi
if ! cmp -s tests/schema/package-lock.json "$tools/node/package-lock.json" 2>/dev/null; then
  rm -rf "$tools/node"
  mkdir -p "$tools/node"
  cp tests/schema/package.json tests/schema/package-lock.json tests/schema/validate-crds.mjs "$tools/node/"
  (cd "$tools/node" && npm ci --silent --no-audit --no-fund >/dev/null)
fi
cp tests/schema/validate-crds.mjs "$tools/node/"

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(examples/kubernetes/*.yaml examples/helm/podmonitor.yaml)
  rendered="$tools/helm-rendered.yaml"
  sh examples/helm/post-render.sh < tests/fixtures/helm/janssen-rendered.yaml > "$rendered"
  files+=("$rendered")
fi

# Core kinds: kubernetes-validate, strict. It only warns on kinds it has no schema
# for; those must be the operator's, which are checked next.
status=0
"$tools/venv/bin/kubernetes-validate" --strict "${files[@]}" > "$tools/core.out" 2>&1 || status=1
grep -v "Couldn't find schema for kind \(PodMonitor\|PrometheusRule\|ServiceMonitor\) with api version monitoring.coreos.com/v1" "$tools/core.out" || true
if grep -v "^INFO" "$tools/core.out" | grep -qv "Couldn't find schema for kind \(PodMonitor\|PrometheusRule\|ServiceMonitor\) with api version monitoring.coreos.com/v1"; then
  status=1
fi
node "$tools/node/validate-crds.mjs" "${files[@]}" || status=1
exit "$status"
