//! Pollers of the Janssen HTTP API (reference §2–§5), one module per endpoint. They
//! turn answers into events for the store; a scrape never waits on them.

pub mod fido2;
pub mod health;
pub mod leader;
pub mod stat;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::config::{TokenAuthMethod, UpstreamConfig};
use crate::event::{Batch, Event, Message};
pub use crate::event::{Call, Endpoint, ErrorReason};
use crate::log_limit::RateLimitedLog;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read upstream.ca_file {0}: {1}")]
    CaFile(PathBuf, String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct CachedToken {
    value: String,
    /// Refresh before this instant.
    until: Instant,
}

/// A secret, from config or a mounted file re-read when it changes. The file is read
/// with async I/O; the cache lock is never held across it.
pub struct SecretSource {
    inline: String,
    file: Option<PathBuf>,
    cached: Mutex<Option<(SystemTime, String)>>,
}

impl SecretSource {
    /// A secret kept in a file only.
    pub(crate) fn file(path: PathBuf) -> SecretSource {
        SecretSource {
            inline: String::new(),
            file: Some(path),
            cached: Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self) -> Option<String> {
        let Some(path) = &self.file else {
            return (!self.inline.is_empty()).then(|| self.inline.clone());
        };
        let modified = tokio::fs::metadata(path)
            .await
            .and_then(|m| m.modified())
            .ok()?;
        if let Some((t, s)) = lock(&self.cached).as_ref() {
            if *t == modified {
                return Some(s.clone());
            }
        }
        let text = tokio::fs::read_to_string(path).await.ok()?;
        let secret = text.trim_end_matches(['\r', '\n']).to_string();
        *lock(&self.cached) = Some((modified, secret.clone()));
        Some(secret)
    }
}

/// A std mutex whose poisoning (a panic elsewhere) does not spread.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One HTTP client for every poller: TLS, timeouts, body limits, the OAuth token.
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    max_body: u64,
    client_id: Option<String>,
    method: TokenAuthMethod,
    scope: String,
    secret: SecretSource,
    /// Discovery, once: concurrent callers wait for the one request in flight.
    endpoints: OnceCell<(String, Option<String>)>,
    /// The current token cell. A refresh swaps in an empty cell, which the first caller
    /// fills while the others wait on it: one token request in flight at a time.
    token: Mutex<Arc<OnceCell<CachedToken>>>,
    /// Where calls made outside a poller (introspection) are recorded. Weak: the
    /// client must not keep the store's channel open at shutdown.
    calls: Mutex<Option<tokio::sync::mpsc::WeakSender<Message>>>,
    /// One warning per endpoint and reason per minute, with the count held back.
    failure_logs: Mutex<Vec<RateLimitedLog>>,
}

/// How often the same upstream failure (endpoint and reason) is logged.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Why one call failed, with what an operator needs to fix it: the URL called (scheme,
/// host and path only: no query, no credentials), the HTTP status if one came, and the
/// transport's own words. Only the reason reaches the metrics.
#[derive(Debug)]
struct Failure {
    reason: ErrorReason,
    url: Option<String>,
    status: Option<u16>,
    cause: Option<String>,
}

impl From<ErrorReason> for Failure {
    fn from(reason: ErrorReason) -> Failure {
        Failure {
            reason,
            url: None,
            status: None,
            cause: None,
        }
    }
}

impl Failure {
    fn status(reason: ErrorReason, status: reqwest::StatusCode) -> Failure {
        Failure {
            status: Some(status.as_u16()),
            ..Failure::from(reason)
        }
    }

    fn transport(e: reqwest::Error) -> Failure {
        let reason = classify(&e);
        // reqwest's message names the URL with its query; the URL is logged apart.
        let e = e.without_url();
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&inner.to_string());
            source = inner.source();
        }
        Failure {
            cause: Some(cause),
            ..Failure::from(reason)
        }
    }
}

/// The URL as it may be logged: no user, password, query or fragment.
fn loggable(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// A URL string as it may be logged or shown on the landing page.
pub fn shown_url(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| "(not a URL)".to_string(), |u| loggable(&u))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether a transport error is TLS's (a certificate, a handshake) anywhere in its
/// chain: reqwest reports those as connect errors.
pub(crate) fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return true;
        }
        source = err.source();
    }
    false
}

