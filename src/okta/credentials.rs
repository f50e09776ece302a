//! How the System Log poller authenticates: an API token (`SSWS`), or OAuth 2.0 for
//! Okta, a service app's client-credentials grant with scope `okta.logs.read` signed
//! by its private key (`private_key_jwt`, the only client authentication Okta accepts
//! for its own scopes). The access token is cached until shortly before it expires and
//! replaced after a 401; neither the key nor a token is ever logged.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::event::OktaErrorReason;
use crate::upstream::SecretSource;

/// The scope of `GET /api/v1/logs`.
pub const SCOPE: &str = "okta.logs.read";
/// A client assertion's lifetime (Okta accepts at most an hour).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// A token answer larger than this is refused (bounded memory).
const MAX_TOKEN_BODY: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("okta.private_key_file {0}: cannot be read: {1}")]
    Read(String, std::io::Error),
    #[error("okta.private_key_file {0}: not a PEM RSA (PKCS#1 or PKCS#8) or EC P-256/P-384 (PKCS#8) private key")]
    Key(String),
}

/// Why an `Authorization` header could not be had.
#[derive(Debug)]
pub struct AuthFailure {
    pub reason: OktaErrorReason,
    pub why: String,
}

pub enum Credentials {
    ApiToken(SecretSource),
    PrivateKeyJwt(PrivateKeyJwt),
}

impl Credentials {
    /// The `Authorization` header's value for the next request.
    pub async fn authorization(&mut self, http: &reqwest::Client) -> Result<String, AuthFailure> {
        match self {
            Credentials::ApiToken(token) => match token.get().await {
                Some(t) => Ok(format!("SSWS {}", t.trim())),
                None => Err(AuthFailure {
                    reason: OktaErrorReason::Auth,
                    why: "okta.api_token_file cannot be read".into(),
                }),
            },
            Credentials::PrivateKeyJwt(jwt) => jwt.bearer(http).await,
        }
    }

    /// The org refused what was sent: an access token is asked for again next time.
    pub fn refused(&mut self) {
        if let Credentials::PrivateKeyJwt(jwt) = self {
            jwt.cached = None;
        }
    }
}

pub struct PrivateKeyJwt {
    client_id: String,
    key_id: Option<String>,
    key: EncodingKey,
    algorithm: Algorithm,
    /// `{org}/oauth2/v1/token`: the org authorization server mints Okta-scoped tokens.
    token_url: String,
    cached: Option<(String, Instant)>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
}

impl PrivateKeyJwt {
    /// Reads the key and proves it signs (a wrong key fails at start, not at 3 a.m.).
    pub fn new(
        org: &reqwest::Url,
        client_id: String,
        key_id: Option<String>,
        key_file: &Path,
    ) -> Result<PrivateKeyJwt, CredentialsError> {
        let name = key_file.display().to_string();
        let pem = std::fs::read(key_file).map_err(|e| CredentialsError::Read(name.clone(), e))?;
        let mut token_url = org.clone();
        token_url.set_path("/oauth2/v1/token");
        token_url.set_query(None);
        let candidates = [
            (EncodingKey::from_rsa_pem(&pem).ok(), Algorithm::RS256),
            (EncodingKey::from_ec_pem(&pem).ok(), Algorithm::ES256),
            (EncodingKey::from_ec_pem(&pem).ok(), Algorithm::ES384),
        ];
        for (key, algorithm) in candidates {
            let Some(key) = key else { continue };
            let jwt = PrivateKeyJwt {
                client_id: client_id.clone(),
                key_id: key_id.clone(),
                key,
                algorithm,
                token_url: token_url.to_string(),
                cached: None,
            };
            if jwt.assertion().is_ok() {
                return Ok(jwt);
            }
        }
        Err(CredentialsError::Key(name))
    }

