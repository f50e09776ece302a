//! The audit record itself (reference §1), shared by both layouts.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Action, AuditEvent, FormatId, MalformedReason, UserKey};

/// Only the keys the figures need; `ip`, `scope`, `clientId` and the rest are skipped
/// unread so they can never reach a label.
#[derive(Deserialize)]
struct RawAudit<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    /// The docs call it `isSuccess`; the code writes `success`.
    #[serde(alias = "isSuccess")]
    success: Option<bool>,
}

/// Parses an audit record's JSON object into an event. Invalid UTF-8 (a username
/// written through a lossy path upstream) costs the bad bytes, never the record.
pub fn parse_audit_record(json: &[u8], format: FormatId) -> Result<AuditEvent, MalformedReason> {
    if std::str::from_utf8(json).is_err() {
        let repaired = String::from_utf8_lossy(json);
        return parse_valid_utf8(repaired.as_bytes(), format)
            .map(|e| AuditEvent { lossy: true, ..e });
    }
    parse_valid_utf8(json, format)
}

fn parse_valid_utf8(json: &[u8], format: FormatId) -> Result<AuditEvent, MalformedReason> {
    let raw: RawAudit = match serde_json::from_slice(json) {
        Ok(raw) => raw,
        // A type error on a known key is a field problem, not broken JSON.
        Err(e) if e.is_data() => return Err(MalformedReason::MissingField),
        Err(_) => return Err(MalformedReason::InvalidJson),
    };
    let (Some(action), Some(timestamp_ms), Some(success)) =
        (raw.action.as_deref(), raw.timestamp, raw.success)
    else {
        return Err(MalformedReason::MissingField);
    };
    let user = raw
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(UserKey::of);
    let action = Action::from_name(action);
    // The redirect's two records are one object written twice by one logger: the same
    // bytes (timestamp, ip, client, user and scope included). Hashing the body costs
    // nothing on the other records.
    let pair_key =
        (action == Action::UserAuthorization && !success).then(|| xxhash_rust::xxh3::xxh3_64(json));
    Ok(AuditEvent {
        format,
        action,
        success,
        timestamp_ms,
        user,
        pair_key,
        lossy: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_upstream_keys_and_hashes_the_username() {
        let ev = parse_audit_record(
            br#"{"ip" : "10.0.0.1, 10.0.0.2", "action" : "TOKEN_REQUEST", "timestamp" : 1792755755373,
                "macAddress" : "02-42-AC-11-00-03", "clientId" : "c", "username" : "jdoe",
                "scope" : "openid", "success" : false}"#,
            0,
        )
        .unwrap();
        assert_eq!(ev.action, Action::TokenRequest);
        assert!(!ev.success);
        assert_eq!(ev.timestamp_ms, 1_792_755_755_373);
        assert_eq!(ev.user, Some(UserKey::of("jdoe")));
    }

    #[test]
    fn the_two_records_of_a_redirect_share_a_key_and_others_do_not() {
        let record = |ts: i64, user: &str, scope: &str, ok: bool| {
            format!(
                r#"{{"ip" : "10.0.0.1", "action" : "USER_AUTHORIZATION", "timestamp" : {ts}, "macAddress" : "m",
                "clientId" : "c", "username" : {user}, "scope" : {scope}, "success" : {ok}}}"#
            )
        };
        let key = |r: String| parse_audit_record(r.as_bytes(), 0).unwrap().pair_key;
        let a = key(record(1, "null", r#""openid""#, false));
        assert!(a.is_some());
        assert_eq!(a, key(record(1, "null", r#""openid""#, false)));
        assert_ne!(a, key(record(2, "null", r#""openid""#, false)));
        assert_ne!(a, key(record(1, r#""jdoe""#, r#""openid""#, false)));
        assert_ne!(a, key(record(1, "null", r#""openid email""#, false)));
        assert_eq!(key(record(1, "null", r#""openid""#, true)), None);
    }

    #[test]
    fn invalid_utf8_in_a_username_costs_the_bytes_not_the_record() {
        let mut body = br#"{"action":"TOKEN_REQUEST","timestamp":1,"username":"j"#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#"doe","success":true}"#);
        let ev = parse_audit_record(&body, 0).unwrap();
        assert!(ev.lossy);
        assert_eq!(ev.user, Some(UserKey::of("j\u{fffd}\u{fffd}doe")));
        let clean = parse_audit_record(
            br#"{"action":"TOKEN_REQUEST","timestamp":1,"success":true}"#,
            0,
        );
        assert!(!clean.unwrap().lossy);
    }

    #[test]
    fn null_or_empty_username_is_no_user() {
        for u in ["null", "\"\""] {
            let body = format!(
                r#"{{"action":"TOKEN_REQUEST","timestamp":1,"username":{u},"success":true}}"#
            );
            assert_eq!(parse_audit_record(body.as_bytes(), 0).unwrap().user, None);
        }
        let body = br#"{"action":"TOKEN_REQUEST","timestamp":1,"success":true}"#;
        assert_eq!(parse_audit_record(body, 0).unwrap().user, None);
    }

    #[test]
    fn accepts_the_documented_is_success_spelling() {
        let ev = parse_audit_record(
            br#"{"action":"USER_INFO","timestamp":5,"isSuccess":true}"#,
            0,
        );
        assert!(ev.unwrap().success);
    }

    #[test]
    fn classifies_failures() {
        let cases: [(&[u8], MalformedReason); 5] = [
            (b"{\"action\":", MalformedReason::InvalidJson),
            (b"not json", MalformedReason::InvalidJson),
            (
                br#"{"action":"X","timestamp":1}"#,
                MalformedReason::MissingField,
            ),
            (
                br#"{"action":"X","timestamp":"soon","success":true}"#,
                MalformedReason::MissingField,
            ),
            (br#"[1,2]"#, MalformedReason::MissingField),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_audit_record(body, 0),
                Err(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
