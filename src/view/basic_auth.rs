//! HTTP basic auth against the web config's bcrypt hashes, as exporter-toolkit does it.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so a check that passed
//! is remembered (by a digest of user, password and hash; a changed hash misses), at
//! most one check runs at a time, and a caller without credentials costs nothing. An
//! unknown user is still checked against a real hash, so that the answer's timing does
//! not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Passed checks remembered at most; the set starts over when full.
const REMEMBERED: usize = 256;
/// A caller waits this long at most for the one bcrypt check in flight.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Too many checks queued: answer 503, not 401.
    Busy,
}

#[derive(Debug)]
pub struct BasicAuth {
    passed: Mutex<HashSet<[u8; 32]>>,
    slot: Semaphore,
}

impl Default for BasicAuth {
    fn default() -> Self {
        BasicAuth {
            passed: Mutex::new(HashSet::new()),
            slot: Semaphore::new(1),
        }
    }
}

/// `user:password` from an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn digest(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, password, hash] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl BasicAuth {
    /// Whether `headers` carry the password of one of `users`.
    pub async fn check(&self, users: &BTreeMap<String, String>, headers: &HeaderMap) -> Verdict {
        let Some((user, password)) = credentials(headers) else {
            return Verdict::Deny;
        };
        let Some(any_hash) = users.values().next() else {
            return Verdict::Deny;
        };
        let known = users.get(&user);
        let hash = known.unwrap_or(any_hash).clone();
        let key = digest(&user, &password, &hash);
        if known.is_some() && self.passed.lock().is_ok_and(|p| p.contains(&key)) {
            return Verdict::Allow;
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(QUEUE_TIMEOUT, self.slot.acquire()).await else {
            return Verdict::Busy;
        };
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if !(verified && known.is_some()) {
            return Verdict::Deny;
        }
        if let Ok(mut passed) = self.passed.lock() {
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(key);
        }
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn basic(user_password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_password);
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() {
        let users: BTreeMap<String, String> =
            [("alice".to_string(), bcrypt::hash("s3cret:x", 4).unwrap())].into();
        let auth = BasicAuth::default();
        assert_eq!(
            auth.check(&users, &basic("alice:s3cret:x")).await,
            Verdict::Allow
        );
        // Remembered, and still only for the same password.
        assert_eq!(
            auth.check(&users, &basic("alice:s3cret:x")).await,
            Verdict::Allow
        );
        assert_eq!(
            auth.check(&users, &basic("alice:s3cret")).await,
            Verdict::Deny
        );
        // Another user's password never opens an unknown user.
        assert_eq!(
            auth.check(&users, &basic("mallory:s3cret:x")).await,
            Verdict::Deny
        );
        assert_eq!(auth.check(&users, &HeaderMap::new()).await, Verdict::Deny);
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(auth.check(&users, &bearer).await, Verdict::Deny);
        assert_eq!(
            auth.check(&BTreeMap::new(), &basic("alice:s3cret:x")).await,
            Verdict::Deny
        );
    }
}
