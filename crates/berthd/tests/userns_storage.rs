//! The storage of a rootless daemon, proven in a real user namespace
//! without a rootless daemon: as root, each outer test forks a child that
//! unshares a user and a mount namespace (root in it is host uid 100000,
//! 65536 ids, `setgroups` denied, the maps written by the parent) and
//! re-executes this test binary there to run its inner test, which drives
//! the real `fs` code in userns mode (`fs::xattr::set_userns(true)`).
//!
//! The inner tests are `#[ignore]`d and do nothing without the scratch
//! directory the outer test hands them; each one ends by writing a marker
//! file the outer test requires, so an inner run that was filtered out or
//! skipped cannot pass.

use std::ffi::CString;
use std::io::{Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berthd::engine::fs::snapshot::{self, Lowers, RwLayer, Upper};
use berthd::engine::fs::{self, xattr, UnpackOptions};

/// The scratch directory an inner test works in (set by its outer test).
const INNER: &str = "BERTH_USERNS_STORAGE_DIR";
/// The host ids the namespace's 0..65536 map to.
const HOST_BASE: u32 = 100_000;
const COUNT: u32 = 65_536;
/// What an inner test writes when it got to its end.
const DONE: &str = "inner-test-done";

/// A tar of `(name, uid, data)` entries: names ending in `/` are
/// directories.
fn tar_of(entries: &[(&str, u64, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, uid, data) in entries {
        let mut h = tar::Header::new_gnu();
        let dir = name.ends_with('/');
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn layer(dir: &Path, entries: &[(&str, u64, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let opts = UnpackOptions {
        overlay_whiteouts: true,
    };
    fs::unpack(Cursor::new(tar_of(entries)), dir, &opts).unwrap();
    dir.to_path_buf()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn xattr_of(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut v = [0u8; 16];
    rustix::fs::lgetxattr(p, name, &mut v[..])
        .ok()
        .map(|n| v[..n].to_vec())
}

fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(p).unwrap();
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Runs the inner test `name` of this binary in a new user and mount
/// namespace (as the namespace's root), with `dir` as its scratch
/// directory; panics unless it passed.
fn run_in_userns(name: &str, dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests make a user namespace with a 65536-id mapping: run them as root"
    );
    // The namespace's root must own its scratch directory.
    std::os::unix::fs::chown(dir, Some(HOST_BASE), Some(HOST_BASE)).unwrap();
    let exe = std::env::current_exe().unwrap();
    // Everything the child uses is made before fork: it only makes system
    // calls between fork and exec.
    let c = |s: &[u8]| CString::new(s).unwrap();
    let path = c(exe.as_os_str().as_bytes());
    let args: Vec<CString> = [
        exe.as_os_str().as_bytes(),
        name.as_bytes(),
        b"--exact",
        b"--ignored",
        b"--nocapture",
        b"--test-threads=1",
    ]
    .iter()
    .map(|a| c(a))
    .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != INNER)
        .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    env.push(c(format!("{INNER}={}", dir.display()).as_bytes()));
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let (to_parent_r, to_parent_w) = std::io::pipe().unwrap();
    let (to_child_r, to_child_w) = std::io::pipe().unwrap();
    use std::os::fd::AsRawFd;
    let (pr, pw) = (to_parent_r.as_raw_fd(), to_parent_w.as_raw_fd());
    let (cr, cw) = (to_child_r.as_raw_fd(), to_child_w.as_raw_fd());

    // SAFETY: the child makes only async-signal-safe system calls (close,
    // unshare, read, write, setres[ug]id, execve, _exit) on memory made
    // before the fork, then execs or exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; every pointer is valid until execve.
        unsafe {
            libc::close(pr);
            libc::close(cw);
            let mut b = [0u8; 1];
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                libc::_exit(120);
            }
            if libc::write(pw, b.as_ptr().cast(), 1) != 1 {
                libc::_exit(121);
            }
            // The parent writes the maps, then answers.
            if libc::read(cr, b.as_mut_ptr().cast(), 1) != 1 {
                libc::_exit(122);
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                libc::_exit(123);
            }
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(124);
        }
    }
    drop(to_parent_w);
    drop(to_child_r);
    let mut b = [0u8; 1];
    let mut r = to_parent_r;
    let unshared = r.read(&mut b).unwrap_or(0) == 1;
    if unshared {
        let proc_ = PathBuf::from(format!("/proc/{pid}"));
        let map = format!("0 {HOST_BASE} {COUNT}\n");
        std::fs::write(proc_.join("uid_map"), &map).unwrap();
        std::fs::write(proc_.join("setgroups"), "deny").unwrap();
        std::fs::write(proc_.join("gid_map"), &map).unwrap();
        std::io::Write::write_all(&mut &to_child_w, b"g").unwrap();
    }
    drop(to_child_w);
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(unshared, "the child could not unshare its namespaces");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "inner test {name} failed in the user namespace (wait status {status:#x}; its output is above)"
    );
    assert!(
        dir.join(DONE).exists(),
        "inner test {name} did not run to its end"
    );
}

/// The scratch directory of an inner test, or `None` outside its outer
/// test (a plain `--ignored` run).
fn inner_dir() -> Option<PathBuf> {
    let d = PathBuf::from(std::env::var_os(INNER)?);
    // In the namespace, as its root, with the storage in userns mode.
    assert_eq!(
        std::fs::read_to_string("/proc/self/uid_map")
            .unwrap()
            .split_whitespace()
            .nth(1),
        Some("100000")
    );
    xattr::set_userns(true);
    Some(d)
}

#[test]
fn overlay_in_a_user_namespace_honours_opaque_dirs_and_commits_them() {
    let d = tempfile::tempdir_in("/tmp").unwrap();
    run_in_userns("inner_overlay_opaque_and_commit", d.path());
}

#[test]
#[ignore = "run in a user namespace by its outer test"]
fn inner_overlay_opaque_and_commit() {
    let Some(d) = inner_dir() else { return };
    snapshot::probe_userns_overlay(&d).unwrap();
    // The image: a first layer, and one that replaces `d` and deletes `f`.
    let base = layer(
        &d.join("l1"),
        &[
            ("d/", 0, b""),
            ("d/old", 0, b"old"),
            ("f", 0, b"f"),
            ("g", 1000, b"g"),
        ],
    );
    let top = layer(
        &d.join("l2"),
        &[
            ("d/", 0, b""),
            ("d/.wh..wh..opq", 0, b""),
            ("d/new", 0, b"new"),
            (".wh.f", 0, b""),
        ],
    );
    // Unpacked in userns mode: the opaque marker is overlayfs's user one.
    assert_eq!(
        xattr_of(&top.join("d"), xattr::USER_OPAQUE).as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr_of(&top.join("d"), xattr::OPAQUE), None);
    assert!(is_whiteout(&top.join("f")));

    // Mounted through the real snapshot code: the opaque dir hides the
    // lower one's files, the whiteout the deleted file.
    let rw = RwLayer::at(&d.join("c"));
    rw.prepare().unwrap();
    let lowers = Lowers {
        dirs: vec![top, base],
        ..Lowers::default()
    };
    rw.mount(&lowers, || std::process::Command::new("false"), false)
        .unwrap();
    let m = &rw.merged;
    let r = std::panic::catch_unwind(|| {
        assert_eq!(
            names(&m.join("d")),
            ["new"],
            "the opaque directory must hide d/old"
        );
        assert_eq!(names(m), ["d", "g"]);
        // The container deletes a file and replaces a directory.
        std::fs::remove_file(m.join("g")).unwrap();
        std::fs::remove_dir_all(m.join("d")).unwrap();
        std::fs::create_dir(m.join("d")).unwrap();
        std::fs::write(m.join("d/x"), b"x").unwrap();
        assert_eq!(names(&m.join("d")), ["x"]);
    });
    rw.unmount();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
    // overlayfs itself marked the new dir opaque, the user way.
    assert_eq!(
        xattr_of(&rw.upper.join("d"), xattr::USER_OPAQUE).as_deref(),
        Some(&b"y"[..])
    );
    assert!(is_whiteout(&rw.upper.join("g")));

    // Committed, the upper gives the whiteout and the opaque marker, and
    // none of overlayfs's own attributes.
    let tar = rw
        .commit(Upper::Scratch, |mut rd| {
            let mut v = Vec::new();
            rd.read_to_end(&mut v).unwrap();
            Ok(v)
        })
        .unwrap()
        .expect("a layer");
    let mut got = Vec::new();
    let mut ar = tar::Archive::new(Cursor::new(tar));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let k = x.unwrap().key().unwrap().to_string();
                assert!(
                    !k.contains("overlay."),
                    "overlayfs's xattr {k} was archived"
                );
            }
        }
        let n = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let n = n.trim_start_matches("./").trim_end_matches('/').to_string();
        if !n.is_empty() && n != "." {
            got.push(n);
        }
    }
    got.sort();
    assert_eq!(got, [".wh.g", "d", "d/.wh..wh..opq", "d/x"]);
    std::fs::write(d.join(DONE), b"").unwrap();
}

