//! Safe tar extraction and packing.
//!
//! `unpack` writes a tar stream under a destination directory without ever
//! leaving it: every entry name is checked (no absolute paths, no `..`), and
//! every parent directory is opened component by component with
//! `O_NOFOLLOW`, so an entry can never be written through a symlink. It keeps
//! owners, modes, mtimes, xattrs, hard links, symlinks, device nodes and
//! fifos, and (for image layers) turns `.wh.` whiteouts into overlayfs's
//! (a 0/0 character device, `trusted.overlay.opaque=y`). `pack` is the
//! inverse, for `commit`, `export` and `cp` later.
//!
//! The caller owns the destination: on error it removes it, so nothing
//! half-unpacked survives (the layer store unpacks into a staging directory).

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::EngineError;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// AUFS bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`): never content.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const COPY_BUF: usize = 1 << 20;
/// Files at least this large get their writeback started as soon as they
/// are written, so a later sync finds most of the data already on disk.
const WRITEBACK_MIN: u64 = 1 << 20;

/// Starts (without waiting for) writeback of a file's dirty pages.
pub fn start_writeback(fd: RawFd) {
    // SAFETY: plain syscall; failure only loses an optimisation.
    unsafe { libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive tries to escape the destination.
    #[error("{0}")]
    Unsafe(String),
    /// The stream is not a valid (compressed) tar.
    #[error("{0}")]
    Malformed(String),
    /// A local file-system operation failed.
    #[error("{0}")]
    Io(String),
}

impl From<ArchiveError> for EngineError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Unsafe(m) | ArchiveError::Malformed(m) => {
                EngineError::InvalidParameter(m)
            }
            ArchiveError::Io(m) => EngineError::Internal(m),
        }
    }
}

type AResult<T> = Result<T, ArchiveError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Detects gzip / zstd / plain by magic bytes.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `r` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(mut r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(8);
    (&mut r).take(8).read_to_end(&mut head)?;
    let c = detect_compression(&head);
    let chained = io::Cursor::new(head).chain(r);
    let out: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(chained),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(256 << 10, chained),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(chained)?),
    };
    Ok((c, out))
}

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Translate `.wh.` whiteouts into overlayfs whiteouts (image layers).
    pub overlay_whiteouts: bool,
}

/// Extraction options of `docker cp` uploads (`PUT /containers/{id}/archive`).
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// `noOverwriteDirNonDir`: refuse to replace a directory with a
    /// non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID` for a container with a user: every entry gets this
    /// owner instead of the archive's.
    pub chown: Option<(u32, u32)>,
    /// A rehearsal into a scratch directory (see `containers/archive.rs`):
    /// file contents are read and dropped, and a hard link to a file the
    /// archive did not bring is made as an empty file (the destination may
    /// have it; the real extraction checks).
    pub rehearse: bool,
}

#[derive(Debug, Clone, Default)]
pub struct UnpackStats {
    /// Docker's layer size: the bytes of every non-directory, hard links once.
    pub size: u64,
    pub entries: u64,
}

fn cstr(b: &[u8]) -> AResult<CString> {
    CString::new(b).map_err(|_| ArchiveError::Malformed("NUL byte in a file name".into()))
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

/// A failed read of the archive: malformed input, unless what failed is
/// our own storage (the input is often teed into the content store, so a
/// full disk shows up as a read error) — that is ours, not the archive's.
fn read_err(msg: String, e: &io::Error) -> ArchiveError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let errno = err
            .downcast_ref::<io::Error>()
            .and_then(|i| i.raw_os_error());
        if matches!(
            errno,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EIO) | Some(libc::EROFS)
        ) {
            return ArchiveError::Io(format!("storing the archive: {err}"));
        }
        cur = err.source();
    }
    ArchiveError::Malformed(msg)
}

fn io_err(what: impl std::fmt::Display, e: io::Error) -> ArchiveError {
    ArchiveError::Io(format!("{what}: {e}"))
}

