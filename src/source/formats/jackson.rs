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
//! (`tests` here, `framer`'s differential tests and the `one_pass` fuzz target check it).

use crate::event::{Action, AuditEvent, FormatId, UserKey};

/// The largest record read on this path; a larger one is left to the framer, which
/// owns the size limit.
pub const MAX_FAST_RECORD: usize = 64 * 1024;

/// How the printer's structure is spelled in the bytes at hand. Each piece of
/// structure between two values is one constant, so that it is checked by one
/// comparison the compiler sees whole, not byte by byte from data.
pub trait Style {
    /// A string's quote.
    const QUOTE: &'static [u8];
    /// The opening brace, a line end, the indent and the first key's quote.
    const OPEN: &'static [u8];
    /// A key's closing quote and the separator.
    const KEY_END: &'static [u8];
    /// Between two members: `,`, a line end, the indent and the next key's quote.
    const NEXT: &'static [u8];
    /// After the last member: a line end, the closing indent and the brace.
    const CLOSE: &'static [u8];

    /// XXH3 of a record read in this style, as the general parser sees the record
    /// (unescaped); `None` if it holds an escape this reader never accepts.
    fn record_hash(record: &[u8]) -> Option<u64> {
        Some(xxhash_rust::xxh3::xxh3_64(record))
    }
}

/// The audit record as the text layout writes it.
pub struct AuditText;
impl Style for AuditText {
    const QUOTE: &'static [u8] = b"\"";
    const OPEN: &'static [u8] = b"{\n  \"";
    const KEY_END: &'static [u8] = b"\" : ";
    const NEXT: &'static [u8] = b",\n  \"";
    const CLOSE: &'static [u8] = b"\n}";
}

/// The audit record inside a log4j event's `message` string: its line ends and quotes
/// are escapes.
pub struct AuditEscaped;
impl Style for AuditEscaped {
    const QUOTE: &'static [u8] = b"\\\"";
    const OPEN: &'static [u8] = b"{\\n  \\\"";
    const KEY_END: &'static [u8] = b"\\\" : ";
    const NEXT: &'static [u8] = b",\\n  \\\"";
    const CLOSE: &'static [u8] = b"\\n}";

    /// Hashed as it streams, piece by piece between the escapes, so the record is
    /// never unescaped into a copy. Only the structure's `\n` and `\"` are escapes in
    /// a record read here: a backslash inside a value ends it.
    fn record_hash(record: &[u8]) -> Option<u64> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut rest = record;
        while let Some(at) = memchr::memchr(b'\\', rest) {
            hasher.update(&rest[..at]);
            hasher.update(match rest.get(at + 1)? {
                b'n' => b"\n",
                b'"' => b"\"",
                _ => return None,
            });
            rest = &rest[at + 2..];
        }
        hasher.update(rest);
        Some(hasher.digest())
    }
}

/// A log4j `JsonLayout` event (CRLF line ends).
struct Log4j;
impl Style for Log4j {
    const QUOTE: &'static [u8] = b"\"";
    const OPEN: &'static [u8] = b"{\r\n  \"";
    const KEY_END: &'static [u8] = b"\" : ";
    const NEXT: &'static [u8] = b",\r\n  \"";
    const CLOSE: &'static [u8] = b"\r\n}";
}

