//! Which files the `logs.paths` patterns name now.
//!
//! A pattern without `**` has a fixed depth and is expanded by the `glob` crate. One
//! with `**` is walked by `walkdir` from its literal prefix and matched by `globset`:
//! `glob` follows symlinked folders without noticing a loop (two looping symlinks made
//! discovery run without end), while `walkdir` recognises a link back to an ancestor
//! and skips it. Symlinked folders are still followed (Kubernetes mounts are made of
//! them); the walk is bounded in depth and in entries.

use std::path::{Component, Path, PathBuf};

/// Folders below the literal prefix of a `**` pattern, at most.
const MAX_DEPTH: usize = 32;
/// Entries one walk visits at most; a bigger tree is cut short, with a warning.
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug)]
pub struct Pattern {
    text: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Glob,
    Walk {
        root: PathBuf,
        matcher: globset::GlobMatcher,
    },
}

/// What a walk met besides files: reported by the caller, rate-limited.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WalkNotes {
    /// Symlinks back to a folder being walked, skipped.
    pub loops: u64,
    /// Entries that could not be read (permissions, vanished mid-walk).
    pub errors: u64,
    /// The walk stopped at [`MAX_ENTRIES`].
    pub truncated: bool,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        glob::Pattern::new(text).map_err(|e| e.to_string())?;
        if !text.contains("**") {
            return Ok(Pattern {
                text: text.to_string(),
                kind: Kind::Glob,
            });
        }
        let matcher = globset::GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| e.to_string())?
            .compile_matcher();
        // The folders before the first component with a wildcard: where the walk starts.
        let mut root = PathBuf::new();
        for c in Path::new(text).components() {
            match c {
                Component::Normal(s) if has_meta(&s.to_string_lossy()) => break,
                c => root.push(c),
            }
        }
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        Ok(Pattern {
            text: text.to_string(),
            kind: Kind::Walk { root, matcher },
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Calls `found` with every regular file (after symlinks) the pattern names.
    pub fn files(&self, mut found: impl FnMut(PathBuf)) -> WalkNotes {
        let mut notes = WalkNotes::default();
        match &self.kind {
            Kind::Glob => match glob::glob(&self.text) {
                Ok(paths) => {
                    for p in paths {
                        match p {
                            Ok(p) => found(p),
                            Err(_) => notes.errors += 1,
                        }
                    }
                }
                Err(_) => notes.errors += 1,
            },
            Kind::Walk { root, matcher } => {
                let walk = walkdir::WalkDir::new(root)
                    .follow_links(true)
                    .max_depth(MAX_DEPTH);
                for (n, entry) in walk.into_iter().enumerate() {
                    if n >= MAX_ENTRIES {
                        notes.truncated = true;
                        break;
                    }
                    match entry {
                        Ok(e) if e.file_type().is_file() && matcher.is_match(e.path()) => {
                            found(e.into_path())
                        }
                        Ok(_) => {}
                        Err(e) if e.loop_ancestor().is_some() => notes.loops += 1,
                        Err(_) => notes.errors += 1,
                    }
                }
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(p: &Pattern) -> (Vec<String>, WalkNotes) {
        let mut out = Vec::new();
        let notes = p.files(|f| out.push(f.display().to_string()));
        out.sort();
        (out, notes)
    }

    #[test]
    fn double_star_walks_symlinked_folders_but_not_loops() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::fs::write(d.join("a/b/one.log"), b"x").unwrap();
        std::fs::write(d.join("real/two.log"), b"x").unwrap();
        std::fs::write(d.join("a/skip.txt"), b"x").unwrap();
        symlink(d.join("real"), d.join("a/linked")).unwrap();
        // Two loops: a link to the parent and a link to itself.
        symlink("..", d.join("a/b/up")).unwrap();
        symlink("../a", d.join("a/again")).unwrap();
        let p = Pattern::new(&format!("{}/a/**/*.log", d.display())).unwrap();
        let (found, notes) = names(&p);
        assert_eq!(
            found,
            [
                format!("{}/a/b/one.log", d.display()),
                format!("{}/a/linked/two.log", d.display())
            ]
        );
        assert!(notes.loops >= 2, "{notes:?}");
        assert!(!notes.truncated);
    }

    #[test]
    fn patterns_without_double_star_keep_their_fixed_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("x")).unwrap();
        std::fs::write(d.join("jans-auth_audit.log"), b"x").unwrap();
        std::fs::write(d.join("jans-auth_audit-2026-11-23-1.log"), b"x").unwrap();
        std::fs::write(d.join("x/jans-auth_audit.log"), b"x").unwrap();
        let p = Pattern::new(&format!("{}/jans-auth_audit*.log", d.display())).unwrap();
        assert_eq!(names(&p).0.len(), 2);
        // `*` never crosses a folder in a walked pattern either.
        let p = Pattern::new(&format!("{}/**/jans-auth_audit*.log", d.display())).unwrap();
        assert_eq!(names(&p).0.len(), 3);
        assert!(Pattern::new("/logs/a[.log").is_err());
        assert!(Pattern::new("/logs/**/a[.log").is_err());
    }
}
