//! The Janssen-compatible endpoints on the real binary: every authorization failure,
//! GET and POST, both JSON shapes and the openmetrics text, health-check, limits.

mod common;
#[path = "common/fake_janssen.rs"]
mod fake_janssen;

use std::path::Path;
use std::time::Duration;

use common::*;
use fake_janssen::*;
use jans_exporter::generate::{write_record, Generator, Layout, Spec, Truth, DEFAULT_ACTIVE};
use jans_exporter::upstream::stat::months_to_poll;

const STAT: &str = "/jans-auth/restv1/internal/stat";

/// An audit log of the last hours: own MAU for the current month.
fn recent_log(dir: &Path) -> (std::path::PathBuf, Truth) {
    let mut truth = Truth::default();
    let start = chrono::Utc::now().timestamp_millis() - 3 * 3600 * 1000;
    let mut out = Vec::new();
    for r in Generator::new(Spec {
        users: 40,
        start_ms: start,
        mean_gap_ms: 5_000,
        ..Spec::default()
    })
    .take(400)
    {
        truth.observe(&r, &DEFAULT_ACTIVE);
        write_record(&mut out, Layout::Text, &r, 0).unwrap();
    }
    let path = dir.join("audit.log");
    std::fs::write(&path, out).unwrap();
    (path, truth)
}

/// An exporter polling `fake`, with `reason` in error bodies (upstream's
/// `errorReasonEnabled`) so the tests can tell the 401s apart.
fn start(dir: &Path, fake: &FakeJanssen, extra: &str) -> Exporter {
    start_with_reason(dir, fake, extra, true)
}

fn start_with_reason(dir: &Path, fake: &FakeJanssen, extra: &str, reason: bool) -> Exporter {
    let (log, _) = recent_log(dir);
    let cfg = format!(
        "[api]\nerror_reason = {reason}\n[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"0s\"\ntimeout = \"500ms\"\n{extra}",
        fake.base()
    );
    let e = Exporter::start(&write_config(dir, &[log], &cfg));
    e.wait_ready();
    e
}

fn stat(e: &Exporter, query: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http(e.addr, "GET", &format!("{STAT}?{query}"), &headers, b"").unwrap()
}

fn reason(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn every_authorization_failure_answers_like_upstream_and_never_200() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("good", "openid jans_stat", 300);
    fake.mint("expired", "jans_stat", -10);
    fake.mint("wrong-scope", "openid profile", 300);
    fake.mint("substring", "jans_stat_reader", 300);
    let e = start(dir.path(), &fake, "");
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let q = format!("month={cur}");

    let none = stat(&e, &q, None);
    assert_eq!(
        (none.status, reason(&none).as_str()),
        (401, "Can't find grant for authorization.")
    );
    let basic = http(
        e.addr,
        "GET",
        &format!("{STAT}?{q}"),
        &[("Authorization", "Basic Zm9vOmJhcg==")],
        b"",
    )
    .unwrap();
    assert_eq!(
        (basic.status, reason(&basic).as_str()),
        (401, "Can't find grant for authorization.")
    );
    let inactive = stat(&e, &q, Some("unknown"));
    assert_eq!(
        (inactive.status, reason(&inactive).as_str()),
        (401, "Can't find grant for authorization.")
    );
    let expired = stat(&e, &q, Some("expired"));
    assert_eq!(
        (expired.status, reason(&expired).as_str()),
        (401, "Token expired.")
    );
    for t in ["wrong-scope", "substring"] {
        let r = stat(&e, &q, Some(t));
        assert_eq!(
            (r.status, reason(&r).as_str()),
            (401, "jans_stat scope is required for token."),
            "{t}"
        );
    }
    assert!(
        String::from_utf8_lossy(&none.body).starts_with("{\n    \"error\": \"access_denied\""),
        "upstream's 4-space shape"
    );

    // Authorized: then months are validated, in that order.
    let ok = stat(&e, &q, Some("good"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = stat(&e, "start-month=202603&end-month=202603", Some("good"));
    assert_eq!(
        (
            bad.status,
            reason(&bad).contains("start-month must be before end-month")
        ),
        (400, true)
    );
    let unauthorized_and_bad = stat(&e, "", None);
    assert_eq!(
        unauthorized_and_bad.status, 401,
        "authorization is checked before months"
    );

    // A burst of one bad token: one introspection call (shared and cached).
    let before = fake.with(|s| s.introspections);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let addr = e.addr;
            let q = q.clone();
            std::thread::spawn(move || {
                http(
                    addr,
                    "GET",
                    &format!("{STAT}?{q}"),
                    &[("Authorization", "Bearer burst")],
                    b"",
                )
                .unwrap()
                .status
            })
        })
        .collect();
    assert!(handles.into_iter().all(|h| h.join().unwrap() == 401));
    assert_eq!(fake.with(|s| s.introspections) - before, 1);
    // A positive answer is cached too.
    let before = fake.with(|s| s.introspections);
    assert_eq!(stat(&e, &q, Some("good")).status, 200);
    assert_eq!(fake.with(|s| s.introspections), before);

    // Introspection down: 503 with a JSON error, never a 200.
    fake.fault(
        "/jans-auth/restv1/introspection",
        (0..5).map(|_| Fault::Status(503)),
    );
    let down = stat(&e, &q, Some("not-cached-yet"));
    assert_eq!(down.status, 503);
    assert_eq!(down.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<serde_json::Value>(&down.body).unwrap()["error"].is_string());
}

