//! Deferred removal of directories.
//!
//! A directory leaves its place with one rename into a `trash` directory on
//! the same file system (its name is free at once and nothing finds it any
//! more), and is deleted in the background. Deleting a container's files
//! costs a millisecond or more (every freed block is written back and, on a
//! `discard` mount, trimmed) on the path that answers `docker run --rm`.
//! Whatever a daemon that died left in the trash is emptied at start.
//!
//! The deleting is done by one thread at idle priority (`SCHED_IDLE`): on
//! a busy machine it waits for a free CPU rather than compete with the
//! requests that follow (the `docker run --rm` client is still reading
//! its answer when a removal starts).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};

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
        Ok(_) => in_background(Box::new(move || delete(&dest))),
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
        Ok(_) => in_background(Box::new(work)),
        Err(_) => work(),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the trash thread (started on first use); inline if that
/// thread cannot be had.
fn in_background(job: Job) {
    static TX: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        // If the thread cannot start, `rx` is dropped and sends fail.
        let _ = std::thread::Builder::new()
            .name("berth-trash".into())
            .spawn(move || {
                idle_priority();
                for job in rx {
                    job();
                }
            });
        Mutex::new(tx)
    });
    let sent = tx.lock().unwrap_or_else(|p| p.into_inner()).send(job);
    if let Err(mpsc::SendError(job)) = sent {
        job();
    }
}

/// Puts the calling thread in `SCHED_IDLE`: it runs when a CPU has
/// nothing else to do.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; param is a valid struct.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_IDLE for the trash thread");
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

    #[tokio::test]
    async fn in_a_daemon_the_trash_thread_deletes_at_idle_priority() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("c2");
        std::fs::create_dir_all(d.join("rw/diff")).unwrap();
        remove(&d, &dir(root.path()));
        assert!(!d.exists());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_dir(dir(root.path())).unwrap().count() > 0 {
            assert!(std::time::Instant::now() < deadline, "trash not emptied");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        in_background(Box::new(move || {
            // SAFETY: reads the calling thread's policy.
            let _ = tx.send(unsafe { libc::sched_getscheduler(0) });
        }));
        assert_eq!(rx.recv().unwrap(), libc::SCHED_IDLE);
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
