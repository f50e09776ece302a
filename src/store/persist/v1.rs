//! Version 1 of the snapshot, as the first release wrote it, translated into the
//! version-2 model. Frozen: the orders and names below are those of that release and
//! must not follow the code's enums as they change.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::model::{key, Fido2Section, HistogramRepr, Persisted, SketchSets};
use crate::event::FileCheckpoint;
use crate::families::{self, Family};
use crate::store::sketch::HllMirror;

/// `Endpoint` in version 1, by position.
const ENDPOINTS: [&str; 6] = [
    "discovery",
    "token",
    "stat",
    "health",
    "fido2_entries",
    "fido2_health",
];
/// `ErrorReason` in version 1, by position.
const REASONS: [&str; 7] = [
    "timeout", "connect", "tls", "http_4xx", "http_5xx", "decode", "auth",
];
/// Bucket bounds version 1 used.
const CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const CEREMONY_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// Version 1 counter names → families.
fn family_of(v1_name: &str) -> Option<&'static Family> {
    Some(match v1_name {
        "audit_events" => &families::AUDIT_EVENTS,
        "token_requests" => &families::TOKEN_REQUESTS,
        "records" => &families::RECORDS,
        "parse_errors" => &families::PARSE_ERRORS,
        "log_read_bytes" => &families::LOG_READ,
        "log_rotations" => &families::LOG_ROTATIONS,
        "log_truncations" => &families::LOG_TRUNCATIONS,
        "log_files_lost" => &families::LOG_FILES_LOST,
        "records_outside_retention" => &families::RECORDS_OUTSIDE_RETENTION,
        "state_load_failures" => &families::STATE_LOAD_FAILURES,
        "state_save_failures" => &families::STATE_SAVE_FAILURES,
        _ => return None,
    })
}

/// FIDO2 enum variant names as version 1 serialised them → label values.
fn fido2_label(variant: &str) -> Option<&'static str> {
    Some(match variant {
        "Registration" => "registration",
        "Authentication" => "authentication",
        "Fallback" => "fallback",
        "Attempt" => "attempt",
        "Success" => "success",
        "Failure" => "failure",
        "Abandoned" => "abandoned",
        "Platform" => "platform",
        "CrossPlatform" => "cross-platform",
        "SecurityKey" => "security-key",
        "Unknown" => "unknown",
        "Other" => "other",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct V1Periods {
    sketches: BTreeMap<String, V1Sketch>,
}

#[derive(Deserialize)]
struct V1Sketch {
    hll: HllMirror,
}

#[derive(Deserialize)]
struct V1ActiveUsers {
    precision: u8,
    days: V1Periods,
    weeks: V1Periods,
    months: V1Periods,
}

#[derive(Deserialize)]
struct V1Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Deserialize)]
struct V1Endpoint {
    errors: Vec<u64>,
    duration: V1Histogram,
    last_success_ms: Option<i64>,
}

#[derive(Deserialize)]
struct V1View {
    calls: Vec<V1Endpoint>,
    stat_mau: BTreeMap<String, u64>,
    stat_tokens: Vec<((u32, String, String), u64)>,
    tokens_issued: Vec<((String, String), u64)>,
    fido2_operations: Vec<((String, String, String), u64)>,
    fido2_durations: Vec<((String, String), V1Histogram)>,
    fido2_errors: Vec<((String, String), u64)>,
    fido2_fallbacks: BTreeMap<String, u64>,
    fido2_duplicates: u64,
}

#[derive(Deserialize)]
struct V1Upstream<'a> {
    #[serde(borrow)]
    view: &'a RawValue,
    high_water: Vec<((u32, String, String), u64)>,
    categories: Vec<String>,
    #[serde(default)]
    fallback_methods: Vec<String>,
    #[serde(borrow)]
    fido2_users: &'a RawValue,
    seen: Vec<(u64, i64)>,
    fido2_synced_ms: Option<i64>,
}

fn histogram(h: V1Histogram, le: &[f64]) -> Option<HistogramRepr> {
    (h.buckets.len() == le.len() + 1 && h.sum.is_finite()).then(|| HistogramRepr {
        le: le.to_vec(),
        buckets: h.buckets,
        sum: h.sum,
        count: h.count,
    })
}

fn sketches(users: V1ActiveUsers, set: &str, out: &mut SketchSets, bad: &mut usize) {
    if out.precision == 0 {
        out.precision = users.precision;
    }
    for (kind, periods) in [
        ("day", users.days),
        ("week", users.weeks),
        ("month", users.months),
    ] {
        for (period, sketch) in periods.sketches {
            let repr = sketch.hll.to_repr(out.precision);
            match (period.parse::<u32>(), repr) {
                (Ok(p), Ok(repr)) => {
                    out.sets
                        .entry(set.to_string())
                        .or_default()
                        .entry(kind.to_string())
                        .or_default()
                        .insert(p, repr);
                }
                (_, Err(e)) => {
                    tracing::warn!(set, kind, period, error = %e, "version 1 sketch refused");
                    *bad += 1;
                }
                _ => *bad += 1,
            }
        }
    }
}