/// Maps a transport error to a reason label.
fn classify(e: &reqwest::Error) -> ErrorReason {
    if e.is_timeout() {
        return ErrorReason::Timeout;
    }
    if is_tls_error(e) {
        return ErrorReason::Tls;
    }
    if e.is_connect() {
        ErrorReason::Connect
    } else if e.is_status() {
        match e.status().map(|s| s.as_u16()) {
            Some(400..=499) => ErrorReason::Http4xx,
            _ => ErrorReason::Http5xx,
        }
    } else if e.is_decode() || e.is_body() {
        ErrorReason::Decode
    } else {
        ErrorReason::Connect
    }
}

impl Client {
    pub fn new(cfg: &UpstreamConfig, base_url: &str) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("jans-exporter/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::CaFile(path.clone(), e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::CaFile(path.clone(), e.to_string()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if cfg.insecure_skip_verify {
            tracing::warn!("upstream.insecure_skip_verify is ON: the auth server's certificate is NOT checked; anyone on the path can read the client secret and forge figures");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let base = reqwest::Url::parse(base_url).map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client {
            http,
            base,
            max_body: cfg.max_body_bytes,
            client_id: cfg.client_id.clone(),
            method: cfg.token_auth_method,
            scope: cfg.stat_scope.clone(),
            secret: SecretSource {
                inline: cfg.client_secret.expose().to_string(),
                file: cfg.client_secret_file.clone(),
                cached: Mutex::new(None),
            },
            endpoints: OnceCell::new(),
            token: Mutex::new(Arc::new(OnceCell::new())),
            calls: Mutex::new(None),
            failure_logs: Mutex::new(
                (0..Endpoint::COUNT * ErrorReason::COUNT)
                    .map(|_| RateLimitedLog::new(FAILURE_LOG_EVERY))
                    .collect(),
            ),
        })
    }

    pub fn url(&self, path: &str) -> String {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.to_string()
    }

    pub fn has_credentials(&self) -> bool {
        self.client_id.is_some()
    }

    /// Sends a request and reads its body within the size limit.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>, String), Failure> {
        let request = request.build().map_err(Failure::transport)?;
        let url = loggable(request.url());
        let at = |f: Failure| Failure {
            url: Some(url.clone()),
            ..f
        };
        let mut response = self
            .http
            .execute(request)
            .await
            .map_err(|e| at(Failure::transport(e)))?;
        let status = response.status();
        let too_big = |n: u64| Failure {
            cause: Some(format!(
                "the answer is larger than upstream.max_body_bytes ({} > {})",
                n, self.max_body
            )),
            ..at(Failure::status(ErrorReason::Decode, status))
        };
        if let Some(n) = response.content_length().filter(|n| *n > self.max_body) {
            return Err(too_big(n));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| at(Failure::transport(e)))?
        {
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(too_big(body.len() as u64 + chunk.len() as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body, url))
    }

    /// `Err` names the status; the caller adds the URL.
    fn check_status(status: reqwest::StatusCode) -> Result<(), Failure> {
        match status.as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(Failure::status(ErrorReason::Auth, status)),
            400..=499 => Err(Failure::status(ErrorReason::Http4xx, status)),
            _ => Err(Failure::status(ErrorReason::Http5xx, status)),
        }
    }

    /// Times a call, records its outcome in `events`, and logs a failure (rate-limited
    /// per endpoint and reason) with its URL, status and cause.
    async fn timed<T>(
        &self,
        endpoint: Endpoint,
        events: &mut Vec<Event>,
        f: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, ErrorReason> {
        let started = Instant::now();
        let result = f.await;
        let seconds = started.elapsed().as_secs_f64();
        if let Err(failure) = &result {
            self.log_failure(endpoint, failure, seconds);
        }
        let result = result.map_err(|f| f.reason);
        events.push(Event::UpstreamCall(Call {
            endpoint,
            result: result.as_ref().map(|_| ()).map_err(|e| *e),
            seconds,
            at_ms: now_ms(),
        }));
        result
    }

    fn log_failure(&self, endpoint: Endpoint, f: &Failure, seconds: f64) {
        let slot = endpoint as usize * ErrorReason::COUNT + f.reason as usize;
        let Some(suppressed) = lock(&self.failure_logs)
            .get_mut(slot)
            .and_then(RateLimitedLog::allow)
        else {
            return;
        };
        tracing::warn!(
            endpoint = endpoint.as_str(),
            url = f.url.as_deref().unwrap_or("-"),
            status = f.status,
            reason = f.reason.as_str(),
            cause = f.cause.as_deref().unwrap_or("-"),
            seconds,
            suppressed_since_last = suppressed,
            "upstream call failed"
        );
    }

    /// Sends `request` and decodes a successful answer's JSON body.
    async fn fetch_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let (status, body, url) = self.send(request).await?;
        let at = |f: Failure| Failure {
            url: Some(url.clone()),
            ..f
        };
        Self::check_status(status).map_err(at)?;
        serde_json::from_slice(&body).map_err(|e| {
            at(Failure {
                cause: Some(format!("the answer is not the JSON expected: {e}")),
                ..Failure::status(ErrorReason::Decode, status)
            })
        })
    }

    /// GET a JSON document without authentication.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: &str,
        query: &[(&str, String)],
        events: &mut Vec<Event>,
    ) -> Result<T, ErrorReason> {
        self.timed(
            endpoint,
            events,
            self.fetch_json(self.http.get(url).query(query)),
        )
        .await
    }

    /// GET with the client-credentials token; a 401 refreshes the token and retries once.
    pub async fn get_json_authorized<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: &str,
        query: &[(&str, String)],
        events: &mut Vec<Event>,
    ) -> Result<T, ErrorReason> {
        let mut token = match self.token(events, None).await {
            Ok(t) => t,
            Err(e) => {
                events.push(Event::UpstreamCall(Call {
                    endpoint,
                    result: Err(e),
                    seconds: 0.0,
                    at_ms: now_ms(),
                }));
                return Err(e);
            }
        };
        for attempt in 0..2 {
            let request = self.http.get(url).query(query).bearer_auth(&token);
            let result = self.timed(endpoint, events, self.fetch_json(request)).await;
            match result {
                Err(ErrorReason::Auth) if attempt == 0 => {
                    match self.token(events, Some(&token)).await {
                        Ok(t) => token = t,
                        Err(e) => return Err(e),
                    }
                }
                other => return other,
            }
        }
        Err(ErrorReason::Auth)
    }

    /// The token and introspection endpoints from discovery (cached once found).
    pub async fn endpoints(
        &self,
        events: &mut Vec<Event>,
    ) -> Result<(String, Option<String>), ErrorReason> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = self.url("/.well-known/openid-configuration");
                let d: Discovery = self
                    .get_json(Endpoint::Discovery, &url, &[], events)
                    .await?;
                Ok((d.token_endpoint, d.introspection_endpoint))
            })
            .await
            .cloned()
    }

    /// A cached access token. `stale` is a token the server refused: it is replaced,
    /// unless another caller has already done so.
    async fn token(
        &self,
        events: &mut Vec<Event>,
        stale: Option<&str>,
    ) -> Result<String, ErrorReason> {
        let cell = {
            let mut current = lock(&self.token);
            let expired = current
                .get()
                .is_some_and(|t| Instant::now() >= t.until || Some(t.value.as_str()) == stale);
            if expired {
                *current = Arc::new(OnceCell::new());
            }
            Arc::clone(&current)
        };
        let token = cell.get_or_try_init(|| self.fetch_token(events)).await?;
        Ok(token.value.clone())
    }

    /// One client-credentials token request.
    async fn fetch_token(&self, events: &mut Vec<Event>) -> Result<CachedToken, ErrorReason> {
        let Some(client_id) = self.client_id.clone() else {
            return Err(ErrorReason::Auth);
        };
        let secret = self.secret.get().await.ok_or(ErrorReason::Auth)?;
        let (token_endpoint, _) = self.endpoints(events).await?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.scope.as_str()),
        ];
        let response: TokenResponse = self
            .timed(Endpoint::Token, events, async {
                let request = self.http.post(&token_endpoint);
                let request = match self.method {
                    TokenAuthMethod::ClientSecretBasic => {
                        let (id, secret) = basic_credentials(&client_id, &secret);
                        request.basic_auth(id, Some(secret)).form(&form)
                    }
                    TokenAuthMethod::ClientSecretPost => {
                        let mut fields = form.to_vec();
                        fields.push(("client_id", &client_id));
                        fields.push(("client_secret", &secret));
                        request.form(&fields)
                    }
                };
                let (status, body, url) = self.send(request).await?;
                let reason = match status.as_u16() {
                    200..=299 => {
                        return serde_json::from_slice(&body).map_err(|e| Failure {
                            url: Some(url),
                            cause: Some(format!("the token answer is not JSON: {e}")),
                            ..Failure::status(ErrorReason::Decode, status)
                        })
                    }
                    400 | 401 | 403 => ErrorReason::Auth,
                    s if s < 500 => ErrorReason::Http4xx,
                    _ => ErrorReason::Http5xx,
                };
                Err(Failure {
                    url: Some(url),
                    ..Failure::status(reason, status)
                })
            })
            .await?;
        // Refresh a little before the server's expiry (10 %, at least 5 s, at most 60 s).
        let lifetime = Duration::from_secs(response.expires_in.unwrap_or(300));
        let margin = (lifetime / 10)
            .clamp(Duration::from_secs(5), Duration::from_secs(60))
            .min(lifetime);
        Ok(CachedToken {
            value: response.access_token,
            until: Instant::now() + lifetime - margin,
        })
    }

    /// Records calls made outside a poller (introspection) into the store's channel.
    pub fn record_calls_to(&self, tx: &tokio::sync::mpsc::Sender<Message>) {
        *lock(&self.calls) = Some(tx.downgrade());
    }

    /// Sends `events` to the store if it is still receiving; never waits.
    fn record(&self, events: Vec<Event>) {
        let tx = lock(&self.calls).as_ref().and_then(|w| w.upgrade());
        if let (Some(tx), false) = (tx, events.is_empty()) {
            // A full channel drops the record of the call, never the caller's answer.
            let _ = tx.try_send(Message::Batch(Batch {
                events,
                ..Batch::default()
            }));
        }
    }
}

