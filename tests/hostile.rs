//! Hostile file systems on the real binary: a writer rotating every few milliseconds,
//! a log folder that disappears and comes back, an unreadable file, and a
//! file-descriptor limit below the number of files. Exact, never doubled, never a
//! false rotation.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

fn rotations(m: &str) -> f64 {
    sample(m, "jans_exporter_log_rotations_total")
}

/// A log4j-style writer renaming the live file every few milliseconds: every record
/// counted exactly once.
#[test]
fn a_writer_rotating_every_few_milliseconds_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = LogWriter::named(dir.path(), "jans-auth_audit.log", 41);
    let config = write_config(dir.path(), &[dir.path().join("jans-auth_audit*.log")], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    for i in 0..300 {
        writer.write_paced(6, 2, Duration::from_millis(1));
        writer.rotate_to(&format!("jans-auth_audit-2026-12-02-{i}.log"));
    }
    writer.write(5);
    let m = wait_for_records(&exporter, writer.truth.records);
    assert_exact(&m, &writer.truth);
    // A file renamed before any poll saw it under the live name is first seen under
    // its rotated name: not every rename is seen as one.
    assert!(rotations(&m) <= 300.0, "{m}");
}

/// The folder of the logs is renamed away for longer than a file's grace period and
/// back: no file is closed and re-read from the start.
#[test]
fn a_log_folder_that_disappears_and_returns_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut writers: Vec<LogWriter> = (0..100)
        .map(|i| LogWriter::named(&logs, &format!("jans-auth_audit-{i}.log"), i))
        .collect();
    for w in &mut writers {
        w.write(3);
    }
    let config = write_config(dir.path(), &[logs.join("jans-auth_audit*.log")], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let total = |ws: &[LogWriter]| ws.iter().map(|w| w.truth.records).sum::<u64>();
    wait_for_records(&exporter, total(&writers));
    let away = dir.path().join("logs.away");
    std::fs::rename(&logs, &away).unwrap();
    // The exporter sees the folder gone (the pattern matches nothing) ...
    let pattern = format!(
        "jans_exporter_log_pattern_files{{pattern=\"{}\"}}",
        logs.join("jans-auth_audit*.log").display()
    );
    let gone = wait_for(Duration::from_secs(10), || {
        (sample(&exporter.metrics(), &pattern) == 0.0).then_some(())
    });
    assert!(gone.is_some(), "{}", exporter.metrics());
    // ... and closes nothing in a second of polls (20 at 50 ms; the grace is 2).
    let closed = wait_for(Duration::from_secs(1), || {
        exporter
            .log_text()
            .contains("stopped following log file")
            .then_some(())
    });
    assert!(closed.is_none(), "{}", exporter.log_text());
    std::fs::rename(&away, &logs).unwrap();
    for w in &mut writers {
        w.write(1);
    }
    let mut truth = writers[0].truth.clone();
    for w in &writers[1..] {
        truth.merge(&w.truth);
    }
    let m = wait_for_records(&exporter, truth.records);
    assert_exact(&m, &truth);
    assert_eq!(rotations(&m), 0.0);
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A file the exporter may not read is named in a WARN and counted in a gauge; the
/// readable ones next to it are read exactly, and `/readyz` keeps its meaning.
#[test]
fn an_unreadable_file_is_counted_and_said_and_its_neighbours_read() {
    // Root reads a mode-000 file anyway: run the exporter as nobody then.
    let wrapper: &[&str] = if running_as_root() {
        if !require_tool("setpriv") {
            return;
        }
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
    } else {
        &[]
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut readable = LogWriter::named(dir.path(), "jans-auth_audit-1.log", 7);
    readable.write(9);
    let mut locked = LogWriter::named(dir.path(), "jans-auth_audit-2.log", 8);
    locked.write(4);
    std::fs::set_permissions(&readable.live, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(locked.live.clone(), std::fs::Permissions::from_mode(0o000)).unwrap();
    let config = write_config(dir.path(), &[dir.path().join("jans-auth_audit*.log")], "");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exporter = Exporter::start_under(wrapper, &config, &[], &[]);
    exporter.wait_ready();
    let m = wait_for_records(&exporter, readable.truth.records);
    assert_exact(&m, &readable.truth);
    assert_eq!(sample(&m, "jans_exporter_log_files_unreadable"), 1.0, "{m}");
    let log = exporter.log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("cannot open log file")
            && l.contains("jans-auth_audit-2.log")),
        "{log}"
    );
}

/// More files than the file-descriptor limit allows: the rest wait, counted, and
/// `/readyz` says why; no false rotation, nothing read twice, HTTP still answers.
#[test]
fn a_file_descriptor_limit_below_the_file_count_is_said_and_doubles_nothing() {
    if !require_tool("prlimit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut writers: Vec<LogWriter> = (0..100)
        .map(|i| LogWriter::named(dir.path(), &format!("jans-auth_audit-{i}.log"), 100 + i))
        .collect();
    for w in &mut writers {
        w.write(2);
    }
    let config = write_config(dir.path(), &[dir.path().join("jans-auth_audit*.log")], "");
    // 128 descriptors: three quarters less a reserve of 32 is 64 files.
    let exporter = Exporter::start_under(&["prlimit", "--nofile=128:128"], &config, &[], &[]);
    let said = wait_for(Duration::from_secs(20), || {
        let r = exporter.get("/readyz", &[]);
        (r.status == 503 && r.text().contains("file-descriptor limit")).then(|| r.text())
    });
    assert!(said.is_some(), "{}", exporter.log_text());
    let m = wait_for_records(&exporter, 64 * 2);
    assert_eq!(sample(&m, "jans_exporter_log_files"), 64.0, "{m}");
    assert_eq!(sample(&m, "jans_exporter_log_files_over_fd_limit"), 36.0);
    // A second of polls later: still no rotation, nothing read twice.
    let moved = wait_for(Duration::from_secs(1), || {
        let m = exporter.metrics();
        (rotations(&m) > 0.0 || family_sum(&m, "jans_audit_events_total") > 128.0).then_some(m)
    });
    assert!(moved.is_none(), "{moved:?}");
    assert!(exporter
        .log_text()
        .contains("more log files match than the file-descriptor limit allows"));
}

/// 200 connections that send nothing and 200 authorized POSTs that promise a body and
/// never send it, all held open: `/metrics` still answers within a second and a valid
/// stat call within two.
#[test]
fn idle_sockets_and_stalled_bodies_never_keep_scrapes_or_callers_out() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let line = hash_token("pressure-token");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, line).unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let config = write_config(
        dir.path(),
        &[log],
        &format!(
            "[api]\nstatic_tokens_file = {:?}\n",
            tokens.display().to_string()
        ),
    );
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(std::net::TcpStream::connect(exporter.addr).unwrap());
    }
    for _ in 0..200 {
        let mut c = std::net::TcpStream::connect(exporter.addr).unwrap();
        c.write_all(b"POST /jans-auth/restv1/internal/stat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pressure-token\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nmonth=")
            .unwrap();
        held.push(c);
    }
    // A client that gives up after `limit`, as Prometheus does at its scrape timeout.
    let within = |path: &str, headers: &str, limit: Duration| -> String {
        let mut c = std::net::TcpStream::connect_timeout(&exporter.addr, limit).unwrap();
        c.set_read_timeout(Some(limit)).unwrap();
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    for round in 0..3 {
        let m = within("/metrics", "", Duration::from_secs(1));
        assert!(
            m.starts_with("HTTP/1.1 200"),
            "round {round}: /metrics: {m:?}"
        );
        let month = chrono::Utc::now().format("%Y%m");
        let s = within(
            &format!("/jans-auth/restv1/internal/stat?month={month}"),
            "Authorization: Bearer pressure-token\r\n",
            Duration::from_secs(2),
        );
        assert!(s.starts_with("HTTP/1.1 200"), "round {round}: stat: {s:?}");
    }
    drop(held);
}

