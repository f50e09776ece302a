//! A file being followed: its open handle, the framer cutting its bytes into records,
//! and what recognises it (its first bytes and last seen length).

use std::fs::File;
use std::path::PathBuf;

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
        FileCheckpoint {
            id,
            path: self.path.display().to_string(),
            fingerprint: fingerprint(&self.head),
            resume: self.framer.resume_point(),
            format: self
                .framer
                .format()
                .map(|f| formats::by_id(f).name().to_string()),
        }
    }
}
