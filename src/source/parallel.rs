//! Reads a long unread stretch of a file (a replay, a backfill) on several cores.
//!
//! The stretch is cut at record starts, each piece is framed by its own framer on a
//! worker thread, and the pieces' events are handed on in file order, so the store
//! sees exactly the event sequence one framer would have produced. That holds because
//! a framer reaching a line that starts a record is always at a line start there,
//! whatever came before: a record still open is reported unterminated, which is what
//! [`Framer::finish`] reports at the end of the piece before it. The live tail stays
//! with one framer per file.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use memchr::memchr;
use tokio_util::sync::CancellationToken;

use super::formats::{self, LineStart};
use super::framer::{Framer, ResumePoint};
use crate::event::{Event, FormatId};

/// An unread stretch shorter than this is read by one framer.
pub const MIN_PARALLEL_BYTES: u64 = 16 << 20;
/// The size of a piece: large enough that finding its start is noise, small enough
/// that a piece makes fewer than 2,048 events (a server log's ~1,500, an audit log's
/// fewer), whose vector (under 128 KiB) the allocator serves from its heap: a larger
/// one is mapped and unmapped for every piece (`main.rs` fixes glibc's mmap
/// threshold), which cost a page fault per 4 KiB of events and, with other threads
/// running, a TLB shootdown on every core per unmap: 14.7k faults and +15 % CPU in
/// a two-thread replay of a 1M-event server log at 512 KiB.
const PIECE_BYTES: u64 = 256 << 10;
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
/// No thread waits for another's turn: each worker takes the next piece not yet
/// taken, frames it and leaves it for whoever is handing pieces on, which is the
/// first worker to find the next one in order ready. So `threads` threads keep as
/// many cores busy framing, and the store's share moves from worker to worker
/// instead of stalling one (a fixed turn per worker made long logs, where the store
/// costs more, reach only 1.1-1.4x on two cores). A worker waits only when it would
/// run more than [`AHEAD_PER_THREAD`] pieces per thread ahead of the next to hand on,
/// which bounds the memory held.
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
    let handoff = Handoff {
        state: Mutex::new(HandoffState {
            taken: 0,
            next: 0,
            ready: BTreeMap::new(),
            handing_on: false,
            ended: None,
        }),
        changed: Condvar::new(),
        each: Mutex::new(each),
        pieces,
        ahead: threads * AHEAD_PER_THREAD,
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (handoff, cuts) = (&handoff, &cuts);
            scope.spawn(move || {
                // Ends the stretch if this worker panics, so no other waits forever.
                let _guard = EndOnPanic(handoff);
                // The last piece's buffer and event count: the next piece reads into
                // the same memory and reserves its events at once.
                let (mut spare, mut events_hint) = (None, 0);
                while let Some(k) = handoff.take() {
                    // Piece 0 continues the file's own framer; a copy, so that a
                    // failed read leaves the caller's as it was.
                    let start = if k == 0 {
                        framer.clone()
                    } else {
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
                    };
                    let last = k + 1 == pieces;
                    let mut piece = frame_piece(file, start, cuts[k + 1], last, stop, events_hint);
                    if let Some(piece) = &mut piece {
                        events_hint = piece.events.len() + piece.events.len() / 8;
                        spare = piece.framer.take_spare();
                    }
                    let failed = piece.is_none();
                    if !handoff.offer(k, piece) || failed {
                        return;
                    }
                }
            });
        }
    });
    let state = handoff
        .state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    match state.ended {
        Some(interrupted) => Err(interrupted),
        None => Ok(()),
    }
}

/// How many pieces per thread a worker may frame ahead of the next to hand on.
const AHEAD_PER_THREAD: usize = 2;

/// The pieces between the workers and the sink.
struct HandoffState<E> {
    /// The next piece no worker has taken.
    taken: usize,
    /// The next piece to hand on.
    next: usize,
    /// Pieces framed before their turn (`None`: its read failed).
    ready: BTreeMap<usize, Option<Piece>>,
    /// Whether a worker is handing pieces on: one at a time, in order.
    handing_on: bool,
    ended: Option<Interrupted<E>>,
}

struct Handoff<F, E> {
    state: Mutex<HandoffState<E>>,
    /// Signalled when `next` moves or the stretch ends.
    changed: Condvar,
    /// Called by the worker handing on, outside `state`'s lock, so that the others
    /// take and leave pieces meanwhile.
    each: Mutex<F>,
    pieces: usize,
    ahead: usize,
}

