//! Image fixtures made on the spot, without the internet: a busybox root
//! file system from Debian's `busybox-static` (`/bin/busybox` plus its
//! applet symlinks), and docker-archive tars built from layer tars.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::{bin_dir, Daemon};

pub const BUSYBOX: &str = "/bin/busybox";

/// Where fixtures are cached: under the build directory, shared by every
/// test process (built in a temp dir and renamed, so racing builders are
/// harmless).
fn cache_dir() -> PathBuf {
    let d = bin_dir().join("berth-fixtures");
    std::fs::create_dir_all(&d).expect("fixture dir");
    d
}

fn build_once(name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let dest = cache_dir().join(name);
    if dest.exists() {
        return dest;
    }
    let tmp = cache_dir().join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&tmp);
    make(&tmp);
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another process won the race; use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
    }
    dest
}

/// A busybox root file system: `bin/busybox`, one symlink per applet,
/// `etc/passwd`, `etc/group`, and empty `tmp`, `root`, `proc`, `sys`, `dev`.
pub fn busybox_rootfs_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_once("busybox-rootfs", |root| {
            for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
                std::fs::create_dir_all(root.join(d)).expect("mkdir");
            }
            std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("busybox-static is installed");
            let list = Command::new(BUSYBOX).arg("--list").output().expect("busybox --list");
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                let applet = applet.trim();
                if applet.is_empty() || applet == "busybox" {
                    continue;
                }
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
            std::fs::write(
                root.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            )
            .expect("passwd");
            std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
            let tmp = root.join("tmp");
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
                .expect("chmod tmp");
        })
    })
    .clone()
}

/// The busybox root file system as a plain tar (owned by root).
pub fn busybox_rootfs_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = busybox_rootfs_dir();
        build_once("busybox-rootfs.tar", |out| {
            let st = Command::new("tar")
                .args([
                    "--numeric-owner",
                    "--owner=0",
                    "--group=0",
                    "--sort=name",
                    "-C",
                ])
                .arg(&dir)
                .arg("-cf")
                .arg(out)
                .arg(".")
                .status()
                .expect("tar");
            assert!(st.success(), "tar failed");
        })
    })
    .clone()
}

/// Docker's size of a tree: bytes of every non-directory (symlinks count
/// their target length), hard links once.
pub fn tree_size(dir: &Path) -> i64 {
    fn walk(d: &Path, seen: &mut std::collections::HashSet<u64>) -> i64 {
        use std::os::unix::fs::MetadataExt;
        let mut n = 0;
        for e in std::fs::read_dir(d).expect("read_dir").flatten() {
            let md = std::fs::symlink_metadata(e.path()).expect("lstat");
            if md.is_dir() {
                n += walk(&e.path(), seen);
            } else if seen.insert(md.ino()) {
                n += md.len() as i64;
            }
        }
        n
    }
    walk(dir, &mut Default::default())
}

/// Imports the busybox root file system as `tag`; returns the image ID.
pub fn import_busybox(d: &Daemon, tag: &str) -> String {
    let tar = busybox_rootfs_tar();
    let out = d.docker_ok(&["import", &tar.display().to_string(), tag]);
    out.trim().to_string()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One entry of a hand-made layer tar.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    /// A raw name written as is (for unsafe names the `tar` crate refuses).
    RawFile(&'a str, &'a [u8]),
}

/// A layer tar from entries (mode 0755 dirs, 0644 files, root-owned).
pub fn layer_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).expect("dir");
            }
            Entry::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).expect("file");
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).expect("symlink");
            }
            Entry::RawFile(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                let raw = p.as_bytes();
                h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
                h.set_cksum();
                b.append(&h, *data).expect("raw file");
            }
        }
    }
    b.into_inner().expect("tar")
}

/// A docker-archive (Docker 25+ layout: `blobs/sha256/…` + `manifest.json`)
/// of one image made of `layers` (uncompressed tars), tagged `tags`.
/// `config_extra` is merged into the image config. Returns the tar bytes
/// and the image ID.
pub fn docker_archive(
    layers: &[Vec<u8>],
    tags: &[&str],
    config_extra: serde_json::Value,
) -> (Vec<u8>, String) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": "test"})).collect::<Vec<_>>(),
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), config_extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let config = serde_json::to_vec(&config).expect("config");
    let id = sha256_hex(&config);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for l in layers {
        files.push((format!("blobs/sha256/{}", sha256_hex(l)), l.clone()));
    }
    files.push((format!("blobs/sha256/{id}"), config.clone()));
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{id}"),
        "RepoTags": tags,
        "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", sha256_hex(l))).collect::<Vec<_>>(),
    }]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("manifest"),
    ));
    (archive_of(&files), format!("sha256:{id}"))
}

/// A tar of whole files.
pub fn archive_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data.as_slice())
            .expect("append");
    }
    b.into_inner().expect("tar")
}

/// Writes bytes to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(bytes).expect("write");
    p
}
