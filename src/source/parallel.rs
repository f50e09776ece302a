//! Reads a long unread stretch of a file (a replay, a backfill) on several cores.
//!
//! The stretch is cut at record starts, each piece is framed by its own framer on a
//! worker thread, and the pieces' events are handed on in file order, so the store
//! sees exactly the event sequence one framer would have produced. That holds because
//! a framer reaching a line that starts a record is always at a line start there,
//! whatever came before: a record still open is reported unterminated, which is what
//! [`Framer::finish`] reports at the end of the piece before it. The live tail stays
//! with one framer per file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex, PoisonError};

use memchr::memchr;
use tokio_util::sync::CancellationToken;

use super::formats::{self, LineStart};
use super::framer::{Framer, ResumePoint};
use crate::event::{Event, FormatId};

/// An unread stretch shorter than this is read by one framer.
pub const MIN_PARALLEL_BYTES: u64 = 16 << 20;
/// The size of a piece: large enough that finding its start is noise, small enough
/// that an audit log's piece makes fewer than 2,048 events, whose vector (under
/// 128 KiB) the allocator serves from its heap: a larger one is mapped and unmapped
/// for every piece (`main.rs` fixes glibc's mmap threshold), which cost a page fault
/// per 4 KiB of events, 30k faults in a 1M-record replay.
const PIECE_BYTES: u64 = 512 << 10;
/// How far past a nominal cut a record start is looked for; a stretch without one is
/// joined to the piece before it.
const CUT_SEARCH_BYTES: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// One piece framed: its events, and its framer after it (finished at the next
/// piece's start, or open at the end of the stretch).
pub struct Piece {
    pub events: Vec<Event>,
    pub framer: Framer,
    /// Whether `events` holds a malformed record, found by the worker, so that the
    /// thread applying the pieces looks for them (to log) only then.
    pub malformed: bool,
}

/// Why the stretch was not read to its end; the pieces handed on before it stand.
#[derive(Debug)]
pub enum Interrupted<E> {
    /// A read failed, or the tailer is stopping: the framer of the last piece handed
    /// on resumes exactly where the failed piece starts.
    Read,
    /// What the caller's `each` returned.
    Sink(E),
}

/// Whether the record framer for `format` starts a record at the complete `line`.
fn starts_record(format: FormatId, line: &[u8]) -> bool {
    line.first().is_some_and(|&b| b != 0)
        && matches!(
            formats::by_id(format).line_start(line, true),
            LineStart::Start { .. } | LineStart::Line
        )
}

/// The first record start in `(from, to)`, searched for up to [`CUT_SEARCH_BYTES`].
fn record_start_after(file: &File, format: FormatId, from: u64, to: u64) -> Option<u64> {
    // From one byte before, so that a line starting at `from + 1` is seen whole.
    let mut window = Vec::new();
    let mut at = from;
    // A record start is usually within a few kilobytes: read that first.
    let mut chunk = 8 << 10;
    while window.len() < CUT_SEARCH_BYTES && at < to {
        let want = chunk.min(usize::try_from(to - at).unwrap_or(chunk));
        chunk = READ_CHUNK;
        let old = window.len();
        window.resize(old + want, 0);
        let n = file.read_at(&mut window[old..], at).ok()?;
        window.truncate(old + n);
        if n == 0 {
            break;
        }
        at += n as u64;
        let mut i = 0;
        while let Some(nl) = memchr(b'\n', &window[i..]) {
            let line_at = i + nl + 1;
            let Some(end) = memchr(b'\n', &window[line_at..]) else {
                break;
            };
            if starts_record(format, &window[line_at..line_at + end]) {
                return Some(from + line_at as u64);
            }
            i = line_at;
        }
    }
    None
}

/// Piece boundaries from `start` to `end`: `start`, record starts, `end`.
fn cuts(file: &File, format: FormatId, start: u64, end: u64) -> Vec<u64> {
    let mut cuts = vec![start];
    let mut nominal = start + PIECE_BYTES;
    while nominal + PIECE_BYTES / 2 < end {
        match record_start_after(file, format, nominal, end) {
            Some(cut) if cut < end => {
                cuts.push(cut);
                nominal = cut + PIECE_BYTES;
            }
            _ => nominal += PIECE_BYTES,
        }
    }
    cuts.push(end);
    cuts
}

