//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive`.
//!
//! Every path is resolved inside the container's root with
//! `openat2(RESOLVE_IN_ROOT)` (`engine::fs::confined`), so a symlink to `/` or
//! `..` never leads out of it, exactly as Docker's "in scope" resolution.
//! The root is, for a running container, its init's root
//! (`/proc/<pid>/root`, the container's own mount namespace: volumes, binds
//! and tmpfs mounts as the container sees them); for a stopped one, its
//! overlay mounted for the operation with its volumes and binds bound in at
//! their destinations, all undone afterwards. A stopped container's
//! lifecycle lock is held for the whole operation, so it cannot start
//! meanwhile.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::mounts::{BIND, TMPFS, VOLUME};
use super::{Container, Record};
use crate::engine::fs::{self, ExtractOptions, Packer, Root, UnpackOptions};
use crate::engine::users;
use crate::engine::{containers::Containers, EngineError, Result};

/// The `X-Docker-Container-Path-Stat` JSON (Go's `ContainerPathStat`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The header value: base64 (standard) of the JSON.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// `PUT` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

/// The container's file system as the operation sees it.
pub(crate) struct View {
    pub root: Root,
    pub running: bool,
    /// The overlay mounted for a stopped container, detached on drop (with
    /// the volumes and binds mounted under it).
    mounted: Option<PathBuf>,
    /// Device-backed volumes held for a stopped container.
    volumes: Vec<String>,
    holder: String,
    engine: Arc<Containers>,
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %m.display(), error = %e, "unmounting after cp");
            }
        }
        for v in std::mem::take(&mut self.volumes) {
            self.engine.volumes.deactivate_volume(&v, &self.holder);
        }
    }
}

/// `/` + the user's path, keeping a trailing `/` or `/.` (they make the
/// last element followed, as in Docker).
fn abs_path(p: &str) -> String {
    let mut a = String::from("/");
    a.push_str(p.trim_start_matches('/'));
    a
}

/// The last element is followed when the path ends in `/` or `/.`.
fn follows_last(abs: &str) -> bool {
    abs.ends_with('/') || abs.ends_with("/.")
}

/// Go's `filepath.Base` on a container path.
fn base(abs: &str) -> String {
    let t = abs.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// The parent part of a path whose last element is not followed.
fn parent_and_name(abs: &str) -> (String, Vec<u8>) {
    let mut comps = fs::components(abs);
    match comps.pop() {
        Some(last) => (
            format!(
                "/{}",
                comps
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            last,
        ),
        None => ("/".into(), b".".to_vec()),
    }
}

fn not_found(path: &str, key: &str) -> EngineError {
    EngineError::not_found(format!("Could not find the file {path} in container {key}"))
}

fn path_error(e: std::io::Error, path: &str, key: &str) -> EngineError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => not_found(path, key),
        Some(libc::ELOOP) => EngineError::invalid(format!(
            "{path}: too many levels of symbolic links (or a link leading out of the container)"
        )),
        Some(libc::EXDEV) => EngineError::invalid(format!("{path}: escapes the container root")),
        _ => EngineError::internal(format!("{path}: {e}")),
    }
}

