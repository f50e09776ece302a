//! The Janssen-compatible stat endpoint's request rules and response shapes
//! (reference §2), answered from the sidecar's own fresh figures: monthly active users
//! from its own sketches, token counts from the upstream-derived ones.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::store::View;

/// Months one request may ask for (upstream has no limit; a client asking for more is
/// told so instead of making the server build an unbounded answer).
pub const MAX_MONTHS: usize = 36;

pub const REASON_PARAMS: &str = "`month` or `start-month`/`end-month` parameter(s) can't be blank and should be in format yyyyMM (e.g. 202012)";
pub const REASON_NO_MONTHS: &str = "Unable to identify months. Check `month` or `start-month`/`end-month` parameter(s). It can't be blank and should be in format yyyyMM (e.g. 202012). start-month must be before end-month";
const INVALID_REQUEST: &str = "The request is missing a required parameter, includes an unsupported parameter or parameter value, repeats a parameter, includes multiple credentials, utilizes more than one mechanism for authenticating the client, or is otherwise malformed.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"response":[item, ...]}`
    Default,
    /// `{"response":{"yyyyMM": item}}`
    JsonMonth,
    /// The Prometheus 0.0.4 text of upstream's Java simpleclient.
    OpenMetrics,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatQuery {
    pub months: Vec<u32>,
    pub format: Format,
}

/// An error answer: HTTP status, `error`, `error_description` and upstream's `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub error: String,
    pub description: String,
    pub reason: String,
}

impl ErrorAnswer {
    /// The body as upstream writes it (4-space indent); `reason` only when the server's
    /// `errorReasonEnabled` is on (`api.error_reason`), as upstream.
    pub fn body(&self, with_reason: bool) -> String {
        let mut value = json!({"error": self.error, "error_description": self.description});
        if with_reason {
            value["reason"] = json!(self.reason);
        }
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        // Serialising a json! value into a Vec cannot fail.
        let _ = serde::Serialize::serialize(&value, &mut ser);
        String::from_utf8_lossy(&out).into_owned()
    }
}

pub fn error_answer(status: u16, error: &str, description: &str, reason: &str) -> ErrorAnswer {
    ErrorAnswer {
        status,
        error: error.into(),
        description: description.into(),
        reason: reason.into(),
    }
}

fn bad_request(reason: &str) -> ErrorAnswer {
    error_answer(400, "invalid_request", INVALID_REQUEST, reason)
}

pub fn unauthorized(reason: &str) -> ErrorAnswer {
    error_answer(401, "access_denied", "access_denied", reason)
}

/// Six digits, as upstream checks a month: nothing more, so `202613` is a month that
/// simply has no data (a client sees 200, not 400). Anything else is skipped.
fn parse_month(s: &str) -> Option<u32> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether `m` is a real calendar month (`yyyyMM` with MM in 01..=12).
fn is_real_month(m: u32) -> bool {
    (1..=12).contains(&(m % 100))
}

fn next_month(m: u32) -> u32 {
    if m % 100 == 12 {
        (m / 100 + 1) * 100 + 1
    } else {
        m + 1
    }
}

/// Reads `month`, `start-month`, `end-month` and `format` (the query of a GET, the
/// form of a POST), in upstream's order of checks, after authorization. A repeated
/// parameter counts once: the first, as upstream reads it.
pub fn parse_query(params: &[(String, String)]) -> Result<StatQuery, ErrorAnswer> {
    let joined = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let month = joined("month");
    let (start, end) = (joined("start-month"), joined("end-month"));
    let format = match joined("format").to_ascii_lowercase().as_str() {
        "openmetrics" => Format::OpenMetrics,
        "jsonmonth" => Format::JsonMonth,
        _ => Format::Default,
    };
    let has_month = !month.trim().is_empty();
    let has_range = !start.trim().is_empty() && !end.trim().is_empty();
    if has_month == has_range {
        return Err(bad_request(REASON_PARAMS));
    }
    let mut months: Vec<u32> = Vec::new();
    if has_month {
        for m in month.split(' ').filter_map(parse_month) {
            if !months.contains(&m) {
                months.push(m);
            }
        }
    } else if let (Some(mut m), Some(end)) = (parse_month(start.trim()), parse_month(end.trim())) {
        // Upstream's range: inclusive, but start == end yields nothing. A range end that
        // is not a real month fails upstream outside the validation; here it yields
        // nothing rather than a walk through impossible months.
        if m < end && is_real_month(m) && is_real_month(end) {
            while m <= end && months.len() <= MAX_MONTHS {
                months.push(m);
                m = next_month(m);
            }
        }
    }
    if months.is_empty() {
        return Err(bad_request(REASON_NO_MONTHS));
    }
    if months.len() > MAX_MONTHS {
        return Err(bad_request(&format!(
            "At most {MAX_MONTHS} months can be asked for at once"
        )));
    }
    Ok(StatQuery { months, format })
}

