//! Active-user sketches: HyperLogLog++ per UTC day, ISO week and calendar month.
//!
//! The hash is fixed and documented so sketches survive restarts and merge across
//! replicas: a user's key is XXH3-64 (seed 0) of the UTF-8 username
//! ([`crate::event::UserKey`]), and [`UserKeyHash`] hands that key to HyperLogLog++
//! unchanged. Never `RandomState`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Datelike, Utc};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};

use crate::event::UserKey;

/// Passes a [`UserKey`] through as the 64-bit sketch hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
    /// Only reached if something other than a `UserKey` is inserted.
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
}

/// The sketches' hasher: stateless, so it serialises to nothing and never varies.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct UserKeyHash;

impl BuildHasher for UserKeyHash {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// One HLL++ sketch with its estimate cached until the next insert.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sketch {
    hll: HyperLogLogPlus<UserKey, UserKeyHash>,
    #[serde(skip)]
    estimate: Option<u64>,
}

impl Sketch {
    /// `precision` must be 4..=18 (config validation keeps it in 10..=18).
    pub fn new(precision: u8) -> Option<Sketch> {
        let hll = HyperLogLogPlus::new(precision, UserKeyHash).ok()?;
        Some(Sketch {
            hll,
            estimate: None,
        })
    }

    pub fn insert(&mut self, user: UserKey) {
        self.hll.insert(&user);
        self.estimate = None;
    }

    pub fn estimate(&mut self) -> u64 {
        if let Some(e) = self.estimate {
            return e;
        }
        let e = self.hll.count().round().max(0.0) as u64;
        self.estimate = Some(e);
        e
    }

    pub fn merge(&mut self, other: &Sketch) -> bool {
        self.estimate = None;
        self.hll.merge(&other.hll).is_ok()
    }
}

/// A bounded set of sketches keyed by period; the oldest key goes first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Periods {
    cap: usize,
    sketches: BTreeMap<u32, Sketch>,
}

impl Periods {
    pub fn new(cap: usize) -> Periods {
        Periods {
            cap: cap.max(1),
            sketches: BTreeMap::new(),
        }
    }

    /// Adds `user` to period `key`. False when `key` is older than every retained
    /// period and there is no room: the record is outside retention.
    pub fn insert(&mut self, key: u32, user: UserKey, precision: u8) -> bool {
        if let Some(s) = self.sketches.get_mut(&key) {
            s.insert(user);
            return true;
        }
        if self.sketches.len() >= self.cap
            && self
                .sketches
                .keys()
                .next()
                .is_some_and(|&oldest| key < oldest)
        {
            return false;
        }
        let Some(mut sketch) = Sketch::new(precision) else {
            return false;
        };
        sketch.insert(user);
        self.sketches.insert(key, sketch);
        while self.sketches.len() > self.cap {
            self.sketches.pop_first();
        }
        true
    }

    pub fn estimate(&mut self, key: u32) -> u64 {
        self.sketches.get_mut(&key).map_or(0, Sketch::estimate)
    }

    /// Every retained period with its estimate, oldest first.
    pub fn estimates(&mut self) -> Vec<(u32, u64)> {
        self.sketches
            .iter_mut()
            .map(|(k, s)| (*k, s.estimate()))
            .collect()
    }

    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
        while self.sketches.len() > self.cap {
            self.sketches.pop_first();
        }
    }
}

/// The period keys of an instant: UTC day number, ISO week `YYYYWW`, month `YYYYMM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodKeys {
    pub day: u32,
    pub week: u32,
    pub month: u32,
}

impl PeriodKeys {
    pub fn of(timestamp_ms: i64) -> Option<PeriodKeys> {
        let t = DateTime::<Utc>::from_timestamp_millis(timestamp_ms)?;
        let day = u32::try_from(timestamp_ms.div_euclid(86_400_000)).ok()?;
        let week = t.iso_week();
        Some(PeriodKeys {
            day,
            week: u32::try_from(week.year()).ok()? * 100 + week.week(),
            month: u32::try_from(t.year()).ok()? * 100 + t.month(),
        })
    }
}

/// The oldest day and week still worth a sketch at some wall-clock time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Horizon {
    pub day: u32,
    pub week: u32,
}

impl Horizon {
    /// Keeps the last `DAYS_KEPT` days and `WEEKS_KEPT` ISO weeks before `now_ms`.
    pub fn at(now_ms: i64) -> Horizon {
        const DAY_MS: i64 = 86_400_000;
        let day = PeriodKeys::of(now_ms - (DAYS_KEPT as i64 - 1) * DAY_MS).map_or(0, |k| k.day);
        let week =
            PeriodKeys::of(now_ms - (WEEKS_KEPT as i64 - 1) * 7 * DAY_MS).map_or(0, |k| k.week);
        Horizon { day, week }
    }
}

/// Days and weeks keep the current and previous periods (late records near a
/// boundary); months keep `retain_months`.
const DAYS_KEPT: usize = 3;
const WEEKS_KEPT: usize = 3;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActiveUsers {
    precision: u8,
    days: Periods,
    weeks: Periods,
    months: Periods,
}

