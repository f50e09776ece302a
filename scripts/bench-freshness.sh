#!/usr/bin/env bash
# Freshness: how long a record written to a followed log takes to show in /metrics,
# with file events (logs.watch = true) and with the poll alone, and the idle CPU of
# each. Writes SAMPLES records one at a time (default 50), each after the previous one
# is seen, polling /metrics every millisecond.
#
#   scripts/bench-freshness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin jans-exporter --example generate_audit_log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/examples/generate_audit_log --records "${SAMPLES:-50}" --seed 9 > "$work/records.log"

python3 - "$work" <<'PY'
import os, re, subprocess, sys, time, urllib.request, statistics
work = sys.argv[1]
records = []
with open(f"{work}/records.log", "rb") as f:
    text = f.read()
# One record per write: each starts at a line with a timestamp.
starts = [m.start() for m in re.finditer(rb"(?m)^\d{4}-\d\d-\d\d ", text)] + [len(text)]
records = [text[a:b] for a, b in zip(starts, starts[1:])]
ticks = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks

def seen(port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith("jans_audit_events_total{"))

for watch in ("true", "false"):
    d = f"{work}/{watch}"
    os.makedirs(d)
    log = f"{d}/jans-auth_audit.log"
    open(log, "wb").close()
    with open(f"{d}/config.toml", "w") as c:
        c.write(f'[server]\nlisten = "127.0.0.1:0"\n[logs]\npaths = ["{d}/jans-auth_audit*.log"]\nwatch = {watch}\n[state]\ndir = "{d}/state"\n')
    p = subprocess.Popen(["./target/release/jans-exporter", "--config", f"{d}/config.toml", "run"], stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"addr=127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1)); break
    time.sleep(1)
    c0, t0 = cpu(p.pid), time.monotonic()
    time.sleep(10)
    idle = (cpu(p.pid) - c0) / (time.monotonic() - t0) * 100
    lat = []
    with open(log, "ab", buffering=0) as out:
        for i, r in enumerate(records):
            out.write(r)
            t = time.monotonic()
            while seen(port) < i + 1:
                time.sleep(0.001)
            lat.append((time.monotonic() - t) * 1000)
    p.terminate(); p.wait(timeout=10)
    lat.sort()
    print(f"watch={watch:5}  median {statistics.median(lat):6.1f} ms  p90 {lat[int(len(lat) * 0.9)]:6.1f} ms  max {lat[-1]:6.1f} ms  idle CPU {idle:.2f} % of a core  ({len(lat)} records)")
PY
