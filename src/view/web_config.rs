//! The web configuration file of Prometheus's exporter-toolkit: TLS and basic auth for
//! the exporter's own endpoints, in the format every Prometheus user already writes for
//! node_exporter (`--web.config.file`).
//!
//! Read with the same rules: unknown keys are an error, TLS 1.2 is the default
//! minimum, `basic_auth_users` maps a user to a bcrypt hash. The file and the files it
//! names are read again when one of them changes (a renewed certificate is served
//! without a restart); a change that does not load keeps the last good configuration.
//!
//! What rustls cannot do is refused with a reason rather than ignored: TLS 1.0/1.1,
//! `RequestClientCert` and `RequireAnyClientCert` (they accept any client certificate,
//! which proves nothing), `client_allowed_sans`, the P-521 curve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use yaml_rust2::{Yaml, YamlLoader};

/// The web config file and every file it names are looked at this often at most.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// A web config file larger than this is not one.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{path}: TLS: {message}")]
    Tls { path: PathBuf, message: String },
}

/// One loaded web configuration.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// User → bcrypt hash; empty: no basic auth.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.headers`, added to every answer.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// How client certificates are asked for, by exporter-toolkit's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

/// The headers exporter-toolkit lets a web config set; others are refused as there.
const SETTABLE_HEADERS: [&str; 6] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
    "Cache-Control",
];

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A mapping's entries, refusing keys outside `known`.
    fn map<'y>(
        &self,
        key: &str,
        value: &'y Yaml,
        known: &[&str],
    ) -> Result<BTreeMap<String, &'y Yaml>, WebConfigError> {
        let Yaml::Hash(h) = value else {
            return Err(self.invalid(key, "must be a mapping"));
        };
        let mut out = BTreeMap::new();
        for (k, v) in h {
            let Yaml::String(k) = k else {
                return Err(self.invalid(key, "keys must be strings"));
            };
            let full = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            if !known.is_empty() && !known.contains(&k.as_str()) {
                return Err(self.invalid(&full, "unknown key"));
            }
            out.insert(k.clone(), v);
        }
        Ok(out)
    }

    fn string(&self, key: &str, value: &Yaml) -> Result<Option<String>, WebConfigError> {
        match value {
            Yaml::Null => Ok(None),
            Yaml::String(s) if s.is_empty() => Ok(None),
            Yaml::String(s) => Ok(Some(s.clone())),
            _ => Err(self.invalid(key, "must be a string")),
        }
    }

    fn strings(&self, key: &str, value: &Yaml) -> Result<Vec<String>, WebConfigError> {
        match value {
            Yaml::Null => Ok(Vec::new()),
            Yaml::Array(items) => items
                .iter()
                .map(|v| {
                    self.string(key, v)?
                        .ok_or_else(|| self.invalid(key, "empty entry"))
                })
                .collect(),
            _ => Err(self.invalid(key, "must be a list of strings")),
        }
    }

    /// A path relative to the web config file's directory, as exporter-toolkit does.
    fn file(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, WebConfigError> {
    use std::io::Read;
    let read = |source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read(std::io::Error::other("larger than 1 MiB")));
    }
    Ok(bytes)
}

