//! FIDO2 / passkey ceremonies from the FIDO2 server's metrics API.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{bool_value, counter, counters, gauge, gauges, histograms};
use crate::families;
use crate::store::sketch::PERIOD_KINDS;
use crate::store::upstream::CEREMONY_BUCKETS;
use crate::store::View;

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let u = &v.upstream;
    if let Some(up) = u.fido2_up {
        gauge(enc, &families::FIDO2_UP, bool_value(up))?;
    }
    if !u.fido2_operations.is_empty() {
        counters(
            enc,
            &families::FIDO2_OPERATIONS,
            u.fido2_operations.iter().map(|((o, s, a), n)| {
                (
                    vec![
                        ("operation", o.as_str()),
                        ("status", s.as_str()),
                        ("authenticator", a.as_str()),
                    ],
                    *n,
                )
            }),
        )?;
    }
    if !u.fido2_durations.is_empty() {
        histograms(
            enc,
            &families::FIDO2_OPERATION_DURATION,
            &CEREMONY_BUCKETS,
            u.fido2_durations
                .iter()
                .map(|((o, s), h)| (vec![("operation", o.as_str()), ("status", s.as_str())], h)),
        )?;
    }
    if !u.fido2_errors.is_empty() {
        counters(
            enc,
            &families::FIDO2_ERRORS,
            u.fido2_errors.iter().map(|((o, c), n)| {
                (
                    vec![("operation", o.as_str()), ("category", c.as_str())],
                    *n,
                )
            }),
        )?;
    }
    if !u.fido2_fallbacks.is_empty() {
        counters(
            enc,
            &families::FIDO2_FALLBACKS,
            u.fido2_fallbacks
                .iter()
                .map(|(m, n)| (vec![("method", m.as_str())], *n)),
        )?;
    }
    // Shown once FIDO2 is polled or restored figures exist, so a restart does not hide
    // a month of passkey users until the first poll answers.
    let has_figures = !u.fido2_operations.is_empty() || u.fido2_duplicates > 0;
    if u.fido2_up.is_some() || has_figures {
        gauges(
            enc,
            &families::FIDO2_ACTIVE_USERS,
            PERIOD_KINDS
                .iter()
                .zip(u.fido2_active)
                .map(|(p, n)| (vec![("period", *p)], n as f64)),
        )?;
        counter(enc, &families::FIDO2_DUPLICATE_ENTRIES, u.fido2_duplicates)?;
        counters(
            enc,
            &families::FIDO2_SKIPPED_ENTRIES,
            crate::event::Fido2SkipReason::ALL.iter().map(|r| {
                (
                    vec![("reason", r.as_str())],
                    v.counters.fido2_skipped[*r as usize],
                )
            }),
        )?;
    }
    Ok(())
}
