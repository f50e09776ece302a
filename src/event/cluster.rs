//! What the cluster syncer reports (see `crate::cluster`): the union's counts as Redis
//! answered them, or why a sync failed. Part of the event contract: plain data only.

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

/// One period's registers, as the store hands them to the syncer: the dense `HYLL`
/// string Redis stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodRegisters {
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
    /// Every period was merged; `counts` is `PFCOUNT` of each shared key afterwards.
    Synced {
        at_ms: i64,
        duration_seconds: f64,
        counts: Vec<(PeriodKind, u32, u64)>,
    },
    Failed {
        reason: ClusterErrorReason,
        duration_seconds: f64,
    },
}
