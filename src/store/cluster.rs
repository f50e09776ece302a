//! The cluster-wide figures (see `crate::cluster`): this pod's Redis-compatible
//! registers per period, what the last sync learnt of the union, and the syncer's own
//! health. Kept, and persisted, only when a cluster is configured.

use std::collections::BTreeMap;

use super::persist::model::{key, parse_key, Persisted, SnapshotOut};
use super::redis_hll::{RedisRegisters, PRECISION};
use super::sketch::{ActiveUsers, Horizon, Insert, PeriodKeys};
use super::upstream::{Histogram, CALL_BUCKETS};
use crate::event::{ClusterErrorReason, ClusterReport, PeriodKind, PeriodRegisters, UserKey};
use crate::families;

/// What the views read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// The last sync's outcome; `None` before the first (not persisted).
    pub up: Option<bool>,
    pub last_sync_ms: Option<i64>,
    pub errors: [u64; ClusterErrorReason::COUNT],
    pub duration: Histogram,
    /// The union's day, week and month containing the view's time, when Redis has
    /// answered for them.
    pub current: [Option<u64>; 3],
    /// `(YYYYMM, users)` for every month Redis answered, oldest first.
    pub monthly: Vec<(u32, u64)>,
}

#[derive(Clone, Debug)]
pub struct ClusterFigures {
    registers: ActiveUsers<RedisRegisters>,
    /// `PFCOUNT` of each shared key at the last successful sync (not persisted: the
    /// next sync answers again).
    counts: BTreeMap<(PeriodKind, u32), u64>,
    view: ClusterView,
}

impl ClusterFigures {
    pub fn new(retain_months: usize) -> ClusterFigures {
        ClusterFigures {
            registers: ActiveUsers::new(PRECISION, retain_months),
            counts: BTreeMap::new(),
            view: ClusterView::default(),
        }
    }

    pub fn insert(&mut self, timestamp_ms: i64, user: UserKey, horizon: &Horizon) -> Insert {
        self.registers.insert(timestamp_ms, user, horizon)
    }

    /// Every retained period's registers, as the `HYLL` strings Redis stores.
    pub fn export_registers(&self) -> Vec<PeriodRegisters> {
        let mut out = Vec::new();
        for kind in PeriodKind::ALL {
            let Some(periods) = self.registers.periods(kind.as_str()) else {
                continue;
            };
            for (key, r) in periods.iter() {
                if !r.is_empty() {
                    out.push(PeriodRegisters {
                        kind,
                        key,
                        hyll: r.to_dense_hyll(),
                    });
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
                self.counts = counts.iter().map(|(k, p, n)| ((*k, *p), *n)).collect();
            }
            ClusterReport::Failed {
                reason,
                duration_seconds,
            } => {
                v.up = Some(false);
                v.errors[*reason as usize] += 1;
                v.duration.observe(&CALL_BUCKETS, *duration_seconds);
            }
        }
    }

    pub fn view(&self, now_ms: i64) -> ClusterView {
        let mut v = self.view.clone();
        if let Some(k) = PeriodKeys::of(now_ms) {
            v.current = [
                self.counts.get(&(PeriodKind::Day, k.day)).copied(),
                self.counts.get(&(PeriodKind::Week, k.week)).copied(),
                self.counts.get(&(PeriodKind::Month, k.month)).copied(),
            ];
        }
        v.monthly = self
            .counts
            .iter()
            .filter(|((kind, _), _)| *kind == PeriodKind::Month)
            .map(|((_, month), n)| (*month, *n))
            .collect();
        v
    }

    pub fn export<'a>(&'a self, out: &mut SnapshotOut<'a>) {
        let v = &self.view;
        for reason in ClusterErrorReason::ALL {
            let n = v.errors[reason as usize];
            if n > 0 {
                out.counters
                    .insert(key(&families::CLUSTER_SYNC_ERRORS, &[reason.as_str()]), n);
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
        out.cluster_registers = Some(&self.registers);
    }

    /// Continues from a snapshot; returns the number of saved register sets refused.
    pub fn import(&mut self, p: &Persisted) -> usize {
        for (name, &n) in &p.counters {
            let Some(k) = parse_key(name) else { continue };
            if k.name == families::CLUSTER_SYNC_ERRORS.name {
                if let Some(r) = ClusterErrorReason::ALL
                    .iter()
                    .find(|r| Some(r.as_str()) == k.get("reason"))
                {
                    self.view.errors[*r as usize] = n;
                }
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
        for (kind, periods) in &p.cluster_registers {
            for (&period, packed) in periods {
                match RedisRegisters::from_packed(packed) {
                    Ok(r) => {
                        if !self.registers.restore(kind, period, r) {
                            refused += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(kind, period, error = %e, "saved cluster registers refused: that period starts again");
                        refused += 1;
                    }
                }
            }
        }
        refused
    }
}