fn mtime(st: &fs::Stat) -> String {
    chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec.clamp(0, 999_999_999) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Stats `path` inside the root with Docker's rules: the parent is
/// resolved following symlinks, the last element is not (unless the path
/// ends in `/` or `/.`); a symlink's `linkTarget` is where it leads,
/// resolved inside the root.
pub(crate) fn stat_in(root: &Root, path: &str, key: &str) -> Result<PathStat> {
    let abs = abs_path(path);
    // A trailing `/` or `/.` asks for a directory (ENOTDIR otherwise).
    let flags = libc::O_PATH
        | if follows_last(&abs) {
            libc::O_DIRECTORY
        } else {
            libc::O_NOFOLLOW
        };
    let fd = root
        .open_at(&abs, flags, 0)
        .map_err(|e| path_error(e, path, key))?;
    let st = fs::fstat(&fd)?;
    let link_target = if fs::is_symlink(&st) {
        root.resolve(&abs).map_err(|e| path_error(e, path, key))?
    } else {
        String::new()
    };
    Ok(PathStat {
        name: base(&abs),
        size: st.st_size,
        mode: fs::go_file_mode(st.st_mode),
        mtime: mtime(&st),
        link_target,
    })
}

/// Writes the tar of `path`: a directory's entries under its base name, or
/// the one file, symlink or node named by its base name.
pub(crate) fn write_archive<W: Write>(root: &Root, path: &str, key: &str, w: W) -> Result<W> {
    let abs = abs_path(path);
    // The root is archived as `/`, `/bin`, ... (Docker's names, which the
    // CLI rebases onto the destination).
    let rebase = base(&abs);
    let mut t = Packer::new(w);
    let io = |e: std::io::Error| EngineError::internal(format!("archiving {path}: {e}"));
    if follows_last(&abs) {
        let fd = root
            .open_at(&abs, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| path_error(e, path, key))?;
        t.add_dir_fd(&fd, rebase.as_bytes()).map_err(io)?;
    } else {
        let (parent, last) = parent_and_name(&abs);
        let dir = root
            .open_at(&parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| path_error(e, path, key))?;
        t.add_at(&dir, &last, rebase.as_bytes()).map_err(io)?;
    }
    t.finish().map_err(io)
}

/// The destination of a `PUT`: must be a directory (the last element
/// followed); also returns its container path, every symlink resolved.
fn extraction_dir(root: &Root, path: &str, key: &str) -> Result<(OwnedFd, String)> {
    let abs = abs_path(path);
    let fd = root
        .open_at(&abs, libc::O_PATH, 0)
        .map_err(|e| path_error(e, path, key))?;
    if !fs::is_dir(&fs::fstat(&fd)?) {
        return Err(EngineError::invalid("extraction point is not a directory"));
    }
    let resolved = root.resolve(&abs).map_err(|e| path_error(e, path, key))?;
    let dir = root
        .open_at(&abs, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| path_error(e, path, key))?;
    Ok((dir, resolved))
}

/// moby's `checkIfPathIsInAVolume` and read-only rootfs rule.
fn check_writable(r: &Record, resolved: &str) -> Result<()> {
    let under = |dest: &str| {
        let d = fs::components(dest);
        let p = fs::components(resolved);
        p.len() >= d.len() && p[..d.len()] == d[..]
    };
    let best = r
        .mounts
        .iter()
        .filter(|m| under(&m.destination))
        .max_by_key(|m| fs::components(&m.destination).len());
    let in_tmpfs = r
        .host_config
        .tmpfs
        .as_ref()
        .is_some_and(|t| t.keys().any(|d| under(d)));
    match best {
        Some(m) if !m.rw => Err(EngineError::invalid("mounted volume is marked read-only")),
        Some(_) => Ok(()),
        None if in_tmpfs => Ok(()),
        None if r.host_config.readonly_rootfs == Some(true) => {
            Err(EngineError::invalid("container rootfs is marked read-only"))
        }
        None => Ok(()),
    }
}

/// The root of a running container's init, checked to still be that
/// container's process (a recycled PID would otherwise lead elsewhere).
fn proc_root(id: &str, pid: i64) -> Result<OwnedFd> {
    let gone = || EngineError::conflict(format!("container {id} is not running"));
    let proc_dir = std::fs::File::open(format!("/proc/{pid}")).map_err(|_| gone())?;
    let mut cg = String::new();
    fs::open_at(&proc_dir, b"cgroup", libc::O_RDONLY, 0)
        .map(std::fs::File::from)
        .and_then(|mut f| f.read_to_string(&mut cg))
        .map_err(|_| gone())?;
    let want = crate::engine::cgroups::path(id);
    if !cg.lines().any(|l| l.ends_with(&want)) && !child_of_shim(&proc_dir, id) {
        return Err(gone());
    }
    fs::open_at(&proc_dir, b"root", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|_| gone())
}

/// Whether the process is a child of this container's shim (`berth-shim
/// run <exec root>/containers/<id>`): the check where the container has no
/// cgroup of its own (rootless without delegated cgroups).
fn child_of_shim(proc_dir: &std::fs::File, id: &str) -> bool {
    let mut status = String::new();
    let read = fs::open_at(proc_dir, b"status", libc::O_RDONLY, 0)
        .map(std::fs::File::from)
        .and_then(|mut f| f.read_to_string(&mut status));
    let Some(ppid) = read.ok().and_then(|_| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
    }) else {
        return false;
    };
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let suffix = format!("/containers/{id}");
    args.first().is_some_and(|a| a.ends_with(b"berth-shim"))
        && args.get(1) == Some(&&b"run"[..])
        && args.get(2).is_some_and(|a| a.ends_with(suffix.as_bytes()))
}

