//! The real binary, end to end: HTTP, replay, rotation under a live writer, shutdown.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use jans_exporter::generate::{write_record, Generator, Layout, Spec, Truth, DEFAULT_ACTIVE};

fn write_log(path: &Path, layout: Layout, spec: Spec, n: usize, truth: &mut Truth) {
    let mut out = Vec::new();
    for r in Generator::new(spec).take(n) {
        truth.observe(&r, &DEFAULT_ACTIVE);
        write_record(&mut out, layout, &r, 3600).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// The families that describe the process or its state file, not the input.
fn comparable(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter(|l| {
            let name = ["# HELP ", "# TYPE ", "# UNIT "]
                .iter()
                .fold(*l, |l, p| l.strip_prefix(p).unwrap_or(l));
            !name.starts_with("process_") && !name.starts_with("jans_exporter_state_")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn replay_output_equals_what_a_running_exporter_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut truth = Truth::default();
    let text = dir.path().join("audit.log");
    let json = dir.path().join("audit-json.log");
    write_log(
        &text,
        Layout::Text,
        Spec {
            seed: 3,
            ..Spec::default()
        },
        3000,
        &mut truth,
    );
    write_log(
        &json,
        Layout::Json,
        Spec {
            seed: 4,
            start_ms: 1_790_000_000_000,
            ..Spec::default()
        },
        700,
        &mut truth,
    );

    let replay = Command::new(BIN)
        .arg("replay")
        .arg(&text)
        .arg(&json)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let replayed = String::from_utf8(replay.stdout).unwrap();
    assert!(replayed.ends_with("# EOF\n"));
    assert_exact(&replayed, &truth);
    for (month, users) in &truth.monthly_users {
        let est = sample(
            &replayed,
            &format!("jans_monthly_active_users{{month=\"{month}\"}}"),
        );
        let exact = users.len() as f64;
        assert!(
            (est - exact).abs() <= (exact * 0.02).max(1.0),
            "{month}: {est} vs {exact}"
        );
    }

    let config = write_config(dir.path(), &[text, json], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    // A USER_AUTHORIZATION failure alone is an error once it waited 2 s for a twin;
    // a replay knows at its end that none is coming.
    let settled = wait_for(Duration::from_secs(15), || {
        let served = exporter.metrics();
        (comparable(&served) == comparable(&replayed)).then_some(())
    });
    if settled.is_none() {
        assert_eq!(comparable(&exporter.metrics()), comparable(&replayed));
    }
}

#[test]
fn metrics_are_negotiated_gzipped_and_the_other_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(
        &log,
        Layout::Text,
        Spec::default(),
        10,
        &mut Truth::default(),
    );
    let exporter = Exporter::start(&write_config(dir.path(), &[log], ""));
    exporter.wait_ready();

    let om = exporter.get(
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));

    let text = exporter.get("/metrics", &[]);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("# EOF") && !text.text().contains("# UNIT"));
    assert!(text
        .text()
        .contains("# TYPE jans_audit_events_total counter\n"));

    let zipped = exporter.get("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(unzipped.contains("# TYPE jans_audit_events_total counter\n"));

    assert_eq!(exporter.get("/healthz", &[]).text(), "ok\n");
    assert_eq!(exporter.get("/readyz", &[]).status, 200);
    let landing = exporter.get("/", &[]);
    assert!(
        landing.text().contains(env!("CARGO_PKG_VERSION"))
            && landing.text().contains("href=\"/metrics\"")
    );
    // Only the audit log is followed: the page says what that leaves out.
    assert!(
        landing
            .text()
            .contains("<strong>Server log (jans-auth.log): nothing read.</strong>"),
        "{}",
        landing.text()
    );
    assert_eq!(exporter.get("/nope", &[]).status, 404);
    let post = http(exporter.addr, "POST", "/metrics", &[], b"x=1").unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn sigterm_exits_zero_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    write_log(
        &log,
        Layout::Text,
        Spec::default(),
        100,
        &mut Truth::default(),
    );
    let mut exporter = Exporter::start(&write_config(dir.path(), &[log], ""));
    exporter.wait_ready();
    // An idle keep-alive connection must not hold the shutdown up.
    let _idle = std::net::TcpStream::connect(exporter.addr).unwrap();
    let status = exporter
        .terminate(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert!(status.success(), "{status:?}\n{}", exporter.log_text());
}

/// A writer appends records in several pieces each and rotates by rename and by
/// copytruncate while the exporter runs; afterwards every exact counter is exact.
#[test]
fn rotation_while_a_writer_appends_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = LogWriter::new(dir.path(), 5);
    let exporter = Exporter::start(&write_config(dir.path(), &[writer.pattern()], ""));
    for round in 0..4 {
        writer.write(1000);
        if round % 2 == 0 {
            writer.rotate_rename();
        } else {
            writer.rotate_copytruncate();
        }
    }
    writer.write(300);
    let metrics = wait_for_records(&exporter, writer.truth.records);
    assert_exact(&metrics, &writer.truth);
    assert_eq!(sample(&metrics, "jans_exporter_log_rotations_total"), 2.0);
    assert!(sample(&metrics, "jans_exporter_log_truncations_total") >= 2.0);
    for (month, users) in &writer.truth.monthly_users {
        let est = sample(
            &metrics,
            &format!("jans_monthly_active_users{{month=\"{month}\"}}"),
        );
        assert!(
            (est - users.len() as f64).abs() <= 1.0,
            "{month}: {est} vs {}",
            users.len()
        );
    }
}

#[test]
fn check_config_prints_the_effective_config_or_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[sketch]\nprecision = 16\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .env("JANS_EXPORTER_SERVER__LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(printed["sketch"]["precision"].as_integer(), Some(16));
    assert_eq!(printed["server"]["listen"].as_str(), Some("0.0.0.0:9999"));
    assert_eq!(printed["logs"]["poll_interval"].as_str(), Some("250ms"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[logs]\nstart_at = \"middle\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("logs.start_at") && err.contains("middle"),
        "{err}"
    );

    let out = Command::new(BIN)
        .arg("check-config")
        .env("JANS_EXPORTER_SKETCH__PRECISON", "12")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("precison"));
}

/// `healthcheck` (Docker's HEALTHCHECK in an image without curl): 0 against a live
/// exporter, 1 against a server answering 500, a listener that never answers, and a
/// closed port — each within its timeout.
#[test]
fn the_healthcheck_subcommand_exits_zero_only_on_a_healthy_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let config = write_config(dir.path(), &[log], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let check = |addr: std::net::SocketAddr| {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "healthcheck"])
            .args(["--address", &addr.to_string(), "--timeout", "300ms"])
            .output()
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(check(exporter.addr).0, Some(0));

    // A server that answers 500 to anything.
    let failing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let failing_addr = failing.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in failing.incoming().flatten().take(1) {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ =
                conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let (code, err) = check(failing_addr);
    assert_eq!(code, Some(1));
    assert!(err.contains("HTTP/1.1 500"), "{err}");

    // Accepts, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (code, err) = check(silent.local_addr().unwrap());
    assert_eq!(code, Some(1));
    assert!(err.contains("no answer from"), "{err}");
    drop(silent);

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let (code, err) = check(closed_addr);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot reach"), "{err}");
}

/// `log.format = "json"` writes one JSON object per line, and `--web.listen-address`
/// (beside `--config.file`) wins over `server.listen` in the file.
#[test]
fn json_logs_and_the_listen_address_flag() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let config = write_config(dir.path(), &[log], "[log]\nformat = \"json\"\n");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let want = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(BIN)
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--web.listen-address", &want, "run"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&lines);
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let listening = wait_for(Duration::from_secs(20), || {
        lines.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["message"]
                .as_str()?
                .contains("listening")
                .then(|| v["addr"].as_str().map(str::to_string))?
        })
    });
    let answer = http(want.parse().unwrap(), "GET", "/healthz", &[], b"");
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.lock().unwrap().clone();
    assert_eq!(listening.as_deref(), Some(want.as_str()), "{all:?}");
    assert_eq!(answer.map(|a| a.status).ok(), Some(200));
    assert!(!all.is_empty());
    for line in &all {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
}

/// `--version` names the version, revision and compiler, exactly as build_info does.
#[test]
fn version_and_build_info_say_the_same() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let exporter = Exporter::start(&write_config(dir.path(), &[log], ""));
    let m = exporter.metrics();
    let info = m
        .lines()
        .find(|l| l.starts_with("jans_exporter_build_info{"))
        .expect("build_info");
    let label = |name: &str| {
        info.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    let (version, revision, rustc) = (label("version"), label("revision"), label("rustc"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert!(!revision.is_empty() && !rustc.is_empty(), "{info}");
    assert!(
        rustc.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{info}"
    );
    assert_eq!(
        text,
        format!("jans-exporter {version} (revision {revision}, rustc {rustc})")
    );
}

/// A pattern that matches nothing and a log that stays empty are said in the log
/// (a wrong path or audit logging left off must not look like a quiet server); a
/// pattern that matches is not named.
#[test]
fn nothing_to_read_is_said_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let nothing = dir.path().join("nowhere").join("jans-auth_audit*.log");
    let config = write_config(dir.path(), &[log.clone(), nothing.clone()], "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[logs]\n", "[logs]\nstale_after = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let said = wait_for(Duration::from_secs(10), || {
        let log = exporter.log_text();
        (log.contains("no file matches this logs.paths pattern")
            && log.contains("nothing has been read from the followed logs"))
        .then_some(log)
    })
    .unwrap_or_else(|| exporter.log_text());
    let empty: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("no file matches this logs.paths pattern"))
        .collect();
    assert_eq!(empty.len(), 1, "{said}");
    assert!(
        empty[0].contains(&nothing.display().to_string()),
        "{}",
        empty[0]
    );
    assert!(empty[0].contains("WARN"));
    assert!(
        said.contains("nothing has been read from the followed logs"),
        "{said}"
    );
    assert!(
        !said.contains(&format!("pattern={}", log.display())),
        "{said}"
    );
    // The same in /metrics and on the landing page, pattern by pattern.
    let m = exporter.metrics();
    let matched = |p: &Path| {
        sample(
            &m,
            &format!(
                "jans_exporter_log_pattern_files{{pattern=\"{}\"}}",
                p.display()
            ),
        )
    };
    assert_eq!((matched(&log), matched(&nothing)), (1.0, 0.0), "{m}");
    // Matched but not followed: a file is opened once it holds a record's worth.
    assert_eq!(sample(&m, "jans_exporter_log_files"), 0.0);
    let page = exporter.get("/", &[]).text();
    assert!(
        page.contains(&format!(
            "<tr><td><code>{}</code></td><td>0 <strong>(nothing)</strong></td></tr>",
            nothing.display()
        )) && page.contains(&format!(
            "<tr><td><code>{}</code></td><td>1</td></tr>",
            log.display()
        )),
        "{page}"
    );
    assert!(page.contains("newest record stamped none yet"), "{page}");
    assert!(
        page.contains("<code>upstream.base_url</code> is not set"),
        "{page}"
    );
}

/// With file events, a record is read long before the next poll: at a 10 s poll
/// interval it still shows within 5 s. (How fast is measured by
/// scripts/bench-freshness.sh, not here.)
#[test]
fn file_events_wake_the_poll_before_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = LogWriter::named(dir.path(), "jans-auth_audit.log", 5);
    writer.write(2);
    let config = write_config(dir.path(), &[dir.path().join("jans-auth_audit*.log")], "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("poll_interval = \"50ms\"", "poll_interval = \"10s\"");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    writer.write(3);
    let seen = wait_for(Duration::from_secs(5), || {
        (family_sum(&exporter.metrics(), "jans_audit_events_total") as u64 == writer.truth.records)
            .then_some(())
    });
    assert!(seen.is_some(), "{}", exporter.metrics());
}
