//! A wake-up hint for the poll loop: inotify (through `notify`) on the folders the
//! patterns name, so that a write is read within milliseconds instead of at the next
//! poll. Only a hint: every decision is still the poll's, and volumes that send no
//! events (NFS, some CSI drivers) work as before, at the poll interval.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

pub struct Wakeups {
    _watcher: RecommendedWatcher,
    /// Capacity 1: a burst of events is one wake-up, and memory stays bounded however
    /// long the loop is busy.
    rx: Receiver<()>,
    /// A file appeared, went or was renamed since the last [`Wakeups::take_structure_change`]:
    /// the listing must be done again. Writes alone only need the followed files read.
    structure: Arc<AtomicBool>,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The folder to watch for a pattern, and whether below it too.
fn watch_root(pattern: &str) -> Option<(PathBuf, RecursiveMode)> {
    let path = Path::new(pattern);
    let parent = path.parent()?;
    let mut root = PathBuf::new();
    for c in parent.components() {
        match c {
            Component::Normal(s) if has_meta(&s.to_string_lossy()) => {
                return Some((root, RecursiveMode::Recursive));
            }
            c => root.push(c),
        }
    }
    Some((root, RecursiveMode::NonRecursive))
}

impl Wakeups {
    /// Watches the folders of `patterns` that exist now; `None` if none could be
    /// watched (the loop then only polls).
    pub fn watch(patterns: &[String]) -> Option<Wakeups> {
        let (tx, rx) = sync_channel(1);
        let structure = Arc::new(AtomicBool::new(false));
        let changed = Arc::clone(&structure);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Writes, renames, creations and removals only: the tailer's own reads
                // and listings raise access and open events, which would wake it in a
                // loop.
                let Ok(event) = event else { return };
                let wanted = match event.kind {
                    EventKind::Modify(ModifyKind::Data(_)) => true,
                    EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Any) => {
                        changed.store(true, Ordering::Relaxed);
                        true
                    }
                    _ => false,
                };
                if wanted {
                    // Full: a wake-up is already pending, which is all this says.
                    // Disconnected: the tailer is gone. Neither needs anything done.
                    let _: Result<(), TrySendError<()>> = tx.try_send(());
                }
            })
            .ok()?;
        let mut watched = 0;
        let mut roots: Vec<(PathBuf, RecursiveMode)> =
            patterns.iter().filter_map(|p| watch_root(p)).collect();
        roots.sort_by(|a, b| a.0.cmp(&b.0));
        roots.dedup_by(|a, b| a.0 == b.0);
        for (root, mode) in roots {
            match watcher.watch(&root, mode) {
                Ok(()) => watched += 1,
                Err(e) => {
                    tracing::debug!(folder = %root.display(), error = %e, "no file events for this folder; polling it")
                }
            }
        }
        (watched > 0).then_some(Wakeups {
            _watcher: watcher,
            rx,
            structure,
        })
    }

    /// Waits for an event for at most `timeout`; true if one came.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.rx.recv_timeout(timeout).is_ok()
    }

    /// Whether files appeared, went or were renamed since the last call.
    pub fn take_structure_change(&self) -> bool {
        self.structure.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watched_folder_is_the_literal_part_of_the_pattern() {
        assert_eq!(
            watch_root("/logs/jans-auth_audit*.log"),
            Some((PathBuf::from("/logs"), RecursiveMode::NonRecursive))
        );
        assert_eq!(
            watch_root("/logs/**/jans-auth*.log"),
            Some((PathBuf::from("/logs"), RecursiveMode::Recursive))
        );
        assert_eq!(
            watch_root("/var/log/pods/*/auth/0.log"),
            Some((PathBuf::from("/var/log/pods"), RecursiveMode::Recursive))
        );
    }

    #[test]
    fn a_write_wakes_the_waiter_and_reading_does_not() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, b"x").unwrap();
        let w = Wakeups::watch(&[format!("{}/*.log", dir.path().display())]).unwrap();
        assert!(!w.wait(Duration::from_millis(50)), "nothing happened");
        // What the tailer itself does: list the folder, open and read the file.
        let _ = std::fs::read_dir(dir.path()).unwrap().count();
        let mut s = String::new();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert!(
            !w.wait(Duration::from_millis(200)),
            "woken by its own reads"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"y"))
            .unwrap();
        assert!(w.wait(Duration::from_secs(5)), "the write was not seen");
        assert!(!w.take_structure_change(), "a write lists nothing new");
        std::fs::rename(&log, dir.path().join("b.log")).unwrap();
        assert!(w.wait(Duration::from_secs(5)), "the rename was not seen");
        assert!(w.take_structure_change(), "a rename needs a new listing");
    }
}
