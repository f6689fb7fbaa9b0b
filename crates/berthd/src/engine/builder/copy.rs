//! COPY and ADD on the file-system level: finding the sources (globs,
//! the context's limits), hashing them for the cache, and writing them
//! into a mounted root with Docker's destination rules. Every path is
//! resolved inside its root, so neither a context symlink nor one in the
//! image leads outside.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_api::dockerignore::{clean, glob_match, has_wildcards};
use sha2::{Digest, Sha256};

use super::context::{mkdir_all_in_root, resolve_in_root};
use crate::engine::fs::{self, UnpackOptions};
use crate::engine::{EngineError, Result};

/// One source to copy.
#[derive(Debug, Clone)]
pub struct Source {
    /// The host path.
    pub path: PathBuf,
    /// The name it gets inside a destination directory.
    pub name: String,
    /// ADD: a local archive here is unpacked instead of copied.
    pub may_extract: bool,
    /// Mode/mtime overrides (downloaded files).
    pub mode: Option<u32>,
    pub mtime: Option<i64>,
}

/// Finds the sources named by `srcs` (already expanded) under `root`.
pub fn collect(
    root: &Path,
    srcs: &[String],
    follow_last: bool,
    what: &str,
    extract: bool,
) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for s in srcs {
        let rel = clean(s.trim_start_matches('/'));
        if rel == ".." || rel.starts_with("../") {
            return Err(EngineError::invalid(format!(
                "{what} failed: forbidden path outside the build context: {s} ()"
            )));
        }
        if has_wildcards(&rel) {
            let mut hits = Vec::new();
            walk_matches(root, "", &rel, &mut hits)?;
            if hits.is_empty() {
                return Err(EngineError::invalid(format!(
                    "{what} failed: no source files were specified"
                )));
            }
            for h in hits {
                let name = h.rsplit('/').next().unwrap_or(&h).to_string();
                out.push(Source {
                    path: resolve_in_root(root, &h, follow_last)?,
                    name,
                    may_extract: extract,
                    mode: None,
                    mtime: None,
                });
            }
            continue;
        }
        let p = resolve_in_root(root, &rel, follow_last)?;
        if std::fs::symlink_metadata(&p).is_err() {
            return Err(EngineError::invalid(format!(
                "{what} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
            )));
        }
        let name = if rel == "." {
            String::new()
        } else {
            rel.rsplit('/').next().unwrap_or(&rel).to_string()
        };
        out.push(Source {
            path: p,
            name,
            may_extract: extract,
            mode: None,
            mtime: None,
        });
    }
    Ok(out)
}

/// Context paths matching `pattern` (Go's `filepath.Match` on the whole
/// relative path); a matching directory is taken whole.
fn walk_matches(root: &Path, rel: &str, pattern: &str, out: &mut Vec<String>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Ok(()),
    };
    names.sort();
    let depth = pattern.split('/').count();
    for n in names {
        let p = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        if glob_match(pattern, &p) {
            out.push(p);
            continue;
        }
        let md = std::fs::symlink_metadata(dir.join(&n))?;
        if md.is_dir() && p.split('/').count() < depth {
            walk_matches(root, &p, pattern, out)?;
        }
    }
    Ok(())
}

/// A content hash of the sources (names, types, modes, sizes, contents,
/// link targets), Docker's cache key for COPY/ADD.
pub fn hash(sources: &[Source]) -> Result<String> {
    let mut h = Sha256::new();
    for s in sources {
        h.update(b"src\0");
        h.update(s.name.as_bytes());
        h.update(format!("\0{:?}\0{:?}\0{}\0", s.mode, s.mtime, s.may_extract).as_bytes());
        hash_tree(&s.path, "", &mut h)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_tree(p: &Path, rel: &str, h: &mut Sha256) -> Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    let ft = md.file_type();
    h.update(format!("{rel}\0{:o}\0", md.mode()).as_bytes());
    if ft.is_symlink() {
        h.update(std::fs::read_link(p)?.as_os_str().as_encoded_bytes());
    } else if ft.is_file() {
        h.update(md.len().to_le_bytes());
        let mut f = std::fs::File::open(p)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let r = format!("{rel}/{}", n.to_string_lossy());
            hash_tree(&p.join(&n), &r, h)?;
        }
    }
    h.update(b"\n");
    Ok(())
}

pub struct Dest<'a> {
    pub root: &'a Path,
    /// Absolute in-image path; a trailing `/` means a directory.
    pub path: &'a str,
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
}

