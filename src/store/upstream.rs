//! Figures from the upstream API, kept by the store (which also persists them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sketch::{ActiveUsers, Horizon};
use crate::upstream::fido2::{Authenticator, Fido2Entry, Operation, Status};
use crate::upstream::health::HealthReport;
use crate::upstream::stat::StatReport;
use crate::upstream::{Call, Endpoint, ErrorReason};

/// Upstream request latency buckets (seconds).
pub const CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// FIDO2 ceremony buckets (seconds): humans take from a blink to two minutes.
pub const CEREMONY_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];
/// Distinct FIDO2 error categories and fallback methods kept as labels; the rest is `other`.
pub const MAX_CATEGORIES: usize = 20;
pub const MAX_FALLBACK_METHODS: usize = 10;
/// FIDO2 ids remembered for de-duplication: by age behind the synced time, and by count.
const SEEN_WINDOW_MS: i64 = 6 * 3600 * 1000;
const SEEN_MAX: usize = 100_000;

/// A classic histogram: per-bucket counts (last is +Inf), sum, count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.len() != bounds.len() + 1 {
            self.buckets = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `(upper bound, count in bucket)` as prometheus-client encodes them.
    pub fn encoded(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, b)| (b, self.buckets.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// Serialises maps with non-string keys as lists of pairs (JSON needs string keys).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<
        'de,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    >(
        d: D,
    ) -> Result<BTreeMap<K, V>, D::Error> {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Last call's outcome; not persisted (a restart has not called yet).
    #[serde(skip)]
    pub up: Option<bool>,
    pub errors: [u64; ErrorReason::COUNT],
    pub duration: Histogram,
    pub last_success_ms: Option<i64>,
}

type TokenKey = (String, String);

/// What the views read, small enough to clone into every published view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpstreamView {
    pub calls: Vec<EndpointStats>,
    /// Latest reported MAU per month.
    pub stat_mau: BTreeMap<u32, u64>,
    /// Latest reported tokens per month, cumulative within the month.
    #[serde(with = "pairs")]
    pub stat_tokens: BTreeMap<(u32, String, String), u64>,
    /// Tokens issued, from increases above each month's high-water mark.
    #[serde(with = "pairs")]
    pub tokens_issued: BTreeMap<TokenKey, u64>,
    #[serde(skip)]
    pub health: Option<HealthReport>,
    /// The last health call failed.
    #[serde(skip)]
    pub health_failed: bool,
    #[serde(skip)]
    pub fido2_up: Option<bool>,
    #[serde(with = "pairs")]
    pub fido2_operations: BTreeMap<(Operation, Status, Authenticator), u64>,
    #[serde(with = "pairs")]
    pub fido2_durations: BTreeMap<(Operation, Status), Histogram>,
    #[serde(with = "pairs")]
    pub fido2_errors: BTreeMap<(Operation, String), u64>,
    pub fido2_fallbacks: BTreeMap<String, u64>,
    pub fido2_duplicates: u64,
    #[serde(skip)]
    pub fido2_active: [u64; 3],
}

/// Everything from upstream, persisted in the snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpstreamFigures {
    pub view: UpstreamView,
    /// Highest value seen per (month, grant, token): a lower answer is a stale cache.
    #[serde(with = "pairs")]
    high_water: BTreeMap<(u32, String, String), u64>,
    /// Error categories admitted as label values, in order of first sight.
    categories: Vec<String>,
    /// Fallback methods admitted as label values, likewise.
    #[serde(default)]
    fallback_methods: Vec<String>,
    fido2_users: ActiveUsers,
    /// FIDO2 entry ids already counted, with their time.
    #[serde(with = "pairs")]
    seen: BTreeMap<u64, i64>,
    pub fido2_synced_ms: Option<i64>,
    retain_months: usize,
}

/// Admits `value` to a capped label set; past the cap it is `other`.
fn capped(set: &mut Vec<String>, cap: usize, value: &str) -> String {
    if set.iter().any(|v| v == value) {
        return value.to_string();
    }
    if set.len() < cap {
        set.push(value.to_string());
        return value.to_string();
    }
    "other".to_string()
}

impl UpstreamFigures {
    pub fn new(precision: u8, retain_months: usize) -> UpstreamFigures {
        UpstreamFigures {
            view: UpstreamView {
                calls: vec![EndpointStats::default(); Endpoint::COUNT],
                ..UpstreamView::default()
            },
            high_water: BTreeMap::new(),
            categories: Vec::new(),
            fallback_methods: Vec::new(),
            fido2_users: ActiveUsers::new(precision, retain_months),
            seen: BTreeMap::new(),
            fido2_synced_ms: None,
            retain_months,
        }
    }

