//! Where a newly opened file starts: one index over the checkpoints an earlier run
//! saved and the files this run stopped following, claimed by identity or by
//! fingerprint, so that a file renamed, copied or truncated while the exporter was down
//! (or while it ran) resumes where its bytes were last read, once.

use std::collections::VecDeque;
use std::fs::File;

use super::formats;
use super::identity::{matches_fingerprint, same_start, MIN_MATCH};
use crate::event::{Event, FileCheckpoint, FileId, FormatId, ResumePoint};

/// Files no longer followed, kept to recognise their copies.
const RETIRED_KEPT: usize = 64;

/// A file no longer followed (rotated away, closed, truncated): where it stopped.
#[derive(Clone, Debug)]
struct Retired {
    head: Vec<u8>,
    resume: ResumePoint,
    format: Option<FormatId>,
}

#[derive(Debug, Default)]
pub struct ResumeIndex {
    /// Saved checkpoints not yet matched to a file.
    saved: Vec<FileCheckpoint>,
    /// Saved checkpoints of files found truncated at start: only a copy can claim them.
    saved_truncated: Vec<FileCheckpoint>,
    retired: VecDeque<Retired>,
    /// Files an earlier run stopped following (persisted): claimable by fingerprint.
    closed: Vec<FileCheckpoint>,
}

/// A file being read now, as a candidate original of a copy.
pub struct Live<'a> {
    pub head: &'a [u8],
    pub resume: ResumePoint,
    pub format: Option<FormatId>,
}

impl ResumeIndex {
    pub fn set_checkpoints(&mut self, saved: Vec<FileCheckpoint>) {
        self.saved = saved;
    }

    pub fn set_closed(&mut self, closed: Vec<FileCheckpoint>) {
        self.closed = closed;
    }

    /// Whether an earlier run saved a checkpoint for this identity (such a file is
    /// opened whatever its size: it is no stranger).
    pub fn has_checkpoint(&self, id: FileId) -> bool {
        self.saved.iter().any(|cp| cp.id == id)
    }

    /// Where the file `id`, opened as `file` and starting with `head`, resumes, if it
    /// is one already read: the same file as before a restart, one renamed or copied
    /// while the exporter was down, or a copy of a file being (or recently) read.
    /// `None`: a new file. A same-identity file with other content was truncated while
    /// the exporter was down: said in `events`.
    pub fn claim<'a>(
        &mut self,
        id: FileId,
        file: &File,
        head: &[u8],
        len: u64,
        live: impl Iterator<Item = Live<'a>>,
        events: &mut Vec<Event>,
    ) -> Option<(ResumePoint, Option<FormatId>)> {
        let format_of = |cp: &FileCheckpoint| cp.format.as_deref().and_then(formats::id_of);
        if let Some(i) = self.saved.iter().position(|cp| cp.id == id) {
            let cp = self.saved.swap_remove(i);
            if matches_fingerprint(file, &cp.fingerprint) && cp.resume.offset <= len {
                return Some((cp.resume, format_of(&cp)));
            }
            // Same inode, other content: truncated (or re-used) while we were down. Its
            // copy, if any, may still claim the checkpoint by fingerprint.
            events.push(Event::Truncated);
            self.saved_truncated.push(cp);
        }
        for list in [&mut self.saved, &mut self.saved_truncated] {
            if let Some(i) = list
                .iter()
                .position(|cp| matches_fingerprint(file, &cp.fingerprint))
            {
                let cp = list.swap_remove(i);
                return Some((cp.resume, format_of(&cp)));
            }
        }
        // A file an earlier run closed, back under a matched name (or a copy of it):
        // where it stopped, the furthest if several share its start.
        if let Some(i) = self
            .closed
            .iter()
            .enumerate()
            .filter(|(_, cp)| cp.resume.offset <= len && matches_fingerprint(file, &cp.fingerprint))
            .max_by_key(|(_, cp)| cp.resume.offset)
            .map(|(i, _)| i)
        {
            let cp = self.closed.swap_remove(i);
            return Some((cp.resume, format_of(&cp)));
        }
        // A copy, possibly still being written: resume where the original stopped;
        // reads wait until the copy grows past that point.
        for known in live {
            if same_start(head, known.head) {
                return Some((known.resume, known.format));
            }
        }
        self.retired
            .iter()
            .find(|r| same_start(head, &r.head))
            .map(|r| (r.resume, r.format))
    }

    /// Remembers where a file stopped, to recognise its copies.
    pub fn retire(&mut self, head: Vec<u8>, resume: ResumePoint, format: Option<FormatId>) {
        if head.len() >= MIN_MATCH {
            self.retired.push_back(Retired {
                head,
                resume,
                format,
            });
            while self.retired.len() > RETIRED_KEPT {
                self.retired.pop_front();
            }
        }
    }

    /// At the end of the first pass: the checkpoints no file claimed, except those of
    /// files matched but not opened yet (`waiting`: unreadable, over the descriptor
    /// limit), which stay claimable.
    pub fn take_unclaimed(&mut self, waiting: &[FileId]) -> Vec<FileCheckpoint> {
        self.saved_truncated.clear();
        let (kept, lost): (Vec<_>, Vec<_>) = std::mem::take(&mut self.saved)
            .into_iter()
            .partition(|cp| waiting.contains(&cp.id));
        self.saved = kept;
        lost
    }
}
