//! jans-fido2's metrics API (reference §5): raw ceremony entries over a time window,
//! and the service's health. Entries are re-asked with an overlap for late writes; the
//! store drops the ones it has already counted (by `id`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{Client, Endpoint, Poller};
pub use crate::event::{Authenticator, Fido2Entry, Operation, Status};
use crate::event::{Event, Fido2SkipReason, UserKey};

/// A ceremony longer than a day is a bad value, not a slow user: its duration is left
/// out of the histogram (the entry itself still counts).
const MAX_DURATION_MS: f64 = 86_400_000.0;

/// Free text to a label candidate: `[A-Z0-9_]`, at most 40 characters, or `None`.
pub fn normalise(text: &str) -> Option<String> {
    let mut out: String = text
        .trim()
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    (!out.is_empty()).then_some(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    id: Option<String>,
    timestamp: Option<Value>,
    user_id: Option<String>,
    username: Option<String>,
    operation_type: Option<String>,
    status: Option<String>,
    duration_ms: Option<f64>,
    authenticator_type: Option<String>,
    error_category: Option<String>,
    fallback_method: Option<String>,
}

/// The forms the server has written `timestamp` in (reference §5): epoch ms (a `Date`),
/// an ISO local date-time taken as UTC, or Jackson's `[y, M, d, H, m, s, nanos]` array
/// of a `LocalDateTime`.
fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Array(parts) => {
            let n: Vec<i64> = parts.iter().map(Value::as_i64).collect::<Option<_>>()?;
            let get = |i: usize| n.get(i).copied().unwrap_or(0);
            if n.len() < 3 {
                return None;
            }
            let date = chrono::NaiveDate::from_ymd_opt(
                i32::try_from(get(0)).ok()?,
                u32::try_from(get(1)).ok()?,
                u32::try_from(get(2)).ok()?,
            )?;
            let time = chrono::NaiveTime::from_hms_nano_opt(
                u32::try_from(get(3)).ok()?,
                u32::try_from(get(4)).ok()?,
                u32::try_from(get(5)).ok()?,
                u32::try_from(get(6)).ok()?,
            )?;
            Some(date.and_time(time).and_utc().timestamp_millis())
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc().timestamp_millis())
            }),
        _ => None,
    }
}

/// Parses `/entries`; entries that cannot be read are skipped.
pub fn parse_entries(body: &Value) -> Option<Vec<Fido2Entry>> {
    parse_entries_counted(body).map(|(entries, _)| entries)
}

/// Parses `/entries`: the entries, and why each unreadable one was skipped.
pub fn parse_entries_counted(body: &Value) -> Option<(Vec<Fido2Entry>, Vec<Fido2SkipReason>)> {
    let items = body.as_array()?;
    let mut skipped = Vec::new();
    let entries = items
        .iter()
        .filter_map(|v| {
            let Ok(raw) = serde_json::from_value::<RawEntry>(v.clone()) else {
                skipped.push(Fido2SkipReason::Malformed);
                return None;
            };
            let Some(ts) = raw.timestamp.as_ref().and_then(timestamp_ms) else {
                skipped.push(Fido2SkipReason::BadTimestamp);
                return None;
            };
            let id = match &raw.id {
                Some(id) => xxhash_rust::xxh3::xxh3_64(id.as_bytes()),
                None => xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes()),
            };
            let user = raw
                .username
                .as_deref()
                .or(raw.user_id.as_deref())
                .filter(|u| !u.is_empty())
                .map(UserKey::of);
            Some(Fido2Entry {
                id,
                timestamp_ms: ts,
                operation: raw
                    .operation_type
                    .as_deref()
                    .map_or(Operation::Other, Operation::parse),
                status: raw.status.as_deref().map_or(Status::Other, Status::parse),
                authenticator: raw
                    .authenticator_type
                    .as_deref()
                    .map_or(Authenticator::Unknown, Authenticator::parse),
                duration_ms: raw
                    .duration_ms
                    .filter(|d| (0.0..=MAX_DURATION_MS).contains(d)),
                error_category: raw.error_category.as_deref().and_then(normalise),
                fallback_method: raw.fallback_method.as_deref().and_then(normalise),
                user,
            })
        })
        .collect();
    Some((entries, skipped))
}

/// ISO-8601 without offset, which the API reads as UTC.
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

pub struct Fido2Poller {
    pub client: Arc<Client>,
    pub interval: Duration,
    pub overlap: Duration,
    /// Start of the next window (epoch ms).
    pub since_ms: i64,
}

const ENTRIES_PATH: &str = "/jans-fido2/restv1/metrics/entries";

