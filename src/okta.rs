//! An Okta org's System Log as a second source of the billing figures: users active in
//! user-based flows and tokens issued to machine-to-machine clients, as Okta's own
//! System Log queries for API Access Management count them (`docs/okta.md`).
//!
//! A polling request (`since`, ascending, no `until`), filtered server-side to the
//! token-grant event types, then the `Link: rel="next"` of every answer exactly as
//! returned: Okta's documented way for a continuous consumer, which always returns one.
//! Each page's events go to the store in one batch with the `next` link they lead to,
//! so that a snapshot holds the checkpoint with the counts it produced. The rate-limit
//! headers are obeyed; the token never leaves the `Authorization` header.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{OktaConfig, OKTA_RETENTION};
use crate::event::{
    Batch, Event, Message, OktaCall, OktaErrorReason, OktaEvent, OktaFlow, OktaKind,
    OktaSkipReason, UserKey,
};
use crate::log_limit::RateLimitedLog;
use crate::upstream::SecretSource;

mod credentials;

pub use credentials::{Credentials, CredentialsError, PrivateKeyJwt, SCOPE};

/// Events per page, Okta's largest.
pub const PAGE_LIMIT: usize = 1000;
/// A larger answer is refused (bounded memory): 1000 events are a few MiB.
const MAX_BODY: usize = 32 << 20;

/// The event types of user-based flows (with a grant type other than
/// client_credentials) and, the first of them, of M2M tokens (client_credentials).
pub const M2M_TYPE: &str = "app.oauth2.as.token.grant.access_token";
pub const USER_TYPES: [&str; 6] = [
    "app.oauth2.as.token.grant.access_token",
    "app.oauth2.as.authorize.implicit.access_token",
    "app.oauth2.as.authorize.implicit.id_token",
    "app.oauth2.as.token.grant",
    "app.oauth2.as.token.grant.id_token",
    "app.oauth2.as.token.grant.refresh_token",
];

