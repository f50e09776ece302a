//! Configuration: built-in defaults < TOML file < `JANS_EXPORTER_` environment
//! (`__` nests: `JANS_EXPORTER_SERVER__LISTEN=0.0.0.0:9781`). Unknown keys are errors.
//! Every key is documented in `docs/config.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::event::Action;
use crate::source::formats;

/// Where to start a file seen for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

/// The default active-user actions (config `active_users.actions`).
/// Only actions whose successful records name the user: SESSION_* records carry no
/// username (reference §1); logins from the server log count on their own.
pub const DEFAULT_ACTIVE_ACTIONS: [&str; 2] = ["USER_AUTHORIZATION", "TOKEN_REQUEST"];

/// Durations as humans write them: `250ms`, `10s`, `5m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like 250ms, 10s or 5m: {e}"
            ))
        })
    }
}

/// An optional duration; absent means unset.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub logs: LogsConfig,
    pub sketch: SketchConfig,
    pub active_users: ActiveUsersConfig,
    pub state: StateConfig,
    pub upstream: UpstreamConfig,
    pub api: ApiConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub okta: OktaConfig,
}

/// An Okta org's System Log as a second source of the billing figures
/// (`docs/okta.md`). Off without `org_url`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OktaConfig {
    /// `https://<org>.okta.com` (plain `http://` only to a loopback address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_url: Option<String>,
    /// A file holding an API token (`Authorization: SSWS <token>`), re-read when it
    /// changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Instead of an API token, OAuth 2.0 for Okta: a service app's client id ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// ... and the PEM private key it signs its client assertions with
    /// (`private_key_jwt`), the public half registered with the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// The key's `kid` in the app's key set, sent in the assertion's header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// How long to wait after a page that was not full.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How far back the first run starts; unset: the start of the current UTC month.
    /// At most 90 days (the System Log's retention).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration"
    )]
    pub backfill: Option<Duration>,
    /// Each request's deadline.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Authorization servers kept as label values, by volume; the rest are `other`.
    pub max_authorization_servers: usize,
}

impl Default for OktaConfig {
    fn default() -> OktaConfig {
        OktaConfig {
            org_url: None,
            api_token_file: None,
            client_id: None,
            private_key_file: None,
            key_id: None,
            poll_interval: Duration::from_secs(60),
            backfill: None,
            timeout: Duration::from_secs(30),
            max_authorization_servers: 10,
        }
    }
}

