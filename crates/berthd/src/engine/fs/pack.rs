//! The one tar packer: image layers (`commit`, build steps), `export`,
//! `GET /containers/{id}/archive` and volume copy-up all write through it.
//!
//! Trees are walked through descriptors, never following a symlink:
//! owners, modes, mtimes, xattrs (PAX `SCHILY.xattr.*`, overlayfs's own
//! left out), hard links, devices and fifos are kept; sockets and the
//! contents of pseudo file systems (`/proc`, `/sys`, `/dev/pts`, ...) are
//! left out. Directories are read sorted, so the same tree gives the same
//! bytes. Entry names are written as given (GNU long-name records when
//! long), so a container's root can be archived as `/`, `/bin`, ... the
//! way Docker names it, and a layer as `bin`, `bin/sh`, ...
//!
//! For layers (`PackOptions`) overlayfs whiteouts become `.wh.` entries
//! and the runtime's mount stubs are left out.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::error::{io_err, AResult};
use super::sys::{self, file_type, fstat, lstat_at, open_at, readlink_at, Stat};
use super::unpack::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use super::xattr::{self, Xattrs};

/// What a layer leaves out or translates (all off for plain archives).
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Turn overlayfs whiteouts back into `.wh.` entries (image layers).
    pub overlay_whiteouts: bool,
    /// Relative paths left out when they are empty regular files: the
    /// runtime's mount points in a container's rw layer.
    pub skip_empty_files: Vec<PathBuf>,
    /// Relative paths of directories left out when nothing in them is
    /// packed (and they are not opaque): the parents of those mount points.
    pub skip_vacant_dirs: Vec<PathBuf>,
}

impl PackOptions {
    fn skips_file(&self, rel: &[u8], st: &Stat) -> bool {
        file_type(st) == FileType::RegularFile
            && st.st_size == 0
            && self.skip_empty_files.iter().any(|p| p == as_path(rel))
    }

    fn may_skip_dir(&self, rel: &[u8]) -> bool {
        self.skip_vacant_dirs.iter().any(|p| p == as_path(rel))
    }
}

fn as_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// `parent` + `/` + `name`, without doubling a trailing `/`; a layer's
/// top-level entries (empty `parent`) have no leading one.
pub fn arc_join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = parent.to_vec();
    if !v.is_empty() && !v.ends_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// `a/b/name` → `a/b/<prefix>name`.
fn prefixed(arc: &[u8], prefix: &[u8]) -> Vec<u8> {
    let cut = arc.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let mut v = arc[..cut].to_vec();
    v.extend_from_slice(prefix);
    v.extend_from_slice(&arc[cut..]);
    v
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

/// Writes trees reached through descriptors into a tar.
pub struct Packer<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
    opts: PackOptions,
}

