//! The auth server's own log, `jans-auth.log`, in its text layout (reference §1b):
//! `%d %-5p [%t] %X{X-Correlation-Id} [%C{6}] (%F:%L) - %m%n`, one event per line;
//! the lines after it that start no event (a stack trace) belong to it.

use std::borrow::Cow;

use chrono::NaiveDateTime;

use super::jans_audit_text::{timestamp_prefix_len, TIMESTAMP_SHAPE};
use super::{parse_audit_record, parse_server_message, LineStart, RecordFormat};
use crate::event::{Event, FormatId, LineTime, LogLevel, MalformedReason};

pub struct JansServerText;

/// Ends the `(%F:%L)` part; the message follows.
const MESSAGE_MARK: &[u8] = b") - ";
/// A line longer than this is not waited for whole: it is read as it is.
const MAX_LINE: usize = 64 * 1024;

/// The `%d` timestamp as wall-clock milliseconds (the server's zone, applied later).
fn local_ms(stamp: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(stamp).ok()?;
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S,%3f").ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// `[<class>] (<file>:<line>) - <message>`: the class and the message, if the line has
/// that shape.
fn logger_and_message(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some(mark) = memchr::memmem::find(rest, MESSAGE_MARK) else {
        return (b"", b"");
    };
    let head = &rest[..mark];
    let message = &rest[mark + MESSAGE_MARK.len()..];
    let logger = memchr::memmem::rfind(head, b" (")
        .map(|paren| &head[..paren])
        .and_then(|before| {
            let inner = before.strip_suffix(b"]")?;
            let open = memchr::memrchr(b'[', inner)?;
            Some(&inner[open + 1..])
        })
        .unwrap_or(b"");
    (logger, message)
}

impl RecordFormat for JansServerText {
    fn name(&self) -> &'static str {
        "jans-server-text"
    }

    fn detect(&self, line: &[u8]) -> bool {
        timestamp_prefix_len(line) == TIMESTAMP_SHAPE.len()
    }

    fn may_start(&self, first: u8) -> bool {
        first.is_ascii_digit()
    }

    fn line_start(&self, line: &[u8], complete: bool) -> LineStart {
        let matched = timestamp_prefix_len(line);
        if matched == TIMESTAMP_SHAPE.len() {
            if !complete && line.len() < MAX_LINE {
                return LineStart::NeedMore;
            }
            // An audit record in a file whose first line was not one (an audit log that
            // starts with a JMS error, say): read it as the audit format would.
            // Only the first MAX_LINE bytes decide, however the line arrived.
            match memchr::memmem::find(&line[..line.len().min(MAX_LINE)], MESSAGE_MARK) {
                Some(at) if line.get(at + MESSAGE_MARK.len()) == Some(&b'{') => LineStart::Start {
                    body_at: at + MESSAGE_MARK.len(),
                },
                _ => LineStart::Line,
            }
        } else if matched == line.len() && !complete {
            LineStart::NeedMore
        } else {
            LineStart::NotAStart
        }
    }

    fn parse(
        &self,
        line: &[u8],
        body_at: usize,
        format: FormatId,
    ) -> Result<Event, MalformedReason> {
        if body_at > 0 {
            return parse_audit_record(&line[body_at..], format).map(Event::Audit);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let stamp = &line[..TIMESTAMP_SHAPE.len().min(line.len())];
        let ms = local_ms(stamp).ok_or(MalformedReason::BadTimestamp)?;
        let rest = &line[stamp.len()..];
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let level_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let level = LogLevel::parse(&rest[..level_end]);
        let (logger, message) = logger_and_message(&rest[level_end..]);
        // Usernames pass through as the server wrote them; a stray invalid byte is
        // replaced rather than costing the line.
        let logger: Cow<str> = String::from_utf8_lossy(logger);
        let message: Cow<str> = String::from_utf8_lossy(message);
        Ok(Event::ServerLog(parse_server_message(
            format,
            level,
            LineTime::Local(ms),
            &logger,
            &message,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuthKind, UserKey};

    const LOGIN: &[u8] = b"2026-11-23 19:40:35,230 INFO  [qtp1489933928-60]  [io.jans.as.server.auth.Authenticator] (Authenticator.java:215) - Authentication success for User: 'jdoe'";

    #[test]
    fn reads_level_time_and_login() {
        assert_eq!(JansServerText.line_start(LOGIN, true), LineStart::Line);
        let Ok(Event::ServerLog(e)) = JansServerText.parse(LOGIN, 0, 2) else {
            panic!("not a server-log event");
        };
        assert_eq!(e.level, LogLevel::Info);
        assert_eq!(e.time, LineTime::Local(1_795_462_835_230));
        let a = e.authentication.unwrap();
        assert_eq!(
            (a.kind, a.success, a.user),
            (AuthKind::User, true, Some(UserKey::of("jdoe")))
        );
    }

    #[test]
    fn any_other_line_counts_its_level_only() {
        for (line, level) in [
            (&b"2026-11-23 19:40:41,000 ERROR [qtp-30]  [io.jans.as.server.servlet.Foo] (Foo.java:10) - Failed to process request"[..], LogLevel::Error),
            (b"2026-11-23 19:40:41,000 WARN  [main] no mark at all", LogLevel::Warn),
            (b"2026-11-23 19:40:41,000 NOTICE [t] [c] (F.java:1) - x\r", LogLevel::Other),
        ] {
            let Ok(Event::ServerLog(e)) = JansServerText.parse(line, 0, 2) else {
                panic!()
            };
            assert_eq!((e.level, e.authentication), (level, None));
        }
        assert_eq!(
            JansServerText.parse(b"2026-13-45 99:40:41,000 INFO [t] x", 0, 2),
            Err(MalformedReason::BadTimestamp)
        );
    }

    #[test]
    fn a_thread_with_brackets_or_a_correlation_id_does_not_hide_the_logger() {
        let line = b"2026-11-23 19:40:35,230 INFO  [pool-2 [x]] 4f1c-77 [io.jans.as.server.auth.Authenticator] (Authenticator.java:215) - Authentication failed for user: a) - b";
        let Ok(Event::ServerLog(e)) = JansServerText.parse(line, 0, 2) else {
            panic!()
        };
        assert_eq!(e.authentication.map(|a| a.kind), Some(AuthKind::User));
    }

    #[test]
    fn an_audit_record_after_other_lines_is_still_an_audit_record() {
        let header = b"2026-10-23 11:42:35,373 INFO  [02-42-AC-11-00-03] [pool-4-thread-5]  [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:178) - {";
        let LineStart::Start { body_at } = JansServerText.line_start(header, true) else {
            panic!("not a record start");
        };
        let mut record = header.to_vec();
        record.extend_from_slice(
            b"\n  \"action\" : \"TOKEN_REQUEST\",\n  \"timestamp\" : 5,\n  \"success\" : true\n}",
        );
        assert!(matches!(
            JansServerText.parse(&record, body_at, 2),
            Ok(Event::Audit(_))
        ));
    }

    #[test]
    fn continuation_lines_start_nothing_and_partial_lines_wait() {
        assert_eq!(
            JansServerText.line_start(b"\tat io.jans.Foo.bar(Foo.java:10)", true),
            LineStart::NotAStart
        );
        assert_eq!(
            JansServerText.line_start(b"java.lang.IllegalStateException: boom", true),
            LineStart::NotAStart
        );
        assert_eq!(
            JansServerText.line_start(b"Caused by: x", true),
            LineStart::NotAStart
        );
        for cut in 0..LOGIN.len() {
            assert_eq!(
                JansServerText.line_start(&LOGIN[..cut], false),
                LineStart::NeedMore,
                "cut {cut}"
            );
        }
    }
}
