#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit and integration tests (which
# start the real binary), promtool on a real scrape and on the alert rules, the
# end-to-end test with real Prometheus and Alertmanager, and every fuzz target for 30 s
# (FUZZ_SECONDS). Installs Prometheus's tools and redis-server (the cluster tests) from
# Debian's packages when missing and running as root, and cargo-fuzz from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
for tool in promtool prometheus prometheus-alertmanager amtool redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing prometheus tools and redis-server (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager redis-server >/dev/null
  else
    echo "missing:$missing (apt-get install --no-install-recommends prometheus prometheus-alertmanager redis-server)" >&2
  fi
fi

# The Helm post-renderer test needs kustomize or kubectl 1.21+ (Debian's
# kubernetes-client is 1.20, too old for label-targeted patches).
if ! command -v kustomize >/dev/null 2>&1 && ! command -v kubectl >/dev/null 2>&1; then
  echo "missing: kustomize or kubectl 1.21+ (tests/helm.rs fails in CI without one)" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
echo "== fuzz (each target ${FUZZ_SECONDS:-30}s)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
