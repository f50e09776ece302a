#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit and integration tests (which
# start the real binary), promtool on a real scrape and on the alert rules, the
# end-to-end test with real Prometheus and Alertmanager, and every fuzz target for 30 s
# (FUZZ_SECONDS). Installs Prometheus's tools and redis-server (the cluster tests) from
# Debian's packages when missing and running as root, and cargo-fuzz from crates.io.
# Each phase prints the seconds since the start.
set -euo pipefail
cd "$(dirname "$0")/.."

phase() { echo "== $* (at ${SECONDS} s)"; }

missing=""
for tool in promtool prometheus prometheus-alertmanager amtool redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    phase "installing prometheus tools and redis-server (Debian packages)"
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

phase "cargo fmt --check"
cargo fmt --all -- --check

# The fuzz targets (cargo-fuzz's install and the nightly, instrumented build: minutes
# of CPU) build from here on at the lowest priority, on what clippy, the test build and
# the tests leave idle: the tests mostly wait on the processes they start. It is not
# free on 2 vCPUs (the test build took 345 s beside it against 244-267 s alone), but
# the whole run took 1095 s against 1137-1151 s with the build started with the tests. Built
# at normal priority beside clippy and the test build instead, everything took as
# long (the builds keep both cores busy) and the tests started 9 minutes later. Its own process group, so that a failure stops it
# whole, but not its own session: with autogroup scheduling (Linux's default) a new
# session is a new group that gets an equal share of the CPU whatever its nice value,
# and clippy took 406 s instead of 150 s beside it.
mkdir -p target
fuzz_build_log=target/fuzz-build.log
set -m
nice -n 19 scripts/fuzz.sh --build-only > "$fuzz_build_log" 2>&1 &
fuzz_build=$!
set +m
trap 'kill -- -"$fuzz_build" 2>/dev/null || true' EXIT

phase "cargo clippy (fuzz targets building at nice 19 beside it and the tests: $fuzz_build_log)"
cargo clippy --all-targets --locked -- -D warnings
phase "cargo test: build"
cargo test --all-targets --locked --no-run

phase "cargo test: run"
cargo test --all-targets --locked

phase "fuzz targets: waiting for their build"
if ! wait "$fuzz_build"; then
  tail -40 "$fuzz_build_log" >&2
  echo "the fuzz targets failed to build (full output: $fuzz_build_log)" >&2
  exit 1
fi
trap - EXIT
phase "fuzz (each target ${FUZZ_SECONDS:-30} s)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
phase "all passed"
