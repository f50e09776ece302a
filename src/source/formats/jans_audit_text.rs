//! The audit log's default text layout (reference §1):
//! `%d %-5p [%macAddr] [%t] %X{X-Correlation-Id} [%C{6}] (%F:%L) - %m%n`, where the
//! message is a pretty-printed JSON object spanning the following lines.

use super::jackson::{self, Cursor, MAX_FAST_RECORD};
use super::{parse_audit_record, LineStart, RecordFormat};
use crate::event::{Event, FormatId, MalformedReason};

pub struct JansAuditText;

/// `yyyy-MM-dd HH:mm:ss,SSS`: `d` is a digit, anything else must match exactly.
pub(super) const TIMESTAMP_SHAPE: &[u8; 23] = b"dddd-dd-dd dd:dd:dd,ddd";
/// Ends the `(%F:%L)` part; the message follows.
pub(super) const MESSAGE_MARK: &[u8] = b") - ";
/// Built once: `memmem::find` would build a searcher per record.
static MESSAGE_MARK_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MESSAGE_MARK));
/// The first message mark in `window`. It is nearly always at the first `)`, the end
/// of `(%F:%L)`, which one `memchr` finds; otherwise it is searched for after it (no
/// mark can start before the first `)`).
pub(super) fn find_message_mark(window: &[u8]) -> Option<usize> {
    let paren = memchr::memchr(b')', window)?;
    if window[paren..].starts_with(MESSAGE_MARK) {
        return Some(paren);
    }
    MESSAGE_MARK_FINDER
        .find(&window[paren + 1..])
        .map(|at| paren + 1 + at)
}

/// A header longer than this without a body is not a header we can use.
const MAX_HEADER: usize = 64 * 1024;

/// How many leading bytes of `line` fit the timestamp shape.
pub(super) fn timestamp_prefix_len(line: &[u8]) -> usize {
    if let Some(stamp) = line.first_chunk::<23>() {
        if is_timestamp(stamp) {
            return TIMESTAMP_SHAPE.len();
        }
    }
    line.iter()
        .zip(TIMESTAMP_SHAPE)
        .take_while(|(b, s)| {
            if **s == b'd' {
                b.is_ascii_digit()
            } else {
                *b == *s
            }
        })
        .count()
}

/// One word of the shape: which bytes are digits (0xff) and what the others must be.
struct ShapeWord {
    digits: u64,
    literal: u64,
}

/// The shape's three words: bytes 0..8, 8..16 and 15..23 (overlapping by one).
const SHAPE_WORDS: [ShapeWord; 3] = [shape_word(0), shape_word(8), shape_word(15)];

const fn shape_word(from: usize) -> ShapeWord {
    let mut digits = 0u64;
    let mut literal = 0u64;
    let mut i = 0;
    while i < 8 {
        let s = TIMESTAMP_SHAPE[from + i];
        if s == b'd' {
            digits |= 0xff << (8 * i);
        } else {
            literal |= (s as u64) << (8 * i);
        }
        i += 1;
    }
    ShapeWord { digits, literal }
}

/// Whether 23 bytes fit the timestamp shape whole: three words compared at once
/// (SWAR) instead of a loop over 23 bytes for every record.
pub(super) fn is_timestamp(stamp: &[u8; 23]) -> bool {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    SHAPE_WORDS.iter().zip([0, 8, 15]).all(|(shape, from)| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&stamp[from..from + 8]);
        let x = u64::from_le_bytes(word);
        let literals_match = x & !shape.digits == shape.literal;
        // A digit is 0x30..=0x39: high nibble 3, and a low nibble that does not carry
        // into bit 4 when 6 is added (no carry crosses bytes: 0x0f + 6 < 0x100).
        let high_is_3 = x & shape.digits & HIGH_NIBBLES == 0x3030_3030_3030_3030 & shape.digits;
        let low_le_9 = ((x & shape.digits & LOW_NIBBLES) + (SIXES & shape.digits))
            & shape.digits
            & HIGH_NIBBLES
            == 0;
        literals_match && high_is_3 && low_le_9
    })
}

