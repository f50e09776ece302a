//! Cuts a byte stream into whole records, whatever the write sizes.
//!
//! A record starts at a line its format recognises and ends when its JSON body closes
//! (brace depth back to zero, string-aware), so the last record of a burst is counted
//! at once instead of waiting for the next one. Raw newlines cannot occur inside JSON
//! strings, so a line start is always a safe place to resynchronise: a record that is
//! still open when the next record starts is reported as unterminated and the new one
//! is read normally. Memory is bounded by [`MAX_RECORD_BYTES`] plus one read chunk.

use memchr::memchr;

use super::formats::{self, LineStart};
use crate::event::{Event, FormatId, MalformedReason};

/// Records larger than this are skipped to the next record start and counted.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// A file's format is guessed from its first whole line (the audit and server text
/// layouts differ only after the header); of a longer line, from this many bytes only,
/// so that the guess never depends on where a read happened to end.
const DETECT_BYTES: usize = 64 * 1024;
/// A line of only whitespace longer than this is consumed as it arrives rather than
/// kept whole: no record starts after that much blank, and keeping it would make every
/// read scan it again.
const BLANK_KEPT: usize = 4 * 1024;

#[derive(Clone, Copy, Debug)]
enum State {
    LineStart,
    Body {
        /// Index in `buf` of the record's first byte.
        start: usize,
        /// Where the JSON body opens, relative to `start`.
        body_at: usize,
        depth: u32,
        in_str: bool,
        esc: bool,
    },
    /// The rest of a line that belongs to no record and was already dealt with.
    RestOfLine,
    /// Inside a long run of whitespace at a line start (see [`BLANK_KEPT`]).
    Blank,
}

pub use crate::event::ResumePoint;

/// The framer's bytes: `bytes[..filled]` is the stream from `base`; the rest is room a
/// read fills in place. The room stays initialised, so a read needs neither zeroing
/// nor a copy from another buffer (that copy was an eighth of a replay's instructions).
#[derive(Clone, Default)]
struct Buffer {
    bytes: Vec<u8>,
    filled: usize,
}

impl std::ops::Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }
}

impl Buffer {
    /// `want` bytes of room after the stream, grown (and zeroed) only when too small.
    fn room(&mut self, want: usize) -> &mut [u8] {
        let need = self.filled + want;
        if self.bytes.len() < need {
            self.bytes.resize(need, 0);
        }
        &mut self.bytes[self.filled..need]
    }