/// Writes the sources into `d.root` following Docker's rules: a directory
/// source copies its contents; a file goes to `dest/<name>` when `dest`
/// ends with `/` or is a directory, else to `dest` itself; ADD unpacks
/// local tar archives (plain, gzip, zstd) into `dest`.
pub fn apply(sources: &[Source], d: &Dest<'_>, what: &str) -> Result<()> {
    let dest_dirish = d.path.ends_with('/') || d.path.ends_with("/.");
    if sources.len() > 1 && !dest_dirish {
        return Err(EngineError::invalid(format!(
            "When using {what} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let resolved = resolve_in_root(d.root, d.path, true)?;
    let dest_is_dir = dest_dirish || resolved.is_dir();
    let dest_trimmed = d.path.trim_end_matches('/');
    let dest_trimmed = if dest_trimmed.is_empty() {
        "/"
    } else {
        dest_trimmed
    };
    for s in sources {
        let md = std::fs::symlink_metadata(&s.path)?;
        if md.is_dir() {
            mkdir_all_in_root(d.root, dest_trimmed, d.owner)?;
            copy_children(&s.path, d, dest_trimmed)?;
        } else if s.may_extract && is_archive(&s.path) {
            let dir = mkdir_all_in_root(d.root, dest_trimmed, d.owner)?;
            let f = std::fs::File::open(&s.path)?;
            let (_, plain) = fs::decompress(f)
                .map_err(|e| EngineError::invalid(format!("{what} failed: {e}")))?;
            fs::unpack(plain, &dir, &UnpackOptions::default())
                .map_err(|e| EngineError::invalid(format!("{what} failed: {e}")))?;
        } else {
            let target = if dest_is_dir {
                format!("{}/{}", dest_trimmed.trim_end_matches('/'), s.name)
            } else {
                dest_trimmed.to_string()
            };
            if let Some((parent, _)) = target.rsplit_once('/') {
                mkdir_all_in_root(
                    d.root,
                    if parent.is_empty() { "/" } else { parent },
                    d.owner,
                )?;
            }
            copy_entry(&s.path, d, &target, s)?;
        }
    }
    Ok(())
}

fn copy_children(src: &Path, d: &Dest<'_>, rel: &str) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(src)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        let child = format!("{}/{}", rel.trim_end_matches('/'), n.to_string_lossy());
        let plain = Source {
            path: src.join(&n),
            name: String::new(),
            may_extract: false,
            mode: None,
            mtime: None,
        };
        copy_entry(&src.join(&n), d, &child, &plain)?;
    }
    Ok(())
}

fn set_mtime(p: &Path, secs: i64, nsecs: i64) -> Result<()> {
    let t = nix::sys::time::TimeSpec::new(secs, nsecs);
    nix::sys::stat::utimensat(
        None,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| EngineError::internal(format!("setting times on {}: {e}", p.display())))
}

fn copy_entry(src: &Path, d: &Dest<'_>, rel: &str, s: &Source) -> Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    let target = resolve_in_root(d.root, rel, false)?;
    let existing = std::fs::symlink_metadata(&target).ok();
    let mode = |m: u32| d.chmod.or(s.mode).unwrap_or(m & 0o7777);
    let ft = md.file_type();
    if ft.is_dir() {
        match &existing {
            Some(e) if e.is_dir() => {}
            Some(_) => {
                std::fs::remove_file(&target)?;
                std::fs::create_dir(&target)?;
            }
            None => std::fs::create_dir(&target)?,
        }
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode(md.mode())))?;
        std::os::unix::fs::lchown(&target, Some(d.owner.0), Some(d.owner.1))?;
        copy_children(src, d, rel)?;
        set_mtime(&target, md.mtime(), md.mtime_nsec())?;
        return Ok(());
    }
    if let Some(e) = &existing {
        if e.is_dir() {
            return Err(EngineError::invalid(format!(
                "cannot copy to {rel}: a directory is in the way"
            )));
        }
        std::fs::remove_file(&target)?;
    }
    if ft.is_symlink() {
        let link = std::fs::read_link(src)?;
        std::os::unix::fs::symlink(&link, &target)?;
        std::os::unix::fs::lchown(&target, Some(d.owner.0), Some(d.owner.1))?;
        set_mtime(&target, md.mtime(), md.mtime_nsec())?;
    } else if ft.is_file() {
        let mut from = std::fs::File::open(src)?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)?;
        std::io::copy(&mut from, &mut to)?;
        drop(to);
        std::os::unix::fs::lchown(&target, Some(d.owner.0), Some(d.owner.1))?;
        // After chown, which clears set-id bits.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode(md.mode())))?;
        match s.mtime {
            Some(t) => set_mtime(&target, t, 0)?,
            None => set_mtime(&target, md.mtime(), md.mtime_nsec())?,
        }
    }
    // Sockets, fifos and devices in a context are not copied.
    Ok(())
}

