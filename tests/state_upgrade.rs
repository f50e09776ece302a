//! Every earlier snapshot loads with nothing lost: each committed snapshot with every
//! section filled (version 1 written by the first release's binary, version 2 by the
//! release that introduced it) must give back every figure that release itself
//! restored from it, and keep giving them after being saved again in the current format.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jans_exporter::event::{Action, Event};
use jans_exporter::store::persist::{Loaded, StateFile};
use jans_exporter::store::{Published, Store, StoreConfig};
use jans_exporter::view::metrics::{encode_openmetrics, openmetrics_to_prometheus_text, registry};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/state-v1-full.json"
);
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/state-v1-full.prom"
);

/// Series that are not figures kept in the snapshot: liveness read at run time, the
/// process, and the state file's own size and time.
fn persisted(series: &str) -> bool {
    ![
        "jans_upstream_up",
        "jans_auth_server_",
        "jans_fido2_up",
        "jans_exporter_state_bytes",
        "jans_exporter_state_last_save",
        "jans_exporter_build_info",
        "jans_exporter_log_files ",
        "jans_exporter_log_lag",
    ]
    .iter()
    .any(|p| series.starts_with(p))
}

/// How a snapshot saved by this build starts.
fn current_header() -> String {
    format!("JANSX-STATE {} ", jans_exporter::store::persist::VERSION)
}

/// With a cluster and Okta configured, so that version 4's registers and version 5's
/// Okta section load (earlier versions have none, and a store without them renders the
/// same figures). Two authorization servers kept as labels, as when version 5's
/// fixture was written.
fn config() -> StoreConfig {
    let active: Vec<Action> = jans_exporter::generate::DEFAULT_ACTIVE
        .iter()
        .map(|a| Action::from_name(a))
        .collect();
    let mut c = StoreConfig::new(14, 13, &active);
    c.cluster = true;
    c.okta = Some(2);
    c
}

/// The exposition of a store restored from the snapshot in `dir`, rendered as the
/// reference was (FIDO2 marked up so its families show) at `at_ms`, by default the
/// snapshot's own save time: "the current month" is the fixture's month, whatever
/// today's date.
fn render(dir: &std::path::Path, at_ms: Option<i64>) -> (BTreeMap<String, f64>, i64, usize) {
    let Loaded::Snapshot(p) = StateFile::new(dir).load() else {
        panic!("snapshot did not load")
    };
    assert!(p.dropped.is_empty(), "sections dropped: {:?}", p.dropped);
    let at = at_ms.unwrap_or(p.saved_at_ms);
    let mut store = Store::restore(config(), &p);
    store.apply_event(&Event::Fido2Health { up: true });
    let published = Arc::new(Published::default());
    published.store(store.view(at));
    let text = openmetrics_to_prometheus_text(&encode_openmetrics(&registry(published, None)));
    (samples(&text), at, p.checkpoints.len())
}

/// Filled in the fixtures saved while the FIDO2 figures they hold were current.
const FIDO2_OF_V1: [&str; 2] = [
    "jans_fido2_active_users{period=\"day\"}",
    "jans_exporter_fido2_duplicate_entries_total",
];

#[test]
fn the_full_version_1_snapshot_loads_every_figure_and_survives_a_resave() {
    loads_every_figure_and_survives_a_resave(FIXTURE, REFERENCE, 3, &FIDO2_OF_V1);
}

#[test]
fn the_full_version_2_snapshot_loads_every_figure_and_survives_a_resave() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let reference = format!("{dir}state-v2-full.prom");
    loads_every_figure_and_survives_a_resave(
        &format!("{dir}state-v2-full.json"),
        &reference,
        3,
        &FIDO2_OF_V1,
    );
    // What version 2 added is in it too.
    let reference = samples(&std::fs::read_to_string(reference).unwrap());
    for must in [
        "jans_exporter_records_future_total",
        "jans_upstream_errors_total{endpoint=\"introspection\",reason=\"auth\"}",
        "jans_upstream_request_duration_seconds_count{endpoint=\"introspection\"}",
        "jans_authorization_requests_total{outcome=\"interaction\"}",
        "jans_authentications_total{kind=\"user\",outcome=\"success\"}",
        "jans_authentications_total{kind=\"unknown\",outcome=\"failure\"}",
        "jans_server_log_messages_total{level=\"ERROR\"}",
    ] {
        assert!(reference[must] > 0.0, "{must} is empty in the fixture");
    }
    // The USER_AUTHORIZATION failure saved while waiting for its twin still pairs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/state-v2-full.json"
        ),
        dir.path().join("state.json"),
    )
    .unwrap();
    let Loaded::Snapshot(p) = StateFile::new(dir.path()).load() else {
        panic!("the version 2 fixture did not load")
    };
    assert_eq!(p.pending.authorizations.len(), 1);
    let (twin, at) = p.pending.authorizations[0];
    let mut store = Store::restore(config(), &p);
    store.apply_event(&Event::Audit(jans_exporter::event::AuditEvent {
        format: 0,
        action: Action::UserAuthorization,
        success: false,
        timestamp_ms: at,
        user: None,
        pair_key: Some(twin),
        lossy: false,
    }));
    assert_eq!(store.counters().authorization_requests, [1, 2, 0]);
}