/// The `instant` object nested in a log4j event.
struct Log4jNested;
impl Style for Log4jNested {
    const QUOTE: &'static [u8] = b"\"";
    const OPEN: &'static [u8] = b"{\r\n    \"";
    const KEY_END: &'static [u8] = b"\" : ";
    const NEXT: &'static [u8] = b",\r\n    \"";
    const CLOSE: &'static [u8] = b"\r\n  }";
}

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

    /// Consumes `lit` if the bytes continue with it. Inlined, so that a constant
    /// literal becomes a few word compares.
    #[inline(always)]
    fn eat(&mut self, lit: &[u8]) -> bool {
        if !self.bytes[self.at..].starts_with(lit) {
            return false;
        }
        self.at += lit.len();
        true
    }

    #[inline(always)]
    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// A string with nothing to unescape: its content up to the closing quote, checked
    /// to be valid UTF-8.
    #[inline]
    fn string<S: Style>(&mut self) -> Option<&'a [u8]> {
        self.expect(S::QUOTE)?;
        let content = self.string_content()?;
        self.expect(S::QUOTE)?;
        Some(content)
    }

    /// A string's content, from after its opening quote up to (not past) its closing
    /// one, which the caller checks (with what follows it, in one comparison).
    #[inline]
    fn string_content(&mut self) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.at..)?;
        // A backslash ends the content in either style: in the escaped one it must be
        // the closing `\"`, in the plain one it is an escape and is declined.
        let end = plain_string_end(rest)?;
        self.at += end;
        Some(&rest[..end])
    }

    /// A string or `null`, then `next` (constant structure, compared together with the
    /// string's closing quote).
    #[inline(always)]
    fn string_or_null_then<S: Style>(&mut self, next: &[&[u8]]) -> Option<Option<&'a [u8]>> {
        if self.eat(S::QUOTE) {
            let content = self.string_content()?;
            self.expect_then(S::QUOTE, next)?;
            Some(Some(content))
        } else {
            self.expect_then(b"null", next)?;
            Some(None)
        }
    }

    /// A string or `null`.
    #[inline]
    fn string_or_null<S: Style>(&mut self) -> Option<Option<&'a [u8]>> {
        if self.eat(b"null") {
            return Some(None);
        }
        self.string::<S>().map(Some)
    }

    /// A non-negative integer that fits an `i64` whatever its digits: `0`, or up to 18
    /// digits without a leading zero, and no fraction or exponent after it. Read from
    /// a 16-byte window as two words (timestamps have 10 to 13 digits, a record five
    /// integers); a byte loop, eight digits at a time, near the end and past 15 digits.
    fn integer(&mut self) -> Option<i64> {
        self.integer_valued::<true>()
    }

    /// An integer [`integer`](Self::integer) would read, whose value is not needed
    /// (log4j's instant and thread numbers): the same checks, no arithmetic.
    fn skip_integer(&mut self) -> Option<()> {
        self.integer_valued::<false>().map(drop)
    }

    /// [`integer`](Self::integer); its value only if `VALUE`, else 0.
    #[inline(always)]
    fn integer_valued<const VALUE: bool>(&mut self) -> Option<i64> {
        let rest = &self.bytes[self.at..];
        let Some(window) = rest.first_chunk::<16>() else {
            return self.integer_bytewise();
        };
        // The digits' count from where the first non-digit is flagged, then their value
        // from the words as they are: no loop, no branch per digit.
        let (lo, hi) = window.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().ok()?);
        let hi = u64::from_le_bytes(hi.try_into().ok()?);
        let digits = match (non_digits(lo), non_digits(hi)) {
            (0, 0) => return self.integer_bytewise(),
            (0, flags) => 8 + flags.trailing_zeros() as usize / 8,
            (flags, _) => flags.trailing_zeros() as usize / 8,
        };
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if matches!(rest[digits], b'.' | b'e' | b'E') {
            return None;
        }
        if !VALUE {
            self.at += digits;
            return Some(0);
        }
        let value = if digits <= 8 {
            leading_digits(lo, digits)
        } else {
            leading_digits(lo, 8) * POWERS_OF_TEN[digits - 8] + leading_digits(hi, digits - 8)
        };
        self.at += digits;
        // At most 15 digits: well inside an i64.
        i64::try_from(value).ok()
    }

    /// [`integer`](Self::integer) near the end of the bytes, or for 16 digits and more.
    fn integer_bytewise(&mut self) -> Option<i64> {
        let rest = &self.bytes[self.at..];
        let mut value = 0i64;
        let mut digits = 0;
        while digits + 8 <= 16 {
            let Some(word) = rest.get(digits..).and_then(<[u8]>::first_chunk::<8>) else {
                break;
            };
            let Some(eight) = eight_digits(u64::from_le_bytes(*word)) else {
                break;
            };
            value = value * 100_000_000 + eight as i64;
            digits += 8;
        }
        while let Some(&b) = rest.get(digits) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if digits == 18 {
                return None;
            }
            value = value * 10 + i64::from(d);
            digits += 1;
        }
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
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

    /// The start of the member `key` in an object read in a known order: `sep` (the
    /// object's opening or the separator after the member before), the key and what
    /// ends it. Exactly what [`object`](Self::object) accepts before that member's
    /// value, since no key holds a quote.
    #[inline(always)]
    fn member<S: Style>(&mut self, sep: &[u8], key: &[u8]) -> Option<()> {
        self.expect_all(&[sep, key, S::KEY_END])
    }

    /// Consumes `parts` one after the other, checked against one slice of their total
    /// length: with constant parts, one bounds check and fixed-offset compares.
    #[inline(always)]
    fn expect_all(&mut self, parts: &[&[u8]]) -> Option<()> {
        self.expect_then(b"", parts)
    }

    /// [`expect_all`](Self::expect_all) of `first`, then `parts`.
    #[inline(always)]
    fn expect_then(&mut self, first: &[u8], parts: &[&[u8]]) -> Option<()> {
        let total = first.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let rest = self.bytes.get(self.at..)?.get(..total)?;
        let (head, mut rest) = rest.split_at(first.len());
        if head != first {
            return None;
        }
        for part in parts {
            let (head, tail) = rest.split_at(part.len());
            if head != *part {
                return None;
            }
            rest = tail;
        }
        self.at += total;
        Some(())
    }

    /// An object in style `S` whose every member is read by `member` (given its key;
    /// `None` declines). Keys are plain ASCII letters.
    #[inline]
    fn object<S: Style>(
        &mut self,
        mut member: impl FnMut(&[u8], &mut Cursor<'a>) -> Option<()>,
    ) -> Option<()> {
        self.expect(S::OPEN)?;
        loop {
            // The key runs to the next quote; `member` knows every key it accepts
            // (all ASCII letters), so anything else in it declines there.
            let rest = &self.bytes[self.at..];
            let len = short_find(rest, S::QUOTE[0])?;
            let key = &rest[..len];
            self.at += len;
            self.expect(S::KEY_END)?;
            member(key, self)?;
            if !self.eat(S::NEXT) {
                return self.expect(S::CLOSE);
            }
        }
    }
}

