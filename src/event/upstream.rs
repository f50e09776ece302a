//! The plain data that upstream pollers report: which endpoint was called and how it
//! went, and what the stat, health and FIDO2 endpoints answered, reduced to closed sets
//! and opaque keys. Part of the event contract: no poller, store or view code here.

use super::UserKey;

/// The upstream endpoints we call: `endpoint` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Endpoint {
    Discovery,
    Token,
    Stat,
    Health,
    Fido2Entries,
    Fido2Health,
    /// Checking a caller's token for the Janssen-compatible stat endpoint.
    Introspection,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Discovery,
        Endpoint::Token,
        Endpoint::Stat,
        Endpoint::Health,
        Endpoint::Fido2Entries,
        Endpoint::Fido2Health,
        Endpoint::Introspection,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Token => "token",
            Endpoint::Stat => "stat",
            Endpoint::Health => "health",
            Endpoint::Fido2Entries => "fido2_entries",
            Endpoint::Fido2Health => "fido2_health",
            Endpoint::Introspection => "introspection",
        }
    }
}

/// Why a call failed: `reason` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ErrorReason {
    Timeout,
    Connect,
    Tls,
    Http4xx,
    Http5xx,
    /// Not the JSON we expect, or over `upstream.max_body_bytes`.
    Decode,
    /// No token could be had, or the token was refused.
    Auth,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::Timeout,
        ErrorReason::Connect,
        ErrorReason::Tls,
        ErrorReason::Http4xx,
        ErrorReason::Http5xx,
        ErrorReason::Decode,
        ErrorReason::Auth,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Timeout => "timeout",
            ErrorReason::Connect => "connect",
            ErrorReason::Tls => "tls",
            ErrorReason::Http4xx => "http_4xx",
            ErrorReason::Http5xx => "http_5xx",
            ErrorReason::Decode => "decode",
            ErrorReason::Auth => "auth",
        }
    }
}

/// The outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Call {
    pub endpoint: Endpoint,
    pub result: Result<(), ErrorReason>,
    pub seconds: f64,
    pub at_ms: i64,
}

/// Grant types the auth server knows (an open set upstream); anything else is `other`.
pub const GRANT_TYPES: [&str; 11] = [
    "none",
    "authorization_code",
    "implicit",
    "password",
    "client_credentials",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:uma-ticket",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:openid:params:grant-type:ciba",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
];
pub const TOKEN_TYPES: [&str; 5] = [
    "access_token",
    "id_token",
    "refresh_token",
    "uma_token",
    "logout_status_jwt",
];

/// A known grant type's label, or `other`.
pub fn grant_label(name: &str) -> &'static str {
    GRANT_TYPES
        .iter()
        .find(|g| **g == name)
        .copied()
        .unwrap_or("other")
}

pub fn token_label(name: &str) -> &'static str {
    TOKEN_TYPES
        .iter()
        .find(|t| **t == name)
        .copied()
        .unwrap_or("other")
}

/// One month as upstream reports it (cumulative within the month).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MonthStat {
    pub month: u32,
    pub mau: Option<u64>,
    /// (grant label, token label) → count; unknown names are summed under `other`.
    pub tokens: std::collections::BTreeMap<(&'static str, &'static str), u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatReport {
    pub months: Vec<MonthStat>,
}

/// Why a FIDO2 entry could not be read. Fixed set: label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Fido2SkipReason {
    /// No `timestamp` in any form the server has written.
    BadTimestamp,
    /// Not an object, or a field of the wrong type.
    Malformed,
}

impl Fido2SkipReason {
    pub const ALL: [Fido2SkipReason; 2] =
        [Fido2SkipReason::BadTimestamp, Fido2SkipReason::Malformed];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            Fido2SkipReason::BadTimestamp => "bad_timestamp",
            Fido2SkipReason::Malformed => "malformed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthReport {
    pub running: bool,
    pub starting: bool,
    pub db_online: bool,
    pub at_ms: i64,
}

impl HealthReport {
    /// What the container image counts as healthy.
    pub fn up(&self) -> bool {
        self.running && self.db_online
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Operation {
    Registration,
    Authentication,
    Fallback,
    Other,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Registration,
        Operation::Authentication,
        Operation::Fallback,
        Operation::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Registration => "registration",
            Operation::Authentication => "authentication",
            Operation::Fallback => "fallback",
            Operation::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Operation {
        match s.to_ascii_uppercase().as_str() {
            "REGISTRATION" => Operation::Registration,
            "AUTHENTICATION" => Operation::Authentication,
            "FALLBACK" => Operation::Fallback,
            _ => Operation::Other,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Status {
    Attempt,
    Success,
    Failure,
    Abandoned,
    Other,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Attempt,
        Status::Success,
        Status::Failure,
        Status::Abandoned,
        Status::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Attempt => "attempt",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Abandoned => "abandoned",
            Status::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Status {
        match s.to_ascii_uppercase().as_str() {
            "ATTEMPT" => Status::Attempt,
            "SUCCESS" => Status::Success,
            "FAILURE" => Status::Failure,
            "ABANDONED" => Status::Abandoned,
            _ => Status::Other,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Authenticator {
    Platform,
    CrossPlatform,
    SecurityKey,
    Unknown,
}

impl Authenticator {
    pub const ALL: [Authenticator; 4] = [
        Authenticator::Platform,
        Authenticator::CrossPlatform,
        Authenticator::SecurityKey,
        Authenticator::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Authenticator::Platform => "platform",
            Authenticator::CrossPlatform => "cross-platform",
            Authenticator::SecurityKey => "security-key",
            Authenticator::Unknown => "unknown",
        }
    }
    /// Both spellings: the API's `cross-platform` and the model's `CROSS_PLATFORM`.
    pub fn parse(s: &str) -> Authenticator {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "platform" => Authenticator::Platform,
            "cross-platform" => Authenticator::CrossPlatform,
            "security-key" => Authenticator::SecurityKey,
            _ => Authenticator::Unknown,
        }
    }
}

/// One entry, reduced to closed sets and opaque keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Fido2Entry {
    /// XXH3-64 of the entry's `id` (or of its content when it has none).
    pub id: u64,
    pub timestamp_ms: i64,
    pub operation: Operation,
    pub status: Status,
    pub authenticator: Authenticator,
    pub duration_ms: Option<f64>,
    /// Upper-cased, `[A-Z0-9_]`, at most 40 characters; the store caps how many.
    pub error_category: Option<String>,
    pub fallback_method: Option<String>,
    pub user: Option<UserKey>,
}
