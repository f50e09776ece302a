//! The Redis keys of the cluster-wide figures and when each expires. Every key starts
//! with the one hash tag `{<prefix>}`, so that all of them live in one Redis Cluster
//! slot and the multi-key commands of a sync (`PFMERGE` of a staging key) stay legal.

use chrono::{Datelike, Months, NaiveDate};

use crate::event::{PeriodKind, UserSet};

const DAY_MS: i64 = 86_400_000;
/// Day keys outlive their day by this much, week keys their week: late records and
/// a sidecar that was down near a boundary still merge into the right period.
const DAY_GRACE_MS: i64 = 2 * DAY_MS;
const WEEK_GRACE_MS: i64 = 14 * DAY_MS;

/// `2026-12-02`, `2026-W49`, `2026-12`: the period as a key names it.
pub fn period_label(kind: PeriodKind, key: u32) -> Option<String> {
    match kind {
        PeriodKind::Day => {
            let date = NaiveDate::from_num_days_from_ce_opt(
                i32::try_from(key).ok()?.checked_add(EPOCH_DAYS_FROM_CE)?,
            )?;
            Some(date.format("%Y-%m-%d").to_string())
        }
        PeriodKind::Week => {
            let (year, week) = (key / 100, key % 100);
            NaiveDate::from_isoywd_opt(i32::try_from(year).ok()?, week, chrono::Weekday::Mon)?;
            Some(format!("{year:04}-W{week:02}"))
        }
        PeriodKind::Month => {
            let (year, month) = (key / 100, key % 100);
            NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
            Some(format!("{year:04}-{month:02}"))
        }
    }
}

/// 1970-01-01 as days from 0001-01-01 (chrono's "common era" day 1).
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The shared key every replica merges one set's period into.
pub fn shared(prefix: &str, set: UserSet, kind: PeriodKind, label: &str) -> String {
    format!("{{{prefix}}}:{}:{}:{label}", set.as_str(), kind.as_str())
}

/// This sidecar's staging key (written, merged and deleted within one script).
pub fn staging(prefix: &str, instance: &str) -> String {
    format!("{{{prefix}}}:stage:{instance}")
}

/// Who polls the cluster-wide endpoints: the holder's instance id, with an expiry.
pub fn lease(prefix: &str) -> String {
    format!("{{{prefix}}}:poller:lease")
}

/// What the last holder counted (see `crate::event::Handover`).
pub fn handover(prefix: &str) -> String {
    format!("{{{prefix}}}:poller:handover")
}

/// When the shared key of a period expires (epoch ms): days and weeks a grace after
/// they end, months `retain_months` months after they begin (as long as the local
/// sketches keep them).
pub fn expires_at_ms(kind: PeriodKind, key: u32, retain_months: u32) -> Option<i64> {
    let midnight = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    };
    match kind {
        PeriodKind::Day => Some((i64::from(key) + 1) * DAY_MS + DAY_GRACE_MS),
        PeriodKind::Week => {
            let monday = NaiveDate::from_isoywd_opt(
                i32::try_from(key / 100).ok()?,
                key % 100,
                chrono::Weekday::Mon,
            )?;
            Some(midnight(monday)? + 7 * DAY_MS + WEEK_GRACE_MS)
        }
        PeriodKind::Month => {
            let first = NaiveDate::from_ymd_opt(i32::try_from(key / 100).ok()?, key % 100, 1)?;
            let end = first.checked_add_months(Months::new(retain_months))?;
            debug_assert_eq!(end.day(), 1);
            midnight(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sketch::PeriodKeys;

    #[test]
    fn labels_and_keys_name_the_period_of_an_instant() {
        // 2026-12-02T10:00:00Z
        let k = PeriodKeys::of(1_796_205_600_000).unwrap();
        assert_eq!(
            period_label(PeriodKind::Day, k.day).as_deref(),
            Some("2026-12-02")
        );
        assert_eq!(
            period_label(PeriodKind::Week, k.week).as_deref(),
            Some("2026-W49")
        );
        assert_eq!(
            period_label(PeriodKind::Month, k.month).as_deref(),
            Some("2026-12")
        );
        assert_eq!(
            shared("jx", UserSet::Users, PeriodKind::Month, "2026-12"),
            "{jx}:users:month:2026-12"
        );
        assert_eq!(
            shared("jx", UserSet::Fido2Users, PeriodKind::Day, "2026-12-02"),
            "{jx}:fido2_users:day:2026-12-02"
        );
        assert_eq!(staging("jx", "ab12"), "{jx}:stage:ab12");
        assert_eq!(lease("jx"), "{jx}:poller:lease");
        assert_eq!(handover("jx"), "{jx}:poller:handover");
        assert_eq!(period_label(PeriodKind::Month, 202613), None);
        assert_eq!(period_label(PeriodKind::Week, 202654), None);
    }

    #[test]
    fn keys_expire_after_their_retention() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        let k = PeriodKeys::of(at("2026-12-02T10:00:00Z")).unwrap();
        assert_eq!(
            expires_at_ms(PeriodKind::Day, k.day, 13),
            Some(at("2026-12-05T00:00:00Z"))
        );
        // ISO week 49 of 2026 is Monday 30 November to Sunday 6 December.
        assert_eq!(
            expires_at_ms(PeriodKind::Week, k.week, 13),
            Some(at("2026-12-21T00:00:00Z"))
        );
        assert_eq!(
            expires_at_ms(PeriodKind::Month, k.month, 13),
            Some(at("2028-01-01T00:00:00Z"))
        );
    }
}
