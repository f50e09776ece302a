#!/usr/bin/env bash
# Peak RSS of the durable snapshot at its largest: `sketch.precision = 18` and 13
# retained months, every monthly sketch dense. Ingests a generated log once (run 1),
# then starts again on that snapshot and stops (run 2: load + one save and nothing
# else), and reports each run's peak RSS and the snapshot's size.
#
#   scripts/bench-state.sh            # RECORDS=2600000 USERS=2000000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-2600000}
users=${USERS:-2000000}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $work" >&2 || trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin jans-exporter --example generate_audit_log
# From the first day of the oldest retained month to a day ago.
start=$(date -u -d "$(date -u +%Y-%m-01) -12 months" +%Y-%m-%dT00:00:00Z)
span_ms=$(( ($(date -u +%s) - $(date -u -d "$start" +%s) - 86400) * 1000 ))
./target/release/examples/generate_audit_log --records "$records" --users "$users" \
  --gap-ms $(( span_ms / records )) --start "$start" > "$work/audit.log"
cat > "$work/config.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[logs]
paths = ["$work/audit.log"]
[state]
dir = "$work/state"
flush_interval = "1h"
[sketch]
precision = 18
retain_months = 13
TOML

# Runs the exporter until it has counted every record, stops it with SIGTERM (the
# final save), prints "retained_months peak_rss_kib". The peak is the kernel's VmHWM
# for the exporter's own address space, read until it exits: RUSAGE_CHILDREN would
# include Python's own ~14 MiB from before the exec.
cat > "$work/run.py" <<'PY'
import re, subprocess, sys, time, urllib.request
work, records = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen(["./target/release/jans-exporter", "--config", f"{work}/config.toml", "run"],
                     stderr=subprocess.PIPE, text=True)
addr = None
for line in p.stderr:
    m = re.search(r"addr=(\S+)", line)
    if m:
        addr = m.group(1)
        break
deadline = time.monotonic() + 600
while True:
    if time.monotonic() > deadline:
        p.kill()
        sys.exit("timed out")
    try:
        body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
        ready = urllib.request.urlopen(f"http://{addr}/readyz", timeout=5).status == 200
    except Exception:
        body, ready = "", False
    counted = sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
                  if l.startswith("jans_exporter_records_total"))
    if ready and counted >= records:
        break
    time.sleep(0.2)
def hwm():
    try:
        with open(f"/proc/{p.pid}/status") as f:
            return max([int(l.split()[1]) for l in f if l.startswith("VmHWM:")] or [0])
    except OSError:
        return 0
peak = hwm()
p.terminate()
while p.poll() is None:
    peak = max(peak, hwm())
assert p.returncode == 0, "exit status"
months = len([l for l in body.splitlines() if l.startswith("jans_monthly_active_users{")])
print(months, peak)
PY
read -r months rss1 < <(python3 "$work/run.py" "$work" "$records")
size=$(stat -c %s "$work/state/state.json")
read -r _ rss2 < <(python3 "$work/run.py" "$work" "$records")
printf 'precision 18, %s retained months, snapshot %.1f MiB\n' "$months" "$(echo "$size / 1048576" | bc -l)"
printf 'run 1 (ingest %s records, save):  peak RSS %.1f MiB\n' "$records" "$(echo "$rss1 / 1024" | bc -l)"
printf 'run 2 (load the snapshot, save): peak RSS %.1f MiB\n' "$(echo "$rss2 / 1024" | bc -l)"