/// The System Log keeps 90 days.
pub const OKTA_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Cluster-wide figures through Redis (`docs/operations.md`). Off without `redis_url`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://[user[:password]@]host:port[/db]` or `rediss://` (TLS); in `cluster`
    /// and `sentinel` modes a comma-separated list (seed nodes, or the sentinels).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_url"
    )]
    pub redis_url: Option<String>,
    /// How Redis is deployed.
    pub mode: RedisMode,
    /// The master's name the sentinels know (`mode = "sentinel"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_master: Option<String>,
    /// A file holding the password (a mounted Secret); wins over one in the URL. In
    /// sentinel mode it is the master's password (the sentinels' is in their URLs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify a `rediss://` server with, instead of the
    /// system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(with = "duration")]
    pub sync_interval: Duration,
    /// Every key is `{<key_prefix>}:...`: one hash tag, so one Redis Cluster slot.
    pub key_prefix: String,
    /// Each Redis command's deadline.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            redis_url: None,
            mode: RedisMode::Standalone,
            sentinel_master: None,
            password_file: None,
            ca_file: None,
            sync_interval: Duration::from_secs(30),
            key_prefix: "jans-exporter".into(),
            timeout: Duration::from_secs(5),
        }
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How Redis is deployed (`cluster.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server, or a managed one behind one address.
    Standalone,
    /// Redis Cluster: commands go to the node owning the keys' one hash tag.
    Cluster,
    /// A master found through Redis Sentinel, followed across failovers.
    Sentinel,
}

/// The addresses of `cluster.redis_url`, each parsed.
fn redis_urls(urls: &str) -> impl Iterator<Item = Result<reqwest::Url, String>> + '_ {
    urls.split(',').map(str::trim).map(|u| {
        reqwest::Url::parse(u)
            .map_err(|e| e.to_string())
            .and_then(|url| {
                if matches!(url.scheme(), "redis" | "rediss") && url.host().is_some() {
                    Ok(url)
                } else {
                    Err("not redis://host:port or rediss://host:port".into())
                }
            })
    })
}

fn redacted_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let shown: Vec<String> = redis_urls(url.as_deref().unwrap_or(""))
        .map(|u| match u {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("redacted"));
                }
                u.to_string()
            }
            Err(_) => "<unparsable>".to_string(),
        })
        .collect();
    s.serialize_str(&shown.join(","))
}

/// The exporter's own log, on standard error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// `text` for people, `json` (one object per line) for log collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The Janssen-compatible endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `sha256:<hex>` lines (`jans-exporter hash-token`): tokens accepted instead of
    /// introspection, for standalone or demo setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_tokens_file: Option<PathBuf>,
    /// Error bodies carry upstream's `reason` (its `errorReasonEnabled`, off by default).
    #[serde(default)]
    pub error_reason: bool,
}

/// A secret: never printed. Accepts numbers too (figment reads `123456` from the
/// environment as an integer).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Uint(u64),
            Float(f64),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(n) => n.to_string(),
            Raw::Uint(n) => n.to_string(),
            Raw::Float(n) => n.to_string(),
        }))
    }
}

/// How the exporter authenticates to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The auth server, e.g. `https://jans.example.org`. Unset: no polling at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Secret,
    /// A file holding the secret (a mounted Kubernetes secret); re-read when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    pub token_auth_method: TokenAuthMethod,
    pub stat_scope: String,
    #[serde(with = "duration")]
    pub stat_interval: Duration,
    #[serde(with = "duration")]
    pub health_interval: Duration,
    /// Where jans-fido2 answers; defaults to `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fido2_base_url: Option<String>,
    /// `0s` turns FIDO2 polling off.
    #[serde(with = "duration")]
    pub fido2_interval: Duration,
    #[serde(with = "duration")]
    pub fido2_backfill: Duration,
    #[serde(with = "duration")]
    pub fido2_overlap: Duration,
    /// Responses larger than this are cut off and counted as `decode` errors.
    pub max_body_bytes: u64,
}