fn header(st: &Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> Packer<W> {
    /// A plain archive (`cp`, copy-up): everything as it is.
    pub fn new(w: W) -> Self {
        Self::with_options(w, PackOptions::default())
    }

    pub fn with_options(w: W, opts: PackOptions) -> Self {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        Self {
            b,
            links: HashMap::new(),
            opts,
        }
    }

    /// Writes the end-of-archive blocks; returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }

    /// A GNU `././@LongLink` record carrying a name too long for the
    /// header, its numeric fields zero as GNU tar writes them.
    fn long_record(&mut self, kind: tar::EntryType, value: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let n = b"././@LongLink";
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
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

    /// The xattrs of the next entry, as a PAX header.
    fn pax(&mut self, x: &Xattrs) -> io::Result<()> {
        let recs: Vec<(String, &[u8])> = x
            .iter()
            .filter(|(k, _)| !xattr::is_overlay_private(k))
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        if recs.is_empty() {
            return Ok(());
        }
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// Archives the entry `name` of directory `dir` as `arc` (recursively
    /// for a directory).
    pub fn add_at(&mut self, dir: impl AsFd, name: &[u8], arc: &[u8]) -> io::Result<()> {
        let dir = dir.as_fd();
        let st = lstat_at(dir, name)?;
        self.add_stat(dir, name, &st, arc, None)
    }

    /// Archives an open directory as `arc`, then its contents.
    pub fn add_dir_fd(&mut self, fd: &OwnedFd, arc: &[u8]) -> io::Result<()> {
        let st = fstat(fd)?;
        let mut h = header(&st);
        h.set_entry_type(tar::EntryType::Directory);
        self.pax(&xattr::list_fd(fd)?)?;
        self.append(h, arc, None, io::empty())?;
        self.add_contents(fd, arc)
    }

    /// Archives what an open directory holds, named under `arc` (a layer:
    /// an empty `arc`, so names are relative to the directory).
    pub fn add_contents(&mut self, fd: &OwnedFd, arc: &[u8]) -> io::Result<()> {
        if sys::is_pseudo_fs(fd) {
            return Ok(());
        }
        let parent_dev = fstat(fd)?.st_dev;
        for n in sorted_names(fd)? {
            let st = match lstat_at(fd, &n) {
                Ok(st) => st,
                // Gone meanwhile (a running container): skip it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            if self.opts.overlay_whiteouts && is_fuse_marker(&n, &st) {
                continue;
            }
            let child = arc_join(arc, &n);
            self.add_stat(fd.as_fd(), &n, &st, &child, Some(parent_dev))?;
        }
        Ok(())
    }

    fn add_stat(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
        arc: &[u8],
        parent_dev: Option<u64>,
    ) -> io::Result<()> {
        let dir = dirfd.as_raw_fd();
        let kind = file_type(st);
        if self.opts.skips_file(arc, st) {
            return Ok(());
        }
        let mut h = header(st);
        if self.opts.overlay_whiteouts && kind == FileType::CharacterDevice && st.st_rdev == 0 {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            return self.append(
                h,
                &prefixed(arc, WHITEOUT_PREFIX.as_bytes()),
                None,
                io::empty(),
            );
        }
        match kind {
            FileType::Directory => {
                let fd = open_at(
                    dirfd,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                let x = xattr::list_at(dir, name)?;
                let opaque = xattr::marks_opaque(&x)
                    || (self.opts.overlay_whiteouts
                        && lstat_at(&fd, WHITEOUT_OPAQUE.as_bytes())
                            .is_ok_and(|m| file_type(&m) == FileType::RegularFile));
                if self.opts.may_skip_dir(arc) && !opaque && self.is_vacant(&fd, arc) {
                    return Ok(());
                }
                self.pax(&x)?;
                h.set_entry_type(tar::EntryType::Directory);
                self.append(h, arc, None, io::empty())?;
                if self.opts.overlay_whiteouts && opaque {
                    let mut o = header(st);
                    o.set_entry_type(tar::EntryType::Regular);
                    o.set_mode(st.st_mode & 0o777);
                    let marker = arc_join(arc, WHITEOUT_OPAQUE.as_bytes());
                    self.append(o, &marker, None, io::empty())?;
                }
                // `/dev` of a container is a tmpfs of device nodes: its
                // contents are the runtime's, not the container's.
                let dev_mount = parent_dev.is_some_and(|d| d != st.st_dev) && name == b"dev";
                if !dev_mount {
                    self.add_contents(&fd, arc)?;
                }
            }
            FileType::Symlink => {
                let target = readlink_at(dirfd, name)?;
                self.pax(&xattr::list_at(dir, name)?)?;
                h.set_entry_type(tar::EntryType::Symlink);
                self.append(h, arc, Some(&target), io::empty())?;
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        self.pax(&xattr::list_at(dir, name)?)?;
                        h.set_entry_type(tar::EntryType::Link);
                        return self.append(h, arc, Some(&first), io::empty());
                    }
                    self.links.insert(key, arc.to_vec());
                }
                // O_NONBLOCK: if it was swapped for a fifo, do not hang.
                let fd = open_at(
                    dirfd,
                    name,
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                    0,
                )?;
                if file_type(&fstat(&fd)?) != FileType::RegularFile {
                    return Ok(());
                }
                self.pax(&xattr::list_fd(&fd)?)?;
                h.set_entry_type(tar::EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                h.set_size(size);
                let r = Exactly {
                    r: File::from(fd),
                    left: size,
                    eof: false,
                };
                self.append(h, arc, None, r)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                self.pax(&xattr::list_at(dir, name)?)?;
                h.set_entry_type(match kind {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                let rdev = st.st_rdev;
                let _ = h.set_device_major(rustix::fs::major(rdev));
                let _ = h.set_device_minor(rustix::fs::minor(rdev));
                self.append(h, arc, None, io::empty())?;
            }
            // Sockets are not archived, as in Docker.
            _ => {}
        }
        Ok(())
    }

    /// Whether the directory open as `fd` (at `rel`) holds nothing this
    /// packer would write: only skipped stubs and vacant skipped dirs.
    fn is_vacant(&self, fd: &OwnedFd, rel: &[u8]) -> bool {
        vacant(fd, rel, &self.opts)
    }
}

/// fuse-overlayfs's markers in an upper directory, which are not content:
/// the `.wh..wh..opq` file it leaves in a directory it made opaque (with
/// the opaque attribute, which `add_stat` reads) and the `.wh..opq`
/// whiteout beside it. A layer says "opaque" with one `.wh..wh..opq`
/// entry, written from the attribute, so layers packed under either
/// driver are the same.
fn is_fuse_marker(name: &[u8], st: &Stat) -> bool {
    let kind = file_type(st);
    (name == WHITEOUT_OPAQUE.as_bytes() && kind == FileType::RegularFile)
        || (name == b".wh..opq" && kind == FileType::CharacterDevice && st.st_rdev == 0)
}

fn sorted_names(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // The descriptor's path reads exactly this directory.
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(sys::fd_path(fd.as_raw_fd()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().into_vec()))
        .collect();
    names.sort();
    Ok(names)
}

fn vacant(fd: &OwnedFd, rel: &[u8], opts: &PackOptions) -> bool {
    let Ok(names) = sorted_names(fd) else {
        return false;
    };
    names.iter().all(|n| {
        let relp = arc_join(rel, n);
        let Ok(st) = lstat_at(fd, n) else {
            return false;
        };
        if sys::is_dir(&st) {
            opts.may_skip_dir(&relp)
                && !xattr::is_opaque(&sys::fd_child_path(fd.as_raw_fd(), n))
                && open_at(
                    fd,
                    n,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .is_ok_and(|sub| vacant(&sub, &relp, opts))
        } else {
            opts.skips_file(&relp, &st)
        }
    })
}

fn open_tree(src: &Path) -> AResult<OwnedFd> {
    File::open(src)
        .map(OwnedFd::from)
        .map_err(|e| io_err(format!("opening {}", src.display()), e))
}

/// Writes the tree under `src` as a layer-style tar (names relative to
/// `src`, no entry for `src` itself). Returns the writer.
pub fn pack<W: Write>(src: &Path, w: W, opts: &PackOptions) -> AResult<W> {
    let fd = open_tree(src)?;
    let mut p = Packer::with_options(w, opts.clone());
    p.add_contents(&fd, b"")
        .and_then(|()| p.finish())
        .map_err(|e| io_err(format!("packing {}", src.display()), e))
}

/// Whether `pack(src, …, opts)` would write no entry at all (a commit
/// without changes, which moby records as an empty layer).
pub fn packs_nothing(src: &Path, opts: &PackOptions) -> bool {
    open_tree(src).is_ok_and(|fd| vacant(&fd, b"", opts))
}