impl Client {
    /// RFC 7662 introspection of `token`, authenticating with this client's own access
    /// token (`Bearer`): Janssen lets a client authenticated with `Basic` introspect only
    /// tokens issued to itself, and every caller of the stat endpoint holds a token of
    /// another client (reference §4). A 401 refreshes the sidecar's token and retries
    /// once; a second refusal is the sidecar's own misconfiguration (`Auth`). Timed and
    /// recorded like every other upstream call.
    pub async fn introspect(&self, token: &str) -> Result<serde_json::Value, ErrorReason> {
        let mut events = Vec::new();
        let result = async {
            let (_, introspection) = self.endpoints(&mut events).await?;
            let url = introspection.ok_or(ErrorReason::Decode)?;
            match self.introspect_bearer(&url, token, &mut events).await {
                // Refused as Bearer (no token for the sidecar, or the server wants a scope
                // it lacks): Basic still answers for tokens issued to the sidecar's own
                // client, the one case where that answer means something. Any other
                // token is refused there too, and stays the sidecar's problem.
                Err(ErrorReason::Auth) => self.introspect_basic(&url, token, &mut events).await,
                other => other,
            }
        }
        .await;
        self.record(events);
        result
    }

    async fn introspect_bearer(
        &self,
        url: &str,
        token: &str,
        events: &mut Vec<Event>,
    ) -> Result<serde_json::Value, ErrorReason> {
        let mut own = self.token(events, None).await?;
        for attempt in 0..2 {
            let request = self
                .http
                .post(url)
                .bearer_auth(&own)
                .form(&[("token", token)]);
            match self
                .timed(Endpoint::Introspection, events, self.fetch_json(request))
                .await
            {
                Err(ErrorReason::Auth) if attempt == 0 => {
                    own = self.token(events, Some(&own)).await?;
                }
                other => return other,
            }
        }
        Err(ErrorReason::Auth)
    }

