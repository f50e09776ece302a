//! Follows log files by identity (device + inode), the way mtail does, plus what mtail
//! lacks: resume points, fingerprints and copy detection, so nothing is lost or read twice.
//!
//! Every poll (at least every 250 ms; inotify is not used because it misses events on
//! many Kubernetes volumes) it expands the globs, then:
//! - a followed file that leaves its path (renamed or deleted) is a rotation; if no
//!   matched path names it any more it is read to its end, kept one more round for a
//!   writer that is still finishing, then closed;
//! - a new file is read from 0, or from a saved checkpoint (see [`Tailer::with_checkpoints`]);
//! - a file that shrank, or whose first bytes changed, was truncated (copytruncate): it
//!   is read again from 0;
//! - a new file that starts like a file already read (the copy copytruncate makes, even
//!   half-written, or a file renamed while the exporter was down) resumes where that
//!   one stopped. Files under 64 bytes are not opened until they can be told apart.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::discovery::Pattern;
use super::followed::Followed;
use super::formats;
use super::framer::{Framer, ResumePoint};
use super::identity::{id_of, read_head, HEAD_BYTES, MIN_MATCH};
use super::parallel;
use super::resume::{Live, ResumeIndex};
use crate::event::{Batch, Event, FileCheckpoint, FileId, FormatId, Message, TailStatus};
use crate::log_limit::RateLimitedLog;
use tokio_util::sync::CancellationToken;

/// Read size; one batch per chunk keeps the channel's memory bounded.
const READ_CHUNK: usize = 64 * 1024;
/// Polls woken by file events are at least this far apart.
const MIN_EVENT_GAP: Duration = Duration::from_millis(5);
/// Polls a vanished file is still read before it is closed.
const GRACE_ROUNDS: u8 = 2;

pub use crate::config::StartAt;

#[derive(Clone, Debug)]
pub struct TailerConfig {
    pub patterns: Vec<String>,
    /// `None`: detect per file.
    pub format: Option<FormatId>,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    /// Files followed at most; `None`: three quarters of the process's file-descriptor
    /// limit, so that the HTTP server and the upstream client keep the rest.
    pub max_files: Option<usize>,
    /// Threads that read a long unread stretch of a file (a backfill, a replay); 1
    /// reads every file with one framer.
    pub threads: usize,
}

/// Files that can be followed under this process's `RLIMIT_NOFILE`.
fn files_allowed_by_fd_limit() -> usize {
    let soft = procfs::process::Process::myself()
        .and_then(|p| p.limits())
        .map(|l| match l.max_open_files.soft_limit {
            procfs::process::LimitValue::Unlimited => u64::MAX,
            procfs::process::LimitValue::Value(v) => v,
        })
        .unwrap_or(1024);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    (soft / 4 * 3).saturating_sub(32).max(8)
}

/// The receiver of batches is gone (shutting down): stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store is no longer receiving")]
pub struct SinkClosed;

/// Where batches go.
/// Where events go. `Send`: a parallel replay hands pieces on from its workers.
pub trait Sink: Send {
    fn send(&mut self, message: Message) -> Result<(), SinkClosed>;
}

impl Sink for tokio::sync::mpsc::Sender<Message> {
    fn send(&mut self, message: Message) -> Result<(), SinkClosed> {
        self.blocking_send(message).map_err(|_| SinkClosed)
    }
}

impl Sink for Vec<Message> {
    fn send(&mut self, message: Message) -> Result<(), SinkClosed> {
        self.push(message);
        Ok(())
    }
}

pub struct Tailer {
    cfg: TailerConfig,
    files: BTreeMap<FileId, Followed>,
    resume: ResumeIndex,
    first_pass_done: bool,
    /// Files each pattern matched at the last discovery, by pattern.
    matched: Vec<u64>,
    /// The patterns as shared label values for [`TailStatus`].
    shown_patterns: Vec<std::sync::Arc<str>>,
    /// The patterns, compiled; `None` for one that does not compile (the config check
    /// refuses those, so only a library caller can pass one).
    compiled: Vec<Option<Pattern>>,
    /// When bytes were last read from any file.
    last_read: Option<Instant>,
    /// Files followed at most (see [`TailerConfig::max_files`]).
    max_files: usize,
    /// At the last poll: matched files that could not be opened, and matched files not
    /// followed because of `max_files`.
    unreadable: u64,
    over_limit: u64,
    silence: Option<super::silence::SilenceWatch>,
    /// File events that end the wait for the next poll early.
    wakeups: Option<super::wakeup::Wakeups>,
    malformed_log: RateLimitedLog,
    io_log: RateLimitedLog,
    /// Checked between read chunks so a long backfill stops promptly.
    stop: Option<CancellationToken>,
}