#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    #[error("okta.org_url: {0}")]
    Url(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// The server-side filter: every token-grant type the figures read.
pub fn filter() -> String {
    USER_TYPES
        .iter()
        .map(|t| format!("eventType eq \"{t}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The first polling request, from `since_ms`.
pub fn first_url(org: &reqwest::Url, since_ms: i64) -> String {
    let mut url = org.clone();
    url.set_path("/api/v1/logs");
    let since = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(since_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    url.query_pairs_mut()
        .append_pair("since", &since)
        .append_pair("sortOrder", "ASCENDING")
        .append_pair("limit", &PAGE_LIMIT.to_string())
        .append_pair("filter", &filter());
    url.to_string()
}

/// Where the first run starts: `backfill` ago (at most the log's 90 days), by default
/// the start of the current UTC month.
pub fn start_ms(backfill: Option<Duration>, now_ms: i64) -> i64 {
    use chrono::Datelike;
    let oldest = now_ms - OKTA_RETENTION.as_millis() as i64;
    let since = match backfill {
        Some(b) => now_ms - b.as_millis() as i64,
        None => chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms)
            .and_then(|t| t.date_naive().with_day(1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(now_ms, |t| t.and_utc().timestamp_millis()),
    };
    since.max(oldest)
}

/// The `rel="next"` link among an answer's `Link` headers.
pub fn next_link<'a>(links: impl Iterator<Item = &'a str>) -> Option<String> {
    links.flat_map(|h| h.split(',')).find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// Whether `url` is on the org's own origin: the token is never sent elsewhere.
pub fn same_origin(url: &str, org: &reqwest::Url) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.origin() == org.origin() && u.path() == "/api/v1/logs")
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    published: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Option<RawOutcome<'a>>,
    #[serde(borrow)]
    actor: Option<RawEntity<'a>>,
    #[serde(borrow)]
    target: Option<Vec<RawEntity<'a>>>,
    #[serde(rename = "debugContext", borrow)]
    debug_context: Option<RawDebugContext<'a>>,
}

#[derive(Deserialize)]
struct RawOutcome<'a> {
    #[serde(borrow)]
    result: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawEntity<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawDebugContext<'a> {
    #[serde(rename = "debugData", borrow)]
    debug_data: Option<RawDebugData<'a>>,
}

#[derive(Deserialize)]
struct RawDebugData<'a> {
    #[serde(rename = "grantType", borrow)]
    grant_type: Option<Cow<'a, str>>,
}

/// Reads one event as the billing queries classify it. Only successful grants count:
/// a failed grant issued no token.
pub fn read_event(raw: &str) -> OktaEvent {
    let skipped = |id, reason| OktaEvent {
        id,
        published_ms: 0,
        kind: OktaKind::Skipped(reason),
    };
    let Ok(e) = serde_json::from_str::<RawEvent>(raw) else {
        return skipped(0, OktaSkipReason::Malformed);
    };
    let Some(uuid) = e.uuid.as_deref().filter(|u| !u.is_empty()) else {
        return skipped(0, OktaSkipReason::Malformed);
    };
    let id = xxhash_rust::xxh3::xxh3_64(uuid.as_bytes());
    let Some(published_ms) = e
        .published
        .as_deref()
        .and_then(|p| chrono::DateTime::parse_from_rfc3339(p).ok())
        .map(|t| t.timestamp_millis())
    else {
        return skipped(id, OktaSkipReason::BadTimestamp);
    };
    let event_type = e.event_type.as_deref().unwrap_or("");
    let success = e
        .outcome
        .as_ref()
        .and_then(|o| o.result.as_deref())
        .is_some_and(|r| r == "SUCCESS");
    let client_credentials = e
        .debug_context
        .as_ref()
        .and_then(|d| d.debug_data.as_ref())
        .and_then(|d| d.grant_type.as_deref())
        .is_some_and(|g| g == "client_credentials");
    let targets = e.target.as_deref().unwrap_or(&[]);
    let target_of = |kind: &str| {
        targets
            .iter()
            .find(|t| t.kind.as_deref() == Some(kind))
            .and_then(|t| t.id.as_deref())
    };
    let kind = if event_type == M2M_TYPE && client_credentials {
        if success {
            OktaKind::M2m(
                target_of("AuthorizationServer")
                    .filter(|s| crate::store::okta::valid_server(s))
                    .map(str::to_string),
            )
        } else {
            OktaKind::NotBilled(OktaFlow::M2m)
        }
    } else if USER_TYPES.contains(&event_type) && !client_credentials {
        if !success {
            OktaKind::NotBilled(OktaFlow::User)
        } else {
            let actor_user = e
                .actor
                .as_ref()
                .filter(|a| a.kind.as_deref() == Some("User"))
                .and_then(|a| a.id.as_deref());
            match target_of("User").or(actor_user).filter(|u| !u.is_empty()) {
                Some(user) => OktaKind::User(UserKey::of(user)),
                None => OktaKind::Skipped(OktaSkipReason::NoUser),
            }
        }
    } else {
        OktaKind::NotBilled(OktaFlow::Other)
    };
    OktaEvent {
        id,
        published_ms,
        kind,
    }
}

/// One page, read: its events and the link to the next.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<OktaEvent>,
    pub next: Option<String>,
}

/// Reads a page's body: a JSON array of events; one that cannot be read costs itself.
pub fn read_page(body: &[u8]) -> Option<Vec<OktaEvent>> {
    let raws: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
    Some(raws.iter().map(|r| read_event(r.get())).collect())
}

/// A failed request: its reason, and when Okta says to try again (a 429's reset).
struct Failure {
    reason: OktaErrorReason,
    retry_at: Option<std::time::SystemTime>,
    why: String,
}

/// The rate-limit window as Okta's last answer described it.
#[derive(Clone, Copy, Debug, Default)]
struct RateLimit {
    remaining: Option<u64>,
    reset: Option<std::time::SystemTime>,
}

impl RateLimit {
    fn of(headers: &reqwest::header::HeaderMap) -> RateLimit {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            remaining: number("x-rate-limit-remaining"),
            reset: number("x-rate-limit-reset")
                .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s)),
        }
    }

    /// How long to wait before the next request: until the reset when nothing is left.
    fn wait(&self) -> Duration {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) => reset
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                // The reset is whole seconds; a little after it, not before.
                .saturating_add(Duration::from_millis(250))
                .min(Duration::from_secs(300)),
            _ => Duration::ZERO,
        }
    }
}

pub struct OktaSource {
    http: reqwest::Client,
    org: reqwest::Url,
    credentials: Credentials,
    poll_interval: Duration,
    backfill: Option<Duration>,
    failure_log: RateLimitedLog,
}

