//! One pass over a record in the exact shape the auth server writes it.
//!
//! Janssen's audit records, and log4j's `JsonLayout` events, come from Jackson's default
//! pretty printer: one member per line, a fixed indent, `" : "` between key and value,
//! `,` and a line end between members, the closing brace on a line of its own. This
//! reader accepts only that shape, only the keys upstream writes and only plain values
//! (no escapes in a string, no fractions), and reads the record once, in place, without
//! allocating. Anything else (another key order is fine, but unknown keys, a duplicate,
//! other spacing, an escape, invalid UTF-8, a different logger) answers `None`, and the
//! framer and serde read the record as before: this path may decline any record, but
//! a record it accepts gives exactly the event and the length the general path would
//! (`tests` here, `framer`'s differential tests and the `fast_path` fuzz target check it).

use crate::event::{Action, AuditEvent, FormatId, UserKey};

/// The largest record read on this path; a larger one is left to the framer, which
/// owns the size limit.
pub const MAX_FAST_RECORD: usize = 64 * 1024;

/// How the printer's structure is spelled in the bytes at hand.
pub struct Style {
    /// A line end between members.
    nl: &'static [u8],
    /// A string's quote.
    quote: &'static [u8],
    /// The indent of a member line.
    indent: &'static [u8],
    /// The indent of the closing brace's line.
    close_indent: &'static [u8],
}

/// The audit record as the text layout writes it.
pub const AUDIT_TEXT: Style = Style {
    nl: b"\n",
    quote: b"\"",
    indent: b"  ",
    close_indent: b"",
};
/// The audit record inside a log4j event's `message` string: its line ends and quotes
/// are escapes.
pub const AUDIT_ESCAPED: Style = Style {
    nl: b"\\n",
    quote: b"\\\"",
    indent: b"  ",
    close_indent: b"",
};
/// A log4j `JsonLayout` event (CRLF line ends).
pub const LOG4J: Style = Style {
    nl: b"\r\n",
    quote: b"\"",
    indent: b"  ",
    close_indent: b"",
};
/// The `instant` object nested in a log4j event.
const LOG4J_NESTED: Style = Style {
    nl: b"\r\n",
    quote: b"\"",
    indent: b"    ",
    close_indent: b"  ",
};

