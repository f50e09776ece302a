//! One sync of this sidecar's registers with the union in Redis: one script, so that
//! it is atomic, needs one round trip, and runs on the one node of a Redis Cluster
//! that owns the hash tag. Each period whose registers changed since the last sync is
//! written to the staging key and `PFMERGE`d into its shared key; then every shared
//! key worth reporting is `PFCOUNT`ed. Merging is a per-register maximum: a repeated
//! sync never double counts, and a missed one is repaired by the next.

use std::collections::HashMap;

use super::keys;
use crate::event::{PeriodCount, PeriodKind, PeriodRegisters, UserSet};
use crate::store::sketch::PeriodKeys;

/// KEYS[1]: the staging key; KEYS[2..]: the shared keys to count.
/// ARGV[1]: the staging key's expiry (ms, in case the script stops half-way), then one
/// triple per period merged: index of its shared key in KEYS, its expiry (epoch ms),
/// its dense HYLL string.
/// Returns each shared key's PFCOUNT, or -1 for a key that does not exist.
pub const SCRIPT: &str = r"
local stage = KEYS[1]
for i = 2, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  redis.call('SET', stage, ARGV[i + 2], 'PX', ARGV[1])
  redis.call('PFMERGE', key, stage)
  redis.call('PEXPIREAT', key, ARGV[i + 1])
end
redis.call('DEL', stage)
local out = {}
for j = 2, #KEYS do
  if redis.call('EXISTS', KEYS[j]) == 1 then
    out[j - 1] = redis.call('PFCOUNT', KEYS[j])
  else
    out[j - 1] = -1
  end
end
return out
";

/// A period of a set: what a shared key holds.
pub type PeriodId = (UserSet, PeriodKind, u32);

/// Every this many syncs everything is written again, changed or not: a Redis that
/// failed over to a replica that had not caught up is repaired within minutes.
pub const FULL_SYNC_EVERY: u32 = 20;

/// One sync, planned.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// The shared keys counted, in `KEYS` order after the staging key.
    pub counted: Vec<(PeriodId, String)>,
    /// The periods merged: index into `counted`, expiry, registers, their hash.
    pub merged: Vec<Merge<'a>>,
}

#[derive(Debug)]
pub struct Merge<'a> {
    pub counted: usize,
    pub expires_at_ms: i64,
    pub hyll: &'a [u8],
    pub hash: u64,
}

/// What this sidecar knows Redis holds: the hash of each period's registers as last
/// merged.
#[derive(Debug, Default)]
pub struct Sent {
    hashes: HashMap<PeriodId, u64>,
    syncs: u32,
}

impl Sent {
    /// Plans a sync of `registers` at `now_ms`: the periods not yet expired whose
    /// registers changed since they were last merged (all of them, now and then), and
    /// the counts wanted: those periods, the present day, week and month of both sets,
    /// and every month of the retention for `jans_cluster_monthly_active_users`.
    pub fn plan<'a>(
        &self,
        registers: &'a [PeriodRegisters],
        prefix: &str,
        now_ms: i64,
        retain_months: u32,
    ) -> Plan<'a> {
        let full = self.syncs.is_multiple_of(FULL_SYNC_EVERY);
        let mut plan = Plan::default();
        let mut index: HashMap<PeriodId, usize> = HashMap::new();
        let mut count = |plan: &mut Plan<'a>, id: PeriodId| -> Option<usize> {
            if let Some(i) = index.get(&id) {
                return Some(*i);
            }
            let label = keys::period_label(id.1, id.2)?;
            plan.counted
                .push((id, keys::shared(prefix, id.0, id.1, &label)));
            index.insert(id, plan.counted.len() - 1);
            Some(plan.counted.len() - 1)
        };
        for p in registers {
            let id = (p.set, p.kind, p.key);
            let Some(expires_at_ms) = keys::expires_at_ms(p.kind, p.key, retain_months) else {
                continue;
            };
            if expires_at_ms <= now_ms {
                continue;
            }
            let Some(i) = count(&mut plan, id) else {
                continue;
            };
            let hash = xxhash_rust::xxh3::xxh3_64(&p.hyll);
            if full || self.hashes.get(&id) != Some(&hash) {
                plan.merged.push(Merge {
                    counted: i,
                    expires_at_ms,
                    hyll: &p.hyll,
                    hash,
                });
            }
        }
        if let Some(k) = PeriodKeys::of(now_ms) {
            for set in UserSet::ALL {
                for (kind, key) in [
                    (PeriodKind::Day, k.day),
                    (PeriodKind::Week, k.week),
                    (PeriodKind::Month, k.month),
                ] {
                    count(&mut plan, (set, kind, key));
                }
            }
            let mut month = k.month;
            for _ in 1..retain_months {
                month = previous_month(month);
                count(&mut plan, (UserSet::Users, PeriodKind::Month, month));
            }
        }
        plan
    }

    /// Takes Redis's answer to `plan`: remembers what was merged, forgets what Redis
    /// no longer holds (restarted empty, or the key evicted) so that it is merged
    /// again next time, and returns the counts worth reporting: every key that exists,
    /// and the present periods (0 when nobody has merged into them yet).
    pub fn answered(&mut self, plan: &Plan<'_>, counts: &[i64], now_ms: i64) -> Vec<PeriodCount> {
        self.syncs = self.syncs.wrapping_add(1);
        for m in &plan.merged {
            self.hashes.insert(plan.counted[m.counted].0, m.hash);
        }
        let present = PeriodKeys::of(now_ms);
        let is_present = |(_, kind, key): PeriodId| {
            present.is_some_and(|k| match kind {
                PeriodKind::Day => key == k.day,
                PeriodKind::Week => key == k.week,
                PeriodKind::Month => key == k.month,
            })
        };
        let mut out = Vec::new();
        for ((id, _), &n) in plan.counted.iter().zip(counts) {
            if n < 0 {
                self.hashes.remove(id);
            }
            if n >= 0 || is_present(*id) {
                out.push(PeriodCount {
                    set: id.0,
                    kind: id.1,
                    key: id.2,
                    users: u64::try_from(n).unwrap_or(0),
                });
            }
        }
        // Periods no longer retained locally are forgotten with them.
        self.hashes
            .retain(|id, _| plan.counted.iter().any(|(c, _)| c == id));
        out
    }
}

