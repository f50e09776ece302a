//! The shipped Grafana dashboards are importable and follow the project's conventions.
//! (Their expressions are evaluated against a real Prometheus in tests/e2e.rs.)

use std::collections::HashSet;

#[test]
fn dashboards_are_importable_with_variables_units_and_descriptions() {
    let mut uids = HashSet::new();
    let mut count = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let name = path.display().to_string();
        count += 1;
        assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS", "{name}");
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 36,
            "{name}: schemaVersion"
        );
        let uid = d["uid"].as_str().unwrap();
        assert!(
            uid.starts_with("jans-") && uids.insert(uid.to_string()),
            "{name}: stable, unique uid"
        );
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            vars,
            ["datasource", "job", "namespace", "instance"],
            "{name}"
        );
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
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
                let expr = t["expr"].as_str().unwrap();
                for var in ["$job", "$namespace", "$instance"] {
                    assert!(expr.contains(var), "{name}/{title}: {expr} ignores {var}");
                }
            }
        }
    }
    assert_eq!(count, 3);
}