impl<F: FnMut(Piece) -> Result<(), E>, E> Handoff<F, E> {
    fn lock(&self) -> MutexGuard<'_, HandoffState<E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next piece to frame, once it is within `ahead` of the next to hand on;
    /// `None` when every piece is taken or the stretch has ended. The worker holding
    /// piece `next` never waits here, so the pieces always move.
    fn take(&self) -> Option<usize> {
        let mut state = self.lock();
        while state.ended.is_none()
            && state.taken < self.pieces
            && state.taken >= state.next + self.ahead
        {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.ended.is_some() || state.taken >= self.pieces {
            return None;
        }
        state.taken += 1;
        Some(state.taken - 1)
    }

    /// Leaves piece `k` to be handed on, and hands on every piece in order from
    /// `next` that is ready unless another worker is already doing so (it then
    /// sees piece `k` before it stops). Returns whether the stretch goes on.
    fn offer(&self, k: usize, piece: Option<Piece>) -> bool {
        let mut state = self.lock();
        if state.ended.is_some() {
            return false;
        }
        state.ready.insert(k, piece);
        if state.handing_on {
            return true;
        }
        state.handing_on = true;
        loop {
            let next = state.next;
            let Some(piece) = state.ready.remove(&next) else {
                break;
            };
            drop(state);
            let result = piece.map(|piece| {
                let mut each = self.each.lock().unwrap_or_else(PoisonError::into_inner);
                (*each)(piece)
            });
            state = self.lock();
            match result {
                Some(Ok(())) => state.next += 1,
                Some(Err(e)) => state.ended = Some(Interrupted::Sink(e)),
                None => state.ended = Some(Interrupted::Read),
            }
            self.changed.notify_all();
            if state.ended.is_some() {
                // What was framed past the end is dropped.
                state.ready.clear();
                break;
            }
        }
        state.handing_on = false;
        state.ended.is_none()
    }
}

/// Ends the stretch (as a failed read) when dropped by a panicking worker.
struct EndOnPanic<'a, F, E>(&'a Handoff<F, E>);

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

    /// A piece marked with its index.
    fn marked(k: usize) -> Option<Piece> {
        Some(Piece {
            events: vec![Event::BytesRead(k as u64)],
            framer: Framer::new(Some(0), ResumePoint::default()),
            malformed: false,
        })
    }

    fn handoff<F: FnMut(Piece) -> Result<(), ()>>(
        pieces: usize,
        ahead: usize,
        each: F,
    ) -> Handoff<F, ()> {
        Handoff {
            state: Mutex::new(HandoffState {
                taken: 0,
                next: 0,
                ready: BTreeMap::new(),
                handing_on: false,
                ended: None,
            }),
            changed: Condvar::new(),
            each: Mutex::new(each),
            pieces,
            ahead,
        }
    }

    #[test]
    fn a_piece_ready_before_its_turn_is_left_and_handed_on_in_order_by_whoever_comes_next() {
        let (done, finished) = std::sync::mpsc::channel();
        // On a thread of its own: a hand-off that waited for the turn would hang here.
        std::thread::spawn(move || {
            let (handed_on, order) = std::sync::mpsc::channel();
            let handoff = handoff(5, 5, move |p: Piece| {
                let _ = handed_on.send(p.events[0].clone());
                Ok(())
            });
            let mut went_on = Vec::new();
            for k in [1, 3, 0, 4, 2] {
                went_on.push(handoff.offer(k, marked(k)));
            }
            let state = handoff.state.into_inner().unwrap();
            assert!(state.ready.is_empty() && state.next == 5 && !state.handing_on);
            let order: Vec<Event> = order.try_iter().collect();
            let _ = done.send((went_on, order));
        });
        let (went_on, order) = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("offering a piece out of turn waited");
        assert_eq!(went_on, [true; 5]);
        let want: Vec<Event> = (0..5).map(Event::BytesRead).collect();
        assert_eq!(order, want);
    }

    #[test]
    fn a_worker_takes_no_piece_further_ahead_than_the_window() {
        let handoff = std::sync::Arc::new(handoff(10, 2, |_| Ok(())));
        let (taken, got) = std::sync::mpsc::channel();
        let worker = {
            let handoff = std::sync::Arc::clone(&handoff);
            std::thread::spawn(move || {
                while let Some(k) = handoff.take() {
                    if taken.send(k).is_err() {
                        break;
                    }
                }
            })
        };
        let wait = std::time::Duration::from_secs(60);
        assert_eq!(got.recv_timeout(wait), Ok(0));
        assert_eq!(got.recv_timeout(wait), Ok(1));
        // Piece 2 is two ahead of piece 0, the next to hand on: not taken yet.
        assert!(got
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        assert!(handoff.offer(1, marked(1)));
        assert!(got
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        // Piece 0 handed on (with 1 after it): room for two more.
        assert!(handoff.offer(0, marked(0)));
        assert_eq!(got.recv_timeout(wait), Ok(2));
        assert_eq!(got.recv_timeout(wait), Ok(3));
        // Once the stretch has ended, the waiting worker takes nothing more.
        handoff.lock().ended = Some(Interrupted::Read);
        handoff.changed.notify_all();
        worker.join().unwrap();
        assert_eq!(got.try_iter().collect::<Vec<_>>(), Vec::<usize>::new());
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
