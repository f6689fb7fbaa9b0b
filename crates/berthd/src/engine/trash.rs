//! Deferred removal of directories.
//!
//! A directory leaves its place with one rename into a `trash` directory on
//! the same file system (its name is free at once and nothing finds it any
//! more), and is deleted in the background. Deleting a container's files
//! costs a millisecond or more (every freed block is written back and, on a
//! `discard` mount, trimmed) on the path that answers `docker run --rm`.
//! Whatever a daemon that died left in the trash is emptied at start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The trash directory for paths under `root` (data root or exec root).
pub fn dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// Moves `path` into `trash` and deletes it in the background; when it
/// cannot be moved (another file system, a mount point elsewhere), deletes
/// it in place. A missing `path` is not an error.
pub fn remove(path: &Path, trash: &Path) {
    if !path.exists() {
        return;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = trash.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let moved = std::fs::create_dir_all(trash).is_ok() && std::fs::rename(path, &dest).is_ok();
    if !moved {
        delete(path);
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(move || delete(&dest));
        }
        Err(_) => delete(&dest),
    }
}

/// Empties `trash` in the background (what an earlier daemon left).
pub fn empty(trash: &Path) {
    let Ok(entries) = std::fs::read_dir(trash) else {
        return;
    };
    let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    if paths.is_empty() {
        return;
    }
    let work = move || paths.iter().for_each(|p| delete(p));
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

fn delete(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "removing directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_directory_is_gone_at_once_and_its_name_is_free() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("c1");
        std::fs::create_dir_all(d.join("rw/diff/etc")).unwrap();
        std::fs::write(d.join("rw/diff/etc/hosts"), "x").unwrap();
        remove(&d, &dir(root.path()));
        assert!(!d.exists());
        std::fs::create_dir(&d).unwrap();
        // No runtime here: the trash copy was deleted synchronously.
        assert_eq!(std::fs::read_dir(dir(root.path())).unwrap().count(), 0);
    }

    #[test]
    fn empty_deletes_what_an_earlier_daemon_left() {
        let root = tempfile::tempdir().unwrap();
        let t = dir(root.path());
        std::fs::create_dir_all(t.join("old-1/a/b")).unwrap();
        empty(&t);
        assert_eq!(std::fs::read_dir(&t).unwrap().count(), 0);
    }
}
