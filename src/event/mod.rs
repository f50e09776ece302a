//! Typed events: the only thing sources hand to the store.
//!
//! Sources turn bytes into these; the store applies them. Nothing here carries a
//! username, IP or free text: a user is an opaque 64-bit key (see [`UserKey`]).

use std::hash::{Hash, Hasher};

mod cluster;
mod okta;
mod upstream;
pub use cluster::*;
pub use okta::*;
pub use upstream::*;

/// Declares [`Action`] from one table of variants and upstream spellings, so the
/// spelling, the label and the parser's `match` can never disagree.
macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        /// Audit actions the auth server writes (reference §1). The set is open upstream:
        /// anything else is [`Action::Other`], so label cardinality stays fixed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Action {
            $($variant,)*
            Other,
        }

        impl Action {
            pub const ALL: [Action; [$($name,)*].len() + 1] = [$(Action::$variant,)* Action::Other];
            pub const COUNT: usize = Self::ALL.len();

            /// The upstream spelling, used as the `action` label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                    Action::Other => "other",
                }
            }

            /// A known upstream action, or `None`.
            pub fn known(name: &str) -> Option<Action> {
                Self::known_bytes(name.as_bytes())
            }

            /// A known upstream action from its bytes, or `None` (invalid UTF-8 is no
            /// known name). A `match`, with no UTF-8 check first: it runs once per record.
            pub fn known_bytes(name: &[u8]) -> Option<Action> {
                match name {
                    $(spelling::$variant => Some(Action::$variant),)*
                    _ => None,
                }
            }
        }

        /// The upstream spellings as bytes, for [`Action::known_bytes`]'s patterns.
        #[allow(non_upper_case_globals)]
        mod spelling {
            $(pub const $variant: &[u8] = $name.as_bytes();)*
        }
    };
}

actions! {
    ClientRegistration => "CLIENT_REGISTRATION",
    ClientUpdate => "CLIENT_UPDATE",
    ClientRead => "CLIENT_READ",
    ClientDelete => "CLIENT_DELETE",
    UserAuthorization => "USER_AUTHORIZATION",
    BackchannelAuthentication => "BACKCHANNEL_AUTHENTICATION",
    BackchannelDeviceRegistration => "BACKCHANNEL_DEVICE_REGISTRATION",
    UserInfo => "USER_INFO",
    TokenRequest => "TOKEN_REQUEST",
    TokenValidate => "TOKEN_VALIDATE",
    TokenRevocation => "TOKEN_REVOCATION",
    SessionUnauthenticated => "SESSION_UNAUTHENTICATED",
    SessionAuthenticated => "SESSION_AUTHENTICATED",
    SessionDestroyed => "SESSION_DESTROYED",
    DeviceCodeAuthorization => "DEVICE_CODE_AUTHORIZATION",
    SsaCreate => "SSA_CREATE",
    SsaRead => "SSA_READ",
}

impl Action {
    /// Maps an upstream action name; unknown names become `Other`.
    pub fn from_name(name: &str) -> Action {
        Self::known(name).unwrap_or(Action::Other)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// An opaque user identity: XXH3-64 (seed 0) of the UTF-8 username.
///
/// This is the fixed, documented hash the active-user sketches are fed with, so
/// sketches survive restarts and merge across instances. The username itself never
/// leaves the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserKey(pub u64);

impl UserKey {
    pub fn of(username: &str) -> UserKey {
        UserKey::of_utf8(username.as_bytes())
    }

    /// The key of a username given as bytes already known to be valid UTF-8.
    pub fn of_utf8(username: &[u8]) -> UserKey {
        UserKey(xxhash_rust::xxh3::xxh3_64(username))
    }
}

impl Hash for UserKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Index of a registered record format (see `source::formats::ALL`).
pub type FormatId = u8;

/// One audit record, reduced to what the figures need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub format: FormatId,
    pub action: Action,
    pub success: bool,
    /// The record's own `timestamp` (epoch milliseconds, UTC).
    pub timestamp_ms: i64,
    /// Present when the record names a user.
    pub user: Option<UserKey>,
    /// For a USER_AUTHORIZATION record with `success=false`: XXH3-64 of its JSON body
    /// (timestamp, ip, client, username and scope included). A redirect to a login or
    /// consent page writes one object twice (reference §1): two records with one key
    /// are one redirect.
    pub pair_key: Option<u64>,
    /// The record held invalid UTF-8 (in a username, say) and was read with the bad
    /// bytes replaced rather than lost.
    pub lossy: bool,
}

/// A level of the auth server's log. Fixed set: label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Other,
}

