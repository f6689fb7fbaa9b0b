//! Copy-up: a volume that is still empty when it is mounted over a
//! directory the image has content in gets that content first — files,
//! symlinks, owners, modes, times and xattrs, and the directory's own owner
//! and mode (moby's `copyExistingContents`). It runs at every start, and
//! does nothing once the volume has anything in it.

use std::io::{BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::engine::fs::{self, ExtractOptions, Packer, Root, UnpackOptions};
use crate::engine::{EngineError, Result};

/// Copies the tree of the open directory `src` into the open directory
/// `dst` (contents, and `src`'s own owner, mode and times onto `dst`).
pub fn copy_tree(src: OwnedFd, dst: OwnedFd) -> Result<()> {
    let (r, w) = std::io::pipe()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut t = Packer::new(BufWriter::with_capacity(1 << 20, w));
        t.add_dir_fd(&src, b".")?;
        t.finish()?.flush()
    });
    let unpacked = fs::unpack_fd(
        BufReader::with_capacity(1 << 20, r),
        dst,
        &UnpackOptions::default(),
        &ExtractOptions::default(),
    );
    let written = writer
        .join()
        .map_err(|_| EngineError::internal("copying into the volume: the reader panicked"))?;
    // The reader's error explains a writer's broken pipe, so it goes first.
    unpacked.map_err(|e| EngineError::internal(format!("copying into the volume: {e}")))?;
    written.map_err(|e| EngineError::internal(format!("copying into the volume: {e}")))?;
    Ok(())
}

fn is_empty_dir(p: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(p)
        .map_err(|e| EngineError::internal(format!("reading {}: {e}", p.display())))?
        .next()
        .is_none())
}

/// Fills `volume` from `dest` of the container's root file system when the
/// volume is empty and the image has a directory there. Returns whether it
/// copied.
pub fn populate(root: &Root, dest: &str, volume: &Path) -> Result<bool> {
    let src = match root.open_at(dest, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(false)
        }
        Err(e) => {
            return Err(EngineError::internal(format!(
                "reading {dest} for the volume: {e}"
            )))
        }
    };
    if !is_empty_dir(volume)? {
        return Ok(false);
    }
    let dst = std::fs::File::open(volume)
        .map_err(|e| EngineError::internal(format!("opening {}: {e}", volume.display())))?;
    if !fs::is_dir(&fs::fstat(&dst)?) {
        return Err(EngineError::internal(format!(
            "{} is not a directory",
            volume.display()
        )));
    }
    copy_tree(src, dst.into())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn copies_content_and_the_directory_itself_once() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("data/sub")).unwrap();
        std::fs::write(rootfs.join("data/sub/f"), "hello").unwrap();
        std::fs::set_permissions(
            rootfs.join("data/sub/f"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        symlink("sub/f", rootfs.join("data/link")).unwrap();
        std::fs::set_permissions(rootfs.join("data"), std::fs::Permissions::from_mode(0o711))
            .unwrap();
        // A hostile image: `/trap -> /` must not copy the host.
        symlink("/", rootfs.join("trap")).unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let root = Root::open(&rootfs).unwrap();
        assert!(populate(&root, "/data", &vol).unwrap());
        assert_eq!(std::fs::read_to_string(vol.join("sub/f")).unwrap(), "hello");
        assert_eq!(
            std::fs::metadata(vol.join("sub/f")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(vol.join("link")).unwrap(),
            Path::new("sub/f")
        );
        assert_eq!(std::fs::metadata(&vol).unwrap().mode() & 0o777, 0o711);
        // Not empty any more: nothing happens.
        std::fs::write(rootfs.join("data/new"), "x").unwrap();
        assert!(!populate(&root, "/data", &vol).unwrap());
        assert!(!vol.join("new").exists());
        // Missing in the image: nothing.
        let vol2 = d.path().join("vol2");
        std::fs::create_dir(&vol2).unwrap();
        assert!(!populate(&root, "/nope", &vol2).unwrap());
        // Through the trap: the root of the *image*, never the host's.
        assert!(populate(&root, "/trap/data", &vol2).unwrap());
        assert!(vol2.join("sub/f").exists());
    }
}
