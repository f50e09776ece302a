//! Documentation that must not drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jans_exporter::config::Config;
use jans_exporter::store::{Published, View};
use jans_exporter::view::metrics::{
    encode_openmetrics, openmetrics_to_prometheus_text, registry, ProcessInfo,
};

/// Every family with its type and label names, from a fully populated exposition.
fn exposed() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let published = Arc::new(Published::default());
    let mut view = View::default();
    view.counters.last_record_ms = Some(1);
    view.monthly = vec![(202611, 1)];
    view.state.last_save_ms = Some(1);
    view.tail.matched = vec![("/logs/jans-auth_audit*.log".into(), 1)];
    // Every upstream family, as after a round of successful polls.
    let mut up = jans_exporter::store::upstream::UpstreamFigures::new(14, 13);
    let h = jans_exporter::store::sketch::Horizon::default();
    up.call(&jans_exporter::upstream::Call {
        endpoint: jans_exporter::upstream::Endpoint::Stat,
        result: Ok(()),
        seconds: 0.1,
        at_ms: 1,
    });
    let body = serde_json::json!({"response":[{"month":"202611","monthly_active_users":1,"token_count_per_granttype":{"password":{"access_token":2}}}]});
    up.stat(&jans_exporter::upstream::stat::parse(&body).unwrap());
    up.health(&jans_exporter::upstream::health::HealthReport {
        running: true,
        starting: false,
        db_online: true,
        at_ms: 1,
    });
    up.fido2_health(true);
    let entries = serde_json::json!([
        {"id":"a","timestamp":1,"operationType":"AUTHENTICATION","status":"FAILURE","durationMs":5,"authenticatorType":"platform","errorCategory":"USER_CANCELLED"},
        {"id":"b","timestamp":1,"operationType":"FALLBACK","status":"ATTEMPT","fallbackMethod":"PASSWORD"}]);
    for e in jans_exporter::upstream::fido2::parse_entries(&entries).unwrap() {
        up.fido2(&e, &h);
    }
    // The cluster's families, as after one sync that answered every current period.
    let mut cluster = jans_exporter::store::cluster::ClusterFigures::new(13);
    use jans_exporter::event::{ClusterReport, PeriodCount, PeriodKind, UserSet};
    let k = jans_exporter::store::sketch::PeriodKeys::of(1).unwrap();
    let mut counts = Vec::new();
    for set in UserSet::ALL {
        for (kind, key) in [
            (PeriodKind::Day, k.day),
            (PeriodKind::Week, k.week),
            (PeriodKind::Month, k.month),
        ] {
            counts.push(PeriodCount {
                set,
                kind,
                key,
                users: 1,
            });
        }
    }
    cluster.report(&ClusterReport::Synced {
        at_ms: 1,
        duration_seconds: 0.01,
        counts,
    });
    up.leadership(&jans_exporter::event::Leadership::Alone);
    view.upstream = up.view(1);
    view.cluster = Some(cluster.view(1));
    // The Okta families, as after a page with a user and an M2M grant.
    let mut okta = jans_exporter::store::okta::OktaFigures::new(14, 13, 10);
    use jans_exporter::event::{OktaCall, OktaEvent, OktaKind, UserKey};
    for (id, kind) in [
        (1, OktaKind::User(UserKey::of("u"))),
        (2, OktaKind::M2m(Some("aus1".into()))),
    ] {
        okta.event(
            &OktaEvent {
                id,
                published_ms: 1,
                kind,
            },
            &h,
            1,
        );
    }
    okta.call(&OktaCall {
        result: Ok(()),
        seconds: 0.1,
        at_ms: 1,
        next: Some("https://acme.okta.com/api/v1/logs?after=1".into()),
        rate_limit_remaining: Some(10),
    });
    view.okta = Some(okta.view(1));
    published.store(view);
    let process: Arc<dyn ProcessInfo> = Arc::new(jans_exporter::process::ProcSelf);
    let text =
        openmetrics_to_prometheus_text(&encode_openmetrics(&registry(published, Some(process))));
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_string(), (kind.to_string(), BTreeSet::new()));
        } else if !line.starts_with('#') {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            // Histogram samples belong to the family without their suffix.
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| families.get(*base).is_some_and(|f| f.0 == "histogram"))
                .unwrap_or(name);
            let family = families
                .get_mut(name)
                .unwrap_or_else(|| panic!("sample {name} outside its family"));
            for pair in labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty() && !p.starts_with("le="))
            {
                family.1.insert(pair.split('=').next().unwrap().to_string());
            }
        }
    }
    families
}

