//! Figures that mean what happened: flows written as a real jans-auth writes them, into
//! its audit log and its server log, must give exact login, authorization, token and
//! server-log figures, with records out of order, twins split across reads and a restart.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;
use jans_exporter::generate::flows::{write_entries, FlowSpec, Flows};
use jans_exporter::generate::Layout;

fn assert_flow_figures(metrics: &str, flows: &Flows) {
    let t = &flows.truth;
    assert_exact(metrics, &t.audit);
    for kind in ["user", "service", "client", "unknown"] {
        for (ok, outcome) in [(false, "failure"), (true, "success")] {
            let series =
                format!("jans_authentications_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
            assert_eq!(
                sample(metrics, &series) as u64,
                t.authentications(kind, ok),
                "{series}"
            );
        }
    }
    for outcome in ["success", "interaction", "error"] {
        let series = format!("jans_authorization_requests_total{{outcome=\"{outcome}\"}}");
        let want = t.authorizations.get(outcome).copied().unwrap_or(0);
        assert_eq!(sample(metrics, &series) as u64, want, "{series}");
    }
    for (level, n) in &t.levels {
        let series = format!("jans_server_log_messages_total{{level=\"{level}\"}}");
        assert_eq!(sample(metrics, &series) as u64, *n, "{series}");
    }
    assert_eq!(
        family_sum(metrics, "jans_server_log_messages_total") as u64,
        t.server_lines
    );
    // Users from both files, one user once: HyperLogLog++ is exact at this size.
    for (month, users) in &t.monthly_users {
        let series = format!("jans_monthly_active_users{{month=\"{month}\"}}");
        assert_eq!(sample(metrics, &series) as usize, users.len(), "{series}");
    }
}

#[test]
fn replay_gives_exact_figures_on_generated_flows_in_both_layouts_out_of_order() {
    for layout in [Layout::Text, Layout::Json] {
        let dir = tempfile::tempdir().unwrap();
        let mut flows = Flows::new(FlowSpec {
            seed: 11,
            utc_offset_secs: 3600,
            ..FlowSpec::default()
        });
        let (mut audit, mut server) = (Vec::new(), Vec::new());
        let mut drift = fastrand::Rng::with_seed(5);
        for _ in 0..600 {
            let entries = flows.flow();
            write_entries(
                &mut audit,
                &mut server,
                layout,
                &entries,
                3600,
                Some(&mut drift),
            )
            .unwrap();
        }
        assert!(flows.truth.authorizations["interaction"] > 100);
        assert!(flows.truth.authentications("user", false) > 5);
        let audit_path = dir.path().join("jans-auth_audit.log");
        let server_path = dir.path().join("jans-auth.log");
        std::fs::write(&audit_path, audit).unwrap();
        std::fs::write(&server_path, server).unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "[logs]\nserver_time_zone = \"Europe/Paris\"\n").unwrap();
        let out = Command::new(BIN)
            .args(["--config"])
            .arg(&config)
            .arg("replay")
            .arg(&audit_path)
            .arg(&server_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let metrics = String::from_utf8(out.stdout).unwrap();
        assert_flow_figures(&metrics, &flows);
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_redirect_split_across_writes_reads_and_a_restart_is_one_interaction() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("jans-auth_audit.log");
    let server = dir.path().join("jans-auth.log");
    std::fs::write(&audit, b"").unwrap();
    std::fs::write(&server, b"").unwrap();
    let config = write_config(dir.path(), &[dir.path().join("jans-auth*.log")], "");
    // A first login: its redirect's two records, then a rejection alone.
    let mut flows = Flows::new(FlowSpec {
        start_ms: chrono::Utc::now().timestamp_millis() - 60_000,
        ..FlowSpec::default()
    });
    let mut login = flows.attack();
    login.truncate(2);
    let (mut twins, mut none) = (Vec::new(), Vec::new());
    write_entries(&mut twins, &mut none, Layout::Text, &login, 0, None).unwrap();
    let second = twins.len() / 2;
    let (first, rest) = twins.split_at(second);
    let cut = rest.len() / 3;

    let mut exporter = Exporter::start(&config);
    exporter.wait_ready();
    append(&audit, first);
    wait_for_records(&exporter, 1);
    // The twin is written in two pieces, the first before a restart.
    append(&audit, &rest[..cut]);
    assert_eq!(
        exporter
            .terminate(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    append(&audit, &rest[cut..]);
    let rejection = flows.flow_of_rejection();
    let (mut alone, mut none) = (Vec::new(), Vec::new());
    write_entries(&mut alone, &mut none, Layout::Text, &rejection, 0, None).unwrap();
    append(&audit, &alone);
    // The rejection is an error once its window has passed: by then the twins had
    // theirs too.
    let m = wait_for(Duration::from_secs(20), || {
        let m = exporter.metrics();
        (sample(&m, "jans_authorization_requests_total{outcome=\"error\"}") >= 1.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("no error counted:\n{}", exporter.metrics()));
    assert_eq!(
        sample(
            &m,
            "jans_authorization_requests_total{outcome=\"interaction\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "jans_authorization_requests_total{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "jans_audit_events_total{action=\"USER_AUTHORIZATION\",outcome=\"failure\"}"
        ),
        3.0
    );
}

#[test]
fn a_stack_trace_between_two_logins_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jans-auth.log");
    std::fs::write(
        &log,
        "2026-11-23 19:40:27,100 INFO  [qtp-50]  [io.jans.as.server.auth.Authenticator] (Authenticator.java:215) - Authentication failed for user: jdoe\n\
         2026-11-23 19:40:41,000 ERROR [qtp-30]  [io.jans.as.server.servlet.Foo] (Foo.java:10) - Failed to process request\n\
         java.lang.IllegalStateException: boom\n\
         \tat io.jans.as.server.Foo.bar(Foo.java:10)\n\
         Caused by: java.io.IOException: closed\n\
         \t... 12 more\n\
         2026-11-23 19:40:35,230 INFO  [qtp-60]  [io.jans.as.server.auth.Authenticator] (Authenticator.java:215) - Authentication success for User: 'jdoe'\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("replay").arg(&log).output().unwrap();
    let m = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        sample(
            &m,
            "jans_authentications_total{kind=\"user\",outcome=\"failure\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "jans_authentications_total{kind=\"user\",outcome=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "jans_server_log_messages_total{level=\"ERROR\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "jans_monthly_active_users{month=\"202611\"}"),
        1.0
    );
    assert_eq!(family_sum(&m, "jans_exporter_parse_errors_total"), 0.0);
    assert_eq!(
        sample(
            &m,
            "jans_exporter_records_total{format=\"jans-server-text\"}"
        ),
        3.0
    );
}

/// Backfilling several files of other days at once interleaves their records; twins
/// must still pair (a record clock across files would take them as alone).
#[test]
fn twins_pair_while_files_of_other_months_are_backfilled_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut want: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut paths = Vec::new();
    // The newer month first: files are read in the order they were created.
    for (i, start) in [1_793_491_200_000i64, 1_790_812_800_000].iter().enumerate() {
        let mut flows = Flows::new(FlowSpec {
            seed: 20 + i as u64,
            start_ms: *start,
            ..FlowSpec::default()
        });
        let (mut audit, mut server) = (Vec::new(), Vec::new());
        for _ in 0..1500 {
            let entries = flows.flow();
            write_entries(&mut audit, &mut server, Layout::Text, &entries, 0, None).unwrap();
        }
        for (k, n) in &flows.truth.authorizations {
            *want.entry(k).or_default() += n;
        }
        let path = dir.path().join(format!("jans-auth_audit-{i}.log"));
        std::fs::write(&path, audit).unwrap();
        paths.push(path);
    }
    let out = Command::new(BIN)
        .arg("replay")
        .args(&paths)
        .output()
        .unwrap();
    let m = String::from_utf8(out.stdout).unwrap();
    for (outcome, n) in want {
        let series = format!("jans_authorization_requests_total{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&m, &series) as u64, n, "{series}");
    }
}

#[test]
fn the_landing_page_says_which_logs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("jans-auth.log");
    std::fs::write(
        &server,
        "2026-11-23 19:40:35,230 INFO  [qtp-60]  [io.jans.as.server.auth.Authenticator] (Authenticator.java:215) - Authentication success for User: 'jdoe'\n",
    )
    .unwrap();
    let exporter = Exporter::start(&write_config(dir.path(), &[server], ""));
    exporter.wait_ready();
    let page = exporter.get("/", &[]).text();
    assert!(
        page.contains("Audit log: 0 records read. Server log (jans-auth.log): 1 events read."),
        "{page}"
    );
}

/// The README's sample is what the bundled example logs really give.
#[test]
fn the_readme_sample_is_what_the_bundled_logs_give() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let sample_block = readme
        .split("## A sample of /metrics")
        .nth(1)
        .and_then(|s| s.split("```\n").nth(1))
        .unwrap();
    let logs: Vec<_> = std::fs::read_dir(format!("{root}/examples/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let out = Command::new(BIN)
        .arg("replay")
        .args(&logs)
        .output()
        .unwrap();
    let served = samples(&String::from_utf8(out.stdout).unwrap());
    let lines: Vec<&str> = sample_block
        .lines()
        .filter(|l| l.starts_with("jans_"))
        .collect();
    assert!(lines.len() > 10);
    for line in lines {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert_eq!(
            served.get(series),
            Some(&value.parse().unwrap()),
            "{series}"
        );
    }
}

/// The reference: with a JMS broker configured the audit file may hold JMS error stack
/// traces. A file that starts with one is detected as a server log, and its audit
/// records must still all count.
#[test]
fn an_audit_log_that_starts_with_a_stack_trace_loses_no_record() {
    use jans_exporter::generate::{write_record, Generator, Spec, Truth, DEFAULT_ACTIVE};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jans-auth_audit.log");
    let mut bytes = b"2026-11-01 00:00:00,001 ERROR [pool-4-thread-1]  [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:120) - Can't send message to JMS\n\
        javax.jms.JMSException: Could not connect to broker URL\n\
        \tat org.apache.activemq.util.JMSExceptionSupport.create(JMSExceptionSupport.java:36)\n"
        .to_vec();
    let mut truth = Truth::default();
    for r in Generator::new(Spec::default()).take(300) {
        truth.observe(&r, &DEFAULT_ACTIVE);
        write_record(&mut bytes, Layout::Text, &r, 0).unwrap();
    }
    std::fs::write(&log, bytes).unwrap();
    let out = Command::new(BIN).arg("replay").arg(&log).output().unwrap();
    let m = String::from_utf8(out.stdout).unwrap();
    assert_exact(&m, &truth);
    assert_eq!(
        sample(&m, "jans_server_log_messages_total{level=\"ERROR\"}"),
        1.0
    );
}

/// An invalid UTF-8 byte in a username costs that byte, not the record or a neighbour.
#[test]
fn invalid_utf8_in_a_username_loses_no_record() {
    use jans_exporter::generate::{write_record, Generator, Spec, Truth, DEFAULT_ACTIVE};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jans-auth_audit.log");
    let mut truth = Truth::default();
    let mut bytes = Vec::new();
    for (i, mut r) in Generator::new(Spec::default()).take(50).enumerate() {
        if i == 20 {
            r.action = "TOKEN_REQUEST";
            r.username = Some("latin1-user-XX".into());
        }
        truth.observe(&r, &DEFAULT_ACTIVE);
        let mut one = Vec::new();
        write_record(&mut one, Layout::Text, &r, 0).unwrap();
        if i == 20 {
            // As if the username had gone through a Latin-1 path: "XX" → 0xE9 0xFF.
            let at = one.windows(2).position(|w| w == b"XX").unwrap();
            one[at] = 0xe9;
            one[at + 1] = 0xff;
        }
        bytes.extend_from_slice(&one);
    }
    std::fs::write(&log, bytes).unwrap();
    let out = Command::new(BIN).arg("replay").arg(&log).output().unwrap();
    let m = String::from_utf8(out.stdout).unwrap();
    assert_exact(&m, &truth);
    assert_eq!(sample(&m, "jans_exporter_records_lossy_total"), 1.0);
}
