//! Snapshots: the one place that knows the overlay layout. A container's
//! root (and a build step's scratch root) is an `RwLayer`: `prepare` its
//! directories, `mount` the image's layers (`Lowers`) under its upper
//! directory, and `commit` the upper directory as a new layer — the one
//! way an upper becomes a layer, for `docker commit` and a build's steps
//! alike (moby's builder commits a RUN container exactly as `docker
//! commit` does, so there is one rule set).

use std::collections::HashMap;
use std::io::PipeReader;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::engine::{EngineError, Result};

use super::pack::{pack, packs_nothing, PackOptions};

/// The empty files the runtime leaves in a container's rw layer as its
/// mount points; Docker keeps them in the init layer, so they are never
/// part of a committed layer.
pub const MOUNT_STUBS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    ".dockerenv",
    "sbin/docker-init",
];

/// Directories that hold only those stubs in the rw layer (or are mounted
/// over): not committed unless something else changed in them.
pub const MOUNT_DIRS: &[&str] = &["dev", "proc", "sys", "etc", "sbin"];

/// What wrote to an upper directory, which decides what in it is content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper {
    /// A container ran on it (`commit`, a build's RUN): the runtime's
    /// mount stubs are not content.
    Container,
    /// Only the engine wrote to it (a build's COPY, ADD, WORKDIR): there
    /// are no stubs, so an empty `/etc/hosts` put there is content.
    Scratch,
}

/// How an upper directory is packed as a layer: whiteouts as `.wh.`
/// entries, and for a container's the runtime's mount stubs left out.
pub fn layer_rules(upper: Upper) -> PackOptions {
    let (files, dirs) = match upper {
        Upper::Container => (MOUNT_STUBS, MOUNT_DIRS),
        Upper::Scratch => (&[][..], &[][..]),
    };
    PackOptions {
        overlay_whiteouts: true,
        skip_empty_files: files.iter().map(PathBuf::from).collect(),
        skip_vacant_dirs: dirs.iter().map(PathBuf::from).collect(),
    }
}

/// Packs `upper` into a layer that `store` makes from the tar stream (the
/// layer store, on top of the parent it knows); `None` when nothing but
/// mount stubs changed (moby then records an empty layer). Blocking: the
/// packer runs on its own thread, `store` on this one.
pub fn commit_upper<T>(
    upper: &Path,
    kind: Upper,
    store: impl FnOnce(PipeReader) -> Result<T>,
) -> Result<Option<T>> {
    let rules = layer_rules(kind);
    if packs_nothing(upper, &rules) {
        return Ok(None);
    }
    let (reader, writer) =
        std::io::pipe().map_err(|e| EngineError::internal(format!("pipe: {e}")))?;
    let up = upper.to_path_buf();
    let packer = std::thread::spawn(move || pack(&up, writer, &rules).map(drop));
    let made = store(reader);
    let packed = packer
        .join()
        .map_err(|_| EngineError::internal("the layer packer panicked"))?;
    // The layer store's failure first: when it stops reading (a full
    // disk), the packer only sees a broken pipe.
    let made = made?;
    packed.map_err(|e| EngineError::internal(format!("packing a layer: {e}")))?;
    Ok(Some(made))
}

/// The read-only layers of a root, top to bottom: absolute directories,
/// and the same as short names under `links_dir` for long chains.
#[derive(Debug, Clone, Default)]
pub struct Lowers {
    pub dirs: Vec<PathBuf>,
    pub short: Vec<String>,
    pub links_dir: PathBuf,
}

/// A root's own layer: `upper` (its changes), overlayfs's `work`, and the
/// `merged` view where it is mounted.
pub struct RwLayer {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

/// The page-size limit of mount(2) options, with room to spare.
const MAX_OPTS: usize = 4000;
/// The kernel's limit of one command-line argument (`MAX_ARG_STRLEN`).
const MAX_ARG: usize = 32 * 4096;
/// Room for the upper and work paths in fuse-overlayfs's argument.
const PATH_ROOM: usize = 4096;

/// The overlay options after the directories: `index=off`, `volatile` for
/// a discardable layer, and `userxattr` in userns mode (without it
/// overlayfs mounts in a user namespace but silently ignores the
/// `user.overlay.opaque` markers the unpacker wrote).
pub fn mount_tail(discardable: bool, userns: bool) -> String {
    let mut t = String::from("index=off");
    if discardable {
        t.push_str(",volatile");
    }
    if userns {
        t.push_str(",userxattr");
    }
    t
}

impl RwLayer {
    /// The rw layer kept in `container_dir` (a container's or a build
    /// step's directory).
    pub fn at(container_dir: &Path) -> Self {
        let rw = container_dir.join("rw");
        Self {
            upper: rw.join("diff"),
            work: rw.join("work"),
            merged: rw.join("merged"),
        }
    }

