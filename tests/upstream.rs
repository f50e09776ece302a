//! The real binary against an in-process fake Janssen: tokens by grant type through
//! drops, shapes and restarts; token expiry and revocation; failures of every kind;
//! FIDO2 entries across overlapping windows and restarts; health.

mod common;
#[path = "common/fake_janssen.rs"]
mod fake_janssen;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use fake_janssen::*;
use jans_exporter::upstream::stat::months_to_poll;

fn start(dir: &Path, fake: &FakeJanssen, extra: &str) -> Exporter {
    let log = dir.join("audit.log");
    if !log.exists() {
        std::fs::write(&log, b"").unwrap();
    }
    let upstream = format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"1s\"\ntimeout = \"500ms\"\nfido2_overlap = \"10s\"\n{extra}",
        fake.base()
    );
    Exporter::start(&write_config(dir, &[log], &upstream))
}

/// Waits until `series` has `want`, returning the scrape.
fn wait_value(exporter: &Exporter, series: &str, want: f64) -> String {
    let got = wait_for(Duration::from_secs(15), || {
        let m = exporter.metrics();
        (samples(&m).get(series).copied() == Some(want)).then_some(m)
    });
    got.unwrap_or_else(|| {
        panic!(
            "{series} never became {want}:\n{}\n{}",
            exporter.metrics(),
            exporter.log_text()
        )
    })
}

fn value(exporter: &Exporter, series: &str) -> Option<f64> {
    samples(&exporter.metrics()).get(series).copied()
}

const ISSUED_AUTH_CODE: &str =
    "jans_tokens_issued_total{grant_type=\"authorization_code\",token_type=\"access_token\"}";

#[test]
fn tokens_by_grant_type_survive_drops_shapes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let (prev, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(
        prev,
        5,
        &[
            ("authorization_code", "access_token", 3),
            ("client_credentials", "access_token", 12),
        ],
    );
    fake.set_tokens(
        cur,
        7,
        &[
            ("authorization_code", "access_token", 9),
            ("urn:x:custom", "access_token", 1),
        ],
    );
    let mut exporter = start(dir.path(), &fake, "");

    let m = wait_value(&exporter, ISSUED_AUTH_CODE, 12.0);
    assert_eq!(sample(&m, "jans_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}"), 12.0);
    assert_eq!(
        sample(
            &m,
            "jans_tokens_issued_total{grant_type=\"other\",token_type=\"access_token\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, &format!("jans_upstream_tokens{{month=\"{cur}\",grant_type=\"authorization_code\",token_type=\"access_token\"}}")), 9.0);
    assert_eq!(
        sample(
            &m,
            &format!("jans_upstream_monthly_active_users{{month=\"{cur}\"}}")
        ),
        7.0
    );
    assert_eq!(sample(&m, "jans_upstream_up{endpoint=\"stat\"}"), 1.0);

    // A stale cache answers less: the gauge follows, the counter does not go back.
    fake.set_tokens(
        cur,
        7,
        &[
            ("authorization_code", "access_token", 4),
            ("urn:x:custom", "access_token", 1),
        ],
    );
    let cur_series = format!("jans_upstream_tokens{{month=\"{cur}\",grant_type=\"authorization_code\",token_type=\"access_token\"}}");
    wait_value(&exporter, &cur_series, 4.0);
    assert_eq!(value(&exporter, ISSUED_AUTH_CODE), Some(12.0));
    // Only growth past the high-water mark (9) counts.
    fake.set_tokens(
        cur,
        8,
        &[
            ("authorization_code", "access_token", 11),
            ("urn:x:custom", "access_token", 1),
        ],
    );
    wait_value(&exporter, ISSUED_AUTH_CODE, 14.0);

    // The other response shape reads the same.
    fake.with(|s| s.shape = Shape::JsonMonth);
    fake.set_tokens(
        cur,
        8,
        &[
            ("authorization_code", "access_token", 12),
            ("urn:x:custom", "access_token", 1),
        ],
    );
    wait_value(&exporter, ISSUED_AUTH_CODE, 15.0);

    // A restart neither re-adds nor loses.
    assert!(exporter
        .terminate(Duration::from_secs(5))
        .unwrap()
        .success());
    let exporter = start(dir.path(), &fake, "");
    exporter.wait_ready();
    assert_eq!(
        value(&exporter, ISSUED_AUTH_CODE),
        Some(15.0),
        "continues from the snapshot"
    );
    let polls_before = fake.with(|s| {
        s.requests
            .iter()
            .filter(|r| r.contains("/internal/stat"))
            .count()
    });
    wait_for(Duration::from_secs(10), || {
        (fake.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.contains("/internal/stat"))
                .count()
        }) >= polls_before + 2)
            .then_some(())
    })
    .expect("polled again after the restart");
    assert_eq!(
        value(&exporter, ISSUED_AUTH_CODE),
        Some(15.0),
        "the same answer is not added again"
    );
}