impl LogLevel {
    pub const ALL: [LogLevel; 7] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Fatal,
        LogLevel::Other,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
            LogLevel::Other => "other",
        }
    }

    pub fn parse(name: &[u8]) -> LogLevel {
        Self::ALL[..Self::COUNT - 1]
            .iter()
            .copied()
            .find(|l| l.as_str().as_bytes() == name)
            .unwrap_or(LogLevel::Other)
    }
}

/// Who an Authenticator line is about (reference §1b).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AuthKind {
    /// An interactive user login (`... for User: '<uid>'` success, `... for user: <uid>` failure).
    User,
    /// A non-interactive service check (`Authentication failed for User: '<name>'`).
    Service,
    /// Client authentication at the token endpoint (`... for Client: '<id>'`).
    Client,
    /// Older builds' `Authentication failed for '<name>'`: a user or a client.
    Unknown,
}

impl AuthKind {
    pub const ALL: [AuthKind; 4] = [
        AuthKind::User,
        AuthKind::Service,
        AuthKind::Client,
        AuthKind::Unknown,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::User => "user",
            AuthKind::Service => "service",
            AuthKind::Client => "client",
            AuthKind::Unknown => "unknown",
        }
    }
}

/// An authentication outcome the server logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authentication {
    pub kind: AuthKind,
    pub success: bool,
    /// The user of a successful interactive login, hashed as the audit log's usernames.
    pub user: Option<UserKey>,
}

/// When a server-log line was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTime {
    /// Epoch milliseconds, UTC (the JSON layout's `instant`).
    Utc(i64),
    /// The text layout's `%d`: the server's local wall-clock time, no zone, as if it
    /// were UTC. The store converts it with `logs.server_time_zone`.
    Local(i64),
}

/// One line (event) of the auth server's own log, reduced to its level and, for the
/// Authenticator's lines, the authentication it reports. No message text is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLogEvent {
    pub format: FormatId,
    pub level: LogLevel,
    pub time: LineTime,
    pub authentication: Option<Authentication>,
}

/// Why a record (or a stray line) could not be used. Fixed set: label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MalformedReason {
    /// The JSON body does not parse.
    InvalidJson,
    /// The JSON parses but lacks `action`, `timestamp` or `success`, or has the wrong type.
    MissingField,
    /// A log4j JSON event whose `message` is not an audit record.
    BadMessage,
    /// A text-layout header line with no JSON body after ` - `.
    NoJsonBody,
    /// A record cut short: the next record began, the file was rotated away or truncated.
    Unterminated,
    /// A record over the size limit; skipped to the next record start.
    Oversize,
    /// A line outside any record.
    UnexpectedLine,
    /// A server-log line whose timestamp is not a real date and time.
    BadTimestamp,
}

impl MalformedReason {
    pub const ALL: [MalformedReason; 8] = [
        MalformedReason::InvalidJson,
        MalformedReason::MissingField,
        MalformedReason::BadMessage,
        MalformedReason::NoJsonBody,
        MalformedReason::Unterminated,
        MalformedReason::Oversize,
        MalformedReason::UnexpectedLine,
        MalformedReason::BadTimestamp,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            MalformedReason::InvalidJson => "invalid_json",
            MalformedReason::MissingField => "missing_field",
            MalformedReason::BadMessage => "bad_message",
            MalformedReason::NoJsonBody => "no_json_body",
            MalformedReason::Unterminated => "unterminated",
            MalformedReason::Oversize => "oversize",
            MalformedReason::UnexpectedLine => "unexpected_line",
            MalformedReason::BadTimestamp => "bad_timestamp",
        }
    }

    pub fn from_name(name: &str) -> Option<MalformedReason> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

/// What a source reports. The store applies these in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Audit(AuditEvent),
    /// A line of the auth server's own log (`jans-auth.log`).
    ServerLog(ServerLogEvent),
    /// `format` is `None` while a file's format is not yet detected.
    Malformed {
        format: Option<FormatId>,
        reason: MalformedReason,
    },
    BytesRead(u64),
    Rotated,
    Truncated,
    /// A checkpointed file could not be found again at start (rotated away and gone).
    FileLost,
    /// One request to the upstream API.
    UpstreamCall(Call),
    /// The stat endpoint's answer for the months polled.
    Stat(StatReport),
    /// The health check's answer.
    Health(HealthReport),
    /// The FIDO2 metrics service's health.
    Fido2Health {
        up: bool,
    },
    /// One FIDO2 metrics entry (de-duplicated by the store). Boxed, as are the other
    /// rare large variants, so that an event stays 56 bytes: millions of audit events
    /// pass through batches.
    Fido2(Box<Fido2Entry>),
    /// A FIDO2 entry that could not be read (counted, never silently dropped).
    Fido2Skipped {
        reason: Fido2SkipReason,
    },
    /// Every FIDO2 entry up to this time has been asked for.
    Fido2Synced {
        until_ms: i64,
    },
    /// The outcome of one sync with the cluster's Redis.
    Cluster(ClusterReport),
    /// This sidecar started or stopped polling the cluster-wide endpoints.
    Leadership(Box<Leadership>),
    /// One System Log event of an Okta org.
    Okta(OktaEvent),
    /// One request to Okta's System Log, and where the next page starts.
    OktaCall(Box<OktaCall>),
}

