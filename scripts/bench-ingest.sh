#!/usr/bin/env bash
# Whole-process ingest benchmark, both audit layouts and the server log side by side:
# generates a text-layout and a log4j JSON-layout audit log (default 1M records each,
# spread over 13 months, 200k users, so every monthly sketch is dense) and a server log
# (`jans-auth.log` of whole flows, about as many events), then reports for each
# `cat > /dev/null`, `jans-exporter replay` with one thread and with every core
# (logs.backfill_threads; best of RUNS each, 3 by default, alternating), with one thread and a cluster configured (every active user
# also goes into the Redis-compatible registers; replay never dials Redis; the best of
# three runs alternating with the plain one, and the difference), and, when installed, `mtail --one_shot` counting actions on
# the same file (for the server log: lines by level and Authenticator outcomes):
# seconds, records/s, MB/s, peak RSS, the fraction of cat's speed and the ratio to
# mtail. Every replay must count every record.
#
#   scripts/bench-ingest.sh            # RECORDS=1000000 by default
#   RECORDS=200000 scripts/bench-ingest.sh
#   RUNS=7 scripts/bench-ingest.sh     # best of 7 per thread count: steadier on a noisy VM
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-1000000}
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin jans-exporter --example generate_audit_log --example generate_flows
# 13 months = 1.12e12 ms; mean gap = that / records.
gap_ms=$(( 13 * 30 * 86400 * 1000 / records ))
cores=$(nproc)

