#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, cargo-fuzz with libFuzzer on the nightly toolchain),
# each for SECONDS (default 30), from a seed corpus: the committed seeds in
# fuzz/seeds/<target>/ plus logs our own generators write (both audit layouts and the
# server log, as whole flows). A finding stops the run and is kept under
# fuzz/artifacts/<target>/; the corpus grows under target/fuzz-corpus/.
#
#   scripts/fuzz.sh                 # every target, 30 s each
#   scripts/fuzz.sh 600 framer_splits
#   scripts/fuzz.sh --build-only    # install cargo-fuzz and build every target, run none
#
# libFuzzer uses one core, so FUZZ_JOBS targets (default: one per core) run at once,
# each in its own session, so that a finding stops the others with their fuzzers.
#
# SANITIZER (default none: the crate has no unsafe code of its own, and building the
# dependency tree's C with AddressSanitizer costs minutes) is passed to cargo fuzz;
# SANITIZER=address for the long runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install --locked cargo-fuzz >/dev/null
fi

if [ "${1:-}" = "--build-only" ]; then
  # The same flags as `cargo fuzz run` below, so that it finds every target built.
  exec cargo +nightly fuzz build --sanitizer "${SANITIZER:-none}"
fi

seconds=${1:-30}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(framer_splits one_pass record_parsers snapshot_decode stat_query upstream_json)
fi

corpus=target/fuzz-corpus
gen=target/fuzz-seeds
if [ ! -f "$gen/done" ]; then
  echo "== generating seeds"
  rm -rf "$gen"
  mkdir -p "$gen/flows-text" "$gen/flows-json"
  cargo run -q --example generate_audit_log -- --records 40 --layout text --seed 3 > "$gen/audit-text.log"
  cargo run -q --example generate_audit_log -- --records 40 --layout json --seed 4 > "$gen/audit-json.log"
  cargo run -q --example generate_flows -- --flows 15 --layout text --seed 5 --out "$gen/flows-text" > /dev/null
  cargo run -q --example generate_flows -- --flows 15 --layout json --seed 6 --out "$gen/flows-json" > /dev/null
  touch "$gen/done"
fi

for t in "${targets[@]}"; do
  dir="$corpus/$t"
  mkdir -p "$dir"
  if [ -d "fuzz/seeds/$t" ]; then
    cp -n fuzz/seeds/"$t"/* "$dir"/ 2>/dev/null || true
  fi
  case "$t" in
    framer_splits)
      # Selector byte (format: 0 text, 1 JSON, 2 server log, 3 detect), two bytes of
      # cut point, then a stream.
      i=0
      for f in "$gen"/audit-text.log "$gen"/audit-json.log "$gen"/flows-*/*.log; do
        for sel in 0 1 2 3; do
          { printf "\\x0$sel\\x$(printf %02x $((i * 37 % 256)))\\x01"; head -c 6000 "$f"; } > "$dir/gen-$i-$sel"
        done
        i=$((i + 1))
      done
      ;;
    one_pass)
      # Selector byte (as above), four bytes of two cut points, then a stream.
      i=0
      for f in "$gen"/audit-text.log "$gen"/audit-json.log "$gen"/flows-*/*.log; do
        for sel in 0 1 3; do
          { printf "\\x0$sel\\x$(printf %02x $((i * 37 % 256)))\\x01\\x$(printf %02x $((i * 91 % 256)))\\x07"; head -c 6000 "$f"; } > "$dir/gen-$i-$sel"
        done
        i=$((i + 1))
      done
      ;;
    record_parsers)
      i=0
      for f in "$gen"/audit-text.log "$gen"/audit-json.log "$gen"/flows-*/*.log; do
        head -n 12 "$f" | split -l 1 - "$dir/gen-$i-"
        i=$((i + 1))
      done
      ;;
  esac
done

# libFuzzer runs on one core: FUZZ_JOBS targets (default: every core) run at once.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
declare -A running=()
finish() {
  local pid=$1 status=$2 t=${running[$1]}
  unset "running[$pid]"
  echo "== fuzz $t: done"
  grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)|^Done [0-9]+ runs" "target/fuzz-$t.log" || true
  if [ "$status" -ne 0 ]; then
    # A finding: libFuzzer printed the input's path under fuzz/artifacts/.
    grep -E "panicked|ERROR|SUMMARY|Test unit written|artifact_prefix" "target/fuzz-$t.log" | head -20 >&2 || tail -40 "target/fuzz-$t.log" >&2
    echo "FINDING in $t (full output: target/fuzz-$t.log)" >&2
    for other in "${!running[@]}"; do kill -- -"$other" 2>/dev/null || true; done
    exit 1
  fi
}
wait_one() {
  local pid status=0
  wait -n -p pid "${!running[@]}" || status=$?
  finish "$pid" "$status"
}
for t in "${targets[@]}"; do
  while [ "${#running[@]}" -ge "$jobs" ]; do wait_one; done
  echo "== fuzz $t for ${seconds}s"
  setsid cargo +nightly fuzz run --sanitizer "${SANITIZER:-none}" "$t" "$corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 > "target/fuzz-$t.log" 2>&1 &
  running[$!]=$t
done
while [ "${#running[@]}" -gt 0 ]; do wait_one; done