#[test]
fn revoked_and_expired_tokens_are_refreshed_once_and_the_secret_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let (_, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(cur, 1, &[("authorization_code", "access_token", 1)]);
    let exporter = start(dir.path(), &fake, "");
    wait_value(&exporter, ISSUED_AUTH_CODE, 1.0);
    assert_eq!(
        fake.with(|s| s.tokens_issued),
        1,
        "the token is cached between polls"
    );

    fake.with(|s| s.tokens.clear()); // revoked: 401 "Can't find grant for authorization."
    fake.set_tokens(cur, 1, &[("authorization_code", "access_token", 2)]);
    wait_value(&exporter, ISSUED_AUTH_CODE, 2.0);
    fake.with(|s| {
        s.tokens
            .values_mut()
            .for_each(|t| t.1 = Instant::now() - Duration::from_secs(1))
    }); // expired
    fake.set_tokens(cur, 1, &[("authorization_code", "access_token", 3)]);
    let m = wait_value(&exporter, ISSUED_AUTH_CODE, 3.0);
    assert_eq!(fake.with(|s| s.tokens_issued), 3, "one refresh per refusal");
    assert_eq!(
        sample(
            &m,
            "jans_upstream_errors_total{endpoint=\"stat\",reason=\"auth\"}"
        ),
        2.0
    );
    assert_eq!(sample(&m, "jans_upstream_up{endpoint=\"stat\"}"), 1.0);
    assert!(!exporter.log_text().contains(CLIENT_SECRET));
    let check = std::process::Command::new(BIN)
        .env("JANS_EXPORTER_UPSTREAM__CLIENT_SECRET", CLIENT_SECRET)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&check.stdout).contains(CLIENT_SECRET));
}

#[test]
fn failures_are_classified_backed_off_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let (_, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(cur, 1, &[("password", "access_token", 1)]);
    let stat = "/jans-auth/restv1/internal/stat";
    fake.fault(
        stat,
        [
            Fault::Status(500),
            Fault::Status(503),
            Fault::Delay(Duration::from_secs(2)),
            Fault::Garbage,
            Fault::Oversize(20_000),
        ],
    );
    fake.fault("/jans-auth/sys/health-check", [Fault::Status(502)]);
    let exporter = start(dir.path(), &fake, "max_body_bytes = 4096\n");
    let m = wait_value(
        &exporter,
        "jans_tokens_issued_total{grant_type=\"password\",token_type=\"access_token\"}",
        1.0,
    );
    let err = |reason: &str| {
        sample(
            &m,
            &format!("jans_upstream_errors_total{{endpoint=\"stat\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(
        (err("http_5xx"), err("timeout"), err("decode")),
        (2.0, 1.0, 2.0)
    );
    assert_eq!(
        sample(
            &m,
            "jans_upstream_errors_total{endpoint=\"health\",reason=\"http_5xx\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, "jans_upstream_up{endpoint=\"stat\"}"), 1.0);
    assert!(
        sample(
            &m,
            "jans_upstream_last_success_timestamp_seconds{endpoint=\"stat\"}"
        ) > 1.7e9
    );
    assert!(
        sample(
            &m,
            "jans_upstream_request_duration_seconds_count{endpoint=\"stat\"}"
        ) >= 6.0
    );
    assert_eq!(exporter.get("/healthz", &[]).status, 200);

    // Each failure is logged with its endpoint, URL (no query), status and reason; the
    // same endpoint and reason again within a minute is held back (503 after 500).
    let log = exporter.log_text();
    let failed = |reason: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| l.contains("upstream call failed"))
            .filter(|l| {
                l.contains("endpoint=\"stat\"") && l.contains(&format!("reason=\"{reason}\""))
            })
            .collect()
    };
    let url = format!("url=\"{}{stat}\"", fake.base());
    let five = failed("http_5xx");
    assert_eq!(five.len(), 1, "{log}");
    assert!(
        five[0].contains("status=500") && five[0].contains(&url),
        "{}",
        five[0]
    );
    let timeout = failed("timeout");
    assert_eq!(timeout.len(), 1, "{log}");
    assert!(
        timeout[0].contains(&url) && timeout[0].contains("cause="),
        "{}",
        timeout[0]
    );
    let decode = failed("decode");
    assert_eq!(decode.len(), 1, "{log}");
    assert!(decode[0].contains("status=200"), "{}", decode[0]);
    let health = log
        .lines()
        .find(|l| l.contains("upstream call failed") && l.contains("endpoint=\"health\""))
        .expect("the health failure is logged");
    assert!(health.contains("status=502"), "{health}");
    assert!(!log.contains("month="), "no query in a logged URL: {log}");
    assert!(!log.contains(CLIENT_SECRET));
}

#[test]
fn a_server_that_is_down_is_a_connect_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let upstream = format!("[upstream]\nbase_url = \"http://{closed}\"\nhealth_interval = \"1s\"\nfido2_interval = \"0s\"\ntimeout = \"500ms\"\n");
    let exporter = Exporter::start(&write_config(dir.path(), &[log], &upstream));
    let m = wait_value(&exporter, "jans_upstream_up{endpoint=\"health\"}", 0.0);
    assert!(
        sample(
            &m,
            "jans_upstream_errors_total{endpoint=\"health\",reason=\"connect\"}"
        ) >= 1.0
    );
    assert_eq!(sample(&m, "jans_auth_server_up"), 0.0);
}