impl ActiveUsers {
    pub fn new(precision: u8, retain_months: usize) -> ActiveUsers {
        ActiveUsers {
            precision,
            days: Periods::new(DAYS_KEPT),
            weeks: Periods::new(WEEKS_KEPT),
            months: Periods::new(retain_months),
        }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    pub fn set_retain_months(&mut self, months: usize) {
        self.months.set_cap(months);
    }

    /// Counts `user` active at `timestamp_ms`. False when its month is outside retention.
    /// Days and weeks before `horizon` can never be current again: a backfill skips them.
    pub fn insert(&mut self, timestamp_ms: i64, user: UserKey, horizon: &Horizon) -> bool {
        let Some(k) = PeriodKeys::of(timestamp_ms) else {
            return false;
        };
        if k.day >= horizon.day {
            self.days.insert(k.day, user, self.precision);
        }
        if k.week >= horizon.week {
            self.weeks.insert(k.week, user, self.precision);
        }
        self.months.insert(k.month, user, self.precision)
    }

    /// Estimates for the day, week and month containing `now_ms`.
    pub fn current(&mut self, now_ms: i64) -> [u64; 3] {
        match PeriodKeys::of(now_ms) {
            Some(k) => [
                self.days.estimate(k.day),
                self.weeks.estimate(k.week),
                self.months.estimate(k.month),
            ],
            None => [0; 3],
        }
    }

    pub fn monthly(&mut self) -> Vec<(u32, u64)> {
        self.months.estimates()
    }

    pub fn month(&mut self, month: u32) -> u64 {
        self.months.estimate(month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(range: std::ops::Range<u32>) -> impl Iterator<Item = UserKey> {
        range.map(|i| UserKey::of(&format!("user{i:06}@example.org")))
    }

    #[test]
    fn small_counts_are_exact_within_one() {
        for n in [0u32, 1, 2, 7, 50, 99] {
            let mut s = Sketch::new(14).unwrap();
            for u in users(0..n) {
                s.insert(u);
                s.insert(u); // duplicates do not count
            }
            let e = s.estimate() as i64;
            assert!((e - n as i64).abs() <= 1, "n={n} estimate={e}");
        }
    }

    #[test]
    fn error_under_two_percent_at_100k_distinct_users() {
        let mut s = Sketch::new(14).unwrap();
        for u in users(0..100_000) {
            s.insert(u);
        }
        let e = s.estimate() as f64;
        let err = (e - 100_000.0).abs() / 100_000.0;
        assert!(err < 0.02, "estimate {e}, error {err}");
    }

    #[test]
    fn sketches_survive_serialisation_and_merge() {
        let mut a = Sketch::new(14).unwrap();
        let mut b = Sketch::new(14).unwrap();
        for u in users(0..3_000) {
            a.insert(u);
        }
        for u in users(2_000..5_000) {
            b.insert(u);
        }
        let json = serde_json::to_string(&a).unwrap();
        let mut back: Sketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back.estimate(), a.estimate());
        assert!(back.merge(&b));
        let e = back.estimate() as f64;
        assert!((e - 5_000.0).abs() / 5_000.0 < 0.02, "union estimate {e}");
    }

    #[test]
    fn months_are_bucketed_by_record_time_across_a_boundary() {
        let mut au = ActiveUsers::new(14, 13);
        let h = Horizon::default();
        let oct_31_late = 1_793_491_199_999; // 2026-10-31T23:59:59.999Z
        let nov_1 = 1_793_491_200_000; // 2026-11-01T00:00:00Z
        au.insert(oct_31_late, UserKey::of("a"), &h);
        au.insert(oct_31_late, UserKey::of("b"), &h);
        au.insert(nov_1, UserKey::of("a"), &h);
        assert_eq!(au.monthly(), vec![(202610, 2), (202611, 1)]);
        // The day and month hold only `a`; the ISO week spans both days and holds both.
        assert_eq!(au.current(nov_1 + 1000), [1, 2, 1]);
        // 2026-10-31 is a Saturday of ISO week 44; 2026-11-01 a Sunday of the same week.
        assert_eq!(PeriodKeys::of(oct_31_late).unwrap().week, 202644);
        assert_eq!(PeriodKeys::of(nov_1).unwrap().week, 202644);
    }

    #[test]
    fn retention_bounds_the_months_kept() {
        let mut au = ActiveUsers::new(14, 3);
        let month_ms = 31 * 86_400_000i64;
        for m in 0..6 {
            assert!(au.insert(
                1_767_225_600_000 + m * month_ms,
                UserKey::of("x"),
                &Horizon::default()
            ));
        }
        let kept: Vec<u32> = au.monthly().into_iter().map(|(m, _)| m).collect();
        assert_eq!(kept, vec![202604, 202605, 202606]);
        // Older than everything kept, with no room: outside retention.
        assert!(!au.insert(1_767_225_600_000, UserKey::of("y"), &Horizon::default()));
    }

    #[test]
    fn records_before_the_horizon_skip_day_and_week_but_count_for_the_month() {
        let now = 1_795_392_000_000; // 2026-11-23T00:00:00Z, a Monday
        let h = Horizon::at(now);
        let mut au = ActiveUsers::new(14, 13);
        au.insert(now - 20 * 86_400_000, UserKey::of("old"), &h);
        au.insert(now - 86_400_000, UserKey::of("yesterday"), &h);
        au.insert(now, UserKey::of("today"), &h);
        assert_eq!(au.current(now), [1, 1, 3]);
        assert_eq!(
            au.current(now - 86_400_000),
            [1, 1, 3],
            "yesterday's day and week are kept"
        );
        assert_eq!(au.days.sketches.len(), 2);
        assert_eq!(au.weeks.sketches.len(), 2);
    }
}
