//! End to end with the real Prometheus and Alertmanager (Debian packages, installed by
//! `.ci/run`): the exporter and a fake Janssen are scraped by Prometheus with the
//! shipped rules. Healthy flows as a real jans-auth writes them (5 % wrong passwords,
//! redirects to the login and consent pages, device-code polling, revocations) leave
//! every alert silent; a burst of 70 % wrong passwords must reach an Alertmanager
//! webhook as the login alert, and nothing else. Everything binds to 127.0.0.1 and is
//! stopped by PID.

mod common;
#[path = "common/fake_janssen.rs"]
mod fake_janssen;
#[path = "common/fake_okta.rs"]
mod fake_okta;
#[path = "common/redis_server.rs"]
mod redis_server;

use redis_server::free_port;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fake_janssen::*;
use jans_exporter::generate::flows::{write_entries, FlowSpec, Flows};
use jans_exporter::generate::Layout;

/// A daemon killed by PID when dropped, pass or fail.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String], log: &Path) -> Daemon {
    let log = std::fs::File::create(log).unwrap();
    Daemon(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}")),
    )
}

fn wait_ready(port: u16, what: &str, log: &Path) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let ready = wait_for(Duration::from_secs(30), || {
        http(addr, "GET", "/-/ready", &[], b"")
            .ok()
            .filter(|r| r.status == 200)
    });
    assert!(
        ready.is_some(),
        "{what} not ready:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A webhook receiver on loopback that keeps every body it gets.
fn webhook(stop: Arc<AtomicBool>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&bodies);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length.min(1 << 20)];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// Appends whole flows to the audit log and the server log, a little out of order.
fn append(audit: &Path, server: &Path, flows: &mut Flows, n: usize) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut drift = fastrand::Rng::with_seed(3);
    for _ in 0..n {
        let entries = flows.flow();
        write_entries(&mut a, &mut b, Layout::Text, &entries, 0, Some(&mut drift)).unwrap();
    }
    for (path, bytes) in [(audit, a), (server, b)] {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }
}

fn query(prometheus: u16, promql: &str) -> serde_json::Value {
    let q: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let addr = format!("127.0.0.1:{prometheus}").parse().unwrap();
    let r = http(addr, "GET", &format!("/api/v1/query?query={q}"), &[], b"").unwrap();
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{promql}: {e}: {}", r.text()))
}

