//! An in-process fake Janssen server on 127.0.0.1 that follows the reference (§2–§5):
//! discovery, a client-credentials token endpoint, the stat endpoint with upstream's
//! authorization rules, both response shapes and per-query caching, the health check,
//! and the FIDO2 metrics API. Failures can be injected per path.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "1800.df1bb233-10b8-40ed-bbb9-07da50892a35";
pub const CLIENT_SECRET: &str = "s3cr3t-123456";
/// The client an API caller's token was issued to (the Admin UI, a reporting job).
pub const OTHER_CLIENT_ID: &str = "2201.8c1a6c3e-5b0e-4a8f-9a3e-0d1f1b2c3d4e";

/// grant type → token type → count, as the stat endpoint nests them.
pub type GrantCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// One injected misbehaviour for the next request to a path.
#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16),
    Delay(Duration),
    Garbage,
    Oversize(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Default,
    JsonMonth,
}

pub struct State {
    pub base: String,
    pub token_ttl: u64,
    /// token → (scope, expires at)
    pub tokens: HashMap<String, (String, Instant)>,
    pub tokens_issued: u32,
    /// month → (mau, grant → token type → count)
    pub stat: BTreeMap<u32, (u64, GrantCounts)>,
    pub shape: Shape,
    /// Cache each stat answer per query this long, like upstream's hourly cache.
    pub stat_cache: Option<Duration>,
    cache: HashMap<String, (Instant, String)>,
    pub health: (String, String),
    /// Append plugin entries to the health-check body, as newer servers do.
    pub health_plugins: bool,
    /// The whole health-check body, as an external health-check script replies.
    pub health_body: Option<String>,
    pub fido2_entries: Vec<Value>,
    pub fido2_up: bool,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub requests: Vec<String>,
    /// Tokens of API clients the exporter must introspect: token → (scope, exp seconds).
    pub user_tokens: HashMap<String, (String, i64)>,
    pub introspections: u32,
    /// Introspection answers `scope` as a JSON array
    /// (`introspectionResponseScopesBackwardCompatibility`).
    pub scopes_as_array: bool,
    /// Introspection refuses the sidecar whatever it sends (a misconfigured client).
    pub introspection_refuses: bool,
    /// Introspection refuses Bearer callers (as with
    /// `introspectionAccessTokenMustHaveUmaProtectionScope` and no `uma_protection`).
    pub bearer_introspection_refused: bool,
}

pub type FakeJanssen = crate::common::FakeServer<State>;