/// Frames `[from, to)` of `file` with `framer`, finishing it at `to` unless `last`.
/// `events_hint`: how many events to make room for at once.
fn frame_piece(
    file: &File,
    mut framer: Framer,
    to: u64,
    last: bool,
    stop: Option<&CancellationToken>,
    events_hint: usize,
) -> Option<Piece> {
    let mut events = Vec::with_capacity(events_hint);
    // One read and the part of a record left over from the one before.
    framer.reserve(READ_CHUNK + READ_CHUNK / 2);
    let mut at = framer.fed_offset();
    while at < to {
        if stop.is_some_and(CancellationToken::is_cancelled) {
            return None;
        }
        let want = READ_CHUNK.min(usize::try_from(to - at).unwrap_or(READ_CHUNK));
        let n = framer
            .feed_from(want, |room| file.read_at(room, at), &mut events)
            .ok()?;
        if n == 0 {
            // Shrunk under us: the tailer's next poll sees the truncation.
            return None;
        }
        events.push(Event::BytesRead(n as u64));
        at += n as u64;
    }
    if !last {
        framer.finish(&mut events);
    }
    let malformed = events.iter().any(|e| matches!(e, Event::Malformed { .. }));
    Some(Piece {
        events,
        framer,
        malformed,
    })
}

/// Reads `[framer.fed_offset(), end)` of `file` on `threads` threads and hands each
/// piece, in order, to `each`. `framer` must know its format. Returns the framer
/// after the last piece handed on.
///
/// The worker that framed a piece hands it on itself, when the piece before has been:
/// `threads` threads on as many cores, not one more that applies the pieces and
/// preempts a worker for each (which cost a fifth of two threads' speed). Each worker
/// holds at most the one piece waiting for its turn.
pub fn read_stretch<E: Send>(
    file: &File,
    framer: &Framer,
    end: u64,
    threads: usize,
    stop: Option<&CancellationToken>,
    each: impl FnMut(Piece) -> Result<(), E> + Send,
) -> Result<(), Interrupted<E>> {
    let Some(format) = framer.format() else {
        return Err(Interrupted::Read);
    };
    let cuts = cuts(file, format, framer.fed_offset(), end);
    let pieces = cuts.len() - 1;
    let threads = threads.clamp(1, pieces.max(1));
    let turns = Turns {
        state: Mutex::new(TurnState {
            next: 0,
            each,
            ended: None,
        }),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for w in 0..threads {
            let (turns, cuts) = (&turns, &cuts);
            // Piece 0 continues the file's own framer; a copy, so that a failed read
            // leaves the caller's as it was.
            let mut first = (w == 0).then(|| framer.clone());
            scope.spawn(move || {
                // Ends the stretch if this worker panics, so no other waits forever.
                let _guard = EndOnPanic(turns);
                // The last piece's buffer and event count: the next piece reads into
                // the same memory and reserves its events at once.
                let (mut spare, mut events_hint) = (None, 0);
                for k in (w..pieces).step_by(threads) {
                    let start = first.take().unwrap_or_else(|| {
                        let mut framer = Framer::new(
                            Some(format),
                            ResumePoint {
                                offset: cuts[k],
                                ..ResumePoint::default()
                            },
                        );
                        if let Some(spare) = spare.take() {
                            framer.reuse(spare);
                        }
                        framer
                    });
                    let last = k + 1 == pieces;
                    let mut piece = frame_piece(file, start, cuts[k + 1], last, stop, events_hint);
                    if let Some(piece) = &mut piece {
                        events_hint = piece.events.len() + piece.events.len() / 8;
                        spare = piece.framer.take_spare();
                    }
                    if !turns.hand_on(k, piece) {
                        return;
                    }
                }
            });
        }
    });
    let state = turns
        .state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    match state.ended {
        Some(interrupted) => Err(interrupted),
        None => Ok(()),
    }
}

