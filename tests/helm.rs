//! The Helm post-renderer, run for real (kustomize or kubectl) over what the Janssen
//! chart renders: the sidecar lands in the auth-server Deployment and nowhere else,
//! the chart's own containers and volumes stay, and the PodMonitor selects exactly
//! the pods that carry the sidecar.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::require_kustomize;
use yaml_rust2::{Yaml, YamlLoader};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn docs(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn by_kind_name(docs: &[Yaml]) -> BTreeMap<(String, String), Yaml> {
    docs.iter()
        .map(|d| {
            (
                (
                    d["kind"].as_str().unwrap().to_string(),
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                ),
                d.clone(),
            )
        })
        .collect()
}

fn post_render(input: &str) -> String {
    let mut child = Command::new("sh")
        .arg(Path::new(ROOT).join("examples/helm/post-render.sh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "post-render.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn named<'a>(list: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    list.as_vec()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
}

/// The document with its mappings order-free (kustomize sorts keys).
fn canonical(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), canonical(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Real(r) => Value::String(r.clone()),
        _ => Value::Null,
    }
}

/// Whether every `matchLabels` entry is among `labels`.
fn selects(match_labels: &Yaml, labels: &Yaml) -> bool {
    let Some(wanted) = match_labels.as_hash() else {
        return false;
    };
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|(k, v)| labels[k.as_str().unwrap()] == *v)
}

#[test]
fn the_post_renderer_adds_the_sidecar_that_the_pod_monitor_then_selects() {
    if !require_kustomize() {
        return;
    }
    let input =
        std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/helm/janssen-rendered.yaml"))
            .unwrap();
    let before = by_kind_name(&docs(&input));
    let after = by_kind_name(&docs(&post_render(&input)));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same objects come out"
    );
    // Everything but the auth server passes through as it was.
    let auth_key = ("Deployment".to_string(), "janssen-auth-server".to_string());
    for (key, doc) in &before {
        if *key != auth_key {
            assert_eq!(canonical(&after[key]), canonical(doc), "{key:?} changed");
        }
    }

    let pod = &after[&auth_key]["spec"]["template"];
    let spec = &pod["spec"];
    let containers = &spec["containers"];
    let auth = named(containers, "auth-server").expect("the chart's container");
    let original = named(
        &before[&auth_key]["spec"]["template"]["spec"]["containers"],
        "auth-server",
    )
    .unwrap();
    for key in [
        "image",
        "ports",
        "envFrom",
        "livenessProbe",
        "readinessProbe",
        "resources",
    ] {
        assert_eq!(
            canonical(&auth[key]),
            canonical(&original[key]),
            "auth-server {key} kept"
        );
    }
    let logs = "/opt/jans/jetty/jans-auth/logs";
    let mount = |c: &Yaml, path: &str| {
        c["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .map(|m| m["name"].as_str().unwrap().to_string())
    };
    assert!(
        mount(auth, "/etc/certs/couchbase.crt").is_some(),
        "the chart's own mounts stay"
    );
    let log_volume = mount(auth, logs).expect("the auth server writes its logs to the volume");

    let sidecar = named(containers, "jans-exporter").expect("the sidecar");
    assert_eq!(
        mount(sidecar, logs),
        Some(log_volume.clone()),
        "same volume"
    );
    assert!(
        mount(sidecar, "/var/lib/jans-exporter").is_some(),
        "state volume"
    );
    let read_only = sidecar["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(logs))
        .unwrap()["readOnly"]
        .as_bool();
    assert_eq!(read_only, Some(true));
    assert!(
        sidecar["readinessProbe"].is_badvalue(),
        "no readinessProbe on a sidecar"
    );
    assert_eq!(
        sidecar["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert!(named(&spec["volumes"], &log_volume).is_some());
    assert!(
        named(&spec["volumes"], "cb-crt").is_some(),
        "the chart's own volumes stay"
    );
    let env = &sidecar["env"];
    assert_eq!(
        named(env, "JANS_EXPORTER_SERVER__LISTEN").unwrap()["value"].as_str(),
        Some("0.0.0.0:9781")
    );

    // The PodMonitor selects this pod, through a port the sidecar has, and not the
    // chart's other pods.
    let monitor = &docs(
        &std::fs::read_to_string(Path::new(ROOT).join("examples/helm/podmonitor.yaml")).unwrap(),
    )[0];
    let selector = &monitor["spec"]["selector"]["matchLabels"];
    assert!(
        selects(selector, &pod["metadata"]["labels"]),
        "{selector:?}"
    );
    let other = &after[&("Deployment".to_string(), "janssen-config-api".to_string())];
    assert!(!selects(
        selector,
        &other["spec"]["template"]["metadata"]["labels"]
    ));
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let port = endpoint["port"].as_str().unwrap();
    assert!(named(&sidecar["ports"], port).is_some(), "port {port}");
    assert_eq!(
        endpoint["relabelings"][0]["replacement"].as_str(),
        Some("jans-exporter"),
        "the job the alerts select"
    );

    // The values the sidecar needs from the chart: the server log on FILE.
    let values =
        &docs(&std::fs::read_to_string(Path::new(ROOT).join("examples/helm/values.yaml")).unwrap())
            [0];
    let loggers = &values["global"]["auth-server"]["appLoggers"];
    assert_eq!(loggers["authLogTarget"].as_str(), Some("FILE"));
    assert_eq!(loggers["auditStatsLogTarget"].as_str(), Some("FILE"));
}