/// Figures a full fixture of every version must hold, whenever it was saved.
const ALWAYS_FILLED: [&str; 5] = [
    "jans_monthly_active_users{month=\"202610\"}",
    "jans_active_users{period=\"week\"}",
    "jans_upstream_errors_total{endpoint=\"health\",reason=\"decode\"}",
    "jans_tokens_issued_total{grant_type=\"authorization_code\",token_type=\"access_token\"}",
    "jans_fido2_errors_total{operation=\"authentication\",category=\"USER_CANCELLED\"}",
];

fn loads_every_figure_and_survives_a_resave(
    fixture: &str,
    reference: &str,
    files: usize,
    also_filled: &[&str],
) {
    let reference = samples(&std::fs::read_to_string(reference).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture, dir.path().join("state.json")).unwrap();
    let (v1, at, checkpoints) = render(dir.path(), None);
    assert_eq!(checkpoints, files);

    let mut compared = 0;
    for (series, want) in reference.iter().filter(|(s, _)| persisted(s)) {
        let got = v1.get(series).copied();
        assert_eq!(got, Some(*want), "{series} after loading {fixture}");
        compared += 1;
    }
    // The fixture is only a proof if its sections are really filled.
    assert!(compared > 150, "compared {compared} series");
    for must in ALWAYS_FILLED.iter().chain(also_filled) {
        assert!(reference[*must] > 0.0, "{must} is empty in the fixture");
    }

    // Saved again in the current format and loaded back: the same figures.
    let Loaded::Snapshot(p) = StateFile::new(dir.path()).load() else {
        panic!()
    };
    let store = Store::restore(config(), &p);
    let again = tempfile::tempdir().unwrap();
    StateFile::new(again.path())
        .save(&store.snapshot_out())
        .unwrap();
    let head = std::fs::read(again.path().join("state.json")).unwrap();
    assert!(head.starts_with(current_header().as_bytes()));
    // Rendered at the fixture's time: a resave is stamped now, and the current day,
    // week and month of now are not the fixture's.
    let (v2, _, checkpoints) = render(again.path(), Some(at));
    assert_eq!(checkpoints, files);
    for (series, want) in reference.iter().filter(|(s, _)| persisted(s)) {
        assert_eq!(v2.get(series), Some(want), "{series} after a resave");
    }
}

/// The real binary started on the version-1 snapshot carries on from it.
#[test]
fn the_binary_continues_from_a_version_1_snapshot() {
    let reference = samples(&std::fs::read_to_string(REFERENCE).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::copy(FIXTURE, dir.path().join("state/state.json")).unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let mut exporter = Exporter::start(&write_config(dir.path(), &[log], ""));
    exporter.wait_ready();
    let m = samples(&exporter.metrics());
    for series in [
        "jans_audit_events_total{action=\"TOKEN_REQUEST\",outcome=\"success\"}",
        "jans_exporter_records_total{format=\"jans-audit-text\"}",
        "jans_monthly_active_users{month=\"202610\"}",
        "jans_monthly_active_users{month=\"202611\"}",
        "jans_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}",
        "jans_upstream_errors_total{endpoint=\"stat\",reason=\"http_5xx\"}",
        "jans_fido2_operations_total{operation=\"authentication\",status=\"failure\",authenticator=\"platform\"}",
        "jans_exporter_parse_errors_total{format=\"jans-audit-text\",reason=\"unexpected_line\"}",
    ] {
        assert_eq!(m.get(series), reference.get(series), "{series}");
    }
    // The three logs of the fixture are gone: lost, and said so.
    assert_eq!(m["jans_exporter_log_files_lost_total"], 3.0);
    assert_eq!(m["jans_exporter_state_load_failures_total"], 0.0);
    exporter
        .terminate(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    let saved = std::fs::read(dir.path().join("state/state.json")).unwrap();
    assert!(
        saved.starts_with(current_header().as_bytes()),
        "saved in the current format"
    );
}

/// Version 3 (written by the release that introduced it, from the version-2 fixture
/// plus a day of flows): every earlier figure, and what version 3 added, the closed
/// files with where each stopped.
#[test]
fn the_full_version_3_snapshot_loads_every_figure_and_survives_a_resave() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    loads_every_figure_and_survives_a_resave(
        &format!("{dir}state-v3-full.json"),
        &format!("{dir}state-v3-full.prom"),
        1,
        &[
            "jans_exporter_fido2_duplicate_entries_total",
            "jans_active_users{period=\"day\"}",
        ],
    );
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{dir}state-v3-full.json"),
        state.path().join("state.json"),
    )
    .unwrap();
    let Loaded::Snapshot(p) = StateFile::new(state.path()).load() else {
        panic!("the version 3 fixture did not load")
    };
    let closed_len = std::fs::metadata(format!("{dir}state-v3-closed-audit.log"))
        .unwrap()
        .len();
    assert_eq!(p.closed.len(), 1);
    assert_eq!(p.closed[0].resume.offset, closed_len, "read to its end");
    // Kept through a resave.
    let store = Store::restore(config(), &p);
    assert_eq!(store.closed_files().count(), 1);
}