    /// Prepares the directories of a new (or existing) rw layer.
    pub fn prepare(&self) -> Result<()> {
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d)
                .map_err(|e| EngineError::internal(format!("creating {}: {e}", d.display())))?;
        }
        Ok(())
    }

    pub fn is_mounted(&self) -> bool {
        crate::engine::mountinfo::is_mountpoint(&self.merged)
    }

    /// Mounts the overlay of `lowers` under the upper directory. When the
    /// absolute lower paths would not fit in one page of mount options,
    /// `helper` (the shim) mounts with the short names from their links
    /// directory as its working directory.
    ///
    /// A `discardable` layer (an AutoRemove container's, deleted when it
    /// stops) is mounted `volatile`: overlayfs then skips syncing the upper
    /// file system, which a plain unmount does for the whole host file
    /// system, on the path that reports `docker run --rm`'s exit.
    pub fn mount(
        &self,
        lowers: &Lowers,
        helper: impl FnOnce() -> Command,
        discardable: bool,
    ) -> Result<()> {
        // An earlier overlay of this layer still being released goes
        // first: two live overlays on one upper directory are undefined.
        self.settle_detached();
        if self.is_mounted() {
            return Ok(());
        }
        // overlayfs refuses to mount again over a work dir that a volatile
        // mount marked; only discardable layers carry the mark, so their
        // (disposable) work dir is simply started afresh.
        let marked = self.work.join("work").join("incompat").join("volatile");
        if marked.exists() {
            std::fs::remove_dir_all(self.work.join("work")).map_err(|e| {
                EngineError::internal(format!("resetting {}: {e}", self.work.display()))
            })?;
        }
        if super::driver::current() == super::driver::Driver::FuseOverlayfs {
            return self.mount_fuse(lowers);
        }
        let tail = mount_tail(discardable, super::xattr::userns());
        let tail = tail.as_str();
        if lowers.dirs.is_empty() {
            // An image with no layers (FROM scratch, nothing added): overlay
            // needs a lower dir; an empty one serves.
            let empty = self
                .work
                .parent()
                .map(|p| p.join("empty"))
                .unwrap_or_default();
            std::fs::create_dir_all(&empty)?;
            return self.mount_opts(&format!("lowerdir={}", empty.display()), tail);
        }
        let abs: Vec<String> = lowers
            .dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},{tail}",
            abs.join(":"),
            self.upper.display(),
            self.work.display()
        );
        if opts.len() <= MAX_OPTS {
            return self.mount_opts(&opts, tail);
        }
        // Relative names from the link directory, mounted by a helper
        // process whose working directory is that directory.
        let out = helper()
            .arg("mount-overlay")
            .arg(&self.merged)
            .arg(lowers.short.join(":"))
            .arg(&self.upper)
            .arg(&self.work)
            .arg(tail)
            .current_dir(&lowers.links_dir)
            .output()
            .map_err(|e| EngineError::internal(format!("running the mount helper: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::internal(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(())
    }

    /// The fuse-overlayfs driver: `fuse-overlayfs -o lowerdir=..,upperdir=
    /// ..,workdir=.. <merged>`, run in the daemon's namespaces; it forks a
    /// FUSE server that lives until the mount is unmounted. Its options
    /// are a command-line argument, never mount(2) data, so the page limit
    /// does not apply; only `MAX_ARG_STRLEN` (32 pages) does, past which
    /// the lower dirs are named by their short links, relative to the
    /// links directory it runs in (it resolves them before serving).
    fn mount_fuse(&self, lowers: &Lowers) -> Result<()> {
        let (lower, cwd) = if lowers.dirs.is_empty() {
            let empty = self
                .work
                .parent()
                .map(|p| p.join("empty"))
                .unwrap_or_default();
            std::fs::create_dir_all(&empty)?;
            (empty.display().to_string(), None)
        } else {
            let abs: Vec<String> = lowers
                .dirs
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let abs = abs.join(":");
            if abs.len() + 2 * PATH_ROOM <= MAX_ARG {
                (abs, None)
            } else {
                (lowers.short.join(":"), Some(&lowers.links_dir))
            }
        };
        let opts = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            self.upper.display(),
            self.work.display()
        );
        let mut cmd = Command::new(super::driver::FUSE_OVERLAYFS);
        cmd.arg("-o").arg(&opts).arg(&self.merged);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let out = cmd.output().map_err(|e| {
            EngineError::internal(format!(
                "using mount program {}: {e}",
                super::driver::FUSE_OVERLAYFS
            ))
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(EngineError::internal(format!(
                "using mount program fuse-overlayfs: {}: {}",
                out.status,
                if err.is_empty() {
                    "<stderr empty>"
                } else {
                    &err
                }
            )));
        }
        Ok(())
    }

    fn mount_opts(&self, lower_part: &str, tail: &str) -> Result<()> {
        let opts = if lower_part.contains("upperdir=") {
            lower_part.to_string()
        } else {
            format!(
                "{lower_part},upperdir={},workdir={},{tail}",
                self.upper.display(),
                self.work.display()
            )
        };
        let mount = |o: &str| {
            nix::mount::mount(
                Some("overlay"),
                &self.merged,
                Some("overlay"),
                nix::mount::MsFlags::empty(),
                Some(o),
            )
        };
        let mut r = mount(&opts);
        if r == Err(nix::errno::Errno::EINVAL) && opts.contains(",volatile") {
            // Kernels before 5.10 have no `volatile`.
            r = mount(&opts.replacen(",volatile", "", 1));
        }
        r.map_err(|e| {
            EngineError::internal(format!("mounting the container's root file system: {e}"))
        })
    }

    /// Packs the upper directory into a layer `store` makes (see
    /// `commit_upper`).
    pub fn commit<T>(
        &self,
        kind: Upper,
        store: impl FnOnce(PipeReader) -> Result<T>,
    ) -> Result<Option<T>> {
        commit_upper(&self.upper, kind, store)
    }

    /// Unmounts the root as `unmount` does, but leaves the overlay's
    /// shutdown to the releasing thread: the mount leaves the tree now
    /// (nothing can reach it any more), while an `O_PATH` descriptor of its
    /// root holds the superblock until that thread closes it. The last
    /// reference is what shuts an overlay down, and overlayfs then syncs
    /// the whole upper file system (a disk flush, and every dirty file of
    /// the data root's file system written back: milliseconds, more on a
    /// busy host) — on the exit path, before `wait` can answer. Nothing is
    /// lost: the sync still happens, the descriptor dies with the daemon
    /// if it is killed (the kernel then finishes the shutdown), and a new
    /// mount of the same layer waits for it (`settle_detached`).
    ///
    /// With fuse-overlayfs (whose server lives as long as the superblock)
    /// this is `unmount`.
    pub fn unmount_soon(&self) {
        if !self.is_mounted() {
            return;
        }
        if super::driver::current() == super::driver::Driver::FuseOverlayfs {
            return self.unmount();
        }
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(root) = rustix::fs::open(&self.merged, flags, Mode::empty()) else {
            return self.unmount();
        };
        if let Err(e) = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %self.merged.display(), error = %e, "unmounting rootfs");
            return;
        }
        let held: Held = Arc::new(Mutex::new(Some(root)));
        let prev = lock(detached()).insert(self.merged.clone(), held.clone());
        // One left by an earlier exit of this layer (not mounted since):
        // closed here, as a mount would.
        if let Some(prev) = prev {
            drop(lock(&prev).take());
        }
        let merged = self.merged.clone();
        let job = move || {
            // The descriptor is closed under its lock: a mount of this
            // layer waits until the old superblock is gone.
            drop(lock(&held).take());
            let mut map = lock(detached());
            if map.get(&merged).is_some_and(|h| Arc::ptr_eq(h, &held)) {
                map.remove(&merged);
            }
        };
        release_in_background(Box::new(job));
    }

    /// Waits for (or finishes) the release of an overlay of this layer
    /// that `unmount_soon` detached.
    fn settle_detached(&self) {
        let held = lock(detached()).get(&self.merged).cloned();
        if let Some(held) = held {
            drop(lock(&held).take());
        }
    }

    /// Unmounts the root (lazily: a process still inside keeps its view).
    /// A fuse-overlayfs server exits once its mount is gone.
    pub fn unmount(&self) {
        if self.is_mounted() {
            if let Err(e) = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %self.merged.display(), error = %e, "unmounting rootfs");
            }
        }
    }
}