impl Tailer {
    pub fn new(cfg: TailerConfig) -> Tailer {
        Tailer {
            shown_patterns: cfg.patterns.iter().map(|p| p.as_str().into()).collect(),
            compiled: cfg
                .patterns
                .iter()
                .map(|p| {
                    Pattern::new(p)
                        .map_err(
                            |e| tracing::warn!(pattern = %p, error = %e, "bad log path pattern"),
                        )
                        .ok()
                })
                .collect(),
            max_files: cfg.max_files.unwrap_or_else(files_allowed_by_fd_limit),
            unreadable: 0,
            over_limit: 0,
            cfg,
            files: BTreeMap::new(),
            resume: ResumeIndex::default(),
            first_pass_done: false,
            matched: Vec::new(),
            last_read: None,
            silence: None,
            wakeups: None,
            malformed_log: RateLimitedLog::new(Duration::from_secs(10)),
            io_log: RateLimitedLog::new(Duration::from_secs(30)),
            stop: None,
        }
    }

    pub fn with_stop(mut self, stop: CancellationToken) -> Tailer {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Warn while a pattern matches nothing or nothing was read for `stale_after`
    /// (zero: never for the latter). For the live tail only.
    pub fn with_silence_warnings(mut self, stale_after: Duration) -> Tailer {
        self.silence = Some(super::silence::SilenceWatch::new(
            self.cfg.patterns.len(),
            stale_after,
        ));
        self
    }

    /// Poll as soon as a watched folder reports a change, not only every poll
    /// interval (for the live tail).
    pub fn with_wakeups(mut self) -> Tailer {
        self.wakeups = super::wakeup::Wakeups::watch(&self.cfg.patterns);
        if self.wakeups.is_none() {
            tracing::info!("no file events for the log folders: polling only");
        }
        self
    }

    /// Continue from checkpoints of an earlier run.
    pub fn with_checkpoints(mut self, saved: Vec<FileCheckpoint>) -> Tailer {
        self.resume.set_checkpoints(saved);
        self
    }

    /// Files an earlier run stopped following, with where each stopped: one that comes
    /// back (or a copy of it) resumes there instead of being read again from 0.
    pub fn with_closed_files(mut self, closed: Vec<FileCheckpoint>) -> Tailer {
        self.resume.set_closed(closed);
        self
    }

    /// Polls until `stop` is cancelled, then returns.
    pub fn run(&mut self, sink: &mut dyn Sink, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            if self.poll(sink).is_err() {
                return;
            }
            if let Some(silence) = &mut self.silence {
                silence.check(&self.cfg.patterns, &self.matched, self.last_read);
            }
            let until = Instant::now() + self.cfg.poll_interval;
            let mut woken = Instant::now();
            while !stop.is_cancelled() {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let step = (until - now).min(Duration::from_millis(25));
                let Some(w) = &self.wakeups else {
                    std::thread::sleep(step);
                    continue;
                };
                if !w.wait(step) {
                    continue;
                }
                // A burst of writes is one wake-up: at most one every MIN_EVENT_GAP.
                if let Some(left) = (woken + MIN_EVENT_GAP).checked_duration_since(Instant::now()) {
                    std::thread::sleep(left);
                }
                woken = Instant::now();
                // A file appeared, went or was renamed: list again now. Only written
                // to: read the followed files, and list at the interval as always.
                if w.take_structure_change() {
                    break;
                }
                if self.read_followed(sink).is_err() {
                    return;
                }
            }
        }
    }