    /// After a restore: the sizes the configuration asks for now.
    pub fn fit(&mut self, precision: u8, retain_months: usize) {
        self.view
            .calls
            .resize(Endpoint::COUNT, EndpointStats::default());
        self.retain_months = retain_months;
        if self.fido2_users.precision() != precision {
            self.fido2_users = ActiveUsers::new(precision, retain_months);
        }
        self.fido2_users.set_retain_months(retain_months);
    }

    pub fn call(&mut self, c: &Call) {
        let stats = &mut self.view.calls[c.endpoint as usize];
        stats.duration.observe(&CALL_BUCKETS, c.seconds);
        match c.result {
            Ok(()) => {
                stats.up = Some(true);
                stats.last_success_ms = Some(c.at_ms);
            }
            Err(reason) => {
                stats.up = Some(false);
                stats.errors[reason as usize] += 1;
            }
        }
        if c.endpoint == Endpoint::Health {
            self.view.health_failed = c.result.is_err();
        }
    }

    pub fn stat(&mut self, report: &StatReport) {
        for m in &report.months {
            if let Some(mau) = m.mau {
                self.view.stat_mau.insert(m.month, mau);
            }
            for ((grant, token), &value) in &m.tokens {
                let key = (m.month, grant.to_string(), token.to_string());
                self.view.stat_tokens.insert(key.clone(), value);
                // A new month starts from zero; a decrease (stale cache, restarted
                // node) is not negative, and only growth past the high-water mark counts.
                let high = self.high_water.entry(key).or_insert(0);
                if value > *high {
                    *self
                        .view
                        .tokens_issued
                        .entry((grant.to_string(), token.to_string()))
                        .or_default() += value - *high;
                    *high = value;
                }
            }
        }
        // Bounded: keep the newest `retain_months` months.
        let months: Vec<u32> = self
            .view
            .stat_mau
            .keys()
            .chain(self.high_water.keys().map(|k| &k.0))
            .copied()
            .collect::<std::collections::BTreeSet<u32>>()
            .into_iter()
            .collect();
        if months.len() > self.retain_months {
            let oldest_kept = months[months.len() - self.retain_months];
            self.view.stat_mau.retain(|m, _| *m >= oldest_kept);
            self.view.stat_tokens.retain(|k, _| k.0 >= oldest_kept);
            self.high_water.retain(|k, _| k.0 >= oldest_kept);
        }
    }

    pub fn health(&mut self, h: &HealthReport) {
        self.view.health = Some(*h);
    }

    pub fn fido2_health(&mut self, up: bool) {
        self.view.fido2_up = Some(up);
    }

    pub fn fido2(&mut self, e: &Fido2Entry, horizon: &Horizon) {
        if self.seen.contains_key(&e.id) {
            self.view.fido2_duplicates += 1;
            return;
        }
        self.seen.insert(e.id, e.timestamp_ms);
        let v = &mut self.view;
        *v.fido2_operations
            .entry((e.operation, e.status, e.authenticator))
            .or_default() += 1;
        if let Some(ms) = e.duration_ms {
            v.fido2_durations
                .entry((e.operation, e.status))
                .or_default()
                .observe(&CEREMONY_BUCKETS, ms / 1000.0);
        }
        if matches!(e.status, Status::Failure) || e.error_category.is_some() {
            let category = match &e.error_category {
                Some(c) => capped(&mut self.categories, MAX_CATEGORIES, c),
                None => "unknown".to_string(),
            };
            *v.fido2_errors.entry((e.operation, category)).or_default() += 1;
        }
        if e.operation == Operation::Fallback {
            let method = match &e.fallback_method {
                Some(m) => capped(&mut self.fallback_methods, MAX_FALLBACK_METHODS, m),
                None => "unknown".to_string(),
            };
            *v.fido2_fallbacks.entry(method).or_default() += 1;
        }
        if let (Status::Success, Operation::Registration | Operation::Authentication, Some(user)) =
            (e.status, e.operation, e.user)
        {
            self.fido2_users.insert(e.timestamp_ms, user, horizon);
        }
    }

    pub fn fido2_synced(&mut self, until_ms: i64) {
        self.fido2_synced_ms = Some(self.fido2_synced_ms.map_or(until_ms, |t| t.max(until_ms)));
        let oldest = until_ms - SEEN_WINDOW_MS;
        self.seen.retain(|_, ts| *ts >= oldest);
        if self.seen.len() > SEEN_MAX {
            // Keep the newest SEEN_MAX ids: one selection, not a scan per id.
            let mut times: Vec<i64> = self.seen.values().copied().collect();
            let excess = times.len() - SEEN_MAX;
            let cutoff = *times.select_nth_unstable(excess).1;
            self.seen.retain(|_, ts| *ts >= cutoff);
        }
    }

