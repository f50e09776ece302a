//! `/metrics`: the store's view as OpenMetrics 1.0 (prometheus-client) or, for
//! scrapers that do not ask for OpenMetrics and for `promtool check metrics`, as
//! Prometheus text 0.0.4. Every metric is listed in `docs/metrics.md`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::event::{Action, MalformedReason};
use crate::source::formats;
use crate::store::upstream::{
    EndpointStats, Histogram, UpstreamView, CALL_BUCKETS, CEREMONY_BUCKETS,
};
use crate::store::{Published, View, OUTCOMES, TOKEN_KINDS};
use crate::upstream::{Endpoint, ErrorReason};

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Figures about the process itself, read at scrape time.
pub trait ProcessInfo: Send + Sync + std::fmt::Debug + 'static {
    /// (name without prefix, help, unit, value, is_counter)
    fn sample(&self) -> Vec<(&'static str, &'static str, Option<Unit>, f64, bool)>;
}

/// Encodes one consistent [`View`] per scrape.
#[derive(Debug)]
pub struct ViewCollector {
    published: Arc<Published>,
    version: &'static str,
    process: Option<Arc<dyn ProcessInfo>>,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One unlabelled counter (an empty label set would render as `name{}`).
fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> std::fmt::Result {
    let family = enc.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    ConstCounter::new(value).encode(family)
}

/// One unlabelled gauge.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    let family = enc.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    ConstGauge::new(value).encode(family)
}

