//! Extended attributes: listed for packing (sorted, so the same tree gives
//! the same bytes), set when unpacking, and overlayfs's opaque marker.

use std::io;
use std::os::fd::{AsFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use super::sys;

/// overlayfs's marker of a directory that hides the lower layers' one,
/// as a privileged mount keeps it.
pub const OPAQUE: &str = "trusted.overlay.opaque";
/// The same inside a user namespace (a `userxattr` mount): `trusted.*`
/// needs CAP_SYS_ADMIN in the initial namespace.
pub const USER_OPAQUE: &str = "user.overlay.opaque";
/// overlayfs's own bookkeeping: never content, never archived.
pub const OVERLAY_PREFIX: &str = "trusted.overlay.";
/// Its bookkeeping on a `userxattr` mount.
pub const USER_OVERLAY_PREFIX: &str = "user.overlay.";
/// fuse-overlayfs's marker of an opaque directory it made in a user
/// namespace (where `trusted.*` is denied to it); it reads
/// `user.overlay.opaque` too, so the unpacker never writes this one.
pub const FUSE_OPAQUE: &str = "user.fuseoverlayfs.opaque";
/// fuse-overlayfs's own bookkeeping (`origin`, `opaque`, ...).
pub const FUSE_PREFIX: &str = "user.fuseoverlayfs.";

/// Whether the daemon's storage lives in a user namespace (rootless):
/// chosen once at engine open, like the cgroup parent.
static USERNS: AtomicBool = AtomicBool::new(false);

/// Sets the storage mode: `true` when the daemon runs in a user
/// namespace. Overlay mounts then add `userxattr`, and opaque directories
/// are written and read as `user.overlay.opaque`.
pub fn set_userns(on: bool) {
    USERNS.store(on, Ordering::Relaxed);
}

/// Whether the storage is in userns mode (see `set_userns`).
pub fn userns() -> bool {
    USERNS.load(Ordering::Relaxed)
}

/// The opaque marker of this storage mode.
pub fn opaque_name() -> &'static str {
    if userns() {
        USER_OPAQUE
    } else {
        OPAQUE
    }
}

/// Whether the attribute `name` is overlayfs's bookkeeping in this
/// storage mode (never content). `trusted.overlay.*` always is; in userns
/// mode so is `user.overlay.*` (overlayfs's own there).
/// fuse-overlayfs's `user.fuseoverlayfs.*` always is.
pub fn is_overlay_private(name: &str) -> bool {
    name.starts_with(OVERLAY_PREFIX)
        || name.starts_with(FUSE_PREFIX)
        || (userns() && name.starts_with(USER_OVERLAY_PREFIX))
}

/// Names and values, sorted by name.
pub type Xattrs = Vec<(String, Vec<u8>)>;

/// The largest value the kernel stores (`XATTR_SIZE_MAX`).
const VALUE_MAX: usize = 65536;

/// The NUL-separated name list a `list` call fills: one call with a
/// buffer most files fit, asking for the exact size only when it does not.
fn names(list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match list(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            // Grew meanwhile or never fit: size it (an empty buffer asks).
            Err(Errno::RANGE) => {
                let want = list(&mut [])?;
                buf = vec![0u8; want.max(buf.len() * 2)];
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn collect(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&[u8], &mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Xattrs> {
    let names = names(list)?;
    let mut out = Vec::new();
    if names.is_empty() {
        // Most files: no value buffer to allocate.
        return Ok(out);
    }
    let mut val = vec![0u8; VALUE_MAX];
    for k in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        // Removed meanwhile (or unreadable): not part of the entry.
        let Ok(m) = get(k, &mut val) else { continue };
        out.push((String::from_utf8_lossy(k).into_owned(), val[..m].to_vec()));
    }
    out.sort();
    Ok(out)
}

/// Extended attributes of an open file (not an `O_PATH` one).
pub fn list_fd(fd: impl AsFd) -> io::Result<Xattrs> {
    let fd = fd.as_fd();
    collect(
        |b| rustix::fs::flistxattr(fd, b),
        |k, v| rustix::fs::fgetxattr(fd, k, v),
    )
}

/// Extended attributes of `path`, not following a final symlink.
pub fn list_path(path: &Path) -> io::Result<Xattrs> {
    collect(
        |b| rustix::fs::llistxattr(path, b),
        |k, v| rustix::fs::lgetxattr(path, k, v),
    )
}

/// Extended attributes of `name` in the directory `dir`, not following a
/// symlink (the kernel has no `*xattrat` before 6.13: through `/proc`).
pub fn list_at(dir: RawFd, name: &[u8]) -> io::Result<Xattrs> {
    list_path(&sys::fd_child_path(dir, name))
}

pub fn set_fd(fd: impl AsFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())?)
}

/// Sets an attribute on `path` itself, not what a symlink there names.
pub fn set_path(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(
        path,
        name,
        value,
        XattrFlags::empty(),
    )?)
}

/// Whether a listing marks an overlayfs opaque directory.
/// fuse-overlayfs's own marker counts in either mode (it writes
/// `trusted.overlay.opaque` when it may, this one when it may not).
pub fn marks_opaque(x: &Xattrs) -> bool {
    let name = opaque_name();
    x.iter()
        .any(|(k, v)| (k == name || k == FUSE_OPAQUE) && v == b"y")
}

/// Whether `path` is an opaque directory of an overlay upper layer.
pub fn is_opaque(path: &Path) -> bool {
    let marked = |name: &str| {
        let mut v = [0u8; 4];
        matches!(rustix::fs::lgetxattr(path, name, &mut v[..]), Ok(1) if v[0] == b'y')
    };
    marked(opaque_name()) || marked(FUSE_OPAQUE)
}
