//! The durable snapshot: checkpoints, counters and sketches in one file, written
//! atomically (temp file, fsync, rename, fsync the folder). Because only the store
//! thread owns both the counters and the checkpoints that produced them, and takes the
//! snapshot between two messages, a crash at any instant leaves a file whose counters
//! match its offsets: after a restart, records past the offsets are read exactly once.
//!
//! Layout: a header line `JANSX-STATE <version> <xxh3-64 hex of the body> <body bytes>`
//! then the JSON body. The header catches truncated and corrupted files before parsing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sketch::ActiveUsers;
use crate::event::FileCheckpoint;

pub const VERSION: u32 = 1;
const MAGIC: &str = "JANSX-STATE";
const FILE_NAME: &str = "state.json";
/// A snapshot larger than this is not read (bounded memory on a hostile file).
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Everything that must survive a restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub saved_at_ms: i64,
    /// Counter name (with labels) → value. Names the code no longer has are dropped;
    /// new ones start at zero.
    pub counters: BTreeMap<String, u64>,
    pub last_record_ms: Option<i64>,
    pub checkpoints: Vec<FileCheckpoint>,
    pub active_users: ActiveUsers,
    /// Upstream cursors and derived counters (absent in snapshots written before them).
    #[serde(default)]
    pub upstream: Option<super::upstream::UpstreamFigures>,
}