    /// A signed client assertion (RFC 7523): this client, for the token endpoint, for
    /// five minutes, never used twice.
    fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.key_id);
        let claims = Assertion {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.token_url,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
            jti: format!("{:032x}", fastrand::u128(..)),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    async fn bearer(&mut self, http: &reqwest::Client) -> Result<String, AuthFailure> {
        if let Some((token, until)) = &self.cached {
            if Instant::now() < *until {
                return Ok(format!("Bearer {token}"));
            }
        }
        let (token, lifetime) = self.fetch(http).await?;
        // Replaced a little before Okta's expiry (10 %, at least 5 s, at most 60 s).
        let margin = (lifetime / 10)
            .clamp(Duration::from_secs(5), Duration::from_secs(60))
            .min(lifetime);
        let header = format!("Bearer {token}");
        self.cached = Some((token, Instant::now() + lifetime - margin));
        Ok(header)
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(String, Duration), AuthFailure> {
        let fail = |reason, why: String| AuthFailure { reason, why };
        let assertion = self.assertion().map_err(|e| {
            fail(
                OktaErrorReason::Auth,
                format!("cannot sign the client assertion: {e}"),
            )
        })?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let response = http
            .post(&self.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                fail(
                    super::classify(&e),
                    format!("token request: {}", e.without_url()),
                )
            })?;
        let status = response.status();
        let body = super::read_body(response, MAX_TOKEN_BODY)
            .await
            .map_err(|(reason, why)| fail(reason, format!("token answer: {why}")))?;
        if !status.is_success() {
            // Okta's error code is a closed vocabulary (`invalid_client`,
            // `invalid_scope`, `invalid_dpop_proof`, ...): worth logging, and free of
            // secrets; the description is not logged.
            let code = serde_json::from_slice::<TokenError>(&body)
                .ok()
                .and_then(|e| e.error)
                .filter(|c| {
                    c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or_default();
            let reason = match status.as_u16() {
                429 => OktaErrorReason::RateLimited,
                400 | 401 | 403 => OktaErrorReason::Auth,
                400..=499 => OktaErrorReason::Http4xx,
                _ => OktaErrorReason::Http5xx,
            };
            return Err(fail(reason, format!("token request: HTTP {status} {code}")));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            fail(
                OktaErrorReason::Decode,
                "the token answer is not a token".into(),
            )
        })?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(fail(
                OktaErrorReason::Auth,
                "the token is not a Bearer token (turn off DPoP for this service app)".into(),
            ));
        }
        Ok((
            answer.access_token,
            Duration::from_secs(answer.expires_in.unwrap_or(3600).clamp(10, 86_400)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys made for these tests only (`openssl genpkey`); no Okta app knows them.
    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn org() -> reqwest::Url {
        reqwest::Url::parse("https://acme.okta.com/some/path?x=1").unwrap()
    }

    #[test]
    fn rsa_and_ec_keys_sign_and_anything_else_is_refused_at_start() {
        let rsa = PrivateKeyJwt::new(
            &org(),
            "0oa1".into(),
            Some("k1".into()),
            &fixture("okta-service-app-test-key.pem"),
        )
        .unwrap();
        assert_eq!(rsa.algorithm, Algorithm::RS256);
        assert_eq!(rsa.token_url, "https://acme.okta.com/oauth2/v1/token");
        let ec = PrivateKeyJwt::new(
            &org(),
            "0oa1".into(),
            None,
            &fixture("okta-service-app-test-ec-key.pem"),
        )
        .unwrap();
        assert_eq!(ec.algorithm, Algorithm::ES256);
        for not_a_key in ["okta-service-app-test-key.pub.pem", "state-v4-full.json"] {
            assert!(matches!(
                PrivateKeyJwt::new(&org(), "0oa1".into(), None, &fixture(not_a_key)),
                Err(CredentialsError::Key(_))
            ));
        }
        assert!(matches!(
            PrivateKeyJwt::new(&org(), "0oa1".into(), None, &fixture("missing.pem")),
            Err(CredentialsError::Read(..))
        ));
    }

    #[test]
    fn the_assertion_is_for_this_client_and_the_token_endpoint_and_verifies() {
        let jwt = PrivateKeyJwt::new(
            &org(),
            "0oa1".into(),
            Some("k1".into()),
            &fixture("okta-service-app-test-key.pem"),
        )
        .unwrap();
        let a = jwt.assertion().unwrap();
        let b = jwt.assertion().unwrap();
        let public = std::fs::read(fixture("okta-service-app-test-key.pub.pem")).unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&["https://acme.okta.com/oauth2/v1/token"]);
        v.set_issuer(&["0oa1"]);
        v.sub = Some("0oa1".into());
        let claims = |t: &str| jsonwebtoken::decode::<serde_json::Value>(t, &key, &v).unwrap();
        let (ca, cb) = (claims(&a), claims(&b));
        assert_eq!(ca.header.kid.as_deref(), Some("k1"));
        assert_eq!(
            ca.claims["exp"].as_u64().unwrap() - ca.claims["iat"].as_u64().unwrap(),
            300
        );
        assert_ne!(
            ca.claims["jti"], cb.claims["jti"],
            "a jti is never used twice"
        );
    }
}