/// A position in a record.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, at: 0 }
    }

    pub fn at(&self) -> usize {
        self.at
    }

    /// Consumes `lit` if the bytes continue with it. A byte loop: the literals are a
    /// few bytes, where a call to `memcmp` costs more than the comparison.
    #[inline]
    fn eat(&mut self, lit: &[u8]) -> bool {
        let rest = &self.bytes[self.at..];
        if rest.len() < lit.len() || rest.iter().zip(lit).any(|(a, b)| a != b) {
            return false;
        }
        self.at += lit.len();
        true
    }

    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// A string with nothing to unescape: its content up to the closing quote, checked
    /// to be valid UTF-8.
    fn string(&mut self, style: &Style) -> Option<&'a [u8]> {
        self.expect(style.quote)?;
        let rest = &self.bytes[self.at..];
        // A backslash ends the content in either style: in the escaped one it must be
        // the closing `\"`, in the plain one it is an escape and is declined. One pass
        // finds the end and checks for control bytes (serde refuses them) and for
        // non-ASCII bytes, which only then need a UTF-8 check.
        let mut end = plain_ascii_prefix(rest);
        let mut non_ascii = false;
        loop {
            let &b = rest.get(end)?;
            if b == b'"' || b == b'\\' {
                break;
            }
            if b < 0x20 {
                return None;
            }
            non_ascii |= b >= 0x80;
            end += 1;
        }
        let content = &rest[..end];
        if non_ascii {
            std::str::from_utf8(content).ok()?;
        }
        self.at += end;
        self.expect(style.quote)?;
        Some(content)
    }

    /// A string or `null`.
    fn string_or_null(&mut self, style: &Style) -> Option<Option<&'a [u8]>> {
        if self.eat(b"null") {
            return Some(None);
        }
        self.string(style).map(Some)
    }

    /// A non-negative integer that fits an `i64` whatever its digits: `0`, or up to 18
    /// digits without a leading zero, and no fraction or exponent after it.
    fn integer(&mut self) -> Option<i64> {
        let rest = &self.bytes[self.at..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 18 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = rest[..digits]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        self.at += digits;
        Some(value)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.eat(b"true") {
            Some(true)
        } else if self.eat(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// An object in `style` whose every member is read by `member` (given its key;
    /// `None` declines). Keys are plain ASCII letters.
    fn object(
        &mut self,
        style: &Style,
        mut member: impl FnMut(&[u8], &mut Cursor<'a>) -> Option<()>,
    ) -> Option<()> {
        self.expect(b"{")?;
        self.expect(style.nl)?;
        loop {
            self.expect(style.indent)?;
            self.expect(style.quote)?;
            // The key runs to the next quote; `member` knows every key it accepts
            // (all ASCII letters), so anything else in it declines there.
            let rest = &self.bytes[self.at..];
            let len = short_find(rest, style.quote[0])?;
            let key = &rest[..len];
            self.at += len;
            self.expect(style.quote)?;
            self.expect(b" : ")?;
            member(key, self)?;
            if self.eat(b",") {
                self.expect(style.nl)?;
                continue;
            }
            self.expect(style.nl)?;
            self.expect(style.close_indent)?;
            return self.expect(b"}");
        }
    }
}

/// Every byte of a word set to 1, and to 0x80: the word-at-a-time (SWAR) masks.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// How many leading bytes of `bytes`, in whole words of 8, are plain ASCII string
/// content: no quote, no backslash, no control byte, no byte of 0x80 or above. A word
/// at a time (SWAR, no `unsafe`): string content is most of a record's bytes, and a
/// byte loop was a fifth of the text layout's time. The caller reads the rest, and the
/// word that stopped this, a byte at a time.
#[inline]
fn plain_ascii_prefix(bytes: &[u8]) -> usize {
    let mut at = 0;
    for word in bytes.chunks_exact(8) {
        let x = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        // A zero byte in `x ^ (b * ONES)` is a byte equal to `b`; `y - ONES & !y & HIGH`
        // is non-zero exactly when `y` has a zero byte (or, with `0x20 * ONES`, a byte
        // below 0x20 among bytes below 0x80, which `x & HIGH` covers).
        let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
        let stop = zero(x ^ (u64::from(b'"') * ONES))
            | zero(x ^ (u64::from(b'\\') * ONES))
            | (x.wrapping_sub(0x20 * ONES) & !x & HIGH)
            | (x & HIGH);
        if stop != 0 {
            break;
        }
        at += 8;
    }
    at
}

/// The position of the first `byte` in `bytes`, for the short runs of a key: the
/// first 16 bytes a word at a time (every key upstream writes is shorter), then
/// `memchr`. A byte loop here mispredicted on every key's varying length.
#[inline]
fn short_find(bytes: &[u8], byte: u8) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        if at == 16 {
            break;
        }
        let y = u64::from_le_bytes(*word) ^ (u64::from(byte) * ONES);
        // The lowest flagged byte is exact: a borrow only runs upwards from a zero.
        let zero = y.wrapping_sub(ONES) & !y & HIGH;
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr(byte, &bytes[at..]).map(|found| at + found)
}

/// The audit record's figures, read in place.
/// Strings are valid UTF-8.
pub struct AuditFields<'a> {
    pub action: &'a [u8],
    pub timestamp_ms: i64,
    pub username: Option<&'a [u8]>,
    pub success: bool,
}

impl AuditFields<'_> {
    /// The event the general parser makes of the same record; `body` is the record's
    /// bytes as that parser sees them, for the redirect twins' pair key, or `None` when
    /// they are not at hand (escaped), and then a record that needs one is declined.
    pub fn event(&self, format: FormatId, body: Option<&[u8]>) -> Option<AuditEvent> {
        let action = std::str::from_utf8(self.action).map_or(Action::Other, Action::from_name);
        let pair_key = if action == Action::UserAuthorization && !self.success {
            Some(xxhash_rust::xxh3::xxh3_64(body?))
        } else {
            None
        };
        Some(AuditEvent {
            format,
            action,
            success: self.success,
            timestamp_ms: self.timestamp_ms,
            user: self
                .username
                .filter(|u| !u.is_empty())
                .map(UserKey::of_utf8),
            pair_key,
            lossy: false,
        })
    }
}

/// Marks `bit` seen; `None` if it was already: serde refuses a duplicate key.
fn first_time(seen: &mut u16, bit: u16) -> Option<()> {
    let first = *seen & bit == 0;
    *seen |= bit;
    first.then_some(())
}