    async fn introspect_basic(
        &self,
        url: &str,
        token: &str,
        events: &mut Vec<Event>,
    ) -> Result<serde_json::Value, ErrorReason> {
        let client_id = self.client_id.clone().ok_or(ErrorReason::Auth)?;
        let secret = self.secret.get().await.ok_or(ErrorReason::Auth)?;
        let (id, secret) = basic_credentials(&client_id, &secret);
        let request = self
            .http
            .post(url)
            .basic_auth(id, Some(secret))
            .form(&[("token", token)]);
        self.timed(Endpoint::Introspection, events, self.fetch_json(request))
            .await
    }
}

/// `Basic` credentials as RFC 6749 §2.3.1 wants them: id and secret form-encoded before
/// base64 (Janssen URL-decodes both, so a secret with `+`, `%` or `:` would not match).
fn basic_credentials(client_id: &str, secret: &str) -> (String, String) {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    (enc(client_id), enc(secret))
}

/// Delay after `failures` consecutive failures: the interval when healthy, else
/// exponential from 1 s, capped at the interval, with ±20 % jitter.
pub fn next_delay(interval: Duration, failures: u32, rng: &mut fastrand::Rng) -> Duration {
    let base = if failures == 0 {
        interval
    } else {
        Duration::from_secs(1u64 << (failures - 1).min(16)).min(interval)
    };
    base.mul_f64(0.8 + 0.4 * rng.f64())
}

