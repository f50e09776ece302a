//! TEMPORARY: writes tests/fixtures/state-v1-full.{json,prom} with the v1 binary.
mod common;
#[path = "common/fake_janssen.rs"]
mod fake_janssen;

use std::time::Duration;

use common::*;
use fake_janssen::*;
use jans_exporter::upstream::stat::months_to_poll;

fn entry(
    id: &str,
    ts: i64,
    op: &str,
    status: &str,
    auth: &str,
    ms: u64,
    cat: Option<&str>,
    fb: Option<&str>,
) -> serde_json::Value {
    let mut e = serde_json::json!({"id": id, "timestamp": ts, "userId": format!("u-{id}"), "username": format!("user-{id}"),
        "operationType": op, "status": status, "authenticatorType": auth, "durationMs": ms, "nodeId": "AA-A9-49-E1-A1-3E"});
    if let Some(c) = cat {
        e["errorCategory"] = c.into();
    }
    if let Some(f) = fb {
        e["fallbackMethod"] = f.into();
    }
    e
}

#[test]
#[ignore]
fn write_v1_full_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeJanssen::start();
    let (prev, cur) = months_to_poll(chrono::Utc::now());
    fake.set_tokens(
        prev,
        5,
        &[
            ("authorization_code", "access_token", 3),
            ("client_credentials", "access_token", 12),
            ("authorization_code", "id_token", 2),
        ],
    );
    fake.set_tokens(
        cur,
        7,
        &[
            ("authorization_code", "access_token", 9),
            ("urn:x:custom", "access_token", 1),
            ("refresh_token", "refresh_token", 4),
        ],
    );
    let now = chrono::Utc::now().timestamp_millis();
    fake.with(|s| {
        s.fido2_entries = vec![
            entry(
                "a",
                now - 30_000,
                "AUTHENTICATION",
                "SUCCESS",
                "security-key",
                900,
                None,
                None,
            ),
            entry(
                "b",
                now - 29_000,
                "REGISTRATION",
                "SUCCESS",
                "cross-platform",
                4000,
                None,
                None,
            ),
            entry(
                "c",
                now - 28_000,
                "AUTHENTICATION",
                "FAILURE",
                "platform",
                31000,
                Some("USER_CANCELLED"),
                None,
            ),
            entry(
                "d",
                now - 27_000,
                "AUTHENTICATION",
                "FAILURE",
                "platform",
                120,
                Some("TIMEOUT"),
                None,
            ),
            entry(
                "e",
                now - 26_000,
                "FALLBACK",
                "ATTEMPT",
                "platform",
                50,
                None,
                Some("PASSWORD"),
            ),
            entry(
                "f",
                now - 25_000,
                "FALLBACK",
                "ATTEMPT",
                "platform",
                50,
                None,
                Some("OTP"),
            ),
            entry(
                "g",
                now - 24_000,
                "AUTHENTICATION",
                "ATTEMPT",
                "platform",
                10,
                None,
                None,
            ),
        ];
    });
    // Errors of several reasons on several endpoints.
    fake.fault("/jans-auth/restv1/internal/stat", [Fault::Status(500)]);
    fake.fault(
        "/jans-auth/sys/health-check",
        [Fault::Garbage, Fault::Status(404)],
    );
    let mut w = LogWriter::new(dir.path(), 7);
    w.write(300);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&w.live)
            .unwrap();
        f.write_all(b"a stray line outside any record\n").unwrap();
    }
    w.write(50);
    // Two more logs: one in October, one over the last two days (days and weeks filled).
    use jans_exporter::generate::{write_record, Generator, Layout, Spec};
    let mut paths = vec![w.pattern()];
    for (name, start, gap) in [
        ("october.log", 1_792_454_400_000i64, 60_000i64),
        ("recent.log", now - 2 * 86_400_000, 600_000),
    ] {
        let mut bytes = Vec::new();
        for r in Generator::new(Spec {
            seed: 3,
            start_ms: start,
            mean_gap_ms: gap,
            ..Spec::default()
        })
        .take(200)
        {
            write_record(&mut bytes, Layout::Text, &r, 0).unwrap();
        }
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    let upstream = format!(
        "[upstream]\nbase_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nstat_interval = \"1s\"\nhealth_interval = \"1s\"\nfido2_interval = \"1s\"\ntimeout = \"500ms\"\nfido2_overlap = \"60s\"\n",
        fake.base()
    );
    let mut exporter = Exporter::start(&write_config(dir.path(), &paths, &upstream));
    let m = wait_for(Duration::from_secs(30), || {
        let m = exporter.metrics();
        let s = samples(&m);
        let ok = s.get("jans_exporter_fido2_duplicate_entries_total").copied().unwrap_or(0.0) >= 7.0
            && s.get("jans_upstream_errors_total{endpoint=\"health\",reason=\"http_4xx\"}").copied() == Some(1.0)
            && s.get("jans_upstream_errors_total{endpoint=\"stat\",reason=\"http_5xx\"}").copied() == Some(1.0)
            && s.get("jans_tokens_issued_total{grant_type=\"authorization_code\",token_type=\"access_token\"}").copied() == Some(12.0)
            && s.get("jans_exporter_records_total{format=\"jans-audit-text\"}").copied() == Some(750.0);
        ok.then_some(m)
    }).expect("all figures");
    let _ = m;
    // The final scrape, then a clean stop that saves.
    let text = exporter.get("/metrics", &[("accept", "text/plain")]).text();
    exporter
        .terminate(Duration::from_secs(10))
        .expect("stopped");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    std::fs::copy(
        dir.path().join("state/state.json"),
        format!("{fixtures}/state-v1-full.json"),
    )
    .unwrap();
    std::fs::write(format!("{fixtures}/state-v1-full.prom"), text).unwrap();
}

#[test]
#[ignore]
fn write_v1_full_reference() {
    use jans_exporter::store::persist::{Loaded, StateFile};
    use jans_exporter::store::{Published, Store, StoreConfig};
    use jans_exporter::view::metrics::{
        encode_openmetrics, openmetrics_to_prometheus_text, registry,
    };
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{fixtures}/state-v1-full.json"),
        dir.path().join("state.json"),
    )
    .unwrap();
    let Loaded::Snapshot(s) = StateFile::new(dir.path()).load() else {
        panic!()
    };
    let at = s.saved_at_ms;
    let active: Vec<_> = jans_exporter::generate::DEFAULT_ACTIVE
        .iter()
        .map(|a| jans_exporter::event::Action::from_name(a))
        .collect();
    let cfg = StoreConfig::new(14, 13, &active);
    let mut store = Store::restore(cfg, *s);
    store.apply_event(&jans_exporter::event::Event::Fido2Health { up: true });
    let published = std::sync::Arc::new(Published::default());
    published.store(store.view(at));
    let text = openmetrics_to_prometheus_text(&encode_openmetrics(&registry(published, None)));
    std::fs::write(format!("{fixtures}/state-v1-full.prom"), text).unwrap();
}