/// The real binary on the version-3 snapshot: the file it had closed, back under a
/// matched name and grown, is read from where it stopped: only the new records count.
#[test]
fn the_binary_resumes_a_closed_file_from_a_version_3_snapshot() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let reference =
        samples(&std::fs::read_to_string(format!("{fixtures}state-v3-full.prom")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::copy(
        format!("{fixtures}state-v3-full.json"),
        dir.path().join("state/state.json"),
    )
    .unwrap();
    let back = dir.path().join("jans-auth_audit-2026-12-02-1.log");
    std::fs::copy(format!("{fixtures}state-v3-closed-audit.log"), &back).unwrap();
    let mut more = Vec::new();
    let mut truth = jans_exporter::generate::Truth::default();
    for r in jans_exporter::generate::Generator::new(jans_exporter::generate::Spec {
        seed: 99,
        ..Default::default()
    })
    .take(6)
    {
        truth.observe(&r, &jans_exporter::generate::DEFAULT_ACTIVE);
        jans_exporter::generate::write_record(
            &mut more,
            jans_exporter::generate::Layout::Text,
            &r,
            0,
        )
        .unwrap();
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&back)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &more))
        .unwrap();
    let config = write_config(dir.path(), &[dir.path().join("jans-auth_audit*.log")], "");
    let exporter = Exporter::start(&config);
    exporter.wait_ready();
    let before = family_sum_of(&reference, "jans_audit_events_total");
    let m = wait_for_records(&exporter, before as u64 + truth.records);
    assert_eq!(
        family_sum(&m, "jans_audit_events_total") as u64,
        before as u64 + truth.records,
        "only the records written after it was closed count"
    );
    // The fixture's three lost files, and its followed server log, absent here; the
    // closed file is not lost, it was found again.
    assert_eq!(sample(&m, "jans_exporter_log_files_lost_total"), 4.0);
}

/// Version 4 (written by the release that introduced it, from the version-3 fixture:
/// a run whose Redis could not be reached, then one with Redis, the FIDO2 API and a
/// day of flows): every earlier figure, the cluster's sync figures, and the registers
/// of both user sets for every kind of period, bit for bit through a resave.
#[test]
fn the_full_version_4_snapshot_loads_every_figure_and_the_cluster_registers() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let fixture = format!("{dir}state-v4-full.json");
    let reference = format!("{dir}state-v4-full.prom");
    loads_every_figure_and_survives_a_resave(
        &fixture,
        &reference,
        2,
        &[
            "jans_exporter_fido2_duplicate_entries_total",
            "jans_fido2_active_users{period=\"month\"}",
            "jans_cluster_sync_errors_total{reason=\"connect\"}",
            "jans_cluster_sync_duration_seconds_count",
            "jans_cluster_last_sync_timestamp_seconds",
            "jans_tokens_issued_total{grant_type=\"client_credentials\",token_type=\"access_token\"}",
        ],
    );
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, state.path().join("state.json")).unwrap();
    let Loaded::Snapshot(p) = StateFile::new(state.path()).load() else {
        panic!("the version 4 fixture did not load")
    };
    // Every set and kind is in the fixture.
    for set in ["users", "fido2_users"] {
        for kind in ["day", "week", "month"] {
            let periods = &p.cluster_registers[&(set.to_string(), kind.to_string())];
            assert!(!periods.is_empty(), "{set} {kind}");
        }
    }
    let saved: BTreeMap<(String, String, u32), Vec<u8>> = p
        .cluster_registers
        .iter()
        .flat_map(|((set, kind), periods)| {
            periods.iter().map(move |(period, packed)| {
                let r =
                    jans_exporter::store::redis_hll::RedisRegisters::from_packed(packed).unwrap();
                ((set.clone(), kind.clone(), *period), r.to_dense_hyll())
            })
        })
        .collect();
    let restored = |store: &Store| -> BTreeMap<(String, String, u32), Vec<u8>> {
        store
            .cluster_registers()
            .into_iter()
            .map(|r| {
                (
                    (
                        r.set.as_str().to_string(),
                        r.kind.as_str().to_string(),
                        r.key,
                    ),
                    r.hyll,
                )
            })
            .collect()
    };
    let store = Store::restore(config(), &p);
    assert_eq!(restored(&store), saved);
    let again = tempfile::tempdir().unwrap();
    StateFile::new(again.path())
        .save(&store.snapshot_out())
        .unwrap();
    let Loaded::Snapshot(p) = StateFile::new(again.path()).load() else {
        panic!("the resave did not load")
    };
    assert_eq!(restored(&Store::restore(config(), &p)), saved);
}

