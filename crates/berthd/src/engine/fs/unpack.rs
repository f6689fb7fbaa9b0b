//! Safe tar extraction: image layers, `cp` uploads, build contexts and
//! volume copy-up all unpack through it.
//!
//! A tar stream is written under a destination directory without ever
//! leaving it: every entry name is checked (no absolute paths, no `..`),
//! and every parent directory is opened component by component with
//! `O_NOFOLLOW`, so an entry can never be written through a symlink. It
//! keeps owners, modes, mtimes, xattrs, hard links, symlinks, device nodes
//! and fifos, and (for image layers) turns `.wh.` whiteouts into
//! overlayfs's (a 0/0 character device, `trusted.overlay.opaque=y`, or
//! `user.overlay.opaque=y` in userns mode: see `xattr::set_userns`).
//!
//! The caller owns the destination: on error it removes it, so nothing
//! half-unpacked survives (the layer store unpacks into a staging directory).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps};

use super::error::{io_err, read_err, AResult, ArchiveError};
use super::sys::{self, fd_child_path, is_dir, is_symlink, Stat};
use super::xattr;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// AUFS bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`): never content.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const COPY_BUF: usize = 1 << 20;
/// Files at least this large get their writeback started as soon as they
/// are written, so a later sync finds most of the data already on disk.
const WRITEBACK_MIN: u64 = 1 << 20;

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
fn placeholder(parent: impl AsFd, name: &CString) -> io::Result<()> {
    sys::open_at(
        parent,
        name.as_bytes(),
        libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW,
        0o600,
    )
    .map(drop)
}