fn gauge_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl ViewCollector {
    pub fn new(published: Arc<Published>, process: Option<Arc<dyn ProcessInfo>>) -> ViewCollector {
        ViewCollector {
            published,
            version: env!("CARGO_PKG_VERSION"),
            process,
        }
    }

    fn encode_view(&self, v: &View, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let c = &v.counters;
        counter_family(
            enc,
            "jans_audit_events",
            "Audit log records by action and outcome; action is a known upstream action or other",
            None,
            Action::ALL.iter().flat_map(|a| {
                (0..2).map(move |ok| {
                    (
                        vec![("action", a.as_str()), ("outcome", OUTCOMES[ok])],
                        c.audit[a.index()][ok],
                    )
                })
            }),
        )?;
        counter_family(
            enc,
            "jans_token_requests",
            "TOKEN_REQUEST audit records; kind is user when the record names a user, machine when not (client credentials)",
            None,
            (0..2).flat_map(|k| (0..2).map(move |ok| (vec![("kind", TOKEN_KINDS[k]), ("outcome", OUTCOMES[ok])], c.token_requests[k][ok]))),
        )?;
        gauge_family(
            enc,
            "jans_active_users",
            "Distinct active users in the current UTC day, ISO week and calendar month (HyperLogLog++ estimate)",
            None,
            ["day", "week", "month"].iter().zip(v.active_current).map(|(p, n)| (vec![("period", *p)], n as f64)),
        )?;
        let months: Vec<(String, u64)> =
            v.monthly.iter().map(|(m, n)| (m.to_string(), *n)).collect();
        gauge_family(
            enc,
            "jans_monthly_active_users",
            "Distinct active users per retained UTC calendar month YYYYMM (HyperLogLog++ estimate)",
            None,
            months
                .iter()
                .map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
        )?;

        gauge_family(
            enc,
            "jans_exporter_build_info",
            "Build of the running exporter; always 1",
            None,
            [(vec![("version", self.version)], 1.0)],
        )?;
        counter_family(
            enc,
            "jans_exporter_records",
            "Well-formed audit records read, by log format",
            None,
            formats::ALL
                .iter()
                .enumerate()
                .map(|(i, f)| (vec![("format", f.name())], c.records[i])),
        )?;
        counter_family(
            enc,
            "jans_exporter_parse_errors",
            "Malformed audit records and stray lines skipped, by log format (unknown before detection) and reason",
            None,
            (0..=formats::COUNT).flat_map(|slot| {
                let format = if slot == 0 { None } else { Some((slot - 1) as u8) };
                MalformedReason::ALL.iter().map(move |r| {
                    (vec![("format", formats::label(format)), ("reason", r.as_str())], c.parse_errors[slot][*r as usize])
                })
            }),
        )?;
        counter(
            enc,
            "jans_exporter_log_read",
            "Bytes read from log files",
            Some(&Unit::Bytes),
            c.bytes_read,
        )?;
        counter(
            enc,
            "jans_exporter_log_rotations",
            "Log files replaced at a followed path (rename or delete and re-create)",
            None,
            c.rotations,
        )?;
        counter(
            enc,
            "jans_exporter_log_truncations",
            "Followed log files truncated in place (copytruncate) and read again from the start",
            None,
            c.truncations,
        )?;
        counter(enc, "jans_exporter_log_files_lost", "Checkpointed log files not found again after a restart (rotated away and deleted while down)", None, c.files_lost)?;
        counter(
            enc,
            "jans_exporter_records_outside_retention",
            "Active-user records older than every retained month, left out of the sketches",
            None,
            c.outside_retention,
        )?;
        gauge(
            enc,
            "jans_exporter_log_files",
            "Log files followed now",
            None,
            v.tail.files as f64,
        )?;
        gauge(
            enc,
            "jans_exporter_log_lag",
            "Bytes written to followed log files and not yet read",
            Some(&Unit::Bytes),
            v.tail.lag_bytes as f64,
        )?;
        counter(
            enc,
            "jans_exporter_state_load_failures",
            "Snapshots that could not be loaded at start (moved aside; the exporter started fresh)",
            None,
            c.state_load_failures,
        )?;
        counter(
            enc,
            "jans_exporter_state_save_failures",
            "Failed snapshot saves (read-only or full disk); ingestion goes on",
            None,
            c.state_save_failures,
        )?;
        gauge(
            enc,
            "jans_exporter_state",
            "Size of the last snapshot written",
            Some(&Unit::Bytes),
            v.state.bytes as f64,
        )?;
        if let Some(ms) = v.state.last_save_ms {
            gauge(
                enc,
                "jans_exporter_state_last_save_timestamp",
                "When the last snapshot was written, since the epoch",
                Some(&Unit::Seconds),
                ms as f64 / 1000.0,
            )?;
        }
        if let Some(ms) = c.last_record_ms {
            gauge(
                enc,
                "jans_exporter_last_record_timestamp",
                "Newest audit record time seen (the record's own timestamp), in seconds since the epoch",
                Some(&Unit::Seconds),
                ms as f64 / 1000.0,
            )?;
        }
        Ok(())
    }
}

fn histogram_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    bounds: &[f64],
    samples: impl IntoIterator<Item = (Labels<'a>, &'a Histogram)>,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Histogram,
    )?;
    for (labels, h) in samples {
        family
            .encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum,
                h.count,
                &h.encoded(bounds),
                None,
            )?;
    }
    Ok(())
}

