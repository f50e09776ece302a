//! `/metrics`: the store's view as OpenMetrics 1.0 (prometheus-client) or, for
//! scrapers that do not ask for OpenMetrics and for `promtool check metrics`, as
//! Prometheus text 0.0.4.
//!
//! One collector per concern, each in its own file like node_exporter's; each encodes
//! families declared once in [`crate::families`], so names, help and units cannot drift
//! from `docs/metrics.md` or from the snapshot's keys. A new collector is one file plus
//! one line in [`COLLECTORS`].

mod audit;
mod cluster;
mod fido2;
mod okta;
mod process;
mod server_log;
mod state;
mod tail;
mod upstream;

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::families::{self, Family, Kind};
use crate::store::upstream::Histogram;
use crate::store::{Published, View};

pub use process::ProcessInfo;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes the families of one concern from a view.
type EncodeView = fn(&View, &mut DescriptorEncoder) -> fmt::Result;

/// Every view collector, in exposition order.
const COLLECTORS: &[EncodeView] = &[
    audit::encode,
    server_log::encode,
    tail::encode,
    state::encode,
    upstream::encode,
    fido2::encode,
    cluster::encode,
    okta::encode,
];

/// Label pairs of one sample, in the family's declared label order.
type Labels<'a> = Vec<(&'static str, &'a str)>;

static BYTES: Unit = Unit::Bytes;
static SECONDS: Unit = Unit::Seconds;

fn unit(family: &Family) -> Option<&'static Unit> {
    family.unit.map(|u| match u {
        families::Unit::Bytes => &BYTES,
        families::Unit::Seconds => &SECONDS,
    })
}

fn descriptor<'e>(
    enc: &'e mut DescriptorEncoder,
    family: &Family,
) -> Result<MetricEncoder<'e>, fmt::Error> {
    let kind = match family.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    enc.encode_descriptor(family.name, family.help, unit(family), kind)
}

/// Label names must be exactly those declared; a collector that strays is a bug the
/// tests catch, not a series Prometheus would silently accept.
fn check_labels(family: &Family, labels: &Labels) {
    debug_assert!(
        labels
            .iter()
            .map(|(n, _)| *n)
            .eq(family.labels.iter().copied()),
        "{}: labels {:?}, declared {:?}",
        family.name,
        labels,
        family.labels
    );
}

fn counters<'a>(
    enc: &mut DescriptorEncoder,
    family: &Family,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Counter);
    let mut encoder = descriptor(enc, family)?;
    for (labels, value) in samples {
        check_labels(family, &labels);
        ConstCounter::new(value).encode(encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<'a>(
    enc: &mut DescriptorEncoder,
    family: &Family,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Gauge);
    let mut encoder = descriptor(enc, family)?;
    for (labels, value) in samples {
        check_labels(family, &labels);
        ConstGauge::new(value).encode(encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One unlabelled counter (an empty label set would render as `name{}`).
fn counter(enc: &mut DescriptorEncoder, family: &Family, value: u64) -> fmt::Result {
    debug_assert!(family.kind == Kind::Counter && family.labels.is_empty());
    ConstCounter::new(value).encode(descriptor(enc, family)?)
}

/// One unlabelled counter measured in a fractional unit (CPU seconds).
fn counter_f64(enc: &mut DescriptorEncoder, family: &Family, value: f64) -> fmt::Result {
    debug_assert!(family.kind == Kind::Counter && family.labels.is_empty());
    ConstCounter::new(value).encode(descriptor(enc, family)?)
}

/// One unlabelled gauge.
fn gauge(enc: &mut DescriptorEncoder, family: &Family, value: f64) -> fmt::Result {
    debug_assert!(family.kind == Kind::Gauge && family.labels.is_empty());
    ConstGauge::new(value).encode(descriptor(enc, family)?)
}

fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    family: &Family,
    bounds: &[f64],
    samples: impl IntoIterator<Item = (Labels<'a>, &'a Histogram)>,
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Histogram);
    let mut encoder = descriptor(enc, family)?;
    for (labels, h) in samples {
        check_labels(family, &labels);
        // A family without labels is encoded as such: `name_sum 1`, not `name_sum{} 1`.
        let buckets = h.encoded(bounds);
        let encode = |m: &mut prometheus_client::encoding::MetricEncoder| {
            m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum, h.count, &buckets, None,
            )
        };
        if labels.is_empty() {
            encode(&mut encoder)?;
        } else {
            encode(&mut encoder.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Encodes one consistent [`View`] per scrape through every collector, then the
/// process's own figures.
#[derive(Debug)]
struct ViewCollector {
    published: Arc<Published>,
    process: Option<Arc<dyn ProcessInfo>>,
}

impl Collector for ViewCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let view = self.published.load();
        for collector in COLLECTORS {
            collector(&view, &mut enc)?;
        }
        process::encode(self.process.as_deref(), &mut enc)
    }
}

/// A registry holding the view collector; build once, encode per scrape.
pub fn registry(published: Arc<Published>, process: Option<Arc<dyn ProcessInfo>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ViewCollector { published, process }));
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
            "jans_exporter_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}} 1.0\n",
            env!("CARGO_PKG_VERSION"),
            env!("JANSX_BUILD_REVISION"),
            env!("JANSX_BUILD_RUSTC"),
        )));
        assert!(
            !om.contains("last_record_timestamp"),
            "no record seen, no timestamp"
        );
    }
}
