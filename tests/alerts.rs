//! The shipped alert rules: valid, unit-tested with promtool, and following the
//! monitoring-mixin conventions. promtool is required in CI.

use std::process::Command;

mod common;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/alerts/jans-exporter.rules.yml"
);
const TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/alerts/tests/jans-exporter.rules.test.yml"
);

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("promtool").args(args).output() {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(_) if std::env::var_os("CI").is_some() => panic!("promtool is required in CI"),
        Err(_) => {
            eprintln!("SKIPPED: promtool not installed");
            None
        }
    }
}

#[test]
fn rules_are_valid_and_their_unit_tests_pass() {
    if let Some((ok, out)) = promtool(&["check", "rules", RULES]) {
        assert!(ok, "{out}");
    }
    if let Some((ok, out)) = promtool(&["test", "rules", TESTS]) {
        assert!(ok, "{out}");
    }
}

/// (name, severity, summary, description, runbook_url) of every alert.
fn alerts() -> Vec<[String; 5]> {
    let text = std::fs::read_to_string(RULES).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let mut out = Vec::new();
    for group in doc["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let get = |v: &yaml_rust2::Yaml| v.as_str().unwrap_or("").to_string();
            out.push([
                name.to_string(),
                get(&rule["labels"]["severity"]),
                get(&rule["annotations"]["summary"]),
                get(&rule["annotations"]["description"]),
                get(&rule["annotations"]["runbook_url"]),
            ]);
        }
    }
    out
}

#[test]
fn alerts_follow_monitoring_mixin_conventions_and_each_has_a_runbook_and_a_test() {
    let runbooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbooks.md")).unwrap();
    let tests = std::fs::read_to_string(TESTS).unwrap();
    let alerts = alerts();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for [name, severity, summary, description, runbook] in &alerts {
        assert!(
            name.starts_with("Jans") && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name}: CamelCase with the Jans prefix"
        );
        assert!(
            ["critical", "warning", "info"].contains(&severity.as_str()),
            "{name}: severity {severity}"
        );
        assert!(
            summary.ends_with('.') && !summary.contains("{{"),
            "{name}: a static summary ending in a full stop"
        );
        assert!(
            description.contains("{{"),
            "{name}: a templated description"
        );
        let anchor = name.to_ascii_lowercase();
        assert!(
            runbook.ends_with(&format!("docs/runbooks.md#{anchor}")),
            "{name}: runbook_url {runbook}"
        );
        assert!(
            runbooks.contains(&format!("## {name}\n")),
            "{name}: no section in docs/runbooks.md"
        );
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name}: no promtool unit test"
        );
    }
}