/// The root of a detached overlay, held until its shutdown is done.
type Held = Arc<Mutex<Option<OwnedFd>>>;

/// Overlays `unmount_soon` detached and not yet released, by mount point.
fn detached() -> &'static Mutex<HashMap<PathBuf, Held>> {
    static MAP: OnceLock<Mutex<HashMap<PathBuf, Held>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one thread that releases detached overlays (started
/// on first use), inline if that thread cannot be had. One thread, not the
/// blocking pool: a thousand containers stopped at once would otherwise
/// start hundreds of threads that all sync the same file system.
fn release_in_background(job: Job) {
    static TX: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // If the thread cannot start, `rx` is dropped and sends fail.
        let _ = std::thread::Builder::new()
            .name("berth-unmount".into())
            .spawn(move || rx.into_iter().for_each(|job| job()));
        Mutex::new(tx)
    });
    if let Err(std::sync::mpsc::SendError(job)) = lock(tx).send(job) {
        job();
    }
}

/// Checks, in userns mode, that overlayfs mounts here with `userxattr`
/// (Linux 5.11+): a scratch overlay under `scratch` is mounted and
/// unmounted. Before that kernel a rootless daemon uses the
/// fuse-overlayfs driver (`driver::choose`), or refuses to start with the
/// reason instead of failing at every container start.
pub fn probe_userns_overlay(scratch: &Path) -> Result<()> {
    let dir = scratch.join("overlay-probe");
    let _ = std::fs::remove_dir_all(&dir);
    let layer = RwLayer::at(&dir);
    let lower = dir.join("lower");
    let made = layer
        .prepare()
        .and_then(|()| std::fs::create_dir_all(&lower).map_err(EngineError::from));
    let mounted = made.and_then(|()| {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},{}",
            lower.display(),
            layer.upper.display(),
            layer.work.display(),
            mount_tail(false, true)
        );
        nix::mount::mount(
            Some("overlay"),
            &layer.merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| {
            EngineError::internal(format!(
                "rootless storage needs overlayfs with the userxattr option in a user \
                 namespace (Linux 5.11 or later): mounting a test overlay in {}: {e}",
                dir.display()
            ))
        })
    });
    if mounted.is_ok() {
        let _ = nix::mount::umount2(&layer.merged, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(&dir);
    mounted
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    /// Needs root (as the e2e tests): a real overlay mount.
    #[tokio::test]
    async fn a_detached_overlay_leaves_at_once_and_is_released_before_a_remount() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        std::fs::create_dir_all(&lower).unwrap();
        std::fs::write(lower.join("image-file"), "from the image").unwrap();
        let lowers = Lowers {
            dirs: vec![lower],
            short: vec![],
            links_dir: d.path().to_path_buf(),
        };
        let rw = RwLayer::at(&d.path().join("c"));
        rw.prepare().unwrap();
        rw.mount(&lowers, || Command::new("false"), false).unwrap();
        std::fs::write(rw.merged.join("written"), "by the container").unwrap();

        rw.unmount_soon();
        // Out of the mount table at once, the superblock held meanwhile.
        assert!(!rw.is_mounted());
        assert!(lock(detached()).contains_key(&rw.merged));
        // The container's write is in its upper directory.
        assert_eq!(
            std::fs::read_to_string(rw.upper.join("written")).unwrap(),
            "by the container"
        );

        // A remount finishes the release first, and sees the same layer.
        rw.mount(&lowers, || Command::new("false"), false).unwrap();
        assert!(lock(
            &lock(detached())
                .get(&rw.merged)
                .cloned()
                .unwrap_or_default()
        )
        .is_none());
        assert_eq!(
            std::fs::read_to_string(rw.merged.join("written")).unwrap(),
            "by the container"
        );
        assert!(rw.merged.join("image-file").exists());
        rw.unmount_soon();
        assert!(!rw.is_mounted());
        // The releasing thread closes the descriptor and forgets it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lock(detached()).contains_key(&rw.merged) {
            assert!(std::time::Instant::now() < deadline, "never released");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
