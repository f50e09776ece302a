//! The shipped alerts, dashboards and the Kubernetes objects built from them are what
//! the monitoring mixin (mixin/) renders, as kube-prometheus projects check: editing a
//! generated file instead of the mixin fails here. The evaluator is the pinned jsonnet
//! from PyPI (scripts/mixin.sh installs it under target/).

mod common;

use std::path::Path;
use std::process::Command;

use common::require_tool;

#[test]
fn the_generated_files_are_what_the_mixin_renders() {
    if !require_tool("python3") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/mixin.sh"))
        .arg("check")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("files match"), "{text}");

    // The check can fail: a rendered file changed by hand is named as drifted. (One
    // test, so that the evaluator is installed once, before this part uses it.)
    // A copy of the tree's inputs in a temporary root, with one output edited.
    let dir = tempfile::tempdir().unwrap();
    let copy = |rel: &str| {
        let (from, to) = (root.join(rel), dir.path().join(rel));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    for rel in [
        "scripts/mixin.py",
        "alerts/jans-exporter.rules.yml",
        "examples/kubernetes/prometheusrule.yaml",
        "examples/kubernetes/grafana-dashboards.yaml",
    ] {
        copy(rel);
    }
    for dir_rel in [
        "mixin",
        "mixin/alerts",
        "mixin/rules",
        "mixin/dashboards",
        "mixin/lib",
        "dashboards",
    ] {
        for e in std::fs::read_dir(root.join(dir_rel)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                copy(&format!(
                    "{dir_rel}/{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    let rules = dir.path().join("alerts/jans-exporter.rules.yml");
    let edited = std::fs::read_to_string(&rules)
        .unwrap()
        .replace("for: 5m", "for: 1m");
    std::fs::write(&rules, edited).unwrap();
    // The evaluator scripts/mixin.sh installed for the test above.
    let python = root.join("target/mixin/venv/bin/python");
    let setup = Command::new(root.join("scripts/mixin.sh"))
        .arg("check")
        .output()
        .unwrap();
    assert!(
        python.exists(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let out = Command::new(python)
        .arg(dir.path().join("scripts/mixin.py"))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("drift: alerts/jans-exporter.rules.yml"),
        "{text}"
    );
    assert!(!text.contains("drift: dashboards/"), "{text}");
}
