#!/usr/bin/env bash
# Whole-process ingest benchmark: generates a text-layout audit log (default 1M
# records spread over 13 months, 200k users, so every monthly sketch is dense), then
# reports `jans-exporter replay` records/s and peak RSS and, when mtail is installed,
# mtail's time to count actions on the same file, side by side.
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
./target/release/examples/generate_audit_log --records "$records" --users 200000 --gap-ms "$gap_ms" \
  --start 2025-10-01T00:00:00Z > "$work/audit.log"
bytes=$(stat -c %s "$work/audit.log")

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

read -r secs rss rc < <(measure "$work/exporter.prom" ./target/release/jans-exporter --config config/jans-exporter.toml replay "$work/audit.log")
[ "$rc" = 0 ] || { echo "replay failed" >&2; exit 1; }
counted=$(awk '/^jans_exporter_records_total/ {s += $2} END {print s}' "$work/exporter.prom")
[ "$counted" = "$records" ] || { echo "replay counted $counted of $records records" >&2; exit 1; }
months=$(grep -c '^jans_monthly_active_users{' "$work/exporter.prom")
printf '%-14s %12s %14s %12s\n' tool seconds records/s peak_rss_MiB
printf '%-14s %12s %14.0f %12.1f\n' jans-exporter "$secs" "$(echo "$records / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)"

if command -v mtail >/dev/null; then
  mkdir -p "$work/progs"
  cat > "$work/progs/audit.mtail" <<'MTAIL'
counter jans_audit_events_total by action
/"action" : "(?P<action>[A-Z_]+)"/ {
  jans_audit_events_total[$action]++
}
MTAIL
  read -r msecs mrss mrc < <(measure "$work/mtail.prom" mtail --one_shot --one_shot_format=prometheus --logtostderr \
    --progs "$work/progs" --logs "$work/audit.log")
  [ "$mrc" = 0 ] || { echo "mtail failed" >&2; exit 1; }
  mcounted=$(awk '/^jans_audit_events_total\{/ {s += $2} END {print s}' "$work/mtail.prom")
  printf '%-14s %12s %14.0f %12.1f\n' mtail "$msecs" "$(echo "$records / $msecs" | bc -l)" "$(echo "$mrss / 1024" | bc -l)"
  echo "mtail counted $mcounted actions; jans-exporter is $(echo "$msecs / $secs" | bc -l | xargs printf '%.1f')x faster"
else
  echo "mtail not installed (apt-get install mtail) - skipped"
fi
echo "input: $records records, $bytes bytes, $months monthly sketches"
