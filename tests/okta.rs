//! The real binary against a fake Okta System Log: exact counts across pages,
//! duplicates and late events; restarts (SIGKILL mid-stream and clean) counted once;
//! 429 and a spent rate limit without losing a page; the token never shown; a `next`
//! link to another host never followed; OAuth for Okta (`private_key_jwt`) with its
//! access token cached, replaced when refused, and never shown.

mod common;
#[path = "common/fake_okta.rs"]
mod fake_okta;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use fake_okta::{FakeOkta, OAuthApp};
use serde_json::json;

const TOKEN: &str = "00aBcD-okta-api-token-that-must-never-show";

/// What a generated stream of events should give.
#[derive(Default)]
struct Truth {
    /// month (YYYYMM) → distinct billed users.
    users: BTreeMap<u32, BTreeSet<String>>,
    /// authorization server → client-credentials access tokens.
    m2m: BTreeMap<String, u64>,
    billed_user_events: u64,
    events: u64,
}

/// Events as Okta writes them for custom authorization servers: user-based grants of
/// every billed type, client-credentials tokens of servers of different volumes,
/// failures, and grants of the org authorization server (filtered out server-side).
struct Gen {
    rng: fastrand::Rng,
    n: u64,
    truth: Truth,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            n: 0,
            truth: Truth::default(),
        }
    }

    fn uuid(&mut self) -> String {
        self.n += 1;
        format!(
            "{:08x}-{:04x}-11f0-9a3e-{:012x}",
            self.rng.u32(..),
            self.n % 65536,
            self.n
        )
    }

    /// `published` within the last `spread_ms` (out of order on purpose).
    fn published(&mut self, spread_ms: i64) -> (String, u32) {
        let now = chrono::Utc::now().timestamp_millis();
        let t = now - self.rng.i64(0..spread_ms.max(1));
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t).unwrap();
        (
            at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            at.format("%Y%m").to_string().parse().unwrap(),
        )
    }

    /// One event that the filter lets through or not.
    fn event(&mut self, spread_ms: i64) -> serde_json::Value {
        let (published, month) = self.published(spread_ms);
        let uuid = self.uuid();
        let server = ["aus1payments", "aus2mobile", "default", "aus3tiny"]
            [[0, 0, 0, 0, 1, 1, 2, 3][self.rng.usize(0..8)]];
        let user = format!("00u{:05}", self.rng.u32(0..400));
        let pick = self.rng.u32(0..100);
        let (event_type, grant, success, with_user) = match pick {
            0..=34 => (
                "app.oauth2.as.token.grant.access_token",
                "client_credentials",
                true,
                false,
            ),
            35..=39 => (
                "app.oauth2.as.token.grant.access_token",
                "client_credentials",
                false,
                false,
            ),
            40..=54 => (
                "app.oauth2.as.token.grant.access_token",
                "authorization_code",
                true,
                true,
            ),
            55..=64 => (
                "app.oauth2.as.token.grant.id_token",
                "authorization_code",
                true,
                true,
            ),
            65..=72 => (
                "app.oauth2.as.token.grant.refresh_token",
                "refresh_token",
                true,
                true,
            ),
            73..=77 => (
                "app.oauth2.as.authorize.implicit.access_token",
                "implicit",
                true,
                true,
            ),
            78..=81 => (
                "app.oauth2.as.authorize.implicit.id_token",
                "implicit",
                true,
                true,
            ),
            82..=87 => ("app.oauth2.as.token.grant", "password", false, true),
            // The org authorization server: not asked for, not billed.
            _ => (
                "app.oauth2.token.grant.access_token",
                "client_credentials",
                true,
                false,
            ),
        };
        let mut targets =
            vec![json!({"id": server, "type": "AuthorizationServer", "displayName": server})];
        if with_user {
            targets.insert(
                0,
                json!({"id": user, "type": "User", "alternateId": format!("{user}@example.org")}),
            );
        }
        if event_type.starts_with("app.oauth2.as.") {
            self.truth.events += 1;
            if success && grant == "client_credentials" {
                *self.truth.m2m.entry(server.to_string()).or_default() += 1;
            } else if success && with_user {
                self.truth
                    .users
                    .entry(month)
                    .or_default()
                    .insert(user.clone());
                self.truth.billed_user_events += 1;
            }
        }
        json!({
            "uuid": uuid,
            "published": published,
            "eventType": event_type,
            "version": "0",
            "severity": "INFO",
            "displayMessage": "OAuth2 token grant",
            "actor": {"id": "0oa1client", "type": "PublicClientApp", "displayName": "app"},
            "client": {"ipAddress": "10.0.0.9"},
            "outcome": {"result": if success { "SUCCESS" } else { "FAILURE" }, "reason": null},
            "target": targets,
            "debugContext": {"debugData": {"grantType": grant, "requestedScopes": "openid"}},
            "transaction": {"type": "WEB", "id": "tx"},
        })
    }
}