/// The table rows of docs/metrics.md: name → (type, labels).
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    // Metric rows only: other tables (the meaning of each audit action) name no metric.
    doc.lines()
        .filter(|l| l.starts_with("| `jans_") || l.starts_with("| `process_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let labels = cells[3]
                .split(',')
                .map(|c| c.trim().trim_matches('`').to_string())
                .filter(|c| !c.is_empty())
                .collect();
            (name, (cells[2].to_string(), labels))
        })
        .collect()
}

#[test]
fn docs_metrics_md_lists_every_metric_with_its_type_and_labels() {
    let exposed = exposed();
    let documented = documented();
    let missing: Vec<_> = exposed
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    let stale: Vec<_> = documented
        .keys()
        .filter(|k| !exposed.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics not in docs/metrics.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "docs/metrics.md lists metrics the code does not serve: {stale:?}"
    );
    for (name, (kind, labels)) in &exposed {
        assert_eq!(
            &documented[name],
            &(kind.clone(), labels.clone()),
            "{name}: (type, labels) in docs vs code"
        );
    }
}

#[test]
fn metric_names_follow_the_conventions() {
    for (name, (kind, _)) in exposed() {
        // The standard process families are the one documented exception.
        assert!(
            name.starts_with("jans_") || name.starts_with("process_"),
            "{name}: prefix"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: only counters end in _total"
        );
        assert!(
            !name.contains("millis") && !name.contains("_ms"),
            "{name}: base units"
        );
    }
}

/// Every leaf key of the configuration, dotted.
fn config_keys() -> Vec<String> {
    let value = toml::Value::try_from(Config::defaults(false)).unwrap();
    let mut keys = Vec::new();
    fn walk(prefix: &str, v: &toml::Value, keys: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, keys);
                }
            }
            _ => keys.push(prefix.to_string()),
        }
    }
    walk("", &value, &mut keys);
    keys
}

#[test]
fn every_config_key_is_documented_and_in_the_shipped_example() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md")).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/jans-exporter.toml"
    ))
    .unwrap();
    let example: toml::Value = toml::from_str(&example).unwrap();
    for key in config_keys() {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/config.md does not document `{key}`"
        );
        let mut v = &example;
        for part in key.split('.') {
            v = v
                .get(part)
                .unwrap_or_else(|| panic!("config/jans-exporter.toml lacks {key}"));
        }
    }
}

/// The catalogue in `families.rs` is the single declaration: everything served comes
/// from it, everything in it is served (with every figure present) and documented,
/// with the declared type and label names.
#[test]
fn the_family_catalogue_is_what_is_served_and_documented() {
    use jans_exporter::families;
    let exposed = exposed();
    let documented = documented();
    let declared: BTreeMap<String, (String, BTreeSet<String>)> = families::ALL
        .iter()
        .map(|f| {
            (
                f.exposed_name(),
                (
                    f.kind.as_str().to_string(),
                    f.labels.iter().map(|l| l.to_string()).collect(),
                ),
            )
        })
        .collect();
    assert_eq!(declared.len(), families::ALL.len(), "exposed names collide");
    assert_eq!(
        declared.keys().collect::<Vec<_>>(),
        exposed.keys().collect::<Vec<_>>(),
        "declared vs served"
    );
    assert_eq!(declared, documented, "declared vs docs/metrics.md");
}
