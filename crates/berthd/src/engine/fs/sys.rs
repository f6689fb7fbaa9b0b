//! The few file-system calls the layer makes, relative to directory
//! descriptors and never following a final symlink unless asked. They go
//! through `rustix`; the one call it lacks (`sync_file_range`) is the only
//! raw `libc` call here.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

pub use rustix::fs::Stat;

/// Status of an open descriptor.
pub fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// Status of `name` in `dir`, not following a final symlink.
pub fn lstat_at(dir: impl AsFd, name: &[u8]) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// The target of the symlink `name` in `dir`, as stored.
pub fn readlink_at(dir: impl AsFd, name: &[u8]) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)` with `libc`'s flag bits
/// (what callers spell their flags with).
pub fn open_at(dir: impl AsFd, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        oflags(flags) | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

/// `libc` open flags as `rustix`'s (the same bits).
pub fn oflags(flags: i32) -> OFlags {
    OFlags::from_bits_retain(flags as u32)
}

pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode as _)
}

pub fn is_dir(st: &Stat) -> bool {
    file_type(st) == FileType::Directory
}

pub fn is_symlink(st: &Stat) -> bool {
    file_type(st) == FileType::Symlink
}

/// `/proc/self/fd/N`: the path of an open descriptor (for the few calls
/// that only take paths).
pub fn fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// `/proc/self/fd/N/name`: `name` in the directory open as `dir`.
pub fn fd_child_path(dir: RawFd, name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut p = fd_path(dir);
    p.push(std::ffi::OsStr::from_bytes(name));
    p
}

/// File systems that are views of the kernel, not content: never archived.
pub fn is_pseudo_fs(fd: impl AsFd) -> bool {
    const PROC: i64 = 0x9fa0;
    const SYSFS: i64 = 0x6265_6572;
    const DEVPTS: i64 = 0x1cd1;
    const MQUEUE: i64 = 0x1980_0202;
    const CGROUP: i64 = 0x0027_e0eb;
    const CGROUP2: i64 = 0x6367_7270;
    match rustix::fs::fstatfs(fd) {
        Ok(s) => [PROC, SYSFS, DEVPTS, MQUEUE, CGROUP, CGROUP2].contains(&s.f_type),
        Err(_) => false,
    }
}

/// Starts (without waiting for) writeback of a file's dirty pages.
pub fn start_writeback(fd: RawFd) {
    // SAFETY: sync_file_range takes no pointers; an invalid or closed `fd`
    // only makes it fail with EBADF, and its failure loses nothing but an
    // optimisation, so the result is ignored. (rustix has no wrapper.)
    unsafe { libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}