fn fido2_entry(
    id: &str,
    ts: i64,
    op: &str,
    status: &str,
    auth: Option<&str>,
    ms: Option<u64>,
    category: Option<&str>,
) -> serde_json::Value {
    let mut e = serde_json::json!({"id": id, "timestamp": ts, "userId": format!("u-{id}"), "username": format!("user-{id}"),
        "operationType": op, "status": status, "nodeId": "AA-A9-49-E1-A1-3E"});
    if let Some(a) = auth {
        e["authenticatorType"] = a.into();
    }
    if let Some(ms) = ms {
        e["durationMs"] = ms.into();
    }
    if let Some(c) = category {
        e["errorCategory"] = c.into();
        e["errorReason"] = "The operation either timed out or was not allowed".into();
    }
    if op == "FALLBACK" {
        e["fallbackMethod"] = "PASSWORD".into();
    }
    e
}

const OPS: &str = "jans_fido2_operations_total";

/// Every timestamp form the server has written is read, an unreadable entry is counted,
/// and `/entries` answering 403 (metrics disabled) while `/health` says UP is not "up".
#[test]
fn fido2_timestamp_forms_unreadable_entries_and_disabled_metrics_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let now = chrono::Utc::now();
    let iso = (now - chrono::Duration::seconds(20))
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    let t = now - chrono::Duration::seconds(10);
    use chrono::{Datelike, Timelike};
    let array = serde_json::json!([
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        0
    ]);
    fake.with(|s| {
        let mut a = fido2_entry(
            "a",
            0,
            "AUTHENTICATION",
            "SUCCESS",
            Some("platform"),
            Some(900),
            None,
        );
        a["timestamp"] = iso.clone().into();
        let mut b = fido2_entry(
            "b",
            0,
            "AUTHENTICATION",
            "SUCCESS",
            Some("platform"),
            Some(700),
            None,
        );
        b["timestamp"] = array.clone();
        let mut c = fido2_entry(
            "c",
            0,
            "AUTHENTICATION",
            "SUCCESS",
            Some("platform"),
            None,
            None,
        );
        c["timestamp"] = "yesterday".into();
        s.fido2_entries = vec![a, b, c];
    });
    let exporter = start(dir.path(), &fake, "fido2_backfill = \"1h\"\n");
    let series = format!(
        "{OPS}{{operation=\"authentication\",status=\"success\",authenticator=\"platform\"}}"
    );
    let m = wait_value(&exporter, &series, 2.0);
    assert_eq!(
        sample(
            &m,
            "jans_exporter_fido2_skipped_entries_total{reason=\"bad_timestamp\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, "jans_fido2_up"), 1.0);
    // Metrics disabled: /health still UP, /entries 403.
    fake.fault(
        "/jans-fido2/restv1/metrics/entries",
        (0..50).map(|_| Fault::Status(403)),
    );
    let m = wait_value(&exporter, "jans_fido2_up", 0.0);
    assert!(
        sample(
            &m,
            "jans_upstream_errors_total{endpoint=\"fido2_entries\",reason=\"auth\"}"
        ) >= 1.0
    );
}

#[test]
fn fido2_entries_are_counted_once_across_overlapping_windows_late_writes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let now = chrono::Utc::now().timestamp_millis();
    fake.with(|s| {
        s.fido2_entries = vec![
            fido2_entry(
                "a",
                now - 30_000,
                "REGISTRATION",
                "SUCCESS",
                Some("cross-platform"),
                Some(442),
                None,
            ),
            fido2_entry(
                "b",
                now - 29_000,
                "AUTHENTICATION",
                "FAILURE",
                Some("platform"),
                Some(30_211),
                Some("USER_CANCELLED"),
            ),
            fido2_entry("c", now - 28_000, "FALLBACK", "ATTEMPT", None, None, None),
            fido2_entry(
                "d",
                now - 27_000,
                "AUTHENTICATION",
                "SUCCESS",
                Some("SECURITY_KEY"),
                Some(1_200),
                None,
            ),
        ]
    });
    let mut exporter = start(dir.path(), &fake, "");
    let count = |e: &Exporter| family_sum(&e.metrics(), OPS);
    wait_for(Duration::from_secs(15), || {
        (count(&exporter) == 4.0).then_some(())
    })
    .expect("4 entries counted");
    let m = exporter.metrics();
    assert_eq!(sample(&m, "jans_fido2_operations_total{operation=\"authentication\",status=\"success\",authenticator=\"security-key\"}"), 1.0);
    assert_eq!(sample(&m, "jans_fido2_operations_total{operation=\"registration\",status=\"success\",authenticator=\"cross-platform\"}"), 1.0);
    assert_eq!(
        sample(
            &m,
            "jans_fido2_errors_total{operation=\"authentication\",category=\"USER_CANCELLED\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "jans_fido2_fallbacks_total{method=\"PASSWORD\"}"),
        1.0
    );
    assert_eq!(sample(&m, "jans_fido2_operation_duration_seconds_bucket{le=\"20.0\",operation=\"authentication\",status=\"failure\"}"), 0.0);
    assert_eq!(sample(&m, "jans_fido2_operation_duration_seconds_bucket{le=\"60.0\",operation=\"authentication\",status=\"failure\"}"), 1.0);
    assert_eq!(sample(&m, "jans_fido2_active_users{period=\"day\"}"), 2.0);
    assert_eq!(sample(&m, "jans_fido2_up"), 1.0);

    // A late write: an entry timestamped inside the overlap appears after its window passed.
    std::thread::sleep(Duration::from_millis(1500));
    fake.with(|s| {
        s.fido2_entries.push(fido2_entry(
            "late",
            chrono::Utc::now().timestamp_millis() - 4_000,
            "AUTHENTICATION",
            "SUCCESS",
            Some("platform"),
            Some(900),
            None,
        ))
    });
    wait_for(Duration::from_secs(15), || {
        (count(&exporter) == 5.0).then_some(())
    })
    .expect("the late entry is counted");
    wait_for(Duration::from_secs(10), || {
        (value(&exporter, "jans_exporter_fido2_duplicate_entries_total").unwrap_or(0.0) > 0.0)
            .then_some(())
    })
    .expect("overlapping windows return entries again");
    assert_eq!(count(&exporter), 5.0, "duplicates are not counted");

    // Restart: the windows overlap the saved ones; nothing is counted twice.
    assert!(exporter
        .terminate(Duration::from_secs(5))
        .unwrap()
        .success());
    fake.with(|s| s.fido2_up = false);
    let exporter = start(dir.path(), &fake, "");
    wait_value(&exporter, "jans_fido2_up", 0.0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&exporter), 5.0);
    fake.with(|s| {
        s.fido2_entries.push(fido2_entry(
            "after",
            chrono::Utc::now().timestamp_millis(),
            "REGISTRATION",
            "ABANDONED",
            Some("platform"),
            None,
            None,
        ))
    });
    wait_for(Duration::from_secs(15), || {
        (count(&exporter) == 6.0).then_some(())
    })
    .expect("new entries after a restart are counted");
}