impl Default for UpstreamConfig {
    fn default() -> UpstreamConfig {
        UpstreamConfig {
            base_url: None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(10),
            client_id: None,
            client_secret: Secret::default(),
            client_secret_file: None,
            token_auth_method: TokenAuthMethod::ClientSecretBasic,
            stat_scope: "jans_stat".into(),
            stat_interval: Duration::from_secs(300),
            health_interval: Duration::from_secs(15),
            fido2_base_url: None,
            fido2_interval: Duration::from_secs(60),
            fido2_backfill: Duration::from_secs(3600),
            fido2_overlap: Duration::from_secs(300),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of `/metrics` and the other endpoints.
    pub listen: SocketAddr,
    /// exporter-toolkit web config file: TLS, basic auth, response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_config_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Paths or globs of audit logs to follow.
    pub paths: Vec<String>,
    /// `auto` or a format name (`jans-audit-text`, `jans-audit-json`).
    pub format: String,
    /// Where to start a file seen for the first time.
    pub start_at: StartAt,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// The zone of the server log's text-layout timestamps (`%d` has none): an IANA
    /// name such as `Europe/Berlin`, or `UTC`.
    #[serde(default = "default_server_time_zone")]
    pub server_time_zone: String,
    /// Warn when nothing has been read for this long (zero: never).
    #[serde(with = "duration", default = "default_stale_after")]
    pub stale_after: Duration,
    /// File events (inotify) wake the poll early; the poll stays the truth.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Threads that read a long unread stretch of a file (a backfill, a replay);
    /// 0: one per available core (the cgroup's CPU quota counts), at most 8.
    #[serde(default)]
    pub backfill_threads: usize,
}

fn default_true() -> bool {
    true
}

fn default_server_time_zone() -> String {
    "UTC".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SketchConfig {
    /// HyperLogLog++ precision, 10–18: standard error ≈ 1.04 / sqrt(2^precision).
    pub precision: u8,
    pub retain_months: u32,
    /// Records stamped further ahead of the wall clock than this touch no sketch: a
    /// wrong clock must not evict the present month.
    #[serde(with = "duration", default = "default_max_clock_ahead")]
    pub max_clock_ahead: Duration,
}

fn default_max_clock_ahead() -> Duration {
    Duration::from_secs(86_400)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveUsersConfig {
    /// Successful records of these actions that name a user make that user active.
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Folder of the durable snapshot.
    pub dir: PathBuf,
    #[serde(with = "duration")]
    pub flush_interval: Duration,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where jans-auth writes its logs in the official images (`${log.base}/logs`).
pub const DEFAULT_LOG_DIR: &str = "/opt/jans/jetty/jans-auth/logs";

/// The logs to follow in `dir`, with the names log4j rotates them to
/// (`filePattern="…/jans-auth_audit-%d{yyyy-MM-dd}-%i.log"`, reference §1): the audit
/// log and the server log, live and rotated. `jans-auth-*.log` matches the server log's
/// rotated files but not jans-auth's other logs (`jans-auth_persistence.log`, …).
pub fn default_log_paths(dir: &str) -> Vec<String> {
    ["jans-auth_audit*.log", "jans-auth.log", "jans-auth-*.log"]
        .iter()
        .map(|name| format!("{}/{name}", dir.trim_end_matches('/')))
        .collect()
}

/// Live logs named by `patterns` whose log4j-rotated name no pattern matches:
/// `(live file, an example rotated name)`. Records written between a rotation and a
/// restart of the sidecar are in that rotated file, and would be lost.
///
/// A pattern names a live log when its file name, without glob characters, ends in
/// `.log` and has a stem (`jans-auth_audit.log*` → `jans-auth_audit.log`).
pub fn rotations_not_matched(patterns: &[String]) -> Vec<(String, String)> {
    let compiled: Vec<glob::Pattern> = patterns
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut out = Vec::new();
    for pattern in patterns {
        let path = std::path::Path::new(pattern);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        let literal: String = name.chars().filter(|c| !"*?[]!".contains(*c)).collect();
        let Some(stem) = literal.strip_suffix(".log").filter(|s| !s.is_empty()) else {
            continue;
        };
        // A rotated name is not itself a live log.
        if stem.contains('-')
            && stem
                .rsplit('-')
                .next()
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        {
            continue;
        }
        let rotated = dir.join(format!("{stem}-2026-11-23-1.log"));
        if !compiled.iter().any(|p| p.matches_path(&rotated)) {
            out.push((
                dir.join(format!("{stem}.log")).display().to_string(),
                rotated.display().to_string(),
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn default_stale_after() -> Duration {
    Duration::from_secs(3600)
}

impl Config {
    /// Defaults. `embedded` is the no-config-file demo: bundled logs, local state.
    pub fn defaults(embedded: bool) -> Config {
        let (paths, state_dir) = if embedded {
            (
                vec!["examples/logs/*.log".to_string()],
                PathBuf::from(".jans-exporter-state"),
            )
        } else {
            (
                default_log_paths(DEFAULT_LOG_DIR),
                PathBuf::from("/var/lib/jans-exporter"),
            )
        };
        Config {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 9781)),
                web_config_file: None,
            },
            logs: LogsConfig {
                paths,
                format: "auto".into(),
                start_at: StartAt::Beginning,
                poll_interval: Duration::from_millis(250),
                server_time_zone: default_server_time_zone(),
                stale_after: default_stale_after(),
                watch: true,
                backfill_threads: 0,
            },
            sketch: SketchConfig {
                precision: 14,
                retain_months: 13,
                max_clock_ahead: default_max_clock_ahead(),
            },
            active_users: ActiveUsersConfig {
                actions: DEFAULT_ACTIVE_ACTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            state: StateConfig {
                dir: state_dir,
                flush_interval: Duration::from_secs(10),
            },
            upstream: UpstreamConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
            okta: OktaConfig::default(),
        }
    }

    /// Loads from the file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, Env::prefixed("JANS_EXPORTER_").split("__"))
    }

    pub fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::defaults(file.is_none())));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.server_time_zone().is_none() {
            return invalid(
                "logs.server_time_zone",
                format!(
                    "`{}` is not a time zone (an IANA name such as Europe/Berlin, or UTC)",
                    self.logs.server_time_zone
                ),
            );
        }
        if !(10..=18).contains(&self.sketch.precision) {
            return invalid(
                "sketch.precision",
                format!("must be between 10 and 18, got {}", self.sketch.precision),
            );
        }
        if !(1..=120).contains(&self.sketch.retain_months) {
            return invalid(
                "sketch.retain_months",
                format!(
                    "must be between 1 and 120, got {}",
                    self.sketch.retain_months
                ),
            );
        }
        if self.logs.paths.is_empty() {
            return invalid("logs.paths", "must list at least one path or glob".into());
        }
        if let Some(bad) = self
            .logs
            .paths
            .iter()
            .find(|p| crate::source::discovery::Pattern::new(p).is_err())
        {
            return invalid("logs.paths", format!("`{bad}` is not a valid glob"));
        }
        // Each pattern is a label value of jans_exporter_log_pattern_files.
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.logs.paths.iter().find(|p| !seen.insert(p.as_str())) {
            return invalid("logs.paths", format!("`{twice}` is listed twice"));
        }
        if self.logs.format != "auto" && formats::id_of(&self.logs.format).is_none() {
            let known: Vec<&str> = formats::ALL.iter().map(|f| f.name()).collect();
            return invalid(
                "logs.format",
                format!(
                    "`{}` is not auto or one of {}",
                    self.logs.format,
                    known.join(", ")
                ),
            );
        }
        let poll = self.logs.poll_interval;
        if poll < Duration::from_millis(10) || poll > Duration::from_secs(10) {
            return invalid("logs.poll_interval", "must be between 10ms and 10s".into());
        }
        if let Some(bad) = self
            .active_users
            .actions
            .iter()
            .find(|a| Action::known(a).is_none())
        {
            return invalid(
                "active_users.actions",
                format!("`{bad}` is not a known audit action"),
            );
        }
        if self.state.flush_interval < Duration::from_millis(100) {
            return invalid("state.flush_interval", "must be at least 100ms".into());
        }
        let u = &self.upstream;
        for (key, url) in [
            ("upstream.base_url", &u.base_url),
            ("upstream.fido2_base_url", &u.fido2_base_url),
        ] {
            if let Some(url) = url {
                match reqwest::Url::parse(url) {
                    Ok(parsed)
                        if matches!(parsed.scheme(), "http" | "https")
                            && parsed.host().is_some() => {}
                    _ => return invalid(key, format!("`{url}` is not an http(s) URL")),
                }
            }
        }
        if !u.client_secret.is_empty() && u.client_secret_file.is_some() {
            return invalid(
                "upstream.client_secret_file",
                "set client_secret or client_secret_file, not both".into(),
            );
        }
        if u.timeout < Duration::from_millis(100) || u.timeout > Duration::from_secs(300) {
            return invalid("upstream.timeout", "must be between 100ms and 5m".into());
        }
        for (key, d) in [
            ("upstream.stat_interval", u.stat_interval),
            ("upstream.health_interval", u.health_interval),
        ] {
            if d < Duration::from_secs(1) {
                return invalid(key, "must be at least 1s".into());
            }
        }
        if !u.fido2_interval.is_zero() && u.fido2_interval < Duration::from_secs(1) {
            return invalid(
                "upstream.fido2_interval",
                "must be 0s (off) or at least 1s".into(),
            );
        }
        if u.stat_scope.is_empty() || u.stat_scope.contains(char::is_whitespace) {
            return invalid("upstream.stat_scope", "must be one scope name".into());
        }
        if !(1024..=1 << 30).contains(&u.max_body_bytes) {
            return invalid(
                "upstream.max_body_bytes",
                "must be between 1 KiB and 1 GiB".into(),
            );
        }
        let c = &self.cluster;
        if let Some(url) = &c.redis_url {
            let urls: Vec<_> = redis_urls(url).collect();
            if let Some(Err(e)) = urls.iter().find(|u| u.is_err()) {
                return invalid("cluster.redis_url", e.to_string());
            }
            if urls.len() > 1 && c.mode == RedisMode::Standalone {
                return invalid(
                    "cluster.redis_url",
                    "several addresses only with mode = \"cluster\" or \"sentinel\"".into(),
                );
            }
            let tls: Vec<bool> = urls
                .iter()
                .flatten()
                .map(|u| u.scheme() == "rediss")
                .collect();
            if tls.iter().any(|t| *t != tls[0]) {
                return invalid(
                    "cluster.redis_url",
                    "all redis:// or all rediss://, not a mix".into(),
                );
            }
        }
        let o = &self.okta;
        if let Some(url) = &o.org_url {
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
                Ok(u) if u.scheme() == "http" && is_loopback(&u) => {}
                _ => {
                    return invalid(
                        "okta.org_url",
                        "must be https://<org>.okta.com (http only to a loopback address: the API token would travel in clear)".into(),
                    )
                }
            }
            let oauth = o.client_id.is_some() || o.private_key_file.is_some();
            match (&o.api_token_file, &o.client_id, &o.private_key_file) {
                (Some(_), _, _) if oauth => {
                    return invalid(
                        "okta.api_token_file",
                        "either an API token or OAuth (client_id, private_key_file), not both".into(),
                    )
                }
                (Some(_), _, _) | (None, Some(_), Some(_)) => {}
                (None, None, None) => {
                    return invalid(
                        "okta.api_token_file",
                        "an org_url needs credentials: api_token_file, or client_id with private_key_file".into(),
                    )
                }
                (None, _, _) => {
                    return invalid(
                        "okta.client_id",
                        "OAuth for Okta needs both client_id and private_key_file".into(),
                    )
                }
            }
        }
        if o.poll_interval < Duration::from_secs(1) {
            return invalid("okta.poll_interval", "must be at least 1s".into());
        }
        if o.backfill.is_some_and(|b| b > OKTA_RETENTION) {
            return invalid(
                "okta.backfill",
                "at most 90d: the System Log keeps no more".into(),
            );
        }
        if o.timeout < Duration::from_millis(100) || o.timeout > Duration::from_secs(300) {
            return invalid("okta.timeout", "must be between 100ms and 5m".into());
        }
        if !(1..=100).contains(&o.max_authorization_servers) {
            return invalid(
                "okta.max_authorization_servers",
                "must be between 1 and 100".into(),
            );
        }
        match (c.mode, &c.sentinel_master) {
            (RedisMode::Sentinel, None) => {
                return invalid(
                    "cluster.sentinel_master",
                    "mode = \"sentinel\" needs the master's name".into(),
                )
            }
            (RedisMode::Standalone | RedisMode::Cluster, Some(_)) => {
                return invalid(
                    "cluster.sentinel_master",
                    "only with mode = \"sentinel\"".into(),
                )
            }
            _ => {}
        }
        if c.sync_interval < Duration::from_secs(1) {
            return invalid("cluster.sync_interval", "must be at least 1s".into());
        }
        if c.timeout < Duration::from_millis(100) || c.timeout > Duration::from_secs(60) {
            return invalid("cluster.timeout", "must be between 100ms and 1m".into());
        }
        if c.key_prefix.is_empty()
            || c.key_prefix.len() > 64
            || !c
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return invalid(
                "cluster.key_prefix",
                "must be 1 to 64 of A-Z a-z 0-9 - _ . :".into(),
            );
        }
        Ok(())
    }

    /// The format to force, or `None` to detect per file.
    /// The server log's zone; `None` only for a name `validate` refuses.
    pub fn server_time_zone(&self) -> Option<chrono_tz::Tz> {
        self.logs.server_time_zone.parse().ok()
    }

    /// [`LogsConfig::backfill_threads`] resolved.
    pub fn backfill_threads(&self) -> usize {
        match self.logs.backfill_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(8),
            n => n,
        }
    }

    pub fn forced_format(&self) -> Option<crate::event::FormatId> {
        formats::id_of(&self.logs.format)
    }

    pub fn active_actions(&self) -> Vec<Action> {
        self.active_users
            .actions
            .iter()
            .filter_map(|a| Action::known(a))
            .collect()
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
// figment's `Jail` returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_default_paths_follow_log4j_rotations_and_the_old_ones_did_not() {
        let defaults = default_log_paths(DEFAULT_LOG_DIR);
        assert_eq!(rotations_not_matched(&defaults), vec![]);
        let rotated = |name: &str| {
            defaults.iter().any(|p| {
                glob::Pattern::new(p)
                    .unwrap()
                    .matches(&format!("{DEFAULT_LOG_DIR}/{name}"))
            })
        };
        for followed in [
            "jans-auth_audit.log",
            "jans-auth_audit-2026-11-23-1.log",
            "jans-auth.log",
            "jans-auth-2026-11-23-12.log",
        ] {
            assert!(rotated(followed), "{followed}");
        }
        for other in [
            "jans-auth_persistence.log",
            "jans-auth_script.log",
            "http_request_response.log",
        ] {
            assert!(!rotated(other), "{other}");
        }
        // The earlier default and README patterns miss the rotated audit log.
        let old = |p: &str| rotations_not_matched(&[p.to_string()]);
        assert_eq!(
            old("/logs/jans-auth_audit.log"),
            vec![(
                "/logs/jans-auth_audit.log".to_string(),
                "/logs/jans-auth_audit-2026-11-23-1.log".to_string()
            )]
        );
        assert_eq!(old("/logs/jans-auth_audit.log*").len(), 1);
        assert_eq!(old("/logs/jans-auth*.log"), vec![]);
        assert_eq!(
            old("examples/logs/*.log"),
            vec![],
            "no stem: no live log named"
        );
        // A live file and its rotations named by two patterns together are fine.
        assert_eq!(
            rotations_not_matched(&["/l/a.log".into(), "/l/a-*.log".into()]),
            vec![]
        );
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nlisten = \"0.0.0.0:1234\"\n[logs]\npaths = [\"/x/*.log\"]\npoll_interval = \"100ms\"\n")?;
            jail.set_env("JANS_EXPORTER_SKETCH__PRECISION", "16");
            jail.set_env("JANS_EXPORTER_STATE__FLUSH_INTERVAL", "5m");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.to_string(), "0.0.0.0:1234");
            assert_eq!(c.logs.paths, vec!["/x/*.log"]);
            assert_eq!(c.logs.poll_interval, Duration::from_millis(100));
            assert_eq!(c.sketch.precision, 16);
            assert_eq!(c.state.flush_interval, Duration::from_secs(300));
            assert_eq!(c.state.dir, PathBuf::from("/var/lib/jans-exporter"));
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_and_numeric_ones_accepted() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("JANS_EXPORTER_UPSTREAM__CLIENT_SECRET", "123456");
            jail.set_env(
                "JANS_EXPORTER_UPSTREAM__BASE_URL",
                "https://jans.example.org",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.upstream.client_secret.expose(), "123456");
            let shown = c.to_redacted_toml();
            assert!(!shown.contains("123456"), "{shown}");
            assert!(shown.contains("client_secret = \"<redacted>\""), "{shown}");
            assert!(!format!("{c:?}").contains("123456"));
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("JANS_EXPORTER_UPSTREAM__BASE_URL", "ftp://x");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("upstream.base_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn no_file_is_the_embedded_default() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c, Config::defaults(true));
            assert_eq!(c.logs.paths, vec!["examples/logs/*.log"]);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_bad_key() {
        let cases = [
            ("[logs]\npathz = []\n", "pathz"),
            ("[sketch]\nprecision = 20\n", "sketch.precision"),
            ("[sketch]\nretain_months = 0\n", "sketch.retain_months"),
            ("[logs]\nformat = \"syslog\"\n", "logs.format"),
            ("[logs]\nstart_at = \"middle\"\n", "start_at"),
            ("[logs]\npoll_interval = \"soon\"\n", "poll_interval"),
            (
                "[active_users]\nactions = [\"LOGIN\"]\n",
                "active_users.actions",
            ),
            ("[nope]\n", "nope"),
            (
                "[logs]\npaths = [\"/a/*.log\", \"/a/*.log\"]\n",
                "listed twice",
            ),
        ];
        for (toml, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.toml", toml)?;
                let err = Config::load(Some(Path::new("c.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(key), "{toml:?} gave {err:?}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("JANS_EXPORTER_SERVER__LISTEN_PORT", "1");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("listen_port"), "{err}");
            Ok(())
        });
        assert!(matches!(
            Config::load(Some(Path::new("/no/such.toml"))),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn okta_needs_one_kind_of_credentials_and_a_safe_url() {
        let org = "[okta]\norg_url = \"https://acme.okta.com\"\n";
        let refused = [
            (org.to_string(), "okta.api_token_file"),
            (format!("{org}api_token_file = \"/t\"\nclient_id = \"0oa\"\nprivate_key_file = \"/k\"\n"), "not both"),
            (format!("{org}client_id = \"0oa\"\n"), "okta.client_id"),
            (format!("{org}private_key_file = \"/k\"\n"), "okta.client_id"),
            ("[okta]\norg_url = \"http://acme.okta.com\"\napi_token_file = \"/t\"\n".into(), "okta.org_url"),
            (format!("{org}api_token_file = \"/t\"\nbackfill = \"91d\"\n"), "okta.backfill"),
            (format!("{org}api_token_file = \"/t\"\npoll_interval = \"10ms\"\n"), "okta.poll_interval"),
            (format!("{org}api_token_file = \"/t\"\nmax_authorization_servers = 0\n"), "okta.max_authorization_servers"),
        ];
        for (toml, key) in refused {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.toml", &toml)?;
                let err = Config::load(Some(Path::new("c.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(key), "{toml:?} gave {err:?}");
                Ok(())
            });
        }
        for toml in [
            format!("{org}api_token_file = \"/t\"\nbackfill = \"90d\"\n"),
            format!("{org}client_id = \"0oa\"\nprivate_key_file = \"/k\"\nkey_id = \"k1\"\n"),
            "[okta]\norg_url = \"http://127.0.0.1:8080\"\napi_token_file = \"/t\"\n".into(),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.toml", &toml)?;
                Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
                Ok(())
            });
        }
    }

    #[test]
    fn the_shipped_config_file_is_valid_and_documents_the_defaults() {
        figment::Jail::expect_with(|_| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jans-exporter.toml");
            let c = Config::load(Some(&path)).map_err(|e| e.to_string())?;
            assert_eq!(c.sketch.precision, 14);
            Ok(())
        });
    }
}
