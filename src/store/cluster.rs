//! The cluster-wide figures (see `crate::cluster`): this pod's Redis-compatible
//! registers per period, what the last sync learnt of the union, and the syncer's own
//! health. Kept, and persisted, only when a cluster is configured.

use std::collections::BTreeMap;

use super::persist::model::{key, parse_key, Persisted, SnapshotOut};
use super::redis_hll::{RedisRegisters, PRECISION};
use super::sketch::{ActiveUsers, Horizon, Insert, PeriodKeys};
use super::upstream::{Histogram, CALL_BUCKETS};
use crate::event::{
    ClusterErrorReason, ClusterReport, PeriodKind, PeriodRegisters, UserKey, UserSet,
};
use crate::families;

/// What the views read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// The last sync's outcome; `None` before the first (not persisted).
    pub up: Option<bool>,
    pub last_sync_ms: Option<i64>,
    pub errors: [u64; ClusterErrorReason::COUNT],
    /// Failed rounds of the poller lease, by reason.
    pub lease_errors: [u64; ClusterErrorReason::COUNT],
    pub duration: Histogram,
    /// The union's day, week and month containing the view's time, when Redis has
    /// answered for them.
    pub current: [Option<u64>; 3],
    /// The same for passkey users.
    pub fido2_current: [Option<u64>; 3],
    /// `(YYYYMM, users)` for every month Redis answered, oldest first.
    pub monthly: Vec<(u32, u64)>,
}

#[derive(Clone, Debug)]
pub struct ClusterFigures {
    users: ActiveUsers<RedisRegisters>,
    fido2_users: ActiveUsers<RedisRegisters>,
    /// `PFCOUNT` of each shared key at the last successful sync (not persisted: the
    /// next sync answers again).
    counts: BTreeMap<(UserSet, PeriodKind, u32), u64>,
    view: ClusterView,
}

impl ClusterFigures {
    pub fn new(retain_months: usize) -> ClusterFigures {
        ClusterFigures {
            users: ActiveUsers::new(PRECISION, retain_months),
            fido2_users: ActiveUsers::new(PRECISION, retain_months),
            counts: BTreeMap::new(),
            view: ClusterView::default(),
        }
    }

    fn set_mut(&mut self, set: UserSet) -> &mut ActiveUsers<RedisRegisters> {
        match set {
            UserSet::Users => &mut self.users,
            UserSet::Fido2Users => &mut self.fido2_users,
        }
    }

    fn set(&self, set: UserSet) -> &ActiveUsers<RedisRegisters> {
        match set {
            UserSet::Users => &self.users,
            UserSet::Fido2Users => &self.fido2_users,
        }
    }

    pub fn insert(
        &mut self,
        set: UserSet,
        timestamp_ms: i64,
        user: UserKey,
        horizon: &Horizon,
    ) -> Insert {
        self.set_mut(set).insert(timestamp_ms, user, horizon)
    }

    /// Every retained period's registers, as the `HYLL` strings Redis stores.
    pub fn export_registers(&self) -> Vec<PeriodRegisters> {
        let mut out = Vec::new();
        for set in UserSet::ALL {
            for kind in PeriodKind::ALL {
                let Some(periods) = self.set(set).periods(kind.as_str()) else {
                    continue;
                };
                for (key, r) in periods.iter() {
                    if !r.is_empty() {
                        out.push(PeriodRegisters {
                            set,
                            kind,
                            key,
                            hyll: r.to_dense_hyll(),
                        });
                    }
                }
            }
        }
        out
    }