/// `**` over folders with two looping symlinks: discovery ends, `/readyz` says ready,
/// the logs (one reached through a symlinked folder) are read exactly once.
#[test]
fn double_star_over_looping_symlinks_finishes_and_counts_once() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("logs");
    std::fs::create_dir_all(root.join("pod/a")).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    symlink(dir.path().join("elsewhere"), root.join("pod/linked")).unwrap();
    symlink("..", root.join("pod/a/up")).unwrap();
    symlink("../../pod", root.join("pod/a/loop")).unwrap();
    let mut a = LogWriter::named(&root.join("pod/a"), "jans-auth_audit.log", 51);
    let mut b = LogWriter::named(&dir.path().join("elsewhere"), "jans-auth_audit.log", 52);
    a.write(7);
    b.write(5);
    let config = write_config(dir.path(), &[root.join("**/jans-auth_audit*.log")], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let mut truth = a.truth.clone();
    truth.merge(&b.truth);
    let m = wait_for_records(&exporter, truth.records);
    assert_exact(&m, &truth);
    assert_eq!(sample(&m, "jans_exporter_log_files"), 2.0);
}

/// Two audit logs with `records` each, followed by a running exporter, and a raw
/// append handle on the first for writing lines no generator would.
fn two_logs_followed(
    dir: &std::path::Path,
    seed: u64,
    records: usize,
) -> (LogWriter, LogWriter, Exporter, std::fs::File) {
    let mut a = LogWriter::named(dir, "jans-auth_audit-a.log", seed);
    let mut b = LogWriter::named(dir, "jans-auth_audit-b.log", seed + 1);
    a.write(records);
    b.write(records);
    let config = write_config(dir, &[dir.join("jans-auth_audit*.log")], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let raw = std::fs::OpenOptions::new()
        .append(true)
        .open(&a.live)
        .unwrap();
    (a, b, exporter, raw)
}

/// A 100 MB line that opens a JSON string and never closes it: memory stays bounded
/// (the record bound is 1 MiB), it is counted as oversize, and the records after it and
/// in the other file count.
#[test]
fn a_hundred_megabyte_string_costs_no_memory_and_no_neighbour() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, exporter, mut raw) = two_logs_followed(dir.path(), 61, 3);
    raw.write_all(b"2026-12-02 10:00:00,000 INFO  [m] [t]  [io.jans.as.server.audit.ApplicationAuditLogger] (A.java:1) - {\"action\" : \"")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        raw.write_all(&chunk).unwrap();
        b.write(1);
    }
    raw.write_all(b"\n").unwrap();
    a.write(4);
    let mut truth = a.truth.clone();
    truth.merge(&b.truth);
    let m = wait_for_records(&exporter, truth.records);
    // The oversize line is the one parse error; everything else is exact.
    assert_eq!(
        family_sum(&m, "jans_exporter_parse_errors_total"),
        1.0,
        "{m}"
    );
    assert_eq!(
        family_sum(&m, "jans_audit_events_total") as u64,
        truth.records
    );
    let peak = exporter.peak_rss_bytes();
    eprintln!("peak RSS after a 100 MB string line: {} KiB", peak / 1024);
    assert!(peak < 64 << 20, "peak RSS {peak} bytes");
}

/// 30 MB of spaces without a newline in one file: the records written to another file
/// meanwhile still appear within two seconds each.
#[test]
fn a_thirty_megabyte_blank_line_stalls_no_other_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, exporter, mut raw) = two_logs_followed(dir.path(), 71, 2);
    let spaces = vec![b' '; 1 << 20];
    for step in 0..30 {
        raw.write_all(&spaces).unwrap();
        b.write(1);
        let want = a.truth.records + b.truth.records;
        let seen = wait_for(Duration::from_secs(2), || {
            (family_sum(&exporter.metrics(), "jans_audit_events_total") as u64 >= want)
                .then_some(())
        });
        assert!(seen.is_some(), "step {step}: {}", exporter.metrics());
    }
    raw.write_all(b"\n").unwrap();
    a.write(2);
    let mut truth = a.truth.clone();
    truth.merge(&b.truth);
    let m = wait_for_records(&exporter, truth.records);
    assert_exact(&m, &truth);
}