fn start(dir: &Path, okta: &FakeOkta, extra: &str) -> Exporter {
    let token = dir.join("okta-token");
    if !token.exists() {
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    }
    let log = dir.join("audit.log");
    if !log.exists() {
        std::fs::write(&log, b"").unwrap();
    }
    Exporter::start(&okta_config(dir, &log, &okta.base(), &token, extra))
}

fn okta_config(dir: &Path, log: &Path, org: &str, token: &Path, extra: &str) -> PathBuf {
    write_config(
        dir,
        &[log.to_path_buf()],
        &format!(
            "[okta]\norg_url = {org:?}\napi_token_file = {:?}\npoll_interval = \"1s\"\ntimeout = \"2s\"\n{extra}",
            token.display().to_string()
        ),
    )
}

fn value(e: &Exporter, series: &str) -> Option<f64> {
    samples(&e.metrics()).get(series).copied()
}

fn m2m(e: &Exporter) -> BTreeMap<String, u64> {
    samples(&e.metrics())
        .into_iter()
        .filter_map(|(k, v)| {
            let server = k
                .strip_prefix("jans_okta_m2m_tokens_total{authorization_server=\"")?
                .strip_suffix("\"}")?;
            Some((server.to_string(), v as u64))
        })
        .collect()
}

/// Waits until the exporter has read every event of `truth` (and `duplicates` again).
fn wait_all_read(e: &Exporter, truth: &Truth, duplicates: u64) {
    let want = truth.events as f64;
    wait_for(Duration::from_secs(60), || {
        let m = e.metrics();
        let read = family_sum(&m, "jans_okta_events_total");
        let dup = samples(&m)
            .get("jans_okta_duplicate_events_total")
            .copied()
            .unwrap_or(0.0);
        (read == want && dup == duplicates as f64).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "never read {want} events and {duplicates} duplicates:\n{}\n{}",
            e.metrics(),
            e.log_text()
        )
    });
}

fn assert_figures(e: &Exporter, truth: &Truth) {
    assert_eq!(m2m(e), truth.m2m, "M2M tokens by authorization server");
    let m = e.metrics();
    assert_eq!(
        sample(&m, "jans_okta_events_total{flow=\"user\",billed=\"true\"}"),
        truth.billed_user_events as f64
    );
    for (month, users) in &truth.users {
        let got = sample(
            &m,
            &format!("jans_okta_monthly_active_users{{month=\"{month}\"}}"),
        );
        let n = users.len() as f64;
        assert!(
            if n < 100.0 {
                (got - n).abs() <= 1.0
            } else {
                (got - n).abs() / n <= 0.02
            },
            "{month}: {got} users for {n}"
        );
    }
}

