//! The audit log under log4j's `JsonLayout` (reference §1): one pretty-printed event
//! object per record, CRLF line ends, the audit record a JSON *string* in `message`.

use std::borrow::Cow;

use serde::Deserialize;

use super::{parse_audit_record, LineStart, RecordFormat};
use crate::event::{AuditEvent, FormatId, MalformedReason};

pub struct JansAuditJson;

#[derive(Deserialize)]
struct Log4jEvent<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
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
    ) -> Result<AuditEvent, MalformedReason> {
        let event: Log4jEvent = match serde_json::from_slice(&record[body_at..]) {
            Ok(event) => event,
            Err(e) if e.is_data() => return Err(MalformedReason::BadMessage),
            Err(_) => return Err(MalformedReason::InvalidJson),
        };
        let message = event.message.ok_or(MalformedReason::BadMessage)?;
        parse_audit_record(message.as_bytes(), format).map_err(|_| MalformedReason::BadMessage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, UserKey};

    #[test]
    fn parses_the_message_string_twice() {
        let record = b"{\r\n  \"instant\" : {\r\n    \"epochSecond\" : 1791968124,\r\n    \"nanoOfSecond\" : 522000000\r\n  },\r\n  \"loggerName\" : \"io.jans.as.server.audit.ApplicationAuditLogger\",\r\n  \"message\" : \"{\\n  \\\"action\\\" : \\\"SESSION_AUTHENTICATED\\\",\\n  \\\"timestamp\\\" : 1791968124522,\\n  \\\"username\\\" : \\\"uid-0\\\",\\n  \\\"success\\\" : true\\n}\",\r\n  \"threadId\" : 61\r\n}";
        let ev = JansAuditJson.parse(record, 0, 1).unwrap();
        assert_eq!(ev.action, Action::SessionAuthenticated);
        assert_eq!(ev.timestamp_ms, 1_791_968_124_522);
        assert_eq!(ev.user, Some(UserKey::of("uid-0")));
        assert_eq!(ev.format, 1);
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