/// Splits an entry name into safe relative components, or refuses it.
fn components(name: &[u8]) -> AResult<Vec<Vec<u8>>> {
    let shown = String::from_utf8_lossy(name);
    if name.first() == Some(&b'/') {
        return Err(ArchiveError::Unsafe(format!(
            "invalid tar entry {shown:?}: absolute paths are not allowed in an archive"
        )));
    }
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(ArchiveError::Unsafe(format!(
                    "invalid tar entry {shown:?}: path escapes the destination (\"..\")"
                )))
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// An empty file standing in for a hard link's target (rehearsals).
fn placeholder(parent: RawFd, name: &CString) -> io::Result<()> {
    // SAFETY: plain syscall; the fd is closed at once.
    let fd = unsafe {
        libc::openat(
            parent,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: the fd was just opened and is ours.
    unsafe { libc::close(fd) };
    Ok(())
}

fn open_dir_at(parent: RawFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned below.
    let fd = unsafe {
        libc::openat(
            parent,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(parent: RawFd, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(parent, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        return Err(errno());
    }
    Ok(st)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn proc_path(dirfd: RawFd, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{dirfd}"));
    p.push(OsStr::from_bytes(name));
    p
}

/// Timestamps as `utimensat` wants them.
#[derive(Debug, Clone, Copy)]
struct Times {
    atime: libc::timespec,
    mtime: libc::timespec,
}

fn parse_pax_time(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut ns = String::from(frac);
    ns.truncate(9);
    while ns.len() < 9 {
        ns.push('0');
    }
    Some(libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: ns.parse().ok()?,
    })
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    extract: ExtractOptions,
    /// The last parent directory opened, by components: tar entries come
    /// grouped by directory, so this saves a walk per entry.
    cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    dir_times: Vec<(Vec<Vec<u8>>, Times)>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Opens (creating when asked) the directory at `comps` under the root,
    /// refusing to pass through a symlink or a non-directory.
    fn open_dir(&mut self, comps: &[Vec<u8>], create: bool, entry: &str) -> AResult<RawFd> {
        if let Some((c, fd)) = &self.cache {
            if c.as_slice() == comps {
                return Ok(fd.as_raw_fd());
            }
        }
        // SAFETY: dup of a valid fd.
        let dup = unsafe { libc::fcntl(self.root.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io_err("dup", errno()));
        }
        // SAFETY: fresh fd from fcntl.
        let mut cur = unsafe { OwnedFd::from_raw_fd(dup) };
        for (i, c) in comps.iter().enumerate() {
            let name = cstr(c)?;
            let next = match open_dir_at(cur.as_raw_fd(), &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    // SAFETY: plain syscall.
                    let r = unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o755) };
                    if r < 0 {
                        return Err(io_err(format!("creating parent of {entry}"), errno()));
                    }
                    open_dir_at(cur.as_raw_fd(), &name)
                        .map_err(|e| io_err(format!("opening parent of {entry}"), e))?
                }
                Err(e) => {
                    let prefix = String::from_utf8_lossy(&comps[..=i].join(&b'/')).into_owned();
                    let is_link = lstat_at(cur.as_raw_fd(), &name)
                        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                        .unwrap_or(false);
                    return Err(if is_link {
                        ArchiveError::Unsafe(format!(
                            "invalid tar entry {entry:?}: writing through the symlink {prefix:?} is not allowed"
                        ))
                    } else if e.raw_os_error() == Some(libc::ENOENT) {
                        ArchiveError::Malformed(format!(
                            "invalid tar entry {entry:?}: {prefix:?} does not exist"
                        ))
                    } else {
                        ArchiveError::Malformed(format!(
                            "invalid tar entry {entry:?}: {prefix:?} is not a directory"
                        ))
                    });
                }
            };
            cur = next;
        }
        self.cache = Some((comps.to_vec(), cur));
        Ok(self
            .cache
            .as_ref()
            .map(|(_, fd)| fd.as_raw_fd())
            .unwrap_or(-1))
    }

    /// Removes whatever is at `name` (recursively for a directory).
    fn remove(&mut self, parent: RawFd, name: &CString, st: &libc::stat) -> AResult<()> {
        if is_dir(st) {
            std::fs::remove_dir_all(proc_path(parent, name.as_bytes()))
                .map_err(|e| io_err("replacing a directory", e))?;
            // A cached fd may point into what was just removed.
            self.cache = None;
        } else {
            // SAFETY: plain syscall.
            if unsafe { libc::unlinkat(parent, name.as_ptr(), 0) } < 0 {
                return Err(io_err("replacing a file", errno()));
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> AResult<()> {
        let raw_name = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let comps = components(&raw_name)?;
        let hdr = e.header().clone();
        let kind = hdr.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let bad =
            |what: &str| ArchiveError::Malformed(format!("invalid tar entry {shown:?}: {what}"));
        // Empty numeric fields read as 0, as Go's archive/tar reads them.
        let mode = hdr.mode().unwrap_or(0) & 0o7777;
        let (uid, gid) = self.extract.chown.unwrap_or((
            hdr.uid().unwrap_or(0) as libc::uid_t,
            hdr.gid().unwrap_or(0) as libc::gid_t,
        ));
        let mut mtime = libc::timespec {
            tv_sec: hdr.mtime().unwrap_or(0) as libc::time_t,
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs: Vec<(CString, Vec<u8>)> = Vec::new();
        if let Some(pax) = e.pax_extensions().map_err(|e| bad(&e.to_string()))? {
            for ext in pax {
                let ext = ext.map_err(|e| bad(&e.to_string()))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if key == b"atime" {
                    atime = parse_pax_time(ext.value_bytes());
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((cstr(name)?, ext.value_bytes().to_vec()));
                }
            }
        }
        let times = Times {
            atime: atime.unwrap_or(mtime),
            mtime,
        };
        self.stats.entries += 1;

        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): its metadata applies to the destination.
            if kind.is_dir() {
                let fd = self.root.as_raw_fd();
                apply_fd_meta(fd, uid, gid, mode, &xattrs, &shown)?;
                self.dir_times.push((Vec::new(), times));
            }
            return Ok(());
        };
        let name_str = String::from_utf8_lossy(name).into_owned();

        if self.opts.overlay_whiteouts && name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.open_dir(parent_comps, true, &shown)?;
            if name_str == WHITEOUT_OPAQUE {
                set_xattr_fd(parent, OPAQUE_XATTR, b"y")
                    .map_err(|e| io_err(format!("marking {shown} opaque"), e))?;
            } else if !name.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                let real = cstr(&name[WHITEOUT_PREFIX.len()..])?;
                if real.as_bytes().is_empty() {
                    return Err(bad("empty whiteout name"));
                }
                if let Ok(st) = lstat_at(parent, &real) {
                    self.remove(parent, &real, &st)?;
                }
                let parent = self.open_dir(parent_comps, true, &shown)?;
                // SAFETY: plain syscalls.
                let r = unsafe {
                    libc::mknodat(parent, real.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0))
                };
                if r < 0 {
                    return Err(io_err(format!("creating whiteout for {shown}"), errno()));
                }
                unsafe {
                    libc::fchownat(parent, real.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                };
            }
            return Ok(());
        }

        let parent = self.open_dir(parent_comps, true, &shown)?;
        let cname = cstr(name)?;
        if let Ok(st) = lstat_at(parent, &cname) {
            if self.extract.no_overwrite_dir_non_dir && kind != tar::EntryType::Link {
                if is_dir(&st) && !kind.is_dir() {
                    return Err(ArchiveError::Malformed(format!(
                        "cannot overwrite directory {shown:?} with non-directory {shown:?}"
                    )));
                }
                if !is_dir(&st) && kind.is_dir() {
                    return Err(ArchiveError::Malformed(format!(
                        "cannot overwrite non-directory {shown:?} with directory {shown:?}"
                    )));
                }
            }
            if !(kind.is_dir() && is_dir(&st)) {
                self.remove(parent, &cname, &st)?;
            }
        }
        // `remove` may have dropped the cache: reopen.
        let parent = self.open_dir(parent_comps, true, &shown)?;
        let ctx = |what: &str| format!("{what} {shown}");
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                // SAFETY: plain syscall; fd owned below.
                let fd = unsafe {
                    libc::openat(
                        parent,
                        cname.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(io_err(ctx("creating"), errno()));
                }
                // SAFETY: fresh fd.
                let mut f = unsafe { File::from_raw_fd(fd) };
                let mut n = 0u64;
                loop {
                    let got = match e.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(k) => k,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => {
                            return Err(read_err(
                                format!("invalid tar entry {shown:?}: reading contents: {err}"),
                                &err,
                            ))
                        }
                    };
                    if !self.extract.rehearse {
                        f.write_all(&self.buf[..got])
                            .map_err(|err| io_err(ctx("writing"), err))?;
                    }
                    n += got as u64;
                }
                self.stats.size += n;
                if n >= WRITEBACK_MIN {
                    start_writeback(f.as_raw_fd());
                }
                apply_fd_meta(f.as_raw_fd(), uid, gid, mode, &xattrs, &shown)?;
                set_times_fd(f.as_raw_fd(), &times)
                    .map_err(|err| io_err(ctx("setting times on"), err))?;
            }
            tar::EntryType::Directory => {
                if lstat_at(parent, &cname).is_err() {
                    // SAFETY: plain syscall.
                    if unsafe { libc::mkdirat(parent, cname.as_ptr(), 0o700) } < 0 {
                        return Err(io_err(ctx("creating directory"), errno()));
                    }
                }
                let fd = open_dir_at(parent, &cname).map_err(|err| io_err(ctx("opening"), err))?;
                apply_fd_meta(fd.as_raw_fd(), uid, gid, mode, &xattrs, &shown)?;
                self.dir_times.push((comps.clone(), times));
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without a target"))?
                    .into_owned();
                let ctarget = cstr(&target)?;
                // SAFETY: plain syscalls.
                if unsafe { libc::symlinkat(ctarget.as_ptr(), parent, cname.as_ptr()) } < 0 {
                    return Err(io_err(ctx("creating symlink"), errno()));
                }
                if unsafe {
                    libc::fchownat(parent, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                } < 0
                {
                    return Err(io_err(ctx("chown"), errno()));
                }
                for (k, v) in &xattrs {
                    set_lxattr(&proc_path(parent, name), k, v, &shown)?;
                }
                set_times_at(parent, &cname, &times)
                    .map_err(|err| io_err(ctx("setting times on"), err))?;
                self.stats.size += target.len() as u64;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad("hard link without a target"))?
                    .into_owned();
                let tcomps = components(&target).map_err(|err| match err {
                    ArchiveError::Unsafe(_) => ArchiveError::Unsafe(format!(
                        "invalid tar entry {shown:?}: hard link target {:?} is outside the archive",
                        String::from_utf8_lossy(&target)
                    )),
                    other => other,
                })?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(bad("hard link to the root"));
                };
                let tparent_fd = match self.open_dir(tparent, false, &shown) {
                    Ok(fd) => fd,
                    Err(ArchiveError::Unsafe(m)) => return Err(ArchiveError::Unsafe(m)),
                    Err(_) if self.extract.rehearse => {
                        let parent = self.open_dir(parent_comps, true, &shown)?;
                        return placeholder(parent, &cname)
                            .map_err(|err| io_err(ctx("creating"), err));
                    }
                    Err(e) => return Err(e),
                };
                // SAFETY: dup of a valid fd, so it survives re-opening `parent`.
                let tdup = unsafe { libc::fcntl(tparent_fd, libc::F_DUPFD_CLOEXEC, 0) };
                if tdup < 0 {
                    return Err(io_err("dup", errno()));
                }
                // SAFETY: fresh fd.
                let tdup = unsafe { OwnedFd::from_raw_fd(tdup) };
                let parent = self.open_dir(parent_comps, true, &shown)?;
                let ctname = cstr(tname)?;
                // flags 0: link the entry itself, never what a symlink points at.
                let r = unsafe {
                    libc::linkat(tdup.as_raw_fd(), ctname.as_ptr(), parent, cname.as_ptr(), 0)
                };
                if r < 0 {
                    let err = errno();
                    if err.raw_os_error() == Some(libc::ENOENT) && self.extract.rehearse {
                        return placeholder(parent, &cname)
                            .map_err(|err| io_err(ctx("creating"), err));
                    }
                    return Err(if err.raw_os_error() == Some(libc::ENOENT) {
                        bad(&format!(
                            "hard link target {:?} not found",
                            String::from_utf8_lossy(&target)
                        ))
                    } else {
                        io_err(ctx("creating hard link"), err)
                    });
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                // SAFETY: plain syscalls.
                let r = unsafe {
                    libc::mknodat(
                        parent,
                        cname.as_ptr(),
                        fmt | (mode & 0o7777),
                        libc::makedev(major, minor),
                    )
                };
                if r < 0 {
                    return Err(io_err(ctx("creating node"), errno()));
                }
                if unsafe {
                    libc::fchownat(parent, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                } < 0
                {
                    return Err(io_err(ctx("chown"), errno()));
                }
                // mknod honours the umask; set the exact mode afterwards.
                if unsafe { libc::fchmodat(parent, cname.as_ptr(), mode, 0) } < 0 {
                    return Err(io_err(ctx("chmod"), errno()));
                }
                for (k, v) in &xattrs {
                    set_lxattr(&proc_path(parent, name), k, v, &shown)?;
                }
                set_times_at(parent, &cname, &times)
                    .map_err(|err| io_err(ctx("setting times on"), err))?;
            }
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            other => {
                return Err(bad(&format!(
                    "unsupported entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }
        Ok(())
    }

    /// Directory mtimes last, deepest first, since creating entries inside
    /// a directory changes its mtime.
    fn finish(&mut self) -> AResult<()> {
        self.cache = None;
        let times = std::mem::take(&mut self.dir_times);
        for (comps, t) in times.iter().rev() {
            let fd = if comps.is_empty() {
                self.root.as_raw_fd()
            } else {
                match self.open_dir(comps, false, "") {
                    Ok(fd) => fd,
                    // Replaced by a later entry: nothing to time.
                    Err(_) => continue,
                }
            };
            set_times_fd(fd, t).map_err(|e| io_err("setting directory times", e))?;
        }
        Ok(())
    }
}

fn apply_fd_meta(
    fd: RawFd,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(CString, Vec<u8>)],
    shown: &str,
) -> AResult<()> {
    // SAFETY: plain syscalls on a valid fd. chown before chmod: chown
    // clears set-id bits.
    if unsafe { libc::fchown(fd, uid, gid) } < 0 {
        return Err(io_err(format!("chown {shown}"), errno()));
    }
    if unsafe { libc::fchmod(fd, mode) } < 0 {
        return Err(io_err(format!("chmod {shown}"), errno()));
    }
    for (k, v) in xattrs {
        // SAFETY: pointers valid for the given lengths.
        let r = unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if r < 0 {
            xattr_error(errno(), k, shown)?;
        }
    }
    Ok(())
}

/// Docker ignores xattrs the file system cannot hold; so do we.
fn xattr_error(e: io::Error, k: &CString, shown: &str) -> AResult<()> {
    if e.raw_os_error() == Some(libc::ENOTSUP) {
        tracing::debug!(entry = shown, xattr = ?k, "xattr not supported here; skipped");
        Ok(())
    } else {
        Err(io_err(format!("setting xattr {k:?} on {shown}"), e))
    }
}

fn set_lxattr(path: &Path, k: &CString, v: &[u8], shown: &str) -> AResult<()> {
    let p = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: pointers valid for the given lengths.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r < 0 {
        xattr_error(errno(), k, shown)?;
    }
    Ok(())
}

fn set_xattr_fd(fd: RawFd, k: &str, v: &[u8]) -> io::Result<()> {
    let k = CString::new(k).map_err(io::Error::other)?;
    // SAFETY: pointers valid for the given lengths.
    if unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } < 0 {
        return Err(errno());
    }
    Ok(())
}

fn set_times_fd(fd: RawFd, t: &Times) -> io::Result<()> {
    let ts = [t.atime, t.mtime];
    // SAFETY: ts is a valid array of two timespecs.
    if unsafe { libc::futimens(fd, ts.as_ptr()) } < 0 {
        return Err(errno());
    }
    Ok(())
}

fn set_times_at(dir: RawFd, name: &CString, t: &Times) -> io::Result<()> {
    let ts = [t.atime, t.mtime];
    // SAFETY: valid pointers.
    if unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        return Err(errno());
    }
    Ok(())
}

/// Unpacks an uncompressed tar stream under `dest` (an existing directory).
/// The stream is read to its end, trailing padding included, so a hash
/// taken around `reader` covers every byte.
pub fn unpack<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> AResult<UnpackStats> {
    let root = File::open(dest).map_err(|e| io_err(format!("opening {}", dest.display()), e))?;
    unpack_fd(reader, root.into(), opts, &ExtractOptions::default())
}

/// Like `unpack`, into an open directory (e.g. one resolved inside a
/// container's root), with `cp`'s extraction options.
pub fn unpack_fd<R: Read>(
    reader: R,
    root: OwnedFd,
    opts: &UnpackOptions,
    extract: &ExtractOptions,
) -> AResult<UnpackStats> {
    let mut u = Unpacker {
        root,
        opts: opts.clone(),
        extract: extract.clone(),
        cache: None,
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut ar = tar::Archive::new(reader);
    {
        let entries = ar
            .entries()
            .map_err(|e| ArchiveError::Malformed(format!("invalid tar archive: {e}")))?;
        for e in entries {
            let e = e.map_err(|e| read_err(format!("invalid tar archive: {e}"), &e))?;
            u.entry(e)?;
        }
    }
    u.finish()?;
    // Drain what follows the end-of-archive marker (padding to the block).
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| read_err(format!("reading the end of the archive: {e}"), &e))?;
    Ok(u.stats)
}

#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Turn overlayfs whiteouts back into `.wh.` entries (image layers).
    pub overlay_whiteouts: bool,
    /// Relative paths left out when they are empty regular files: the
    /// runtime's mount points in a container's rw layer (`commit`).
    pub skip_empty_files: Vec<PathBuf>,
    /// Relative paths of directories left out when nothing in them is
    /// packed (and they are not opaque): the parents of those mount points.
    pub skip_vacant_dirs: Vec<PathBuf>,
}

/// Whether the directory `dir` (at `rel` in the tree) holds nothing that
/// `pack` would write: only skipped stubs and vacant skipped directories.
fn is_vacant(dir: &Path, rel: &Path, opts: &PackOptions) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd {
        let Ok(e) = e else { return false };
        let full = e.path();
        let relp = rel.join(e.file_name());
        let Ok(md) = std::fs::symlink_metadata(&full) else {
            return false;
        };
        let skipped = if md.is_file() {
            md.len() == 0 && opts.skip_empty_files.contains(&relp)
        } else if md.is_dir() {
            opts.skip_vacant_dirs.contains(&relp)
                && !is_opaque_dir(&full)
                && is_vacant(&full, &relp, opts)
        } else {
            false
        };
        if !skipped {
            return false;
        }
    }
    true
}

fn is_opaque_dir(p: &Path) -> bool {
    list_xattrs(p)
        .map(|x| x.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y"))
        .unwrap_or(false)
}

/// Whether `pack(src, …, opts)` would write no entry at all (a commit
/// without changes, which moby records as an empty layer).
pub fn packs_nothing(src: &Path, opts: &PackOptions) -> bool {
    is_vacant(src, Path::new(""), opts)
}

fn list_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut names = vec![0u8; 4096];
    // SAFETY: buffer pointers valid for their lengths.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = errno();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(vec![]),
            _ => Err(e),
        };
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for k in names.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let ck = CString::new(k).map_err(io::Error::other)?;
        let mut val = vec![0u8; 65536];
        let m =
            unsafe { libc::lgetxattr(p.as_ptr(), ck.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m < 0 {
            continue;
        }
        val.truncate(m as usize);
        out.push((String::from_utf8_lossy(k).into_owned(), val));
    }
    out.sort();
    Ok(out)
}

/// Writes the tree under `src` as a tar (sorted, so the same tree gives the
/// same bytes). Returns the writer.
pub fn pack<W: Write>(src: &Path, w: W, opts: &PackOptions) -> AResult<W> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    pack_dir(&mut b, src, Path::new(""), opts, &mut links)?;
    b.into_inner()
        .map_err(|e| io_err("finishing the archive", e))
}

fn header_for(md: &std::fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn pax_xattrs<W: Write>(b: &mut tar::Builder<W>, xattrs: &[(String, Vec<u8>)]) -> AResult<()> {
    let recs: Vec<(String, &[u8])> = xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with("trusted.overlay."))
        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
        .collect();
    if !recs.is_empty() {
        b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(|e| io_err("writing xattrs", e))?;
    }
    Ok(())
}

fn pack_dir<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    opts: &PackOptions,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> AResult<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_err(format!("reading {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        let full = dir.join(&name);
        let relp = rel.join(&name);
        let md = std::fs::symlink_metadata(&full)
            .map_err(|e| io_err(format!("stat {}", full.display()), e))?;
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_file() && md.len() == 0 && opts.skip_empty_files.contains(&relp) {
            continue;
        }
        if ft.is_dir()
            && opts.skip_vacant_dirs.contains(&relp)
            && !is_opaque_dir(&full)
            && is_vacant(&full, &relp, opts)
        {
            continue;
        }
        if opts.overlay_whiteouts && ft.is_char_device() && md.rdev() == 0 {
            let mut h = header_for(&md);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            let mut wname = std::ffi::OsString::from(WHITEOUT_PREFIX);
            wname.push(&name);
            let p = rel.join(wname);
            b.append_data(&mut h, &p, io::empty())
                .map_err(|e| io_err("writing whiteout", e))?;
            continue;
        }
        let xattrs =
            list_xattrs(&full).map_err(|e| io_err(format!("xattrs of {}", full.display()), e))?;
        pax_xattrs(b, &xattrs)?;
        let mut h = header_for(&md);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, &relp, io::empty())
                .map_err(|e| io_err("writing a directory", e))?;
            let opaque = xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y");
            if opts.overlay_whiteouts && opaque {
                let mut o = header_for(&md);
                o.set_entry_type(tar::EntryType::Regular);
                o.set_mode(md.mode() & 0o777);
                b.append_data(&mut o, relp.join(WHITEOUT_OPAQUE), io::empty())
                    .map_err(|e| io_err("writing an opaque marker", e))?;
            }
            pack_dir(b, &full, &relp, opts, links)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full).map_err(|e| io_err("readlink", e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, &relp, &target)
                .map_err(|e| io_err("writing a symlink", e))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    b.append_link(&mut h, &relp, first)
                        .map_err(|e| io_err("writing a hard link", e))?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), relp.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            let f =
                File::open(&full).map_err(|e| io_err(format!("opening {}", full.display()), e))?;
            b.append_data(&mut h, &relp, f)
                .map_err(|e| io_err("writing a file", e))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = md.rdev();
            let _ = h.set_device_major(libc::major(rdev));
            let _ = h.set_device_minor(libc::minor(rdev));
            b.append_data(&mut h, &relp, io::empty())
                .map_err(|e| io_err("writing a node", e))?;
        }
        // Sockets are not archived, as in Docker.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_mtime(1_000_000);
            h.set_size(data.len() as u64);
            // Write the raw name so unsafe names reach the unpacker unfiltered.
            let raw = name.as_bytes();
            h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            if let Some(l) = link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            if *kind == tar::EntryType::Char {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack_into(t: &[u8], whiteouts: bool) -> (tempfile::TempDir, AResult<UnpackStats>) {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let r = unpack(
            io::Cursor::new(t),
            &dest,
            &UnpackOptions {
                overlay_whiteouts: whiteouts,
            },
        );
        (d, r)
    }

    #[test]
    fn mount_stubs_alone_pack_nothing() {
        let d = tempfile::tempdir().unwrap();
        let opts = PackOptions {
            overlay_whiteouts: true,
            skip_empty_files: vec![PathBuf::from("etc/hosts")],
            skip_vacant_dirs: vec![PathBuf::from("etc"), PathBuf::from("proc")],
        };
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::fs::write(d.path().join("etc/hosts"), "").unwrap();
        assert!(packs_nothing(d.path(), &opts));
        let names = |opts: &PackOptions| -> Vec<String> {
            let tar = pack(d.path(), Vec::new(), opts).unwrap();
            let mut ar = tar::Archive::new(tar.as_slice());
            ar.entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect()
        };
        assert!(names(&opts).is_empty());
        // A real change keeps its directory and drops the stub.
        std::fs::write(d.path().join("etc/new"), "x").unwrap();
        assert!(!packs_nothing(d.path(), &opts));
        assert_eq!(names(&opts), ["etc", "etc/new"]);
    }

    #[test]
    fn unpacks_files_links_and_metadata() {
        let t = tar_of(&[
            ("bin/", tar::EntryType::Directory, b"", None),
            ("bin/busybox", tar::EntryType::Regular, b"#!binary", None),
            ("bin/sh", tar::EntryType::Symlink, b"", Some("busybox")),
            ("bin/hard", tar::EntryType::Link, b"", Some("bin/busybox")),
            (
                "etc/passwd",
                tar::EntryType::Regular,
                b"root:x:0:0::/root:/bin/sh\n",
                None,
            ),
            ("dev/fifo", tar::EntryType::Fifo, b"", None),
            ("dev/null", tar::EntryType::Char, b"", None),
        ]);
        let (d, r) = unpack_into(&t, true);
        let stats = r.unwrap();
        let root = d.path().join("root");
        assert_eq!(
            std::fs::read(root.join("bin/busybox")).unwrap(),
            b"#!binary"
        );
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let a = std::fs::metadata(root.join("bin/busybox")).unwrap();
        let b = std::fs::metadata(root.join("bin/hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mtime(), 1_000_000);
        assert_eq!(a.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::metadata(root.join("bin")).unwrap().mtime(),
            1_000_000
        );
        let null = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        assert!(std::fs::symlink_metadata(root.join("dev/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        // 8 + 26 bytes of files + a 7-byte symlink; the hard link counts once.
        assert_eq!(stats.size, 8 + 26 + 7);
    }

    #[test]
    fn refuses_escapes_and_writes_nothing_outside() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_of(&[("../x", tar::EntryType::Regular, b"evil", None)]),
                "..",
            ),
            (
                tar_of(&[("a/../../x", tar::EntryType::Regular, b"evil", None)]),
                "..",
            ),
            (
                tar_of(&[("/abs-x", tar::EntryType::Regular, b"evil", None)]),
                "absolute",
            ),
            (
                tar_of(&[
                    ("link", tar::EntryType::Symlink, b"", Some("..")),
                    ("link/x", tar::EntryType::Regular, b"evil", None),
                ]),
                "symlink",
            ),
            (
                tar_of(&[
                    ("link", tar::EntryType::Symlink, b"", Some("/tmp")),
                    ("link/x", tar::EntryType::Regular, b"evil", None),
                ]),
                "symlink",
            ),
            (
                tar_of(&[("h", tar::EntryType::Link, b"", Some("../../etc/passwd"))]),
                "outside",
            ),
        ];
        for (t, word) in cases {
            let (d, r) = unpack_into(&t, true);
            let err = r.expect_err("must refuse");
            assert!(matches!(err, ArchiveError::Unsafe(_)), "{err}");
            assert!(err.to_string().contains(word), "{err}");
            assert!(!d.path().join("x").exists());
            assert!(!Path::new("/tmp/x").exists() || word != "symlink");
        }
    }

    #[test]
    fn translates_whiteouts_and_back() {
        let t = tar_of(&[
            ("dir/", tar::EntryType::Directory, b"", None),
            ("dir/.wh..wh..opq", tar::EntryType::Regular, b"", None),
            ("dir/keep", tar::EntryType::Regular, b"k", None),
            (".wh.gone", tar::EntryType::Regular, b"", None),
        ]);
        let (d, r) = unpack_into(&t, true);
        r.unwrap();
        let root = d.path().join("root");
        let md = std::fs::symlink_metadata(root.join("gone")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), 0);
        assert!(!root.join(".wh.gone").exists());
        let x = list_xattrs(&root.join("dir")).unwrap();
        assert!(
            x.contains(&("trusted.overlay.opaque".to_string(), b"y".to_vec())),
            "{x:?}"
        );
        // Back to tar: the .wh. forms return.
        let out = pack(
            &root,
            Vec::new(),
            &PackOptions {
                overlay_whiteouts: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(io::Cursor::new(out)).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(
            names,
            vec!["dir", "dir/.wh..wh..opq", "dir/keep", ".wh.gone"]
        );
        // Without translation, whiteouts are ordinary files.
        let (d, r) = unpack_into(&t, false);
        r.unwrap();
        assert!(d.path().join("root/.wh.gone").is_file());
    }

    #[test]
    fn keeps_owners_and_xattrs() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_size(1);
        b.append_data(&mut h, "owned", &b"x"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_uid(42);
        h.set_gid(43);
        h.set_mtime(12345);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "link", "owned").unwrap();
        let t = b.into_inner().unwrap();
        let (d, r) = unpack_into(&t, true);
        r.unwrap();
        let root = d.path().join("root");
        let md = std::fs::metadata(root.join("owned")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        assert_eq!(
            md.permissions().mode() & 0o7777,
            0o4755,
            "set-uid survives chown"
        );
        let x = list_xattrs(&root.join("owned")).unwrap();
        assert!(
            x.contains(&("user.berth".to_string(), b"yes".to_vec())),
            "{x:?}"
        );
        let lmd = std::fs::symlink_metadata(root.join("link")).unwrap();
        assert_eq!((lmd.uid(), lmd.gid(), lmd.mtime()), (42, 43, 12345));
    }

    #[test]
    fn detects_compression() {
        let plain = tar_of(&[("f", tar::EntryType::Regular, b"x", None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(io::Cursor::new(&plain), 1).unwrap();
        for (bytes, c) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zs, Compression::Zstd),
        ] {
            let (got, mut r) = decompress(io::Cursor::new(bytes.clone())).unwrap();
            assert_eq!(got, c);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let t = tar_of(&[
            ("a", tar::EntryType::Regular, b"one", None),
            ("a", tar::EntryType::Directory, b"", None),
            ("a/b", tar::EntryType::Regular, b"two", None),
        ]);
        let (d, r) = unpack_into(&t, true);
        r.unwrap();
        assert_eq!(std::fs::read(d.path().join("root/a/b")).unwrap(), b"two");
    }
}
