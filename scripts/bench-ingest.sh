#!/usr/bin/env bash
# Whole-process ingest benchmark, both audit layouts side by side: generates a text-
# layout and a log4j JSON-layout audit log (default 1M records each, spread over 13
# months, 200k users, so every monthly sketch is dense), then reports for each layout
# `cat > /dev/null`, `jans-exporter replay` with one thread and with every core
# (logs.backfill_threads), and, when installed, `mtail --one_shot` counting actions on
# the same file: seconds, records/s, MB/s, peak RSS, the fraction of cat's speed and
# the ratio to mtail. Every replay must count every record.
#
#   scripts/bench-ingest.sh            # RECORDS=1000000 by default
#   RECORDS=200000 scripts/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin jans-exporter --example generate_audit_log
# 13 months = 1.12e12 ms; mean gap = that / records.
gap_ms=$(( 13 * 30 * 86400 * 1000 / records ))
cores=$(nproc)

# Runs a command, prints "seconds peak_rss_kib rc". The peak is the kernel's VmHWM for
# the command's own address space, read until it exits (RUSAGE_CHILDREN would include
# Python's own ~14 MiB from before the exec).
measure() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return max([int(l.split()[1]) for l in f if l.startswith("VmHWM:")] or [0])
    except OSError:
        return 0
start = time.monotonic()
with open(sys.argv[1], "wb") as out:
    p = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL)
    rss = 0
    while p.poll() is None:
        rss = max(rss, hwm(p.pid))
        time.sleep(0.002)
elapsed = time.monotonic() - start
print(f"{elapsed:.3f} {rss} {p.returncode}")
PY
}

mkdir -p "$work/progs"
# Matches the action in the text layout and inside the JSON layout's escaped message.
cat > "$work/progs/audit.mtail" <<'MTAIL'
counter jans_audit_events_total by action
/"action" : "(?P<action>[A-Z_]+)"/ {
  jans_audit_events_total[$action]++
}
/\\"action\\" : \\"(?P<action>[A-Z_]+)\\"/ {
  jans_audit_events_total[$action]++
}
MTAIL

row() { # tool seconds rss_kib
  printf '%-8s %-22s %9s %12.0f %9.0f %9.1f %8.3f\n' "$layout" "$1" "$2" "$(echo "$records / $2" | bc -l)" \
    "$(echo "$bytes / $2 / 1000000" | bc -l)" "$(echo "$3 / 1024" | bc -l)" "$(echo "$cat_secs / $2" | bc -l)"
}

printf '%-8s %-22s %9s %12s %9s %9s %8s\n' layout tool seconds records/s MB/s peak_MiB of_cat
for layout in text json; do
  log="$work/audit-$layout.log"
  ./target/release/examples/generate_audit_log --records "$records" --users 200000 --gap-ms "$gap_ms" \
    --start 2025-10-01T00:00:00Z --layout "$layout" > "$log"
  bytes=$(stat -c %s "$log")
  cat "$log" > /dev/null
  read -r cat_secs cat_rss _ < <(measure /dev/null cat "$log")
  row cat "$cat_secs" "$cat_rss"
  for threads in 1 "$cores"; do
    read -r secs rss rc < <(measure "$work/exporter.prom" env JANS_EXPORTER_LOGS__BACKFILL_THREADS="$threads" \
      ./target/release/jans-exporter --config config/jans-exporter.toml replay "$log")
    [ "$rc" = 0 ] || { echo "replay failed" >&2; exit 1; }
    counted=$(awk '/^jans_exporter_records_total/ {s += $2} END {print s}' "$work/exporter.prom")
    [ "$counted" = "$records" ] || { echo "replay counted $counted of $records records" >&2; exit 1; }
    row "jans-exporter x$threads" "$secs" "$rss"
    [ "$threads" = 1 ] && one_thread=$secs
  done
  if command -v mtail >/dev/null; then
    read -r msecs mrss mrc < <(measure "$work/mtail.prom" mtail --one_shot --one_shot_format=prometheus --logtostderr \
      --progs "$work/progs" --logs "$log")
    [ "$mrc" = 0 ] || { echo "mtail failed" >&2; exit 1; }
    mcounted=$(awk '/^jans_audit_events_total\{/ {s += $2} END {print s}' "$work/mtail.prom")
    [ "$mcounted" = "$records" ] || { echo "mtail counted $mcounted of $records records" >&2; exit 1; }
    row mtail "$msecs" "$mrss"
    echo "$layout: one thread $(echo "$msecs / $one_thread" | bc -l | xargs printf '%.1f')x mtail, $cores threads $(echo "$msecs / $secs" | bc -l | xargs printf '%.1f')x"
  else
    echo "mtail not installed (apt-get install mtail) - skipped"
  fi
  rm -f "$log"
done
