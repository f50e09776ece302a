//! The auth server's HTTP API as the pollers saw it: per-endpoint health of the
//! calls, the stat endpoint's figures, tokens issued and the health check.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{bool_value, counters, gauge, gauges, histograms};
use crate::event::{Endpoint, ErrorReason};
use crate::families;
use crate::store::upstream::{EndpointStats, CALL_BUCKETS};
use crate::store::View;

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let u = &v.upstream;
    // Only endpoints actually called: a sidecar without FIDO2 shows no FIDO2 series.
    let called: Vec<(Endpoint, &EndpointStats)> = Endpoint::ALL
        .iter()
        .zip(&u.calls)
        .filter(|(_, s)| s.duration.count > 0)
        .map(|(e, s)| (*e, s))
        .collect();
    if !called.is_empty() {
        gauges(
            enc,
            &families::UPSTREAM_UP,
            called.iter().filter_map(|(e, s)| {
                s.up.map(|up| (vec![("endpoint", e.as_str())], bool_value(up)))
            }),
        )?;
        histograms(
            enc,
            &families::UPSTREAM_REQUEST_DURATION,
            &CALL_BUCKETS,
            called
                .iter()
                .map(|(e, s)| (vec![("endpoint", e.as_str())], &s.duration)),
        )?;
        counters(
            enc,
            &families::UPSTREAM_ERRORS,
            called.iter().flat_map(|(e, s)| {
                ErrorReason::ALL.iter().map(move |r| {
                    (
                        vec![("endpoint", e.as_str()), ("reason", r.as_str())],
                        s.errors[*r as usize],
                    )
                })
            }),
        )?;
        gauges(
            enc,
            &families::UPSTREAM_LAST_SUCCESS,
            called.iter().filter_map(|(e, s)| {
                s.last_success_ms
                    .map(|ms| (vec![("endpoint", e.as_str())], ms as f64 / 1000.0))
            }),
        )?;
    }
    if let Some(leading) = u.poller_leader {
        gauge(enc, &families::UPSTREAM_POLLER_LEADER, bool_value(leading))?;
    }
    if !u.stat_mau.is_empty() {
        let months: Vec<(String, u64)> = u
            .stat_mau
            .iter()
            .map(|(m, n)| (m.to_string(), *n))
            .collect();
        gauges(
            enc,
            &families::UPSTREAM_MONTHLY_ACTIVE_USERS,
            months
                .iter()
                .map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
        )?;
    }
    if !u.stat_tokens.is_empty() {
        let rows: Vec<(String, &str, &str, u64)> = u
            .stat_tokens
            .iter()
            .map(|((m, g, t), n)| (m.to_string(), g.as_str(), t.as_str(), *n))
            .collect();
        gauges(
            enc,
            &families::UPSTREAM_TOKENS,
            rows.iter().map(|(m, g, t, n)| {
                (
                    vec![
                        ("month", m.as_str()),
                        ("grant_type", *g),
                        ("token_type", *t),
                    ],
                    *n as f64,
                )
            }),
        )?;
    }
    if !u.tokens_issued.is_empty() {
        counters(
            enc,
            &families::TOKENS_ISSUED,
            u.tokens_issued.iter().map(|((g, t), n)| {
                (
                    vec![("grant_type", g.as_str()), ("token_type", t.as_str())],
                    *n,
                )
            }),
        )?;
    }
    if let Some(h) = &u.health {
        gauge(
            enc,
            &families::AUTH_SERVER_UP,
            bool_value(h.up() && !u.health_failed),
        )?;
        gauge(
            enc,
            &families::AUTH_SERVER_DB_ONLINE,
            bool_value(h.db_online),
        )?;
        gauge(enc, &families::AUTH_SERVER_STARTING, bool_value(h.starting))?;
    } else if u.health_failed {
        gauge(enc, &families::AUTH_SERVER_UP, 0.0)?;
    }
    Ok(())
}