/// Every byte of a word set to 1, and to 0x80: the word-at-a-time (SWAR) masks.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// `10^n` for `n` up to 8.
const POWERS_OF_TEN: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Flags the bytes of `x` that are not ASCII digits (some bit of each such byte); the
/// lowest flagged byte is exact.
#[inline(always)]
fn non_digits(x: u64) -> u64 {
    // A digit becomes 0..=9: no high nibble, and no carry into bit 4 when 6 is added.
    // A carry out of a byte comes only from a byte with a high nibble, flagged itself.
    let y = x ^ (0x30 * ONES);
    (y & 0xf0f0_f0f0_f0f0_f0f0) | (y.wrapping_add(0x0606_0606_0606_0606) & 0x1010_1010_1010_1010)
}

/// The value of the first `n` (1 to 8) bytes of `x`, ASCII digits, read as a
/// little-endian word: shifted to the top of the word, so the bytes below become
/// leading zeros and the bytes after the digits fall off.
#[inline(always)]
fn leading_digits(x: u64, n: usize) -> u64 {
    let shift = 8 * (8 - n) as u32;
    let x = (x << shift) - ((0x30 * ONES) << shift);
    let x = (x * 10 + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x * 100 + (x >> 16)) & 0x0000_ffff_0000_ffff;
    (x * 10_000 + (x >> 32)) & 0xffff_ffff
}

/// The value of eight ASCII digits read as a little-endian word (the first digit in the
/// lowest byte), or `None` if any byte is not a digit.
#[inline]
fn eight_digits(x: u64) -> Option<u64> {
    const NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    // A digit has high nibble 3, and still has it after adding 6 (low nibble <= 9). A
    // carry out of a byte happens only from a byte that fails the test itself.
    let high = x & NIBBLES;
    let high_after = x.wrapping_add(0x0606_0606_0606_0606) & NIBBLES;
    if high | (high_after >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    let x = x - 0x3030_3030_3030_3030;
    // Pairs, then quads, then the whole: each step joins neighbours, the lower byte
    // being the more significant digit.
    let x = (x * 10 + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x * 100 + (x >> 16)) & 0x0000_ffff_0000_ffff;
    Some((x * 10_000 + (x >> 32)) & 0xffff_ffff)
}

/// Flags (0x80) the bytes of `x` that end or spoil plain ASCII string content: a
/// quote, a backslash, a control byte or a byte of 0x80 and above. The lowest flag is
/// exact (a borrow only runs upwards from a true match; higher flags may be false).
#[inline(always)]
fn special_bytes(x: u64) -> u64 {
    // A zero byte in `x ^ (b * ONES)` is a byte equal to `b`; `y - ONES & !y & HIGH`
    // flags a zero byte of `y` (and, with `0x20 * ONES`, a byte below 0x20 among bytes
    // below 0x80, which `x & HIGH` covers).
    let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
    zero(x ^ (u64::from(b'"') * ONES))
        | zero(x ^ (u64::from(b'\\') * ONES))
        | (x.wrapping_sub(0x20 * ONES) & !x & HIGH)
        | (x & HIGH)
}

/// A bit per byte of `block` (the first byte lowest) that ends or spoils plain ASCII
/// string content, as [`special_bytes`] flags them: 16 at a time in one SIMD register
/// (`wide`: SSE2 on x86-64, NEON on arm64, a plain loop elsewhere). A byte of 0x80 and
/// above is negative as `i8`, so one signed compare flags it with the control bytes.
#[inline(always)]
fn special_bytes_16(block: &[u8; 16]) -> u32 {
    use wide::i8x16;
    let v = i8x16::new(block.map(|b| b as i8));
    let stop = v.simd_eq(i8x16::splat(b'"' as i8))
        | v.simd_eq(i8x16::splat(b'\\' as i8))
        | v.simd_lt(i8x16::splat(0x20));
    stop.to_bitmask()
}

/// Where the content of a string without escapes ends in `bytes` (at the first quote
/// or backslash), or `None` if a control byte or invalid UTF-8 comes first: serde
/// refuses both. Sixteen bytes at a time, then a word (SWAR), and the block that stops
/// it tells where at once: string content is most of a record's bytes, and byte loops
/// here were a fifth of the text layout's time. Non-ASCII content takes a byte loop.
#[inline]
fn plain_string_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        let stop = special_bytes_16(block);
        if stop != 0 {
            let first = at + stop.trailing_zeros() as usize;
            return match bytes[first] {
                b'"' | b'\\' => Some(first),
                b if b < 0x20 => None,
                _ => string_end_slow(bytes, first),
            };
        }
        at += 16;
    }
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let stop = special_bytes(u64::from_le_bytes(*word));
        if stop != 0 {
            let first = at + stop.trailing_zeros() as usize / 8;
            return match bytes[first] {
                b'"' | b'\\' => Some(first),
                b if b < 0x20 => None,
                _ => string_end_slow(bytes, first),
            };
        }
        at += 8;
    }
    string_end_slow(bytes, at)
}