# Runs a command, prints "seconds peak_rss_kib rc". The peak is the command's own
# maximum RSS as GNU time reports it: its forked child is a copy of that small C
# program, not of Python's ~14 MiB interpreter (which RUSAGE_CHILDREN would count).
# Without GNU time, the kernel's VmHWM is polled every 2 ms instead, which takes
# a little CPU from a run on every core.
measure() {
  python3 - "$@" <<'PY'
import os, subprocess, sys, tempfile, time
out_path, cmd = sys.argv[1], sys.argv[2:]
gnu_time = "/usr/bin/time"
with open(out_path, "wb") as out:
    if os.access(gnu_time, os.X_OK):
        with tempfile.NamedTemporaryFile("r") as rss_file:
            start = time.monotonic()
            p = subprocess.run([gnu_time, "-f", "%M", "-o", rss_file.name, *cmd],
                               stdout=out, stderr=subprocess.DEVNULL)
            elapsed = time.monotonic() - start
            rss = int((rss_file.read().split() or ["0"])[-1])
    else:
        def hwm(pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    return max([int(l.split()[1]) for l in f if l.startswith("VmHWM:")] or [0])
            except OSError:
                return 0
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
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
mkdir -p "$work/server-progs"
# The server log: every event by level, and the Authenticator's outcomes.
cat > "$work/server-progs/server.mtail" <<'MTAIL'
counter jans_server_log_messages_total by level
counter jans_authentications_total by outcome
/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) / {
  jans_server_log_messages_total[$level]++
}
/\[io\.jans\.as\.server\.auth\.Authenticator\] \(.*\) - Authentication (?P<outcome>success|failed) for / {
  jans_authentications_total[$outcome]++
}
MTAIL

row() { # tool seconds rss_kib
  printf '%-8s %-22s %9s %12.0f %9.0f %9.1f %8.3f\n' "$layout" "$1" "$2" "$(echo "$records / $2" | bc -l)" \
    "$(echo "$bytes / $2 / 1000000" | bc -l)" "$(echo "$3 / 1024" | bc -l)" "$(echo "$cat_secs / $2" | bc -l)"
}

# mtail on the same log, and the exporter's one-thread and every-core ratios to it.
mtail_row() {
  if command -v mtail >/dev/null; then
    read -r msecs mrss mrc < <(measure "$work/mtail.prom" mtail --one_shot --one_shot_format=prometheus --logtostderr \
      --progs "$progs" --logs "$log")
    [ "$mrc" = 0 ] || { echo "mtail failed" >&2; exit 1; }
    if [ "$layout" = server ]; then
      mcounted=$(awk '/^jans_server_log_messages_total\{/ {s += $2} END {print s}' "$work/mtail.prom")
    else
      mcounted=$(awk '/^jans_audit_events_total\{/ {s += $2} END {print s}' "$work/mtail.prom")
    fi
    [ "$mcounted" = "$records" ] || { echo "mtail counted $mcounted of $records records" >&2; exit 1; }
    row mtail "$msecs" "$mrss"
    echo "$layout: one thread $(echo "$msecs / $one_thread" | bc -l | xargs printf '%.1f')x mtail, $cores threads $(echo "$msecs / $many_threads" | bc -l | xargs printf '%.1f')x"
  else
    echo "mtail not installed (apt-get install mtail) - skipped"
  fi
}

printf '%-8s %-22s %9s %12s %9s %9s %8s\n' layout tool seconds records/s MB/s peak_MiB of_cat
audit_records=$records
for layout in text json server; do
  if [ "$layout" = server ]; then
    # About 1.4 server-log events per flow; the generator prints how many it wrote.
    mkdir -p "$work/flows"
    truth=$(./target/release/examples/generate_flows --flows $(( audit_records * 7 / 10 )) --users 200000 \
      --gap-ms 500 --start 2025-10-01T00:00:00Z --out "$work/flows" 2>&1)
    records=$(echo "$truth" | sed -n 's/.* \([0-9]*\) server-log events.*/\1/p')
    log="$work/flows/jans-auth.log"
    rm -f "$work/flows/jans-auth_audit.log"
    progs="$work/server-progs"
  else
    records=$audit_records
    log="$work/audit-$layout.log"
    ./target/release/examples/generate_audit_log --records "$records" --users 200000 --gap-ms "$gap_ms" \
      --start 2025-10-01T00:00:00Z --layout "$layout" > "$log"
    progs="$work/progs"
  fi
  bytes=$(stat -c %s "$log")
  cat "$log" > /dev/null
  read -r cat_secs cat_rss _ < <(measure /dev/null cat "$log")
  row cat "$cat_secs" "$cat_rss"
  # Best of $runs, one thread and every core alternating so that both see the same
  # machine (a shared VM's wall clock moves by tens of percent between runs); the peak
  # RSS is the largest of them.
  thread_counts=1
  [ "$cores" = 1 ] || thread_counts="1 $cores"
  declare -A best=() peak=() times=()
  for _ in $(seq "$runs"); do
    for threads in $thread_counts; do
      read -r secs rss rc < <(measure "$work/exporter.prom" env JANS_EXPORTER_LOGS__BACKFILL_THREADS="$threads" \
        ./target/release/jans-exporter --config config/jans-exporter.toml replay "$log")
      [ "$rc" = 0 ] || { echo "replay failed" >&2; exit 1; }
      counted=$(awk '/^jans_exporter_records_total/ {s += $2} END {print s}' "$work/exporter.prom")
      [ "$counted" = "$records" ] || { echo "replay counted $counted of $records records" >&2; exit 1; }
      if [ -z "${best[$threads]:-}" ] || [ "$(echo "$secs < ${best[$threads]}" | bc)" = 1 ]; then best[$threads]=$secs; fi
      times[$threads]+="$secs "
      if [ -z "${peak[$threads]:-}" ] || [ "$rss" -gt "${peak[$threads]}" ]; then peak[$threads]=$rss; fi
    done
  done
  for threads in $thread_counts; do
    row "jans-exporter x$threads" "${best[$threads]}" "${peak[$threads]}"
  done
  one_thread=${best[1]} many_threads=${best[$cores]}
  median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
  one_median=$(median "${times[1]}") many_median=$(median "${times[$cores]}")
  echo "$layout: $cores threads $(echo "$one_thread / $many_threads" | bc -l | xargs printf '%.2f')x one thread (best of $runs each); medians $one_median s and $many_median s: $(echo "$one_median / $many_median" | bc -l | xargs printf '%.2f')x"
  if [ "$layout" = server ]; then
    mtail_row
    rm -rf "$work/flows"
    continue
  fi
  # The cluster's registers on the ingest path: best of three, alternating with the
  # plain one-thread replay so that both see the same machine.
  best_plain=$one_thread best_cluster=
  for _ in 1 2 3; do
    read -r secs rss rc < <(measure "$work/cluster.prom" env JANS_EXPORTER_LOGS__BACKFILL_THREADS=1 \
      JANS_EXPORTER_CLUSTER__REDIS_URL=redis://127.0.0.1:1 \
      ./target/release/jans-exporter --config config/jans-exporter.toml replay "$log")
    [ "$rc" = 0 ] || { echo "replay with a cluster failed" >&2; exit 1; }
    if [ -z "$best_cluster" ] || [ "$(echo "$secs < $best_cluster" | bc)" = 1 ]; then best_cluster=$secs cluster_rss=$rss; fi
    read -r secs _ _ < <(measure "$work/exporter.prom" env JANS_EXPORTER_LOGS__BACKFILL_THREADS=1 \
      ./target/release/jans-exporter --config config/jans-exporter.toml replay "$log")
    [ "$(echo "$secs < $best_plain" | bc)" = 1 ] && best_plain=$secs
  done
  counted=$(awk '/^jans_exporter_records_total/ {s += $2} END {print s}' "$work/cluster.prom")
  [ "$counted" = "$records" ] || { echo "replay with a cluster counted $counted of $records records" >&2; exit 1; }
  row "jans-exporter x1 cluster" "$best_cluster" "$cluster_rss"
  echo "$layout: a cluster configured costs $(echo "($best_cluster / $best_plain - 1) * 100" | bc -l | xargs printf '%+.1f') % of one-thread replay time (best of 3: $best_cluster s against $best_plain s)"
  # Wall-clock time on a shared machine moves by more than that; instructions do not.
  # Records of the last day, so that each active user reaches the day, week and month
  # registers, as on the live tail.
  if command -v valgrind >/dev/null; then
    live="$work/live-$layout.log"
    ./target/release/examples/generate_audit_log --records 200000 --users 200000 --gap-ms 300 \
      --start "$(date -u -d '-20 hours' +%Y-%m-%dT%H:%M:%SZ)" --layout "$layout" > "$live"
    instructions() {
      env "$@" JANS_EXPORTER_LOGS__BACKFILL_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        ./target/release/jans-exporter --config config/jans-exporter.toml replay "$live" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    }
    plain_ir=$(instructions JANSX_BENCH=plain)
    cluster_ir=$(instructions JANS_EXPORTER_CLUSTER__REDIS_URL=redis://127.0.0.1:1)
    echo "$layout: a cluster configured costs $(echo "($cluster_ir / $plain_ir - 1) * 100" | bc -l | xargs printf '%+.1f') % instructions (callgrind, 200k records of the last day: $cluster_ir against $plain_ir)"
    rm -f "$live"
  fi
  mtail_row
  rm -f "$log"
done
