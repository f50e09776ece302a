//! log4j's `JsonLayout` (reference §1, §1b): one pretty-printed event object per
//! record, CRLF line ends. The audit logger's events carry the audit record as a JSON
//! *string* in `message`; every other logger's event is a server-log event (level, and
//! the Authenticator's login outcomes), so the audit log and `jans-auth.log` in this
//! layout are both read by this one format.

use std::borrow::Cow;

use serde::Deserialize;

use super::jackson::{self, Cursor, MAX_FAST_RECORD};
use super::{parse_audit_record, parse_server_message, LineStart, RecordFormat};
use crate::event::{Event, FormatId, LineTime, LogLevel, MalformedReason};

pub struct JansAuditJson;

/// The logger that writes audit records.
const AUDIT_LOGGER: &str = "io.jans.as.server.audit.ApplicationAuditLogger";

#[derive(Deserialize)]
struct Instant {
    #[serde(rename = "epochSecond")]
    epoch_second: i64,
    #[serde(rename = "nanoOfSecond", default)]
    nano_of_second: i64,
}

#[derive(Deserialize)]
struct Log4jEvent<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "loggerName")]
    logger_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    level: Option<Cow<'a, str>>,
    #[serde(default)]
    instant: Option<Instant>,
}

impl RecordFormat for JansAuditJson {
    fn name(&self) -> &'static str {
        "jans-audit-json"
    }

    fn detect(&self, line: &[u8]) -> bool {
        line.first() == Some(&b'{')
    }

    fn may_start(&self, first: u8) -> bool {
        first == b'{'
    }

    /// log4j writes each event's opening brace at column 0 and indents everything
    /// inside, so a `{` at a line start is a record start and nothing else is.
    fn line_start(&self, line: &[u8], complete: bool) -> LineStart {
        match line.first() {
            Some(b'{') => LineStart::Start { body_at: 0 },
            None if !complete => LineStart::NeedMore,
            _ => LineStart::NotAStart,
        }
    }

    fn parse(
        &self,
        record: &[u8],
        body_at: usize,
        format: FormatId,
    ) -> Result<Event, MalformedReason> {
        let event: Log4jEvent = match serde_json::from_slice(&record[body_at..]) {
            Ok(event) => event,
            Err(e) if e.is_data() => return Err(MalformedReason::BadMessage),
            Err(_) => return Err(MalformedReason::InvalidJson),
        };
        let message = event.message.ok_or(MalformedReason::BadMessage)?;
        let audit = match event.logger_name.as_deref() {
            Some(logger) => logger == AUDIT_LOGGER,
            // Without a logger name only an audit record can be recognised.
            None => true,
        };
        if audit {
            return parse_audit_record(message.as_bytes(), format)
                .map(Event::Audit)
                .map_err(|_| MalformedReason::BadMessage);
        }
        let instant = event.instant.ok_or(MalformedReason::BadTimestamp)?;
        let ms = instant
            .epoch_second
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(instant.nano_of_second / 1_000_000))
            .ok_or(MalformedReason::BadTimestamp)?;
        let level = LogLevel::parse(event.level.as_deref().unwrap_or("").as_bytes());
        Ok(Event::ServerLog(parse_server_message(
            format,
            level,
            LineTime::Utc(ms),
            event.logger_name.as_deref().unwrap_or(""),
            &message,
        )))
    }

    /// Audit events only: the audit record is read inside the escaped `message`, never
    /// unescaped into a copy (its hash, for a redirect failure, streams past the
    /// escapes).
    fn read_whole(
        &self,
        rest: &[u8],
        _line_len: usize,
        format: FormatId,
    ) -> Option<(Event, usize)> {
        let window = &rest[..rest.len().min(MAX_FAST_RECORD)];
        let mut cursor = Cursor::new(window);
        let fields = jackson::log4j_audit(&mut cursor, AUDIT_LOGGER)?;
        let event = fields.event::<jackson::AuditEscaped>(format)?;
        Some((Event::Audit(event), cursor.at()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, UserKey};

    #[test]
    fn parses_the_message_string_twice() {
        let record = b"{\r\n  \"instant\" : {\r\n    \"epochSecond\" : 1791968124,\r\n    \"nanoOfSecond\" : 522000000\r\n  },\r\n  \"loggerName\" : \"io.jans.as.server.audit.ApplicationAuditLogger\",\r\n  \"message\" : \"{\\n  \\\"action\\\" : \\\"SESSION_AUTHENTICATED\\\",\\n  \\\"timestamp\\\" : 1791968124522,\\n  \\\"username\\\" : \\\"uid-0\\\",\\n  \\\"success\\\" : true\\n}\",\r\n  \"threadId\" : 61\r\n}";
        let Ok(Event::Audit(ev)) = JansAuditJson.parse(record, 0, 1) else {
            panic!("not an audit event")
        };
        assert_eq!(ev.action, Action::SessionAuthenticated);
        assert_eq!(ev.timestamp_ms, 1_791_968_124_522);
        assert_eq!(ev.user, Some(UserKey::of("uid-0")));
        assert_eq!(ev.format, 1);
    }

    #[test]
    fn another_logger_is_a_server_log_event_with_its_login() {
        let record = b"{\r\n  \"instant\" : {\r\n    \"epochSecond\" : 1795462835,\r\n    \"nanoOfSecond\" : 230000000\r\n  },\r\n  \"thread\" : \"qtp-60\",\r\n  \"level\" : \"INFO\",\r\n  \"loggerName\" : \"io.jans.as.server.auth.Authenticator\",\r\n  \"message\" : \"Authentication failed for user: jdoe\",\r\n  \"endOfBatch\" : false\r\n}";
        let Ok(Event::ServerLog(e)) = JansAuditJson.parse(record, 0, 1) else {
            panic!("not a server-log event")
        };
        assert_eq!(e.time, LineTime::Utc(1_795_462_835_230));
        assert_eq!(e.level, LogLevel::Info);
        let a = e.authentication.unwrap();
        assert_eq!((a.kind, a.success), (crate::event::AuthKind::User, false));
        let other = b"{\"instant\":{\"epochSecond\":1},\"level\":\"ERROR\",\"loggerName\":\"x.Y\",\"message\":\"boom\"}";
        let Ok(Event::ServerLog(e)) = JansAuditJson.parse(other, 0, 1) else {
            panic!()
        };
        assert_eq!((e.level, e.authentication), (LogLevel::Error, None));
    }

    #[test]
    fn an_event_without_an_audit_message_is_bad_message() {
        assert_eq!(
            JansAuditJson.parse(b"{\"level\":\"INFO\"}", 0, 1),
            Err(MalformedReason::BadMessage)
        );
        assert_eq!(
            JansAuditJson.parse(b"{\"message\":\"started\"}", 0, 1),
            Err(MalformedReason::BadMessage)
        );
        assert_eq!(
            JansAuditJson.parse(b"{\"message\":7}", 0, 1),
            Err(MalformedReason::BadMessage)
        );
        assert_eq!(
            JansAuditJson.parse(b"{\"message\":", 0, 1),
            Err(MalformedReason::InvalidJson)
        );
    }
}