/// [`plain_string_end`] a byte at a time from `from`, where everything before is
/// plain ASCII: for the last few bytes and for content with non-ASCII bytes.
fn string_end_slow(bytes: &[u8], from: usize) -> Option<usize> {
    let mut end = from;
    let mut non_ascii = false;
    loop {
        let &b = bytes.get(end)?;
        if b == b'"' || b == b'\\' {
            break;
        }
        if b < 0x20 {
            return None;
        }
        non_ascii |= b >= 0x80;
        end += 1;
    }
    if non_ascii {
        std::str::from_utf8(&bytes[from..end]).ok()?;
    }
    Some(end)
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
    /// The whole record as it stands in the bytes read (escaped in [`AuditEscaped`]).
    pub record: &'a [u8],
}

impl AuditFields<'_> {
    /// The event the general parser makes of the same record, read in style `S`; the
    /// redirect twins' pair key hashes the record as that parser sees it.
    pub fn event<S: Style>(&self, format: FormatId) -> Option<AuditEvent> {
        let action = Action::known_bytes(self.action).unwrap_or(Action::Other);
        let pair_key = if action == Action::UserAuthorization && !self.success {
            Some(S::record_hash(self.record)?)
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

/// Reads an audit record (`ApplicationAuditLogger`'s object) at the cursor: in the
/// order upstream writes its keys if it can (one comparison per piece of structure,
/// no key to find and match), else in any order.
pub fn audit<'a, S: Style>(cursor: &mut Cursor<'a>) -> Option<AuditFields<'a>> {
    let start = cursor.at;
    if let Some(fields) = audit_in_order::<S>(cursor) {
        return Some(fields);
    }
    cursor.at = start;
    audit_any_order::<S>(cursor)
}

/// An audit record with upstream's keys in upstream's order (reference §1): what
/// [`audit_any_order`] makes of the same bytes, or `None`.
fn audit_in_order<'a, S: Style>(c: &mut Cursor<'a>) -> Option<AuditFields<'a>> {
    let start = c.at;
    c.member::<S>(S::OPEN, b"ip")?;
    // Each run of structure between two values is one comparison: a value's closing
    // quote, the separator, the next key and the next value's opening quote.
    c.string_or_null_then::<S>(&[S::NEXT, b"action", S::KEY_END, S::QUOTE])?;
    let action = c.string_content()?;
    c.expect_all(&[S::QUOTE, S::NEXT, b"timestamp", S::KEY_END])?;
    let timestamp_ms = c.integer()?;
    c.member::<S>(S::NEXT, b"macAddress")?;
    c.string_or_null_then::<S>(&[S::NEXT, b"clientId", S::KEY_END])?;
    c.string_or_null_then::<S>(&[S::NEXT, b"username", S::KEY_END])?;
    let username = c.string_or_null_then::<S>(&[S::NEXT, b"scope", S::KEY_END])?;
    c.string_or_null_then::<S>(&[S::NEXT, b"success", S::KEY_END])?;
    let success = if c.expect_all(&[b"true", S::CLOSE]).is_some() {
        true
    } else {
        c.expect_all(&[b"false", S::CLOSE])?;
        false
    };
    Some(AuditFields {
        action,
        timestamp_ms,
        username,
        success,
        record: &c.bytes[start..c.at],
    })
}