impl OktaSource {
    pub fn new(config: &OktaConfig) -> Result<OktaSource, OktaError> {
        let org = config
            .org_url
            .as_deref()
            .ok_or_else(|| OktaError::Url("not set".into()))
            .and_then(|u| reqwest::Url::parse(u).map_err(|e| OktaError::Url(e.to_string())))?;
        let credentials =
            match (
                &config.api_token_file,
                &config.client_id,
                &config.private_key_file,
            ) {
                (Some(file), _, _) => Credentials::ApiToken(SecretSource::file(file.clone())),
                (None, Some(client_id), Some(key)) => Credentials::PrivateKeyJwt(
                    PrivateKeyJwt::new(&org, client_id.clone(), config.key_id.clone(), key)?,
                ),
                _ => {
                    return Err(OktaError::Url(
                        "needs okta.api_token_file, or okta.client_id with okta.private_key_file"
                            .into(),
                    ))
                }
            };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("jans-exporter/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token elsewhere: none is followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OktaError::Build(e.to_string()))?;
        Ok(OktaSource {
            http,
            org,
            credentials,
            poll_interval: config.poll_interval,
            backfill: config.backfill,
            failure_log: RateLimitedLog::new(Duration::from_secs(60)),
        })
    }

    /// Polls until cancelled, from the saved `next` link or else the first request.
    pub async fn run(
        mut self,
        saved_next: Option<String>,
        tx: mpsc::Sender<Message>,
        cancel: CancellationToken,
    ) {
        let mut url = match saved_next {
            Some(next) if same_origin(&next, &self.org) => next,
            Some(_) => {
                tracing::warn!("the saved Okta checkpoint is not on okta.org_url: starting again from the backfill");
                first_url(&self.org, start_ms(self.backfill, crate::store::now_ms()))
            }
            None => first_url(&self.org, start_ms(self.backfill, crate::store::now_ms())),
        };
        let mut rng = fastrand::Rng::new();
        let mut failures = 0u32;
        let mut limit = RateLimit::default();
        loop {
            let wait = limit.wait();
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return,
                }
            }
            let started = Instant::now();
            let outcome = tokio::select! {
                o = self.fetch(&url) => o,
                () = cancel.cancelled() => return,
            };
            let seconds = started.elapsed().as_secs_f64();
            let at_ms = crate::store::now_ms();
            let (mut events, call, delay) = match outcome {
                Ok((page, rl)) => {
                    limit = rl;
                    let full = page.events.len() >= PAGE_LIMIT;
                    let next = match page.next {
                        Some(n) if same_origin(&n, &self.org) => Ok(n),
                        Some(_) => Err("a next link to another host or path: not followed"),
                        None => {
                            Err("an answer without a next link: polling the same request again")
                        }
                    };
                    let events: Vec<Event> = page.events.into_iter().map(Event::Okta).collect();
                    // The page's events count (a repeat is deduplicated), but an answer
                    // that does not say where to go on is a failed call: not up.
                    let (result, next, delay) = match next {
                        Ok(n) => {
                            failures = 0;
                            url.clone_from(&n);
                            let delay = if full {
                                Duration::ZERO
                            } else {
                                self.poll_interval
                            };
                            (Ok(()), Some(n), delay)
                        }
                        Err(why) => {
                            failures = failures.saturating_add(1);
                            self.log_failure(OktaErrorReason::Decode, why);
                            let delay =
                                crate::upstream::next_delay(self.poll_interval, failures, &mut rng);
                            (Err(OktaErrorReason::Decode), None, delay)
                        }
                    };
                    let call = OktaCall {
                        result,
                        seconds,
                        at_ms,
                        next,
                        rate_limit_remaining: rl.remaining,
                    };
                    (events, call, delay)
                }
                Err(f) => {
                    failures = failures.saturating_add(1);
                    self.log_failure(f.reason, &f.why);
                    let delay = match f.retry_at {
                        Some(at) => at
                            .duration_since(std::time::SystemTime::now())
                            .unwrap_or_default()
                            .saturating_add(Duration::from_millis(250))
                            .min(Duration::from_secs(300)),
                        None => crate::upstream::next_delay(self.poll_interval, failures, &mut rng),
                    };
                    let call = OktaCall {
                        result: Err(f.reason),
                        seconds,
                        at_ms,
                        next: None,
                        rate_limit_remaining: None,
                    };
                    (Vec::new(), call, delay)
                }
            };
            // The page's events and the checkpoint they lead to, in one batch.
            events.push(Event::OktaCall(Box::new(call)));
            let batch = Message::Batch(Batch {
                events,
                ..Batch::default()
            });
            tokio::select! {
                sent = tx.send(batch) => if sent.is_err() { return },
                () = cancel.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    fn log_failure(&mut self, reason: OktaErrorReason, why: &str) {
        if let Some(suppressed) = self.failure_log.allow() {
            // The URL without its query: the cursor is not secret, but long; the token
            // is only ever in a header.
            tracing::warn!(
                url = %format!("{}api/v1/logs", self.org),
                reason = reason.as_str(),
                cause = why,
                suppressed_since_last = suppressed,
                "okta request failed"
            );
        }
    }

    async fn fetch(&mut self, url: &str) -> Result<(Page, RateLimit), Failure> {
        let fail = |reason, why: String| Failure {
            reason,
            retry_at: None,
            why,
        };
        // A refused access token is replaced and the request made once more.
        let mut retried = false;
        let response = loop {
            let authorization = self
                .credentials
                .authorization(&self.http)
                .await
                .map_err(|f| fail(f.reason, f.why))?;
            let response = self
                .http
                .get(url)
                .header(reqwest::header::AUTHORIZATION, authorization)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| fail(classify(&e), e.without_url().to_string()))?;
            if response.status().as_u16() == 401 {
                self.credentials.refused();
                if !retried && matches!(self.credentials, Credentials::PrivateKeyJwt(_)) {
                    retried = true;
                    continue;
                }
            }
            break response;
        };
        let status = response.status();
        let limit = RateLimit::of(response.headers());
        if status.as_u16() == 429 {
            return Err(Failure {
                reason: OktaErrorReason::RateLimited,
                retry_at: Some(
                    limit
                        .reset
                        .unwrap_or_else(|| std::time::SystemTime::now() + Duration::from_secs(60)),
                ),
                why: "429 Too Many Requests".into(),
            });
        }
        if !status.is_success() {
            let reason = match status.as_u16() {
                401 | 403 => OktaErrorReason::Auth,
                400..=499 => OktaErrorReason::Http4xx,
                _ => OktaErrorReason::Http5xx,
            };
            return Err(fail(reason, format!("HTTP {status}")));
        }
        let next = next_link(
            response
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let body = read_body(response, MAX_BODY)
            .await
            .map_err(|(reason, why)| fail(reason, why))?;
        let events = read_page(&body)
            .ok_or_else(|| fail(OktaErrorReason::Decode, "not a JSON list of events".into()))?;
        Ok((Page { events, next }, limit))
    }
}

/// An answer's body, refused beyond `max` bytes (bounded memory).
async fn read_body(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, (OktaErrorReason, String)> {
    let too_large = || {
        (
            OktaErrorReason::Decode,
            "the answer is too large".to_string(),
        )
    };
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| (classify(&e), e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(e: &reqwest::Error) -> OktaErrorReason {
    if e.is_timeout() {
        return OktaErrorReason::Timeout;
    }
    if crate::upstream::is_tls_error(e) {
        return OktaErrorReason::Tls;
    }
    if e.is_decode() || e.is_body() {
        OktaErrorReason::Decode
    } else {
        OktaErrorReason::Connect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, result: &str, grant: Option<&str>, targets: &str) -> String {
        let debug = grant.map_or(String::new(), |g| {
            format!(r#","debugContext":{{"debugData":{{"grantType":"{g}","requestedScopes":"openid"}}}}"#)
        });
        format!(
            r#"{{"uuid":"u-1","published":"2026-12-03T10:00:00.123Z","eventType":"{event_type}","outcome":{{"result":"{result}"}},"actor":{{"id":"0oa1","type":"PublicClientApp"}},"target":[{targets}]{debug},"severity":"INFO"}}"#
        )
    }

    const USER: &str = r#"{"id":"00u1","type":"User","alternateId":"a@example.org"}"#;
    const SERVER: &str =
        r#"{"id":"aus1abc","type":"AuthorizationServer","displayName":"Payments"}"#;

    #[test]
    fn events_are_read_as_the_billing_queries_count_them() {
        let e = read_event(&event(
            M2M_TYPE,
            "SUCCESS",
            Some("client_credentials"),
            SERVER,
        ));
        assert_eq!(e.kind, OktaKind::M2m(Some("aus1abc".into())));
        assert_eq!(e.published_ms, 1_796_292_000_123);
        let e = read_event(&event(
            M2M_TYPE,
            "FAILURE",
            Some("client_credentials"),
            SERVER,
        ));
        assert_eq!(e.kind, OktaKind::NotBilled(OktaFlow::M2m));
        let e = read_event(&event(M2M_TYPE, "SUCCESS", Some("client_credentials"), ""));
        assert_eq!(e.kind, OktaKind::M2m(None));
        for t in USER_TYPES {
            let e = read_event(&event(
                t,
                "SUCCESS",
                Some("authorization_code"),
                &format!("{USER},{SERVER}"),
            ));
            assert_eq!(e.kind, OktaKind::User(UserKey::of("00u1")), "{t}");
        }
        // No grant type is a user flow too; a failure is read, not billed.
        let e = read_event(&event(
            "app.oauth2.as.token.grant.id_token",
            "SUCCESS",
            None,
            USER,
        ));
        assert_eq!(e.kind, OktaKind::User(UserKey::of("00u1")));
        let e = read_event(&event(
            "app.oauth2.as.token.grant",
            "FAILURE",
            Some("password"),
            USER,
        ));
        assert_eq!(e.kind, OktaKind::NotBilled(OktaFlow::User));
        // The org authorization server is not billed.
        let e = read_event(&event(
            "app.oauth2.token.grant.access_token",
            "SUCCESS",
            Some("client_credentials"),
            "",
        ));
        assert_eq!(e.kind, OktaKind::NotBilled(OktaFlow::Other));
        // The actor when it is the user; else nobody to count.
        let actor = event(
            "app.oauth2.as.token.grant.refresh_token",
            "SUCCESS",
            Some("refresh_token"),
            SERVER,
        )
        .replace(r#""type":"PublicClientApp""#, r#""type":"User""#);
        assert_eq!(read_event(&actor).kind, OktaKind::User(UserKey::of("0oa1")));
        let e = read_event(&event(
            "app.oauth2.as.token.grant.refresh_token",
            "SUCCESS",
            Some("refresh_token"),
            SERVER,
        ));
        assert_eq!(e.kind, OktaKind::Skipped(OktaSkipReason::NoUser));
    }

    #[test]
    fn what_cannot_be_read_costs_only_itself() {
        let page = format!(
            "[{},{{\"uuid\":\"x\",\"published\":\"yesterday\"}},{{\"target\":5}},7,{}]",
            event(M2M_TYPE, "SUCCESS", Some("client_credentials"), SERVER),
            event(
                M2M_TYPE,
                "SUCCESS",
                Some("client_credentials"),
                r#"{"id":"aus bad!","type":"AuthorizationServer"}"#
            )
        );
        let events = read_page(page.as_bytes()).unwrap();
        let kinds: Vec<OktaKind> = events.into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                OktaKind::M2m(Some("aus1abc".into())),
                OktaKind::Skipped(OktaSkipReason::BadTimestamp),
                OktaKind::Skipped(OktaSkipReason::Malformed),
                OktaKind::Skipped(OktaSkipReason::Malformed),
                OktaKind::M2m(None),
            ]
        );
        assert!(read_page(b"{\"errorCode\":\"E0000011\"}").is_none());
    }

    #[test]
    fn the_next_link_is_found_among_link_headers_and_kept_on_the_org() {
        let self_and_next = [
            r#"<https://acme.okta.com/api/v1/logs?limit=1000>; rel="self""#,
            r#"<https://acme.okta.com/api/v1/logs?after=123&limit=1000>; rel="next""#,
        ];
        let next = next_link(self_and_next.iter().copied()).unwrap();
        assert_eq!(
            next,
            "https://acme.okta.com/api/v1/logs?after=123&limit=1000"
        );
        let combined = [r#"<https://a/x>; rel="self", <https://a/y>; rel="next""#];
        assert_eq!(
            next_link(combined.iter().copied()).as_deref(),
            Some("https://a/y")
        );
        assert_eq!(
            next_link([r#"<https://a/x>; rel="self""#].iter().copied()),
            None
        );
        let org = reqwest::Url::parse("https://acme.okta.com").unwrap();
        assert!(same_origin(&next, &org));
        assert!(!same_origin(
            "https://evil.example/api/v1/logs?after=1",
            &org
        ));
        assert!(!same_origin("http://acme.okta.com/api/v1/logs", &org));
        assert!(!same_origin("https://acme.okta.com/api/v1/users", &org));
    }

    #[test]
    fn the_first_request_polls_from_the_month_or_the_backfill_within_retention() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        let month = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(start_ms(None, now), month);
        assert_eq!(
            start_ms(Some(Duration::from_secs(3600)), now),
            now - 3_600_000
        );
        assert_eq!(
            start_ms(Some(Duration::from_secs(200 * 86_400)), now),
            now - 90 * 86_400_000
        );
        let url = first_url(
            &reqwest::Url::parse("https://acme.okta.com/").unwrap(),
            month,
        );
        let u = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::BTreeMap<_, _> = u.query_pairs().collect();
        assert_eq!(u.path(), "/api/v1/logs");
        assert_eq!(q["since"], "2026-12-01T00:00:00.000Z");
        assert_eq!(q["sortOrder"], "ASCENDING");
        assert_eq!(q["limit"], "1000");
        assert!(!q.contains_key("until"), "a polling request has no until");
        assert!(
            q["filter"].starts_with("eventType eq \"app.oauth2.as.token.grant.access_token\" or ")
        );
    }
}
