//! What a followed file is: its identity (device and inode, always from the opened
//! handle) and its first bytes, which recognise it again after a rename, a restart, a
//! truncation or a copy.

use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::event::{FileId, Fingerprint};

/// Bytes of a file's start kept to recognise it.
pub const HEAD_BYTES: usize = 1024;
/// A shorter common start is too weak to recognise a copy by; newer files this small
/// are not opened yet (no record is this short).
pub const MIN_MATCH: usize = 64;

pub fn id_of(meta: &Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// Reads up to `len` bytes from the start of `file`.
pub fn read_head(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut head[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

pub fn fingerprint(head: &[u8]) -> Fingerprint {
    Fingerprint {
        len: head.len() as u32,
        hash: xxhash_rust::xxh3::xxh3_64(head),
    }
}

/// Whether `file` starts with the bytes a saved fingerprint was taken from.
pub fn matches_fingerprint(file: &File, fp: &Fingerprint) -> bool {
    fp.len as usize >= MIN_MATCH
        && read_head(file, fp.len as usize).is_ok_and(|h| fingerprint(&h) == *fp)
}

/// Whether a file starting with `candidate` is (a possibly still growing copy of) the
/// file that started with `known`.
pub fn same_start(candidate: &[u8], known: &[u8]) -> bool {
    let n = candidate.len().min(known.len());
    n >= MIN_MATCH && candidate[..n] == known[..n]
}
