//! Who may read per-tenant figures (the Janssen-compatible stat endpoint): bearer
//! tokens checked by the auth server's introspection endpoint (RFC 7662), or, for a
//! standalone or demo setup, static tokens stored as SHA-256 hashes.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::upstream::Client;

/// Upstream's 401 reasons (reference §2).
/// No Bearer header, or a token upstream knows no grant for (it looks the grant up
/// first, so an unknown token answers this).
pub const NO_GRANT: &str = "Can't find grant for authorization.";
/// Upstream's reason when a grant exists but not the token; introspection cannot tell
/// that case from an unknown token, so the sidecar answers [`NO_GRANT`].
pub const NO_TOKEN: &str = "Can't find access token.";
pub const EXPIRED: &str = "Token expired.";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401 with this reason.
    Deny(String),
    /// The check itself could not be made: 503 naming the cause, never a 200, and
    /// never a 401 that would blame the caller's token.
    Unavailable(String),
}

/// Why a token could not be checked, for the caller's 503.
pub const RATE_LIMITED: &str = "cannot check the token: too many introspection calls";
pub const UNREACHABLE: &str = "cannot check the token: the introspection endpoint did not answer";
pub const REFUSED: &str = "cannot check the token: the auth server refused the sidecar's own credentials at its token or introspection endpoint (upstream.client_id, client secret, or the client's grant types and scopes); see the sidecar's log";

pub trait Authorizer: Send + Sync {
    fn check<'a>(&'a self, token: &'a str) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;
}

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal without an early exit, so timing tells nothing about where they differ.
fn constant_time_eq(a: &Digest32, b: &Digest32) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Tokens from a file of `sha256:<hex>` lines (`jans-exporter hash-token` makes them).
pub struct StaticTokens {
    hashes: Vec<Digest32>,
}

#[derive(Debug, thiserror::Error)]
#[error("api.static_tokens_file {path}: {message}")]
pub struct StaticTokensError {
    path: String,
    message: String,
}

impl StaticTokens {
    pub fn load(path: &Path) -> Result<StaticTokens, StaticTokensError> {
        let fail = |message: String| StaticTokensError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut hashes = Vec::new();
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hex = line
                .strip_prefix("sha256:")
                .ok_or_else(|| fail(format!("line {n}: expected sha256:<64 hex digits>")))?;
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            let hash: Digest32 = bytes
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| fail(format!("line {n}: expected 64 hex digits")))?;
            hashes.push(hash);
        }
        if hashes.is_empty() {
            return Err(fail("no token hashes".into()));
        }
        Ok(StaticTokens { hashes })
    }

    /// The line to put in the file for `token`.
    pub fn hash_line(token: &str) -> String {
        let hex: String = digest(token).iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

impl Authorizer for StaticTokens {
    fn check<'a>(&'a self, token: &'a str) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        let presented = digest(token);
        // Compare against every hash: no early exit either.
        let found = self
            .hashes
            .iter()
            .fold(false, |acc, h| acc | constant_time_eq(h, &presented));
        Box::pin(std::future::ready(if found {
            Decision::Allow
        } else {
            Decision::Deny(NO_GRANT.into())
        }))
    }
}

/// How long answers are kept, and how many.
const POSITIVE_TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;
/// Introspection calls per second at most (a burst of bad tokens cannot hammer upstream).
const CALLS_PER_SECOND: f64 = 20.0;
const BURST: f64 = 40.0;

type Pending = Arc<tokio::sync::OnceCell<Decision>>;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Introspection {
    client: Arc<Client>,
    scope: String,
    cache: Mutex<HashMap<Digest32, (Instant, Decision)>>,
    pending: Mutex<HashMap<Digest32, Pending>>,
    bucket: Mutex<Bucket>,
    /// The refusal of the sidecar's own credentials was logged.
    refused_logged: std::sync::atomic::AtomicBool,
}

/// Whether `scopes` (space-separated) holds `wanted` as a whole word. Upstream tests a
/// substring, so `jans_stat_reader` would pass there; not here.
pub fn has_scope(scopes: &str, wanted: &str) -> bool {
    scopes.split_whitespace().any(|s| s == wanted)
}

