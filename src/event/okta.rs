//! What the Okta System Log source reports (see `crate::okta`): token-grant events as
//! the billing queries classify them, where the next page starts, and each request's
//! outcome. Part of the event contract: plain data only.

use super::UserKey;

/// One System Log event, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaEvent {
    /// XXH3-64 of the event's `uuid`: what de-duplication compares.
    pub id: u64,
    /// `published`, epoch ms: the period the event counts in.
    pub published_ms: i64,
    pub kind: OktaKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OktaKind {
    /// A successful grant in a user-based flow of a custom authorization server: the
    /// user is active.
    User(UserKey),
    /// A successful client-credentials access token of a custom authorization server,
    /// with that server's id (`aus…`), or `None` when the event names none.
    M2m(Option<String>),
    /// Read, but not billed (a failed grant, an event of another type), by flow.
    NotBilled(OktaFlow),
    /// Could not be counted: why (`jans_okta_skipped_events_total`).
    Skipped(OktaSkipReason),
}

/// The `flow` label of `jans_okta_events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OktaFlow {
    User,
    M2m,
    Other,
}

impl OktaFlow {
    pub const ALL: [OktaFlow; 3] = [OktaFlow::User, OktaFlow::M2m, OktaFlow::Other];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            OktaFlow::User => "user",
            OktaFlow::M2m => "m2m",
            OktaFlow::Other => "other",
        }
    }
}

/// Why an event could not be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OktaSkipReason {
    /// Not a System Log event object, or without `uuid`.
    Malformed,
    /// `published` missing or not a time.
    BadTimestamp,
    /// A user-based grant naming no user (no `User` target, and the actor is not one).
    NoUser,
}

impl OktaSkipReason {
    pub const ALL: [OktaSkipReason; 3] = [
        OktaSkipReason::Malformed,
        OktaSkipReason::BadTimestamp,
        OktaSkipReason::NoUser,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            OktaSkipReason::Malformed => "malformed",
            OktaSkipReason::BadTimestamp => "bad_timestamp",
            OktaSkipReason::NoUser => "no_user",
        }
    }
}

/// Why a request to Okta failed: the `reason` label of `jans_okta_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OktaErrorReason {
    Timeout,
    Connect,
    Tls,
    /// 401 or 403: the token is wrong, expired, or lacks the right.
    Auth,
    /// 429: the org's rate limit for `/api/v1/logs`.
    RateLimited,
    Http4xx,
    Http5xx,
    /// Not a list of events, too large, or a `next` link to another host.
    Decode,
}

impl OktaErrorReason {
    pub const ALL: [OktaErrorReason; 8] = [
        OktaErrorReason::Timeout,
        OktaErrorReason::Connect,
        OktaErrorReason::Tls,
        OktaErrorReason::Auth,
        OktaErrorReason::RateLimited,
        OktaErrorReason::Http4xx,
        OktaErrorReason::Http5xx,
        OktaErrorReason::Decode,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            OktaErrorReason::Timeout => "timeout",
            OktaErrorReason::Connect => "connect",
            OktaErrorReason::Tls => "tls",
            OktaErrorReason::Auth => "auth",
            OktaErrorReason::RateLimited => "rate_limited",
            OktaErrorReason::Http4xx => "http_4xx",
            OktaErrorReason::Http5xx => "http_5xx",
            OktaErrorReason::Decode => "decode",
        }
    }
}

/// What one request to Okta brought: its outcome and, for a page, where the next one
/// starts. The page's events travel in the same batch, so that a snapshot holds the
/// checkpoint with exactly the counts it produced.
#[derive(Clone, Debug, PartialEq)]
pub struct OktaCall {
    pub result: Result<(), OktaErrorReason>,
    pub seconds: f64,
    pub at_ms: i64,
    /// The `next` link to poll from now on (absent after a failure).
    pub next: Option<String>,
    /// `X-Rate-Limit-Remaining` of the answer, when it said.
    pub rate_limit_remaining: Option<u64>,
}
