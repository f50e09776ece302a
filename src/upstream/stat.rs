//! `/jans-auth/restv1/internal/stat` (reference §2): tokens by grant type and MAU as the
//! auth server counts them, for the previous and current month.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use serde_json::Value;

use super::{Client, Endpoint, Poller};
use crate::event::Event;
pub use crate::event::{grant_label, token_label, MonthStat, StatReport, GRANT_TYPES, TOKEN_TYPES};

fn month_of(v: &Value) -> Option<u32> {
    let m = match v {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
        _ => return None,
    };
    (190_001..=999_912)
        .contains(&m)
        .then_some(m)
        .filter(|m| (1..=12).contains(&(m % 100)))
}

fn item(month_key: Option<&str>, v: &Value) -> Option<MonthStat> {
    let month = v
        .get("month")
        .and_then(month_of)
        .or_else(|| month_key.and_then(|k| month_of(&Value::String(k.into()))))?;
    // The docs misspell it once; accept both.
    let mau = v
        .get("monthly_active_users")
        .or_else(|| v.get("montly_active_users"))
        .and_then(Value::as_u64);
    let mut tokens = std::collections::BTreeMap::new();
    if let Some(grants) = v
        .get("token_count_per_granttype")
        .and_then(Value::as_object)
    {
        for (grant, counts) in grants {
            let Some(counts) = counts.as_object() else {
                continue;
            };
            for (token, n) in counts {
                if let Some(n) = n.as_u64() {
                    // Unknown names share the `other` label: their sum must not wrap.
                    let total = tokens
                        .entry((grant_label(grant), token_label(token)))
                        .or_default();
                    *total = u64::saturating_add(*total, n);
                }
            }
        }
    }
    Some(MonthStat { month, mau, tokens })
}

/// Reads either shape: `{"response":[item…]}` (the code's default) or
/// `{"response":{"yyyyMM": item…}}` (jsonmonth, and the docs' swapped example).
pub fn parse(body: &Value) -> Option<StatReport> {
    let months = match body.get("response")? {
        Value::Array(items) => items.iter().filter_map(|v| item(None, v)).collect(),
        Value::Object(by_month) => by_month
            .iter()
            .filter_map(|(k, v)| item(Some(k), v))
            .collect(),
        _ => return None,
    };
    Some(StatReport { months })
}

/// The previous and the current UTC month, `YYYYMM`.
pub fn months_to_poll(now: chrono::DateTime<Utc>) -> (u32, u32) {
    let current = now.year() as u32 * 100 + now.month();
    let previous = if now.month() == 1 {
        (now.year() as u32 - 1) * 100 + 12
    } else {
        current - 1
    };
    (previous, current)
}

pub struct StatPoller {
    pub client: Arc<Client>,
    pub interval: Duration,
}

const STAT_PATH: &str = "/jans-auth/restv1/internal/stat";

impl Poller for StatPoller {
    fn poll<'a>(
        &'a mut self,
        events: &'a mut Vec<Event>,
        leading: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            // Another sidecar polls the cluster's counts: nothing to ask, nothing wrong.
            if !leading {
                return true;
            }
            let (previous, current) = months_to_poll(Utc::now());
            let url = self.client.url(STAT_PATH);
            let query = [("month", format!("{previous} {current}"))];
            let body: Value = match self
                .client
                .get_json_authorized(Endpoint::Stat, &url, &query, events)
                .await
            {
                Ok(body) => body,
                Err(_) => return false,
            };
            match parse(&body) {
                Some(report) => {
                    events.push(Event::Stat(report));
                    true
                }
                None => {
                    // Parsed as JSON but not the stat shape: count it as a decode error.
                    if let Some(Event::UpstreamCall(call)) = events.last_mut() {
                        call.result = Err(super::ErrorReason::Decode);
                    }
                    false
                }
            }
        })
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn name(&self) -> &'static str {
        "stat"
    }
    fn target(&self) -> String {
        super::shown_url(&self.client.url(STAT_PATH))
    }
    fn cluster_wide(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_names_summed_into_other_saturate_instead_of_wrapping() {
        // Found by the upstream_json fuzz target.
        let body: Value = serde_json::from_str(&format!(
            r#"{{"response":[{{"month":"202611","monthly_active_users":1,"token_count_per_granttype":{{"x":{{"a":{m},"b":{m}}}}}}}]}}"#,
            m = u64::MAX
        ))
        .unwrap();
        let report = parse(&body).unwrap();
        assert_eq!(
            report.months[0].tokens.values().copied().max(),
            Some(u64::MAX)
        );
    }

    use super::*;

    fn sample(name: &str) -> Value {
        let path = format!(
            "{}/../shared/janssen/samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn both_shapes_of_the_upstream_samples_read_the_same() {
        let default = parse(&sample("stat-default.json")).unwrap();
        let jsonmonth = parse(&sample("stat-jsonmonth.json")).unwrap();
        assert_eq!(default, jsonmonth);
        assert_eq!(default.months.len(), 2);
        let nov = &default.months[1];
        assert_eq!((nov.month, nov.mau), (202611, Some(7)));
        assert_eq!(nov.tokens[&("authorization_code", "access_token")], 9);
        assert_eq!(
            nov.tokens[&("urn:ietf:params:oauth:grant-type:uma-ticket", "uma_token")],
            2
        );
    }

    #[test]
    fn the_docs_example_with_its_misspelling_and_no_month_key_is_read() {
        let docs = parse(&sample("stat-docs-example.json")).unwrap();
        let jan = docs.months.iter().find(|m| m.month == 202101).unwrap();
        assert_eq!(jan.mau, Some(1_939_497_078));
        assert!(
            docs.months
                .iter()
                .any(|m| m.month == 202012 && m.mau.is_some()),
            "montly_active_users"
        );
        assert_eq!(jan.tokens[&("implicit", "id_token")], 1_196_937_417);
    }

    #[test]
    fn unknown_grant_and_token_types_are_summed_under_other() {
        let body = serde_json::json!({"response":[{"month":"202611","monthly_active_users":1,
            "token_count_per_granttype":{"urn:x:custom":{"access_token":2,"weird_token":3},"urn:y":{"access_token":4}}}]});
        let r = parse(&body).unwrap();
        assert_eq!(r.months[0].tokens[&("other", "access_token")], 6);
        assert_eq!(r.months[0].tokens[&("other", "other")], 3);
        assert!(parse(&serde_json::json!({"response": 5})).is_none());
        assert!(parse(&serde_json::json!({"nope": []})).is_none());
        let bad_months =
            serde_json::json!({"response":[{"month":"2026"},{"month":"202613"},{"month":"x"}]});
        assert!(parse(&bad_months).unwrap().months.is_empty());
    }

    #[test]
    fn polls_the_previous_and_current_month_across_a_year_boundary() {
        let jan = chrono::DateTime::parse_from_rfc3339("2027-01-15T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(months_to_poll(jan), (202612, 202701));
    }
}