/// An audit record with upstream's keys in any order, each once.
fn audit_any_order<'a, S: Style>(cursor: &mut Cursor<'a>) -> Option<AuditFields<'a>> {
    const ACTION: u16 = 1;
    const TIMESTAMP: u16 = 2;
    const USERNAME: u16 = 4;
    const SUCCESS: u16 = 8;
    const IP: u16 = 16;
    const MAC: u16 = 32;
    const CLIENT: u16 = 64;
    const SCOPE: u16 = 128;
    let start = cursor.at;
    let mut seen = 0u16;
    let (mut action, mut timestamp_ms, mut username, mut success) = (None, None, None, None);
    cursor.object::<S>(|key, c| {
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
            ACTION => action = Some(c.string::<S>()?),
            TIMESTAMP => timestamp_ms = Some(c.integer()?),
            USERNAME => username = Some(c.string_or_null::<S>()?),
            SUCCESS => success = Some(c.boolean()?),
            _ => {
                c.string_or_null::<S>()?;
            }
        }
        Some(())
    })?;
    Some(AuditFields {
        action: action?,
        timestamp_ms: timestamp_ms?,
        username: username.flatten(),
        success: success?,
        record: &cursor.bytes[start..cursor.at],
    })
}

/// `loggerFqcn` as log4j's SLF4J binding writes it, quoted.
const LOG4J_FQCN: &[u8] = b"\"org.apache.logging.slf4j.Log4jLogger\"";

/// A log4j event of `logger` whose `message` is an audit record: the record's figures,
/// or `None` for another logger or anything unusual. In log4j's key order if it can,
/// else in any order.
pub fn log4j_audit<'a>(cursor: &mut Cursor<'a>, logger: &str) -> Option<AuditFields<'a>> {
    let start = cursor.at;
    if let Some(fields) = log4j_in_order(cursor, logger) {
        return Some(fields);
    }
    cursor.at = start;
    log4j_any_order(cursor, logger)
}

/// A log4j `JsonLayout` event with its keys in the order log4j writes them: what
/// [`log4j_any_order`] makes of the same bytes, or `None`.
fn log4j_in_order<'a>(c: &mut Cursor<'a>, logger: &str) -> Option<AuditFields<'a>> {
    // Each run of structure between two values is one comparison: a value's closing
    // quote, the separator, the next key and the next value's opening quote.
    const Q: &[u8] = Log4j::QUOTE;
    const NEXT: &[u8] = Log4j::NEXT;
    const KEY_END: &[u8] = Log4j::KEY_END;
    c.expect_all(&[
        Log4j::OPEN,
        b"instant",
        KEY_END,
        Log4jNested::OPEN,
        b"epochSecond",
        KEY_END,
    ])?;
    c.skip_integer()?;
    c.expect_all(&[Log4jNested::NEXT, b"nanoOfSecond", KEY_END])?;
    c.skip_integer()?;
    c.expect_all(&[Log4jNested::CLOSE, NEXT, b"thread", KEY_END, Q])?;
    c.string_content()?;
    c.expect_all(&[Q, NEXT, b"level", KEY_END, Q])?;
    c.string_content()?;
    c.expect_all(&[Q, NEXT, b"loggerName", KEY_END, Q])?;
    c.expect(logger.as_bytes())?;
    c.expect_all(&[Q, NEXT, b"message", KEY_END, Q])?;
    let fields = audit::<AuditEscaped>(c)?;
    // What every Janssen build writes up to the thread id, else member by member.
    let usual_tail = [
        Q,
        NEXT,
        b"endOfBatch",
        KEY_END,
        b"false",
        NEXT,
        b"loggerFqcn",
        KEY_END,
        LOG4J_FQCN,
        NEXT,
        b"threadId",
        KEY_END,
    ];
    if c.expect_all(&usual_tail).is_none() {
        c.expect(Q)?;
        c.member::<Log4j>(NEXT, b"endOfBatch")?;
        c.boolean()?;
        c.member::<Log4j>(NEXT, b"loggerFqcn")?;
        if !c.eat(LOG4J_FQCN) {
            c.string::<Log4j>()?;
        }
        c.member::<Log4j>(NEXT, b"threadId")?;
    }
    c.skip_integer()?;
    c.member::<Log4j>(Log4j::NEXT, b"threadPriority")?;
    c.skip_integer()?;
    c.expect(Log4j::CLOSE)?;
    Some(fields)
}

