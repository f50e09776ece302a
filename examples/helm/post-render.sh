#!/bin/sh
# Helm post-renderer that adds the jans-exporter sidecar to the official Janssen chart's
# auth-server Deployment (the chart has no extra-containers value):
#
#   helm install janssen janssen/janssen -n jans -f examples/helm/values.yaml \
#     --post-renderer examples/helm/post-render.sh
#
# Reads the rendered chart on stdin and writes it back on stdout with
# sidecar-patch.yaml merged into the Deployment labelled APP_NAME=auth-server;
# everything else passes through unchanged. Needs kustomize v3.1+ or kubectl 1.21+
# (`kubectl kustomize` is built in).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
cat > "$work/chart.yaml"
cp "$here/kustomization.yaml" "$work/kustomization.yaml"
cp "$here/sidecar-patch.yaml" "$work/sidecar-patch.yaml"
if command -v kustomize >/dev/null 2>&1; then
  kustomize build "$work"
else
  kubectl kustomize "$work"
fi