impl Containers {
    /// The view of a container's files for one operation; the caller holds
    /// the container's lifecycle lock while this runs.
    pub(crate) fn open_view(self: &Arc<Self>, c: &Container) -> Result<View> {
        let r = c.snapshot();
        let view = |root: Root, running: bool, mounted: Option<PathBuf>| View {
            root,
            running,
            mounted,
            volumes: vec![],
            holder: format!("cp:{}:{}", r.id, crate::engine::ids::random_hex(4)),
            engine: self.clone(),
        };
        if r.state.status.is_running() && r.state.pid > 0 {
            let fd = proc_root(&r.id, r.state.pid)?;
            return Ok(view(Root::from_fd(fd), true, None));
        }
        let p = self.paths(&r.id);
        self.mount_rw(&p.rw, &r.image_id, false)?;
        let root = Root::open(&p.rw.merged).map_err(|e| {
            p.rw.unmount();
            EngineError::internal(format!("opening the container's root: {e}"))
        })?;
        let mut v = view(root, false, Some(p.rw.merged.clone()));
        let mut plan = r.mounts.clone();
        plan.sort_by_key(|m| fs::components(&m.destination).len());
        for m in plan {
            let source = match m.typ.as_str() {
                VOLUME => {
                    let data = self
                        .volumes
                        .activate_volume(&m.name, &v.holder, &m.source)?;
                    v.volumes.push(m.name.clone());
                    data
                }
                BIND => PathBuf::from(&m.source),
                // A stopped container's tmpfs is empty; its directory shows.
                TMPFS => continue,
                _ => continue,
            };
            let Ok(md) = std::fs::metadata(&source) else {
                continue;
            };
            let mkerr = |e: std::io::Error| {
                EngineError::internal(format!("mount point {}: {e}", m.destination))
            };
            let target = if md.is_dir() {
                v.root.mkdir_all(&m.destination, 0o755).map_err(mkerr)?
            } else {
                v.root.touch(&m.destination).map_err(mkerr)?;
                v.root
                    .open_at(&m.destination, libc::O_PATH | libc::O_NOFOLLOW, 0)
                    .map_err(mkerr)?
            };
            let mut flags = nix::mount::MsFlags::MS_BIND;
            if !m.non_recursive {
                flags |= nix::mount::MsFlags::MS_REC;
            }
            nix::mount::mount(
                Some(&source),
                &fs::fd_path(target.as_raw_fd()),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(|e| {
                EngineError::internal(format!("mounting {} for cp: {}", m.destination, e.desc()))
            })?;
        }
        Ok(v)
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let me = self.clone();
        let (c2, key, path) = (c.clone(), key.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            let v = me.open_view(&c2)?;
            stat_in(&v.root, &path, &key)
        })
        .await
        .map_err(|e| EngineError::internal(format!("stat task: {e}")))?
    }

