//! Paths resolved inside a directory (a container's root, a volume).
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`:
//! `..` stops at the root and absolute symlinks are read relative to it —
//! Docker's "follow symlinks in scope" — and magic links (`/proc/self/...`)
//! are refused, so nothing outside the root can be reached even when the
//! tree is hostile (a container's `/evil -> /`). Walks below a resolved
//! directory use `openat(O_NOFOLLOW)` per component.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::sys::{self, fd_path, is_symlink, lstat_at, open_at, readlink_at};

/// Symlinks followed in one resolution before giving up (Linux's limit).
const MAX_LINKS: usize = 40;

/// The components of a container path, without empty ones and `.`.
pub fn components(p: &str) -> Vec<Vec<u8>> {
    p.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// `/a/./b/../c` → `/a/c`, lexically (moby's `filepath.Clean` on a
/// container path). `..` never goes above `/`.
pub fn clean(p: &str) -> String {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in components(p) {
        if c == b".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    join(&out)
}

fn join(comps: &[Vec<u8>]) -> String {
    let mut s = String::from("/");
    s.push_str(
        &comps
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

fn rel(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

/// A directory every path is resolved inside of.
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens a trusted host directory as a root.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A path naming the root for path-only interfaces.
    pub fn path(&self) -> PathBuf {
        fd_path(self.raw())
    }

    /// Opens `path` (a container path; relative ones are taken from the
    /// root) with symlinks resolved inside the root. With `O_NOFOLLOW` in
    /// `flags` a final symlink is not followed (with `O_PATH`, the link
    /// itself is opened).
    pub fn open_at(&self, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let comps = components(path);
        self.open_comps(&comps, flags, mode)
    }

    fn open_comps(&self, comps: &[Vec<u8>], flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let path = rel(comps);
        let flags = sys::oflags(flags) | OFlags::CLOEXEC;
        // The kernel refuses a mode without O_CREAT / O_TMPFILE.
        let mode = if flags.intersects(OFlags::CREATE | OFlags::TMPFILE) {
            Mode::from_raw_mode(mode)
        } else {
            Mode::empty()
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // A concurrent rename anywhere on the system can make the kernel
        // refuse a `..` walk with EAGAIN; retrying is the documented answer.
        for _ in 0..64 {
            match rustix::fs::openat2(&self.fd, path.as_slice(), flags, mode, resolve) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::AGAIN.into())
    }

    /// The container path `path` leads to, every symlink (the last one
    /// too) resolved inside the root; components that do not exist are
    /// kept as given (moby's `FollowSymlinkInScope`).
    pub fn resolve(&self, path: &str) -> io::Result<String> {
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = components(path).into();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                done.pop();
                continue;
            }
            let parent = match self.open_comps(&done, libc::O_PATH | libc::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    done.push(c);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match lstat_at(&parent, &c) {
                Ok(st) if is_symlink(&st) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = readlink_at(&parent, &c)?;
                    if target.first() == Some(&b'/') {
                        done.clear();
                    }
                    let t = String::from_utf8_lossy(&target).into_owned();
                    let mut parts: Vec<Vec<u8>> = t
                        .as_bytes()
                        .split(|b| *b == b'/')
                        .filter(|c| !c.is_empty() && *c != b".")
                        .map(<[u8]>::to_vec)
                        .collect();
                    while let Some(p) = parts.pop() {
                        todo.push_front(p);
                    }
                }
                Ok(_) => done.push(c),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    done.push(c)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(join(&done))
    }

    /// Creates `path` and its missing parents as directories inside the
    /// root; returns the directory opened `O_PATH`.
    pub fn mkdir_all(&self, path: &str, mode: u32) -> io::Result<OwnedFd> {
        let comps = components(path);
        let dir = libc::O_PATH | libc::O_DIRECTORY;
        for i in 1..=comps.len() {
            match self.open_comps(&comps[..i], dir, 0) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let parent = self.open_comps(&comps[..i - 1], dir, 0)?;
                    // Relative to a resolved parent; mkdirat never
                    // follows a final symlink.
                    match rustix::fs::mkdirat(
                        &parent,
                        comps[i - 1].as_slice(),
                        Mode::from_raw_mode(mode),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.open_comps(&comps, dir, 0)
    }

    /// Creates an empty file at `path` unless something is there already
    /// (parents created as directories).
    pub fn touch(&self, path: &str) -> io::Result<()> {
        let comps = components(path);
        let Some((name, parent)) = comps.split_last() else {
            return Ok(());
        };
        let parent = self.mkdir_all(&join(parent), 0o755)?;
        match open_at(
            &parent,
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
            0o644,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Go's `os.FileMode` bits for a stat (what `X-Docker-Container-Path-Stat`
/// carries).
pub fn go_file_mode(mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let m = mode;
    let mut out = m & 0o777;
    out |= match m & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR,
        libc::S_IFIFO => PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if m & libc::S_ISUID != 0 {
        out |= SETUID;
    }
    if m & libc::S_ISGID != 0 {
        out |= SETGID;
    }
    if m & libc::S_ISVTX != 0 {
        out |= STICKY;
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// A root with symlinks leading out of it, and a file outside.
    pub(in crate::engine::fs) fn root_with_trap() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root").unwrap();
        symlink("/", r.join("evil")).unwrap();
        symlink("../../..", r.join("etc/up")).unwrap();
        symlink("passwd", r.join("etc/pw")).unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        std::fs::write(d.path().join("outside"), "secret").unwrap();
        let root = Root::open(&r).unwrap();
        (d, root)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (_d, root) = root_with_trap();
        assert_eq!(root.resolve("/evil").unwrap(), "/");
        assert_eq!(root.resolve("/evil/etc/pw").unwrap(), "/etc/passwd");
        assert_eq!(root.resolve("/etc/up/outside").unwrap(), "/outside");
        assert_eq!(root.resolve("/abs/pw").unwrap(), "/etc/passwd");
        assert_eq!(root.resolve("/nope/x/../y").unwrap(), "/nope/y");
        // The kernel agrees: `/evil/../outside` is not the host's file.
        let e = root
            .open_at("/evil/../outside", libc::O_RDONLY, 0)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let fd = root.open_at("/etc/up/etc/pw", libc::O_RDONLY, 0).unwrap();
        let mut s = String::new();
        File::from(fd).read_to_string(&mut s).unwrap();
        assert_eq!(s, "root");
    }

    #[test]
    fn mkdir_all_and_touch_stay_inside() {
        let (d, root) = root_with_trap();
        root.mkdir_all("/evil/tmp/new/dir", 0o755).unwrap();
        assert!(d.path().join("root/tmp/new/dir").is_dir());
        root.touch("/evil/x/file").unwrap();
        assert!(d.path().join("root/x/file").is_file());
        assert!(!Path::new("/x/file").exists());
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), 0x0800_0000 | 0o777);
        assert_eq!(
            go_file_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            0x80_0000 | 0o755
        );
    }
}
