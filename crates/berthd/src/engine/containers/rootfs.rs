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
    pub fn mount(
        &self,
        lowers: &[PathBuf],
        short: &[String],
        links_dir: &Path,
        shim: &ShimBinary,
    ) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        if lowers.is_empty() {
            // An image with no layers (FROM scratch, nothing added): overlay
            // needs a lower dir; an empty one serves.
            let empty = self
                .work
                .parent()
                .map(|p| p.join("empty"))
                .unwrap_or_default();
            std::fs::create_dir_all(&empty)?;
            return self.mount_opts(&format!("lowerdir={}", empty.display()));
        }
        let abs: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},index=off",
            abs.join(":"),
            self.upper.display(),
            self.work.display()
        );
        if opts.len() <= MAX_OPTS {
            return self.mount_opts(&opts);
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

    fn mount_opts(&self, lower_part: &str) -> Result<()> {
        let opts = if lower_part.contains("upperdir=") {
            lower_part.to_string()
        } else {
            format!(
                "{lower_part},upperdir={},workdir={},index=off",
                self.upper.display(),
                self.work.display()
            )
        };
        nix::mount::mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| {
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

/// True when `p` is a mount point (its device differs from its parent's,
/// or it is listed in mountinfo).
pub fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(parent)) = (std::fs::symlink_metadata(p), p.parent()) else {
        return false;
    };
    let Ok(b) = std::fs::symlink_metadata(parent) else {
        return false;
    };
    if a.dev() != b.dev() {
        return true;
    }
    let target = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
        })
        .unwrap_or(false)
}