/// A tar archive, possibly gzip/zstd-compressed, by its content.
fn is_archive(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let Ok((_, mut r)) = fs::decompress(f) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < 512 {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && (&head[257..262] == b"ustar" || tar_checksum_ok(&head))
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    sum == want && h[0] != 0
}

/// `--chmod=0755`.
pub fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| EngineError::invalid(format!("invalid chmod parameter: {s:?}")))
}

/// `--chown=user[:group]` against the destination's passwd/group; a user
/// without a group gets the same number as its group, as in Docker.
pub fn parse_chown(root: &Path, spec: &str) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |s: &str| -> Result<u32> {
        let (r, _) = crate::engine::users::resolve(root, s, &[])?;
        Ok(r.uid)
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup(u)?,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let (r, _) = crate::engine::users::resolve(root, &format!("0:{g}"), &[])?;
                r.gid
            }
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (p, data) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, data).unwrap();
        }
    }

    #[test]
    fn copies_with_docker_destination_rules() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("existing")).unwrap();
        tree(
            &ctx,
            &[
                ("a.txt", "A"),
                ("b.txt", "B"),
                ("dir/x", "X"),
                ("dir/sub/y", "Y"),
            ],
        );
        let dest = |p: &'static str| Dest {
            root: &root,
            path: p,
            owner: (0, 0),
            chmod: None,
        };
        let srcs = collect(&ctx, &["a.txt".into()], false, "COPY", false).unwrap();
        apply(&srcs, &dest("/file"), "COPY").unwrap();
        assert_eq!(std::fs::read_to_string(root.join("file")).unwrap(), "A");
        apply(&srcs, &dest("/existing"), "COPY").unwrap();
        assert!(root.join("existing/a.txt").exists());
        apply(&srcs, &dest("/new/dir/"), "COPY").unwrap();
        assert!(root.join("new/dir/a.txt").exists());
        let srcs = collect(&ctx, &["dir".into()], false, "COPY", false).unwrap();
        apply(&srcs, &dest("/d"), "COPY").unwrap();
        assert!(root.join("d/x").exists() && root.join("d/sub/y").exists());
        let srcs = collect(&ctx, &["*.txt".into()], false, "COPY", false).unwrap();
        assert_eq!(srcs.len(), 2);
        assert!(apply(&srcs, &dest("/nodir"), "COPY")
            .unwrap_err()
            .to_string()
            .contains("must be a directory"));
        apply(&srcs, &dest("/g/"), "COPY").unwrap();
        assert!(root.join("g/b.txt").exists());
        assert!(collect(&ctx, &["../x".into()], false, "COPY", false).is_err());
        assert!(collect(&ctx, &["missing".into()], false, "COPY", false)
            .unwrap_err()
            .to_string()
            .contains("file not found"));
        assert!(collect(&ctx, &["*.none".into()], false, "COPY", false).is_err());
        // An absolute symlink in the image is followed inside the root.
        std::os::unix::fs::symlink("/existing", root.join("link")).unwrap();
        let srcs = collect(&ctx, &["b.txt".into()], false, "COPY", false).unwrap();
        apply(&srcs, &dest("/link/"), "COPY").unwrap();
        assert!(root.join("existing/b.txt").exists());
        let h1 = hash(&srcs).unwrap();
        std::fs::write(ctx.join("b.txt"), "changed").unwrap();
        assert_ne!(h1, hash(&srcs).unwrap());
    }

    #[test]
    fn chmod_and_chown_parse() {
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert!(parse_chmod("9").is_err());
        let d = tempfile::tempdir().unwrap();
        tree(
            d.path(),
            &[
                ("etc/passwd", "app:x:1000:1001::/home/app:/bin/sh\n"),
                ("etc/group", "grp:x:2000:\n"),
            ],
        );
        assert_eq!(parse_chown(d.path(), "app").unwrap(), (1000, 1000));
        assert_eq!(parse_chown(d.path(), "app:grp").unwrap(), (1000, 2000));
        assert_eq!(parse_chown(d.path(), "5:6").unwrap(), (5, 6));
        assert!(parse_chown(d.path(), "nobody").is_err());
    }
}
