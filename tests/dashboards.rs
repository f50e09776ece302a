//! The shipped Grafana dashboards are importable and provisionable, and follow the
//! project's conventions. (Their expressions are evaluated against a real Prometheus
//! in tests/e2e.rs; they are generated from mixin/, checked by tests/mixin.rs.)

use std::collections::{BTreeMap, HashSet};

fn dashboards() -> BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().to_string(),
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}")),
            )
        })
        .collect()
}

#[test]
fn dashboards_are_importable_and_provisionable_with_variables_units_and_descriptions() {
    let mut uids = HashSet::new();
    let all = dashboards();
    assert_eq!(all.len(), 3, "{:?}", all.keys());
    for (name, d) in &all {
        // No `${DS_...}` input: it is only substituted on a manual import and breaks a
        // dashboard provisioned from a file.
        assert!(
            !d.to_string().contains("DS_PROMETHEUS") && d.get("__inputs").is_none(),
            "{name}"
        );
        let requires: Vec<&str> = d["__requires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(requires.contains(&"grafana") && requires.contains(&"prometheus"));
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 36,
            "{name}: schemaVersion"
        );
        let uid = d["uid"].as_str().unwrap();
        assert!(
            uid.starts_with("jans-") && uids.insert(uid.to_string()),
            "{name}: stable, unique uid"
        );
        let vars = d["templating"]["list"].as_array().unwrap();
        let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["datasource", "cluster", "job", "namespace", "instance"],
            "{name}"
        );
        assert_eq!(vars[0]["type"], "datasource");
        assert_eq!(vars[0]["query"], "prometheus");
        let mut rows = 0;
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(p["gridPos"]["w"].as_u64().unwrap() <= 24, "{name}/{title}");
            if p["type"] == "row" {
                rows += 1;
                continue;
            }
            assert!(
                requires.contains(&p["type"].as_str().unwrap()),
                "{name}/{title}: panel type in __requires"
            );
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{name}/{title}: description"
            );
            assert!(
                !p["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .unwrap_or("")
                    .is_empty(),
                "{name}/{title}: unit"
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}/{title}");
                let expr = t["expr"].as_str().unwrap();
                for var in ["$cluster", "$job", "$namespace", "$instance"] {
                    assert!(expr.contains(var), "{name}/{title}: {expr} ignores {var}");
                }
            }
        }
        assert!(rows >= 3, "{name}: grouped in rows");
    }
}

#[test]
fn the_overview_guides_row_by_row_with_health_in_colour_and_figures_per_month() {
    let all = dashboards();
    let d = &all["jans-overview.json"];
    let panels = d["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Status",
            "Logins",
            "Authorizations",
            "Tokens",
            "Active users",
            "Okta",
            "FIDO2",
            "Upstream",
            "Exporter"
        ]
    );
    let panel = |title: &str| {
        panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title}"))
    };
    // Health is red or green, by value mapping.
    let health = &panel("Auth server")["fieldConfig"]["defaults"]["mappings"][0]["options"];
    assert_eq!(
        (health["0"]["color"].as_str(), health["1"]["color"].as_str()),
        (Some("red"), Some("green"))
    );
    // Scrape-up and version at the top.
    assert!(panel("Exporters scraped")["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .starts_with("sum(up{"));
    assert!(panel("Exporter version")["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .contains("jans_exporter_build_info"));
    // The stat endpoint's cumulative monthly figures: one bar per month from an
    // instant query, not a rate.
    for title in [
        "Tokens issued per month",
        "Monthly active users (stat endpoint)",
    ] {
        let p = panel(title);
        assert_eq!(p["type"], "bargauge", "{title}");
        let t = &p["targets"][0];
        assert_eq!(t["instant"], true, "{title}");
        let expr = t["expr"].as_str().unwrap();
        assert!(
            !expr.contains("rate(") && t["legendFormat"].as_str().unwrap().contains("{{month}}"),
            "{title}: {expr}"
        );
    }
    // Counters polled from cluster-wide APIs are counted once: divided by the number
    // of sidecars polling them (all without a cluster, the lease holder with one).
    for title in ["Tokens issued by grant type", "Passkey ceremonies"] {
        let expr = panel(title)["targets"][0]["expr"].as_str().unwrap();
        assert!(
            expr.contains("/ on (cluster, namespace) group_left count by (cluster, namespace) (jans_upstream_poller_leader{"),
            "{title}: {expr}"
        );
    }
    // Active users: the cluster-wide union when the sidecars sync, else per pod.
    for (title, union, per_pod) in [
        (
            "Active users now",
            "jans_cluster_active_users",
            "jans_active_users",
        ),
        (
            "Passkey active users",
            "jans_cluster_fido2_active_users",
            "jans_fido2_active_users",
        ),
    ] {
        let expr = panel(title)["targets"][0]["expr"].as_str().unwrap();
        let (first, second) = expr
            .split_once(" or ")
            .unwrap_or_else(|| panic!("{title}: {expr}"));
        assert!(first.contains(&format!("({union}{{")), "{title}: {expr}");
        assert!(second.contains(&format!("({per_pod}{{")), "{title}: {expr}");
    }
    // Alert thresholds drawn on the ratio panels.
    let ratio = &panel("Login failure ratio")["fieldConfig"]["defaults"];
    assert_eq!(ratio["thresholds"]["steps"][1]["value"], 0.25);
}

/// The Kubernetes ConfigMap for Grafana's sidecar carries exactly the shipped
/// dashboards, under the label the sidecar watches.
#[test]
fn the_dashboard_config_map_carries_the_shipped_dashboards() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kubernetes/grafana-dashboards.yaml"
    ))
    .unwrap();
    let cm = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
    let all = dashboards();
    let data = cm["data"].as_hash().unwrap();
    assert_eq!(data.len(), all.len());
    for (name, d) in &all {
        let carried: serde_json::Value =
            serde_json::from_str(cm["data"][name.as_str()].as_str().unwrap()).unwrap();
        assert_eq!(&carried, d, "{name}");
    }
}