    /// `GET /containers/{id}/archive`: the stat now, the tar into `sink`
    /// from a task of its own.
    pub async fn archive_get(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        sink: Box<dyn Write + Send>,
    ) -> Result<PathStat> {
        let c = self.find(key)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let (key, path) = (key.to_string(), path.to_string());
        tokio::spawn(async move {
            let guard = c.op.lock().await;
            let (me2, c2, k2, p2) = (me.clone(), c.clone(), key.clone(), path.clone());
            let prepared = tokio::task::spawn_blocking(move || {
                let v = me2.open_view(&c2)?;
                let st = stat_in(&v.root, &p2, &k2)?;
                Ok::<_, EngineError>((v, st))
            })
            .await
            .map_err(|e| EngineError::internal(format!("archive task: {e}")))
            .and_then(|r| r);
            let (view, st) = match prepared {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if tx.send(Ok(st)).is_err() {
                return;
            }
            // A running container may stop meanwhile: its root stays open.
            let guard = if view.running {
                drop(guard);
                None
            } else {
                Some(guard)
            };
            let p3 = path.clone();
            let r = tokio::task::spawn_blocking(move || {
                let r = write_archive(&view.root, &p3, &key, sink).and_then(|mut w| {
                    w.flush()
                        .map_err(|e| EngineError::internal(format!("sending the archive: {e}")))
                });
                drop(view);
                r
            })
            .await;
            drop(guard);
            match r {
                Ok(Ok(())) => me.container_event(&c.snapshot(), "archive-path", &[]),
                Ok(Err(e)) => tracing::debug!(path, error = %e, "archive ended early"),
                Err(e) => tracing::warn!(path, error = %e, "archive task"),
            }
        });
        rx.await
            .map_err(|_| EngineError::internal("the archive task ended early"))?
    }

    /// `PUT /containers/{id}/archive`: extracts the tar `body` into the
    /// directory `path`. Entries are written only inside that directory
    /// (an entry leaving it, or writing through a symlink, is a 400).
    pub async fn archive_put(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        opts: PutOptions,
        body: Box<dyn Read + Send>,
    ) -> Result<()> {
        let c = self.find(key)?;
        let guard = c.op.lock().await;
        let me = self.clone();
        let (c2, k2, p2) = (c.clone(), key.to_string(), path.to_string());
        let view = tokio::task::spawn_blocking(move || me.open_view(&c2))
            .await
            .map_err(|e| EngineError::internal(format!("archive task: {e}")))??;
        let r = c.snapshot();
        let guard = if view.running {
            drop(guard);
            None
        } else {
            Some(guard)
        };
        let tmp = self.config.data_root.join("tmp");
        let res = tokio::task::spawn_blocking(move || -> Result<()> {
            let (dir, resolved) = extraction_dir(&view.root, &p2, &k2)?;
            check_writable(&r, &resolved)?;
            let user_spec = r.config.user.clone().unwrap_or_default();
            let chown = if opts.copy_uid_gid && !user_spec.is_empty() {
                let (u, _) = users::resolve(&view.root.path(), &user_spec, &[])?;
                Some((u.uid, u.gid))
            } else {
                None
            };
            let (_, rd) = fs::decompress(body)
                .map_err(|e| EngineError::invalid(format!("reading the archive: {e}")))?;
            let extract = ExtractOptions {
                no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                chown,
                rehearse: false,
            };
            let spool = rehearse(rd, &tmp, &extract)?;
            fs::unpack_fd(spool, dir, &UnpackOptions::default(), &extract)?;
            drop(view);
            Ok(())
        })
        .await
        .map_err(|e| EngineError::internal(format!("archive task: {e}")))?;
        drop(guard);
        res?;
        self.container_event(&c.snapshot(), "extract-to-dir", &[]);
        Ok(())
    }
}

/// Reads through, copying what it reads to a file.
struct Tee<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// `docker cp` into a container does all of an archive or none of it: the
/// archive is first extracted as a rehearsal into an empty scratch
/// directory (contents dropped) while it is spooled to an unlinked file
/// under `tmp`; an archive refused there (a `..` name, a link or symlink
/// out of the root, a malformed entry) has changed nothing in the
/// container. Returns the spool, rewound, for the real extraction. (What
/// depends on the destination's own files, such as `noOverwriteDirNonDir`,
/// is still found only by the real extraction.)
fn rehearse(rd: impl Read, tmp: &Path, extract: &ExtractOptions) -> Result<std::fs::File> {
    use std::io::Seek;
    std::fs::create_dir_all(tmp)?;
    let tag = crate::engine::ids::random_hex(8);
    let spool_path = tmp.join(format!("cp-{tag}"));
    let mut spool = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)?;
    // Unlinked at once: a crash leaves nothing behind.
    let _ = std::fs::remove_file(&spool_path);
    let scratch = tmp.join(format!("rehearse-{tag}"));
    std::fs::create_dir(&scratch)?;
    let root = std::fs::File::open(&scratch)?;
    let res = fs::unpack_fd(
        Tee {
            r: rd,
            w: &mut spool,
        },
        root.into(),
        &UnpackOptions::default(),
        &ExtractOptions {
            rehearse: true,
            ..extract.clone()
        },
    );
    let _ = std::fs::remove_dir_all(&scratch);
    res?;
    spool.rewind()?;
    Ok(spool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_docker() {
        assert_eq!(abs_path("etc/passwd"), "/etc/passwd");
        assert_eq!(base("/etc/"), "etc");
        assert_eq!(base("/etc/."), ".");
        assert_eq!(base("/"), "/");
        assert!(follows_last("/etc/"));
        assert!(follows_last("/etc/."));
        assert!(!follows_last("/etc"));
        assert_eq!(parent_and_name("/a/b"), ("/a".to_string(), b"b".to_vec()));
        assert_eq!(parent_and_name("/a"), ("/".to_string(), b"a".to_vec()));
    }

    #[test]
    fn stat_and_archive_stay_in_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("dir")).unwrap();
        std::fs::write(r.join("dir/f"), "x").unwrap();
        std::os::unix::fs::symlink("/", r.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("dir/up")).unwrap();
        let root = Root::open(&r).unwrap();
        let st = stat_in(&root, "/evil", "c").unwrap();
        assert_eq!(st.link_target, "/");
        assert_eq!(st.mode & (1 << 27), 1 << 27);
        let st = stat_in(&root, "/dir/up/dir/f", "c").unwrap();
        assert_eq!(st.size, 1);
        // The host's files are not reachable.
        let host = d.path().file_name().unwrap().to_string_lossy().into_owned();
        let e = stat_in(&root, &format!("/evil/tmp/{host}/root"), "c").unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)), "{e}");
        // `/evil/` lists the container's root, not the host's.
        let tar = write_archive(&root, "/evil/", "c", Vec::new()).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(std::io::Cursor::new(tar))
            .entries()
            .unwrap()
        {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(
            names,
            ["evil", "evil/dir", "evil/dir/f", "evil/dir/up", "evil/evil"]
        );
        // Extraction dirs must be directories.
        assert!(matches!(
            extraction_dir(&root, "/dir/f", "c"),
            Err(EngineError::InvalidParameter(_))
        ));
        let (_, resolved) = extraction_dir(&root, "/evil/dir", "c").unwrap();
        assert_eq!(resolved, "/dir");
    }
}
