//! The durable snapshot: checkpoints, counters and sketches in one file, written
//! atomically (temp file, fsync, rename, fsync the folder). Because only the store
//! thread owns both the counters and the checkpoints that produced them, and takes the
//! snapshot between two messages, a crash at any instant leaves a file whose counters
//! match its offsets: after a restart, records past the offsets are read exactly once.
//!
//! Layout: a header line `JANSX-STATE <version> <xxh3-64 hex of the body> <body bytes>`
//! then the JSON body. The header catches truncated and corrupted files before parsing.
//! Version 2 writes the header at a fixed width, streams the body through the hash,
//! and fills the header in last, so a save never holds the encoded snapshot in memory.
//! The body's sections are decoded one by one ([`model::decode_v2`]); version 1 files
//! are translated by [`v1`].

pub mod model;
mod v1;

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use model::{Persisted, SnapshotOut};

pub const VERSION: u32 = 5;
const MAGIC: &str = "JANSX-STATE";
const FILE_NAME: &str = "state.json";
/// A snapshot larger than this is not read (bounded memory on a hostile file).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// `JANSX-STATE 3 <16 hex> <20 digits>\n`
const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 1 + 16 + 1 + 20 + 1;

#[derive(Debug)]
pub enum Loaded {
    /// No snapshot yet: a first start.
    Fresh,
    Snapshot(Box<Persisted>),
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

/// Counts and hashes what passes through on its way to the file.
struct Hashing<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(version: u32, hash: u64, len: u64) -> String {
    format!("{MAGIC} {version} {hash:016x} {len:020}\n")
}

/// `body` behind a header with a matching checksum and length: lets tests and the fuzz
/// target reach the body decoders of any version with arbitrary bytes.
#[doc(hidden)]
pub fn with_valid_header(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(version, xxhash_rust::xxh3::xxh3_64(body), body.len() as u64).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Any bytes as a snapshot, for the fuzz target and its stable regression test: decoding
/// either refuses them or yields a snapshot the store restores from and saves, and what
/// it saves decodes again whole. Panics only on a broken invariant.
#[doc(hidden)]
pub fn exercise_decoder(data: &[u8], scratch: &Path) {
    use crate::store::{Store, StoreConfig};
    // Raw, and behind a valid version-1 and version-2 header so each body decoder is
    // reached despite the checksum.
    for bytes in [
        data.to_vec(),
        with_valid_header(1, data),
        with_valid_header(2, data),
        with_valid_header(3, data),
        with_valid_header(4, data),
        with_valid_header(5, data),
    ] {
        let Ok(persisted) = decode(&bytes) else {
            continue;
        };
        let mut config = StoreConfig::new(14, 13, &[crate::event::Action::TokenRequest]);
        config.cluster = true;
        config.okta = Some(10);
        let mut store = Store::restore(config, &persisted);
        let _ = store.view(0);
        let file = StateFile::new(scratch);
        if file.save(&store.snapshot_out()).is_ok() {
            let again = fs::read(file.path()).unwrap_or_default();
            match decode(&again) {
                Ok(back) => assert!(
                    back.dropped.is_empty(),
                    "a saved snapshot decodes whole: {:?}",
                    back.dropped
                ),
                Err(e) => panic!("a saved snapshot does not decode: {e}"),
            }
        }
    }
}

/// Writes the header and body of `snapshot` to `file`; returns the file's size.
fn write_to(file: &mut File, snapshot: &SnapshotOut) -> Result<u64, WriteError> {
    file.write_all(&[b' '; HEADER_LEN])?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(64 * 1024, &mut *file),
        hasher: xxhash_rust::xxh3::Xxh3::new(),
        len: 0,
    };
    serde_json::to_writer(&mut out, snapshot).map_err(WriteError::Encode)?;
    out.flush()?;
    let (hash, len) = (out.hasher.digest(), out.len);
    drop(out);
    let head = header(VERSION, hash, len);
    debug_assert_eq!(head.len(), HEADER_LEN);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(head.as_bytes())?;
    Ok(HEADER_LEN as u64 + len)
}

enum WriteError {
    Io(std::io::Error),
    Encode(serde_json::Error),
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> WriteError {
        WriteError::Io(e)
    }
}

/// Checks the header and dispatches on the version.
pub fn decode(bytes: &[u8]) -> Result<Persisted, String> {
    let newline = bytes
        .iter()
        .take(256)
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
        Ok(1) => v1::decode(body),
        Ok(2..=5) => model::decode_v2(body),
        Ok(other) => Err(format!(
            "unsupported state version {other} (this build reads 1 to {VERSION})"
        )),
        Err(_) => Err(format!("bad version `{version}`")),
    }
}