/// Real callers hold tokens other clients obtained (the Admin UI, a reporting job):
/// Janssen only lets the sidecar introspect those with its own Bearer token.
#[test]
fn tokens_of_other_clients_any_scheme_case_and_array_scopes_are_read_as_janssen_would() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("reporting-job", "openid jans_stat", 300);
    fake.mint("no-scope", "openid profile", 300);
    let e = start(dir.path(), &fake, "");
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let q = format!("month={cur}");
    let with = |header: &str| {
        http(
            e.addr,
            "GET",
            &format!("{STAT}?{q}"),
            &[("Authorization", header)],
            b"",
        )
        .unwrap()
    };
    let ok = with("Bearer reporting-job");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let no_scope = with("Bearer no-scope");
    assert_eq!(
        (no_scope.status, reason(&no_scope).as_str()),
        (401, "jans_stat scope is required for token.")
    );
    for header in [
        "bearer reporting-job",
        "BEARER reporting-job",
        "Bearer   reporting-job  ",
    ] {
        assert_eq!(with(header).status, 200, "{header}");
    }

    // The server keeps the old array format for scopes.
    fake.with(|s| s.scopes_as_array = true);
    fake.mint("array-scoped", "openid jans_stat", 300);
    fake.mint("array-no-scope", "openid jans_stat_reader", 300);
    assert_eq!(with("Bearer array-scoped").status, 200);
    assert_eq!(with("Bearer array-no-scope").status, 401);
}

/// Refused as Bearer, the sidecar falls back to Basic, which answers only for tokens of
/// its own client: those are read, any other stays a 503 naming the sidecar's problem.
#[test]
fn basic_introspection_answers_only_for_the_sidecars_own_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("reporting-job", "openid jans_stat", 300);
    fake.with(|s| s.bearer_introspection_refused = true);
    let e = start(dir.path(), &fake, "");
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let q = format!("month={cur}");
    // A token of the sidecar's own client, as an operator might fetch one.
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let answer = http(
        fake.addr,
        "POST",
        "/jans-auth/restv1/token",
        &[
            ("Authorization", basic.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"grant_type=client_credentials&scope=jans_stat",
    )
    .unwrap();
    let own = serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stat(&e, &q, Some(&own)).status, 200);
    assert_eq!(stat(&e, &q, Some("reporting-job")).status, 503);
}