fn encode_upstream(u: &UpstreamView, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let called: Vec<(Endpoint, &EndpointStats)> = Endpoint::ALL
        .iter()
        .zip(&u.calls)
        .filter(|(_, s)| s.duration.count > 0)
        .map(|(e, s)| (*e, s))
        .collect();
    if !called.is_empty() {
        gauge_family(
            enc,
            "jans_upstream_up",
            "Whether the last request to the upstream endpoint succeeded",
            None,
            called.iter().filter_map(|(e, s)| {
                s.up.map(|up| (vec![("endpoint", e.as_str())], if up { 1.0 } else { 0.0 }))
            }),
        )?;
        histogram_family(
            enc,
            "jans_upstream_request_duration",
            "Time of requests to the upstream API, by endpoint",
            Some(&Unit::Seconds),
            &CALL_BUCKETS,
            called
                .iter()
                .map(|(e, s)| (vec![("endpoint", e.as_str())], &s.duration)),
        )?;
        counter_family(
            enc,
            "jans_upstream_errors",
            "Failed requests to the upstream API, by endpoint and reason",
            None,
            called.iter().flat_map(|(e, s)| {
                ErrorReason::ALL.iter().map(move |r| {
                    (
                        vec![("endpoint", e.as_str()), ("reason", r.as_str())],
                        s.errors[*r as usize],
                    )
                })
            }),
        )?;
        gauge_family(
            enc,
            "jans_upstream_last_success_timestamp",
            "When a request to the upstream endpoint last succeeded, since the epoch",
            Some(&Unit::Seconds),
            called.iter().filter_map(|(e, s)| {
                s.last_success_ms
                    .map(|ms| (vec![("endpoint", e.as_str())], ms as f64 / 1000.0))
            }),
        )?;
    }
    if !u.stat_mau.is_empty() {
        let months: Vec<(String, u64)> = u
            .stat_mau
            .iter()
            .map(|(m, n)| (m.to_string(), *n))
            .collect();
        gauge_family(
            enc,
            "jans_upstream_monthly_active_users",
            "Monthly active users as the auth server's stat endpoint reports them (cached upstream for up to 75 minutes)",
            None,
            months.iter().map(|(m, n)| (vec![("month", m.as_str())], *n as f64)),
        )?;
    }
    if !u.stat_tokens.is_empty() {
        let rows: Vec<(String, &str, &str, u64)> = u
            .stat_tokens
            .iter()
            .map(|((m, g, t), n)| (m.to_string(), g.as_str(), t.as_str(), *n))
            .collect();
        gauge_family(
            enc,
            "jans_upstream_tokens",
            "Tokens issued in the month so far, by grant and token type, as the stat endpoint reports them",
            None,
            rows.iter().map(|(m, g, t, n)| (vec![("month", m.as_str()), ("grant_type", *g), ("token_type", *t)], *n as f64)),
        )?;
    }
    if !u.tokens_issued.is_empty() {
        counter_family(
            enc,
            "jans_tokens_issued",
            "Tokens issued by grant and token type, from increases of the stat endpoint's monthly counts",
            None,
            u.tokens_issued.iter().map(|((g, t), n)| (vec![("grant_type", g.as_str()), ("token_type", t.as_str())], *n)),
        )?;
    }
    if let Some(h) = &u.health {
        let up = h.up() && !u.health_failed;
        gauge(
            enc,
            "jans_auth_server_up",
            "1 when the health check answers status running and db_status online",
            None,
            if up { 1.0 } else { 0.0 },
        )?;
        gauge(
            enc,
            "jans_auth_server_db_online",
            "1 when the last health check answered db_status online",
            None,
            if h.db_online { 1.0 } else { 0.0 },
        )?;
        gauge(
            enc,
            "jans_auth_server_starting",
            "1 when the last health check answered status starting",
            None,
            if h.starting { 1.0 } else { 0.0 },
        )?;
    } else if u.health_failed {
        gauge(
            enc,
            "jans_auth_server_up",
            "1 when the health check answers status running and db_status online",
            None,
            0.0,
        )?;
    }
    if let Some(up) = u.fido2_up {
        gauge(
            enc,
            "jans_fido2_up",
            "1 when the FIDO2 metrics health endpoint answers UP",
            None,
            if up { 1.0 } else { 0.0 },
        )?;
    }
    if !u.fido2_operations.is_empty() {
        counter_family(
            enc,
            "jans_fido2_operations",
            "FIDO2 / passkey ceremonies by operation, status and authenticator type",
            None,
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
        histogram_family(
            enc,
            "jans_fido2_operation_duration",
            "Duration of FIDO2 ceremonies by operation and status",
            Some(&Unit::Seconds),
            &CEREMONY_BUCKETS,
            u.fido2_durations
                .iter()
                .map(|((o, s), h)| (vec![("operation", o.as_str()), ("status", s.as_str())], h)),
        )?;
    }
    if !u.fido2_errors.is_empty() {
        counter_family(
            enc,
            "jans_fido2_errors",
            "Failed FIDO2 ceremonies by operation and error category (normalised; at most 20 categories, the rest other)",
            None,
            u.fido2_errors.iter().map(|((o, c), n)| (vec![("operation", o.as_str()), ("category", c.as_str())], *n)),
        )?;
    }
    if !u.fido2_fallbacks.is_empty() {
        counter_family(
            enc,
            "jans_fido2_fallbacks",
            "Fallbacks from passkeys to another method (normalised; at most 10 methods, the rest other)",
            None,
            u.fido2_fallbacks.iter().map(|(m, n)| (vec![("method", m.as_str())], *n)),
        )?;
    }
    if u.fido2_up.is_some() {
        gauge_family(
            enc,
            "jans_fido2_active_users",
            "Distinct users with a successful passkey registration or authentication in the current UTC day, ISO week and month",
            None,
            ["day", "week", "month"].iter().zip(u.fido2_active).map(|(p, n)| (vec![("period", *p)], n as f64)),
        )?;
        counter(
            enc,
            "jans_exporter_fido2_duplicate_entries",
            "FIDO2 entries received again (window overlap) and not counted twice",
            None,
            u.fido2_duplicates,
        )?;
    }
    Ok(())
}

impl Collector for ViewCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let view = self.published.load();
        self.encode_view(&view, &mut enc)?;
        encode_upstream(&view.upstream, &mut enc)?;
        if let Some(process) = &self.process {
            for (name, help, unit, value, is_counter) in process.sample() {
                let name = format!("jans_exporter_{name}");
                if is_counter {
                    let family = enc.encode_descriptor(
                        &name,
                        help,
                        unit.as_ref(),
                        prometheus_client::metrics::MetricType::Counter,
                    )?;
                    ConstCounter::new(value).encode(family)?;
                } else {
                    gauge(&mut enc, &name, help, unit.as_ref(), value)?;
                }
            }
        }
        Ok(())
    }
}