fn open_dir_at(parent: impl AsFd, name: &CString) -> io::Result<OwnedFd> {
    sys::open_at(
        parent,
        name.as_bytes(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

fn lstat_at(parent: impl AsFd, name: &CString) -> io::Result<Stat> {
    sys::lstat_at(parent, name.as_bytes())
}

fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut ns = String::from(frac);
    ns.truncate(9);
    while ns.len() < 9 {
        ns.push('0');
    }
    Some(Timespec {
        tv_sec: sec as _,
        tv_nsec: ns.parse().ok()?,
    })
}

struct Unpacker {
    root: Rc<OwnedFd>,
    opts: UnpackOptions,
    extract: ExtractOptions,
    /// The last parent directory opened, by components: tar entries come
    /// grouped by directory, so this saves a walk per entry.
    /// Shared, so a caller keeps its directory open however the cache
    /// moves on.
    cache: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
    dir_times: Vec<(Vec<Vec<u8>>, Timestamps)>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Opens (creating when asked) the directory at `comps` under the root,
    /// refusing to pass through a symlink or a non-directory.
    fn open_dir(&mut self, comps: &[Vec<u8>], create: bool, entry: &str) -> AResult<Rc<OwnedFd>> {
        if let Some((c, fd)) = &self.cache {
            if c.as_slice() == comps {
                return Ok(fd.clone());
            }
        }
        let mut cur = self.root.clone();
        for (i, c) in comps.iter().enumerate() {
            let name = cstr(c)?;
            let next = match open_dir_at(&*cur, &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    rustix::fs::mkdirat(&*cur, &name, Mode::from_raw_mode(0o755))
                        .map_err(|e| io_err(format!("creating parent of {entry}"), e.into()))?;
                    open_dir_at(&*cur, &name)
                        .map_err(|e| io_err(format!("opening parent of {entry}"), e))?
                }
                Err(e) => {
                    let prefix = String::from_utf8_lossy(&comps[..=i].join(&b'/')).into_owned();
                    let is_link = lstat_at(&*cur, &name)
                        .map(|st| is_symlink(&st))
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
            cur = Rc::new(next);
        }
        self.cache = Some((comps.to_vec(), cur.clone()));
        Ok(cur)
    }

    /// Removes whatever is at `name` (recursively for a directory).
    fn remove(&mut self, parent: &OwnedFd, name: &CString, st: &Stat) -> AResult<()> {
        if is_dir(st) {
            std::fs::remove_dir_all(fd_child_path(parent.as_raw_fd(), name.as_bytes()))
                .map_err(|e| io_err("replacing a directory", e))?;
            // A cached fd may point into what was just removed.
            self.cache = None;
        } else {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| io_err("replacing a file", e.into()))?;
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
        let mut mtime = Timespec {
            tv_sec: hdr.mtime().unwrap_or(0) as _,
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
        let times = Timestamps {
            last_access: atime.unwrap_or(mtime),
            last_modification: mtime,
        };
        self.stats.entries += 1;
        let root = self.root.clone();
        let lchown = |err: io::Error| lchown_error(&root, &comps, uid, gid, err);

        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): its metadata applies to the destination.
            if kind.is_dir() {
                apply_fd_meta(&*self.root, (uid, gid, &lchown), mode, &xattrs, &shown)?;
                self.dir_times.push((Vec::new(), times));
            }
            return Ok(());
        };
        let name_str = String::from_utf8_lossy(name).into_owned();

        if self.opts.overlay_whiteouts && name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.open_dir(parent_comps, true, &shown)?;
            if name_str == WHITEOUT_OPAQUE {
                xattr::set_fd(&*parent, xattr::opaque_name().as_bytes(), b"y")
                    .map_err(|e| io_err(format!("marking {shown} opaque"), e))?;
            } else if !name.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                let real = cstr(&name[WHITEOUT_PREFIX.len()..])?;
                if real.as_bytes().is_empty() {
                    return Err(bad("empty whiteout name"));
                }
                if let Ok(st) = lstat_at(&*parent, &real) {
                    self.remove(&parent, &real, &st)?;
                }
                let parent = self.open_dir(parent_comps, true, &shown)?;
                rustix::fs::mknodat(
                    &*parent,
                    &real,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| io_err(format!("creating whiteout for {shown}"), e.into()))?;
                // Best effort, as before: the whiteout works whoever owns it.
                let _ = chown_at(&parent, &real, uid, gid);
            }
            return Ok(());
        }

        let parent = self.open_dir(parent_comps, true, &shown)?;
        let cname = cstr(name)?;
        if let Ok(st) = lstat_at(&*parent, &cname) {
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
                self.remove(&parent, &cname, &st)?;
            }
        }
        // `remove` may have dropped the cache: reopen.
        let parent = self.open_dir(parent_comps, true, &shown)?;
        let ctx = |what: &str| format!("{what} {shown}");
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = sys::open_at(
                    &*parent,
                    cname.as_bytes(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|err| io_err(ctx("creating"), err))?;
                let mut f = File::from(fd);
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
                    sys::start_writeback(f.as_raw_fd());
                }
                apply_fd_meta(&f, (uid, gid, &lchown), mode, &xattrs, &shown)?;
                rustix::fs::futimens(&f, &times)
                    .map_err(|err| io_err(ctx("setting times on"), err.into()))?;
            }
            tar::EntryType::Directory => {
                if lstat_at(&*parent, &cname).is_err() {
                    rustix::fs::mkdirat(&*parent, &cname, Mode::from_raw_mode(0o700))
                        .map_err(|err| io_err(ctx("creating directory"), err.into()))?;
                }
                let fd =
                    open_dir_at(&*parent, &cname).map_err(|err| io_err(ctx("opening"), err))?;
                apply_fd_meta(&fd, (uid, gid, &lchown), mode, &xattrs, &shown)?;
                self.dir_times.push((comps.clone(), times));
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without a target"))?
                    .into_owned();
                let ctarget = cstr(&target)?;
                rustix::fs::symlinkat(&ctarget, &*parent, &cname)
                    .map_err(|err| io_err(ctx("creating symlink"), err.into()))?;
                chown_at(&parent, &cname, uid, gid).map_err(lchown)?;
                node_meta(&parent, &cname, &xattrs, &times, &shown)?;
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
                // Shared, so it stays open while `parent` is opened.
                let tparent_fd = match self.open_dir(tparent, false, &shown) {
                    Ok(fd) => fd,
                    Err(ArchiveError::Unsafe(m)) => return Err(ArchiveError::Unsafe(m)),
                    Err(_) if self.extract.rehearse => {
                        let parent = self.open_dir(parent_comps, true, &shown)?;
                        return placeholder(&*parent, &cname)
                            .map_err(|err| io_err(ctx("creating"), err));
                    }
                    Err(e) => return Err(e),
                };
                let parent = self.open_dir(parent_comps, true, &shown)?;
                let ctname = cstr(tname)?;
                // No flags: link the entry itself, never what a symlink
                // points at.
                let r =
                    rustix::fs::linkat(&*tparent_fd, &ctname, &*parent, &cname, AtFlags::empty());
                if let Err(err) = r {
                    let err = io::Error::from(err);
                    if err.raw_os_error() == Some(libc::ENOENT) && self.extract.rehearse {
                        return placeholder(&*parent, &cname)
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
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &*parent,
                    &cname,
                    fmt,
                    Mode::from_raw_mode(mode & 0o7777),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|err| io_err(ctx("creating node"), err.into()))?;
                chown_at(&parent, &cname, uid, gid).map_err(lchown)?;
                // mknod honours the umask; set the exact mode afterwards.
                rustix::fs::chmodat(
                    &*parent,
                    &cname,
                    Mode::from_raw_mode(mode),
                    AtFlags::empty(),
                )
                .map_err(|err| io_err(ctx("chmod"), err.into()))?;
                node_meta(&parent, &cname, &xattrs, &times, &shown)?;
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
                self.root.clone()
            } else {
                match self.open_dir(comps, false, "") {
                    Ok(fd) => fd,
                    // Replaced by a later entry: nothing to time.
                    Err(_) => continue,
                }
            };
            rustix::fs::futimens(&*fd, t)
                .map_err(|e| io_err("setting directory times", e.into()))?;
        }
        Ok(())
    }
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`: the entry itself, a symlink included.
fn chown_at(parent: &OwnedFd, name: &CString, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chownat(
        parent,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// The error of a failed chown of an entry, worded as moby's: the
/// destination path, the archive's owner and, when the storage is in a
/// user namespace and the owner is outside its mapping (EINVAL), the hint
/// to give the user more subordinate ids. Errors read as Go's (lower case).
fn lchown_error(
    root: &OwnedFd,
    comps: &[Vec<u8>],
    uid: u32,
    gid: u32,
    err: io::Error,
) -> ArchiveError {
    use std::os::unix::ffi::OsStrExt;
    let mut path = std::fs::read_link(sys::fd_path(root.as_raw_fd())).unwrap_or_default();
    for c in comps {
        path.push(std::ffi::OsStr::from_bytes(c));
    }
    let einval = err.raw_os_error() == Some(libc::EINVAL);
    let hint = if einval && xattr::userns() {
        " (try increasing the number of subordinate IDs in /etc/subuid and /etc/subgid)"
    } else {
        ""
    };
    ArchiveError::Io(format!(
        "failed to Lchown {:?} for UID {uid}, GID {gid}{hint}: {}",
        path.display().to_string(),
        go_error(&err)
    ))
}

/// An OS error as Go prints it: `strerror` starting lower case, without
/// Rust's "(os error N)".
fn go_error(err: &io::Error) -> String {
    let Some(n) = err.raw_os_error() else {
        return err.to_string();
    };
    let s = io::Error::from_raw_os_error(n).to_string();
    let s = s.strip_suffix(&format!(" (os error {n})")).unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The owner of an entry and how a failure to set it reads.
type Owner<'a> = (u32, u32, &'a dyn Fn(io::Error) -> ArchiveError);

fn apply_fd_meta(
    fd: impl AsFd,
    (uid, gid, lchown): Owner<'_>,
    mode: u32,
    xattrs: &[(CString, Vec<u8>)],
    shown: &str,
) -> AResult<()> {
    let fd = fd.as_fd();
    // chown before chmod: chown clears set-id bits.
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| lchown(e.into()))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
        .map_err(|e| io_err(format!("chmod {shown}"), e.into()))?;
    for (k, v) in xattrs {
        if let Err(e) = xattr::set_fd(fd, k.as_bytes(), v) {
            xattr_error(e, k, shown)?;
        }
    }
    Ok(())
}

/// A symlink's or a node's xattrs and times, set on the entry itself.
fn node_meta(
    parent: &OwnedFd,
    name: &CString,
    xattrs: &[(CString, Vec<u8>)],
    times: &Timestamps,
    shown: &str,
) -> AResult<()> {
    let path = fd_child_path(parent.as_raw_fd(), name.as_bytes());
    for (k, v) in xattrs {
        if let Err(e) = xattr::set_path(&path, k.as_bytes(), v) {
            xattr_error(e, k, shown)?;
        }
    }
    rustix::fs::utimensat(parent, name, times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err(format!("setting times on {shown}"), e.into()))
}

/// Docker ignores xattrs the file system cannot hold, and those it may
/// not set (EPERM: `trusted.*` in a user namespace, a rootless daemon's
/// layers); so do we.
fn xattr_error(e: io::Error, k: &CString, shown: &str) -> AResult<()> {
    if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
        tracing::debug!(entry = shown, xattr = ?k, error = %e, "xattr not settable here; skipped");
        Ok(())
    } else {
        Err(io_err(format!("setting xattr {k:?} on {shown}"), e))
    }
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
        root: Rc::new(root),
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