/// What an RFC 7662 answer means, and how long that holds.
pub fn decide(answer: &serde_json::Value, scope: &str, now_s: i64) -> (Decision, Duration) {
    let active = answer.get("active").and_then(serde_json::Value::as_bool) == Some(true);
    if !active {
        // Unknown, revoked or expired without an `exp` to tell: upstream finds no grant.
        return (Decision::Deny(NO_GRANT.into()), NEGATIVE_TTL);
    }
    let exp = answer.get("exp").and_then(serde_json::Value::as_i64);
    if exp.is_some_and(|e| e <= now_s) {
        return (Decision::Deny(EXPIRED.into()), NEGATIVE_TTL);
    }
    // A space-joined string, or an array when the server keeps the old format
    // (`introspectionResponseScopesBackwardCompatibility`).
    let granted = match answer.get("scope") {
        Some(serde_json::Value::String(s)) => has_scope(s, scope),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|s| has_scope(s, scope)),
        _ => false,
    };
    if !granted {
        return (
            Decision::Deny(format!("{scope} scope is required for token.")),
            NEGATIVE_TTL,
        );
    }
    let left = exp.map_or(POSITIVE_TTL, |e| {
        Duration::from_secs((e - now_s).max(0) as u64)
    });
    (Decision::Allow, left.min(POSITIVE_TTL))
}

impl Introspection {
    pub fn new(client: Arc<Client>, scope: &str) -> Introspection {
        Introspection {
            client,
            scope: scope.to_string(),
            cache: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            bucket: Mutex::new(Bucket {
                tokens: BURST,
                at: Instant::now(),
            }),
            refused_logged: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn cached(&self, key: &Digest32) -> Option<Decision> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, d)| d.clone())
    }

    fn remember(&self, key: Digest32, decision: &Decision, ttl: Duration) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_MAX {
            let now = Instant::now();
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= CACHE_MAX {
                // Still full of live answers: start over rather than grow.
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now() + ttl, decision.clone()));
    }

    fn take_call_slot(&self) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return false;
        };
        let now = Instant::now();
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * CALLS_PER_SECOND).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn ask(&self, key: Digest32, token: &str) -> Decision {
        if !self.take_call_slot() {
            return Decision::Unavailable(RATE_LIMITED.into());
        }
        match self.client.introspect(token).await {
            Ok(answer) => {
                let (decision, ttl) = decide(&answer, &self.scope, chrono::Utc::now().timestamp());
                self.remember(key, &decision, ttl);
                decision
            }
            Err(crate::event::ErrorReason::Auth) => {
                // The sidecar's own setup is wrong: say so loudly once, not per request.
                if !self
                    .refused_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!("the auth server refused the sidecar's credentials for introspection; the stat endpoint answers 503 until upstream.client_id and its secret are fixed (the client needs the client_credentials grant)");
                }
                Decision::Unavailable(REFUSED.into())
            }
            Err(reason) => {
                tracing::warn!(reason = reason.as_str(), "token introspection failed");
                Decision::Unavailable(UNREACHABLE.into())
            }
        }
    }
}

struct InFlight<'a> {
    pending: &'a Mutex<HashMap<Digest32, Pending>>,
    key: Digest32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&self.key);
        }
    }
}

