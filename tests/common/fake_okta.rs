//! An in-process fake of an Okta org's System Log API (`GET /api/v1/logs`) on
//! 127.0.0.1, as Okta documents it: `Authorization: SSWS <token>`; a `filter` of
//! `eventType eq "…"` terms joined by `or`; polling requests (`since`, ascending, no
//! `until`) answered in persistence order with a `Link: rel="next"` on every answer,
//! even an empty one, carrying an opaque `after` cursor; `limit` up to 1000; the
//! `X-Rate-Limit-*` headers of a fixed window, and 429 with them when it is spent.
//! Events are stored as JSON with their persistence order, so a test can write them
//! late, out of `published` order, or twice.
//!
//! With [`OktaState::oauth`], OAuth for Okta as well: `POST /oauth2/v1/token` takes a
//! client-credentials grant for scope `okta.logs.read` authenticated by a client
//! assertion (`private_key_jwt`) that must verify with the app's public key, name the
//! app as `iss` and `sub` and the token endpoint as `aud`, live at most an hour, and
//! carry a `jti` never seen before; it answers a Bearer token the logs accept until it
//! expires or is revoked.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

pub struct Stored {
    pub seq: u64,
    pub persisted_ms: i64,
    pub event_type: String,
    pub json: Value,
}

/// A service app registered for OAuth for Okta.
pub struct OAuthApp {
    pub client_id: String,
    pub public_key_pem: Vec<u8>,
    pub expires_in: u64,
    /// Tokens issued and still valid: (token, expiry epoch ms).
    pub issued: Vec<(String, i64)>,
    pub jtis: HashSet<String>,
    /// Token requests: (epoch ms, status).
    pub token_requests: Vec<(i64, u16)>,
}

impl OAuthApp {
    pub fn new(client_id: &str, public_key_pem: Vec<u8>) -> OAuthApp {
        OAuthApp {
            client_id: client_id.to_string(),
            public_key_pem,
            expires_in: 3600,
            issued: Vec::new(),
            jtis: HashSet::new(),
            token_requests: Vec::new(),
        }
    }
}

pub struct OktaState {
    pub oauth: Option<OAuthApp>,
    pub base: String,
    pub token: String,
    pub events: Vec<Stored>,
    next_seq: u64,
    /// Requests allowed per window, and the window.
    pub rate_limit: u64,
    pub window: Duration,
    window_start_secs: u64,
    used: u64,
    /// Answer the next requests with 429, the reset this many seconds ahead.
    pub forced_429: VecDeque<u64>,
    /// Every request: (epoch ms, path and query, status).
    pub requests: Vec<(i64, String, u16)>,
    /// How long each answer takes.
    pub delay: Duration,
    /// Links to this origin instead (a hostile or broken server).
    pub next_origin: Option<String>,
}

pub type FakeOkta = crate::common::FakeServer<OktaState>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn respond(status: u16, body: String, headers: &[(&'static str, String)]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (name, value) in headers {
        r.headers_mut().append(
            hyper::header::HeaderName::from_static(name),
            value.parse().unwrap(),
        );
    }
    r
}

fn params(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `eventType eq "a" or eventType eq "b"`: the event types asked for; `None` for no
/// filter; `Err` for anything else (Okta answers 400).
fn event_types(filter: Option<&str>) -> Result<Option<Vec<String>>, ()> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    filter
        .split(" or ")
        .map(|term| {
            let value = term.trim().strip_prefix("eventType eq ").ok_or(())?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or(())?;
            Ok(value.to_string())
        })
        .collect::<Result<Vec<_>, ()>>()
        .map(Some)
}

impl OktaState {
    /// Stores an event now (its persistence time), in persistence order.
    pub fn add(&mut self, json: Value) {
        self.next_seq += 1;
        self.events.push(Stored {
            seq: self.next_seq,
            persisted_ms: now_ms(),
            event_type: json["eventType"].as_str().unwrap_or("").to_string(),
            json,
        });
    }

    fn rate_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x-rate-limit-limit", self.rate_limit.to_string()),
            (
                "x-rate-limit-remaining",
                self.rate_limit.saturating_sub(self.used).to_string(),
            ),
            (
                "x-rate-limit-reset",
                (self.window_start_secs + self.window.as_secs()).to_string(),
            ),
        ]
    }

    fn logs(&mut self, auth: Option<&str>, query: &str) -> Response<Full<Bytes>> {
        let now_secs = (now_ms() / 1000) as u64;
        if now_secs >= self.window_start_secs + self.window.as_secs() {
            self.window_start_secs = now_secs;
            self.used = 0;
        }
        let bearer_ok = |app: &OAuthApp| {
            auth.and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|t| {
                    app.issued
                        .iter()
                        .any(|(i, until)| i == t && *until > now_ms())
                })
        };
        let ssws_ok = auth == Some(&format!("SSWS {}", self.token));
        if !ssws_ok && !self.oauth.as_ref().is_some_and(bearer_ok) {
            return respond(
                401,
                r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorCauses":[]}"#.into(),
                &[],
            );
        }
        if let Some(ahead) = self.forced_429.pop_front() {
            return respond(
                429,
                r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#.into(),
                &[
                    ("x-rate-limit-limit", self.rate_limit.to_string()),
                    ("x-rate-limit-remaining", "0".into()),
                    ("x-rate-limit-reset", (now_secs + ahead).to_string()),
                ],
            );
        }
        if self.used >= self.rate_limit {
            return respond(
                429,
                r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#.into(),
                &self.rate_headers(),
            );
        }
        self.used += 1;
        let p = params(query);
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Ok(types) = event_types(get("filter")) else {
            return respond(
                400,
                r#"{"errorCode":"E0000031","errorSummary":"Invalid search criteria."}"#.into(),
                &[],
            );
        };
        let limit = get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return respond(
                400,
                r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: limit"}"#.into(),
                &[],
            );
        }
        if get("sortOrder") != Some("ASCENDING") || get("until").is_some() {
            return respond(400, r#"{"errorCode":"E0000001","errorSummary":"this fake answers polling requests only"}"#.into(), &[]);
        }
        // The cursor: after the event with this persistence number.
        let after = match get("after") {
            Some(a) => match a.strip_prefix("c").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => n,
                None => {
                    return respond(
                        400,
                        r#"{"errorCode":"E0000001","errorSummary":"bad after"}"#.into(),
                        &[],
                    )
                }
            },
            None => {
                let Some(since) = get("since")
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.timestamp_millis())
                else {
                    return respond(
                        400,
                        r#"{"errorCode":"E0000001","errorSummary":"since"}"#.into(),
                        &[],
                    );
                };
                self.events
                    .iter()
                    .filter(|e| e.persisted_ms < since)
                    .map(|e| e.seq)
                    .max()
                    .unwrap_or(0)
            }
        };
        let page: Vec<&Stored> = self
            .events
            .iter()
            .filter(|e| e.seq > after)
            .filter(|e| types.as_ref().is_none_or(|t| t.contains(&e.event_type)))
            .take(limit)
            .collect();
        let cursor = page.last().map_or(after, |e| e.seq);
        let body = format!(
            "[{}]",
            page.iter()
                .map(|e| e.json.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut next_query: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| k != "after" && k != "since")
            .cloned()
            .collect();
        next_query.push(("after".into(), format!("c{cursor}")));
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next_query)
            .finish();
        let origin = self
            .next_origin
            .clone()
            .unwrap_or_else(|| self.base.clone());
        let mut headers = self.rate_headers();
        headers.push((
            "link",
            format!("<{}/api/v1/logs?{query}>; rel=\"self\"", self.base),
        ));
        headers.push((
            "link",
            format!("<{origin}/api/v1/logs?{encoded}>; rel=\"next\""),
        ));
        respond(200, body, &headers)
    }
}