#[test]
fn health_maps_to_up_db_online_and_starting() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let exporter = start(dir.path(), &fake, "");
    wait_value(&exporter, "jans_auth_server_up", 1.0);
    fake.with(|s| s.health = ("running".into(), "offline".into()));
    let m = wait_value(&exporter, "jans_auth_server_db_online", 0.0);
    assert_eq!(sample(&m, "jans_auth_server_up"), 0.0);
    fake.with(|s| s.health = ("starting".into(), "online".into()));
    let m = wait_value(&exporter, "jans_auth_server_starting", 1.0);
    assert_eq!(sample(&m, "jans_auth_server_up"), 0.0);
    fake.with(|s| s.health = ("running".into(), "online".into()));
    wait_value(&exporter, "jans_auth_server_up", 1.0);
    // The landing page names what is polled (no credentials) and how it went.
    let page = exporter.get("/", &[]).text();
    let health_row = format!(
        "<tr><td>health</td><td><code>{}/jans-auth/sys/health-check</code></td><td>1s</td></tr>",
        fake.base().trim_end_matches('/')
    );
    assert!(page.contains(&health_row), "{health_row} not in {page}");
    assert!(
        page.contains("<tr><td>health</td><td>answered</td><td>20"),
        "{page}"
    );
    assert!(!page.contains(CLIENT_SECRET), "{page}");
    fake.fault(
        "/jans-auth/sys/health-check",
        [Fault::Status(500), Fault::Status(500), Fault::Status(500)],
    );
    wait_value(&exporter, "jans_auth_server_up", 0.0);
}

