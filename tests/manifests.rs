//! Everything we ship as YAML or JSON parses; the Kubernetes example keeps its promises
//! (PrometheusRule equal to alerts/, non-root read-only sidecar with limits, valid
//! config); the compose configs pass Prometheus' and Alertmanager's own checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

mod common;
use common::{require_kustomize, require_tool};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn shipped(ext: &[&str]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in ["alerts", "examples", "dashboards", "config"] {
        files(&Path::new(ROOT).join(dir), &mut all);
    }
    all.into_iter()
        .filter(|p| p.extension().is_some_and(|e| ext.iter().any(|x| e == *x)))
        .collect()
}

fn yaml(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn every_yaml_and_json_file_we_ship_parses() {
    let yamls = shipped(&["yml", "yaml"]);
    assert!(yamls.len() >= 10, "{yamls:?}");
    for path in &yamls {
        assert!(!yaml(path).is_empty(), "{path:?} is empty");
    }
    let jsons = shipped(&["json"]);
    assert!(jsons.len() >= 3);
    for path in &jsons {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
}

#[test]
fn the_prometheus_rule_carries_exactly_the_shipped_alerts() {
    let rules = &yaml(&Path::new(ROOT).join("alerts/jans-exporter.rules.yml"))[0];
    let object = &yaml(&Path::new(ROOT).join("examples/kubernetes/prometheusrule.yaml"))[0];
    assert_eq!(object["kind"].as_str(), Some("PrometheusRule"));
    assert!(
        object["metadata"]["labels"]["release"].as_str().is_some(),
        "the release label kube-prometheus-stack selects on"
    );
    assert_eq!(
        object["spec"]["groups"], rules["groups"],
        "regenerate examples/kubernetes/prometheusrule.yaml from alerts/"
    );
}

#[test]
fn the_sidecar_is_non_root_read_only_bounded_and_shares_the_logs() {
    let deployment = &yaml(&Path::new(ROOT).join("examples/kubernetes/deployment.yaml"))[0];
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap();
    let sidecar = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("jans-exporter"))
        .unwrap();
    let auth = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("auth-server"))
        .unwrap();
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    for kind in ["requests", "limits"] {
        assert!(
            sidecar["resources"][kind]["memory"].as_str().is_some(),
            "{kind}.memory"
        );
        assert!(
            sidecar["resources"][kind]["cpu"].as_str().is_some(),
            "{kind}.cpu"
        );
    }
    assert!(
        sidecar["readinessProbe"].is_badvalue(),
        "a sidecar readinessProbe would take the auth server out of its Service"
    );
    assert_eq!(
        sidecar["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let mount = |c: &Yaml, volume: &str| {
        c["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
    };
    assert_eq!(mount(sidecar, "logs"), mount(auth, "logs"));
    assert!(
        mount(sidecar, "exporter-state").is_some(),
        "state on a volume"
    );
}

#[test]
fn the_configmap_holds_a_valid_configuration_that_follows_the_shared_volume() {
    let cm = &yaml(&Path::new(ROOT).join("examples/kubernetes/configmap.yaml"))[0];
    let toml = cm["data"]["jans-exporter.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let env = figment::providers::Env::prefixed("JANS_EXPORTER_MANIFEST_TEST_UNUSED_");
    let config = jans_exporter::config::Config::load_with_env(Some(&path), env).unwrap();
    assert!(config.logs.paths[0].starts_with("/opt/jans/jetty/jans-auth/logs/"));
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9781");
    assert!(
        config.upstream.client_secret_file.is_some(),
        "the secret comes from the mounted Secret"
    );
}

#[test]
fn compose_configs_pass_prometheus_and_alertmanager_checks() {
    let compose = Path::new(ROOT).join("examples/docker-compose");
    if require_tool("promtool") {
        let out = Command::new("promtool")
            .args(["check", "config"])
            .arg(compose.join("prometheus.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if require_tool("amtool") {
        let out = Command::new("amtool")
            .args(["check-config"])
            .arg(compose.join("alertmanager.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// No Docker engine runs here, so the image's promises are checked on its Dockerfile:
/// the runtime stage keeps state under an absolute folder the image's user owns, its
/// HEALTHCHECK calls a subcommand the binary has, and it carries OCI labels.
#[test]
fn the_image_saves_state_as_its_user_and_checks_its_own_health() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let runtime = text.rsplit("\nFROM ").next().unwrap();
    // Everything the build reads is in the build stage.
    assert!(text.contains("COPY Cargo.toml Cargo.lock build.rs ./"));
    assert!(text.contains("JANSX_BUILD_REVISION=\"${REVISION}\" cargo build"));
    let env = |key: &str| {
        runtime
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ENV {key}=")))
            .map(str::to_string)
    };
    let state = env("JANS_EXPORTER_STATE__DIR").expect("the state folder is set");
    assert!(state.starts_with('/'), "absolute: {state}");
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a non-root user");
    assert!(!user.starts_with('0'), "{user}");
    let owner = user.split(':').next().unwrap();
    assert!(
        runtime.lines().any(
            |l| l.starts_with(&format!("COPY --from=build --chown={owner}:"))
                && l.trim_end().ends_with(&format!(" {state}"))
        ),
        "{state} is created owned by {owner}"
    );
    assert!(runtime.contains(r#"CMD ["/usr/local/bin/jans-exporter", "healthcheck"]"#));
    let help = Command::new(env!("CARGO_BIN_EXE_jans-exporter"))
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    for label in ["title", "version", "revision", "licenses", "description"] {
        assert!(
            runtime.contains(&format!("org.opencontainers.image.{label}=")),
            "{label}"
        );
    }
}

/// Every Kubernetes object we ship (and the Helm post-renderer's output) validates
/// offline against the Kubernetes schemas (strict: an unknown field fails) and the
/// prometheus-operator CRD schemas, with pinned validators; and the check can fail.
#[test]
fn every_manifest_validates_offline_against_the_kubernetes_and_operator_schemas() {
    if !require_tool("python3") || !require_tool("npm") || !require_kustomize() {
        return;
    }
    let script = Path::new(ROOT).join("scripts/validate-manifests.sh");
    let out = Command::new(&script).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let mut objects = Vec::new();
    for dir in ["examples/kubernetes", "examples/helm"] {
        for path in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let path = path.unwrap().path();
            for doc in yaml(&path) {
                if doc["apiVersion"].as_str().is_some()
                    && path.file_name().unwrap() != "sidecar-patch.yaml"
                {
                    objects.push((
                        format!("{dir}/{}", path.file_name().unwrap().to_string_lossy()),
                        doc["kind"].as_str().unwrap().to_lowercase(),
                        doc["metadata"]["name"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    assert!(objects.len() >= 7, "{objects:?}");
    for (file, kind, name) in &objects {
        let passed = text.lines().any(|l| {
            l.contains(file.as_str())
                && (l.starts_with("INFO") && l.contains(&format!("resource {kind}/{name} "))
                    || l.starts_with("PASS")
                        && l.to_lowercase().contains(&format!("{kind}/{name}")))
        });
        assert!(passed, "{file} {kind}/{name} not validated:\n{text}");
    }
    assert!(
        text.contains("deployment/janssen-auth-server"),
        "the post-rendered chart: {text}"
    );

    // A typo'd field in a core object and a wrong type in an operator object fail.
    let dir = tempfile::tempdir().unwrap();
    let deployment =
        std::fs::read_to_string(Path::new(ROOT).join("examples/kubernetes/deployment.yaml"))
            .unwrap();
    let monitor =
        std::fs::read_to_string(Path::new(ROOT).join("examples/kubernetes/podmonitor.yaml"))
            .unwrap();
    for (name, text, says) in [
        (
            "deployment.yaml",
            deployment.replace("readOnlyRootFilesystem", "readOnlyRootFilesytem"),
            "readOnlyRootFilesytem",
        ),
        (
            "podmonitor.yaml",
            monitor.replace("interval: 30s", "interval: 30"),
            "interval must be string",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(&script).arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains(says),
            "{name}: {said}"
        );
    }
}