#[test]
fn counts_match_the_truth_across_pages_duplicates_and_late_events() {
    let dir = tempfile::tempdir().unwrap();
    let okta = FakeOkta::start(TOKEN);
    let mut gen = Gen::new(1);
    // Two and a half pages of events, published out of order over two days.
    let first: Vec<_> = (0..2600).map(|_| gen.event(2 * 86_400_000)).collect();
    okta.with(|s| first.iter().for_each(|e| s.add(e.clone())));
    let e = start(dir.path(), &okta, "");
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);

    // Polling goes on: late events (published an hour ago, persisted now), and 40
    // events Okta delivers a second time.
    let late: Vec<_> = (0..300).map(|_| gen.event(3_600_000)).collect();
    okta.with(|s| {
        late.iter().for_each(|e| s.add(e.clone()));
        first.iter().take(40).for_each(|e| s.add(e.clone()));
    });
    // Only those of custom authorization servers pass the filter.
    let again = first
        .iter()
        .take(40)
        .filter(|e| {
            e["eventType"]
                .as_str()
                .unwrap()
                .starts_with("app.oauth2.as.")
        })
        .count() as u64;
    assert!(again > 20);
    wait_all_read(&e, &gen.truth, again);
    assert_figures(&e, &gen.truth);

    // The requests: one polling request filtered to the grant types, then each next
    // link exactly as given.
    let requests: Vec<String> = okta.with(|s| s.requests.iter().map(|r| r.1.clone()).collect());
    let q = |r: &str| -> BTreeMap<String, String> {
        form_urlencoded::parse(r.split_once('?').unwrap().1.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let q0 = q(&requests[0]);
    assert!(q0.contains_key("since") && !q0.contains_key("until") && !q0.contains_key("after"));
    assert_eq!(q0["sortOrder"], "ASCENDING");
    assert_eq!(q0["limit"], "1000");
    assert!(q0["filter"].contains("eventType eq \"app.oauth2.as.token.grant.access_token\""));
    assert!(requests[1..].iter().all(|r| q(r).contains_key("after")));
    // Full pages are followed at once, then one request per poll_interval.
    assert!(requests.len() >= 4, "{requests:?}");
    let m = e.metrics();
    assert_eq!(sample(&m, "jans_okta_up"), 1.0);
    assert!(sample(&m, "jans_okta_lag_seconds") < 3.0 * 86_400.0);
    assert!(sample(&m, "jans_okta_rate_limit_remaining") > 0.0);
    let landing = e.get("/", &[]).text();
    assert!(
        landing.contains("System Log: last request answered"),
        "{landing}"
    );
}

#[test]
fn a_restart_mid_stream_and_a_clean_restart_count_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let okta = FakeOkta::start(TOKEN);
    let mut gen = Gen::new(2);
    let events: Vec<_> = (0..5500).map(|_| gen.event(86_400_000)).collect();
    okta.with(|s| {
        events.iter().for_each(|e| s.add(e.clone()));
        // Slow pages, so that the kill lands while pages are still coming.
        s.delay = Duration::from_millis(300);
    });
    let mut e = start(dir.path(), &okta, "");
    let answered =
        |okta: &FakeOkta| okta.with(|s| s.requests.iter().filter(|r| r.2 == 200).count());
    wait_for(Duration::from_secs(30), || {
        (answered(&okta) >= 3).then_some(())
    })
    .expect("pages answered");
    // Let the snapshot catch up with some of them, then crash.
    std::thread::sleep(Duration::from_millis(500));
    e.kill9();
    let before = answered(&okta);
    assert!(
        before < 6,
        "the kill should land mid-stream ({before} pages answered)"
    );

    okta.with(|s| s.delay = Duration::ZERO);
    let requests_before = okta.with(|s| s.requests.len());
    let mut e = start(dir.path(), &okta, "");
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);
    assert_resumed(&okta, requests_before);

    // A clean stop, more events while it is down, and a start: each once.
    assert!(e.terminate(Duration::from_secs(20)).is_some());
    let more: Vec<_> = (0..700).map(|_| gen.event(600_000)).collect();
    okta.with(|s| more.iter().for_each(|e| s.add(e.clone())));
    let requests_before = okta.with(|s| s.requests.len());
    let e = start(dir.path(), &okta, "");
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);
    assert_resumed(&okta, requests_before);
    // Nothing was counted twice by luck of de-duplication: none was even received.
    assert_eq!(value(&e, "jans_okta_duplicate_events_total"), Some(0.0));
}