/// grant type → token type → count.
type GrantCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// One month's counts from the upstream-derived figures.
fn tokens_of(view: &View, month: u32) -> GrantCounts {
    let mut out: GrantCounts = BTreeMap::new();
    for ((m, grant, token), n) in &view.upstream.stat_tokens {
        if *m == month && *n > 0 {
            out.entry(grant.clone())
                .or_default()
                .insert(token.clone(), *n);
        }
    }
    out
}

/// The cluster-wide figure when a cluster is configured and Redis has answered for the
/// month (every replica answers the same, as Janssen's own endpoint does); this pod's
/// otherwise.
fn mau_of(view: &View, month: u32) -> u64 {
    let of = |monthly: &[(u32, u64)]| monthly.iter().find(|(m, _)| *m == month).map(|(_, n)| *n);
    view.cluster
        .as_ref()
        .and_then(|c| of(&c.monthly))
        .or_else(|| of(&view.monthly))
        .unwrap_or(0)
}

/// One month's item, or `None` when the month has no data (left out, like upstream).
fn item(view: &View, month: u32) -> Option<Value> {
    let mau = mau_of(view, month);
    let tokens = tokens_of(view, month);
    if mau == 0 && tokens.is_empty() {
        return None;
    }
    Some(
        json!({"month": month.to_string(), "monthly_active_users": mau, "token_count_per_granttype": tokens}),
    )
}

/// A Java `Double.toString` of a whole number: `5.0`, `1.939497078E9`.
pub fn java_double(n: u64) -> String {
    if n < 10_000_000 {
        return format!("{n}.0");
    }
    let digits = n.to_string();
    let (first, rest) = digits.split_at(1);
    let rest = rest.trim_end_matches('0');
    format!(
        "{first}.{}E{}",
        if rest.is_empty() { "0" } else { rest },
        digits.len() - 1
    )
}

const TOKEN_FAMILIES: [(&str, &str); 4] = [
    ("access_token", "Access Token"),
    ("id_token", "Id Token"),
    ("refresh_token", "Refresh Token"),
    ("uma_token", "UMA Token"),
];

fn openmetrics(view: &View, months: &[u32]) -> String {
    let mut out = String::from(
        "# HELP monthly_active_users Monthly active users\n# TYPE monthly_active_users counter\n",
    );
    let with_data: Vec<(u32, u64, GrantCounts)> = months
        .iter()
        .filter(|m| item(view, **m).is_some())
        .map(|m| (*m, mau_of(view, *m), tokens_of(view, *m)))
        .collect();
    for (month, mau, _) in &with_data {
        out.push_str(&format!(
            "monthly_active_users{{month=\"{month}\",}} {}\n",
            java_double(*mau)
        ));
    }
    for (name, help) in TOKEN_FAMILIES {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for (month, _, grants) in &with_data {
            // Zero-filled for every grant type present in the month.
            for (grant, tokens) in grants {
                let n = tokens.get(name).copied().unwrap_or(0);
                out.push_str(&format!(
                    "{name}{{month=\"{month}\",grantType=\"{grant}\",}} {}\n",
                    java_double(n)
                ));
            }
        }
    }
    out
}