fn upstream_view(v: V1View, p: &mut Persisted) {
    for (i, call) in v.calls.into_iter().enumerate() {
        let Some(endpoint) = ENDPOINTS.get(i) else {
            continue;
        };
        for (r, n) in call.errors.iter().enumerate() {
            if let (Some(reason), true) = (REASONS.get(r), *n > 0) {
                p.counters
                    .insert(key(&families::UPSTREAM_ERRORS, &[endpoint, reason]), *n);
            }
        }
        if call.duration.count > 0 {
            if let Some(h) = histogram(call.duration, &CALL_BUCKETS) {
                p.histograms
                    .insert(key(&families::UPSTREAM_REQUEST_DURATION, &[endpoint]), h);
            }
        }
        if let Some(ms) = call.last_success_ms {
            p.times
                .insert(key(&families::UPSTREAM_LAST_SUCCESS, &[endpoint]), ms);
        }
    }
    for (month, n) in v.stat_mau {
        p.gauges
            .insert(key(&families::UPSTREAM_MONTHLY_ACTIVE_USERS, &[&month]), n);
    }
    for ((month, grant, token), n) in v.stat_tokens {
        p.gauges.insert(
            key(
                &families::UPSTREAM_TOKENS,
                &[&month.to_string(), &grant, &token],
            ),
            n,
        );
    }
    for ((grant, token), n) in v.tokens_issued {
        p.counters
            .insert(key(&families::TOKENS_ISSUED, &[&grant, &token]), n);
    }
    for ((op, status, auth), n) in v.fido2_operations {
        if let (Some(o), Some(s), Some(a)) =
            (fido2_label(&op), fido2_label(&status), fido2_label(&auth))
        {
            p.counters
                .insert(key(&families::FIDO2_OPERATIONS, &[o, s, a]), n);
        }
    }
    for ((op, status), h) in v.fido2_durations {
        if let (Some(o), Some(s), Some(h)) = (
            fido2_label(&op),
            fido2_label(&status),
            histogram(h, &CEREMONY_BUCKETS),
        ) {
            p.histograms
                .insert(key(&families::FIDO2_OPERATION_DURATION, &[o, s]), h);
        }
    }
    for ((op, category), n) in v.fido2_errors {
        if let Some(o) = fido2_label(&op) {
            p.counters
                .insert(key(&families::FIDO2_ERRORS, &[o, &category]), n);
        }
    }
    for (method, n) in v.fido2_fallbacks {
        p.counters
            .insert(key(&families::FIDO2_FALLBACKS, &[&method]), n);
    }
    p.counters.insert(
        key(&families::FIDO2_DUPLICATE_ENTRIES, &[]),
        v.fido2_duplicates,
    );
}

/// Translates a version-1 body. Like version 2, a part that does not read costs itself.
pub fn decode(body: &[u8]) -> Result<Persisted, String> {
    let top: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|e| format!("version 1 body: {e}"))?;
    let mut p = Persisted::default();
    let get = |name: &str| top.get(name).map(|r| r.get());
    p.saved_at_ms = get("saved_at_ms")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(0);

    match get("counters").map(serde_json::from_str::<BTreeMap<String, u64>>) {
        Some(Ok(counters)) => {
            for (name, n) in counters {
                let (v1_name, labels) = name.split_once('{').unwrap_or((&name, ""));
                if let Some(family) = family_of(v1_name) {
                    let labels = if labels.is_empty() {
                        String::new()
                    } else {
                        format!("{{{labels}")
                    };
                    p.counters.insert(format!("{}{labels}", family.name), n);
                }
            }
        }
        Some(Err(_)) => p.dropped.push("counters"),
        None => {}
    }
    if let Some(Ok(Some(ms))) = get("last_record_ms").map(serde_json::from_str::<Option<i64>>) {
        p.times
            .insert(key(&families::LAST_RECORD_TIMESTAMP, &[]), ms);
    }
    match get("checkpoints").map(serde_json::from_str::<Vec<FileCheckpoint>>) {
        Some(Ok(cps)) => p.checkpoints = cps,
        Some(Err(_)) => p.dropped.push("checkpoints"),
        None => {}
    }
    let mut bad = 0;
    match get("active_users").map(serde_json::from_str::<V1ActiveUsers>) {
        Some(Ok(users)) => sketches(users, "active_users", &mut p.sketches, &mut bad),
        Some(Err(_)) => bad += 1,
        None => {}
    }
    if let Some(raw) = get("upstream").filter(|r| *r != "null") {
        match serde_json::from_str::<V1Upstream>(raw) {
            Ok(up) => {
                match serde_json::from_str::<V1View>(up.view.get()) {
                    Ok(view) => upstream_view(view, &mut p),
                    Err(_) => p.dropped.push("upstream"),
                }
                for ((month, grant, token), n) in up.high_water {
                    p.high_water.insert(
                        key(
                            &families::UPSTREAM_TOKENS,
                            &[&month.to_string(), &grant, &token],
                        ),
                        n,
                    );
                }
                p.fido2 = Fido2Section {
                    synced_ms: up.fido2_synced_ms,
                    seen: up.seen,
                    categories: up.categories,
                    fallback_methods: up.fallback_methods,
                };
                match serde_json::from_str::<V1ActiveUsers>(up.fido2_users.get()) {
                    Ok(users) => sketches(users, "fido2_users", &mut p.sketches, &mut bad),
                    Err(_) => bad += 1,
                }
            }
            Err(_) => p.dropped.push("upstream"),
        }
    }
    if bad > 0 {
        p.dropped.push("sketches");
    }
    Ok(p)
}
