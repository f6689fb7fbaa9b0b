//! The build context: the uploaded tar (plain, gzip or zstd) unpacked
//! safely into a private directory, the Dockerfile read from it, and
//! Docker's `.dockerignore` handling on the daemon side.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use berth_api::dockerignore::Matcher;

use crate::engine::fs::{self, UnpackOptions};
use crate::engine::{EngineError, Result};

/// An unpacked context, removed on drop.
pub struct Context {
    pub root: PathBuf,
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.root.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.root.display(), error = %e, "removing a build context");
            }
        }
    }
}

impl Context {
    /// The directory, no longer removed on drop (its new owner removes it).
    pub fn into_root(mut self) -> PathBuf {
        std::mem::take(&mut self.root)
    }

    /// Unpacks `reader` under `dir` (created here). Entries that would
    /// leave the directory (`..`, absolute names, writes through symlinks)
    /// are refused, as for any archive berth unpacks.
    pub fn receive<R: Read>(reader: R, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let ctx = Context { root: dir };
        let (_, plain) = fs::decompress(reader)
            .map_err(|e| EngineError::invalid(format!("reading the build context: {e}")))?;
        let padded = PadTar {
            inner: plain,
            n: 0,
            tail: None,
        };
        fs::unpack(padded, &ctx.root, &UnpackOptions::default()).map_err(|e| {
            // dockerd answers 500 for any of these; an unsafe or malformed
            // archive is the request's fault (400), a failed write is ours.
            let m = format!("the build context is not a valid archive: {e}");
            match e {
                fs::ArchiveError::Io(_) => EngineError::internal(m),
                _ => EngineError::invalid(m),
            }
        })?;
        Ok(ctx)
    }

    /// Reads the Dockerfile (`name` relative to the root), then removes it
    /// and `.dockerignore` from the context when `.dockerignore` excludes
    /// them (moby's `removeDockerfile`; the client leaves out the rest).
    pub fn take_dockerfile(&self, name: &str) -> Result<String> {
        let name = if name.is_empty() { "Dockerfile" } else { name };
        // dockerd answers these two with a 500, before any output.
        let mut depth = 0i32;
        for c in Path::new(name).components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(EngineError::internal(format!(
                    "forbidden path outside the build context: {name} ()"
                )));
            }
        }
        let read = |n: &str| -> Option<String> {
            let p = resolve_in_root(&self.root, n, true).ok()?;
            std::fs::read(&p)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let (text, used) = match read(name) {
            Some(t) => (t, name.to_string()),
            None if name == "Dockerfile" => match read("dockerfile") {
                Some(t) => (t, "dockerfile".to_string()),
                None => {
                    return Err(EngineError::internal(format!(
                        "Cannot locate specified Dockerfile: {name}"
                    )))
                }
            },
            None => {
                return Err(EngineError::internal(format!(
                    "Cannot locate specified Dockerfile: {name}"
                )))
            }
        };
        if let Some(m) = self.ignore_matcher() {
            for f in [".dockerignore", used.as_str()] {
                let rel = berth_api::dockerignore::clean(f.trim_start_matches('/'));
                if m.excludes(&rel) {
                    if let Ok(p) = resolve_in_root(&self.root, &rel, false) {
                        let _ = std::fs::remove_file(p);
                    }
                }
            }
        }
        Ok(text)
    }

    /// Removes what `.dockerignore` excludes, as BuildKit's local sources
    /// do (the classic CLI leaves it out of the tar instead). A directory
    /// goes only when excluded and left empty, for `!` re-inclusions.
    pub fn apply_ignore(&self) -> Result<()> {
        let Some(m) = self.ignore_matcher() else {
            return Ok(());
        };
        fn walk(m: &Matcher, dir: &Path, rel: &str) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let p = e.path();
                if e.file_type()?.is_dir() {
                    walk(m, &p, &r)?;
                    if m.excludes(&r) && std::fs::read_dir(&p)?.next().is_none() {
                        std::fs::remove_dir(&p)?;
                    }
                } else if m.excludes(&r) {
                    std::fs::remove_file(&p)?;
                }
            }
            Ok(())
        }
        walk(&m, &self.root, "")?;
        Ok(())
    }

    pub fn ignore_matcher(&self) -> Option<Matcher> {
        let p = resolve_in_root(&self.root, ".dockerignore", true).ok()?;
        let text = std::fs::read_to_string(p).ok()?;
        Some(Matcher::parse(&text))
    }
}

/// Completes a tar stream that stops right after its last entry's data,
/// without padding or end-of-archive blocks: the docker CLI sends such a
/// context when it adds a Dockerfile from outside the context (or stdin).
/// After the real end, zeros up to the block boundary and two zero blocks.
struct PadTar<R> {
    inner: R,
    n: u64,
    tail: Option<u64>,
}