/// Reads an audit record (`ApplicationAuditLogger`'s object) at the cursor.
pub fn audit<'a>(cursor: &mut Cursor<'a>, style: &Style) -> Option<AuditFields<'a>> {
    const ACTION: u16 = 1;
    const TIMESTAMP: u16 = 2;
    const USERNAME: u16 = 4;
    const SUCCESS: u16 = 8;
    const IP: u16 = 16;
    const MAC: u16 = 32;
    const CLIENT: u16 = 64;
    const SCOPE: u16 = 128;
    let mut seen = 0u16;
    let (mut action, mut timestamp_ms, mut username, mut success) = (None, None, None, None);
    cursor.object(style, |key, c| {
        let bit = match key {
            b"action" => ACTION,
            b"timestamp" => TIMESTAMP,
            b"username" => USERNAME,
            // The docs' spelling is an alias of the same field.
            b"success" | b"isSuccess" => SUCCESS,
            b"ip" => IP,
            b"macAddress" => MAC,
            b"clientId" => CLIENT,
            b"scope" => SCOPE,
            _ => return None,
        };
        first_time(&mut seen, bit)?;
        match bit {
            ACTION => action = Some(c.string(style)?),
            TIMESTAMP => timestamp_ms = Some(c.integer()?),
            USERNAME => username = Some(c.string_or_null(style)?),
            SUCCESS => success = Some(c.boolean()?),
            _ => {
                c.string_or_null(style)?;
            }
        }
        Some(())
    })?;
    Some(AuditFields {
        action: action?,
        timestamp_ms: timestamp_ms?,
        username: username.flatten(),
        success: success?,
    })
}

/// A log4j event of `logger` whose `message` is an audit record: the record's figures,
/// or `None` for another logger or anything unusual.
pub fn log4j_audit<'a>(cursor: &mut Cursor<'a>, logger: &str) -> Option<AuditFields<'a>> {
    const INSTANT: u16 = 1;
    const THREAD: u16 = 2;
    const LEVEL: u16 = 4;
    const LOGGER: u16 = 8;
    const MESSAGE: u16 = 16;
    const END_OF_BATCH: u16 = 32;
    const FQCN: u16 = 64;
    const THREAD_ID: u16 = 128;
    const PRIORITY: u16 = 256;
    let mut seen = 0u16;
    let mut fields = None;
    let mut logger_matches = false;
    cursor.object(&LOG4J, |key, c| {
        let bit = match key {
            b"instant" => INSTANT,
            b"thread" => THREAD,
            b"level" => LEVEL,
            b"loggerName" => LOGGER,
            b"message" => MESSAGE,
            b"endOfBatch" => END_OF_BATCH,
            b"loggerFqcn" => FQCN,
            b"threadId" => THREAD_ID,
            b"threadPriority" => PRIORITY,
            _ => return None,
        };
        first_time(&mut seen, bit)?;
        match bit {
            INSTANT => instant(c),
            LOGGER => {
                logger_matches = c.string(&LOG4J)? == logger.as_bytes();
                Some(())
            }
            MESSAGE => {
                c.expect(b"\"")?;
                fields = Some(audit(c, &AUDIT_ESCAPED)?);
                c.expect(b"\"")
            }
            END_OF_BATCH => c.boolean().map(drop),
            THREAD_ID | PRIORITY => c.integer().map(drop),
            _ => c.string(&LOG4J).map(drop),
        }
    })?;
    // Without a logger name the general path also takes the message for an audit
    // record; that rare event is left to it.
    logger_matches.then_some(fields).flatten()
}