/// The answer body and its content type.
pub fn render(view: &View, query: &StatQuery) -> (&'static str, String) {
    match query.format {
        Format::OpenMetrics => (
            "text/plain; version=0.0.4; charset=utf-8",
            openmetrics(view, &query.months),
        ),
        Format::Default => {
            let items: Vec<Value> = query.months.iter().filter_map(|m| item(view, *m)).collect();
            ("application/json", json!({"response": items}).to_string())
        }
        Format::JsonMonth => {
            let items: Map<String, Value> = query
                .months
                .iter()
                .filter_map(|m| item(view, *m).map(|i| (m.to_string(), i)))
                .collect();
            ("application/json", json!({"response": items}).to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/janssen/samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The figures behind the shared samples.
    fn sample_view() -> View {
        let mut view = View {
            monthly: vec![(202609, 0), (202610, 5), (202611, 7)],
            ..View::default()
        };
        for (m, g, t, n) in [
            (202610, "authorization_code", "access_token", 3),
            (202610, "authorization_code", "id_token", 3),
            (202610, "authorization_code", "refresh_token", 2),
            (202610, "client_credentials", "access_token", 12),
            (202611, "authorization_code", "access_token", 9),
            (202611, "authorization_code", "id_token", 9),
            (202611, "authorization_code", "refresh_token", 4),
            (
                202611,
                "urn:ietf:params:oauth:grant-type:uma-ticket",
                "uma_token",
                2,
            ),
        ] {
            view.upstream
                .stat_tokens
                .insert((m, g.to_string(), t.to_string()), n);
        }
        view
    }

    #[test]
    fn both_json_shapes_and_openmetrics_match_the_upstream_samples_byte_for_byte() {
        let view = sample_view();
        for (format, file) in [
            ("", "stat-default.json"),
            ("jsonmonth", "stat-jsonmonth.json"),
            ("OpenMetrics", "stat-openmetrics.txt"),
        ] {
            let q = parse_query(&params(&[
                ("month", "202609 202610 202611"),
                ("format", format),
            ]))
            .unwrap();
            let (_, body) = render(&view, &q);
            assert_eq!(body.trim_end(), sample(file).trim_end(), "{file}");
        }
    }

    #[test]
    fn every_row_of_upstream_validation() {
        let ok = |p: &[(&str, &str)]| parse_query(&params(p)).map(|q| q.months);
        let err = |p: &[(&str, &str)]| parse_query(&params(p)).unwrap_err();
        let params_400 = bad_request(REASON_PARAMS);
        let months_400 = bad_request(REASON_NO_MONTHS);
        assert_eq!(
            err(&[
                ("month", "202611"),
                ("start-month", "202601"),
                ("end-month", "202603")
            ]),
            params_400,
            "both"
        );
        assert_eq!(err(&[]), params_400, "neither");
        assert_eq!(err(&[("month", "  ")]), params_400, "blank");
        assert_eq!(
            err(&[("start-month", "202601")]),
            params_400,
            "half a range"
        );
        assert_eq!(err(&[("month", "2026-11 20261")]), months_400, "bad length");
        assert_eq!(
            err(&[("start-month", "202603"), ("end-month", "202603")]),
            months_400,
            "start == end"
        );
        assert_eq!(
            err(&[("start-month", "202605"), ("end-month", "202603")]),
            months_400,
            "reversed"
        );
        assert_eq!(
            err(&[("start-month", "202001"), ("end-month", "202612")]).status,
            400,
            "too many months"
        );
        assert!(err(&[("start-month", "202001"), ("end-month", "202612")])
            .reason
            .contains("At most 36 months"));
        assert_eq!(
            ok(&[("month", "202611 2026 20261x 202610 202611")]).unwrap(),
            vec![202611, 202610],
            "bad ones skipped"
        );
        // Six digits are a month to upstream: 202613 has no data, it is not an error.
        assert_eq!(ok(&[("month", "202613")]).unwrap(), vec![202613]);
        // A repeated parameter counts once: the first.
        assert_eq!(
            ok(&[("month", "202611"), ("month", "202610")]).unwrap(),
            vec![202611]
        );
        assert_eq!(
            ok(&[("start-month", "202611"), ("end-month", "202702")]).unwrap(),
            vec![202611, 202612, 202701, 202702]
        );
        // The month limit holds for a list too.
        let many: Vec<String> = (1..=12)
            .flat_map(|m| [2024, 2025, 2026, 2027].map(|y| format!("{y}{m:02}")))
            .collect();
        assert_eq!(err(&[("month", &many.join(" "))]).status, 400);
    }

    #[test]
    fn error_bodies_are_shaped_like_upstream() {
        assert_eq!(
            bad_request(REASON_PARAMS).body(true),
            sample("stat-error-400.json").trim_end()
        );
        assert_eq!(
            unauthorized("jans_stat scope is required for token.").body(true),
            sample("stat-error-401.json").trim_end()
        );
        // Upstream's default (errorReasonEnabled off): no reason at all.
        let plain: serde_json::Value =
            serde_json::from_str(&unauthorized("Token expired.").body(false)).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"error": "access_denied", "error_description": "access_denied"})
        );
    }

    #[test]
    fn java_doubles() {
        assert_eq!(java_double(5), "5.0");
        assert_eq!(java_double(9_999_999), "9999999.0");
        assert_eq!(java_double(10_000_000), "1.0E7");
        assert_eq!(java_double(1_939_497_078), "1.939497078E9");
    }
}
