//! What the audit records say: events, token requests, active users, and the
//! records the parser read, skipped or left out of the sketches.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, counters, gauge, gauges};
use crate::event::{Action, MalformedReason};
use crate::families;
use crate::source::formats;
use crate::store::sketch::PERIOD_KINDS;
use crate::store::{View, AUTHORIZATION_OUTCOMES, OUTCOMES, TOKEN_KINDS};

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let c = &v.counters;
    counters(
        enc,
        &families::AUDIT_EVENTS,
        Action::ALL.iter().flat_map(|a| {
            OUTCOMES.iter().enumerate().map(move |(ok, outcome)| {
                (
                    vec![("action", a.as_str()), ("outcome", *outcome)],
                    c.audit[a.index()][ok],
                )
            })
        }),
    )?;
    counters(
        enc,
        &families::TOKEN_REQUESTS,
        TOKEN_KINDS.iter().enumerate().flat_map(|(k, kind)| {
            OUTCOMES.iter().enumerate().map(move |(ok, outcome)| {
                (
                    vec![("kind", *kind), ("outcome", *outcome)],
                    c.token_requests[k][ok],
                )
            })
        }),
    )?;
    counters(
        enc,
        &families::AUTHORIZATION_REQUESTS,
        AUTHORIZATION_OUTCOMES
            .iter()
            .zip(c.authorization_requests)
            .map(|(o, n)| (vec![("outcome", *o)], n)),
    )?;
    gauges(
        enc,
        &families::ACTIVE_USERS,
        PERIOD_KINDS
            .iter()
            .zip(v.active_current)
            .map(|(p, n)| (vec![("period", *p)], n as f64)),
    )?;
    let months: Vec<(String, u64)> = v.monthly.iter().map(|(m, n)| (m.to_string(), *n)).collect();
    gauges(
        enc,
        &families::MONTHLY_ACTIVE_USERS,
        months
            .iter()
            .map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
    )?;
    counters(
        enc,
        &families::RECORDS,
        formats::ALL
            .iter()
            .enumerate()
            .map(|(i, f)| (vec![("format", f.name())], c.records[i])),
    )?;
    counters(
        enc,
        &families::PARSE_ERRORS,
        (0..=formats::COUNT).flat_map(|slot| {
            let format = if slot == 0 {
                None
            } else {
                Some((slot - 1) as u8)
            };
            MalformedReason::ALL.iter().map(move |r| {
                (
                    vec![("format", formats::label(format)), ("reason", r.as_str())],
                    c.parse_errors[slot][*r as usize],
                )
            })
        }),
    )?;
    counter(
        enc,
        &families::RECORDS_OUTSIDE_RETENTION,
        c.outside_retention,
    )?;
    counter(enc, &families::RECORDS_FUTURE, c.future)?;
    counter(enc, &families::RECORDS_LOSSY, c.lossy)?;
    if let Some(ms) = c.last_record_ms {
        gauge(enc, &families::LAST_RECORD_TIMESTAMP, ms as f64 / 1000.0)?;
    }
    Ok(())
}