/// Unauthenticated POSTs that promise a body and never send it must not lock the
/// endpoint: they are answered 401 from their header alone and hold no slot.
#[test]
fn stalled_unauthenticated_posts_never_lock_out_real_callers() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("reporting-job", "openid jans_stat", 300);
    let e = start(dir.path(), &fake, "");
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut c = std::net::TcpStream::connect(e.addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        c.write_all(format!("POST {STAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n").as_bytes()).unwrap();
        stalled.push(c);
    }
    for c in stalled.iter_mut().take(5) {
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 401", "answered from the header alone");
    }
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let ok = http(
        e.addr,
        "POST",
        STAT,
        &[
            ("Authorization", "Bearer reporting-job"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("month={cur}").as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    drop(stalled);
}

/// Upstream's defaults a client could notice: no `reason` unless enabled, a POST reads
/// its form only, a six-digit month that is no real month is 200 with no data.
#[test]
fn error_reasons_posts_and_odd_months_answer_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("reporting-job", "openid jans_stat", 300);
    let e = start_with_reason(dir.path(), &fake, "", false);
    let denied = stat(&e, "month=202611", Some("unknown"));
    assert_eq!(denied.status, 401);
    let v: serde_json::Value = serde_json::from_slice(&denied.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"error": "access_denied", "error_description": "access_denied"}),
        "no reason by default"
    );
    let odd = stat(&e, "month=202613", Some("reporting-job"));
    assert_eq!(
        (odd.status, odd.text().as_str()),
        (200, r#"{"response":[]}"#)
    );
    // A POST with its month in the query only: the form has none, so 400.
    let auth = [
        ("Authorization", "Bearer reporting-job"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let post = http(
        e.addr,
        "POST",
        &format!("{STAT}?month={cur}"),
        &auth,
        b"format=jsonmonth",
    )
    .unwrap();
    assert_eq!(post.status, 400, "{}", post.text());
    let post = http(
        e.addr,
        "POST",
        STAT,
        &auth,
        format!("month={cur}").as_bytes(),
    )
    .unwrap();
    assert_eq!(post.status, 200, "{}", post.text());
}

/// A refusal of the sidecar's own credentials is the sidecar's problem: 503 naming
/// the cause, never a 401 that blames the caller, never a 200.
#[test]
fn introspection_refusing_the_sidecar_is_a_503_that_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("reporting-job", "openid jans_stat", 300);
    fake.with(|s| s.introspection_refuses = true);
    let e = start(dir.path(), &fake, "");
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let r = stat(&e, &format!("month={cur}"), Some("reporting-job"));
    assert_eq!(r.status, 503, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("refused the sidecar's own credentials")),
        "{v}"
    );
    let counted = wait_for(std::time::Duration::from_secs(10), || {
        let m = e.metrics();
        (samples(&m)
            .get("jans_upstream_errors_total{endpoint=\"introspection\",reason=\"auth\"}")
            .copied()
            .unwrap_or(0.0)
            >= 1.0)
            .then_some(())
    });
    assert!(counted.is_some(), "the refusal is counted");
    assert_eq!(
        e.log_text()
            .matches("refused the sidecar's credentials")
            .count(),
        1,
        "logged once, clearly"
    );
    let _ = stat(&e, &format!("month={cur}"), Some("another"));
    assert!(
        e.log_text()
            .matches("refused the sidecar's credentials")
            .count()
            <= 1
    );
}

