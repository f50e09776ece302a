//! The cluster-wide figures from Redis and the syncer's own health (only with a
//! cluster configured).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{bool_value, counters, gauge, gauges, histograms};
use crate::event::{ClusterErrorReason, PeriodKind};
use crate::families;
use crate::store::upstream::CALL_BUCKETS;
use crate::store::View;

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let Some(c) = &v.cluster else {
        return Ok(());
    };
    // Before the first sync there is no answer: no sample rather than a zero.
    if let Some(up) = c.up {
        gauge(enc, &families::CLUSTER_UP, bool_value(up))?;
    }
    if let Some(ms) = c.last_sync_ms {
        gauge(enc, &families::CLUSTER_LAST_SYNC, ms as f64 / 1000.0)?;
    }
    for (family, errors) in [
        (&families::CLUSTER_SYNC_ERRORS, &c.errors),
        (&families::CLUSTER_LEASE_ERRORS, &c.lease_errors),
    ] {
        counters(
            enc,
            family,
            ClusterErrorReason::ALL
                .iter()
                .map(|r| (vec![("reason", r.as_str())], errors[*r as usize])),
        )?;
    }
    histograms(
        enc,
        &families::CLUSTER_SYNC_DURATION,
        &CALL_BUCKETS,
        [(vec![], &c.duration)],
    )?;
    for (family, figures) in [
        (&families::CLUSTER_ACTIVE_USERS, c.current),
        (&families::CLUSTER_FIDO2_ACTIVE_USERS, c.fido2_current),
    ] {
        let current: Vec<(&str, u64)> = PeriodKind::ALL
            .iter()
            .zip(figures)
            .filter_map(|(k, n)| Some((k.as_str(), n?)))
            .collect();
        if !current.is_empty() {
            gauges(
                enc,
                family,
                current
                    .iter()
                    .map(|(p, n)| (vec![("period", *p)], *n as f64)),
            )?;
        }
    }
    if !c.monthly.is_empty() {
        let months: Vec<(String, u64)> =
            c.monthly.iter().map(|(m, n)| (m.to_string(), *n)).collect();
        gauges(
            enc,
            &families::CLUSTER_MONTHLY_ACTIVE_USERS,
            months
                .iter()
                .map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
        )?;
    }
    Ok(())
}
