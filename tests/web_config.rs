//! TLS and basic auth from an exporter-toolkit web config file, on the real binary,
//! with a real TLS client (reqwest over rustls) and certificates made for the test.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names`: (certificate PEM, key PEM).
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client(ca_pem: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(5));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn web_config(dir: &Path, users: &[(&str, &str)]) {
    let mut yaml = String::from(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n",
    );
    for (user, password) in users {
        yaml.push_str(&format!(
            "  {user}: '{}'\n",
            bcrypt::hash(password, 4).unwrap()
        ));
    }
    // Written beside and renamed, as a ConfigMap update is: never half a file.
    let tmp = dir.join("web.yml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, dir.join("web.yml")).unwrap();
}

async fn status(client: &reqwest::Client, url: &str, user: Option<(&str, &str)>) -> Option<u16> {
    let mut req = client.get(url);
    if let Some((u, p)) = user {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_guard_every_endpoint_for_a_real_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
    std::fs::write(d.join("ca.crt"), &pki.ca_pem).unwrap();
    std::fs::write(d.join("server.crt"), cert).unwrap();
    std::fs::write(d.join("server.key"), key).unwrap();
    web_config(d, &[("alice", "correct horse")]);
    let log = d.join("audit.log");
    std::fs::write(&log, b"").unwrap();
    let config = write_config(d, &[log], "");
    let web = d.join("web.yml");
    let exporter =
        Exporter::start_args(&config, &["--web.config.file", web.to_str().unwrap()], &[]);
    let base = format!("https://127.0.0.1:{}", exporter.addr.port());
    let tls = client(&pki.ca_pem, None);
    let alice = Some(("alice", "correct horse"));

    // Ready, through TLS; the probes need no password.
    assert!(
        wait_status(&tls, &format!("{base}/readyz"), None, 200).await,
        "{}",
        exporter.log_text()
    );
    assert_eq!(
        status(&tls, &format!("{base}/healthz"), None).await,
        Some(200)
    );

    // /metrics and the landing page: the password or 401 with a challenge.
    let answer = tls
        .get(format!("{base}/metrics"))
        .basic_auth("alice", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        answer
            .headers()
            .get("x-frame-options")
            .map(|v| v.to_str().unwrap()),
        Some("deny")
    );
    assert!(answer
        .text()
        .await
        .unwrap()
        .contains("jans_exporter_build_info"));
    for (path, user, want) in [
        ("/metrics", None, 401),
        ("/metrics", Some(("alice", "wrong")), 401),
        ("/metrics", Some(("bob", "correct horse")), 401),
        ("/", None, 401),
        ("/", alice, 200),
    ] {
        assert_eq!(
            status(&tls, &format!("{base}{path}"), user).await,
            Some(want),
            "{path} as {user:?}"
        );
    }
    let challenge = tls.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        challenge
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Basic ")),
        "{:?}",
        challenge.headers()
    );

    // Plain HTTP to the TLS port answers nothing usable.
    let plain = http(exporter.addr, "GET", "/healthz", &[], b"");
    assert!(plain.map_or(true, |r| r.status != 200));

    // A client certificate from the configured CA passes; one from another CA fails
    // the handshake.
    let (client_cert, client_key) = pki.leaf(&["scraper"]);
    let mtls = client(&pki.ca_pem, Some(&(client_cert, client_key)));
    assert_eq!(
        status(&mtls, &format!("{base}/metrics"), alice).await,
        Some(200)
    );
    let stranger = Pki::new().leaf(&["stranger"]);
    let foreign = client(&pki.ca_pem, Some(&stranger));
    assert_eq!(
        status(&foreign, &format!("{base}/metrics"), alice).await,
        None
    );

    // Docker's HEALTHCHECK command speaks TLS when the web config has it.
    let out = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .args(["--web.config.file", web.to_str().unwrap()])
        .args(["healthcheck", "--address", &exporter.addr.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A changed file is read again without a restart: bob in, alice out.
    web_config(d, &[("bob", "battery staple")]);
    let bob = Some(("bob", "battery staple"));
    assert!(
        wait_status(&tls, &format!("{base}/metrics"), bob, 200).await,
        "{}",
        exporter.log_text()
    );
    assert_eq!(
        status(&tls, &format!("{base}/metrics"), alice).await,
        Some(401)
    );

    // A broken change keeps the last good configuration and says so.
    std::fs::write(&web, "basic_auth_users:\n  bob: not-a-hash\n").unwrap();
    // The file is looked at when a connection comes, as exporter-toolkit does.
    let mut warned = None;
    for _ in 0..200 {
        let _ = status(&tls, &format!("{base}/healthz"), None).await;
        let log = exporter.log_text();
        if log.contains("web config changed but does not load") {
            warned = Some(log);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(warned.is_some(), "{}", exporter.log_text());
    assert_eq!(
        status(
            &tls,
            &format!("{base}/metrics"),
            Some(("bob", "battery staple"))
        )
        .await,
        Some(200)
    );
}

/// Polls until `url` answers `want` (bounded: 20 s).
async fn wait_status(
    client: &reqwest::Client,
    url: &str,
    user: Option<(&str, &str)>,
    want: u16,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if status(client, url, user).await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn a_web_config_that_does_not_load_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    for (yaml, says) in [
        (
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
            "nope.crt",
        ),
        (
            "basic_auth_users:\n  alice: plain-text\n",
            "basic_auth_users.alice",
        ),
        ("tls_server_config:\n  min_version: TLS10\n", "cert_file"),
        ("tls_config:\n  cert_file: a\n", "tls_config"),
    ] {
        std::fs::write(&web, yaml).unwrap();
        let out = Command::new(BIN)
            .args(["--web.config.file", web.to_str().unwrap(), "check-config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml:?}: {stderr}");
        assert!(stderr.contains(says), "{yaml:?}: {stderr}");
    }
}

/// The shipped example is valid apart from the certificate it points at, and its
/// placeholder hash is the password it says.
#[test]
fn the_shipped_example_says_what_its_hash_is() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/web-config.yml"
    ))
    .unwrap();
    let hash = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .unwrap();
    assert!(bcrypt::verify("change-me", hash).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, &example).unwrap();
    let out = Command::new(BIN)
        .args(["--web.config.file", web.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("/tls/tls.crt"), "{stderr}");
}
