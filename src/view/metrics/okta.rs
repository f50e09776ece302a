//! An Okta org's billing figures and the System Log poller's own health (only with
//! `okta.org_url`).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{bool_value, counter, counters, gauge, gauges, histograms};
use crate::event::{OktaErrorReason, OktaFlow, OktaSkipReason};
use crate::families;
use crate::store::sketch::PERIOD_KINDS;
use crate::store::upstream::CALL_BUCKETS;
use crate::store::View;

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let Some(o) = &v.okta else {
        return Ok(());
    };
    gauges(
        enc,
        &families::OKTA_ACTIVE_USERS,
        PERIOD_KINDS
            .iter()
            .zip(o.active)
            .map(|(p, n)| (vec![("period", *p)], n as f64)),
    )?;
    if !o.monthly.is_empty() {
        let months: Vec<(String, u64)> =
            o.monthly.iter().map(|(m, n)| (m.to_string(), *n)).collect();
        gauges(
            enc,
            &families::OKTA_MONTHLY_ACTIVE_USERS,
            months
                .iter()
                .map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
        )?;
    }
    if !o.m2m_tokens.is_empty() {
        counters(
            enc,
            &families::OKTA_M2M_TOKENS,
            o.m2m_tokens
                .iter()
                .map(|(s, n)| (vec![("authorization_server", s.as_str())], *n)),
        )?;
    }
    counters(
        enc,
        &families::OKTA_EVENTS,
        OktaFlow::ALL.iter().flat_map(|f| {
            ["false", "true"]
                .into_iter()
                .zip(o.events[*f as usize])
                .map(move |(billed, n)| (vec![("flow", f.as_str()), ("billed", billed)], n))
        }),
    )?;
    counters(
        enc,
        &families::OKTA_SKIPPED_EVENTS,
        OktaSkipReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.as_str())], o.skipped[*r as usize])),
    )?;
    counter(enc, &families::OKTA_DUPLICATE_EVENTS, o.duplicates)?;
    // Before the first answer there is none: no sample rather than a zero.
    if let Some(up) = o.calls.up {
        gauge(enc, &families::OKTA_UP, bool_value(up))?;
    }
    counters(
        enc,
        &families::OKTA_ERRORS,
        OktaErrorReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.as_str())], o.calls.errors[*r as usize])),
    )?;
    histograms(
        enc,
        &families::OKTA_REQUEST_DURATION,
        &CALL_BUCKETS,
        [(vec![], &o.calls.duration)],
    )?;
    if let Some(ms) = o.calls.last_success_ms {
        gauge(enc, &families::OKTA_LAST_SUCCESS, ms as f64 / 1000.0)?;
    }
    if let Some(ms) = o.newest_ms {
        gauge(enc, &families::OKTA_NEWEST_EVENT, ms as f64 / 1000.0)?;
        gauge(
            enc,
            &families::OKTA_LAG,
            (v.at_ms - ms).max(0) as f64 / 1000.0,
        )?;
    }
    if let Some(n) = o.rate_limit_remaining {
        gauge(enc, &families::OKTA_RATE_LIMIT_REMAINING, n as f64)?;
    }
    Ok(())
}