    pub fn report(&mut self, report: &ClusterReport) {
        let v = &mut self.view;
        match report {
            ClusterReport::Synced {
                at_ms,
                duration_seconds,
                counts,
            } => {
                v.up = Some(true);
                v.last_sync_ms = Some(*at_ms);
                v.duration.observe(&CALL_BUCKETS, *duration_seconds);
                // The answer replaces the last: a period no longer retained drops out.
                self.counts = counts
                    .iter()
                    .map(|c| ((c.set, c.kind, c.key), c.users))
                    .collect();
            }
            ClusterReport::Failed {
                reason,
                duration_seconds,
            } => {
                v.up = Some(false);
                v.errors[*reason as usize] += 1;
                v.duration.observe(&CALL_BUCKETS, *duration_seconds);
            }
            ClusterReport::LeaseFailed { reason } => v.lease_errors[*reason as usize] += 1,
        }
    }

    pub fn view(&self, now_ms: i64) -> ClusterView {
        let mut v = self.view.clone();
        if let Some(k) = PeriodKeys::of(now_ms) {
            let current = |set| {
                [
                    self.counts.get(&(set, PeriodKind::Day, k.day)).copied(),
                    self.counts.get(&(set, PeriodKind::Week, k.week)).copied(),
                    self.counts.get(&(set, PeriodKind::Month, k.month)).copied(),
                ]
            };
            v.current = current(UserSet::Users);
            v.fido2_current = current(UserSet::Fido2Users);
        }
        v.monthly = self
            .counts
            .iter()
            .filter(|((set, kind, _), _)| *set == UserSet::Users && *kind == PeriodKind::Month)
            .map(|((_, _, month), n)| (*month, *n))
            .collect();
        v
    }

    pub fn export<'a>(&'a self, out: &mut SnapshotOut<'a>) {
        let v = &self.view;
        for reason in ClusterErrorReason::ALL {
            for (family, n) in [
                (&families::CLUSTER_SYNC_ERRORS, v.errors[reason as usize]),
                (
                    &families::CLUSTER_LEASE_ERRORS,
                    v.lease_errors[reason as usize],
                ),
            ] {
                if n > 0 {
                    out.counters.insert(key(family, &[reason.as_str()]), n);
                }
            }
        }
        if v.duration.count > 0 {
            out.histograms.insert(
                key(&families::CLUSTER_SYNC_DURATION, &[]),
                v.duration.repr(&CALL_BUCKETS),
            );
        }
        if let Some(ms) = v.last_sync_ms {
            out.times.insert(key(&families::CLUSTER_LAST_SYNC, &[]), ms);
        }
        out.cluster_registers = Some([&self.users, &self.fido2_users]);
    }

    /// Continues from a snapshot; returns the number of saved register sets refused.
    pub fn import(&mut self, p: &Persisted) -> usize {
        for (name, &n) in &p.counters {
            let Some(k) = parse_key(name) else { continue };
            let counts = if k.name == families::CLUSTER_SYNC_ERRORS.name {
                &mut self.view.errors
            } else if k.name == families::CLUSTER_LEASE_ERRORS.name {
                &mut self.view.lease_errors
            } else {
                continue;
            };
            if let Some(r) = ClusterErrorReason::ALL
                .iter()
                .find(|r| Some(r.as_str()) == k.get("reason"))
            {
                counts[*r as usize] = n;
            }
        }
        if let Some(h) = p
            .histograms
            .get(&key(&families::CLUSTER_SYNC_DURATION, &[]))
            .and_then(|h| Histogram::from_repr(&CALL_BUCKETS, h))
        {
            self.view.duration = h;
        }
        self.view.last_sync_ms = p
            .times
            .get(&key(&families::CLUSTER_LAST_SYNC, &[]))
            .copied();
        let mut refused = 0;
        for ((set_name, kind), periods) in &p.cluster_registers {
            let Some(set) = UserSet::ALL.into_iter().find(|s| s.as_str() == set_name) else {
                refused += periods.len();
                continue;
            };
            for (&period, packed) in periods {
                match RedisRegisters::from_packed(packed) {
                    Ok(r) => {
                        if !self.set_mut(set).restore(kind, period, r) {
                            refused += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(set = set_name, kind, period, error = %e, "saved cluster registers refused: that period starts again");
                        refused += 1;
                    }
                }
            }
        }
        refused
    }
}
