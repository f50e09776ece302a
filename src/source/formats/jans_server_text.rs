//! The auth server's own log, `jans-auth.log`, in its text layout (reference §1b):
//! `%d %-5p [%t] %X{X-Correlation-Id} [%C{6}] (%F:%L) - %m%n`, one event per line;
//! the lines after it that start no event (a stack trace) belong to it.

use std::borrow::Cow;

use std::sync::LazyLock;

use chrono::{NaiveDate, NaiveDateTime};
use memchr::memmem;

use super::jans_audit_text::{
    find_message_mark, is_timestamp, timestamp_prefix_len, MESSAGE_MARK, TIMESTAMP_SHAPE,
};
use super::{parse_audit_record, parse_server_message, LineStart, RecordFormat, AUTHENTICATOR};
use crate::event::{Event, FormatId, LineTime, LogLevel, MalformedReason};

pub struct JansServerText;

/// A line longer than this is not waited for whole: it is read as it is.
const MAX_LINE: usize = 64 * 1024;

/// The `%d` timestamp as wall-clock milliseconds (the server's zone, applied later).
/// Its fixed digits are read in place and checked by chrono's calendar constructors;
/// anything unusual (a leap second, another shape) goes through chrono's parser,
/// which every line went through before and which decides the same.
fn local_ms(stamp: &[u8]) -> Option<i64> {
    if let Some(ms) = stamp.first_chunk::<23>().and_then(fixed_local_ms) {
        return Some(ms);
    }
    let text = std::str::from_utf8(stamp).ok()?;
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S,%3f").ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// `yyyy-MM-dd HH:mm:ss,SSS` read by position, `None` if it is not that shape or not
/// a plain calendar time (then [`local_ms`] asks chrono).
fn fixed_local_ms(stamp: &[u8; 23]) -> Option<i64> {
    if !is_timestamp(stamp) {
        return None;
    }
    let number = |from: usize, to: usize| {
        stamp[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let second = number(17, 19);
    if second >= 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(number(0, 4) as i32, number(5, 7), number(8, 10))?;
    let time = date.and_hms_milli_opt(number(11, 13), number(14, 16), second, number(20, 23))?;
    Some(time.and_utc().timestamp_millis())
}

/// Finds the ` (` before `%F:%L`, from the end.
static FILE_OPEN_FINDER: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b" ("));
/// The cheap test: a line without the Authenticator's name anywhere after its level
/// cannot be an Authenticator line, so its logger and message are never looked for.
static AUTHENTICATOR_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(AUTHENTICATOR));

