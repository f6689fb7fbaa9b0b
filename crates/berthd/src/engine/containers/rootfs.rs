//! The container's root file system: an overlay of the image's layers
//! (read-only lowers) and the container's own upper and work directories.

use std::path::{Path, PathBuf};

use crate::engine::{EngineError, Result};

use super::shim::ShimBinary;

/// The page-size limit of mount(2) options, with room to spare.
const MAX_OPTS: usize = 4000;

pub struct RwLayer {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl RwLayer {
    pub fn at(container_dir: &Path) -> Self {
        let rw = container_dir.join("rw");
        Self {
            upper: rw.join("diff"),
            work: rw.join("work"),
            merged: rw.join("merged"),
        }
    }

    pub fn create(&self) -> Result<()> {
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d)
                .map_err(|e| EngineError::internal(format!("creating {}: {e}", d.display())))?;
        }
        Ok(())
    }

    pub fn is_mounted(&self) -> bool {
        is_mountpoint(&self.merged)
    }

    /// Mounts the overlay. `lowers` are absolute layer dirs top to bottom;
    /// `short` are the same as names under `links_dir`, used when the
    /// absolute form would not fit in one page of mount options.
    ///
    /// A `discardable` layer (an AutoRemove container's, deleted when it
    /// stops) is mounted `volatile`: overlayfs then skips syncing the upper
    /// file system, which a plain unmount does for the whole host file
    /// system, on the path that reports `docker run --rm`'s exit.
    pub fn mount(
        &self,
        lowers: &[PathBuf],
        short: &[String],
        links_dir: &Path,
        shim: &ShimBinary,
        discardable: bool,
    ) -> Result<()> {
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
        let tail = if discardable {
            "index=off,volatile"
        } else {
            "index=off"
        };
        if lowers.is_empty() {
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
        let abs: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
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
        let out = shim
            .command()
            .arg("mount-overlay")
            .arg(&self.merged)
            .arg(short.join(":"))
            .arg(&self.upper)
            .arg(&self.work)
            .arg(tail)
            .current_dir(links_dir)
            .output()
            .map_err(|e| EngineError::internal(format!("running the mount helper: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::internal(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
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
        if r == Err(nix::errno::Errno::EINVAL) && opts.ends_with(",volatile") {
            // Kernels before 5.10 have no `volatile`.
            r = mount(opts.trim_end_matches(",volatile"));
        }
        r.map_err(|e| {
            EngineError::internal(format!("mounting the container's root file system: {e}"))
        })
    }

    pub fn unmount(&self) {
        if self.is_mounted() {
            if let Err(e) = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %self.merged.display(), error = %e, "unmounting rootfs");
            }
        }
    }
}

pub use crate::engine::mountinfo::is_mountpoint;