/// Where a file can be read again from after a restart, such that every record after it
/// is framed exactly as it would have been.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    pub offset: u64,
    /// The offset is inside a line that was already handled: drop up to the newline.
    #[serde(default)]
    pub mid_line: bool,
    /// Inside an oversize record: drop lines until the next record start.
    #[serde(default)]
    pub skipping: bool,
}

/// A file's identity: it survives renames, not copies.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// XXH3-64 of a file's first `len` bytes: tells a file from a re-used inode or a
/// truncated-and-rewritten file, and finds a copy of a file already read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

/// How far a file has been read: enough to continue after a restart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCheckpoint {
    pub id: FileId,
    /// Where the file was last seen; informational, identity decides.
    pub path: String,
    pub fingerprint: Fingerprint,
    pub resume: ResumePoint,
    /// Detected format name, when known.
    #[serde(default)]
    pub format: Option<String>,
}

/// What the log tailer reports after each read.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The checkpoint that matches having applied `events`.
    pub checkpoint: Option<FileCheckpoint>,
    /// A file gone for good (lost while the exporter was down): its checkpoint goes.
    pub forget: Option<FileId>,
    /// A file no longer followed (rotated away, deleted): its last checkpoint joins the
    /// closed files, so that it resumes there if it comes back, even after a restart.
    pub closed: Option<FileId>,
    /// Unread bytes over all followed files and how many files are followed.
    pub status: Option<TailStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TailStatus {
    pub lag_bytes: u64,
    pub files: u64,
    /// Each configured pattern with the files it matched at the last discovery.
    pub matched: Vec<(std::sync::Arc<str>, u64)>,
    /// Matched files that could not be opened (permissions), at the last poll.
    pub unreadable: u64,
    /// Matched files not followed because of the file-descriptor limit.
    pub over_limit: u64,
}

/// Everything the store receives.
// Almost every message is a batch; boxing it would add an allocation per batch to
// save space on the one FirstPassDone.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Message {
    Batch(Batch),
    /// Every file has been read to its end once.
    FirstPassDone,
    /// The cluster syncer asks for the registers of every retained period (none when
    /// no cluster is configured).
    ExportRegisters(tokio::sync::oneshot::Sender<Vec<PeriodRegisters>>),
    /// The lease holder asks what to hand over; FIDO2 entries counted within
    /// `window_ms` before the synced time are named.
    ExportHandover {
        window_ms: i64,
        reply: tokio::sync::oneshot::Sender<Handover>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_small() {
        // Batches carry millions of audit events; a large variant belongs in a Box.
        assert!(
            std::mem::size_of::<Event>() <= 56,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

    #[test]
    fn action_names_round_trip_and_unknown_is_other() {
        for a in Action::ALL {
            if a != Action::Other {
                assert_eq!(Action::from_name(a.as_str()), a);
            }
        }
        assert_eq!(Action::from_name("PASSWORD_RESET"), Action::Other);
        assert_eq!(Action::from_name("other"), Action::Other);
        assert_eq!(Action::known("other"), None);
        // From bytes: a prefix, a longer name or broken UTF-8 is no known action.
        assert_eq!(
            Action::known_bytes(b"TOKEN_REQUEST"),
            Some(Action::TokenRequest)
        );
        assert_eq!(Action::known_bytes(b"TOKEN_REQUES"), None);
        assert_eq!(Action::known_bytes(b"TOKEN_REQUESTS"), None);
        assert_eq!(Action::known_bytes(b"TOKEN_REQUEST\xff"), None);
    }

    #[test]
    fn user_key_is_the_documented_xxh3() {
        // XXH3-64 of the empty input with seed 0 is a published test vector.
        assert_eq!(UserKey::of("").0, 0x2D06_8005_38D3_94C2);
        assert_ne!(UserKey::of("alice"), UserKey::of("bob"));
    }
}