impl Authorizer for Introspection {
    fn check<'a>(&'a self, token: &'a str) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(async move {
            let key = digest(token);
            if let Some(d) = self.cached(&key) {
                return d;
            }
            // One introspection call per token at a time; concurrent requests share it.
            let cell = match self.pending.lock() {
                Ok(mut pending) => Arc::clone(pending.entry(key).or_default()),
                Err(_) => return Decision::Unavailable(UNREACHABLE.into()),
            };
            // Removed when this request ends, answered or cancelled (a client that hangs
            // up mid-call must not leave an entry behind): the map holds only requests in
            // flight, which the endpoint caps.
            let _in_flight = InFlight {
                pending: &self.pending,
                key,
            };
            cell.get_or_init(|| self.ask(key, token)).await.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_as_a_string_or_an_array() {
        let now = 1_000;
        let with = |scope: serde_json::Value| {
            decide(
                &json!({"active": true, "scope": scope, "exp": now + 60}),
                "jans_stat",
                now,
            )
            .0
        };
        assert_eq!(with(json!("openid jans_stat")), Decision::Allow);
        assert_eq!(with(json!(["openid", "jans_stat"])), Decision::Allow);
        assert_ne!(with(json!(["openid", "jans_stat_reader"])), Decision::Allow);
        assert_ne!(with(json!(null)), Decision::Allow);
        assert_ne!(with(json!(7)), Decision::Allow);
    }

    #[test]
    fn introspection_answers_map_to_upstream_reasons() {
        let now = 1_795_670_619;
        let active = |scope: &str, exp: i64| json!({"active": true, "scope": scope, "exp": exp});
        assert_eq!(
            decide(&active("openid jans_stat", now + 60), "jans_stat", now),
            (Decision::Allow, Duration::from_secs(60))
        );
        assert_eq!(
            decide(&active("jans_stat", now + 3600), "jans_stat", now).1,
            POSITIVE_TTL,
            "at most 5 minutes"
        );
        assert_eq!(
            decide(&json!({"active": false, "scope": null}), "jans_stat", now).0,
            Decision::Deny(NO_GRANT.into())
        );
        assert_eq!(
            decide(&active("jans_stat", now - 1), "jans_stat", now).0,
            Decision::Deny(EXPIRED.into())
        );
        let wrong = Decision::Deny("jans_stat scope is required for token.".into());
        assert_eq!(
            decide(&active("openid", now + 60), "jans_stat", now).0,
            wrong
        );
        assert_eq!(
            decide(
                &active("jans_stat_reader not_jans_stat", now + 60),
                "jans_stat",
                now
            )
            .0,
            wrong,
            "whole words only"
        );
    }

    #[test]
    fn the_shared_samples_decide_as_expected() {
        let read = |n: &str| -> serde_json::Value {
            serde_json::from_str(
                &std::fs::read_to_string(format!(
                    "{}/../shared/janssen/samples/{n}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap(),
            )
            .unwrap()
        };
        let active = read("introspection-active.json");
        let exp = active["exp"].as_i64().unwrap();
        assert_eq!(decide(&active, "jans_stat", exp - 10).0, Decision::Allow);
        assert_eq!(
            decide(&read("introspection-inactive.json"), "jans_stat", exp).0,
            Decision::Deny(NO_GRANT.into())
        );
    }

    #[test]
    fn a_cancelled_check_leaves_nothing_pending() {
        // A loopback listener that never accepts: connections wait in its backlog and
        // every call hangs until cancelled.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = crate::config::UpstreamConfig {
            client_id: Some("c".into()),
            timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let client = Arc::new(
            Client::new(&cfg, &format!("http://{}", silent.local_addr().unwrap())).unwrap(),
        );
        let auth = Introspection::new(client, "jans_stat");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..50 {
                let token = format!("t{i}");
                let _ = tokio::time::timeout(Duration::from_millis(5), auth.check(&token)).await;
            }
        });
        assert_eq!(auth.pending.lock().unwrap().len(), 0);
    }

    #[test]
    fn static_tokens_match_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            format!(
                "# demo\n{}\n\n{}\n",
                StaticTokens::hash_line("alpha"),
                StaticTokens::hash_line("beta")
            ),
        )
        .unwrap();
        let tokens = StaticTokens::load(&path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(tokens.check("beta")), Decision::Allow);
        assert_eq!(
            rt.block_on(tokens.check("gamma")),
            Decision::Deny(NO_GRANT.into())
        );
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains("alpha"),
            "stored hashed"
        );
        std::fs::write(&path, "alpha\n").unwrap();
        let Err(e) = StaticTokens::load(&path) else {
            panic!("a plain token was accepted")
        };
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