impl Poller for Fido2Poller {
    fn poll<'a>(
        &'a mut self,
        events: &'a mut Vec<Event>,
        leading: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let health_url = self.client.url("/jans-fido2/restv1/metrics/health");
            let up = self
                .client
                .get_json::<Value>(Endpoint::Fido2Health, &health_url, &[], events)
                .await
                .is_ok_and(|v| {
                    v.get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("UP"))
                });
            if !leading {
                // The entries are the cluster's: another sidecar reads them. The
                // service's health is this sidecar's to report all the same.
                events.push(Event::Fido2Health { up });
                return up;
            }
            let until_ms = chrono::Utc::now().timestamp_millis();
            let url = self.client.url(ENTRIES_PATH);
            let query = [
                ("startTime", iso(self.since_ms)),
                ("endTime", iso(until_ms)),
            ];
            // Up means the entries can be read: `/health` says UP even when metrics are
            // disabled and `/entries` answers 403.
            let body: Value = match self
                .client
                .get_json(Endpoint::Fido2Entries, &url, &query, events)
                .await
            {
                Ok(body) => body,
                Err(_) => {
                    events.push(Event::Fido2Health { up: false });
                    return false;
                }
            };
            let Some((entries, skipped)) = parse_entries_counted(&body) else {
                if let Some(Event::UpstreamCall(call)) = events.last_mut() {
                    call.result = Err(super::ErrorReason::Decode);
                }
                events.push(Event::Fido2Health { up: false });
                return false;
            };
            events.push(Event::Fido2Health { up });
            events.extend(entries.into_iter().map(|e| Event::Fido2(Box::new(e))));
            events.extend(
                skipped
                    .into_iter()
                    .map(|reason| Event::Fido2Skipped { reason }),
            );
            events.push(Event::Fido2Synced { until_ms });
            // Ask again from a little before: entries can be written after their time.
            self.since_ms = until_ms - self.overlap.as_millis() as i64;
            true
        })
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn name(&self) -> &'static str {
        "fido2"
    }
    fn target(&self) -> String {
        super::shown_url(&self.client.url(ENTRIES_PATH))
    }
    fn cluster_wide(&self) -> bool {
        true
    }
    fn take_over(&mut self, term: &super::leader::Term) {
        if let Some(since) = term.fido2_since_ms {
            self.since_ms = self.since_ms.max(since);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timestamp_form_is_read_and_the_rest_is_counted() {
        let body = serde_json::json!([
            {"id": "a", "timestamp": 1_795_462_835_230i64},
            {"id": "b", "timestamp": "2026-11-23T19:40:35.230"},
            {"id": "c", "timestamp": "2026-11-23T19:40:35.230Z"},
            {"id": "d", "timestamp": [2026, 11, 23, 19, 40, 35, 230_000_000]},
            {"id": "e", "timestamp": [2026, 11, 23, 19, 40, 35]},
            {"id": "f", "timestamp": [2026, 13, 1]},
            {"id": "g"},
            {"id": "h", "timestamp": {"epochSecond": 1}},
            "not an entry",
            {"id": 5, "timestamp": 1},
        ]);
        let (entries, skipped) = parse_entries_counted(&body).unwrap();
        let times: Vec<i64> = entries.iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(
            times,
            vec![
                1_795_462_835_230,
                1_795_462_835_230,
                1_795_462_835_230,
                1_795_462_835_230,
                1_795_462_835_000
            ]
        );
        assert_eq!(
            skipped,
            vec![
                Fido2SkipReason::BadTimestamp,
                Fido2SkipReason::BadTimestamp,
                Fido2SkipReason::BadTimestamp,
                Fido2SkipReason::Malformed,
                Fido2SkipReason::Malformed,
            ]
        );
    }

    #[test]
    fn reads_the_upstream_sample_with_both_spellings_and_no_free_text_labels() {
        let path = format!(
            "{}/../shared/janssen/samples/fido2-entries.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let e = parse_entries(&body).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].operation, e[0].status, e[0].authenticator),
            (
                Operation::Registration,
                Status::Success,
                Authenticator::CrossPlatform
            )
        );
        assert_eq!(e[0].duration_ms, Some(442.0));
        assert_eq!(e[1].error_category.as_deref(), Some("USER_CANCELLED"));
        assert_eq!(e[2].fallback_method.as_deref(), Some("PASSWORD"));
        assert_eq!(e[0].user, Some(UserKey::of("admin")));
        let model = serde_json::json!([{"id":"x","timestamp":"2026-01-01T12:00:00","authenticatorType":"SECURITY_KEY","operationType":"AUTHENTICATION","status":"SUCCESS"}]);
        let m = parse_entries(&model).unwrap();
        assert_eq!(m[0].authenticator, Authenticator::SecurityKey);
        assert_eq!(m[0].timestamp_ms, 1_767_268_800_000);
    }

    #[test]
    fn free_text_is_normalised_to_a_bounded_label_shape() {
        assert_eq!(normalise("user cancelled!"), Some("USER_CANCELLED".into()));
        assert_eq!(normalise("  "), None);
        assert_eq!(normalise(&"x".repeat(500)).unwrap().len(), 40);
        assert_eq!(
            normalise("<script>alert(1)</script>"),
            Some("SCRIPT_ALERT_1_SCRIPT".into())
        );
    }

    #[test]
    fn windows_are_iso_utc_without_offset() {
        assert_eq!(iso(1_767_268_800_123), "2026-01-01T12:00:00");
    }
}