    /// The first `n` bytes of the room now hold the stream.
    fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.bytes.len());
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        self.room(data.len()).copy_from_slice(data);
        self.commit(data.len());
    }

    fn clear(&mut self) {
        self.filled = 0;
    }

    /// Drops the first `n` bytes of the stream.
    fn drain_front(&mut self, n: usize) {
        self.bytes.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

#[derive(Clone)]
pub struct Framer {
    format: Option<FormatId>,
    buf: Buffer,
    /// Stream offset of `buf[0]`.
    base: u64,
    pos: usize,
    state: State,
    skipping: bool,
    /// Whether whole records are first offered to the format's one-pass reader.
    one_pass: bool,
    /// Records the one-pass reader took.
    one_pass_records: u64,
}

impl Framer {
    /// A framer for a stream read from `at`; `format` `None` means detect it.
    pub fn new(format: Option<FormatId>, at: ResumePoint) -> Framer {
        Framer {
            format,
            buf: Buffer::default(),
            base: at.offset,
            pos: 0,
            state: if at.mid_line {
                State::RestOfLine
            } else {
                State::LineStart
            },
            skipping: at.skipping,
            one_pass: true,
            one_pass_records: 0,
        }
    }

    /// A framer that never uses the formats' one-pass readers: the reference the
    /// differential tests compare them with.
    pub fn general_only(format: Option<FormatId>, at: ResumePoint) -> Framer {
        Framer {
            one_pass: false,
            ..Framer::new(format, at)
        }
    }

    /// Makes room for `bytes` more bytes in the buffer before the first feed, so that a
    /// framer made for one piece of a file allocates once, and (under the allocator's
    /// mmap threshold) from the heap.
    pub fn reserve(&mut self, bytes: usize) {
        self.buf.room(bytes);
    }

    /// The buffer's memory, for another framer's [`reuse`](Self::reuse), if this one
    /// holds no bytes of the stream (finished, or never fed): then it loses nothing.
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        (self.buf.filled == 0).then(|| std::mem::take(&mut self.buf.bytes))
    }

    /// Reads into `spare` (from [`take_spare`](Self::take_spare)) instead of memory of
    /// its own, if it holds nothing yet: a worker framing one piece after another
    /// zeroes and faults in one buffer, not one per piece.
    pub fn reuse(&mut self, spare: Vec<u8>) {
        if self.buf.filled == 0 && spare.len() > self.buf.bytes.len() {
            self.buf.bytes = spare;
        }
    }

    /// How many records the one-pass readers took.
    pub fn one_pass_records(&self) -> u64 {
        self.one_pass_records
    }

    pub fn format(&self) -> Option<FormatId> {
        self.format
    }

    /// Stream offset just past the bytes fed so far.
    pub fn fed_offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// The safe restart point: after the last whole record or handled line.
    pub fn resume_point(&self) -> ResumePoint {
        match self.state {
            State::Body { start, .. } => ResumePoint {
                offset: self.base + start as u64,
                mid_line: false,
                skipping: false,
            },
            State::LineStart => ResumePoint {
                offset: self.base + self.pos as u64,
                mid_line: false,
                skipping: self.skipping,
            },
            State::RestOfLine => ResumePoint {
                offset: self.base + self.pos as u64,
                mid_line: true,
                skipping: self.skipping,
            },
            // The rest of a blank run read from a line start decides as the run would:
            // blank to a newline is skipped, text after it is an unexpected line.
            State::Blank => ResumePoint {
                offset: self.base + self.pos as u64,
                mid_line: false,
                skipping: self.skipping,
            },
        }
    }

    /// Frames `data` (the next bytes of the stream), appending events to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(data);
        self.scan(out);
        self.compact();
    }

    /// Reads up to `want` next bytes of the stream with `read`, straight into the
    /// framer's buffer, and frames them as [`feed`](Self::feed) would. Returns what
    /// `read` returned; nothing changes on an error or at the end (0).
    pub fn feed_from(
        &mut self,
        want: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
        out: &mut Vec<Event>,
    ) -> std::io::Result<usize> {
        let n = read(self.buf.room(want))?.min(want);
        if n > 0 {
            self.buf.commit(n);
            self.scan(out);
            self.compact();
        }
        Ok(n)
    }

    /// The stream ended for good (rotated away, truncated): a record still open is lost.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let pending = match self.state {
            State::Body { .. } => true,
            State::LineStart => self.buf[self.pos..]
                .iter()
                .any(|b| !b.is_ascii_whitespace()),
            State::RestOfLine | State::Blank => false,
        };
        if pending && !self.skipping {
            self.malformed(MalformedReason::Unterminated, out);
        }
        self.base = self.fed_offset();
        self.buf.clear();
        self.pos = 0;
        self.state = State::LineStart;
        self.skipping = false;
    }

    fn malformed(&self, reason: MalformedReason, out: &mut Vec<Event>) {
        out.push(Event::Malformed {
            format: self.format,
            reason,
        });
    }

    fn scan(&mut self, out: &mut Vec<Event>) {
        loop {
            match self.state {
                State::LineStart => {
                    if !self.scan_line_start(out) {
                        return;
                    }
                }
                State::RestOfLine => match memchr(b'\n', &self.buf[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = State::LineStart;
                    }
                    None => {
                        self.pos = self.buf.len();
                        return;
                    }
                },
                State::Blank => {
                    let rest = &self.buf[self.pos..];
                    match rest
                        .iter()
                        .position(|b| *b == b'\n' || !b.is_ascii_whitespace())
                    {
                        Some(i) if rest[i] == b'\n' => {
                            self.pos += i + 1;
                            self.state = State::LineStart;
                        }
                        // Text after that much blank starts no record.
                        Some(i) => {
                            self.pos += i;
                            if !self.skipping {
                                self.malformed(MalformedReason::UnexpectedLine, out);
                            }
                            self.state = State::RestOfLine;
                        }
                        None => {
                            self.pos = self.buf.len();
                            return;
                        }
                    }
                }
                State::Body { .. } => {
                    if !self.scan_body(out) {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the line at `pos`. Returns false when more bytes are needed.
    fn scan_line_start(&mut self, out: &mut Vec<Event>) -> bool {
        // A run of NULs is the hole copytruncate leaves when the writer does not append:
        // skip it so the record written after it is still found.
        let nuls = self.buf[self.pos..].iter().take_while(|b| **b == 0).count();
        self.pos += nuls;
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return false;
        }
        let newline = memchr(b'\n', rest);
        let (line, complete) = match newline {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let blank = line.iter().all(|b| b.is_ascii_whitespace());
        if blank {
            return match newline {
                Some(i) => {
                    self.pos += i + 1;
                    true
                }
                None if line.len() > BLANK_KEPT => {
                    self.pos = self.buf.len();
                    self.state = State::Blank;
                    true
                }
                None => false,
            };
        }
        let format = match self.format {
            Some(f) => Some(f),
            None if !complete && line.len() < DETECT_BYTES => return false,
            None => {
                self.format = formats::detect(&line[..line.len().min(DETECT_BYTES)]);
                self.format
            }
        };
        if let (Some(id), true, true) = (format, complete, self.one_pass) {
            if let Some((event, len)) = formats::by_id(id).read_whole(rest, line.len(), id) {
                out.push(event);
                self.one_pass_records += 1;
                self.skipping = false;
                self.pos += len;
                self.state = State::RestOfLine;
                return true;
            }
        }
        let kind = match format {
            Some(f) => formats::by_id(f).line_start(line, complete),
            None => LineStart::NotAStart,
        };
        match kind {
            LineStart::NeedMore if line.len() < MAX_RECORD_BYTES => false,
            LineStart::Start { body_at } => {
                self.skipping = false;
                self.state = State::Body {
                    start: self.pos,
                    body_at,
                    depth: 0,
                    in_str: false,
                    esc: false,
                };
                self.pos += body_at;
                true
            }
            LineStart::StartWithoutBody => {
                self.skipping = false;
                self.malformed(MalformedReason::NoJsonBody, out);
                self.state = State::RestOfLine;
                true
            }
            LineStart::Line => {
                // A whole one-line record; the lines after it that start nothing (a
                // stack trace) are its own, so they are skipped without a complaint.
                let Some(id) = format else { return true };
                // Of a longer line, the same first bytes are parsed whether it arrived
                // whole or not.
                let line = &line[..line.len().min(DETECT_BYTES)];
                match formats::by_id(id).parse(line, 0, id) {
                    Ok(ev) => out.push(ev),
                    Err(reason) => self.malformed(reason, out),
                }
                self.skipping = true;
                match newline {
                    Some(i) => self.pos += i + 1,
                    None => {
                        self.pos = self.buf.len();
                        self.state = State::RestOfLine;
                    }
                }
                true
            }
            LineStart::NotAStart | LineStart::NeedMore => {
                if !self.skipping {
                    self.malformed(MalformedReason::UnexpectedLine, out);
                }
                self.state = State::RestOfLine;
                true
            }
        }
    }

    /// Scans a record body from `pos`. Returns false when more bytes are needed.
    fn scan_body(&mut self, out: &mut Vec<Event>) -> bool {
        let State::Body {
            start,
            body_at,
            mut depth,
            mut in_str,
            mut esc,
        } = self.state
        else {
            return true;
        };
        // A body is only entered through a recognised line start, so the format is known.
        let Some(id) = self.format else {
            self.state = State::RestOfLine;
            return true;
        };
        let format = formats::by_id(id);
        let mut i = self.pos;
        while i < self.buf.len() {
            if in_str && !esc {
                // Jump over string contents: only a quote, backslash or newline matters.
                match memchr::memchr3(b'"', b'\\', b'\n', &self.buf[i..]) {
                    Some(skip) => i += skip,
                    None => {
                        i = self.buf.len();
                        break;
                    }
                }
            }
            let b = self.buf[i];
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                } else if b == b'\n' {
                    // Invalid JSON; let the newline resynchronise below.
                    in_str = false;
                    continue;
                }
            } else {
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            if let Some(ev) = self.read_whole_closed(id, start, i) {
                                out.push(ev);
                                self.one_pass_records += 1;
                            } else {
                                match format.parse(&self.buf[start..=i], body_at, id) {
                                    Ok(ev) => out.push(ev),
                                    Err(reason) => self.malformed(reason, out),
                                }
                            }
                            self.pos = i + 1;
                            self.state = State::RestOfLine;
                            return true;
                        }
                    }
                    b'\n' => {
                        let next = &self.buf[i + 1..];
                        let kind = match next.first() {
                            None => LineStart::NeedMore,
                            Some(&first) if !format.may_start(first) => LineStart::NotAStart,
                            Some(_) => match memchr(b'\n', next) {
                                Some(n) => format.line_start(&next[..n], true),
                                None => format.line_start(next, false),
                            },
                        };
                        match kind {
                            LineStart::Start { .. }
                            | LineStart::StartWithoutBody
                            | LineStart::Line => {
                                self.malformed(MalformedReason::Unterminated, out);
                                self.pos = i + 1;
                                self.state = State::LineStart;
                                return true;
                            }
                            LineStart::NeedMore => {
                                // Come back to this newline when the next line is readable.
                                self.pos = i;
                                self.state = State::Body {
                                    start,
                                    body_at,
                                    depth,
                                    in_str,
                                    esc,
                                };
                                return false;
                            }
                            LineStart::NotAStart => {}
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
            if i - start > MAX_RECORD_BYTES {
                return self.oversize(i, out);
            }
        }
        // Also after a jump over string contents to the end of what was read: a string
        // that never closes is bounded like any other body.
        if i - start > MAX_RECORD_BYTES {
            return self.oversize(i, out);
        }
        self.pos = i;
        self.state = State::Body {
            start,
            body_at,
            depth,
            in_str,
            esc,
        };
        false
    }

    /// The one-pass reader's event for the record from `start` that the body scan
    /// closed at `end`, if it takes the record with exactly that length. A record is
    /// offered to it at its line start, but one that is not all in the buffer yet
    /// (one per read, where the read ends) is declined there; this second offer keeps
    /// those from the general parser, which costs ~20x more on the JSON layout.
    fn read_whole_closed(&self, id: FormatId, start: usize, end: usize) -> Option<Event> {
        if !self.one_pass {
            return None;
        }
        let record = &self.buf[start..];
        let line_len = memchr(b'\n', record)?;
        let (event, len) = formats::by_id(id).read_whole(record, line_len, id)?;
        (len == end + 1 - start).then_some(event)
    }

    /// The record at the body being scanned grew past [`MAX_RECORD_BYTES`]: count it and
    /// skip to the next line.
    fn oversize(&mut self, at: usize, out: &mut Vec<Event>) -> bool {
        self.malformed(MalformedReason::Oversize, out);
        self.skipping = true;
        self.pos = at;
        self.state = State::RestOfLine;
        true
    }

    /// Drops bytes no longer needed, keeping memory bounded.
    fn compact(&mut self) {
        let keep_from = match self.state {
            State::Body { start, .. } => start,
            _ => self.pos,
        };
        if keep_from == 0 {
            return;
        }
        self.buf.drain_front(keep_from);
        self.base += keep_from as u64;
        self.pos -= keep_from;
        if let State::Body { start, .. } = &mut self.state {
            *start -= keep_from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, AuditEvent};
    use crate::generate::{write_record, Generator, Layout, Spec};

    const TEXT: FormatId = 0;
    const JSON: FormatId = 1;

    fn records(n: usize, layout: Layout) -> (Vec<u8>, Vec<crate::generate::Record>) {
        let recs: Vec<_> = Generator::new(Spec::default()).take(n).collect();
        let mut out = Vec::new();
        for r in &recs {
            write_record(&mut out, layout, r, 3600).unwrap();
        }
        (out, recs)
    }

    fn frame(chunks: &[&[u8]], format: Option<FormatId>) -> (Vec<Event>, Framer) {
        let mut f = Framer::new(format, ResumePoint::default());
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        (out, f)
    }

    fn audits(events: &[Event]) -> Vec<AuditEvent> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Audit(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    fn malformed(events: &[Event]) -> Vec<MalformedReason> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Malformed { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_layouts_frame_every_record_and_detect_their_format() {
        for (layout, id) in [(Layout::Text, TEXT), (Layout::Json, JSON)] {
            let (bytes, recs) = records(50, layout);
            let (events, f) = frame(&[&bytes], None);
            assert_eq!(f.format(), Some(id));
            assert_eq!(malformed(&events), vec![]);
            let got = audits(&events);
            assert_eq!(got.len(), 50);
            for (ev, r) in got.iter().zip(&recs) {
                assert_eq!(ev.timestamp_ms, r.timestamp_ms);
                assert_eq!(ev.action, Action::from_name(r.action));
                assert_eq!(ev.success, r.success);
                assert_eq!(ev.user.is_some(), r.username.is_some());
            }
            assert_eq!(
                f.resume_point(),
                ResumePoint {
                    offset: bytes.len() as u64,
                    ..Default::default()
                }
            );
        }
    }

    /// Frames `bytes` cut at `cuts` with and without the one-pass readers and asserts
    /// the same events and resume points after every feed and at the end. Returns how
    /// many records the one-pass readers took.
    fn assert_one_pass_changes_nothing(
        bytes: &[u8],
        cuts: &[usize],
        format: Option<FormatId>,
    ) -> u64 {
        let mut fast = Framer::new(format, ResumePoint::default());
        let mut general = Framer::general_only(format, ResumePoint::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut from = 0;
        for &cut in cuts.iter().chain([&bytes.len()]) {
            let cut = cut.clamp(from, bytes.len());
            fast.feed(&bytes[from..cut], &mut a);
            general.feed(&bytes[from..cut], &mut b);
            assert_eq!(a, b, "events after a feed to {cut}");
            assert_eq!(
                fast.resume_point(),
                general.resume_point(),
                "resume point at {cut}"
            );
            from = cut;
        }
        fast.finish(&mut a);
        general.finish(&mut b);
        assert_eq!(a, b, "events at the end");
        assert_eq!(general.one_pass_records(), 0);
        fast.one_pass_records()
    }

    /// Bytes the mutations write: structure, escapes, digits, line ends, bad UTF-8.
    const MUTATIONS: &[u8] = b"\"\\\n\r{}[] ,:0912aenltu\t\x00\xc3\xa9\xff";

    fn mutate(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..bytes.len());
            match rng.u8(..5) {
                0 => bytes[at] = MUTATIONS[rng.usize(..MUTATIONS.len())],
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, MUTATIONS[rng.usize(..MUTATIONS.len())]),
                // A member line written twice, or a line lost.
                3 | 4 => {
                    let start = bytes[..at]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    let end = memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1);
                    let line = bytes[start..end].to_vec();
                    if rng.bool() {
                        bytes.splice(end..end, line);
                    } else {
                        bytes.drain(start..end);
                    }
                }
                _ => unreachable!(),
            }
            if bytes.is_empty() {
                return;
            }
        }
    }

    #[test]
    fn the_one_pass_readers_take_upstream_records_and_change_no_event() {
        for (layout, id) in [(Layout::Text, TEXT), (Layout::Json, JSON)] {
            let (clean, recs) = records(400, layout);
            let took = assert_one_pass_changes_nothing(&clean, &[], None);
            // Every record upstream writes, redirect failures (pair keys) included.
            assert!(recs
                .iter()
                .any(|r| r.action == "USER_AUTHORIZATION" && !r.success));
            assert_eq!(took as usize, recs.len(), "{layout:?}");
            let mut rng = fastrand::Rng::with_seed(id.into());
            let (mut took, mut general) = (0, 0);
            for _ in 0..600 {
                let start = rng.usize(..recs.len() - 8);
                let mut bytes = records(start + 8, layout).0;
                bytes.drain(..bytes.len() * start / (start + 8));
                mutate(&mut rng, &mut bytes);
                let cuts: Vec<usize> = (0..rng.usize(..4))
                    .map(|_| rng.usize(..=bytes.len()))
                    .collect();
                let mut cuts = cuts;
                cuts.sort_unstable();
                let format = if rng.bool() { Some(id) } else { None };
                let n = assert_one_pass_changes_nothing(&bytes, &cuts, format);
                took += n;
                general += 8 - n.min(8);
            }
            // Both paths were exercised on the mutated logs.
            assert!(
                took > 1000 && general > 300,
                "{layout:?}: {took} one-pass, {general} general"
            );
        }
    }

    #[test]
    fn a_record_cut_by_a_read_is_still_read_in_one_pass() {
        for layout in [Layout::Text, Layout::Json] {
            let (bytes, recs) = records(60, layout);
            // Cuts inside records, as where a read ends: 1 to 700 bytes apart.
            let mut rng = fastrand::Rng::with_seed(3);
            let mut cuts = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                at += rng.usize(1..700);
                cuts.push(at);
            }
            let took = assert_one_pass_changes_nothing(&bytes, &cuts, None);
            assert_eq!(took as usize, recs.len(), "{layout:?}");
        }
    }

    #[test]
    fn a_reused_buffer_frames_as_a_fresh_one_and_only_an_empty_framer_gives_it_up() {
        let (bytes, _) = records(40, Layout::Json);
        let (whole, _) = frame(&[&bytes], None);
        // Mid-record, the framer keeps its bytes.
        let (_, mut open) = frame(&[&bytes[..bytes.len() / 2 + 3]], None);
        assert!(open.take_spare().is_none());
        let mut finished = open;
        finished.finish(&mut Vec::new());
        let spare = finished.take_spare().unwrap();
        assert!(spare.len() > 1000 && spare.iter().any(|&b| b != 0));
        let mut reused = Framer::new(None, ResumePoint::default());
        reused.reuse(spare);
        let mut events = Vec::new();
        for chunk in bytes.chunks(777) {
            reused.feed(chunk, &mut events);
        }
        assert_eq!(events, whole);
    }

    #[test]
    fn json_layout_lines_end_in_crlf() {
        let (bytes, _) = records(3, Layout::Json);
        assert!(bytes.windows(2).filter(|w| w == b"\r\n").count() > 30);
        assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }

    #[test]
    fn a_record_split_at_every_byte_boundary_is_parsed_once_whole() {
        for layout in [Layout::Text, Layout::Json] {
            let (bytes, _) = records(3, layout);
            let (whole, _) = frame(&[&bytes], None);
            for cut in 0..=bytes.len() {
                let (events, _) = frame(&[&bytes[..cut], &bytes[cut..]], None);
                assert_eq!(events, whole, "{layout:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_is_the_same_as_one_write() {
        let (bytes, _) = records(5, Layout::Text);
        let (whole, _) = frame(&[&bytes], None);
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(frame(&pieces, None).0, whole);
    }

    #[test]
    fn reading_into_the_buffer_frames_as_feeding_does() {
        for layout in [Layout::Text, Layout::Json] {
            let (bytes, _) = records(300, layout);
            let (whole, fed) = frame(&[&bytes], None);
            let mut rng = fastrand::Rng::with_seed(7);
            let mut framer = Framer::new(None, ResumePoint::default());
            let mut events = Vec::new();
            let mut at = 0;
            loop {
                // A failed read changes nothing.
                let failed =
                    framer.feed_from(100, |_| Err(std::io::Error::other("no")), &mut events);
                assert!(failed.is_err());
                let want = rng.usize(1..5000);
                let n = framer
                    .feed_from(
                        want,
                        |room| {
                            let n = room.len().min(bytes.len() - at).min(rng.usize(0..=want));
                            room[..n].copy_from_slice(&bytes[at..at + n]);
                            Ok(n)
                        },
                        &mut events,
                    )
                    .unwrap();
                at += n;
                if at == bytes.len() {
                    break;
                }
            }
            assert_eq!(events, whole);
            assert_eq!(framer.resume_point(), fed.resume_point());
            assert_eq!(framer.fed_offset(), bytes.len() as u64);
        }
    }

    #[test]
    fn the_last_record_is_counted_without_waiting_for_the_next() {
        let (bytes, _) = records(2, Layout::Text);
        // Cut right after the second record's closing brace, before its newline.
        let end = bytes.len() - 1;
        let (events, _) = frame(&[&bytes[..end]], None);
        assert_eq!(audits(&events).len(), 2);
    }

    #[test]
    fn malformed_records_between_good_ones_leave_the_neighbours_exact() {
        let (good, _) = records(4, Layout::Text);
        let text = String::from_utf8(good).unwrap();
        let starts: Vec<usize> = text.match_indices("\n2026").map(|(i, _)| i + 1).collect();
        let mut mixed = String::new();
        mixed.push_str(&text[..starts[0]]);
        // Broken JSON body, properly closed.
        mixed.push_str(
            "2026-11-01 00:00:01,000 INFO  [m] [t]  [c] (A.java:1) - {\n  \"action\" : ,\n}\n",
        );
        // A header whose body never closes: cut by the next record.
        mixed.push_str("2026-11-01 00:00:02,000 INFO  [m] [t]  [c] (A.java:1) - {\n  \"action\" : \"TOKEN_REQUEST\",\n");
        mixed.push_str(&text[starts[0]..starts[1]]);
        // Stray lines and a header without a body.
        mixed.push_str("java.lang.NullPointerException\n\tat foo\n");
        mixed.push_str("2026-11-01 00:00:03,000 INFO  [m] [t]  [c] (A.java:1) - plain text\n");
        // Valid JSON, missing `success`.
        mixed.push_str("2026-11-01 00:00:04,000 INFO  [m] [t]  [c] (A.java:1) - {\"action\":\"USER_INFO\",\"timestamp\":1}\n");
        mixed.push_str(&text[starts[1]..]);
        let (events, _) = frame(&[mixed.as_bytes()], None);
        assert_eq!(audits(&events).len(), 4);
        assert_eq!(
            malformed(&events),
            vec![
                MalformedReason::InvalidJson,
                MalformedReason::Unterminated,
                MalformedReason::UnexpectedLine,
                MalformedReason::UnexpectedLine,
                MalformedReason::NoJsonBody,
                MalformedReason::MissingField,
            ]
        );
        // Same answer at every split point.
        for cut in (0..mixed.len()).step_by(7) {
            let (split, _) = frame(&[&mixed.as_bytes()[..cut], &mixed.as_bytes()[cut..]], None);
            assert_eq!(split, events, "cut at {cut}");
        }
    }

    #[test]
    fn json_layout_resynchronises_on_a_broken_event() {
        let (good, _) = records(2, Layout::Json);
        let mut mixed = b"{\r\n  \"instant\" : {\r\n    \"epochSecond\" : 1,\r\n".to_vec();
        mixed.extend_from_slice(&good);
        mixed
            .extend_from_slice(b"garbage\r\n{\r\n  \"message\" : \"not an audit record\"\r\n}\r\n");
        let (events, _) = frame(&[&mixed], Some(JSON));
        assert_eq!(audits(&events).len(), 2);
        assert_eq!(
            malformed(&events),
            vec![
                MalformedReason::Unterminated,
                MalformedReason::UnexpectedLine,
                MalformedReason::BadMessage
            ]
        );
    }

    #[test]
    fn an_oversize_record_is_skipped_to_the_next_start_and_memory_stays_bounded() {
        let (good, _) = records(2, Layout::Text);
        let mut big =
            b"2026-11-01 00:00:01,000 INFO  [m] [t]  [c] (A.java:1) - {\n  \"pad\" : [\n".to_vec();
        let mut f = Framer::new(Some(TEXT), ResumePoint::default());
        let mut out = Vec::new();
        f.feed(&big, &mut out);
        big.clear();
        for _ in 0..40_000 {
            f.feed(
                b"    \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\n",
                &mut out,
            );
            assert!(f.buf.len() <= MAX_RECORD_BYTES + 64);
        }
        f.feed(b"  ]\n}\n", &mut out);
        f.feed(&good, &mut out);
        assert_eq!(malformed(&out), vec![MalformedReason::Oversize]);
        assert_eq!(audits(&out).len(), 2);
    }

    #[test]
    fn resuming_at_the_resume_point_frames_the_rest_exactly_once() {
        let (bytes, _) = records(6, Layout::Text);
        let (whole, _) = frame(&[&bytes], None);
        for cut in (0..bytes.len()).step_by(13) {
            let (mut first, f) = frame(&[&bytes[..cut]], Some(TEXT));
            let at = f.resume_point();
            let mut rest = Framer::new(Some(TEXT), at);
            rest.feed(&bytes[at.offset as usize..], &mut first);
            assert_eq!(first, whole, "resume after cut {cut} at {at:?}");
        }
    }

    #[test]
    fn a_hole_of_nuls_before_a_record_is_skipped() {
        let (bytes, _) = records(2, Layout::Text);
        let mut holed = vec![0u8; 5000];
        holed.extend_from_slice(&bytes);
        let (events, _) = frame(&[&holed[..2500], &holed[2500..]], None);
        assert_eq!(malformed(&events), vec![]);
        assert_eq!(audits(&events).len(), 2);
    }

    #[test]
    fn finish_reports_a_record_left_open() {
        let (bytes, _) = records(1, Layout::Text);
        let (mut events, mut f) = frame(&[&bytes[..bytes.len() / 2]], None);
        f.finish(&mut events);
        assert_eq!(malformed(&events), vec![MalformedReason::Unterminated]);
        let (mut events, mut f) = frame(&[&bytes], None);
        f.finish(&mut events);
        assert_eq!(malformed(&events), vec![]);
    }

    /// A string that opens and never closes is bounded like any body: 100 MB of it in
    /// 64 KiB reads never holds more than the record bound, and the next record counts.
    #[test]
    fn a_string_that_never_closes_is_bounded_and_its_neighbours_count() {
        let (good, _) = records(3, Layout::Text);
        let mut f = Framer::new(Some(TEXT), ResumePoint::default());
        let mut out = Vec::new();
        f.feed(
            b"2026-11-01 00:00:01,000 INFO  [m] [t]  [c] (A.java:1) - {\"pad\" : \"",
            &mut out,
        );
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(100 << 20) / chunk.len() {
            f.feed(&chunk, &mut out);
            assert!(
                f.buf.len() <= MAX_RECORD_BYTES + chunk.len(),
                "{}",
                f.buf.len()
            );
        }
        f.feed(b"\n", &mut out);
        f.feed(&good, &mut out);
        assert_eq!(malformed(&out), vec![MalformedReason::Oversize]);
        assert_eq!(audits(&out).len(), 3);
    }

    /// A line of only spaces is consumed as it arrives: the buffer stays small (so no
    /// read scans it again), and the records around it count.
    #[test]
    fn a_long_blank_line_is_consumed_as_it_arrives() {
        let (good, _) = records(2, Layout::Text);
        let (events, _) = frame(&[&good], None);
        let split = good.len() / 2;
        let cut = good[..split].iter().rposition(|b| *b == b'\n').unwrap() + 1;
        let mut f = Framer::new(None, ResumePoint::default());
        let mut out = Vec::new();
        f.feed(&good[..cut], &mut out);
        let spaces = vec![b' '; 64 * 1024];
        for _ in 0..(30 << 20) / spaces.len() {
            f.feed(&spaces, &mut out);
            assert!(f.buf.len() <= BLANK_KEPT + spaces.len(), "{}", f.buf.len());
        }
        f.feed(b"\n", &mut out);
        f.feed(&good[cut..], &mut out);
        assert_eq!(out, events, "the blank line costs nothing");
        // Text after a long blank is an unexpected line, as text after a short one is.
        let mut out = Vec::new();
        let mut f = Framer::new(Some(TEXT), ResumePoint::default());
        f.feed(&spaces, &mut out);
        f.feed(b"stray text\n", &mut out);
        f.feed(&good, &mut out);
        assert_eq!(malformed(&out), vec![MalformedReason::UnexpectedLine]);
        assert_eq!(audits(&out).len(), 2);
    }

    /// A line longer than the header and detection windows (a 70 KiB thread name, a
    /// 70 KiB string) is decided the same wherever the reads split it.
    #[test]
    fn decisions_on_long_lines_do_not_depend_on_read_boundaries() {
        let (good, _) = records(2, Layout::Text);
        let long = |header_pad: usize, body_pad: usize| {
            let mut line = b"2026-11-01 00:00:01,000 INFO  [m] [".to_vec();
            line.extend(std::iter::repeat_n(b't', header_pad));
            line.extend_from_slice(b"]  [c] (A.java:1) - {\"pad\" : \"");
            line.extend(std::iter::repeat_n(b'y', body_pad));
            line.extend_from_slice(b"\"}\n");
            line.extend_from_slice(&good);
            line
        };
        for (bytes, format) in [
            (long(70 * 1024, 10), Some(TEXT)),
            (long(70 * 1024, 10), None),
            (long(10, 70 * 1024), None),
        ] {
            let (whole, f) = frame(&[&bytes], format);
            let detected = f.format();
            assert!(audits(&whole).len() >= 2);
            for split in (1..bytes.len()).step_by(4093) {
                let (parts, f) = frame(&[&bytes[..split], &bytes[split..]], format);
                assert_eq!(f.format(), detected, "split at {split}");
                assert_eq!(parts, whole, "split at {split}");
            }
        }
    }
}