/// Loads a web config file; also returns every file it depends on, to watch.
pub fn load(path: &Path) -> Result<(WebConfig, Vec<PathBuf>), WebConfigError> {
    let r = Reader { path };
    let text = String::from_utf8_lossy(&read_bounded(path)?).into_owned();
    let docs = YamlLoader::load_from_str(&text).map_err(|e| WebConfigError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut watched = vec![path.to_path_buf()];
    let mut config = WebConfig::default();
    let Some(root) = docs.first() else {
        return Ok((config, watched));
    };
    if root.is_null() {
        return Ok((config, watched));
    }
    let top = r.map(
        "",
        root,
        &[
            "tls_server_config",
            "http_server_config",
            "basic_auth_users",
        ],
    )?;
    if let Some(users) = top.get("basic_auth_users").filter(|v| !v.is_null()) {
        for (user, hash) in r.map("basic_auth_users", users, &[])? {
            let key = format!("basic_auth_users.{user}");
            let hash = r
                .string(&key, hash)?
                .ok_or_else(|| r.invalid(&key, "needs a bcrypt hash"))?;
            // Parsed now, so that a typo is a start-up error, not a 401 for everyone.
            hash.parse::<bcrypt::HashParts>()
                .map_err(|e| r.invalid(&key, format!("not a bcrypt hash: {e}")))?;
            config.users.insert(user, hash);
        }
    }
    if let Some(http) = top.get("http_server_config").filter(|v| !v.is_null()) {
        let http = r.map("http_server_config", http, &["http2", "headers"])?;
        if let Some(headers) = http.get("headers").filter(|v| !v.is_null()) {
            for (name, value) in r.map("http_server_config.headers", headers, &[])? {
                let key = format!("http_server_config.headers.{name}");
                let Some(canonical) = SETTABLE_HEADERS
                    .iter()
                    .find(|h| h.eq_ignore_ascii_case(&name))
                else {
                    return Err(r.invalid(
                        &key,
                        format!("not settable; one of {}", SETTABLE_HEADERS.join(", ")),
                    ));
                };
                let value = r.string(&key, value)?.unwrap_or_default();
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| r.invalid(&key, "not a valid header value"))?;
                let name = HeaderName::from_bytes(canonical.to_ascii_lowercase().as_bytes())
                    .map_err(|_| r.invalid(&key, "not a valid header name"))?;
                config.headers.push((name, value));
            }
        }
        if let Some(http2) = http.get("http2") {
            if !matches!(http2, Yaml::Boolean(_) | Yaml::Null) {
                return Err(r.invalid("http_server_config.http2", "must be true or false"));
            }
        }
    }
    if let Some(tls) = top.get("tls_server_config").filter(|v| !v.is_null()) {
        config.tls = Some(Arc::new(tls_config(&r, tls, &mut watched)?));
    }
    Ok((config, watched))
}

