//! Figures from the upstream API, kept by the store (which also persists them).

use std::collections::BTreeMap;

use super::persist::model::{key, parse_key, Fido2Section, HistogramRepr, Persisted, SnapshotOut};
use super::sketch::{ActiveUsers, Horizon};
use crate::event::{Handover, Leadership, UserKey};
use crate::families;
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// Counts `v`; a non-finite or negative value is not a duration and is ignored, and
    /// the sum saturates instead of becoming infinite.
    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        if self.buckets.len() != bounds.len() + 1 {
            self.buckets = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.buckets[i] += 1;
        let sum = self.sum + v;
        self.sum = if sum.is_finite() { sum } else { f64::MAX };
        self.count += 1;
    }

    pub(crate) fn repr(&self, bounds: &[f64]) -> HistogramRepr {
        let mut buckets = self.buckets.clone();
        buckets.resize(bounds.len() + 1, 0);
        HistogramRepr {
            le: bounds.to_vec(),
            buckets,
            sum: if self.sum.is_finite() { self.sum } else { 0.0 },
            count: self.count,
        }
    }

    /// The saved histogram, if it was kept with the same bounds.
    pub(crate) fn from_repr(bounds: &[f64], r: &HistogramRepr) -> Option<Histogram> {
        (r.le == bounds && r.buckets.len() == bounds.len() + 1 && r.sum.is_finite()).then(|| {
            Histogram {
                buckets: r.buckets.clone(),
                sum: r.sum,
                count: r.count,
            }
        })
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

/// The calls to one polled endpoint, with `N` error reasons: shared by the Janssen
/// endpoints and the Okta System Log.
#[derive(Clone, Debug, PartialEq)]
pub struct CallStats<const N: usize> {
    /// Last call's outcome; not persisted (a restart has not called yet).
    pub up: Option<bool>,
    pub errors: [u64; N],
    pub duration: Histogram,
    pub last_success_ms: Option<i64>,
}

impl<const N: usize> Default for CallStats<N> {
    fn default() -> Self {
        CallStats {
            up: None,
            errors: [0; N],
            duration: Histogram::default(),
            last_success_ms: None,
        }
    }
}

impl<const N: usize> CallStats<N> {
    /// One call that took `seconds` and ended at `at_ms`, failed with reason number
    /// `failed` or not.
    pub fn record(&mut self, seconds: f64, at_ms: i64, failed: Option<usize>) {
        self.duration.observe(&CALL_BUCKETS, seconds);
        self.up = Some(failed.is_none());
        match failed {
            None => self.last_success_ms = Some(at_ms),
            Some(reason) => self.errors[reason] += 1,
        }
    }
}

pub type EndpointStats = CallStats<{ ErrorReason::COUNT }>;

type TokenKey = (String, String);

/// What the views read, small enough to clone into every published view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpstreamView {
    pub calls: Vec<EndpointStats>,
    /// Latest reported MAU per month.
    pub stat_mau: BTreeMap<u32, u64>,
    /// Latest reported tokens per month, cumulative within the month.
    pub stat_tokens: BTreeMap<(u32, String, String), u64>,
    /// Tokens issued, from increases above each month's high-water mark.
    pub tokens_issued: BTreeMap<TokenKey, u64>,
    pub health: Option<HealthReport>,
    /// The last health call failed.
    pub health_failed: bool,
    pub fido2_up: Option<bool>,
    pub fido2_operations: BTreeMap<(Operation, Status, Authenticator), u64>,
    pub fido2_durations: BTreeMap<(Operation, Status), Histogram>,
    pub fido2_errors: BTreeMap<(Operation, String), u64>,
    pub fido2_fallbacks: BTreeMap<String, u64>,
    pub fido2_duplicates: u64,
    pub fido2_active: [u64; 3],
    /// Whether this sidecar polls the cluster-wide endpoints (stat, FIDO2 entries):
    /// `None` until the pollers start, or when none is configured (not persisted).
    pub poller_leader: Option<bool>,
}