/// Reads at most [`MAX_BYTES`] from a regular file, never blocking on a FIFO and
/// never following a device.
fn read_regular(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or folder)",
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes is over the {MAX_BYTES}-byte limit",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::other("grew over the size limit while read"));
    }
    Ok(Some(bytes))
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
        let result = match read_regular(&path) {
            Ok(None) => return Loaded::Fresh,
            Ok(Some(bytes)) => decode(&bytes),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        match result {
            Ok(snapshot) => Loaded::Snapshot(Box::new(snapshot)),
            Err(error) => Loaded::Failed {
                error,
                moved_to: self.move_aside(),
            },
        }
    }

    /// Renames the snapshot out of the way, keeping it for inspection.
    pub fn move_aside(&self) -> Option<PathBuf> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let aside = self.dir.join(format!("{FILE_NAME}.unusable-{stamp}"));
        fs::rename(self.path(), &aside).ok().map(|()| aside)
    }

    /// Writes the snapshot atomically; returns its size.
    pub fn save(&self, snapshot: &SnapshotOut) -> Result<u64, SaveError> {
        fs::create_dir_all(&self.dir).map_err(|e| SaveError::Folder(self.dir.clone(), e))?;
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let final_path = self.path();
        let write = || -> Result<u64, WriteError> {
            let mut f = File::create(&tmp)?;
            let n = write_to(&mut f, snapshot)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &final_path)?;
            // The rename itself must reach the disk.
            File::open(&self.dir)?.sync_all()?;
            Ok(n)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            match e {
                WriteError::Io(e) => SaveError::Write(final_path.clone(), e),
                WriteError::Encode(e) => SaveError::Encode(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuditEvent, Event, UserKey};
    use crate::store::{Store, StoreConfig};

    fn config() -> StoreConfig {
        StoreConfig::new(14, 13, &[crate::event::Action::TokenRequest])
    }

    /// A store with counters, a checkpoint and sketches in three months.
    fn store() -> Store {
        let mut s = Store::new(config());
        for i in 0..40 {
            for month_start in [1_790_812_800_000i64, 1_793_491_200_000] {
                s.apply_event(&Event::Audit(AuditEvent {
                    format: 0,
                    action: crate::event::Action::TokenRequest,
                    success: true,
                    timestamp_ms: month_start + i,
                    user: Some(UserKey::of(&format!("u{i}"))),
                    pair_key: None,
                    lossy: false,
                }));
            }
        }
        s
    }

    fn encode(store: &Store) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        file.save(&store.snapshot_out()).unwrap();
        std::fs::read(file.path()).unwrap()
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("nested"));
        assert!(matches!(file.load(), Loaded::Fresh));
        let mut original = store();
        let bytes = file.save(&original.snapshot_out()).unwrap();
        file.save(&original.snapshot_out()).unwrap();
        let Loaded::Snapshot(back) = file.load() else {
            panic!("not loaded")
        };
        assert!(back.dropped.is_empty());
        let mut restored = Store::restore(config(), &back);
        assert_eq!(restored.counters(), original.counters());
        assert_eq!(restored.view(0).monthly, vec![(202610, 40), (202611, 40)]);
        assert_eq!(restored.view(0).monthly, original.view(0).monthly);
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
        // The header is fixed-width and names the current version.
        let text = std::fs::read(file.path()).unwrap();
        assert_eq!(text.iter().position(|b| *b == b'\n'), Some(HEADER_LEN - 1));
        assert!(text.starts_with(format!("JANSX-STATE {VERSION} ").as_bytes()));
    }

    #[test]
    fn corrupt_truncated_and_unknown_versions_are_moved_aside() {
        let good = encode(&store());
        let mut flipped = good.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 0x20;
        let mut newer = good.clone();
        newer[MAGIC.len() + 1] = b'9';
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

    /// The sections of a good version-2 file.
    fn sections_of(good: &[u8]) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_slice(&good[HEADER_LEN..]).unwrap()
    }

    /// A version-2 file with these sections and a valid checksum.
    fn file_of(sections: &BTreeMap<String, serde_json::Value>) -> Vec<u8> {
        with_valid_header(VERSION, &serde_json::to_vec(sections).unwrap())
    }

    /// Rewrites one section of a good version-2 file, with a valid checksum.
    fn with_section(good: &[u8], section: &str, value: &str) -> Vec<u8> {
        let mut v = sections_of(good);
        v.insert(section.into(), serde_json::from_str(value).unwrap());
        file_of(&v)
    }

    /// Upstream figures in every keyed section, beside the audit figures of [`store`].
    fn store_with_upstream() -> Store {
        use crate::event::{Call, Endpoint, ErrorReason};
        let mut s = store();
        for (endpoint, result) in [
            (Endpoint::Stat, Ok(())),
            (Endpoint::Stat, Err(ErrorReason::Timeout)),
            (Endpoint::Introspection, Ok(())),
            (Endpoint::Introspection, Err(ErrorReason::Auth)),
            (Endpoint::Health, Ok(())),
        ] {
            s.apply_event(&Event::UpstreamCall(Call {
                endpoint,
                result,
                seconds: 0.2,
                at_ms: 1_793_491_200_000,
            }));
        }
        let body = serde_json::json!({"response": [{"month": "202611", "monthly_active_users": 9,
            "token_count_per_granttype": {"password": {"access_token": 2}, "urn:custom": {"access_token": 3}}}]});
        s.apply_event(&Event::Stat(crate::upstream::stat::parse(&body).unwrap()));
        s
    }

    /// The sections keyed by metric family or file identity: all but FIDO2's and the
    /// pending pairs, which the two cases below do not touch.
    const KEYED: &[&str] = model::SECTIONS.split_at(7).0;

    /// Loads `sections`, saves again and returns what was saved.
    fn reload(
        sections: &BTreeMap<String, serde_json::Value>,
    ) -> BTreeMap<String, serde_json::Value> {
        let p = decode(&file_of(sections)).unwrap();
        assert!(p.dropped.is_empty(), "{:?}", p.dropped);
        sections_of(&encode(&Store::restore(config(), &p)))
    }

    /// The fuzz target's seeds and a few thousand seeded mutations of them, on stable
    /// in every test run: the decoder must refuse or load, never panic. (Longer runs:
    /// `cargo +nightly fuzz run snapshot_decode`, see fuzz/.)
    #[test]
    fn the_decoder_survives_mutated_snapshots() {
        let seeds_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/snapshot_decode");
        let seeds: Vec<Vec<u8>> = fs::read_dir(seeds_dir)
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(seeds.len() >= 3);
        let scratch = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        for seed in &seeds {
            // The body alone, so the framed variants reach the section decoders.
            let body = &seed[seed.iter().position(|b| *b == b'\n').unwrap() + 1..];
            exercise_decoder(seed, scratch.path());
            for _ in 0..400 {
                let mut m = body.to_vec();
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..m.len());
                    match rng.u8(..4) {
                        0 => m[i] = rng.u8(..),
                        1 => m[i] = b"0123456789\"{}[],:-e"[rng.usize(..19)],
                        2 => m.truncate(i),
                        _ => {
                            let j = rng.usize(..m.len());
                            let piece = m[j.min(i)..j.max(i)].to_vec();
                            m.splice(i..i, piece);
                        }
                    }
                    if m.is_empty() {
                        break;
                    }
                }
                exercise_decoder(&m, scratch.path());
            }
        }
    }

    #[test]
    fn huge_durations_never_make_a_sum_unwritable() {
        use crate::event::{Call, Endpoint};
        let mut s = store();
        // Out-of-range ceremony durations are dropped at parse; the entries still count.
        let entries: Vec<serde_json::Value> = (0..1001)
            .map(|i| {
                serde_json::json!({"id": format!("e{i}"), "timestamp": 1_793_491_200_000i64,
                "operationType": "AUTHENTICATION", "status": "SUCCESS", "durationMs": 1.7e308})
            })
            .collect();
        for e in crate::upstream::fido2::parse_entries(&serde_json::Value::Array(entries)).unwrap()
        {
            assert_eq!(e.duration_ms, None);
            s.apply_event(&Event::Fido2(Box::new(e)));
        }
        // A histogram fed huge values directly saturates instead of reaching +Inf.
        for _ in 0..1001 {
            s.apply_event(&Event::UpstreamCall(Call {
                endpoint: Endpoint::Stat,
                result: Ok(()),
                seconds: 1.7e308,
                at_ms: 1,
            }));
        }
        let bytes = encode(&s);
        let p = decode(&bytes).unwrap();
        assert!(p.dropped.is_empty(), "{:?}", p.dropped);
        let h = &p.histograms[r#"jans_upstream_request_duration{endpoint="stat"}"#];
        assert_eq!((h.count, h.sum), (1001, f64::MAX));
        let mut back = Store::restore(config(), &p);
        let ops = back.view(0).upstream.fido2_operations;
        assert_eq!(ops.values().sum::<u64>(), 1001);
    }

    #[test]
    fn a_new_label_value_or_enum_variant_loses_nothing() {
        let written = sections_of(&encode(&store_with_upstream()));
        let counters = written["counters"].as_object().unwrap();
        assert!(counters.keys().any(|k| k.contains("introspection")));
        assert_eq!(
            counters[r#"jans_tokens_issued{grant_type="other",token_type="access_token"}"#],
            3
        );

        // A later release wrote this: a new endpoint, error reason, action, grant type
        // and family. This build keeps every figure it knows and drops the rest.
        let mut newer = written.clone();
        let c = newer.get_mut("counters").unwrap().as_object_mut().unwrap();
        for (k, v) in [
            (
                r#"jans_upstream_errors{endpoint="userinfo",reason="timeout"}"#,
                7,
            ),
            (
                r#"jans_upstream_errors{endpoint="stat",reason="rate_limited"}"#,
                3,
            ),
            (
                r#"jans_audit_events{action="NEW_ACTION",outcome="success"}"#,
                5,
            ),
            (
                r#"jans_tokens_issued{grant_type="urn:newer",token_type="access_token"}"#,
                4,
            ),
            ("jans_future_figure", 11),
        ] {
            c.insert(k.into(), v.into());
        }
        let h = newer
            .get_mut("histograms")
            .unwrap()
            .as_object_mut()
            .unwrap();
        let stat = h[r#"jans_upstream_request_duration{endpoint="stat"}"#].clone();
        h.insert(
            r#"jans_upstream_request_duration{endpoint="userinfo"}"#.into(),
            stat,
        );
        let t = newer.get_mut("times").unwrap().as_object_mut().unwrap();
        t.insert(
            r#"jans_upstream_last_success{endpoint="userinfo"}"#.into(),
            5.into(),
        );
        let back = reload(&newer);
        let mut expected = written.clone();
        // An unknown grant type sums under `other`, as the stat parser does.
        expected.get_mut("counters").unwrap()[r#"jans_tokens_issued{grant_type="other",token_type="access_token"}"#] =
            7.into();
        for &section in KEYED {
            assert_eq!(back[section], expected[section], "{section}");
        }

        // An earlier release, before `introspection` existed, wrote this: the new
        // endpoint starts at zero and nothing else moves.
        let mut older = written.clone();
        for section in ["counters", "histograms", "times"] {
            older
                .get_mut(section)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .retain(|k, _| !k.contains("introspection"));
        }
        let back = reload(&older);
        for &section in KEYED {
            assert_eq!(back[section], older[section], "{section}");
        }
    }

    use std::collections::BTreeMap;

    #[test]
    fn a_bad_section_costs_only_that_section() {
        let good = encode(&store());
        for (section, value) in [
            ("counters", r#"{"jans_audit_events{}": -1}"#),
            ("checkpoints", r#"[{"id": 5}]"#),
            ("fido2", r#"{"seen": "not base64!"}"#),
            ("histograms", r#"[1, 2]"#),
        ] {
            let bytes = with_section(&good, section, value);
            let p = decode(&bytes).unwrap();
            assert_eq!(p.dropped, vec![section], "{section}");
            let mut s = Store::restore(config(), &p);
            assert_eq!(
                s.view(0).monthly,
                vec![(202610, 40), (202611, 40)],
                "{section}: sketches kept"
            );
            let kept = s.counters().audit[crate::event::Action::TokenRequest.index()][1];
            assert_eq!(
                kept,
                if section == "counters" { 0 } else { 80 },
                "{section}"
            );
        }
    }

    #[test]
    fn a_malformed_sketch_costs_that_sketch_never_a_panic() {
        let good = encode(&store());
        let body: serde_json::Value = serde_json::from_slice(&good[HEADER_LEN..]).unwrap();
        let mut sketches = body["sketches"].clone();
        let months = &mut sketches["sets"]["active_users"]["month"];
        // Registers over the maximum rank, and a dense sketch of the wrong size.
        let e = base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        months["202610"] = serde_json::json!({"dense": e.encode(vec![0xffu8; 12288])});
        months["202611"] = serde_json::json!({"dense": e.encode(vec![0u8; 100])});
        months["202612"] =
            serde_json::json!({"sparse": e.encode([0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01])});
        // An index over 25 bits.
        months["202609"] = serde_json::json!({"sparse": e.encode([0x80u8, 0x80, 0x80, 0x20])});
        let bytes = with_section(&good, "sketches", &sketches.to_string());
        let p = decode(&bytes).unwrap();
        let mut s = Store::restore(config(), &p);
        assert!(s.view(0).monthly.is_empty(), "{:?}", s.view(0).monthly);
        let dropped = s.counters().state_sections_dropped[crate::store::STATE_SECTIONS
            .iter()
            .position(|x| *x == "sketches")
            .unwrap()];
        assert_eq!(dropped, 1);
        assert_eq!(
            s.counters().audit[crate::event::Action::TokenRequest.index()][1],
            80,
            "counters kept"
        );
    }

    #[test]
    fn fifos_devices_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        let fifo = std::ffi::CString::new(file.path().to_str().unwrap()).unwrap();
        // SAFETY: a plain mkfifo(3) on a path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let Loaded::Failed { error, moved_to } = file.load() else {
            panic!("a FIFO loaded")
        };
        assert!(error.contains("not a regular file"), "{error}");
        assert!(moved_to.is_some());
        std::os::unix::fs::symlink("/dev/zero", file.path()).unwrap();
        let Loaded::Failed { error, .. } = file.load() else {
            panic!("/dev/zero loaded")
        };
        assert!(error.contains("not a regular file"), "{error}");
        std::fs::create_dir(file.path()).unwrap();
        assert!(matches!(file.load(), Loaded::Failed { .. }));
    }

    /// A snapshot written by version 1 of the format, committed as a file: every later
    /// build must keep reading it.
    #[test]
    fn loads_the_committed_version_1_snapshot() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.json");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture, dir.path().join("state.json")).unwrap();
        let Loaded::Snapshot(p) = StateFile::new(dir.path()).load() else {
            panic!("v1 fixture did not load")
        };
        assert!(p.dropped.is_empty(), "{:?}", p.dropped);
        assert_eq!(p.checkpoints.len(), 1);
        assert_eq!(p.checkpoints[0].resume.offset, 4096);
        assert_eq!(
            p.counters
                .get("jans_audit_events{action=\"TOKEN_REQUEST\",outcome=\"success\"}"),
            Some(&7)
        );
        let mut s = Store::restore(config(), &p);
        assert_eq!(s.view(0).monthly, vec![(202611, 40)]);
    }

    #[test]
    fn an_unwritable_folder_is_a_save_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = StateFile::new(&blocker.join("state"))
            .save(&store().snapshot_out())
            .unwrap_err();
        assert!(matches!(err, SaveError::Folder(..)), "{err}");
    }
}
