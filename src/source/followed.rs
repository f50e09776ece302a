//! A file being followed: its open handle, the framer cutting its bytes into records,
//! and what recognises it (its first bytes and last seen length).

use std::fs::File;
use std::path::{Path, PathBuf};

use super::formats;
use super::framer::Framer;
use super::identity::fingerprint;
use crate::event::{FileCheckpoint, FileId};

pub struct Followed {
    pub path: PathBuf,
    pub file: File,
    pub framer: Framer,
    /// The file's first bytes (up to [`super::identity::HEAD_BYTES`]): detects truncation and copies.
    pub head: Vec<u8>,
    pub last_len: u64,
    /// Polls in a row its path was gone.
    pub missing_rounds: u8,
}

impl Followed {
    /// What a restart resumes from.
    pub fn checkpoint(&self, id: FileId) -> FileCheckpoint {
        checkpoint(id, &self.path, &self.head, &self.framer)
    }
}

/// [`Followed::checkpoint`] from its parts, for a caller that holds the file's handle
/// borrowed while its framer changes.
pub fn checkpoint(id: FileId, path: &Path, head: &[u8], framer: &Framer) -> FileCheckpoint {
    FileCheckpoint {
        id,
        path: path.display().to_string(),
        fingerprint: fingerprint(head),
        resume: framer.resume_point(),
        format: framer
            .format()
            .map(|f| formats::by_id(f).name().to_string()),
    }
}