/// Everything from upstream, persisted in the snapshot.
#[derive(Clone, Debug)]
pub struct UpstreamFigures {
    pub view: UpstreamView,
    /// Highest value seen per (month, grant, token): a lower answer is a stale cache.
    high_water: BTreeMap<(u32, String, String), u64>,
    /// Error categories admitted as label values, in order of first sight.
    categories: Vec<String>,
    /// Fallback methods admitted as label values, likewise.
    fallback_methods: Vec<String>,
    fido2_users: ActiveUsers,
    /// FIDO2 entry ids already counted, with their time.
    seen: BTreeMap<u64, i64>,
    pub fido2_synced_ms: Option<i64>,
    retain_months: usize,
    /// Took over polling with nothing handed over: the next stat answer only sets the
    /// high-water marks, since another sidecar may have counted up to it.
    stat_baseline: bool,
}

/// FIDO2 ids a handover names at most (the newest): enough for an overlap window of
/// minutes at hundreds of ceremonies a second, small enough for one Redis value.
pub const HANDOVER_SEEN_MAX: usize = 20_000;

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
            stat_baseline: false,
        }
    }

    /// A change of who polls the cluster-wide endpoints. A handover raises the marks
    /// and the FIDO2 window to where the previous poller stopped, counting nothing.
    pub fn leadership(&mut self, change: &Leadership) {
        match change {
            Leadership::Alone => self.view.poller_leader = Some(true),
            Leadership::Lost => {
                self.view.poller_leader = Some(false);
                // No longer polled here: a last failure must not keep alerting.
                for e in [Endpoint::Stat, Endpoint::Fido2Entries] {
                    self.view.calls[e as usize].up = None;
                }
            }
            Leadership::Acquired(None) => {
                self.view.poller_leader = Some(true);
                self.stat_baseline = true;
            }
            Leadership::Acquired(Some(h)) => {
                self.view.poller_leader = Some(true);
                for (month, grant, token, n) in &h.stat_high_water {
                    let key = (
                        *month,
                        crate::event::grant_label(grant).to_string(),
                        crate::event::token_label(token).to_string(),
                    );
                    let high = self.high_water.entry(key).or_insert(0);
                    *high = (*high).max(*n);
                }
                self.trim_months();
                for &(id, ts) in h.fido2_seen.iter().take(HANDOVER_SEEN_MAX) {
                    self.seen.entry(id).or_insert(ts);
                }
                if let Some(t) = h.fido2_synced_ms {
                    self.fido2_synced(t);
                }
            }
        }
    }

    /// What the next poller needs to continue without counting anything twice: the
    /// marks, the FIDO2 window, and the entries counted within `window_ms` before its
    /// end (the newest [`HANDOVER_SEEN_MAX`]).
    pub fn handover(&self, window_ms: i64) -> Handover {
        let mut seen: Vec<(u64, i64)> = match self.fido2_synced_ms {
            Some(t) => self
                .seen
                .iter()
                .filter(|(_, ts)| **ts >= t.saturating_sub(window_ms))
                .map(|(id, ts)| (*id, *ts))
                .collect(),
            None => Vec::new(),
        };
        if seen.len() > HANDOVER_SEEN_MAX {
            seen.sort_unstable_by_key(|(id, ts)| (std::cmp::Reverse(*ts), *id));
            seen.truncate(HANDOVER_SEEN_MAX);
        }
        seen.sort_unstable();
        Handover {
            stat_high_water: self
                .high_water
                .iter()
                .map(|((m, g, t), n)| (*m, g.clone(), t.clone(), *n))
                .collect(),
            fido2_synced_ms: self.fido2_synced_ms,
            fido2_seen: seen,
        }
    }

    /// Adds the upstream figures to a snapshot being written.
    pub fn export<'a>(&'a self, out: &mut SnapshotOut<'a>) {
        let v = &self.view;
        for (endpoint, stats) in Endpoint::ALL.iter().zip(&v.calls) {
            let e = endpoint.as_str();
            for reason in ErrorReason::ALL {
                let n = stats.errors[reason as usize];
                if n > 0 {
                    out.counters
                        .insert(key(&families::UPSTREAM_ERRORS, &[e, reason.as_str()]), n);
                }
            }
            if stats.duration.count > 0 {
                out.histograms.insert(
                    key(&families::UPSTREAM_REQUEST_DURATION, &[e]),
                    stats.duration.repr(&CALL_BUCKETS),
                );
            }
            if let Some(ms) = stats.last_success_ms {
                out.times
                    .insert(key(&families::UPSTREAM_LAST_SUCCESS, &[e]), ms);
            }
        }
        for (month, n) in &v.stat_mau {
            out.gauges.insert(
                key(
                    &families::UPSTREAM_MONTHLY_ACTIVE_USERS,
                    &[&month.to_string()],
                ),
                *n,
            );
        }
        let tokens_key = |(m, g, t): &(u32, String, String)| {
            key(&families::UPSTREAM_TOKENS, &[&m.to_string(), g, t])
        };
        for (k, n) in &v.stat_tokens {
            out.gauges.insert(tokens_key(k), *n);
        }
        for (k, n) in &self.high_water {
            out.high_water.insert(tokens_key(k), *n);
        }
        for ((g, t), n) in &v.tokens_issued {
            out.counters
                .insert(key(&families::TOKENS_ISSUED, &[g, t]), *n);
        }
        for ((o, st, a), n) in &v.fido2_operations {
            out.counters.insert(
                key(
                    &families::FIDO2_OPERATIONS,
                    &[o.as_str(), st.as_str(), a.as_str()],
                ),
                *n,
            );
        }
        for ((o, st), h) in &v.fido2_durations {
            out.histograms.insert(
                key(
                    &families::FIDO2_OPERATION_DURATION,
                    &[o.as_str(), st.as_str()],
                ),
                h.repr(&CEREMONY_BUCKETS),
            );
        }
        for ((o, c), n) in &v.fido2_errors {
            out.counters
                .insert(key(&families::FIDO2_ERRORS, &[o.as_str(), c]), *n);
        }
        for (m, n) in &v.fido2_fallbacks {
            out.counters
                .insert(key(&families::FIDO2_FALLBACKS, &[m]), *n);
        }
        if v.fido2_duplicates > 0 {
            out.counters.insert(
                key(&families::FIDO2_DUPLICATE_ENTRIES, &[]),
                v.fido2_duplicates,
            );
        }
        out.sketch_sets.push(("fido2_users", &self.fido2_users));
        out.fido2 = Fido2Section {
            synced_ms: self.fido2_synced_ms,
            seen: self.seen.iter().map(|(id, ts)| (*id, *ts)).collect(),
            categories: self.categories.clone(),
            fallback_methods: self.fallback_methods.clone(),
        };
    }

    /// Continues from a snapshot. Keys this build does not know (a retired endpoint,
    /// reason or label value) are dropped; everything else carries on.
    pub fn import(&mut self, p: &Persisted) {
        fn endpoint(name: Option<&str>) -> Option<Endpoint> {
            Endpoint::ALL.into_iter().find(|e| Some(e.as_str()) == name)
        }
        fn named<T: Copy>(
            all: &[T],
            name: Option<&str>,
            as_str: fn(T) -> &'static str,
        ) -> Option<T> {
            all.iter().copied().find(|v| Some(as_str(*v)) == name)
        }
        let token_key = |k: &super::persist::model::Key| -> Option<(u32, String, String)> {
            let month = k.get("month")?.parse().ok()?;
            let grant = crate::event::grant_label(k.get("grant_type")?);
            let token = crate::event::token_label(k.get("token_type")?);
            Some((month, grant.to_string(), token.to_string()))
        };
        self.categories = p
            .fido2
            .categories
            .iter()
            .take(MAX_CATEGORIES)
            .cloned()
            .collect();
        self.fallback_methods = p
            .fido2
            .fallback_methods
            .iter()
            .take(MAX_FALLBACK_METHODS)
            .cloned()
            .collect();
        let admitted =
            |set: &[String], v: &str| set.iter().any(|s| s == v) || v == "other" || v == "unknown";
        for (name, &n) in &p.counters {
            let Some(k) = parse_key(name) else { continue };
            let v = &mut self.view;
            match k.name {
                n_ if n_ == families::UPSTREAM_ERRORS.name => {
                    if let (Some(e), Some(r)) = (
                        endpoint(k.get("endpoint")),
                        named(&ErrorReason::ALL, k.get("reason"), ErrorReason::as_str),
                    ) {
                        v.calls[e as usize].errors[r as usize] = n;
                    }
                }
                n_ if n_ == families::TOKENS_ISSUED.name => {
                    if let (Some(g), Some(t)) = (k.get("grant_type"), k.get("token_type")) {
                        let g = crate::event::grant_label(g).to_string();
                        let t = crate::event::token_label(t).to_string();
                        // A grant this build does not know sums under `other`, as the
                        // stat parser does, so the total is kept.
                        let sum = v.tokens_issued.entry((g, t)).or_default();
                        *sum = sum.saturating_add(n);
                    }
                }
                n_ if n_ == families::FIDO2_OPERATIONS.name => {
                    if let (Some(o), Some(s), Some(a)) = (
                        named(&Operation::ALL, k.get("operation"), Operation::as_str),
                        named(&Status::ALL, k.get("status"), Status::as_str),
                        named(
                            &Authenticator::ALL,
                            k.get("authenticator"),
                            Authenticator::as_str,
                        ),
                    ) {
                        v.fido2_operations.insert((o, s, a), n);
                    }
                }
                n_ if n_ == families::FIDO2_ERRORS.name => {
                    if let (Some(o), Some(c)) = (
                        named(&Operation::ALL, k.get("operation"), Operation::as_str),
                        k.get("category").filter(|c| admitted(&self.categories, c)),
                    ) {
                        v.fido2_errors.insert((o, c.to_string()), n);
                    }
                }
                n_ if n_ == families::FIDO2_FALLBACKS.name => {
                    if let Some(m) = k
                        .get("method")
                        .filter(|m| admitted(&self.fallback_methods, m))
                    {
                        v.fido2_fallbacks.insert(m.to_string(), n);
                    }
                }
                n_ if n_ == families::FIDO2_DUPLICATE_ENTRIES.name => v.fido2_duplicates = n,
                _ => {}
            }
        }
        for (name, h) in &p.histograms {
            let Some(k) = parse_key(name) else { continue };
            if k.name == families::UPSTREAM_REQUEST_DURATION.name {
                if let (Some(e), Some(h)) = (
                    endpoint(k.get("endpoint")),
                    Histogram::from_repr(&CALL_BUCKETS, h),
                ) {
                    self.view.calls[e as usize].duration = h;
                }
            } else if k.name == families::FIDO2_OPERATION_DURATION.name {
                if let (Some(o), Some(s), Some(h)) = (
                    named(&Operation::ALL, k.get("operation"), Operation::as_str),
                    named(&Status::ALL, k.get("status"), Status::as_str),
                    Histogram::from_repr(&CEREMONY_BUCKETS, h),
                ) {
                    self.view.fido2_durations.insert((o, s), h);
                }
            }
        }
        for (name, &ms) in &p.times {
            let Some(k) = parse_key(name) else { continue };
            if k.name == families::UPSTREAM_LAST_SUCCESS.name {
                if let Some(e) = endpoint(k.get("endpoint")) {
                    self.view.calls[e as usize].last_success_ms = Some(ms);
                }
            }
        }
        for (name, &n) in &p.gauges {
            let Some(k) = parse_key(name) else { continue };
            if k.name == families::UPSTREAM_MONTHLY_ACTIVE_USERS.name {
                if let Some(m) = k.get("month").and_then(|m| m.parse().ok()) {
                    self.view.stat_mau.insert(m, n);
                }
            } else if k.name == families::UPSTREAM_TOKENS.name {
                if let Some(tk) = token_key(&k) {
                    let sum = self.view.stat_tokens.entry(tk).or_default();
                    *sum = sum.saturating_add(n);
                }
            }
        }
        for (name, &n) in &p.high_water {
            if let Some(tk) = parse_key(name).as_ref().and_then(token_key) {
                let sum = self.high_water.entry(tk).or_default();
                *sum = sum.saturating_add(n);
            }
        }
        self.seen = p.fido2.seen.iter().copied().take(SEEN_MAX).collect();
        self.fido2_synced_ms = p.fido2.synced_ms;
    }

    /// The FIDO2 active-user sketches, for restoring a snapshot into.
    pub fn fido2_users_mut(&mut self) -> &mut ActiveUsers {
        &mut self.fido2_users
    }

    pub fn call(&mut self, c: &Call) {
        self.view.calls[c.endpoint as usize].record(
            c.seconds,
            c.at_ms,
            c.result.err().map(|r| r as usize),
        );
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
                if self.stat_baseline {
                    *high = (*high).max(value);
                    // The series exists from the first answer, at 0.
                    self.view
                        .tokens_issued
                        .entry((grant.to_string(), token.to_string()))
                        .or_default();
                } else if value > *high {
                    *self
                        .view
                        .tokens_issued
                        .entry((grant.to_string(), token.to_string()))
                        .or_default() += value - *high;
                    *high = value;
                }
            }
        }
        self.stat_baseline = false;
        self.trim_months();
    }

    /// Bounded: keeps the newest `retain_months` months.
    fn trim_months(&mut self) {
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

    /// Counts an entry not counted before; returns the user it makes active (a
    /// successful registration or authentication), for the cluster-wide union.
    pub fn fido2(&mut self, e: &Fido2Entry, horizon: &Horizon) -> Option<UserKey> {
        if self.seen.contains_key(&e.id) {
            self.view.fido2_duplicates += 1;
            return None;
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
            // A FIDO2 clock far ahead is refused like an audit record's.
            let _ = self.fido2_users.insert(e.timestamp_ms, user, horizon);
            return Some(user);
        }
        None
    }

    pub fn fido2_synced(&mut self, until_ms: i64) {
        self.fido2_synced_ms = Some(self.fido2_synced_ms.map_or(until_ms, |t| t.max(until_ms)));
        super::trim_seen(&mut self.seen, until_ms - SEEN_WINDOW_MS, SEEN_MAX);
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
    fn a_takeover_continues_from_the_handed_over_marks_and_counts_nothing_twice() {
        // Sidecar A polls and counts 10 → 15; B takes over from A's handover.
        let mut a = UpstreamFigures::new(14, 13);
        a.leadership(&Leadership::Acquired(None));
        a.stat(&report(202611, 10));
        assert_eq!(issued(&a), 0, "the first holder only sets the marks");
        a.stat(&report(202611, 15));
        assert_eq!(issued(&a), 5);
        let h = a.handover(300_000);
        assert_eq!(
            h.stat_high_water,
            vec![(
                202611,
                "authorization_code".into(),
                "access_token".into(),
                15
            )]
        );
        a.leadership(&Leadership::Lost);
        assert_eq!(a.view.poller_leader, Some(false));

        let mut b = UpstreamFigures::new(14, 13);
        // B polled long ago, when the month stood at 4.
        b.stat(&report(202611, 4));
        let before = issued(&b);
        b.leadership(&Leadership::Acquired(Some(h)));
        assert_eq!(issued(&b), before, "a handover counts nothing by itself");
        b.stat(&report(202611, 21));
        assert_eq!(issued(&b) - before, 6, "only growth past A's 15");
        assert_eq!(issued(&a) + issued(&b) - before, 21 - 10);
        assert_eq!(b.view.poller_leader, Some(true));
    }

    #[test]
    fn a_handover_names_the_entries_of_the_overlap_and_they_are_not_counted_again() {
        let h = Horizon::default();
        let mut a = UpstreamFigures::new(14, 13);
        let base = 1_795_392_000_000;
        let ok = |id: u64, at: i64| {
            let mut e = entry(id, None);
            e.status = Status::Success;
            e.timestamp_ms = at;
            e
        };
        for id in 0..10u64 {
            a.fido2(&ok(id, base + id as i64 * 60_000), &h);
        }
        a.fido2_synced(base + 10 * 60_000);
        // A 5-minute overlap names the entries of the last 5 minutes only.
        let handed = a.handover(300_000);
        assert_eq!(handed.fido2_synced_ms, Some(base + 600_000));
        assert_eq!(
            handed
                .fido2_seen
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9]
        );
        let mut b = UpstreamFigures::new(14, 13);
        b.leadership(&Leadership::Acquired(Some(handed)));
        assert_eq!(b.fido2_synced_ms, Some(base + 600_000));
        // B's first window re-reads the overlap: those entries are duplicates.
        for id in 5..12u64 {
            b.fido2(&ok(id, base + id as i64 * 60_000), &h);
        }
        let counted: u64 = b.view.fido2_operations.values().sum();
        assert_eq!((counted, b.view.fido2_duplicates), (2, 5));
    }

    #[test]
    fn a_handover_is_bounded() {
        let h = Horizon::default();
        let mut a = UpstreamFigures::new(14, 13);
        let base = 1_795_392_000_000;
        let n = HANDOVER_SEEN_MAX as u64 + 500;
        for id in 0..n {
            let mut e = entry(id, None);
            e.timestamp_ms = base + id as i64;
            a.fido2(&e, &h);
        }
        a.fido2_synced(base + n as i64);
        let handed = a.handover(i64::MAX / 2);
        assert_eq!(handed.fido2_seen.len(), HANDOVER_SEEN_MAX);
        assert_eq!(handed.fido2_seen[0].0, 500, "the newest are kept");
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