fn json_response(
    status: u16,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn error_401(reason: &str) -> Response<Full<Bytes>> {
    // Upstream writes these with a 4-space indent (samples/stat-error-401.json).
    let body = serde_json::to_string_pretty(
        &json!({"error": "access_denied", "error_description": "access_denied", "reason": reason}),
    )
    .unwrap();
    json_response(401, body, "application/json")
}

fn parse_iso(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

impl State {
    fn stat(
        &mut self,
        headers: &hyper::HeaderMap,
        params: &[(String, String)],
    ) -> Response<Full<Bytes>> {
        let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return error_401("Can't find grant for authorization.");
        };
        let Some(token) = auth.strip_prefix("Bearer ") else {
            return error_401("Can't find grant for authorization.");
        };
        let Some((scope, expires)) = self.tokens.get(token).cloned() else {
            // Upstream looks the grant up first: an unknown token has none.
            return error_401("Can't find grant for authorization.");
        };
        if Instant::now() > expires {
            return error_401("Token expired.");
        }
        if !scope.contains("jans_stat") {
            return error_401("jans_stat scope is required for token.");
        }
        let months: Vec<u32> = params
            .iter()
            .filter(|(k, _)| k == "month")
            .flat_map(|(_, v)| {
                v.split(' ')
                    .filter_map(|m| (m.len() == 6).then(|| m.parse().ok()).flatten())
                    .collect::<Vec<u32>>()
            })
            .collect();
        if months.is_empty() {
            return json_response(
                400,
                "{\n    \"error\": \"invalid_request\"\n}",
                "application/json",
            );
        }
        let key = format!("{months:?}{:?}", self.shape);
        if let (Some(ttl), Some((at, body))) = (self.stat_cache, self.cache.get(&key)) {
            if at.elapsed() < ttl {
                return json_response(200, body.clone(), "application/json");
            }
        }
        let items: Vec<(u32, Value)> = months
            .iter()
            .filter_map(|m| self.stat.get(m).map(|(mau, tokens)| (*m, json!({"month": m.to_string(), "monthly_active_users": mau, "token_count_per_granttype": tokens}))))
            .collect();
        let body = match self.shape {
            Shape::Default => json!({"response": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
            Shape::JsonMonth => json!({"response": items.into_iter().map(|(m, v)| (m.to_string(), v)).collect::<serde_json::Map<_, _>>()}),
        }
        .to_string();
        self.cache.insert(key, (Instant::now(), body.clone()));
        json_response(200, body, "application/json")
    }

    fn token(
        &mut self,
        headers: &hyper::HeaderMap,
        form: &[(String, String)],
    ) -> Response<Full<Bytes>> {
        use base64_engine::decode_basic;
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let creds = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(decode_basic)
            .or_else(|| Some((field("client_id")?, field("client_secret")?)));
        if creds != Some((CLIENT_ID.to_string(), CLIENT_SECRET.to_string()))
            || field("grant_type").as_deref() != Some("client_credentials")
        {
            return json_response(401, r#"{"error":"invalid_client"}"#, "application/json");
        }
        self.tokens_issued += 1;
        let token = format!("at-{}-{}", self.tokens_issued, fastrand::u64(..));
        let scope = field("scope").unwrap_or_default();
        self.tokens.insert(
            token.clone(),
            (
                scope.clone(),
                Instant::now() + Duration::from_secs(self.token_ttl),
            ),
        );
        json_response(200, json!({"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl, "scope": scope}).to_string(), "application/json")
    }

    /// RFC 7662 as Janssen decides it (reference §4): a caller authenticated with its own
    /// access token (`Bearer`) may introspect any token; one authenticated with `Basic`
    /// client credentials only the tokens issued to itself, anything else is a 401.
    fn introspect(
        &mut self,
        headers: &hyper::HeaderMap,
        form: &[(String, String)],
    ) -> Response<Full<Bytes>> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let refused = || {
            json_response(
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed."}"#,
                "application/json",
            )
        };
        if self.introspection_refuses {
            return refused();
        }
        let token = form
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let own_tokens_only = if let Some(bearer) = auth.strip_prefix("Bearer ") {
            if self.bearer_introspection_refused {
                return refused();
            }
            match self.tokens.get(bearer) {
                Some((_, until)) if Instant::now() < *until => false,
                _ => return refused(),
            }
        } else if let Some(basic) = auth.strip_prefix("Basic ") {
            if base64_engine::decode_basic(basic)
                != Some((CLIENT_ID.to_string(), CLIENT_SECRET.to_string()))
            {
                return refused();
            }
            true
        } else {
            return refused();
        };
        self.introspections += 1;
        let issued_to_caller = self.tokens.contains_key(&token);
        if own_tokens_only && !issued_to_caller {
            return json_response(
                401,
                r#"{"error":"invalid_token","error_description":"Authorization grant is null."}"#,
                "application/json",
            );
        }
        let scope_value = |scope: &str| -> Value {
            if self.scopes_as_array {
                json!(scope.split_whitespace().collect::<Vec<_>>())
            } else {
                json!(scope)
            }
        };
        let own = self.tokens.get(&token).map(|(scope, until)| {
            let exp = chrono::Utc::now().timestamp()
                + until.saturating_duration_since(Instant::now()).as_secs() as i64;
            (scope.clone(), exp)
        });
        let body = match own.as_ref().or(self.user_tokens.get(&token)) {
            Some((scope, exp)) => {
                json!({"active": true, "scope": scope_value(scope), "client_id": OTHER_CLIENT_ID, "username": null, "token_type": "Bearer",
                "exp": exp, "iat": exp - 300, "sub": "", "aud": OTHER_CLIENT_ID, "iss": self.base, "jti": null, "acr": null, "nbf": null, "cnf": null})
            }
            None => {
                json!({"active": false, "scope": null, "client_id": null, "username": null, "token_type": null, "exp": null, "iat": null,
                "sub": null, "aud": null, "iss": null, "jti": null, "acr": null, "nbf": null, "cnf": null})
            }
        };
        json_response(200, body.to_string(), "application/json")
    }

    fn fido2_entries(&self, params: &[(String, String)]) -> Response<Full<Bytes>> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| parse_iso(v))
        };
        let (Some(start), Some(end)) = (get("startTime"), get("endTime")) else {
            return json_response(400, r#"{"error":"bad time"}"#, "application/json");
        };
        if start > end {
            return json_response(400, r#"{"error":"start after end"}"#, "application/json");
        }
        // Whole seconds, inclusive, as the API compares LocalDateTimes.
        let end = end + 999;
        let hits: Vec<&Value> = self
            .fido2_entries
            .iter()
            .filter(|e| match e["timestamp"].as_i64() {
                Some(t) => t >= start && t <= end,
                // The forms older builds wrote, and broken ones: the fake cannot place
                // them in a window, so it always returns them.
                None => true,
            })
            .collect();
        json_response(
            200,
            serde_json::to_string(&hits).unwrap(),
            "application/json",
        )
    }
}

/// Minimal Basic-auth decoding (RFC 7617), enough for the test's credentials.
mod base64_engine {
    pub fn decode_basic(encoded: &str) -> Option<(String, String)> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in encoded.trim_end_matches('=').bytes() {
            bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        let text = String::from_utf8(out).ok()?;
        let (user, pass) = text.split_once(':')?;
        // Form-urlencoded, as RFC 6749 §2.3.1 asks of client credentials.
        let decode = |s: &str| {
            reqwest::Url::parse(&format!("http://x/?v={s}"))
                .ok()?
                .query_pairs()
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Some((decode(user)?, decode(pass)?))
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let mut params = query_pairs(parts.uri.query().unwrap_or(""));
    if parts.method == hyper::Method::POST {
        params.extend(query_pairs(&String::from_utf8_lossy(&body)));
    }
    let fault = {
        let mut s = state.lock().unwrap();
        s.requests.push(format!("{} {}", parts.method, parts.uri));
        s.faults.get_mut(&path).and_then(VecDeque::pop_front)
    };
    match fault {
        Some(Fault::Status(code)) => {
            return Ok(json_response(
                code,
                r#"{"error":"injected"}"#,
                "application/json",
            ))
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Garbage) => {
            return Ok(json_response(
                200,
                "{\"response\": [ {\"month\": ",
                "application/json",
            ))
        }
        Some(Fault::Oversize(n)) => {
            return Ok(json_response(
                200,
                format!("[{}]", "0,".repeat(n / 2) + "0"),
                "application/json",
            ))
        }
        None => {}
    }
    let mut s = state.lock().unwrap();
    let base = s.base.clone();
    let response = match path.as_str() {
        "/.well-known/openid-configuration" => json_response(
            200,
            json!({"issuer": base, "token_endpoint": format!("{base}/jans-auth/restv1/token"),
                   "introspection_endpoint": format!("{base}/jans-auth/restv1/introspection")})
            .to_string(),
            "application/json",
        ),
        "/jans-auth/restv1/token" => s.token(&parts.headers, &params),
        "/jans-auth/restv1/introspection" => s.introspect(&parts.headers, &params),
        "/jans-auth/restv1/internal/stat" => s.stat(&parts.headers, &params),
        "/jans-auth/sys/health-check" => {
            let (status, db) = s.health.clone();
            // Newer servers append one entry per plugin; an external health-check
            // script's reply replaces the whole body (reference §3).
            let body = match &s.health_body {
                Some(body) => body.clone(),
                None => format!(
                    "{{\"status\": \"{status}\", \"db_status\":\"{db}\"{}}}",
                    if s.health_plugins {
                        r#", "fido2": {"status": "running"}, "scim": {"status": "down", "error": "connect timed out"}"#
                    } else {
                        ""
                    }
                ),
            };
            json_response(200, body, "application/json")
        }
        "/jans-fido2/restv1/metrics/entries" => s.fido2_entries(&params),
        "/jans-fido2/restv1/metrics/health" => {
            if s.fido2_up {
                json_response(
                    200,
                    r#"{"status":"UP","metricsEnabled":true,"serviceAvailable":true}"#,
                    "application/json",
                )
            } else {
                json_response(503, r#"{"status":"DOWN"}"#, "application/json")
            }
        }
        _ => json_response(404, "{}", "application/json"),
    };
    Ok(response)
}

impl FakeJanssen {
    pub fn start() -> FakeJanssen {
        crate::common::FakeServer::serve(
            |addr| State {
                base: format!("http://{addr}"),
                token_ttl: 300,
                tokens: HashMap::new(),
                tokens_issued: 0,
                stat: BTreeMap::new(),
                shape: Shape::Default,
                stat_cache: None,
                cache: HashMap::new(),
                health: ("running".into(), "online".into()),
                health_plugins: false,
                health_body: None,
                fido2_entries: Vec::new(),
                fido2_up: true,
                faults: HashMap::new(),
                requests: Vec::new(),
                user_tokens: HashMap::new(),
                introspections: 0,
                scopes_as_array: false,
                introspection_refuses: false,
                bearer_introspection_refused: false,
            },
            handle,
        )
    }

    pub fn fault(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.with(|s| s.faults.entry(path.to_string()).or_default().extend(faults));
    }

    /// A token an API client would present, valid for `seconds` (negative: expired).
    pub fn mint(&self, token: &str, scope: &str, seconds: i64) {
        let exp = chrono::Utc::now().timestamp() + seconds;
        self.with(|s| {
            s.user_tokens
                .insert(token.to_string(), (scope.to_string(), exp))
        });
    }

    pub fn set_tokens(&self, month: u32, mau: u64, counts: &[(&str, &str, u64)]) {
        self.with(|s| {
            let mut grants: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for (g, t, n) in counts {
                grants
                    .entry(g.to_string())
                    .or_default()
                    .insert(t.to_string(), *n);
            }
            s.stat.insert(month, (mau, grants));
        });
    }
}