#[test]
fn unpacking_an_owner_outside_the_mapping_fails_with_mobys_hint() {
    let d = tempfile::tempdir_in("/tmp").unwrap();
    run_in_userns("inner_unmapped_owner", d.path());
}

#[test]
#[ignore = "run in a user namespace by its outer test"]
fn inner_unmapped_owner() {
    use berthd::engine::images::content::ContentStore;
    use berthd::engine::images::layers::LayerStore;
    use berthd::engine::store::Store;
    let Some(d) = inner_dir() else { return };
    let root = d.join("data");
    std::fs::create_dir(&root).unwrap();
    let store = Arc::new(Store::open(&root).unwrap());
    let content = ContentStore::open(&root).unwrap();
    let layers = LayerStore::open(&root, store).unwrap();
    // 65535 is the mapping's last id: fine; 70000 is outside it. A
    // `trusted.*` xattr cannot be set in a user namespace (EPERM): moby
    // skips it, and so does the unpacker.
    let mut ok = tar::Builder::new(Vec::new());
    for (name, uid, xattr) in [
        ("top", 65_535, None),
        ("with-xattr", 0, Some("trusted.berth")),
    ] {
        if let Some(x) = xattr {
            let k = format!("SCHILY.xattr.{x}");
            ok.append_pax_extensions([(k.as_str(), &b"v"[..])]).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(1);
        ok.append_data(&mut h, name, &b"y"[..]).unwrap();
    }
    let ok = ok.into_inner().unwrap();
    layers.stage(&content, Cursor::new(ok), false).unwrap();
    let bad = tar_of(&[("a/", 0, b""), ("a/owned", 70_000, b"x")]);
    let err = match layers.stage(&content, Cursor::new(bad), false) {
        Ok(_) => panic!("a file owned by uid 70000 was unpacked"),
        Err(e) => e.to_string(),
    };
    let layers_dir = std::fs::canonicalize(root.join("layers")).unwrap();
    let (path, rest) = err
        .strip_prefix("failed to Lchown \"")
        .and_then(|s| s.split_once('"'))
        .unwrap_or_else(|| panic!("unexpected error: {err}"));
    assert!(
        path.starts_with(&format!("{}/", layers_dir.display())) && path.ends_with("/diff/a/owned"),
        "{err}"
    );
    assert_eq!(
        rest,
        " for UID 70000, GID 70000 (try increasing the number of subordinate IDs in \
         /etc/subuid and /etc/subgid): invalid argument"
    );
    // Nothing half-unpacked is left: the staging directory is gone.
    let left: Vec<_> = names(&layers_dir)
        .into_iter()
        .filter(|n| n.starts_with("tmp-"))
        .collect();
    assert!(left.is_empty(), "staging directories left: {left:?}");
    assert!(
        !Path::new(path).exists(),
        "{path} survived the failed unpack"
    );
    std::fs::write(d.join(DONE), b"").unwrap();
}