/// Whose turn it is to hand a piece on, and how the stretch ended if it did.
struct TurnState<F, E> {
    next: usize,
    each: F,
    ended: Option<Interrupted<E>>,
}

struct Turns<F, E> {
    state: Mutex<TurnState<F, E>>,
    changed: Condvar,
}

impl<F: FnMut(Piece) -> Result<(), E>, E> Turns<F, E> {
    /// Waits for piece `k`'s turn and hands it on (`None`: its read failed, which ends
    /// the stretch there). Returns whether the stretch goes on.
    fn hand_on(&self, k: usize, piece: Option<Piece>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.next != k && state.ended.is_none() {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.ended.is_none() {
            match piece.map(|piece| (state.each)(piece)) {
                Some(Ok(())) => state.next += 1,
                Some(Err(e)) => state.ended = Some(Interrupted::Sink(e)),
                None => state.ended = Some(Interrupted::Read),
            }
        }
        let goes_on = state.ended.is_none();
        drop(state);
        self.changed.notify_all();
        goes_on
    }
}

/// Ends the stretch (as a failed read) when dropped by a panicking worker.
struct EndOnPanic<'a, F, E>(&'a Turns<F, E>);

impl<F, E> Drop for EndOnPanic<'_, F, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.ended.is_none() {
                state.ended = Some(Interrupted::Read);
            }
            drop(state);
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{write_record, Generator, Layout, Spec};
    use std::io::Write;

    fn log(layout: Layout, records: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for r in Generator::new(Spec::default()).take(records) {
            write_record(&mut out, layout, &r, 0).unwrap();
        }
        out
    }

    fn one_framer(bytes: &[u8], format: FormatId, upto: usize) -> (Vec<Event>, Framer) {
        let mut f = Framer::new(Some(format), ResumePoint::default());
        let mut events = Vec::new();
        for chunk in bytes[..upto].chunks(READ_CHUNK) {
            f.feed(chunk, &mut events);
            events.push(Event::BytesRead(chunk.len() as u64));
        }
        (events, f)
    }

    #[test]
    fn pieces_on_many_threads_give_the_events_of_one_framer_in_order() {
        for (layout, format) in [(Layout::Text, 0), (Layout::Json, 1)] {
            let mut bytes = log(layout, 30_000);
            // Damage near where pieces are cut: a record left open, a stray line, NULs.
            // The first one opens just before the first nominal cut (the stretch starts
            // at 1000) and runs past it, so that it ends the first piece.
            for (i, at) in [
                1000 + PIECE_BYTES,
                2 * PIECE_BYTES + 7,
                3 * PIECE_BYTES - 100,
            ]
            .into_iter()
            .enumerate()
            {
                let at = at as usize;
                // The record start before it.
                let start: &[u8] = if layout == Layout::Text {
                    b"\n20"
                } else {
                    b"\n{"
                };
                let line = memchr::memmem::rfind(&bytes[..at], start).unwrap() + 1;
                match i {
                    0 => {
                        let open = match layout {
                            Layout::Text => {
                                b"2026-11-01 00:00:00,000 INFO  [m] [t]  [c] (A.java:1) - {\n"
                                    .to_vec()
                            }
                            Layout::Json => b"{\r\n".to_vec(),
                        };
                        bytes.splice(
                            line..line,
                            [open, b"  \"ip\" : \"x\",\n".repeat(40)].concat(),
                        )
                    }
                    1 => bytes.splice(line..line, b"garbage\n".to_vec()),
                    _ => bytes.splice(line..line, vec![0; 300]),
                };
            }
            let mut tmp = tempfile::NamedTempFile::new().unwrap();
            tmp.write_all(&bytes).unwrap();
            let file = tmp.as_file();
            // The stretch starts mid-record (as after an earlier read) and ends mid-record.
            let (begin, end) = (1000, bytes.len() - 333);
            // The BytesRead events differ in size; compare the records and the total.
            let records = |e: &[Event]| -> Vec<Event> {
                e.iter()
                    .filter(|e| !matches!(e, Event::BytesRead(_)))
                    .cloned()
                    .collect()
            };
            let (whole, _) = one_framer(&bytes, format, end);
            let (before, head) = one_framer(&bytes, format, begin);
            let mut want = records(&whole);
            let done = records(&before);
            assert_eq!(want[..done.len()], done[..]);
            want.drain(..done.len());
            let read = |e: &[Event]| -> u64 {
                e.iter()
                    .map(|e| match e {
                        Event::BytesRead(n) => *n,
                        _ => 0,
                    })
                    .sum()
            };
            for threads in [1, 2, 3, 8] {
                let mut got = Vec::new();
                let mut last = None;
                let (mut pieces, mut flagged) = (0, 0);
                read_stretch::<()>(file, &head, end as u64, threads, None, |p| {
                    let malformed = p
                        .events
                        .iter()
                        .any(|e| matches!(e, Event::Malformed { .. }));
                    assert_eq!(p.malformed, malformed);
                    flagged += usize::from(malformed);
                    got.extend(p.events);
                    last = Some(p.framer);
                    pieces += 1;
                    Ok(())
                })
                .unwrap();
                assert!(pieces >= 4, "{pieces} pieces");
                assert!(flagged > 0, "the damage is reported");
                let got_records = records(&got);
                let first_difference = got_records.iter().zip(&want).position(|(a, b)| a != b);
                assert_eq!(
                    (first_difference, got_records.len()),
                    (None, want.len()),
                    "{layout:?}, {threads} threads"
                );
                assert_eq!(read(&got) + read(&before), end as u64);
                // The open record at the end continues in the last framer.
                let (_, reference) = one_framer(&bytes, format, end);
                assert_eq!(last.unwrap().resume_point(), reference.resume_point());
            }
        }
    }

    #[test]
    fn cuts_fall_on_record_starts_and_a_stretch_without_one_joins_its_neighbour() {
        let bytes = log(Layout::Text, 12_000);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&bytes).unwrap();
        let found = cuts(tmp.as_file(), 0, 0, bytes.len() as u64);
        assert!(found.len() > 2);
        for &c in &found[1..found.len() - 1] {
            assert_eq!(bytes[c as usize - 1], b'\n');
            assert!(bytes[c as usize..].starts_with(b"20"), "cut at {c}");
        }
        let mut blank = tempfile::NamedTempFile::new().unwrap();
        blank.write_all(&vec![b'x'; 6 << 20]).unwrap();
        assert_eq!(cuts(blank.as_file(), 0, 0, 6 << 20), vec![0, 6 << 20]);
    }

    #[test]
    fn a_panic_while_handing_on_ends_the_stretch_instead_of_leaving_workers_waiting() {
        let bytes = log(Layout::Text, 60_000);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&bytes).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let head = Framer::new(Some(0), ResumePoint::default());
            let mut handed = 0;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_stretch::<()>(tmp.as_file(), &head, bytes.len() as u64, 2, None, |_| {
                    handed += 1;
                    assert!(handed < 2, "the second piece breaks the sink");
                    Ok(())
                })
            }));
            let _ = done.send(result.is_err());
        });
        let panicked = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the workers did not end");
        assert!(panicked, "the panic reaches the caller");
    }

    #[test]
    fn a_failed_read_stops_after_the_pieces_already_handed_on() {
        let bytes = log(Layout::Text, 60_000);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&bytes).unwrap();
        let head = Framer::new(Some(0), ResumePoint::default());
        let stop = CancellationToken::new();
        let mut handed = 0;
        let result = read_stretch::<()>(
            tmp.as_file(),
            &head,
            bytes.len() as u64,
            2,
            Some(&stop),
            |_| {
                handed += 1;
                stop.cancel();
                Ok(())
            },
        );
        assert!(matches!(result, Err(Interrupted::Read)));
        assert!(handed >= 1);
    }
}