/// `instant` as log4j writes it; both numbers must fit the general parser's `i64`s.
fn instant(c: &mut Cursor<'_>) -> Option<()> {
    let mut seen = 0u16;
    c.object(&LOG4J_NESTED, |key, c| {
        let bit = match key {
            b"epochSecond" => 1,
            b"nanoOfSecond" => 2,
            _ => return None,
        };
        first_time(&mut seen, bit)?;
        c.integer().map(drop)
    })?;
    // epochSecond is required by the general parser.
    (seen & 1 != 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_audit(body: &[u8]) -> Option<(AuditFields<'_>, usize)> {
        let mut c = Cursor::new(body);
        let f = audit(&mut c, &AUDIT_TEXT)?;
        Some((f, c.at()))
    }

    const RECORD: &[u8] = b"{\n  \"ip\" : \"10.0.0.1\",\n  \"action\" : \"TOKEN_REQUEST\",\n  \"timestamp\" : 1792755755373,\n  \"macAddress\" : \"m\",\n  \"clientId\" : \"c\",\n  \"username\" : \"jos\xc3\xa9\",\n  \"scope\" : null,\n  \"success\" : true\n}";

    #[test]
    fn reads_the_layout_upstream_writes_to_its_last_brace() {
        let mut with_tail = RECORD.to_vec();
        with_tail.extend_from_slice(b"\n2026-");
        let (f, len) = read_audit(&with_tail).unwrap();
        assert_eq!(len, RECORD.len());
        assert_eq!(
            (f.action, f.timestamp_ms, f.username, f.success),
            (
                &b"TOKEN_REQUEST"[..],
                1_792_755_755_373,
                Some("jos\u{e9}".as_bytes()),
                true
            )
        );
    }

    #[test]
    fn declines_what_it_does_not_know_exactly() {
        let text = std::str::from_utf8(RECORD).unwrap();
        let variants = [
            text.replace("\"scope\" : null", "\"scope\" : 5"),
            text.replace("\"scope\"", "\"scopes\""),
            text.replace("\"ip\"", "\"action\""),
            text.replace("10.0.0.1", "10.0.0.\\u0031"),
            text.replace(" : \"TOKEN", ": \"TOKEN"),
            text.replace("\n}", "}"),
            text.replace("\n  \"scope\"", "\n   \"scope\""),
            text.replace("1792755755373", "1792755755373.0"),
            text.replace("1792755755373", "0179275575537"),
            text.replace("1792755755373", "1792755755373000000000"),
            text.replace("true", "\"true\""),
            text.replace("\n", "\r\n"),
            text.replace("\"c\"", "\"c\td\""),
            text.replace(",\n  \"success\" : true", ""),
        ];
        for v in &variants {
            assert!(read_audit(v.as_bytes()).is_none(), "{v}");
        }
        let mut bad_utf8 = RECORD.to_vec();
        let at = bad_utf8.iter().position(|&b| b == 0xc3).unwrap();
        bad_utf8[at + 1] = b'x';
        assert!(read_audit(&bad_utf8).is_none());
        for cut in 0..RECORD.len() {
            assert!(read_audit(&RECORD[..cut]).is_none(), "cut {cut}");
        }
    }

    #[test]
    fn the_word_at_a_time_scan_stops_at_the_first_word_with_any_special_byte() {
        let plain = b"abcdefghABCDEFGH0123456789-_.@ :!";
        assert_eq!(plain_ascii_prefix(plain), 32);
        for special in [b'"', b'\\', 0x00, 0x1f, 0x7f_u8.wrapping_add(1), 0xc3, 0xff] {
            for at in 0..plain.len() {
                let mut bytes = plain.to_vec();
                bytes[at] = special;
                assert_eq!(
                    plain_ascii_prefix(&bytes),
                    at / 8 * 8,
                    "{special:#x} at {at}"
                );
            }
        }
        // 0x20 and 0x7f are content: the general parser keeps them too.
        assert_eq!(
            plain_ascii_prefix(b"        \x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f"),
            16
        );
    }

    #[test]
    fn a_short_find_finds_the_first_byte_anywhere() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b'"';
                if at + 1 < len {
                    bytes[len - 1] = b'"';
                }
                assert_eq!(short_find(&bytes, b'"'), Some(at), "{len} {at}");
            }
            assert_eq!(short_find(&vec![b'a'; len], b'"'), None);
        }
        // Bytes just around the sought one (a borrow, a high byte) do not fool it.
        assert_eq!(short_find(b"\x23\x21\xff\x00\x22", b'"'), Some(4));
        assert_eq!(short_find(b"\x01\x22", b'"'), Some(1));
    }

    #[test]
    fn the_documented_spelling_is_the_same_field() {
        let text = std::str::from_utf8(RECORD).unwrap();
        let alias = text.replace("\"success\"", "\"isSuccess\"");
        assert!(read_audit(alias.as_bytes()).unwrap().0.success);
        let both = text.replace("\"scope\" : null", "\"isSuccess\" : false");
        assert!(read_audit(both.as_bytes()).is_none());
    }

    #[test]
    fn a_redirect_failure_needs_its_bytes_for_the_pair_key() {
        let f = AuditFields {
            action: b"USER_AUTHORIZATION",
            timestamp_ms: 1,
            username: None,
            success: false,
        };
        assert!(f.event(0, None).is_none());
        assert_eq!(
            f.event(0, Some(b"x")).unwrap().pair_key,
            Some(xxhash_rust::xxh3::xxh3_64(b"x"))
        );
        let ok = AuditFields { success: true, ..f };
        assert_eq!(ok.event(0, None).unwrap().pair_key, None);
    }
}
