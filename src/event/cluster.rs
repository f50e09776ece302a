//! What the cluster syncer reports (see `crate::cluster`): the union's counts as Redis
//! answered them, or why a sync failed; which sidecar polls the cluster-wide endpoints,
//! and what the previous poller handed over. Part of the event contract: plain data only.

/// A kind of period: `period` label values and the middle part of a Redis key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeriodKind {
    Day,
    Week,
    Month,
}

impl PeriodKind {
    pub const ALL: [PeriodKind; 3] = [PeriodKind::Day, PeriodKind::Week, PeriodKind::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
        }
    }
}

/// Whose activity a union counts: users of the audit and server logs, or users with a
/// successful passkey ceremony (from the FIDO2 API, polled by one sidecar at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserSet {
    Users,
    Fido2Users,
}

impl UserSet {
    pub const ALL: [UserSet; 2] = [UserSet::Users, UserSet::Fido2Users];

    /// The part of a Redis key and of the snapshot naming the set.
    pub fn as_str(self) -> &'static str {
        match self {
            UserSet::Users => "users",
            UserSet::Fido2Users => "fido2_users",
        }
    }
}

/// One period's registers, as the store hands them to the syncer: the dense `HYLL`
/// string Redis stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodRegisters {
    pub set: UserSet,
    pub kind: PeriodKind,
    /// Day number since the epoch, ISO week `YYYYWW` or month `YYYYMM`.
    pub key: u32,
    pub hyll: Vec<u8>,
}

/// Why a sync failed: `reason` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ClusterErrorReason {
    /// No connection: refused, unreachable, TLS.
    Connect,
    Auth,
    Timeout,
    /// Redis answered with an error or something unexpected.
    Response,
    /// The store did not hand over its registers (shutting down).
    Store,
}

impl ClusterErrorReason {
    pub const ALL: [ClusterErrorReason; 5] = [
        ClusterErrorReason::Connect,
        ClusterErrorReason::Auth,
        ClusterErrorReason::Timeout,
        ClusterErrorReason::Response,
        ClusterErrorReason::Store,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterErrorReason::Connect => "connect",
            ClusterErrorReason::Auth => "auth",
            ClusterErrorReason::Timeout => "timeout",
            ClusterErrorReason::Response => "response",
            ClusterErrorReason::Store => "store",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClusterReport {
    /// Every period was merged; `counts` is `PFCOUNT` of each shared key that exists
    /// afterwards (the present periods always).
    Synced {
        at_ms: i64,
        duration_seconds: f64,
        counts: Vec<PeriodCount>,
    },
    Failed {
        reason: ClusterErrorReason,
        duration_seconds: f64,
    },
    /// A round of the poller lease (take, renew) failed.
    LeaseFailed { reason: ClusterErrorReason },
}

/// `PFCOUNT` of one shared key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodCount {
    pub set: UserSet,
    pub kind: PeriodKind,
    /// Day number since the epoch, ISO week `YYYYWW` or month `YYYYMM`.
    pub key: u32,
    pub users: u64,
}

/// What the sidecar polling the cluster-wide endpoints (stat, FIDO2 entries) has
/// counted, so that the next one to poll continues from there instead of counting it
/// again: the stat endpoint's high-water marks, and the FIDO2 window with the entries
/// already counted in its overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// `(month YYYYMM, grant label, token label, highest count seen)`.
    pub stat_high_water: Vec<(u32, String, String, u64)>,
    /// Every FIDO2 entry up to this time has been asked for.
    pub fido2_synced_ms: Option<i64>,
    /// `(entry id, entry time)` of entries counted near the end of the window.
    pub fido2_seen: Vec<(u64, i64)>,
}

/// A change of who polls the cluster-wide endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// No cluster is configured: this sidecar polls them, as every other does.
    Alone,
    /// This sidecar took the lease. `None`: Redis held no handover (the first poller,
    /// or a Redis restarted empty): the next stat answer only sets the marks.
    Acquired(Option<Handover>),
    /// Another sidecar polls (or Redis cannot tell): counters stay as they are.
    Lost,
}
