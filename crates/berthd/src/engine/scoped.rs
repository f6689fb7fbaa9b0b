//! File access scoped to a directory (a container's root, a volume).
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`:
//! `..` stops at the root and absolute symlinks are read relative to it —
//! Docker's "follow symlinks in scope" — and magic links (`/proc/self/...`)
//! are refused, so nothing outside the root can be reached even when the
//! tree is hostile (a container's `/evil -> /`). Walks below a resolved
//! directory use `openat(O_NOFOLLOW)` per component.
//!
//! Also here: packing a tree reached that way into a tar (for `cp` and for
//! copying image content into a new volume).

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Symlinks followed in one resolution before giving up (Linux's limit).
const MAX_LINKS: usize = 40;

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

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

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(errno());
    }
    Ok(st)
}

pub fn lstat_at(dir: RawFd, name: &[u8]) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: zeroed stat is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        return Err(errno());
    }
    Ok(st)
}

pub fn readlink_at(dir: RawFd, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn open_at(dir: RawFd, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// `/proc/self/fd/N`: the path of an open descriptor (for the few calls
/// that only take paths).
pub fn fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// A directory every path is resolved inside of.
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens a trusted host directory as a root.
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: a fresh descriptor.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
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
        let c = cstr(&rel(comps))?;
        // SAFETY: open_how must be zeroed before use; fields set below.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            mode as u64
        } else {
            0
        };
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // A concurrent rename anywhere on the system can make the kernel
        // refuse a `..` walk with EAGAIN; retrying is the documented answer.
        for _ in 0..64 {
            // SAFETY: valid pointers and the struct's own size.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.raw(),
                    c.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            if r >= 0 {
                // SAFETY: a fresh descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
            }
            let e = errno();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
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
            match lstat_at(parent.as_raw_fd(), &c) {
                Ok(st) if is_symlink(&st) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = readlink_at(parent.as_raw_fd(), &c)?;
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
                    let name = cstr(&comps[i - 1])?;
                    // SAFETY: plain syscall relative to a resolved parent;
                    // mkdirat never follows a final symlink.
                    let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
                    if r < 0 && errno().raw_os_error() != Some(libc::EEXIST) {
                        return Err(errno());
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
            parent.as_raw_fd(),
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
pub fn go_file_mode(st: &libc::stat) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let m = st.st_mode;
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

/// File systems that are views of the kernel, not content: never archived.
fn is_pseudo_fs(fd: RawFd) -> bool {
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut s) } < 0 {
        return false;
    }
    const PROC: i64 = 0x9fa0;
    const SYSFS: i64 = 0x6265_6572;
    const DEVPTS: i64 = 0x1cd1;
    const MQUEUE: i64 = 0x1980_0202;
    const CGROUP: i64 = 0x0027_e0eb;
    const CGROUP2: i64 = 0x6367_7270;
    [PROC, SYSFS, DEVPTS, MQUEUE, CGROUP, CGROUP2].contains(&(s.f_type as i64))
}

/// Extended attributes of an open file (not an `O_PATH` one).
fn list_xattrs_fd(fd: RawFd) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    // SAFETY: buffers valid for their lengths.
    let n = unsafe { libc::flistxattr(fd, names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for k in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let Ok(ck) = CString::new(k) else { continue };
        let mut val = vec![0u8; 65536];
        // SAFETY: buffers valid for their lengths.
        let m = unsafe { libc::fgetxattr(fd, ck.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m < 0 {
            continue;
        }
        val.truncate(m as usize);
        let key = String::from_utf8_lossy(k).into_owned();
        if !key.starts_with("trusted.overlay.") {
            out.push((key, val));
        }
    }
    out.sort();
    out
}

/// Extended attributes of `name` in `dir`, not following a symlink.
fn list_xattrs(dir: RawFd, name: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut p = fd_path(dir).into_os_string().into_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    let Ok(p) = CString::new(p) else {
        return vec![];
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: buffers valid for their lengths.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for k in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let Ok(ck) = CString::new(k) else { continue };
        let mut val = vec![0u8; 65536];
        // SAFETY: buffers valid for their lengths.
        let m =
            unsafe { libc::lgetxattr(p.as_ptr(), ck.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m < 0 {
            continue;
        }
        val.truncate(m as usize);
        let key = String::from_utf8_lossy(k).into_owned();
        // Overlay's own bookkeeping is not content.
        if !key.starts_with("trusted.overlay.") {
            out.push((key, val));
        }
    }
    out.sort();
    out
}

/// Reads exactly `n` bytes: a file that shrank meanwhile is padded with
/// zeros and one that grew is cut, so the tar stays well-formed.
struct Exactly<R> {
    r: R,
    left: u64,
    eof: bool,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let got = if self.eof {
            0
        } else {
            self.r.read(&mut buf[..want])?
        };
        let got = if got == 0 {
            self.eof = true;
            buf[..want].fill(0);
            want
        } else {
            got
        };
        self.left -= got as u64;
        Ok(got)
    }
}

/// Writes trees reached through descriptors into a tar, never following a
/// symlink: owners, modes, mtimes, xattrs, hard links, devices and fifos
/// kept; sockets and the contents of pseudo file systems (`/proc`, `/sys`,
/// `/dev/pts`, ...) left out. Entry names are written as given (GNU long
/// name records when long), so the root of a container can be archived as
/// `/`, `/bin`, ... the way Docker names it.
pub struct TarWriter<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// `parent` + `/` + `name`, without doubling a trailing `/`.
pub fn arc_join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = parent.to_vec();
    if !v.ends_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        Self {
            b,
            links: HashMap::new(),
        }
    }

    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }

    fn header(st: &libc::stat) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// A GNU `././@LongLink` record carrying a name too long for the header.
    fn long_record(&mut self, kind: tar::EntryType, value: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let n = b"././@LongLink";
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        let mut data = value.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data.as_slice())
    }

    /// Appends `h` named `name` (and linking to `link`) with `data`.
    fn append(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> io::Result<()> {
        const FIELD: usize = 100;
        if let Some(l) = link {
            if l.len() > FIELD {
                self.long_record(tar::EntryType::GNULongLink, l)?;
            }
            let n = l.len().min(FIELD);
            h.as_old_mut().linkname = [0; FIELD];
            h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }
        if name.len() > FIELD {
            self.long_record(tar::EntryType::GNULongName, name)?;
        }
        let n = name.len().min(FIELD);
        h.as_old_mut().name = [0; FIELD];
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.set_cksum();
        self.b.append(&h, data)
    }

    fn xattrs(&mut self, dir: RawFd, name: &[u8]) -> io::Result<()> {
        self.pax(&list_xattrs(dir, name))
    }

    fn pax(&mut self, x: &[(String, Vec<u8>)]) -> io::Result<()> {
        if x.is_empty() {
            return Ok(());
        }
        let recs: Vec<(String, &[u8])> = x
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// Archives the entry `name` of directory `dir` as `arc` (recursively
    /// for a directory).
    pub fn add_at(&mut self, dir: RawFd, name: &[u8], arc: &[u8]) -> io::Result<()> {
        let st = lstat_at(dir, name)?;
        self.add_stat(dir, name, &st, arc, None)
    }

    /// Archives an open directory as `arc`, then its contents.
    pub fn add_dir_fd(&mut self, fd: &OwnedFd, arc: &[u8]) -> io::Result<()> {
        let st = fstat(fd.as_raw_fd())?;
        let mut h = Self::header(&st);
        h.set_entry_type(tar::EntryType::Directory);
        let x = list_xattrs_fd(fd.as_raw_fd());
        self.pax(&x)?;
        self.append(h, arc, None, io::empty())?;
        self.contents(fd, arc)
    }

    fn contents(&mut self, fd: &OwnedFd, arc: &[u8]) -> io::Result<()> {
        if is_pseudo_fs(fd.as_raw_fd()) {
            return Ok(());
        }
        // The descriptor's path reads exactly this directory.
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(fd_path(fd.as_raw_fd()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().into_vec()))
            .collect();
        names.sort();
        let parent_dev = fstat(fd.as_raw_fd())?.st_dev;
        for n in names {
            let st = match lstat_at(fd.as_raw_fd(), &n) {
                Ok(st) => st,
                // Gone meanwhile (a running container): skip it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let child = arc_join(arc, &n);
            self.add_stat(fd.as_raw_fd(), &n, &st, &child, Some(parent_dev))?;
        }
        Ok(())
    }

    fn add_stat(
        &mut self,
        dir: RawFd,
        name: &[u8],
        st: &libc::stat,
        arc: &[u8],
        parent_dev: Option<u64>,
    ) -> io::Result<()> {
        let mut h = Self::header(st);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let fd = open_at(
                    dir,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                self.xattrs(dir, name)?;
                h.set_entry_type(tar::EntryType::Directory);
                self.append(h, arc, None, io::empty())?;
                // `/dev` of a container is a tmpfs of device nodes: its
                // contents are the runtime's, not the container's.
                let dev_mount = parent_dev.is_some_and(|d| d != st.st_dev) && name == b"dev";
                if !dev_mount {
                    self.contents(&fd, arc)?;
                }
            }
            libc::S_IFLNK => {
                let target = readlink_at(dir, name)?;
                h.set_entry_type(tar::EntryType::Symlink);
                self.append(h, arc, Some(&target), io::empty())?;
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        h.set_entry_type(tar::EntryType::Link);
                        return self.append(h, arc, Some(&first), io::empty());
                    }
                    self.links.insert(key, arc.to_vec());
                }
                // O_NONBLOCK: if it was swapped for a fifo, do not hang.
                let fd = open_at(
                    dir,
                    name,
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                    0,
                )?;
                let now = fstat(fd.as_raw_fd())?;
                if now.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Ok(());
                }
                self.xattrs(dir, name)?;
                h.set_entry_type(tar::EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                h.set_size(size);
                let f = File::from(fd);
                self.append(
                    h,
                    arc,
                    None,
                    Exactly {
                        r: f,
                        left: size,
                        eof: false,
                    },
                )?;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                h.set_entry_type(match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                let _ = h.set_device_major(libc::major(st.st_rdev));
                let _ = h.set_device_minor(libc::minor(st.st_rdev));
                self.append(h, arc, None, io::empty())?;
            }
            // Sockets are not archived, as in Docker.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_with_trap() -> (tempfile::TempDir, Root) {
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
    fn packs_without_following_links() {
        let (_d, root) = root_with_trap();
        let fd = root
            .open_at("/", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .unwrap();
        let mut w = TarWriter::new(Vec::new());
        w.add_dir_fd(&fd, b"top").unwrap();
        let bytes = w.finish().unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(io::Cursor::new(bytes)).entries().unwrap() {
            let e = e.unwrap();
            names.push((
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            ));
        }
        let n: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            n,
            [
                "top",
                "top/abs",
                "top/etc",
                "top/etc/passwd",
                "top/etc/pw",
                "top/etc/up",
                "top/evil"
            ]
        );
        assert!(names[6].1.is_symlink());
    }

    #[test]
    fn go_modes() {
        // SAFETY: zeroed stat is valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_mode = libc::S_IFDIR | 0o755;
        assert_eq!(go_file_mode(&st), 2147484141);
        st.st_mode = libc::S_IFLNK | 0o777;
        assert_eq!(go_file_mode(&st), 0x0800_0000 | 0o777);
        st.st_mode = libc::S_IFREG | libc::S_ISUID | 0o755;
        assert_eq!(go_file_mode(&st), 0x80_0000 | 0o755);
    }
}