impl<R: Read> Read for PadTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.tail.is_none() {
            let k = self.inner.read(buf)?;
            if k > 0 {
                self.n += k as u64;
                return Ok(k);
            }
            self.tail = Some((512 - self.n % 512) % 512 + 1024);
        }
        let left = self.tail.unwrap_or(0);
        let k = (left as usize).min(buf.len());
        buf[..k].fill(0);
        self.tail = Some(left - k as u64);
        Ok(k)
    }
}

/// Resolves `path` (absolute or relative, taken from `root`) to a host
/// path inside `root`, following symlinks as if `root` were `/` (an
/// absolute link target starts again at `root`, `..` stops at it). The
/// last component is followed only when `follow_last`. The result may
/// not exist.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut pending: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    pending.reverse();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let mut p = root.to_path_buf();
        p.extend(&cur);
        p.push(&c);
        let is_last = pending.is_empty();
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() && (!is_last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(EngineError::invalid(format!(
                        "too many levels of symbolic links resolving {path}"
                    )));
                }
                let target = std::fs::read_link(&p)?;
                if target.is_absolute() {
                    cur.clear();
                }
                let mut parts: Vec<String> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                parts.reverse();
                pending.extend(parts);
            }
            _ => cur.push(c),
        }
    }
    let mut p = root.to_path_buf();
    p.extend(&cur);
    Ok(p)
}

/// Creates the directories of `rel` (absolute in-root path) under `root`
/// that do not exist yet, owned by `owner` with mode 0755; returns the
/// resolved host path.
pub fn mkdir_all_in_root(root: &Path, rel: &str, owner: (u32, u32)) -> Result<PathBuf> {
    let mut so_far = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        so_far.push('/');
        so_far.push_str(comp);
        let p = resolve_in_root(root, &so_far, true)?;
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(EngineError::invalid(format!(
                    "cannot create directory {so_far}: a file is in the way"
                )))
            }
            Err(_) => {
                std::fs::create_dir(&p)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1))?;
            }
        }
    }
    resolve_in_root(root, rel, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_stays_in_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/a", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/rel")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/abs/b", true).unwrap(),
            root.join("a/b")
        );
        assert_eq!(
            resolve_in_root(root, "a/up/passwd", true).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "../../x", true).unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve_in_root(root, "a/rel", false).unwrap(),
            root.join("a/rel")
        );
        assert_eq!(
            resolve_in_root(root, "a/rel", true).unwrap(),
            root.join("a/b")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, "loop/x", true).is_err());
    }

    fn tar_with(names: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, data) in names {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            let raw = n.as_bytes();
            h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn apply_ignore_removes_excluded_entries_and_keeps_reinclusions() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_with(&[
            (".dockerignore", b"secret.txt\nlogs\ncache/*\n!cache/keep\n"),
            ("secret.txt", b"s"),
            ("keep.txt", b"k"),
            ("logs/a.log", b"a"),
            ("cache/drop", b"d"),
            ("cache/keep", b"k"),
        ]);
        let c = Context::receive(std::io::Cursor::new(t), d.path().join("c")).unwrap();
        c.apply_ignore().unwrap();
        assert!(!c.root.join("secret.txt").exists());
        assert!(!c.root.join("logs").exists());
        assert!(!c.root.join("cache/drop").exists());
        assert!(c.root.join("cache/keep").exists());
        assert!(c.root.join("keep.txt").exists());
    }

    #[test]
    fn contexts_unpack_and_refuse_escapes() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_with(&[
            ("Dockerfile", b"FROM scratch\n"),
            (".dockerignore", b"Dockerfile\n.dockerignore\n"),
            ("keep", b"k"),
        ]);
        let c = Context::receive(std::io::Cursor::new(t), d.path().join("c")).unwrap();
        assert_eq!(c.take_dockerfile("").unwrap(), "FROM scratch\n");
        assert!(!c.root.join("Dockerfile").exists());
        assert!(!c.root.join(".dockerignore").exists());
        assert!(c.root.join("keep").exists());
        // Cut after the last entry's data, as the docker CLI sends it.
        let mut t = tar_with(&[("Dockerfile", b"FROM x\n"), ("last", b"abc")]);
        t.truncate(512 * 3 + 3);
        let c = Context::receive(std::io::Cursor::new(t), d.path().join("c3")).unwrap();
        assert_eq!(std::fs::read(c.root.join("last")).unwrap(), b"abc");
        let bad = tar_with(&[("../evil", b"x")]);
        let e = Context::receive(std::io::Cursor::new(bad), d.path().join("c2"))
            .err()
            .unwrap();
        assert!(e.to_string().contains(".."), "{e}");
        assert!(!d.path().join("evil").exists());
    }
}