    /// Reads every followed file to its current end, without listing the patterns.
    fn read_followed(&mut self, sink: &mut dyn Sink) -> Result<(), SinkClosed> {
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            if self.stopping() {
                break;
            }
            self.read(id, sink)?;
        }
        Ok(())
    }

    /// Reads every matched file to its end once and closes them: files are final
    /// (`replay`), so a record left open at the end is counted as unterminated.
    pub fn read_once(&mut self, sink: &mut dyn Sink) -> Result<(), SinkClosed> {
        self.poll_files(sink, true)?;
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id, sink)?;
        }
        Ok(())
    }

    /// Files matched now, one entry per identity.
    fn discover(&mut self) -> BTreeMap<FileId, (PathBuf, u64)> {
        let mut found = BTreeMap::new();
        self.matched.clear();
        self.matched.resize(self.cfg.patterns.len(), 0);
        for (i, pattern) in self.compiled.iter().enumerate() {
            let Some(pattern) = pattern else {
                continue;
            };
            let mut paths = Vec::new();
            let notes = pattern.files(|p| paths.push(p));
            if notes.loops > 0 || notes.truncated {
                if let Some(n) = self.io_log.allow() {
                    tracing::warn!(
                        pattern = pattern.text(),
                        symlink_loops_skipped = notes.loops,
                        walk_cut_short = notes.truncated,
                        suppressed = n,
                        "a ** pattern met symlink loops or too many entries"
                    );
                }
            }
            for path in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let id = id_of(&meta);
                self.matched[i] += 1;
                found.entry(id).or_insert((path, meta.len()));
            }
        }
        found
    }

    /// One poll over every file.
    pub fn poll(&mut self, sink: &mut dyn Sink) -> Result<(), SinkClosed> {
        self.poll_files(sink, false)
    }

    /// `final_pass`: files are complete (replay): open even the smallest.
    fn poll_files(&mut self, sink: &mut dyn Sink, final_pass: bool) -> Result<(), SinkClosed> {
        let found = self.discover();
        self.apply_found(found, sink, final_pass)
    }

    /// Acts on what [`Self::discover`] found (apart so that tests can change the files
    /// between the two, as a writer can).
    fn apply_found(
        &mut self,
        found: BTreeMap<FileId, (PathBuf, u64)>,
        sink: &mut dyn Sink,
        final_pass: bool,
    ) -> Result<(), SinkClosed> {
        self.unreadable = 0;
        self.over_limit = 0;
        // Matched but not opened this poll: their checkpoints are kept, not lost.
        let mut not_opened: Vec<FileId> = Vec::new();
        // Files gone from every matched path: finish them before their successors. A
        // file whose folder cannot be listed now (gone for a moment, out of file
        // descriptors) has not gone anywhere we know of: it stays as it is.
        let mut listable: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let vanished: Vec<FileId> = self
            .files
            .iter()
            .filter(|(id, _)| !found.contains_key(id))
            .filter(|(_, f)| {
                let dir = f.path.parent().map(PathBuf::from).unwrap_or_default();
                *listable
                    .entry(dir)
                    .or_insert_with_key(|dir| std::fs::read_dir(dir).is_ok())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in vanished {
            let first_miss = self.files.get(&id).is_some_and(|f| f.missing_rounds == 0);
            if first_miss {
                sink.send(Message::Batch(Batch {
                    events: vec![Event::Rotated],
                    ..Batch::default()
                }))?;
            }
            self.read(id, sink)?;
            if let Some(f) = self.files.get_mut(&id) {
                f.missing_rounds += 1;
                if f.missing_rounds >= GRACE_ROUNDS {
                    self.close(id, sink)?;
                }
            }
        }

        let mut order: Vec<(PathBuf, FileId)> = Vec::with_capacity(found.len());
        for (id, (path, len)) in found {
            let full = self.files.len() >= self.max_files;
            match self.files.get_mut(&id) {
                Some(f) => {
                    if f.path != path {
                        // Renamed to another matched name (e.g. `audit-2026-11-23-1.log`).
                        f.path.clone_from(&path);
                        sink.send(Message::Batch(Batch {
                            events: vec![Event::Rotated],
                            ..Batch::default()
                        }))?;
                    }
                    f.missing_rounds = 0;
                }
                // A checkpointed file is opened whatever its size: it is no stranger.
                None if len < MIN_MATCH as u64
                    && !final_pass
                    && !self.resume.has_checkpoint(id) =>
                {
                    continue
                }
                None if full => {
                    self.over_limit += 1;
                    not_opened.push(id);
                    continue;
                }
                None => match self.open(id, &path, len, sink)? {
                    Some(opened) => {
                        order.push((path, opened));
                        continue;
                    }
                    None => {
                        not_opened.push(id);
                        continue;
                    }
                },
            }
            order.push((path, id));
        }
        order.sort();
        for (_, id) in order {
            if self.stopping() {
                return Ok(());
            }
            self.read(id, sink)?;
        }

        if !self.first_pass_done {
            // Checkpoints that matched no file: rotated away and gone while we were down.
            let lost = self.resume.take_unclaimed(&not_opened);
            for cp in lost {
                tracing::warn!(path = %cp.path, "a checkpointed log file is gone; its unread records are lost");
                sink.send(Message::Batch(Batch {
                    events: vec![Event::FileLost],
                    forget: Some(cp.id),
                    ..Batch::default()
                }))?;
            }
        }
        if self.over_limit > 0 {
            if let Some(n) = self.io_log.allow() {
                tracing::warn!(
                    not_followed = self.over_limit,
                    max_files = self.max_files,
                    suppressed = n,
                    "more log files match than the file-descriptor limit allows; raise `ulimit -n` or narrow logs.paths"
                );
            }
        }
        let status = TailStatus {
            lag_bytes: self.lag_bytes(),
            files: self.files.len() as u64,
            unreadable: self.unreadable,
            over_limit: self.over_limit,
            matched: self
                .shown_patterns
                .iter()
                .cloned()
                .zip(self.matched.iter().copied())
                .collect(),
        };
        sink.send(Message::Batch(Batch {
            status: Some(status),
            ..Batch::default()
        }))?;
        if !self.first_pass_done {
            self.first_pass_done = true;
            sink.send(Message::FirstPassDone)?;
        }
        Ok(())
    }

    fn lag_bytes(&self) -> u64 {
        self.files
            .values()
            .map(|f| {
                f.file
                    .metadata()
                    .map_or(0, |m| m.len().saturating_sub(f.framer.fed_offset()))
            })
            .sum()
    }

    /// Opens the file at `path`, discovered as `id`; returns the identity it is
    /// followed under, `None` if it is not.
    fn open(
        &mut self,
        id: FileId,
        path: &PathBuf,
        len: u64,
        sink: &mut dyn Sink,
    ) -> Result<Option<FileId>, SinkClosed> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                self.unreadable += 1;
                if let Some(n) = self.io_log.allow() {
                    tracing::warn!(path = %path.display(), error = %e, suppressed = n, "cannot open log file");
                }
                return Ok(None);
            }
        };
        // The identity is the opened handle's, never the path's: a rename and a new
        // file between the listing and the open would otherwise put the new file under
        // the old one's identity, and the old one would never be read.
        let (id, len) = match file.metadata() {
            Ok(meta) if meta.is_file() => {
                let opened = id_of(&meta);
                if opened != id && self.files.contains_key(&opened) {
                    return Ok(None);
                }
                (opened, if opened == id { len } else { meta.len() })
            }
            _ => return Ok(None),
        };
        let mut events = Vec::new();
        let head = read_head(&file, HEAD_BYTES).unwrap_or_default();
        let (start, format) = self.start_point(id, &file, &head, len, &mut events);
        tracing::info!(path = %path.display(), offset = start.offset, "following log file");
        self.files.insert(
            id,
            Followed {
                path: path.clone(),
                file,
                framer: Framer::new(format.or(self.cfg.format), start),
                head,
                last_len: len,
                missing_rounds: 0,
            },
        );
        let checkpoint = self.files.get(&id).map(|f| f.checkpoint(id));
        sink.send(Message::Batch(Batch {
            events,
            checkpoint,
            ..Batch::default()
        }))?;
        Ok(Some(id))
    }

    /// Where to start reading a newly seen file that starts with `head`.
    fn start_point(
        &mut self,
        id: FileId,
        file: &File,
        head: &[u8],
        len: u64,
        events: &mut Vec<Event>,
    ) -> (ResumePoint, Option<FormatId>) {
        let live = self.files.values().map(|f| Live {
            head: &f.head,
            resume: f.framer.resume_point(),
            format: f.framer.format(),
        });
        if let Some(known) = self.resume.claim(id, file, head, len, live, events) {
            return known;
        }
        if !self.first_pass_done && self.cfg.start_at == StartAt::End {
            // Skip to the next record start: the bytes before it belong to a record begun earlier.
            return (
                ResumePoint {
                    offset: len,
                    mid_line: false,
                    skipping: true,
                },
                None,
            );
        }
        (ResumePoint::default(), None)
    }

    fn close(&mut self, id: FileId, sink: &mut dyn Sink) -> Result<(), SinkClosed> {
        let Some(mut f) = self.files.remove(&id) else {
            return Ok(());
        };
        let mut events = Vec::new();
        f.framer.finish(&mut events);
        let (resume, format) = (f.framer.resume_point(), f.framer.format());
        let checkpoint = f.checkpoint(id);
        self.resume
            .retire(std::mem::take(&mut f.head), resume, format);
        tracing::info!(path = %f.path.display(), "stopped following log file");
        self.log_malformed(&f.path, &events);
        sink.send(Message::Batch(Batch {
            events,
            checkpoint: Some(checkpoint),
            closed: Some(id),
            ..Batch::default()
        }))
    }

    /// Reads a followed file from where it stopped to its current end.
    fn read(&mut self, id: FileId, sink: &mut dyn Sink) -> Result<(), SinkClosed> {
        let Some(f) = self.files.get_mut(&id) else {
            return Ok(());
        };
        let len = match f.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return Ok(()),
        };
        let mut events = Vec::new();
        let changed = len != f.last_len;
        let rewritten = changed
            && !f.head.is_empty()
            && read_head(&f.file, f.head.len()).is_ok_and(|now| now != f.head);
        // Shrunk since last seen, or its start rewritten. (Shorter than the resume point
        // alone is a copy still being written: wait for it to grow.)
        if len < f.last_len || rewritten {
            events.push(Event::Truncated);
            // A record half-read when the file was truncated is not malformed: its whole
            // text is in the copy (if matched), which resumes at the record's start.
            let (head, resume, format) = (
                std::mem::take(&mut f.head),
                f.framer.resume_point(),
                f.framer.format(),
            );
            f.framer = Framer::new(format, ResumePoint::default());
            tracing::info!(path = %f.path.display(), "log file was truncated; reading it again from the start");
            self.resume.retire(head, resume, format);
        }
        let Some(f) = self.files.get_mut(&id) else {
            return Ok(());
        };
        f.last_len = len;
        let stop = self.stop.clone();
        let mut stretch_tried = false;
        loop {
            if stop.as_ref().is_some_and(CancellationToken::is_cancelled) {
                break;
            }
            let offset = f.framer.fed_offset();
            // Once the format is known (after the first chunk of a new file), a long
            // unread stretch is read on every core.
            if !stretch_tried
                && self.cfg.threads > 1
                && f.framer.format().is_some()
                && len.saturating_sub(offset) >= parallel::MIN_PARALLEL_BYTES
            {
                stretch_tried = true;
                if !events.is_empty() {
                    sink.send(Message::Batch(Batch {
                        events: std::mem::take(&mut events),
                        checkpoint: Some(f.checkpoint(id)),
                        ..Batch::default()
                    }))?;
                }
                let framer = f.framer.clone();
                let result = parallel::read_stretch(
                    &f.file,
                    &framer,
                    len,
                    self.cfg.threads,
                    stop.as_ref(),
                    |piece| {
                        f.framer = piece.framer;
                        if piece.malformed {
                            Self::log_malformed_with(
                                &mut self.malformed_log,
                                &f.path,
                                &piece.events,
                            );
                        }
                        sink.send(Message::Batch(Batch {
                            events: piece.events,
                            checkpoint: Some(super::followed::checkpoint(
                                id, &f.path, &f.head, &f.framer,
                            )),
                            ..Batch::default()
                        }))
                    },
                );
                self.last_read = Some(Instant::now());
                match result {
                    Ok(()) => {}
                    Err(parallel::Interrupted::Sink(closed)) => return Err(closed),
                    // The framer stands where the failed piece starts; the sequential
                    // reads below (or the next poll) go on from there.
                    Err(parallel::Interrupted::Read) => {}
                }
                continue;
            }
            // Room for what the file holds past the offset (at least 4 KiB, for what
            // was appended since): a quiet file's framer keeps a small buffer.
            let want = usize::try_from(len.saturating_sub(offset))
                .unwrap_or(READ_CHUNK)
                .clamp(4 << 10, READ_CHUNK);
            let file = &f.file;
            let read = f
                .framer
                .feed_from(want, |room| file.read_at(room, offset), &mut events);
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    if let Some(s) = self.io_log.allow() {
                        tracing::warn!(path = %f.path.display(), error = %e, suppressed = s, "cannot read log file");
                    }
                    break;
                }
            };
            if n == 0 {
                break;
            }
            events.push(Event::BytesRead(n as u64));
            self.last_read = Some(Instant::now());
            if f.head.len() < HEAD_BYTES {
                if let Ok(head) = read_head(&f.file, HEAD_BYTES) {
                    f.head = head;
                }
            }
            Self::log_malformed_with(&mut self.malformed_log, &f.path, &events);
            sink.send(Message::Batch(Batch {
                events: std::mem::take(&mut events),
                checkpoint: Some(f.checkpoint(id)),
                ..Batch::default()
            }))?;
        }
        if !events.is_empty() {
            let checkpoint = Some(f.checkpoint(id));
            sink.send(Message::Batch(Batch {
                events,
                checkpoint,
                ..Batch::default()
            }))?;
        }
        Ok(())
    }

    fn log_malformed(&mut self, path: &std::path::Path, events: &[Event]) {
        Self::log_malformed_with(&mut self.malformed_log, path, events);
    }

    fn log_malformed_with(limit: &mut RateLimitedLog, path: &std::path::Path, events: &[Event]) {
        for e in events {
            if let Event::Malformed { format, reason } = e {
                if let Some(suppressed) = limit.allow() {
                    tracing::warn!(
                        path = %path.display(),
                        format = formats::label(*format),
                        reason = reason.as_str(),
                        suppressed,
                        "malformed audit record skipped"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::event::Action;
    use crate::generate::{write_record, Generator, Layout, Record, Spec, Truth, DEFAULT_ACTIVE};
    use crate::store::{Store, StoreConfig};

    struct Rig {
        dir: tempfile::TempDir,
        tailer: Tailer,
        store: Store,
        records: Generator,
        truth: Truth,
    }

    impl Rig {
        fn new(pattern: &str, start_at: StartAt) -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let cfg = TailerConfig {
                patterns: vec![dir.path().join(pattern).display().to_string()],
                format: None,
                start_at,
                poll_interval: Duration::from_millis(10),
                max_files: None,
                threads: 1,
            };
            let active: Vec<Action> = DEFAULT_ACTIVE
                .iter()
                .map(|a| Action::from_name(a))
                .collect();
            Rig {
                dir,
                tailer: Tailer::new(cfg),
                store: Store::new(StoreConfig::new(14, 13, &active)),
                records: Generator::new(Spec::default()),
                truth: Truth::default(),
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Appends `n` records to `file`, counting them in the truth.
        fn write(&mut self, file: &mut File, n: usize) {
            let mut out = Vec::new();
            for _ in 0..n {
                let r: Record = self.records.next().unwrap();
                self.truth.observe(&r, &DEFAULT_ACTIVE);
                write_record(&mut out, Layout::Text, &r, 0).unwrap();
            }
            file.write_all(&out).unwrap();
        }

        fn append(&self, name: &str) -> File {
            File::options()
                .create(true)
                .append(true)
                .open(self.path(name))
                .unwrap()
        }

        fn poll(&mut self) {
            let mut sink = Vec::new();
            self.tailer.poll(&mut sink).unwrap();
            for m in sink {
                self.store.apply(m);
            }
        }

        fn total(&self) -> u64 {
            self.store
                .counters()
                .audit
                .iter()
                .map(|o| o[0] + o[1])
                .sum()
        }

        fn assert_exact(&self) {
            let c = self.store.counters();
            assert_eq!(self.total(), self.truth.records, "records counted");
            for a in Action::ALL {
                for ok in [false, true] {
                    assert_eq!(
                        c.audit[a.index()][ok as usize],
                        self.truth.audit_count(a.as_str(), ok),
                        "{a:?} {ok}"
                    );
                }
            }
            let errors: u64 = c.parse_errors.iter().flatten().sum();
            assert_eq!(errors, 0, "parse errors");
        }
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
        let mut rig = Rig::new("audit.log", StartAt::Beginning);
        let mut old = rig.append("audit.log");
        rig.write(&mut old, 20);
        rig.poll();
        std::fs::rename(rig.path("audit.log"), rig.path("audit-1.log")).unwrap();
        // The writer finishes a few records on the old handle after the rename.
        rig.write(&mut old, 5);
        let mut new = rig.append("audit.log");
        rig.write(&mut new, 7);
        rig.poll();
        rig.write(&mut new, 3);
        rig.poll();
        rig.poll();
        rig.assert_exact();
        assert_eq!(rig.store.counters().rotations, 1);
        assert_eq!(
            rig.tailer.files.len(),
            1,
            "the rotated file is closed after the grace rounds"
        );
    }

    #[test]
    fn a_rotated_name_matched_by_the_glob_is_the_same_file_not_a_new_one() {
        let mut rig = Rig::new("audit*.log", StartAt::Beginning);
        let mut old = rig.append("audit.log");
        rig.write(&mut old, 10);
        rig.poll();
        std::fs::rename(rig.path("audit.log"), rig.path("audit-2026-11-23-1.log")).unwrap();
        rig.write(&mut old, 2);
        let mut new = rig.append("audit.log");
        rig.write(&mut new, 4);
        rig.poll();
        rig.assert_exact();
        assert_eq!(rig.store.counters().rotations, 1);
    }

    #[test]
    fn copytruncate_with_a_matched_copy_is_exact() {
        let mut rig = Rig::new("audit.log*", StartAt::Beginning);
        let mut live = rig.append("audit.log");
        rig.write(&mut live, 10);
        rig.poll();
        // Written after our last read, then copied away and truncated.
        rig.write(&mut live, 6);
        std::fs::copy(rig.path("audit.log"), rig.path("audit.log.1")).unwrap();
        live.set_len(0).unwrap();
        rig.write(&mut live, 4);
        rig.poll();
        rig.poll();
        rig.assert_exact();
        assert_eq!(rig.store.counters().truncations, 1);
    }

    #[test]
    fn a_copy_found_while_still_being_written_resumes_where_the_original_stopped() {
        let mut rig = Rig::new("audit.log*", StartAt::Beginning);
        let mut live = rig.append("audit.log");
        rig.write(&mut live, 10);
        rig.poll();
        rig.write(&mut live, 6);
        let original = std::fs::read(rig.path("audit.log")).unwrap();
        // copytruncate, caught mid-copy: 300 bytes copied so far.
        let mut copy = rig.append("audit.log.1");
        copy.write_all(&original[..300]).unwrap();
        live.set_len(0).unwrap();
        rig.write(&mut live, 4);
        rig.poll();
        copy.write_all(&original[300..]).unwrap();
        rig.poll();
        rig.poll();
        rig.assert_exact();
        // A brand-new tiny file is not opened until it can be told apart from a copy.
        let mut tiny = rig.append("audit.log.2");
        tiny.write_all(b"2026").unwrap();
        rig.poll();
        assert_eq!(rig.tailer.files.len(), 2);
    }

    #[test]
    fn truncation_is_seen_even_when_the_file_regrew_past_the_old_offset() {
        let mut rig = Rig::new("audit.log", StartAt::Beginning);
        let mut live = rig.append("audit.log");
        rig.write(&mut live, 3);
        rig.poll();
        let before = rig.truth.records;
        live.set_len(0).unwrap();
        rig.truth = Truth::default();
        rig.write(&mut live, 30);
        rig.poll();
        assert_eq!(rig.store.counters().truncations, 1);
        assert_eq!(rig.total(), before + rig.truth.records);
    }

    #[test]
    fn delete_and_recreate_and_files_that_appear_later() {
        let mut rig = Rig::new("*.log", StartAt::Beginning);
        rig.poll();
        assert!(
            rig.store.is_ready(),
            "ready after a first pass, even over no files"
        );
        let mut a = rig.append("a.log");
        rig.write(&mut a, 5);
        rig.poll();
        drop(a);
        std::fs::remove_file(rig.path("a.log")).unwrap();
        let mut a = rig.append("a.log");
        rig.write(&mut a, 2);
        let mut b = rig.append("b.log");
        rig.write(&mut b, 3);
        rig.poll();
        rig.poll();
        rig.assert_exact();
    }

    #[test]
    fn partial_writes_are_parsed_once_whole_across_polls() {
        let mut rig = Rig::new("audit.log", StartAt::Beginning);
        let mut bytes = Vec::new();
        for _ in 0..5 {
            let r = rig.records.next().unwrap();
            rig.truth.observe(&r, &DEFAULT_ACTIVE);
            write_record(&mut bytes, Layout::Text, &r, 0).unwrap();
        }
        let mut f = rig.append("audit.log");
        for piece in bytes.chunks(97) {
            f.write_all(piece).unwrap();
            rig.poll();
        }
        rig.assert_exact();
        assert_eq!(rig.store.counters().bytes_read, bytes.len() as u64);
    }

    #[test]
    fn start_at_end_skips_what_was_there_but_reads_files_created_later() {
        let mut rig = Rig::new("*.log", StartAt::End);
        let mut old = rig.append("a.log");
        rig.write(&mut old, 5);
        rig.truth = Truth::default();
        rig.poll();
        assert_eq!(rig.total(), 0);
        rig.write(&mut old, 2);
        let mut later = rig.append("b.log");
        rig.write(&mut later, 3);
        rig.poll();
        rig.assert_exact();
    }

    #[test]
    fn checkpoints_resume_a_file_renamed_while_down_exactly_once() {
        let mut rig = Rig::new("audit*.log", StartAt::Beginning);
        let mut f = rig.append("audit.log");
        rig.write(&mut f, 8);
        rig.poll();
        let saved: Vec<FileCheckpoint> = rig.store.checkpoints().cloned().collect();
        let counted = rig.total();
        // "Down": the file is rotated to a new name and more is written.
        std::fs::rename(rig.path("audit.log"), rig.path("audit-1.log")).unwrap();
        rig.write(&mut f, 4);
        let cfg = rig.tailer.cfg.clone();
        rig.tailer = Tailer::new(cfg).with_checkpoints(saved);
        rig.poll();
        rig.assert_exact();
        assert!(counted < rig.total());
        assert_eq!(rig.store.counters().files_lost, 0);
    }

    /// The file at a path is renamed away and a new one created between the listing and
    /// the open: the new file is followed under its own identity and the renamed one is
    /// still read to its end (it was followed as the new file before, and never read).
    #[test]
    fn a_rotation_between_listing_and_open_loses_nothing() {
        let mut rig = Rig::new("audit*.log", StartAt::Beginning);
        let mut old = rig.append("audit.log");
        rig.write(&mut old, 10);
        let listed = rig.tailer.discover();
        std::fs::rename(rig.path("audit.log"), rig.path("audit-2026-11-23-1.log")).unwrap();
        rig.write(&mut old, 3);
        let mut new = rig.append("audit.log");
        rig.write(&mut new, 4);
        let mut sink = Vec::new();
        rig.tailer.apply_found(listed, &mut sink, false).unwrap();
        for m in sink {
            rig.store.apply(m);
        }
        rig.write(&mut new, 2);
        for _ in 0..4 {
            rig.poll();
        }
        rig.assert_exact();
    }

    /// The folder of the logs disappears for a few polls (a remount, a volume hiccup)
    /// and comes back: nothing is closed meanwhile, so nothing is read twice.
    #[test]
    fn a_folder_that_vanishes_for_a_while_reads_nothing_twice() {
        let mut rig = Rig::new("logs/audit*.log", StartAt::Beginning);
        std::fs::create_dir(rig.path("logs")).unwrap();
        let mut files: Vec<File> = (0..100)
            .map(|i| rig.append(&format!("logs/audit-{i}.log")))
            .collect();
        for f in &mut files {
            rig.write(f, 2);
        }
        rig.poll();
        std::fs::rename(rig.path("logs"), rig.path("logs.away")).unwrap();
        for _ in 0..(GRACE_ROUNDS as usize + 3) {
            rig.poll();
        }
        assert_eq!(rig.tailer.files.len(), 100, "nothing closed while away");
        std::fs::rename(rig.path("logs.away"), rig.path("logs")).unwrap();
        for f in &mut files {
            rig.write(f, 1);
        }
        rig.poll();
        rig.poll();
        rig.assert_exact();
        assert_eq!(rig.store.counters().rotations, 0);
        // Really gone (the folder is there, the file is not): a rotation, as before.
        std::fs::remove_file(rig.path("logs/audit-0.log")).unwrap();
        for _ in 0..=GRACE_ROUNDS {
            rig.poll();
        }
        assert_eq!(rig.tailer.files.len(), 99);
        assert_eq!(rig.store.counters().rotations, 1);
    }

    /// More files than may be followed: the rest wait, counted, and are never taken
    /// for rotations; raised, the limit lets them in and every count is exact.
    #[test]
    fn files_over_the_limit_wait_without_false_rotations() {
        let mut rig = Rig::new("audit-*.log", StartAt::Beginning);
        rig.tailer.max_files = 2;
        let mut files: Vec<File> = (0..3)
            .map(|i| rig.append(&format!("audit-{i}.log")))
            .collect();
        for (i, f) in files.iter_mut().enumerate() {
            rig.write(f, 3 + i);
        }
        rig.poll();
        let first = rig.total();
        for _ in 0..3 {
            rig.poll();
        }
        assert_eq!(rig.tailer.files.len(), 2);
        assert_eq!(rig.tailer.over_limit, 1);
        assert_eq!(rig.total(), first, "no file read twice");
        assert!(first < rig.truth.records);
        assert_eq!(rig.store.counters().rotations, 0);
        rig.tailer.max_files = 10;
        rig.poll();
        assert_eq!(rig.tailer.over_limit, 0);
        rig.assert_exact();
    }

    /// A file renamed out of the patterns is closed; after a restart (the closed files
    /// saved and loaded with the snapshot) it is renamed back and grows: it resumes where
    /// it stopped instead of being read again from the start.
    #[test]
    fn a_closed_file_that_comes_back_after_a_restart_resumes_where_it_stopped() {
        let mut rig = Rig::new("audit*.log", StartAt::Beginning);
        let mut f = rig.append("audit.log");
        rig.write(&mut f, 12);
        rig.poll();
        std::fs::rename(rig.path("audit.log"), rig.path("kept.old")).unwrap();
        for _ in 0..=GRACE_ROUNDS {
            rig.poll();
        }
        assert!(rig.tailer.files.is_empty(), "closed");
        assert_eq!(rig.store.closed_files().count(), 1);
        // Restart: the store from its snapshot, a new tailer from what it saved.
        let state = tempfile::tempdir().unwrap();
        let file = crate::store::persist::StateFile::new(state.path());
        rig.store.save(&file).unwrap();
        let crate::store::persist::Loaded::Snapshot(p) = file.load() else {
            panic!("no snapshot")
        };
        let active: Vec<Action> = DEFAULT_ACTIVE
            .iter()
            .map(|a| Action::from_name(a))
            .collect();
        rig.store = Store::restore(StoreConfig::new(14, 13, &active), &p);
        rig.tailer = Tailer::new(rig.tailer.cfg.clone())
            .with_checkpoints(p.checkpoints.clone())
            .with_closed_files(p.closed.clone());
        std::fs::rename(rig.path("kept.old"), rig.path("audit-back.log")).unwrap();
        rig.write(&mut f, 5);
        rig.poll();
        rig.poll();
        rig.assert_exact();
        assert_eq!(rig.store.closed_files().count(), 0, "followed again");
    }
}
