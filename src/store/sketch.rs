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
use crate::store::redis_hll::{self, RedisRegisters};

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
#[derive(Clone, Debug)]
pub struct Sketch {
    hll: HyperLogLogPlus<UserKey, UserKeyHash>,
    precision: u8,
    estimate: Option<u64>,
}

impl Sketch {
    /// `precision` must be 4..=18 (config validation keeps it in 10..=18).
    pub fn new(precision: u8) -> Option<Sketch> {
        let hll = HyperLogLogPlus::new(precision, UserKeyHash).ok()?;
        Some(Sketch {
            hll,
            precision,
            estimate: None,
        })
    }

    pub fn precision(&self) -> u8 {
        self.precision
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

    /// The compact, validated form the snapshot stores (see [`SketchRepr`]).
    pub fn to_repr(&self) -> Result<SketchRepr, SketchError> {
        // Through JSON bytes, not a `Value` tree: a dense precision-18 sketch as a tree
        // is 1.7 MB of nodes, as text a third of that.
        let mirror: HllMirror = serde_json::to_vec(&self.hll)
            .and_then(|json| serde_json::from_slice(&json))
            .map_err(|e| SketchError(format!("cannot read the sketch: {e}")))?;
        mirror.to_repr(self.precision)
    }

    /// Rebuilds a sketch from its stored form. Every register and hash code is checked,
    /// and the sketch is built from a fresh one of `precision`, so sizes always agree.
    pub fn from_repr(precision: u8, repr: &SketchRepr) -> Result<Sketch, SketchError> {
        let fresh = Sketch::new(precision)
            .ok_or_else(|| SketchError(format!("precision {precision} is out of range")))?;
        let mut mirror: HllMirror = serde_json::to_vec(&fresh.hll)
            .and_then(|json| serde_json::from_slice(&json))
            .map_err(|e| SketchError(format!("cannot build a sketch: {e}")))?;
        match repr {
            SketchRepr::Sparse(bytes) => {
                // The stored list is hyperloglogplus's own sparse list (sorted distinct
                // codes, varint deltas): checked code by code, then used as it is,
                // never expanded into its temporary hash set.
                let (count, last) =
                    walk_varint_deltas(bytes, |code| check_sparse_code(code, precision))?;
                if bytes.len() > mirror.counts.2 {
                    // Past the dense threshold (never written by a save): let
                    // hyperloglogplus convert it.
                    mirror.tmpset = decode_varint_deltas(bytes)?;
                } else {
                    mirror.sparse = SparseMirror {
                        count,
                        last,
                        buf: bytes.clone(),
                    };
                }
            }
            SketchRepr::Dense(bytes) => {
                let registers = unpack6(bytes, 1usize << precision)?;
                let max_rank = 64 - u32::from(precision) + 1;
                if let Some(bad) = registers.iter().find(|r| u32::from(**r) > max_rank) {
                    return Err(SketchError(format!(
                        "register value {bad} is over the maximum rank {max_rank}"
                    )));
                }
                mirror.registers = Some(RegistersMirror::pack(&registers));
            }
        }
        let hll = serde_json::to_vec(&mirror)
            .and_then(|json| serde_json::from_slice(&json))
            .map_err(|e| SketchError(format!("cannot rebuild the sketch: {e}")))?;
        Ok(Sketch {
            hll,
            precision,
            estimate: None,
        })
    }
}

/// Why a stored sketch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SketchError(pub String);

/// A sketch as the snapshot stores it.
///
/// - `Sparse`: the HLL++ sparse hash codes (precision 25), sorted, delta-encoded as
///   LEB128 varints — small and exact for few users.
/// - `Dense`: `2^precision` registers of 6 bits, packed least significant bit first
///   (the layout Redis uses for its dense HyperLogLog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SketchRepr {
    Sparse(Vec<u8>),
    Dense(Vec<u8>),
}

/// HLL++'s sparse precision in hyperloglogplus.
const PRIME_PRECISION: u32 = 25;