fn tls_config(
    r: &Reader<'_>,
    tls: &Yaml,
    watched: &mut Vec<PathBuf>,
) -> Result<ServerConfig, WebConfigError> {
    let tls = r.map(
        "tls_server_config",
        tls,
        &[
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "client_allowed_sans",
            "min_version",
            "max_version",
            "cipher_suites",
            "curve_preferences",
            "prefer_server_cipher_suites",
        ],
    )?;
    let get = |k: &str| -> Result<Option<String>, WebConfigError> {
        tls.get(k)
            .map_or(Ok(None), |v| r.string(&format!("tls_server_config.{k}"), v))
    };
    let tls_error = |message: String| WebConfigError::Tls {
        path: r.path.to_path_buf(),
        message,
    };
    let cert_file = get("cert_file")?
        .map(|f| r.file(&f))
        .ok_or_else(|| r.invalid("tls_server_config.cert_file", "required with TLS"))?;
    let key_file = get("key_file")?
        .map(|f| r.file(&f))
        .ok_or_else(|| r.invalid("tls_server_config.key_file", "required with TLS"))?;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_bounded(&cert_file)?)
            .collect::<Result<_, _>>()
            .map_err(|e| tls_error(format!("{}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no certificate in it",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_bounded(&key_file)?)
        .map_err(|e| tls_error(format!("{}: {e}", key_file.display())))?;
    watched.push(cert_file);
    watched.push(key_file);

    let client_auth = match get("client_auth_type")?.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            return Err(r.invalid(
                "tls_server_config.client_auth_type",
                format!("{other} accepts any client certificate without verifying it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ))
        }
        Some(other) => {
            return Err(r.invalid(
                "tls_server_config.client_auth_type",
                format!("unknown `{other}`"),
            ))
        }
    };
    let sans = match tls.get("client_allowed_sans") {
        Some(v) => r.strings("tls_server_config.client_allowed_sans", v)?,
        None => Vec::new(),
    };
    if !sans.is_empty() {
        return Err(r.invalid(
            "tls_server_config.client_allowed_sans",
            "not supported; issue client certificates from a CA of their own instead",
        ));
    }

    let mut provider: CryptoProvider = rustls::crypto::aws_lc_rs::default_provider();
    let suites = match tls.get("cipher_suites") {
        Some(v) => r.strings("tls_server_config.cipher_suites", v)?,
        None => Vec::new(),
    };
    if !suites.is_empty() {
        // As in Go, the list applies to TLS 1.2; TLS 1.3's suites are always on.
        let mut chosen: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in &suites {
            let wanted = if name.ends_with("POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            let Some(s) = provider
                .cipher_suites
                .iter()
                .find(|s| format!("{:?}", s.suite()) == wanted)
            else {
                return Err(r.invalid(
                    "tls_server_config.cipher_suites",
                    format!("`{name}` is not a TLS 1.2 suite this build offers"),
                ));
            };
            chosen.push(*s);
        }
        provider.cipher_suites = chosen;
    }
    let curves = match tls.get("curve_preferences") {
        Some(v) => r.strings("tls_server_config.curve_preferences", v)?,
        None => Vec::new(),
    };
    if !curves.is_empty() {
        let mut groups = Vec::new();
        for name in &curves {
            let wanted = match name.as_str() {
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                "X25519" => rustls::NamedGroup::X25519,
                "X25519MLKEM768" => rustls::NamedGroup::X25519MLKEM768,
                _ => {
                    return Err(r.invalid(
                        "tls_server_config.curve_preferences",
                        format!(
                        "`{name}` is not offered (CurveP256, CurveP384, X25519, X25519MLKEM768)"
                    ),
                    ))
                }
            };
            if let Some(g) = provider.kx_groups.iter().find(|g| g.name() == wanted) {
                groups.push(*g);
            }
        }
        provider.kx_groups = groups;
    }

    let version =
        |key: &str| -> Result<Option<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
            match get(key)?.as_deref() {
                None => Ok(None),
                Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
                Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
                Some("TLS10" | "TLS11") => Err(r.invalid(
                    &format!("tls_server_config.{key}"),
                    "TLS 1.0 and 1.1 are not offered (TLS12, TLS13)",
                )),
                Some(other) => Err(r.invalid(
                    &format!("tls_server_config.{key}"),
                    format!("unknown `{other}` (TLS12, TLS13)"),
                )),
            }
        };
    let min = version("min_version")?.unwrap_or(&rustls::version::TLS12);
    let max = version("max_version")?.unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let n = |v: &rustls::SupportedProtocolVersion| u16::from(v.version);
                n(v) >= n(min) && n(v) <= n(max)
            })
            .collect();
    if versions.is_empty() {
        return Err(r.invalid("tls_server_config.min_version", "is above max_version"));
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = if client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let ca_file = get("client_ca_file")?.map(|f| r.file(&f)).ok_or_else(|| {
            r.invalid(
                "tls_server_config.client_ca_file",
                "required to verify client certificates",
            )
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&read_bounded(&ca_file)?) {
            let cert = cert.map_err(|e| tls_error(format!("{}: {e}", ca_file.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("{}: {e}", ca_file.display())))?;
        }
        watched.push(ca_file);
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if client_auth == ClientAuth::VerifyIfGiven {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_error(e.to_string()))?)
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(e.to_string()))?;
    config.ignore_client_order = matches!(
        tls.get("prefer_server_cipher_suites"),
        Some(Yaml::Boolean(true)) | None
    );
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// A loaded web config kept current with its files.
#[derive(Debug)]
pub struct WebConfigWatch {
    path: Option<PathBuf>,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    current: Arc<WebConfig>,
    files: Vec<PathBuf>,
    stamps: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

impl WebConfigWatch {
    /// No web config: plain HTTP, no basic auth.
    pub fn none() -> WebConfigWatch {
        WebConfigWatch {
            path: None,
            state: Mutex::new(WatchState {
                current: Arc::new(WebConfig::default()),
                files: Vec::new(),
                stamps: Vec::new(),
                checked: Instant::now(),
            }),
        }
    }

    /// Loads `path`; an error here fails the start.
    pub fn load(path: &Path) -> Result<WebConfigWatch, WebConfigError> {
        let (config, files) = load(path)?;
        Ok(WebConfigWatch {
            path: Some(path.to_path_buf()),
            state: Mutex::new(WatchState {
                current: Arc::new(config),
                stamps: stamps(&files),
                files,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration to apply now, reloaded if a file changed since the last look.
    pub fn current(&self) -> Arc<WebConfig> {
        // A poisoned lock still holds the last good configuration; falling back to the
        // default would silently drop TLS and basic auth.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(path) = &self.path else {
            return Arc::clone(&state.current);
        };
        if state.checked.elapsed() >= RECHECK_EVERY {
            state.checked = Instant::now();
            let now = stamps(&state.files);
            if now != state.stamps {
                state.stamps = now;
                match load(path) {
                    Ok((config, files)) => {
                        tracing::info!(path = %path.display(), "web config reloaded");
                        state.current = Arc::new(config);
                        state.stamps = stamps(&files);
                        state.files = files;
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "web config changed but does not load; the last good one stays in force"
                    ),
                }
            }
        }
        Arc::clone(&state.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> Result<WebConfig, WebConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        load(&path).map(|(c, _)| c)
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        let c = load_str("").unwrap();
        assert!(c.tls.is_none() && c.users.is_empty() && c.headers.is_empty());
        let c = load_str("# nothing\n").unwrap();
        assert!(c.tls.is_none());
    }

    #[test]
    fn users_need_bcrypt_hashes_and_unknown_keys_are_refused() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let c = load_str(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        assert_eq!(c.users.get("alice"), Some(&hash));
        for (yaml, key) in [
            ("basic_auth_users:\n  bob: plain\n", "basic_auth_users.bob"),
            ("basic_auth_user:\n  bob: x\n", "basic_auth_user"),
            (
                "tls_server_config:\n  certfile: a\n",
                "tls_server_config.certfile",
            ),
            ("tls_server_config:\n  key_file: k\n", "cert_file"),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "http_server_config.headers.Server",
            ),
            ("- a\n", "must be a mapping"),
        ] {
            let err = load_str(yaml).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml:?} gave {err}");
        }
    }

    #[test]
    fn settable_headers_are_kept_in_canonical_form() {
        let c = load_str(
            "http_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\n    Strict-Transport-Security: max-age=31536000\n",
        )
        .unwrap();
        let names: Vec<&str> = c.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
    }

    #[test]
    fn tls_settings_rustls_cannot_honour_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("s.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("s.key"), key.serialize_pem()).unwrap();
        let path = dir.path().join("web.yml");
        let tls = "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n";
        let try_load = |extra: &str| {
            std::fs::write(&path, format!("{tls}{extra}")).unwrap();
            load(&path).map(|(c, files)| (c, files.len()))
        };
        let (c, watched) = try_load("").unwrap();
        assert!(c.tls.is_some());
        assert_eq!(watched, 3, "the config, the certificate and the key");
        let (c, _) = try_load("  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [X25519, CurveP256]\n").unwrap();
        assert!(c.tls.is_some());
        for (extra, says) in [
            ("  min_version: TLS11\n", "TLS 1.0 and 1.1"),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "above max_version",
            ),
            (
                "  client_auth_type: RequireAnyClientCert\n",
                "without verifying",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file",
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "TLS_RSA_WITH_RC4_128_SHA",
            ),
            ("  curve_preferences: [CurveP521]\n", "CurveP521"),
            ("  client_allowed_sans: [a]\n", "not supported"),
            ("  client_allowed_sans: a\n", "must be a list"),
        ] {
            let err = try_load(extra).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(says), "{extra:?} gave {err}");
        }
    }
}