#[test]
fn answers_from_own_figures_in_both_shapes_get_and_post_and_openmetrics_that_prometheus_parses() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    fake.mint("good", "jans_stat", 300);
    let (prev, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(
        cur,
        999,
        &[
            ("authorization_code", "access_token", 9),
            ("authorization_code", "id_token", 9),
            ("client_credentials", "access_token", 4),
        ],
    );
    let e = start(dir.path(), &fake, "");
    wait_for(Duration::from_secs(10), || {
        e.metrics()
            .contains("jans_tokens_issued_total")
            .then_some(())
    })
    .expect("stat polled");
    let own_mau = sample(
        &e.metrics(),
        &format!("jans_monthly_active_users{{month=\"{cur}\"}}"),
    );

    let r = stat(&e, &format!("month={prev}%20{cur}"), Some("good"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let items = v["response"].as_array().unwrap();
    assert_eq!(items.len(), 1, "a month without data is left out: {v}");
    assert_eq!(items[0]["month"], cur.to_string());
    assert_eq!(
        items[0]["monthly_active_users"].as_f64().unwrap(),
        own_mau,
        "our own sketch, not upstream's 999"
    );
    assert_eq!(
        items[0]["token_count_per_granttype"]["authorization_code"]["id_token"],
        9
    );
    assert_eq!(
        items[0]["token_count_per_granttype"]["client_credentials"]["access_token"],
        4
    );

    // POST form, jsonmonth, range form: the same item.
    let form = format!("start-month={prev}&end-month={cur}&format=JSONMONTH");
    let post = http(
        e.addr,
        "POST",
        STAT,
        &[
            ("Authorization", "Bearer good"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    )
    .unwrap();
    let pv: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(pv["response"][cur.to_string()], items[0]);

    let om = stat(&e, &format!("month={cur}&format=openmetrics"), Some("good"));
    let text = om.text();
    assert!(
        text.contains(&format!(
            "access_token{{month=\"{cur}\",grantType=\"client_credentials\",}} 4.0\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "id_token{{month=\"{cur}\",grantType=\"client_credentials\",}} 0.0\n"
        )),
        "zero-filled: {text}"
    );
    if require_tool("promtool") {
        // promtool lints names too (upstream's lack _total); what matters is that it parses.
        let (_, report) = promtool_check_metrics(&om.body);
        assert!(!report.contains("parsing error"), "{report}");
        assert!(
            report.contains("_total"),
            "the lint ran on parsed families: {report}"
        );
    }

    // Limits: an oversized form is refused, a method upstream lacks is 405.
    let big = vec![b'a'; 64 * 1024];
    assert_eq!(
        http(
            e.addr,
            "POST",
            STAT,
            &[("Authorization", "Bearer good")],
            &big
        )
        .unwrap()
        .status,
        413
    );
    assert_eq!(http(e.addr, "DELETE", STAT, &[], b"").unwrap().status, 405);
}

#[test]
fn health_check_echoes_the_last_fresh_answer() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let e = start(dir.path(), &fake, "");
    let body = |m: &str| http(e.addr, m, "/jans-auth/sys/health-check", &[], b"").unwrap();
    wait_for(Duration::from_secs(10), || {
        (body("GET").text() == r#"{"status": "running", "db_status":"online"}"#).then_some(())
    })
    .expect("running");
    assert_eq!(body("POST").status, 200);
    fake.with(|s| s.health = ("running".into(), "offline".into()));
    wait_for(Duration::from_secs(10), || {
        (body("GET").text() == r#"{"status": "running", "db_status":"offline"}"#).then_some(())
    })
    .expect("db offline");
    // Unreachable health check: the answer goes stale, status is no longer running.
    fake.fault(
        "/jans-auth/sys/health-check",
        (0..50).map(|_| Fault::Status(500)),
    );
    wait_for(Duration::from_secs(10), || {
        body("GET")
            .text()
            .contains("\"status\": \"unknown\"")
            .then_some(())
    })
    .expect("stale");
}

#[test]
fn static_tokens_from_hash_token_work_without_an_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let line = hash_token("demo-token");
    assert!(line.starts_with("sha256:") && !line.contains("demo-token"));
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, &line).unwrap();
    let (log, _) = recent_log(dir.path());
    let cfg = format!(
        "[api]\nstatic_tokens_file = {:?}\n",
        tokens.display().to_string()
    );
    let e = Exporter::start(&write_config(dir.path(), &[log], &cfg));
    e.wait_ready();
    let (_, cur) = months_to_poll(chrono::Utc::now());
    let ok = stat(&e, &format!("month={cur}"), Some("demo-token"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("monthly_active_users"));
    assert_eq!(stat(&e, &format!("month={cur}"), Some("other")).status, 401);
    // No upstream: the health check has nothing to say.
    assert_eq!(
        http(e.addr, "GET", "/jans-auth/sys/health-check", &[], b"")
            .unwrap()
            .status,
        503
    );
}