#[test]
fn healthy_flows_are_silent_and_a_burst_of_wrong_passwords_pages() {
    if ![
        "prometheus",
        "prometheus-alertmanager",
        "promtool",
        "redis-server",
    ]
    .iter()
    .all(|t| require_tool(t))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The replicas' Redis: the cluster panels and the poller lease are real too.
    let redis = redis_server::RedisServer::start(d).expect("redis-server");

    // The auth server side: a fake Janssen and an audit log with normal traffic.
    let fake = FakeJanssen::start();
    let (_, cur) = jans_exporter::upstream::stat::months_to_poll(chrono::Utc::now());
    fake.set_tokens(
        cur,
        20,
        &[
            ("authorization_code", "access_token", 40),
            ("client_credentials", "access_token", 15),
        ],
    );
    let t = chrono::Utc::now().timestamp_millis() - 30_000;
    fake.with(|s| {
        s.fido2_entries = vec![
            serde_json::json!({"id":"r1","timestamp":t,"username":"a","operationType":"REGISTRATION","status":"SUCCESS","durationMs":800,"authenticatorType":"platform"}),
            serde_json::json!({"id":"a1","timestamp":t + 1,"username":"b","operationType":"AUTHENTICATION","status":"SUCCESS","durationMs":1200,"authenticatorType":"cross-platform"}),
            serde_json::json!({"id":"a2","timestamp":t + 2,"username":"c","operationType":"AUTHENTICATION","status":"FAILURE","durationMs":30000,"authenticatorType":"platform","errorCategory":"USER_CANCELLED"}),
            serde_json::json!({"id":"f1","timestamp":t + 3,"username":"c","operationType":"FALLBACK","status":"ATTEMPT","fallbackMethod":"PASSWORD"}),
        ]
    });
    // And an Okta org next to it: users and M2M tokens of custom authorization servers.
    let okta = fake_okta::FakeOkta::start("okta-e2e-token");
    okta.with(|s| {
        let at = chrono::Utc::now() - chrono::Duration::minutes(5);
        let published = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        for i in 0..30 {
            let (grant, target) = if i % 3 == 0 {
                ("client_credentials", serde_json::json!([{"id":"aus1payments","type":"AuthorizationServer"}]))
            } else {
                ("authorization_code", serde_json::json!([{"id":format!("00u{i}"),"type":"User"},{"id":"aus1payments","type":"AuthorizationServer"}]))
            };
            s.add(serde_json::json!({"uuid":format!("e2e-{i}"),"published":published,"eventType":"app.oauth2.as.token.grant.access_token","outcome":{"result":"SUCCESS"},"actor":{"id":"0oa1","type":"PublicClientApp"},"target":target,"debugContext":{"debugData":{"grantType":grant}}}));
        }
    });
    std::fs::write(d.join("okta-token"), "okta-e2e-token\n").unwrap();
    let log = d.join("jans-auth_audit.log");
    let server_log = d.join("jans-auth.log");
    std::fs::write(&log, b"").unwrap();
    std::fs::write(&server_log, b"").unwrap();
    let upstream = format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nstat_interval = \"2s\"\nhealth_interval = \"1s\"\nfido2_interval = \"2s\"\n[cluster]\nredis_url = \"{}\"\nsync_interval = \"1s\"\n[okta]\norg_url = \"{}\"\napi_token_file = {:?}\npoll_interval = \"1s\"\n",
        fake.base(),
        redis.url(),
        okta.base(),
        d.join("okta-token").display().to_string()
    );
    let exporter = Exporter::start(&write_config(d, &[d.join("jans-auth*.log")], &upstream));
    exporter.wait_ready();

    // Alertmanager with a webhook receiver.
    let stop = Arc::new(AtomicBool::new(false));
    let (hook_port, hook_bodies) = webhook(Arc::clone(&stop));
    let am_port = free_port();
    std::fs::write(
        d.join("alertmanager.yml"),
        format!("route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n        send_resolved: false\n"),
    )
    .unwrap();
    let am_log = d.join("alertmanager.log");
    let _alertmanager = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", d.join("alertmanager.yml").display()),
            format!("--storage.path={}", d.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &am_log,
    );
    wait_ready(am_port, "alertmanager", &am_log);

    // Prometheus with the shipped rules; only `for:` is shortened so the test is bounded.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/alerts/jans-exporter.rules.yml"
    ))
    .unwrap();
    // JansExporterAbsent keeps its own `for:`: before Prometheus's first scrape there
    // is no `up` series, and 5 s would page for that (promtool tests it firing).
    let mut alert = String::new();
    let fast: String = rules
        .lines()
        .map(|l| {
            if let Some(name) = l.trim_start().strip_prefix("- alert: ") {
                alert = name.trim().trim_matches('"').to_string();
            }
            if l.trim_start().starts_with("for:") && alert != "JansExporterAbsent" {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}for: 5s")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("rules.yml"), fast).unwrap();
    let prom_port = free_port();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: jans-exporter\n    static_configs:\n      - targets: ['{}']\n",
            d.join("rules.yml").display(),
            exporter.addr
        ),
    )
    .unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(d.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let prom_log = d.join("prometheus.log");
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", d.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--rules.alert.resend-delay=1s".into(),
        ],
        &prom_log,
    );
    wait_ready(prom_port, "prometheus", &prom_log);
    let scraped = wait_for(Duration::from_secs(30), || {
        let v = query(prom_port, "up{job=\"jans-exporter\"}");
        (v["data"]["result"][0]["value"][1] == "1").then_some(())
    });
    assert!(
        scraped.is_some(),
        "prometheus never scraped the exporter:\n{}",
        std::fs::read_to_string(&prom_log).unwrap_or_default()
    );
    // Healthy traffic: let the rules run a few times over it; nothing may even pend.
    // When the rule group last ran, from Prometheus's own API.
    let last_evaluation = |prom: u16| {
        let addr = format!("127.0.0.1:{prom}").parse().unwrap();
        let r = http(addr, "GET", "/api/v1/rules", &[], b"").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["data"]["groups"][0]["lastEvaluation"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp_millis())
    };
    // Written while Prometheus watches, so the rules see it as a rate, not a start value.
    let mut healthy = Flows::new(FlowSpec {
        start_ms: chrono::Utc::now().timestamp_millis() - 60_000,
        mean_gap_ms: 100,
        ..FlowSpec::default()
    });
    append(&log, &server_log, &mut healthy, 400);
    let has_logins = wait_for(Duration::from_secs(30), || {
        let v = query(
            prom_port,
            "sum(rate(jans_authentications_total{kind=\"user\"}[5m])) > 0 and sum(rate(jans_authorization_requests_total[5m])) > 0",
        );
        (v["data"]["result"].as_array().map_or(0, Vec::len) > 0).then_some(())
    });
    assert!(
        has_logins.is_some(),
        "the rules never saw the healthy traffic as a rate"
    );
    // Eight evaluations after the logins were scraped: `for` is 5 s in this test.
    let seen = chrono::Utc::now().timestamp_millis();
    let evaluated = wait_for(Duration::from_secs(30), || {
        (last_evaluation(prom_port) >= seen + 8_000).then_some(())
    });
    assert!(evaluated.is_some(), "rules not evaluated");
    let quiet = query(prom_port, "ALERTS");
    assert_eq!(
        quiet["data"]["result"].as_array().map_or(0, Vec::len),
        0,
        "healthy flows raised alerts: {quiet}"
    );
    assert!(
        hook_bodies.lock().unwrap().is_empty(),
        "{:?}",
        hook_bodies.lock().unwrap()
    );

    // The burst: flows where 70 % of password attempts are wrong.
    let mut burst = Flows::new(FlowSpec {
        seed: 9,
        start_ms: chrono::Utc::now().timestamp_millis(),
        mean_gap_ms: 20,
        wrong_password_ratio: 0.7,
        ..FlowSpec::default()
    });
    append(&log, &server_log, &mut burst, 400);
    let pending = wait_for(Duration::from_secs(60), || {
        let v = query(
            prom_port,
            "ALERTS{alertname=\"JansAuthenticationFailureRatioHigh\"}",
        );
        (v["data"]["result"].as_array().map_or(0, Vec::len) > 0).then_some(())
    });
    assert!(pending.is_some(), "the login alert never went pending");

    let paged = wait_for(Duration::from_secs(90), || {
        let bodies = hook_bodies.lock().unwrap();
        bodies
            .iter()
            .any(|b| {
                b.contains("\"alertname\":\"JansAuthenticationFailureRatioHigh\"")
                    && b.contains("\"status\":\"firing\"")
            })
            .then_some(())
    });
    let alerts = query(prom_port, "ALERTS");
    assert!(
        paged.is_some(),
        "no page reached the webhook; ALERTS = {alerts}\n{}",
        std::fs::read_to_string(&am_log).unwrap_or_default()
    );

    // Nothing else fires or even pends.
    let names: Vec<String> = alerts["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metric"]["alertname"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "JansAuthenticationFailureRatioHigh"),
        "other alerts: {names:?}"
    );
    for body in hook_bodies.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        for a in v["alerts"].as_array().unwrap() {
            assert_eq!(
                a["labels"]["alertname"], "JansAuthenticationFailureRatioHigh",
                "{body}"
            );
            assert_eq!(a["labels"]["severity"], "critical");
        }
    }

    // Every dashboard expression evaluates, without error and with data.
    for expr in dashboard_expressions() {
        let v = query(prom_port, &expr);
        assert_eq!(v["status"], "success", "{expr}: {v}");
        let result = v["data"]["result"].as_array().map_or(0, Vec::len);
        assert!(result > 0, "{expr}: empty result");
    }
    stop.store(true, Ordering::Relaxed);
}

/// Every panel expression and variable query of every shipped dashboard, with
/// Grafana's variables replaced as "All" would.
fn dashboard_expressions() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards")).unwrap() {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        // Rows carry no targets.
        let exprs = d["panels"].as_array().unwrap().iter().flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        });
        // label_values(metric, label): the metric must have data.
        let vars = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| {
                let q = v["query"]["query"].as_str()?;
                Some(
                    q.strip_prefix("label_values(")?
                        .rsplit_once(',')?
                        .0
                        .to_string(),
                )
            });
        out.extend(exprs.chain(vars));
    }
    out.into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$cluster", ".*")
                .replace("$job", ".*")
                .replace("$namespace", ".*")
                .replace("$instance", ".*")
        })
        .collect()
}