impl RecordFormat for JansAuditText {
    fn name(&self) -> &'static str {
        "jans-audit-text"
    }

    /// A timestamp, and a JSON body opening after the message mark: the server log
    /// shares the timestamp but its messages are text.
    fn detect(&self, line: &[u8]) -> bool {
        timestamp_prefix_len(line) == TIMESTAMP_SHAPE.len()
            && find_message_mark(line)
                .is_some_and(|at| line.get(at + MESSAGE_MARK.len()) == Some(&b'{'))
    }

    fn may_start(&self, first: u8) -> bool {
        first.is_ascii_digit()
    }

    fn line_start(&self, line: &[u8], complete: bool) -> LineStart {
        let matched = timestamp_prefix_len(line);
        if matched < TIMESTAMP_SHAPE.len() {
            return if matched == line.len() && !complete {
                LineStart::NeedMore
            } else {
                LineStart::NotAStart
            };
        }
        // The mark is looked for in the first MAX_HEADER bytes only, so that the answer
        // for a long line is the same whether it arrived whole or in pieces.
        let window = &line[..line.len().min(MAX_HEADER)];
        match find_message_mark(window) {
            Some(at) if line.get(at + MESSAGE_MARK.len()) == Some(&b'{') => LineStart::Start {
                body_at: at + MESSAGE_MARK.len(),
            },
            Some(at) if at + MESSAGE_MARK.len() == line.len() && !complete => LineStart::NeedMore,
            None if !complete && line.len() < MAX_HEADER => LineStart::NeedMore,
            _ => LineStart::StartWithoutBody,
        }
    }

    fn parse(
        &self,
        record: &[u8],
        body_at: usize,
        format: FormatId,
    ) -> Result<Event, MalformedReason> {
        parse_audit_record(&record[body_at..], format).map(Event::Audit)
    }

    fn read_whole(&self, rest: &[u8], line_len: usize, format: FormatId) -> Option<(Event, usize)> {
        let window = &rest[..rest.len().min(MAX_FAST_RECORD)];
        let header_end = line_len;
        if header_end >= window.len() {
            return None;
        }
        let LineStart::Start { body_at } = self.line_start(&window[..header_end], true) else {
            return None;
        };
        let body = &window[body_at..];
        let mut cursor = Cursor::new(body);
        let fields = jackson::audit::<jackson::AuditText>(&mut cursor)?;
        let event = fields.event::<jackson::AuditText>(format)?;
        Some((Event::Audit(event), body_at + cursor.at()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_at_a_time_timestamp_check_agrees_with_the_byte_loop() {
        let good = *b"2026-10-23 11:42:35,373";
        assert!(is_timestamp(&good));
        // Every byte of every position, alone: exactly the shape's bytes pass.
        for at in 0..good.len() {
            for b in 0..=255u8 {
                let mut stamp = good;
                stamp[at] = b;
                let fits = if TIMESTAMP_SHAPE[at] == b'd' {
                    b.is_ascii_digit()
                } else {
                    b == TIMESTAMP_SHAPE[at]
                };
                assert_eq!(is_timestamp(&stamp), fits, "{b:#x} at {at}");
                assert_eq!(timestamp_prefix_len(&stamp) == 23, fits);
            }
        }
    }

    const HEADER: &[u8] = b"2026-10-23 11:42:35,373 INFO  [02-42-AC-11-00-03] [pool-4-thread-5]  [io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:178) - {";

    #[test]
    fn the_message_mark_is_the_first_one_wherever_it_is() {
        let mut rng = fastrand::Rng::with_seed(4);
        let alphabet = b") -{a";
        for _ in 0..50_000 {
            let line: Vec<u8> = (0..rng.usize(0..20))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            assert_eq!(
                find_message_mark(&line),
                memchr::memmem::find(&line, MESSAGE_MARK),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    #[test]
    fn finds_the_body_after_the_file_and_line() {
        let LineStart::Start { body_at } = JansAuditText.line_start(HEADER, true) else {
            panic!("not a start");
        };
        assert_eq!(HEADER[body_at], b'{');
        assert_eq!(body_at, HEADER.len() - 1);
    }

    #[test]
    fn waits_for_more_bytes_only_while_the_line_could_still_be_a_header() {
        for cut in 0..HEADER.len() - 1 {
            assert_eq!(
                JansAuditText.line_start(&HEADER[..cut], false),
                LineStart::NeedMore,
                "cut {cut}"
            );
        }
        assert_eq!(
            JansAuditText.line_start(b"  \"ip\" : \"1\",", false),
            LineStart::NotAStart
        );
        assert_eq!(
            JansAuditText.line_start(b"2026-1x", false),
            LineStart::NotAStart
        );
        assert_eq!(JansAuditText.line_start(b"}", true), LineStart::NotAStart);
    }

    #[test]
    fn a_header_with_a_plain_message_has_no_body() {
        let line = b"2026-10-23 11:42:35,373 INFO  [m] [t]  [c] (A.java:1) - hello";
        assert_eq!(
            JansAuditText.line_start(line, true),
            LineStart::StartWithoutBody
        );
        let line = b"2026-10-23 11:42:35,373 something else entirely";
        assert_eq!(
            JansAuditText.line_start(line, true),
            LineStart::StartWithoutBody
        );
    }
}