/// A sparse code is `index25 << 7 | rank << 1 | 1` when the bits of the 25-bit index
/// below the top `precision` bits are zero, else `index25 << 1`.
fn check_sparse_code(code: u32, precision: u8) -> Result<(), SketchError> {
    let bad = |why: &str| Err(SketchError(format!("sparse code {code:#x}: {why}")));
    if code & 1 == 1 {
        let rank = (code >> 1) & 0x3f;
        if rank == 0 || rank > 64 - PRIME_PRECISION + 1 {
            return bad("rank out of range");
        }
        let index = code >> 7;
        let below = index & ((1 << (PRIME_PRECISION - u32::from(precision))) - 1);
        if below != 0 {
            return bad("index bits set below the precision");
        }
    } else {
        let index = code >> 1;
        if index >= 1 << PRIME_PRECISION {
            return bad("index over 25 bits");
        }
        if index & ((1 << (PRIME_PRECISION - u32::from(precision))) - 1) == 0 {
            return bad("should have been written with its rank");
        }
    }
    Ok(())
}

/// At most this many sparse codes are accepted (more would have turned dense).
const MAX_SPARSE_CODES: usize = 1 << 20;

fn decode_varint_deltas(bytes: &[u8]) -> Result<Vec<u32>, SketchError> {
    let mut out = Vec::new();
    walk_varint_deltas(bytes, |code| {
        out.push(code);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with each code of a varint-delta list, checking that the codes ascend
/// strictly and fit in 32 bits; returns `(count, last code)`.
fn walk_varint_deltas(
    bytes: &[u8],
    mut f: impl FnMut(u32) -> Result<(), SketchError>,
) -> Result<(usize, u32), SketchError> {
    let mut count = 0usize;
    let mut last: u32 = 0;
    let mut value: u64 = 0;
    let mut shift = 0u32;
    for &b in bytes {
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 != 0 {
            shift += 7;
            if shift > 28 {
                return Err(SketchError("varint longer than 5 bytes".into()));
            }
            continue;
        }
        let delta = u32::try_from(value).map_err(|_| SketchError("varint over 32 bits".into()))?;
        if count > 0 && delta == 0 {
            return Err(SketchError("sparse codes repeat".into()));
        }
        last = last
            .checked_add(delta)
            .ok_or_else(|| SketchError("sparse codes overflow".into()))?;
        count += 1;
        if count > MAX_SPARSE_CODES {
            return Err(SketchError("too many sparse codes".into()));
        }
        f(last)?;
        value = 0;
        shift = 0;
    }
    if shift != 0 {
        return Err(SketchError("truncated varint".into()));
    }
    Ok((count, last))
}

fn encode_varint_deltas(sorted: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sorted.len() * 2);
    let mut last = 0u32;
    for &code in sorted {
        let mut delta = code - last;
        last = code;
        while delta >= 0x80 {
            out.push((delta as u8 & 0x7f) | 0x80);
            delta >>= 7;
        }
        out.push(delta as u8);
    }
    out
}

/// 6-bit registers, least significant bit first.
fn pack6(registers: impl ExactSizeIterator<Item = u8>) -> Vec<u8> {
    let mut out = vec![0u8; (registers.len() * 6).div_ceil(8)];
    for (i, r) in registers.enumerate() {
        let bit = i * 6;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(r & 0x3f) << shift;
        out[byte] |= v as u8;
        if shift > 2 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
    out
}

fn unpack6(bytes: &[u8], count: usize) -> Result<Vec<u8>, SketchError> {
    if bytes.len() != (count * 6).div_ceil(8) {
        return Err(SketchError(format!(
            "{} register bytes for {count} registers",
            bytes.len()
        )));
    }
    Ok((0..count)
        .map(|i| {
            let bit = i * 6;
            let (byte, shift) = (bit / 8, bit % 8);
            let lo = u16::from(bytes[byte]);
            let hi = bytes.get(byte + 1).copied().map_or(0, u16::from);
            (((hi << 8 | lo) >> shift) & 0x3f) as u8
        })
        .collect())
}

/// hyperloglogplus 0.4.1's serde layout (pinned), read and written field by field.
/// Version-1 snapshots hold sketches in exactly this form.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HllMirror {
    builder: (),
    precision: u8,
    counts: (usize, usize, usize),
    tmpset: Vec<u32>,
    sparse: SparseMirror,
    registers: Option<RegistersMirror>,
    phantom: (),
}

#[derive(Debug, Serialize, Deserialize)]
struct SparseMirror {
    count: usize,
    last: u32,
    buf: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistersMirror {
    buf: Vec<u32>,
    count: usize,
    zeros: usize,
}

impl RegistersMirror {
    /// Five 6-bit registers per 32-bit word, as hyperloglogplus packs them.
    fn pack(registers: &[u8]) -> RegistersMirror {
        let mut buf = vec![0u32; registers.len().div_ceil(5)];
        for (i, r) in registers.iter().enumerate() {
            buf[i / 5] |= u32::from(*r) << ((i % 5) * 6);
        }
        RegistersMirror {
            buf,
            count: registers.len(),
            zeros: registers.iter().filter(|r| **r == 0).count(),
        }
    }

    fn unpack(&self, count: usize) -> Result<Vec<u8>, SketchError> {
        if self.count != count || self.buf.len() != count.div_ceil(5) {
            return Err(SketchError(format!(
                "{} registers in {} words where {count} are expected",
                self.count,
                self.buf.len()
            )));
        }
        Ok((0..count)
            .map(|i| ((self.buf[i / 5] >> ((i % 5) * 6)) & 0x3f) as u8)
            .collect())
    }
}

impl HllMirror {
    /// The stored form of this sketch, checked against `precision`.
    pub(crate) fn to_repr(&self, precision: u8) -> Result<SketchRepr, SketchError> {
        if self.precision != precision || !(4..=18).contains(&precision) {
            return Err(SketchError(format!(
                "precision {} where {precision} is expected",
                self.precision
            )));
        }
        match &self.registers {
            Some(r) => Ok(SketchRepr::Dense(pack6(
                r.unpack(1usize << precision)?.into_iter(),
            ))),
            None => {
                let mut codes = decode_varint_deltas(&self.sparse.buf)?;
                codes.extend_from_slice(&self.tmpset);
                codes.sort_unstable();
                codes.dedup();
                for &code in &codes {
                    check_sparse_code(code, precision)?;
                }
                Ok(SketchRepr::Sparse(encode_varint_deltas(&codes)))
            }
        }
    }
}

/// What a period keeps of its users: an HLL++ [`Sketch`] for the local figures, or
/// Redis-compatible registers ([`RedisRegisters`]) for the cluster-wide union.
pub trait PeriodSketch: Clone {
    fn fresh(precision: u8) -> Option<Self>;
    fn insert(&mut self, user: UserKey);
    fn estimate(&mut self) -> u64;
    fn precision(&self) -> u8;
}

impl PeriodSketch for Sketch {
    fn fresh(precision: u8) -> Option<Sketch> {
        Sketch::new(precision)
    }
    fn insert(&mut self, user: UserKey) {
        Sketch::insert(self, user);
    }
    fn estimate(&mut self) -> u64 {
        Sketch::estimate(self)
    }
    fn precision(&self) -> u8 {
        self.precision
    }
}

impl PeriodSketch for RedisRegisters {
    fn fresh(precision: u8) -> Option<RedisRegisters> {
        (precision == redis_hll::PRECISION).then(RedisRegisters::default)
    }
    fn insert(&mut self, user: UserKey) {
        RedisRegisters::insert(self, user);
    }
    fn estimate(&mut self) -> u64 {
        RedisRegisters::estimate(self)
    }
    fn precision(&self) -> u8 {
        redis_hll::PRECISION
    }
}

/// What happened to one user's activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    Counted,
    /// Older than every retained month, with no room left.
    OutsideRetention,
    /// Stamped too far ahead of the clock: the record's clock is wrong, not the present.
    Future,
}

/// A bounded set of sketches keyed by period; the oldest key goes first, but never
/// the present one.
#[derive(Clone, Debug)]
pub struct Periods<S = Sketch> {
    cap: usize,
    sketches: BTreeMap<u32, S>,
}

impl<S: PeriodSketch> Periods<S> {
    pub fn new(cap: usize) -> Periods<S> {
        Periods {
            cap: cap.max(1),
            sketches: BTreeMap::new(),
        }
    }

    /// Adds `user` to period `key`, where `present` is the period of the wall clock.
    pub fn insert(&mut self, key: u32, present: u32, user: UserKey, precision: u8) -> Insert {
        if let Some(s) = self.sketches.get_mut(&key) {
            s.insert(user);
            return Insert::Counted;
        }
        if self.sketches.len() >= self.cap {
            let Some(&oldest) = self.sketches.keys().next() else {
                return Insert::OutsideRetention;
            };
            if key < oldest {
                return Insert::OutsideRetention;
            }
            if oldest >= present && key > present {
                // Making room would evict the present for a period still to come.
                return Insert::Future;
            }
        }
        let Some(mut sketch) = S::fresh(precision) else {
            return Insert::OutsideRetention;
        };
        sketch.insert(user);
        self.put(key, sketch);
        Insert::Counted
    }

    /// Keeps `sketch` for `key` (restoring a snapshot), within the cap.
    pub fn put(&mut self, key: u32, sketch: S) {
        self.sketches.insert(key, sketch);
        while self.sketches.len() > self.cap {
            self.sketches.pop_first();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &S)> {
        self.sketches.iter().map(|(k, s)| (*k, s))
    }

    pub fn estimate(&mut self, key: u32) -> u64 {
        self.sketches.get_mut(&key).map_or(0, S::estimate)
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

    /// [`of`](Self::of), through `last`, the keys of the last instant asked about:
    /// week and month follow from the day, and records come in time order, so most
    /// share their day with the one before (the calendar arithmetic was a tenth of the
    /// store's time).
    pub fn of_cached(timestamp_ms: i64, last: &mut Option<PeriodKeys>) -> Option<PeriodKeys> {
        match *last {
            Some(k) if i64::from(k.day) == timestamp_ms.div_euclid(86_400_000) => Some(k),
            _ => {
                let k = PeriodKeys::of(timestamp_ms)?;
                *last = Some(k);
                Some(k)
            }
        }
    }
}

/// What the wall clock says about periods: the oldest day and week still worth a
/// sketch, the present periods, and the latest record time believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    pub day: u32,
    pub week: u32,
    pub present: PeriodKeys,
    /// Records stamped after this are refused ([`Insert::Future`]).
    pub latest_ms: i64,
}

/// A horizon that accepts everything: for tests and replays of old files.
impl Default for Horizon {
    fn default() -> Horizon {
        Horizon {
            day: 0,
            week: 0,
            present: PeriodKeys {
                day: u32::MAX,
                week: u32::MAX,
                month: u32::MAX,
            },
            latest_ms: i64::MAX,
        }
    }
}

impl Horizon {
    /// Keeps the last `DAYS_KEPT` days and `WEEKS_KEPT` ISO weeks before `now_ms`, and
    /// believes records up to `max_ahead_ms` after it.
    pub fn at(now_ms: i64, max_ahead_ms: i64) -> Horizon {
        const DAY_MS: i64 = 86_400_000;
        let day = PeriodKeys::of(now_ms - (DAYS_KEPT as i64 - 1) * DAY_MS).map_or(0, |k| k.day);
        let week =
            PeriodKeys::of(now_ms - (WEEKS_KEPT as i64 - 1) * 7 * DAY_MS).map_or(0, |k| k.week);
        Horizon {
            day,
            week,
            present: PeriodKeys::of(now_ms).unwrap_or(Horizon::default().present),
            latest_ms: now_ms.saturating_add(max_ahead_ms),
        }
    }
}

/// Days and weeks keep the current and previous periods (late records near a
/// boundary); months keep `retain_months`.
const DAYS_KEPT: usize = 3;
const WEEKS_KEPT: usize = 3;

/// The three kinds of period, as the snapshot names them.
pub const PERIOD_KINDS: [&str; 3] = ["day", "week", "month"];

#[derive(Clone, Debug)]
pub struct ActiveUsers<S = Sketch> {
    precision: u8,
    days: Periods<S>,
    weeks: Periods<S>,
    months: Periods<S>,
    /// See [`PeriodKeys::of_cached`].
    last_keys: Option<PeriodKeys>,
}

impl<S: PeriodSketch> ActiveUsers<S> {
    pub fn new(precision: u8, retain_months: usize) -> ActiveUsers<S> {
        ActiveUsers {
            precision,
            days: Periods::new(DAYS_KEPT),
            weeks: Periods::new(WEEKS_KEPT),
            months: Periods::new(retain_months),
            last_keys: None,
        }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    pub fn set_retain_months(&mut self, months: usize) {
        self.months.set_cap(months);
    }

    /// Counts `user` active at `timestamp_ms`. Days and weeks before `horizon` can never
    /// be current again: a backfill skips them. A record stamped after the horizon's
    /// latest time touches no sketch.
    pub fn insert(&mut self, timestamp_ms: i64, user: UserKey, horizon: &Horizon) -> Insert {
        if timestamp_ms > horizon.latest_ms {
            return Insert::Future;
        }
        let Some(k) = PeriodKeys::of_cached(timestamp_ms, &mut self.last_keys) else {
            return Insert::OutsideRetention;
        };
        let p = horizon.present;
        if k.day >= horizon.day {
            self.days.insert(k.day, p.day, user, self.precision);
        }
        if k.week >= horizon.week {
            self.weeks.insert(k.week, p.week, user, self.precision);
        }
        self.months.insert(k.month, p.month, user, self.precision)
    }

    /// The sketches of one kind of period (`PERIOD_KINDS`).
    pub fn periods(&self, kind: &str) -> Option<&Periods<S>> {
        match kind {
            "day" => Some(&self.days),
            "week" => Some(&self.weeks),
            "month" => Some(&self.months),
            _ => None,
        }
    }

    /// Restores one saved sketch; false for an unknown kind or another precision.
    pub fn restore(&mut self, kind: &str, key: u32, sketch: S) -> bool {
        if sketch.precision() != self.precision {
            return false;
        }
        let periods = match kind {
            "day" => &mut self.days,
            "week" => &mut self.weeks,
            "month" => &mut self.months,
            _ => return false,
        };
        periods.put(key, sketch);
        true
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

    #[test]
    fn cached_period_keys_are_the_keys_of_every_instant() {
        let mut rng = fastrand::Rng::with_seed(21);
        let mut last = None;
        let mut t: i64 = 1_735_000_000_000;
        for _ in 0..200_000 {
            t = match rng.u8(..20) {
                // Around a day's edge, far jumps both ways, and the ends of the range.
                0 => t
                    .div_euclid(86_400_000)
                    .saturating_mul(86_400_000)
                    .saturating_add(rng.i64(-2..2)),
                1 => rng.i64(-100_000_000_000_000..100_000_000_000_000),
                2 => [i64::MIN, i64::MAX, -1, 0][rng.usize(..4)],
                _ => t.saturating_add(rng.i64(-1_000_000..30_000_000)),
            };
            assert_eq!(
                PeriodKeys::of_cached(t, &mut last),
                PeriodKeys::of(t),
                "{t}"
            );
        }
    }

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
        let mut back = Sketch::from_repr(14, &a.to_repr().unwrap()).unwrap();
        assert_eq!(back.estimate(), a.estimate());
        assert!(back.merge(&b));
        let e = back.estimate() as f64;
        assert!((e - 5_000.0).abs() / 5_000.0 < 0.02, "union estimate {e}");
    }

    #[test]
    fn months_are_bucketed_by_record_time_across_a_boundary() {
        let mut au: ActiveUsers = ActiveUsers::new(14, 13);
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
        let mut au: ActiveUsers = ActiveUsers::new(14, 3);
        let month_ms = 31 * 86_400_000i64;
        for m in 0..6 {
            assert_eq!(
                au.insert(
                    1_767_225_600_000 + m * month_ms,
                    UserKey::of("x"),
                    &Horizon::default()
                ),
                Insert::Counted
            );
        }
        let kept: Vec<u32> = au.monthly().into_iter().map(|(m, _)| m).collect();
        assert_eq!(kept, vec![202604, 202605, 202606]);
        // Older than everything kept, with no room: outside retention.
        assert_eq!(
            au.insert(1_767_225_600_000, UserKey::of("y"), &Horizon::default()),
            Insert::OutsideRetention
        );
    }

    #[test]
    fn records_before_the_horizon_skip_day_and_week_but_count_for_the_month() {
        let now = 1_795_392_000_000; // 2026-11-23T00:00:00Z, a Monday
        let h = Horizon::at(now, 86_400_000);
        let mut au: ActiveUsers = ActiveUsers::new(14, 13);
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

    /// Sparse and dense sketches at several precisions survive the stored form with the
    /// same estimate, and the form matches what hyperloglogplus's own serde held.
    #[test]
    fn the_stored_form_round_trips_sparse_and_dense() {
        for precision in [10u8, 14, 18] {
            for n in [0u32, 1, 300, 40_000] {
                let mut a = Sketch::new(precision).unwrap();
                for u in users(0..n) {
                    a.insert(u);
                }
                let repr = a.to_repr().unwrap();
                let dense = matches!(repr, SketchRepr::Dense(_));
                let mut back = Sketch::from_repr(precision, &repr).unwrap();
                assert_eq!(back.estimate(), a.estimate(), "p={precision} n={n}");
                assert_eq!(back.to_repr().unwrap(), repr, "p={precision} n={n}: stable");
                // The rebuilt sketch keeps working: more users, same answer as the original.
                for u in users(n..n + 500) {
                    a.insert(u);
                    back.insert(u);
                }
                assert_eq!(
                    back.estimate(),
                    a.estimate(),
                    "p={precision} n={n} dense={dense}"
                );
            }
        }
    }

    #[test]
    fn six_bit_packing_matches_a_hand_packed_pair() {
        // Registers 1 and 63: 000001 then 111111, least significant bit first.
        assert_eq!(pack6([1u8, 63].into_iter()), vec![0b1100_0001, 0b0000_1111]);
        assert_eq!(
            unpack6(&[0b1100_0001, 0b0000_1111], 2).unwrap(),
            vec![1, 63]
        );
        let regs: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 64) as u8).collect();
        assert_eq!(unpack6(&pack6(regs.iter().copied()), 1000).unwrap(), regs);
    }

    #[test]
    fn malformed_stored_sketches_are_refused() {
        let dense_too_high = SketchRepr::Dense(pack6(std::iter::repeat_n(60u8, 1 << 14)));
        assert!(
            Sketch::from_repr(14, &dense_too_high).is_err(),
            "rank over 51"
        );
        assert!(Sketch::from_repr(14, &SketchRepr::Dense(vec![0; 10])).is_err());
        assert!(Sketch::from_repr(19, &SketchRepr::Sparse(vec![])).is_err());
        // An even code with no bits below the precision should have carried its rank.
        assert!(
            Sketch::from_repr(14, &SketchRepr::Sparse(encode_varint_deltas(&[1 << 20]))).is_err()
        );
        // Truncated and over-long varints, and a repeated code.
        assert!(Sketch::from_repr(14, &SketchRepr::Sparse(vec![0x80])).is_err());
        assert!(Sketch::from_repr(14, &SketchRepr::Sparse(vec![0x80; 6])).is_err());
        assert!(Sketch::from_repr(14, &SketchRepr::Sparse(vec![3, 0])).is_err());
    }

    #[test]
    fn records_from_the_future_never_touch_or_evict_the_present() {
        let now = 1_795_392_000_000; // 2026-11-23T00:00:00Z
        let h = Horizon::at(now, 86_400_000);
        let mut au: ActiveUsers = ActiveUsers::new(14, 13);
        au.insert(now, UserKey::of("today"), &h);
        let year = 365 * 86_400_000i64;
        for y in 64..77 {
            assert_eq!(
                au.insert(now + y * year, UserKey::of("x"), &h),
                Insert::Future
            );
        }
        assert_eq!(au.current(now), [1, 1, 1]);
        assert_eq!(au.monthly(), vec![(202611, 1)]);
        // Within the allowed skew a record counts, but a full set keeps the present.
        let mut one: ActiveUsers = ActiveUsers::new(14, 1);
        let dec_1 = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        let h = Horizon::at(dec_1 - 3_600_000, 86_400_000);
        assert_eq!(
            one.insert(dec_1 - 3_600_000, UserKey::of("a"), &h),
            Insert::Counted
        );
        assert_eq!(
            one.insert(dec_1 + 60_000, UserKey::of("b"), &h),
            Insert::Future
        );
        assert_eq!(one.monthly(), vec![(202611, 1)]);
    }
}