fn previous_month(yyyymm: u32) -> u32 {
    if yyyymm % 100 <= 1 {
        (yyyymm / 100).saturating_sub(1) * 100 + 12
    } else {
        yyyymm - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis_hll::RedisRegisters;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn registers(set: UserSet, kind: PeriodKind, key: u32, users: u32) -> PeriodRegisters {
        let mut r = RedisRegisters::default();
        for i in 0..users {
            r.insert(crate::event::UserKey::of(&format!("u{i}")));
        }
        PeriodRegisters {
            set,
            kind,
            key,
            hyll: r.to_dense_hyll(),
        }
    }

    #[test]
    fn only_changed_periods_are_merged_and_missing_keys_are_merged_again() {
        let now = at("2027-01-10T12:00:00Z");
        let k = PeriodKeys::of(now).unwrap();
        let mut regs = vec![
            registers(UserSet::Users, PeriodKind::Day, k.day, 5),
            registers(UserSet::Users, PeriodKind::Month, k.month, 5),
            registers(UserSet::Users, PeriodKind::Month, 202612, 3),
            // Expired long ago: neither merged nor counted.
            registers(UserSet::Users, PeriodKind::Day, k.day - 30, 3),
        ];
        let mut sent = Sent::default();
        let plan = sent.plan(&regs, "p", now, 13);
        assert_eq!(plan.merged.len(), 3);
        // Present day/week/month of both sets, plus 12 earlier months (202612 once).
        assert_eq!(plan.counted.len(), 6 + 12);
        assert_eq!(plan.counted[2].1, "{p}:users:month:2026-12");
        assert!(plan
            .counted
            .iter()
            .any(|(_, key)| key == "{p}:fido2_users:week:2027-W01"));
        assert!(plan
            .counted
            .iter()
            .any(|(_, key)| key == "{p}:users:month:2026-01"));
        let mut counts = vec![-1i64; plan.counted.len()];
        counts[0] = 5;
        counts[1] = 9;
        counts[2] = 3;
        let reported = sent.answered(&plan, &counts, now);
        // The three keys that exist, and the present periods without a key as 0.
        assert_eq!(reported.len(), 3 + 4);
        assert!(reported
            .iter()
            .any(|c| c.set == UserSet::Fido2Users && c.kind == PeriodKind::Day && c.users == 0));
        assert!(!reported.iter().any(|c| c.key == 202601));

        // Nothing changed: nothing merged.
        let plan = sent.plan(&regs, "p", now, 13);
        assert!(plan.merged.is_empty());
        // Redis lost the December key: merged again at the next sync.
        let mut counts = vec![-1i64; plan.counted.len()];
        counts[0] = 5;
        counts[1] = 9;
        sent.answered(&plan, &counts, now);
        regs[0] = registers(UserSet::Users, PeriodKind::Day, k.day, 6);
        let plan = sent.plan(&regs, "p", now, 13);
        let merged: Vec<&str> = plan
            .merged
            .iter()
            .map(|m| plan.counted[m.counted].1.as_str())
            .collect();
        assert_eq!(
            merged,
            ["{p}:users:day:2027-01-10", "{p}:users:month:2026-12"]
        );
    }

    #[test]
    fn everything_is_merged_again_every_full_sync() {
        let now = at("2026-12-03T12:00:00Z");
        let k = PeriodKeys::of(now).unwrap();
        let regs = vec![registers(UserSet::Users, PeriodKind::Month, k.month, 5)];
        let mut sent = Sent::default();
        let mut merges = 0;
        for _ in 0..(2 * FULL_SYNC_EVERY) {
            let plan = sent.plan(&regs, "p", now, 13);
            merges += plan.merged.len();
            let counts = vec![5i64; plan.counted.len()];
            sent.answered(&plan, &counts, now);
        }
        assert_eq!(merges, 2);
    }

    #[test]
    fn months_step_back_across_a_year() {
        assert_eq!(previous_month(202701), 202612);
        assert_eq!(previous_month(202612), 202611);
    }
}