#[derive(Debug)]
pub enum Loaded {
    /// No snapshot yet: a first start.
    Fresh,
    Snapshot(Box<Snapshot>),
    /// Unusable; moved aside (if it could be) and starting fresh.
    Failed {
        error: String,
        moved_to: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot create state folder {0}: {1}")]
    Folder(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot encode the snapshot: {0}")]
    Encode(serde_json::Error),
}

pub struct StateFile {
    dir: PathBuf,
}

fn encode(snapshot: &Snapshot) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(snapshot)?;
    let hash = xxhash_rust::xxh3::xxh3_64(&body);
    let mut out = format!("{MAGIC} {} {hash:016x} {}\n", snapshot.version, body.len()).into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not text")?;
    let body = &bytes[newline + 1..];
    let fields: Vec<&str> = header.split(' ').collect();
    if fields.first() != Some(&MAGIC) {
        return Err("not a jans-exporter state file (no header)".into());
    }
    let [_, version, hash, len] = fields[..] else {
        return Err(format!("bad header `{header}`"));
    };
    if len.parse::<usize>().ok() != Some(body.len()) {
        return Err(format!(
            "truncated: header says {len} bytes, found {}",
            body.len()
        ));
    }
    if u64::from_str_radix(hash, 16).ok() != Some(xxhash_rust::xxh3::xxh3_64(body)) {
        return Err("checksum mismatch: corrupted".into());
    }
    match version.parse::<u32>() {
        Ok(VERSION) => {
            serde_json::from_slice(body).map_err(|e| format!("version {VERSION} body: {e}"))
        }
        Ok(other) => Err(format!(
            "unsupported state version {other} (this build reads {VERSION})"
        )),
        Err(_) => Err(format!("bad version `{version}`")),
    }
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads the snapshot. Never fails the start: anything unusable is moved aside.
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let result = match fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Fresh,
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(m) if m.len() > MAX_BYTES => Err(format!(
                "{} bytes is over the {MAX_BYTES}-byte limit",
                m.len()
            )),
            Ok(_) => fs::read(&path)
                .map_err(|e| format!("cannot read: {e}"))
                .and_then(|b| decode(&b)),
        };
        match result {
            Ok(snapshot) => Loaded::Snapshot(Box::new(snapshot)),
            Err(error) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let aside = self.dir.join(format!("{FILE_NAME}.unusable-{stamp}"));
                let moved_to = fs::rename(&path, &aside).ok().map(|()| aside);
                Loaded::Failed { error, moved_to }
            }
        }
    }

    /// Writes the snapshot atomically; returns its size.
    pub fn save(&self, snapshot: &Snapshot) -> Result<u64, SaveError> {
        fs::create_dir_all(&self.dir).map_err(|e| SaveError::Folder(self.dir.clone(), e))?;
        let bytes = encode(snapshot).map_err(SaveError::Encode)?;
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let final_path = self.path();
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &final_path)?;
            // The rename itself must reach the disk.
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SaveError::Write(final_path.clone(), e)
        })?;
        Ok(bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FileId, Fingerprint, UserKey};
    use crate::source::framer::ResumePoint;
    use crate::store::sketch::Horizon;

    fn snapshot() -> Snapshot {
        let mut users = ActiveUsers::new(14, 13);
        for i in 0..40 {
            users.insert(
                1_793_491_200_000,
                UserKey::of(&format!("u{i}")),
                &Horizon::default(),
            );
        }
        Snapshot {
            version: VERSION,
            saved_at_ms: 1_795_392_000_000,
            counters: BTreeMap::from([(
                "audit_events{action=\"TOKEN_REQUEST\",outcome=\"success\"}".to_string(),
                7,
            )]),
            last_record_ms: Some(1_793_491_200_000),
            checkpoints: vec![FileCheckpoint {
                id: FileId { dev: 1, ino: 2 },
                path: "/logs/a.log".into(),
                fingerprint: Fingerprint {
                    len: 1024,
                    hash: 99,
                },
                resume: ResumePoint {
                    offset: 4096,
                    mid_line: false,
                    skipping: false,
                },
                format: Some("jans-audit-text".into()),
            }],
            active_users: users,
            upstream: None,
        }
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("nested"));
        assert!(matches!(file.load(), Loaded::Fresh));
        let bytes = file.save(&snapshot()).unwrap();
        file.save(&snapshot()).unwrap();
        let Loaded::Snapshot(mut back) = file.load() else {
            panic!("not loaded")
        };
        assert_eq!(back.counters, snapshot().counters);
        assert_eq!(back.checkpoints, snapshot().checkpoints);
        assert_eq!(back.active_users.monthly(), vec![(202611, 40)]);
        assert_eq!(bytes, std::fs::metadata(file.path()).unwrap().len());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("state.json")],
            "no temp file left behind"
        );
    }

    #[test]
    fn corrupt_truncated_and_unknown_versions_are_moved_aside() {
        let good = encode(&snapshot()).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 0x20;
        let newer = String::from_utf8(good.clone())
            .unwrap()
            .replacen("JANSX-STATE 1 ", "JANSX-STATE 9 ", 1)
            .into_bytes();
        let cases: [(&str, Vec<u8>, &str); 6] = [
            ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
            ("bit flip", flipped, "checksum"),
            ("garbage", b"\x00\x01garbage".to_vec(), "no header"),
            ("bad header", b"JANSX-STATE 1\n{}".to_vec(), "bad header"),
            (
                "other file",
                b"{}\n".to_vec(),
                "not a jans-exporter state file",
            ),
            ("newer version", newer, "unsupported state version 9"),
        ];
        for (what, bytes, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let file = StateFile::new(dir.path());
            std::fs::write(file.path(), &bytes).unwrap();
            let Loaded::Failed { error, moved_to } = file.load() else {
                panic!("{what}: loaded")
            };
            assert!(error.contains(want), "{what}: {error}");
            let moved_to = moved_to.expect("moved aside");
            assert!(moved_to
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.unusable-"));
            assert_eq!(
                std::fs::read(&moved_to).unwrap(),
                bytes,
                "{what}: kept for inspection"
            );
            assert!(
                matches!(file.load(), Loaded::Fresh),
                "{what}: next start is fresh"
            );
        }
    }

    /// A snapshot written by version 1 of the format, committed as a file: every later
    /// build must keep reading it (or migrate it).
    #[test]
    fn loads_the_committed_version_1_snapshot() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.json");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture, dir.path().join("state.json")).unwrap();
        let Loaded::Snapshot(mut s) = StateFile::new(dir.path()).load() else {
            panic!("v1 fixture did not load")
        };
        assert_eq!(s.version, 1);
        assert_eq!(s.checkpoints.len(), 1);
        assert_eq!(s.checkpoints[0].resume.offset, 4096);
        assert_eq!(s.counters.values().sum::<u64>(), 7);
        assert_eq!(s.active_users.monthly(), vec![(202611, 40)]);
    }

    #[test]
    fn an_unwritable_folder_is_a_save_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = StateFile::new(&blocker.join("state"))
            .save(&snapshot())
            .unwrap_err();
        assert!(matches!(err, SaveError::Folder(..)), "{err}");
    }

    /// Regenerates the fixture: `cargo test -- --ignored write_version_1_fixture`.
    #[test]
    #[ignore]
    fn write_version_1_fixture() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.json");
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, encode(&snapshot()).unwrap()).unwrap();
    }
}