    pub fn view(&mut self, now_ms: i64) -> UpstreamView {
        self.view.fido2_active = self.fido2_users.current(now_ms);
        self.view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::stat::MonthStat;

    fn report(month: u32, access: u64) -> StatReport {
        StatReport {
            months: vec![MonthStat {
                month,
                mau: Some(3),
                tokens: BTreeMap::from([(("authorization_code", "access_token"), access)]),
            }],
        }
    }

    fn issued(u: &UpstreamFigures) -> u64 {
        u.view
            .tokens_issued
            .get(&("authorization_code".into(), "access_token".into()))
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn tokens_issued_counts_increases_only_above_the_high_water_mark() {
        let mut u = UpstreamFigures::new(14, 13);
        u.stat(&report(202611, 10));
        assert_eq!(issued(&u), 10, "a new month starts from zero");
        u.stat(&report(202611, 15));
        assert_eq!(issued(&u), 15);
        u.stat(&report(202611, 12)); // a stale cache answers
        assert_eq!(issued(&u), 15, "never negative");
        u.stat(&report(202611, 16));
        assert_eq!(issued(&u), 16, "only growth past 15 counts");
        u.stat(&report(202612, 4));
        assert_eq!(issued(&u), 20, "the next month starts from zero");
        assert_eq!(
            u.view.stat_tokens[&(202611, "authorization_code".into(), "access_token".into())],
            16
        );
    }

    #[test]
    fn stat_months_are_bounded_by_retention() {
        let mut u = UpstreamFigures::new(14, 2);
        for m in [202609, 202610, 202611] {
            u.stat(&report(m, 1));
        }
        assert_eq!(
            u.view.stat_mau.keys().copied().collect::<Vec<_>>(),
            vec![202610, 202611]
        );
        assert_eq!(u.high_water.len(), 2);
    }

    fn entry(id: u64, category: Option<&str>) -> Fido2Entry {
        Fido2Entry {
            id,
            timestamp_ms: 1_795_392_000_000 + id as i64,
            operation: Operation::Authentication,
            status: Status::Failure,
            authenticator: Authenticator::Platform,
            duration_ms: Some(1500.0),
            error_category: category.map(str::to_string),
            fallback_method: None,
            user: None,
        }
    }

    #[test]
    fn fido2_entries_are_counted_once_and_categories_are_capped() {
        let mut u = UpstreamFigures::new(14, 13);
        let h = Horizon::default();
        for id in 0..(MAX_CATEGORIES as u64 + 5) {
            u.fido2(&entry(id, Some(&format!("CAT_{id}"))), &h);
            u.fido2(&entry(id, Some(&format!("CAT_{id}"))), &h);
        }
        assert_eq!(u.view.fido2_duplicates, MAX_CATEGORIES as u64 + 5);
        let labels: std::collections::BTreeSet<_> =
            u.view.fido2_errors.keys().map(|k| k.1.clone()).collect();
        assert_eq!(labels.len(), MAX_CATEGORIES + 1);
        assert_eq!(
            u.view.fido2_errors[&(Operation::Authentication, "other".into())],
            5
        );
        let d = &u.view.fido2_durations[&(Operation::Authentication, Status::Failure)];
        assert_eq!(
            (d.count, d.sum),
            (
                MAX_CATEGORIES as u64 + 5,
                1.5 * (MAX_CATEGORIES as f64 + 5.0)
            )
        );
        assert_eq!(
            d.buckets[CEREMONY_BUCKETS.iter().position(|b| *b == 2.0).unwrap()],
            MAX_CATEGORIES as u64 + 5
        );
    }

    #[test]
    fn dedup_memory_is_bounded_by_age() {
        let mut u = UpstreamFigures::new(14, 13);
        let h = Horizon::default();
        for id in 0..100 {
            u.fido2(&entry(id, None), &h);
        }
        u.fido2_synced(1_795_392_000_000 + SEEN_WINDOW_MS + 50);
        assert_eq!(u.seen.len(), 50);
    }

    #[test]
    fn dedup_memory_is_bounded_by_count() {
        let mut u = UpstreamFigures::new(14, 13);
        let h = Horizon::default();
        for id in 0..(SEEN_MAX as u64 + 1000) {
            let mut e = entry(id, None);
            e.status = Status::Success;
            u.fido2(&e, &h);
        }
        u.fido2_synced(1_795_392_000_000);
        assert_eq!(u.seen.len(), SEEN_MAX);
        assert!(
            !u.seen.contains_key(&0) && u.seen.contains_key(&(SEEN_MAX as u64 + 999)),
            "the oldest go first"
        );
    }
}