/// Plugin entries and an external script's reply: only `status` and `db_status` count,
/// and a body without them is a decode error and not up, never a crash or a silent up.
#[test]
fn health_bodies_with_plugins_or_from_a_script_are_read_for_status_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.with(|s| {
        s.health_plugins = true;
        s.health = ("running".into(), "offline".into());
    });
    let exporter = start(dir.path(), &fake, "");
    let m = wait_value(&exporter, "jans_auth_server_db_online", 0.0);
    assert_eq!(sample(&m, "jans_auth_server_up"), 0.0);
    fake.with(|s| s.health = ("running".into(), "online".into()));
    wait_value(&exporter, "jans_auth_server_up", 1.0);
    // A script that answers its own shape.
    fake.with(|s| {
        s.health_body =
            Some(r#"{"status": "running", "db_status": "online", "checks": [1, 2]}"#.into())
    });
    wait_value(&exporter, "jans_auth_server_up", 1.0);
    for body in [r#"{"healthy": true}"#, "OK", r#"{"status": 1}"#] {
        let before = value(
            &exporter,
            "jans_upstream_errors_total{endpoint=\"health\",reason=\"decode\"}",
        )
        .unwrap_or(0.0);
        fake.with(|s| s.health_body = Some(body.into()));
        wait_value(&exporter, "jans_auth_server_up", 0.0);
        let counted = wait_for(Duration::from_secs(10), || {
            let now = value(
                &exporter,
                "jans_upstream_errors_total{endpoint=\"health\",reason=\"decode\"}",
            )?;
            (now > before).then_some(())
        });
        assert!(counted.is_some(), "{body}: counted as a decode error");
        fake.with(|s| s.health_body = None);
        wait_value(&exporter, "jans_auth_server_up", 1.0);
    }
}

#[test]
fn a_mounted_secret_file_is_reread_when_it_changes_with_client_secret_post() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let (_, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(cur, 1, &[("implicit", "id_token", 4)]);
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "wrong-secret\n").unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let upstream = format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = {:?}\ntoken_auth_method = \"client_secret_post\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"0s\"\ntimeout = \"500ms\"\n",
        fake.base(),
        secret.display().to_string()
    );
    let exporter = Exporter::start(&write_config(dir.path(), &[log], &upstream));
    let refused = wait_for(Duration::from_secs(10), || {
        (value(
            &exporter,
            "jans_upstream_errors_total{endpoint=\"token\",reason=\"auth\"}",
        )
        .unwrap_or(0.0)
            >= 1.0)
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "a wrong secret is an auth error:\n{}",
        exporter.metrics()
    );
    // The secret is rotated in the mounted file: picked up without a restart.
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime, even on coarse clocks
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    wait_value(
        &exporter,
        "jans_tokens_issued_total{grant_type=\"implicit\",token_type=\"id_token\"}",
        4.0,
    );
    assert!(fake.with(|s| s
        .requests
        .iter()
        .any(|r| r.starts_with("POST /jans-auth/restv1/token"))));
}