/// The first request of a restarted exporter continues from its saved `next` link.
fn assert_resumed(okta: &FakeOkta, requests_before: usize) {
    let first = okta.with(|s| s.requests[requests_before].1.clone());
    assert!(
        first.contains("after=c") && !first.contains("since="),
        "not resumed from the checkpoint: {first}"
    );
}

#[test]
fn a_429_and_a_spent_rate_limit_lose_no_page() {
    let dir = tempfile::tempdir().unwrap();
    let okta = FakeOkta::start(TOKEN);
    let mut gen = Gen::new(3);
    let events: Vec<_> = (0..4200).map(|_| gen.event(86_400_000)).collect();
    okta.with(|s| {
        events.iter().for_each(|e| s.add(e.clone()));
        // Three requests per two-second window; and a 429 (reset 2 s ahead) first.
        s.rate_limit = 3;
        s.window = Duration::from_secs(2);
        s.forced_429.push_back(2);
    });
    let e = start(dir.path(), &okta, "");
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);
    let requests = okta.with(|s| s.requests.clone());
    // The forced 429, then nothing until its reset; and the spent window waited for,
    // never answered with another 429.
    let rejected: Vec<_> = requests.iter().filter(|r| r.2 == 429).collect();
    assert_eq!(rejected.len(), 1, "{requests:?}");
    let after_429 = requests.iter().find(|r| r.0 > rejected[0].0).unwrap();
    assert!(
        after_429.0 - rejected[0].0 >= 1_000,
        "retried {} ms after a 429 whose reset was 2 s ahead",
        after_429.0 - rejected[0].0
    );
    assert_eq!(
        value(&e, "jans_okta_errors_total{reason=\"rate_limited\"}"),
        Some(1.0)
    );
}

