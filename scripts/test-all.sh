#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit and integration tests (which
# start the real binary), promtool on a real scrape. Installs Prometheus' tools from
# Debian's packages when missing and running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing prometheus tools (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  else
    echo "promtool missing: apt-get install --no-install-recommends prometheus prometheus-alertmanager" >&2
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