/// `[<class>] (<file>:<line>) - <message>`: the class and the message, if the line has
/// that shape.
fn logger_and_message(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some(mark) = find_message_mark(rest) else {
        return (b"", b"");
    };
    let head = &rest[..mark];
    let message = &rest[mark + MESSAGE_MARK.len()..];
    let logger = FILE_OPEN_FINDER
        .rfind(head)
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
            match find_message_mark(&line[..line.len().min(MAX_LINE)]) {
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
        let rest = &rest[level_end..];
        // Only the Authenticator's lines carry an outcome; every other line is its level
        // and time alone. (A name compared as bytes: the lossy text of a logger with
        // invalid UTF-8 could not equal it either.)
        let (logger, message) = if AUTHENTICATOR_FINDER.find(rest).is_some() {
            logger_and_message(rest)
        } else {
            (&b""[..], &b""[..])
        };
        let (logger, message) = if logger == AUTHENTICATOR.as_bytes() {
            // Usernames pass through as the server wrote them; a stray invalid byte is
            // replaced rather than costing the line. Checked by `from_utf8` first:
            // `from_utf8_lossy` walks valid text a byte at a time, which was an eighth
            // of a server log's replay (most of its lines are the Authenticator's).
            let text = std::str::from_utf8(message)
                .map_or_else(|_| String::from_utf8_lossy(message), Cow::Borrowed);
            (AUTHENTICATOR, text)
        } else {
            ("", Cow::Borrowed(""))
        };
        Ok(Event::ServerLog(parse_server_message(
            format,
            level,
            LineTime::Local(ms),
            logger,
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
    fn the_fixed_timestamp_reader_agrees_with_chrono() {
        let chrono_ms = |stamp: &[u8]| {
            let t = NaiveDateTime::parse_from_str(
                std::str::from_utf8(stamp).ok()?,
                "%Y-%m-%d %H:%M:%S,%3f",
            )
            .ok()?;
            Some(t.and_utc().timestamp_millis())
        };
        let mut rng = fastrand::Rng::with_seed(23);
        let mut fixed = 0;
        for i in 0..100_000 {
            // Mostly valid fields, often just out of range, sometimes not digits.
            let field = |rng: &mut fastrand::Rng, max: u32, width: usize| {
                let v = if rng.u8(..) < 230 {
                    rng.u32(0..max)
                } else {
                    rng.u32(0..10u32.pow(width as u32))
                };
                format!("{v:0width$}")
            };
            let mut stamp = format!(
                "{}-{}-{} {}:{}:{},{}",
                field(&mut rng, if i % 2 == 0 { 2100 } else { 10_000 }, 4),
                field(&mut rng, 14, 2),
                field(&mut rng, 32, 2),
                field(&mut rng, 25, 2),
                field(&mut rng, 61, 2),
                field(&mut rng, 62, 2),
                field(&mut rng, 1000, 3),
            )
            .into_bytes();
            if rng.u8(..) < 10 {
                let at = rng.usize(..stamp.len());
                stamp[at] = rng.u8(..);
            }
            let ours = local_ms(&stamp);
            fixed += usize::from(stamp.first_chunk::<23>().and_then(fixed_local_ms).is_some());
            assert_eq!(
                ours,
                chrono_ms(&stamp),
                "{}",
                String::from_utf8_lossy(&stamp)
            );
        }
        // Leap years, a leap second (chrono's path), the last millisecond.
        for stamp in [
            "2024-02-29 23:59:59,999",
            "2023-02-29 00:00:00,000",
            "2000-02-29 12:00:00,000",
            "1900-02-29 12:00:00,000",
            "2026-06-30 23:59:60,500",
            "0000-01-01 00:00:00,000",
        ] {
            assert_eq!(
                local_ms(stamp.as_bytes()),
                chrono_ms(stamp.as_bytes()),
                "{stamp}"
            );
        }
        assert!(fixed > 50_000, "the fixed reader took only {fixed}");
    }

    #[test]
    fn the_authenticator_prefilter_changes_no_outcome() {
        // The reference: every line's logger and message looked for, as before.
        let reference = |line: &[u8]| {
            let rest = &line[24..];
            let level_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            let (logger, message) = logger_and_message(&rest[level_end..]);
            parse_server_message(
                2,
                LogLevel::parse(&rest[..level_end]),
                LineTime::Local(0),
                &String::from_utf8_lossy(logger),
                &String::from_utf8_lossy(message),
            )
            .authentication
        };
        let pieces: &[&[u8]] = &[
            b"[io.jans.as.server.auth.Authenticator]",
            b"io.jans.as.server.auth.Authenticator",
            b"[io.jans.as.server.auth.Authenticator\xff]",
            b" (Authenticator.java:215)",
            b" - ",
            b") - ",
            b"[qtp-1]",
            b" ",
            b"Authentication success for User: 'jdoe'",
            b"Authentication failed for user: x",
            b"\xc3\xa9",
            b"\xff",
            b"[",
            b"]",
        ];
        let mut rng = fastrand::Rng::with_seed(215);
        let mut outcomes = 0;
        for _ in 0..50_000 {
            // Half the lines the shape upstream writes, with pieces swapped in or added.
            let mut parts: Vec<&[u8]> = if rng.bool() {
                vec![pieces[6], b" ", pieces[0], pieces[3], pieces[4], pieces[8]]
            } else {
                Vec::new()
            };
            for _ in 0..rng.usize(0..4) {
                let piece = pieces[rng.usize(..pieces.len())];
                if !parts.is_empty() && rng.bool() {
                    let at = rng.usize(..parts.len());
                    parts[at] = piece;
                } else {
                    parts.insert(rng.usize(..=parts.len()), piece);
                }
            }
            let mut line = b"2026-11-23 19:40:35,230 INFO  ".to_vec();
            line.extend(parts.concat());
            let Ok(Event::ServerLog(e)) = JansServerText.parse(&line, 0, 2) else {
                panic!("{}", String::from_utf8_lossy(&line));
            };
            let expected = reference(&line);
            outcomes += usize::from(expected.is_some());
            assert_eq!(
                e.authentication,
                expected,
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        assert!(outcomes > 500, "only {outcomes} lines had an outcome");
    }

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