#[test]
fn the_token_never_shows_and_a_next_link_elsewhere_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let okta = FakeOkta::start(TOKEN);
    let elsewhere = FakeOkta::start(TOKEN);
    let mut gen = Gen::new(4);
    let events: Vec<_> = (0..50).map(|_| gen.event(60_000)).collect();
    okta.with(|s| {
        events.iter().for_each(|e| s.add(e.clone()));
        s.next_origin = Some(elsewhere.base());
    });
    let e = start(dir.path(), &okta, "");
    wait_all_read(&e, &gen.truth, 0);
    wait_for(Duration::from_secs(30), || {
        value(&e, "jans_okta_errors_total{reason=\"decode\"}").filter(|n| *n >= 1.0)
    })
    .unwrap();
    // The first page counted; the link to another host never followed.
    assert!(elsewhere.with(|s| s.requests.is_empty()));
    let landing = e.get("/", &[]).text();
    assert!(
        landing.contains("System Log: last request <strong>failed</strong>"),
        "{landing}"
    );
    // A wrong token: auth errors, not up; the token appears nowhere.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::write(wrong.path().join("okta-token"), "wrong-token").unwrap();
    let refused = start(wrong.path(), &okta, "");
    wait_for(Duration::from_secs(30), || {
        value(&refused, "jans_okta_errors_total{reason=\"auth\"}").filter(|n| *n >= 1.0)
    })
    .unwrap_or_else(|| panic!("{}", refused.metrics()));
    assert_eq!(value(&refused, "jans_okta_up"), Some(0.0));
    assert!(refused.log_text().contains("okta request failed"));
    for exporter in [&e, &refused] {
        for text in [
            exporter.log_text(),
            exporter.metrics(),
            exporter.get("/", &[]).text(),
        ] {
            assert!(
                !text.contains(TOKEN) && !text.contains("wrong-token"),
                "{text}"
            );
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The exporter as an Okta service app: its client id and private key instead of a
/// token.
fn start_oauth(dir: &Path, okta: &FakeOkta, key: &str) -> Exporter {
    let log = dir.join("audit.log");
    if !log.exists() {
        std::fs::write(&log, b"").unwrap();
    }
    Exporter::start(&write_config(
        dir,
        std::slice::from_ref(&log),
        &format!(
            "[okta]\norg_url = {:?}\nclient_id = \"0oa-exporter\"\nkey_id = \"k1\"\nprivate_key_file = {:?}\npoll_interval = \"1s\"\ntimeout = \"2s\"\n",
            okta.base(),
            fixture(key).display().to_string()
        ),
    ))
}

#[test]
fn oauth_for_okta_signs_in_with_its_key_reuses_its_token_and_replaces_a_refused_one() {
    let dir = tempfile::tempdir().unwrap();
    let okta = FakeOkta::start(TOKEN);
    let public = std::fs::read(fixture("okta-service-app-test-key.pub.pem")).unwrap();
    let mut gen = Gen::new(5);
    let events: Vec<_> = (0..2300).map(|_| gen.event(86_400_000)).collect();
    okta.with(|s| {
        let mut app = OAuthApp::new("0oa-exporter", public);
        // Reused for 3 s (Okta's 3600 s less the exporter's margin, scaled down).
        app.expires_in = 8;
        s.oauth = Some(app);
        events.iter().for_each(|e| s.add(e.clone()));
    });
    let e = start_oauth(dir.path(), &okta, "okta-service-app-test-key.pem");
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);
    // Three pages at once on one token.
    let (tokens, logs) = okta.with(|s| {
        let app = s.oauth.as_ref().unwrap();
        (
            app.token_requests.clone(),
            s.requests
                .iter()
                .filter(|r| r.1.starts_with("/api/v1/logs"))
                .count(),
        )
    });
    assert!(tokens.iter().all(|t| t.1 == 200), "{tokens:?}");
    assert!(
        logs >= 3 && tokens.len() < logs,
        "{} token requests for {logs} pages",
        tokens.len()
    );

    // Okta revokes the token: the next request is refused, a new token asked for and
    // the request made again; no page lost, nothing counted as failed.
    let refused_before = okta.with(|s| s.requests.iter().filter(|r| r.2 == 401).count());
    okta.with(|s| s.oauth.as_mut().unwrap().issued.clear());
    let more: Vec<_> = (0..150).map(|_| gen.event(60_000)).collect();
    okta.with(|s| more.iter().for_each(|e| s.add(e.clone())));
    wait_all_read(&e, &gen.truth, 0);
    assert_figures(&e, &gen.truth);
    assert_eq!(
        okta.with(|s| s.requests.iter().filter(|r| r.2 == 401).count()),
        refused_before + 1
    );
    assert_eq!(
        value(&e, "jans_okta_errors_total{reason=\"auth\"}"),
        Some(0.0)
    );
    assert_eq!(value(&e, "jans_okta_up"), Some(1.0));

    // A key the app does not know: refused by the token endpoint, `auth`, not up.
    let other = tempfile::tempdir().unwrap();
    let wrong = start_oauth(other.path(), &okta, "okta-service-app-test-ec-key.pem");
    wait_for(Duration::from_secs(30), || {
        value(&wrong, "jans_okta_errors_total{reason=\"auth\"}").filter(|n| *n >= 1.0)
    })
    .unwrap_or_else(|| panic!("{}", wrong.metrics()));
    assert_eq!(value(&wrong, "jans_okta_up"), Some(0.0));
    assert!(
        wrong.log_text().contains("invalid_client"),
        "{}",
        wrong.log_text()
    );

    // Neither an access token nor the key shows anywhere.
    let issued: Vec<String> = okta.with(|s| {
        s.oauth
            .as_ref()
            .unwrap()
            .issued
            .iter()
            .map(|t| t.0.clone())
            .collect()
    });
    assert!(!issued.is_empty());
    let key_body = std::fs::read_to_string(fixture("okta-service-app-test-key.pem")).unwrap();
    let key_line = key_body.lines().nth(1).unwrap();
    for exporter in [&e, &wrong] {
        for text in [
            exporter.log_text(),
            exporter.metrics(),
            exporter.get("/", &[]).text(),
        ] {
            assert!(!text.contains(key_line), "{text}");
            assert!(!text.contains("eyJfake"), "{text}");
        }
    }
}