/// Something polled on an interval.
pub trait Poller: Send {
    /// One poll; `Ok` when the upstream answered usefully. `leading`: this sidecar
    /// holds the lease on the cluster-wide endpoints (always, without a cluster).
    fn poll<'a>(
        &'a mut self,
        events: &'a mut Vec<Event>,
        leading: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;
    fn interval(&self) -> Duration;
    fn name(&self) -> &'static str;
    /// The URL it polls, as it may be shown (see [`shown_url`]).
    fn target(&self) -> String;
    /// It polls figures the whole cluster shares: it is woken when this sidecar takes
    /// the lease, and told where the previous holder stopped.
    fn cluster_wide(&self) -> bool {
        false
    }
    /// A new term began: continue from where the previous holder stopped.
    fn take_over(&mut self, _term: &leader::Term) {}
}

/// Runs a poller until `cancel` fires, sending each poll's events to the store. Every
/// await (the poll, the send, the pause) gives way to cancellation; a cluster-wide
/// poller also wakes when this sidecar takes the lease, to poll at once.
pub async fn run(
    mut poller: Box<dyn Poller>,
    tx: tokio::sync::mpsc::Sender<Message>,
    mut gate: leader::LeaderGate,
    cancel: CancellationToken,
) {
    let mut rng = fastrand::Rng::new();
    let mut failures = 0u32;
    let mut term_seen = 0u64;
    loop {
        let term = gate.leading();
        if let (Some(t), true) = (term, poller.cluster_wide()) {
            if t.number != term_seen {
                poller.take_over(&t);
                term_seen = t.number;
            }
        }
        let mut events = Vec::new();
        let ok = tokio::select! {
            ok = poller.poll(&mut events, term.is_some()) => ok,
            _ = cancel.cancelled() => return,
        };
        if !events.is_empty() {
            let batch = Message::Batch(Batch {
                events,
                ..Batch::default()
            });
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { return },
                _ = cancel.cancelled() => return,
            }
        }
        failures = if ok { 0 } else { failures.saturating_add(1) };
        if failures == 1 {
            tracing::warn!(
                poller = poller.name(),
                "upstream poll failed; retrying with backoff"
            );
        }
        let deadline =
            tokio::time::Instant::now() + next_delay(poller.interval(), failures, &mut rng);
        let was_leading = term.is_some();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = cancel.cancelled() => return,
                // Renewals wake this too: only a new lease cuts the pause short.
                _ = gate.changed(), if poller.cluster_wide() => {
                    if !was_leading && gate.leading().is_some() {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(
            basic_credentials("2201.8c1a", "a+b%c:d e/f"),
            ("2201.8c1a".to_string(), "a%2Bb%25c%3Ad+e%2Ff".to_string())
        );
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_interval_with_jitter() {
        let mut rng = fastrand::Rng::with_seed(1);
        let interval = Duration::from_secs(300);
        for _ in 0..100 {
            let d = next_delay(interval, 0, &mut rng);
            assert!(d >= Duration::from_secs(240) && d <= Duration::from_secs(360));
            let d = next_delay(interval, 1, &mut rng);
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200));
            let d = next_delay(interval, 4, &mut rng);
            assert!(d >= Duration::from_millis(6400) && d <= Duration::from_millis(9600));
            let d = next_delay(interval, 30, &mut rng);
            assert!(d <= Duration::from_secs(360), "capped at the interval");
        }
    }
}