/// A registry holding the view collector; build once, encode per scrape.
pub fn registry(published: Arc<Published>, process: Option<Arc<dyn ProcessInfo>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ViewCollector::new(published, process)));
    registry
}

/// OpenMetrics 1.0 text, ending in `# EOF`.
pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4: counter families are named
/// after their `_total` samples, `# UNIT` and `# EOF` are dropped.
pub fn openmetrics_to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_string(), "untyped"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_string(), other),
            };
            if let Some((_, help)) = pending_help.take() {
                out.push_str(&format!("# HELP {name} {help}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_counters_units_and_eof() {
        let om = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\na_bytes_total 5\n# HELP g G.\n# TYPE g gauge\ng{x=\"1\"} 2.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\na_bytes_total 5\n# HELP g G.\n# TYPE g gauge\ng{x=\"1\"} 2.5\n"
        );
    }

    #[test]
    fn an_empty_store_exposes_every_family_with_zeroes() {
        let published = Arc::new(Published::default());
        let om = encode_openmetrics(&registry(published, None));
        assert!(om.ends_with("# EOF\n"));
        assert!(om
            .contains("jans_audit_events_total{action=\"TOKEN_REQUEST\",outcome=\"failure\"} 0\n"));
        assert!(om.contains("jans_token_requests_total{kind=\"machine\",outcome=\"success\"} 0\n"));
        assert!(om.contains("jans_active_users{period=\"month\"} 0.0\n"));
        assert!(om.contains("jans_exporter_log_read_bytes_total 0\n"));
        assert!(om.contains(&format!(
            "jans_exporter_build_info{{version=\"{}\"}} 1.0\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(
            !om.contains("last_record_timestamp"),
            "no record seen, no timestamp"
        );
    }
}
