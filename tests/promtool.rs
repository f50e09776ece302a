//! Lints a real scrape with Prometheus' own `promtool check metrics`.
//! Required in CI (`.ci/run` installs it); skipped with a notice elsewhere if missing.

mod common;
#[path = "common/fake_janssen.rs"]
mod fake_janssen;

use common::*;
use jans_exporter::generate::{write_record, Generator, Layout, Spec};

#[test]
fn promtool_accepts_a_real_scrape() {
    if !require_tool("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut bytes = Vec::new();
    for r in Generator::new(Spec::default()).take(500) {
        write_record(&mut bytes, Layout::Text, &r, 0).unwrap();
    }
    bytes.extend_from_slice(b"garbage line\n");
    std::fs::write(&log, bytes).unwrap();
    // With every upstream family present too: histograms, URN grant types.
    let fake = fake_janssen::FakeJanssen::start();
    let (_, cur) = jans_exporter::upstream::stat::months_to_poll(chrono::Utc::now());
    fake.set_tokens(
        cur,
        3,
        &[
            (
                "urn:ietf:params:oauth:grant-type:uma-ticket",
                "uma_token",
                2,
            ),
            ("password", "access_token", 1),
        ],
    );
    let now = chrono::Utc::now().timestamp_millis();
    fake.with(|s| {
        s.fido2_entries = vec![serde_json::json!({"id":"x","timestamp":now - 1000,"operationType":"AUTHENTICATION","status":"FAILURE",
            "durationMs":1500,"authenticatorType":"platform","errorCategory":"USER_CANCELLED","username":"u"})]
    });
    let upstream = format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"1s\"\n",
        fake.base(),
        fake_janssen::CLIENT_ID,
        fake_janssen::CLIENT_SECRET
    );
    let exporter = Exporter::start(&write_config(dir.path(), &[log], &upstream));
    exporter.wait_ready();
    wait_for(std::time::Duration::from_secs(15), || {
        let m = exporter.metrics();
        (m.contains("jans_tokens_issued_total")
            && m.contains("jans_fido2_operation_duration_seconds_bucket")
            && m.contains("jans_auth_server_up"))
        .then_some(())
    })
    .expect("upstream figures present");
    let scrape = exporter.get("/metrics", &[]);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );

    let (ok, report) = promtool_check_metrics(&scrape.body);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n--- scrape ---\n{}",
        scrape.text()
    );

    // And it rejects what it should: the check is live, not a rubber stamp.
    let (ok, _) = promtool_check_metrics(
        b"# HELP x_seconds_count A.\n# TYPE x_seconds_count counter\nx_seconds_count 1\n",
    );
    assert!(!ok);
}