/// A log4j event with log4j's keys in any order, each once.
fn log4j_any_order<'a>(cursor: &mut Cursor<'a>, logger: &str) -> Option<AuditFields<'a>> {
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
    cursor.object::<Log4j>(|key, c| {
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
            // Another logger declines the record below anyway, so its name is not read:
            // the expected one, quotes included, is compared whole.
            LOGGER => {
                c.expect(b"\"")?;
                c.expect(logger.as_bytes())?;
                logger_matches = true;
                c.expect(b"\"")
            }
            // The value every Janssen build writes, compared whole before it is scanned.
            FQCN if c.eat(LOG4J_FQCN) => Some(()),
            MESSAGE => {
                c.expect(b"\"")?;
                fields = Some(audit::<AuditEscaped>(c)?);
                c.expect(b"\"")
            }
            END_OF_BATCH => c.boolean().map(drop),
            THREAD_ID | PRIORITY => c.skip_integer(),
            _ => c.string::<Log4j>().map(drop),
        }
    })?;
    // Without a logger name the general path also takes the message for an audit
    // record; that rare event is left to it.
    logger_matches.then_some(fields).flatten()
}

/// `instant` as log4j writes it; both numbers must fit the general parser's `i64`s.
fn instant(c: &mut Cursor<'_>) -> Option<()> {
    let mut seen = 0u16;
    c.object::<Log4jNested>(|key, c| {
        let bit = match key {
            b"epochSecond" => 1,
            b"nanoOfSecond" => 2,
            _ => return None,
        };
        first_time(&mut seen, bit)?;
        c.skip_integer()
    })?;
    // epochSecond is required by the general parser.
    (seen & 1 != 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_audit(body: &[u8]) -> Option<(AuditFields<'_>, usize)> {
        let mut c = Cursor::new(body);
        let f = audit::<AuditText>(&mut c)?;
        Some((f, c.at()))
    }

    const RECORD: &[u8] = b"{\n  \"ip\" : \"10.0.0.1\",\n  \"action\" : \"TOKEN_REQUEST\",\n  \"timestamp\" : 1792755755373,\n  \"macAddress\" : \"m\",\n  \"clientId\" : \"c\",\n  \"username\" : \"jos\xc3\xa9\",\n  \"scope\" : null,\n  \"success\" : true\n}";

    const LOG4J_EVENT: &[u8] = b"{\r\n  \"instant\" : {\r\n    \"epochSecond\" : 1791968124,\r\n    \"nanoOfSecond\" : 522000000\r\n  },\r\n  \"thread\" : \"pool-4-thread-11\",\r\n  \"level\" : \"INFO\",\r\n  \"loggerName\" : \"L\",\r\n  \"message\" : \"{\\n  \\\"ip\\\" : \\\"10.0.191.124\\\",\\n  \\\"action\\\" : \\\"SESSION_AUTHENTICATED\\\",\\n  \\\"timestamp\\\" : 1791968124522,\\n  \\\"macAddress\\\" : \\\"02-42-AC-11-00-03\\\",\\n  \\\"clientId\\\" : \\\"3000.58\\\",\\n  \\\"username\\\" : \\\"uid-0\\\",\\n  \\\"scope\\\" : \\\"openid\\\",\\n  \\\"success\\\" : true\\n}\",\r\n  \"endOfBatch\" : false,\r\n  \"loggerFqcn\" : \"org.apache.logging.slf4j.Log4jLogger\",\r\n  \"threadId\" : 61,\r\n  \"threadPriority\" : 5\r\n}";

    /// Random edits of `bytes` with the bytes that matter to the reader.
    fn mutants(bytes: &[u8], seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut rng = fastrand::Rng::with_seed(seed);
        let special = b"\"\\:, \n\r{}0123456789nulltrue\x00\xc3";
        (0..20_000).map(move |_| {
            let mut m = bytes.to_vec();
            for _ in 0..rng.usize(1..3) {
                let at = rng.usize(..m.len());
                match rng.u8(0..3) {
                    0 => m[at] = special[rng.usize(..special.len())],
                    1 => {
                        m.remove(at);
                    }
                    _ => m.insert(at, special[rng.usize(..special.len())]),
                }
            }
            m
        })
    }

    /// What a reader made of a record: action, timestamp, username, success, the
    /// record's bytes, length.
    type Read = (Vec<u8>, i64, Option<Vec<u8>>, bool, Vec<u8>, usize);

    #[test]
    fn in_upstream_order_reads_what_any_order_reads() {
        fn fields(f: Option<AuditFields<'_>>, at: usize) -> Option<Read> {
            f.map(|f| {
                (
                    f.action.to_vec(),
                    f.timestamp_ms,
                    f.username.map(<[u8]>::to_vec),
                    f.success,
                    f.record.to_vec(),
                    at,
                )
            })
        }
        let audit_both = |bytes: &[u8]| {
            let (mut a, mut b) = (Cursor::new(bytes), Cursor::new(bytes));
            let fast = audit_in_order::<AuditText>(&mut a);
            let any = audit_any_order::<AuditText>(&mut b);
            (fields(fast, a.at()), fields(any, b.at()))
        };
        let (fast, any) = audit_both(RECORD);
        assert!(fast.is_some(), "upstream's order is read in order");
        assert_eq!(fast, any);
        let mut taken = 0;
        for m in mutants(RECORD, 1) {
            let (fast, any) = audit_both(&m);
            if fast.is_some() {
                taken += 1;
                assert_eq!(fast, any, "{}", String::from_utf8_lossy(&m));
            }
        }
        assert!(taken > 100, "only {taken} mutants read in order");

        let log4j_both = |bytes: &[u8]| {
            let (mut a, mut b) = (Cursor::new(bytes), Cursor::new(bytes));
            let fast = log4j_in_order(&mut a, "L");
            let any = log4j_any_order(&mut b, "L");
            (fields(fast, a.at()), fields(any, b.at()))
        };
        // The usual tail, and the two values that take it member by member.
        let log4j = std::str::from_utf8(LOG4J_EVENT).unwrap();
        let end_of_batch = log4j.replace("\"endOfBatch\" : false", "\"endOfBatch\" : true");
        let fqcn = log4j.replace("slf4j.Log4jLogger", "Log4jLogger");
        for (seed, event) in [(2, log4j), (3, &end_of_batch), (4, &fqcn)] {
            let (fast, any) = log4j_both(event.as_bytes());
            assert!(fast.is_some(), "log4j's order is read in order");
            assert_eq!(fast, any);
            let mut taken = 0;
            for m in mutants(event.as_bytes(), seed) {
                let (fast, any) = log4j_both(&m);
                if fast.is_some() {
                    taken += 1;
                    assert_eq!(fast, any, "{}", String::from_utf8_lossy(&m));
                }
            }
            assert!(taken > 100, "only {taken} mutants read in order");
        }
        // Another order is left to the any-order reader, and read the same.
        let text = std::str::from_utf8(RECORD).unwrap();
        let swapped = text
            .replace("\"ip\" : \"10.0.0.1\"", "\"IP\"")
            .replace("\"scope\" : null", "\"ip\" : \"10.0.0.1\"")
            .replace("\"IP\"", "\"scope\" : null");
        let (fast, any) = audit_both(swapped.as_bytes());
        assert!(fast.is_none() && any.is_some());
    }

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

    /// The byte loop the word-at-a-time scan must agree with.
    fn string_end_reference(bytes: &[u8]) -> Option<usize> {
        let end = bytes.iter().position(|&b| b == b'"' || b == b'\\')?;
        if bytes[..end].iter().any(|&b| b < 0x20) {
            return None;
        }
        std::str::from_utf8(&bytes[..end]).ok()?;
        Some(end)
    }

    #[test]
    fn sixteen_at_a_time_flags_exactly_the_bytes_that_end_or_spoil_content() {
        for b in 0..=255u8 {
            let special = b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
            for at in 0..16 {
                let mut block = [b'a'; 16];
                block[at] = b;
                assert_eq!(special_bytes_16(&block), u32::from(special) << at, "{b:#x}");
            }
        }
    }

    #[test]
    fn the_word_at_a_time_scan_ends_where_the_byte_loop_does() {
        let plain = b"abcdefghABCDEFGH0123456789-_.@ :!";
        assert_eq!(plain_string_end(plain), None, "no quote: not a string");
        // Every special byte at every position, then a quote further on.
        for special in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xc3, 0xff] {
            for at in 0..plain.len() {
                let mut bytes = plain.to_vec();
                bytes[at] = special;
                bytes.push(b'"');
                assert_eq!(
                    plain_string_end(&bytes),
                    string_end_reference(&bytes),
                    "{special:#x} at {at}"
                );
            }
        }
        // 0x20 and 0x7f are content: the general parser keeps them too.
        assert_eq!(
            plain_string_end(b"        \x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\""),
            Some(16)
        );
        // Random mixes of the bytes that matter, with valid and broken UTF-8.
        let alphabet: &[&[u8]] = &[
            b"a",
            b"Z",
            b"0",
            b" ",
            b"\x7f",
            b"\x1f",
            b"\x00",
            b"\"",
            b"\\",
            b"\xc3\xa9",
            b"\xe2\x82\xac",
            b"\xc3",
            b"\xa9",
            b"\xf0\x9f\x98\x80",
        ];
        let mut rng = fastrand::Rng::with_seed(14);
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            for _ in 0..rng.usize(0..48) {
                // Mostly plain, so that long runs reach the block and word loops.
                let piece = if rng.u8(..) < 200 {
                    b"x"
                } else {
                    alphabet[rng.usize(..alphabet.len())]
                };
                bytes.extend_from_slice(piece);
            }
            assert_eq!(
                plain_string_end(&bytes),
                string_end_reference(&bytes),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn integers_read_eight_digits_at_a_time_as_the_byte_loop_does() {
        // The reference: the general parser's rules, a byte at a time.
        fn reference(bytes: &[u8]) -> Option<(i64, usize)> {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 18 || (digits > 1 && bytes[0] == b'0') {
                return None;
            }
            if matches!(bytes.get(digits), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            let text = std::str::from_utf8(&bytes[..digits]).ok()?;
            Some((text.parse().ok()?, digits))
        }
        let read = |bytes: &[u8]| {
            let mut c = Cursor::new(bytes);
            let read = c.integer().map(|v| (v, c.at()));
            // Skipping accepts the same integers and ends in the same place.
            let mut skip = Cursor::new(bytes);
            let skipped = skip.skip_integer().map(|()| skip.at());
            assert_eq!(skipped, read.map(|(_, at)| at), "{bytes:?}");
            read
        };
        let alphabet = b"0123456789019283746501928374650.eE,x/:\xff ";
        let mut rng = fastrand::Rng::with_seed(8);
        for _ in 0..50_000 {
            let len = rng.usize(0..24);
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.u8(..) < 220 {
                        b'0' + rng.u8(0..10)
                    } else {
                        alphabet[rng.usize(..alphabet.len())]
                    }
                })
                .collect();
            if rng.bool() && !bytes.is_empty() {
                bytes[0] = b'1';
            }
            assert_eq!(read(&bytes), reference(&bytes), "{bytes:?}");
        }
        for x in [&b"1761955236,"[..], b"99999999999", b"10000000\r\n"] {
            assert_eq!(read(x), reference(x));
        }
        assert_eq!(
            read(b"999999999999999999,"),
            Some((999_999_999_999_999_999, 18))
        );
        assert_eq!(read(b"1000000000000000000,"), None);
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
    fn a_redirect_failure_keys_its_pair_by_the_record_as_the_general_parser_sees_it() {
        let f = AuditFields {
            action: b"USER_AUTHORIZATION",
            timestamp_ms: 1,
            username: None,
            success: false,
            record: b"{\\n  \\\"a\\\" : 1\\n}",
        };
        let unescaped = b"{\n  \"a\" : 1\n}";
        assert_eq!(
            f.event::<AuditEscaped>(0).unwrap().pair_key,
            Some(xxhash_rust::xxh3::xxh3_64(unescaped))
        );
        assert_eq!(
            f.event::<AuditText>(0).unwrap().pair_key,
            Some(xxhash_rust::xxh3::xxh3_64(f.record))
        );
        // An escape the reader never accepts gives no key, and so no event.
        let odd = AuditFields {
            record: b"{\\t}",
            ..f
        };
        assert!(odd.event::<AuditEscaped>(0).is_none());
        let ok = AuditFields { success: true, ..f };
        assert_eq!(ok.event::<AuditEscaped>(0).unwrap().pair_key, None);
    }

    #[test]
    fn the_escaped_hash_is_the_hash_of_what_serde_unescapes() {
        // Random records of structure escapes and plain content, every length across
        // the streaming hasher's internal buffer.
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..3_000 {
            let mut escaped = Vec::new();
            for _ in 0..rng.usize(0..200) {
                match rng.u8(..6) {
                    0 => escaped.extend_from_slice(b"\\n"),
                    1 => escaped.extend_from_slice(b"\\\""),
                    // Printable ASCII but the quote and the backslash.
                    _ => escaped.extend(
                        (0..rng.usize(0..40))
                            .map(|_| rng.u8(b' '..=b'~'))
                            .filter(|b| !matches!(b, b'"' | b'\\')),
                    ),
                }
            }
            let quoted = [b"\"", &escaped[..], b"\""].concat();
            let unescaped: String = serde_json::from_slice(&quoted).unwrap();
            assert_eq!(
                AuditEscaped::record_hash(&escaped),
                Some(xxhash_rust::xxh3::xxh3_64(unescaped.as_bytes()))
            );
        }
    }
}