/// Version 5 (written by the release that introduced it: its store restored from the
/// version-4 fixture, then a System Log page read by its Okta parser and the outcomes
/// of ten requests applied, and saved): every earlier figure, every Okta figure, and
/// the Okta section (the `next` link, the event ids seen, the authorization servers
/// admitted as labels) through a resave.
#[test]
fn the_full_version_5_snapshot_loads_every_figure_and_the_okta_checkpoint() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let fixture = format!("{dir}state-v5-full.json");
    let reference = format!("{dir}state-v5-full.prom");
    loads_every_figure_and_survives_a_resave(
        &fixture,
        &reference,
        2,
        &[
            "jans_cluster_last_sync_timestamp_seconds",
            "jans_okta_active_users{period=\"day\"}",
            "jans_okta_active_users{period=\"week\"}",
            "jans_okta_monthly_active_users{month=\"202611\"}",
            "jans_okta_monthly_active_users{month=\"202612\"}",
            "jans_okta_m2m_tokens_total{authorization_server=\"aus1payments\"}",
            "jans_okta_m2m_tokens_total{authorization_server=\"other\"}",
            "jans_okta_m2m_tokens_total{authorization_server=\"unknown\"}",
            "jans_okta_events_total{flow=\"user\",billed=\"false\"}",
            "jans_okta_events_total{flow=\"other\",billed=\"false\"}",
            "jans_okta_skipped_events_total{reason=\"malformed\"}",
            "jans_okta_skipped_events_total{reason=\"no_user\"}",
            "jans_okta_duplicate_events_total",
            "jans_okta_errors_total{reason=\"rate_limited\"}",
            "jans_okta_errors_total{reason=\"decode\"}",
            "jans_okta_request_duration_seconds_count",
            "jans_okta_last_success_timestamp_seconds",
            "jans_okta_newest_event_timestamp_seconds",
        ],
    );
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, state.path().join("state.json")).unwrap();
    let Loaded::Snapshot(p) = StateFile::new(state.path()).load() else {
        panic!("the version 5 fixture did not load")
    };
    let okta = p.okta.clone();
    assert!(okta
        .next
        .as_deref()
        .is_some_and(|n| n.starts_with("https://acme.okta.com/api/v1/logs?after=1796318900000_9")));
    // Every counted event's id, and the admitted servers, are in the fixture.
    assert_eq!(okta.seen.len(), 362);
    let store = Store::restore(config(), &p);
    assert_eq!(store.okta_next(), okta.next);
    let again = tempfile::tempdir().unwrap();
    StateFile::new(again.path())
        .save(&store.snapshot_out())
        .unwrap();
    let Loaded::Snapshot(p) = StateFile::new(again.path()).load() else {
        panic!("the resave did not load")
    };
    assert_eq!(p.okta, okta, "the Okta section after a resave");
    // The ids are really used: the same event again is a duplicate, not a count.
    let mut store = Store::restore(config(), &p);
    let before = store.view(p.saved_at_ms);
    let seen_id = okta.seen[0].0;
    store.apply_event(&Event::Okta(jans_exporter::event::OktaEvent {
        id: seen_id,
        published_ms: p.saved_at_ms,
        kind: jans_exporter::event::OktaKind::M2m(Some("aus1payments".into())),
    }));
    let after = store.view(p.saved_at_ms);
    let (b, a) = (before.okta.unwrap(), after.okta.unwrap());
    assert_eq!(a.duplicates, b.duplicates + 1);
    assert_eq!(a.m2m_tokens, b.m2m_tokens);
}

fn family_sum_of(samples: &BTreeMap<String, f64>, family: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{family}{{")))
        .map(|(_, v)| v)
        .sum()
}