impl OktaState {
    fn token(&mut self, form: &[u8]) -> Response<Full<Bytes>> {
        let base = self.base.clone();
        let Some(app) = self.oauth.as_mut() else {
            return respond(404, "{}".into(), &[]);
        };
        let error = |status: u16, code: &str| {
            respond(
                status,
                format!(r#"{{"error":"{code}","error_description":"refused by the fake"}}"#),
                &[],
            )
        };
        let p = params(std::str::from_utf8(form).unwrap_or(""));
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("grant_type") != Some("client_credentials") {
            return error(400, "unsupported_grant_type");
        }
        if get("scope").is_none_or(|s| !s.split(' ').any(|s| s == "okta.logs.read")) {
            return error(400, "invalid_scope");
        }
        if get("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return error(401, "invalid_client");
        }
        let Some(assertion) = get("client_assertion") else {
            return error(401, "invalid_client");
        };
        let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(&app.public_key_pem) else {
            return error(500, "server_error");
        };
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[format!("{base}/oauth2/v1/token")]);
        v.set_issuer(&[&app.client_id]);
        v.sub = Some(app.client_id.clone());
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub", "jti"]);
        let Ok(data) = jsonwebtoken::decode::<Value>(assertion, &key, &v) else {
            return error(401, "invalid_client");
        };
        let c = &data.claims;
        let lifetime = c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0);
        let jti = c["jti"].as_str().unwrap_or("").to_string();
        if !(1..=3600).contains(&lifetime) || jti.is_empty() || !app.jtis.insert(jti) {
            return error(401, "invalid_client");
        }
        let token = format!("eyJfake.{}.{}", app.issued.len(), fastrand::u64(..));
        app.issued
            .push((token.clone(), now_ms() + app.expires_in as i64 * 1000));
        respond(
            200,
            serde_json::json!({
                "token_type": "Bearer",
                "expires_in": app.expires_in,
                "access_token": token,
                "scope": "okta.logs.read",
            })
            .to_string(),
            &[],
        )
    }
}

async fn handle(
    state: Arc<Mutex<OktaState>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = req.method().clone();
    let body = {
        use http_body_util::BodyExt;
        req.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    };
    let delay = state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap();
    let response = match (path.as_str(), method) {
        ("/api/v1/logs", hyper::Method::GET) => s.logs(auth.as_deref(), &query),
        ("/oauth2/v1/token", hyper::Method::POST) => {
            let r = s.token(&body);
            let status = r.status().as_u16();
            if let Some(app) = s.oauth.as_mut() {
                app.token_requests.push((now_ms(), status));
            }
            r
        }
        _ => respond(404, "{}".into(), &[]),
    };
    let status = response.status().as_u16();
    s.requests
        .push((now_ms(), format!("{path}?{query}"), status));
    Ok(response)
}

impl FakeOkta {
    pub fn start(token: &str) -> FakeOkta {
        crate::common::FakeServer::serve(
            |addr| OktaState {
                oauth: None,
                base: format!("http://{addr}"),
                token: token.to_string(),
                events: Vec::new(),
                next_seq: 0,
                rate_limit: 600,
                window: Duration::from_secs(60),
                window_start_secs: 0,
                used: 0,
                forced_429: VecDeque::new(),
                requests: Vec::new(),
                delay: Duration::ZERO,
                next_origin: None,
            },
            handle,
        )
    }
}
