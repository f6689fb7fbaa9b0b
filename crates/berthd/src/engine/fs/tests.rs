//! Packing and unpacking together: what one writes the other reads back.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::confined::tests::root_with_trap;
use super::error::{AResult, ArchiveError};
use super::*;

#[test]
fn packs_without_following_links() {
    let (_d, root) = root_with_trap();
    let fd = root
        .open_at("/", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .unwrap();
    let mut w = Packer::new(Vec::new());
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
                (
                    "link/berth-escape-probe",
                    tar::EntryType::Regular,
                    b"evil",
                    None,
                ),
            ]),
            "symlink",
        ),
        (
            tar_of(&[
                ("link", tar::EntryType::Symlink, b"", Some("/tmp")),
                (
                    "link/berth-escape-probe",
                    tar::EntryType::Regular,
                    b"evil",
                    None,
                ),
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
        assert!(!Path::new("/tmp/berth-escape-probe").exists() || word != "symlink");
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
    let x = xattr::list_path(&root.join("dir")).unwrap();
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
    let x = xattr::list_path(&root.join("owned")).unwrap();
    assert!(
        x.contains(&("user.berth".to_string(), b"yes".to_vec())),
        "{x:?}"
    );
    let lmd = std::fs::symlink_metadata(root.join("link")).unwrap();
    assert_eq!((lmd.uid(), lmd.gid(), lmd.mtime()), (42, 43, 12345));
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

#[test]
fn long_names_and_raw_link_targets_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let deep = src.join("n".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("m".repeat(60)), "x").unwrap();
    std::os::unix::fs::symlink("q".repeat(110), deep.join("l".repeat(60))).unwrap();
    // Stored as readlink gives it, as Docker does: not normalised.
    std::os::unix::fs::symlink("./x//y/", src.join("s")).unwrap();
    let tar = pack(&src, Vec::new(), &PackOptions::default()).unwrap();
    let dst = d.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(io::Cursor::new(tar), &dst, &UnpackOptions::default()).unwrap();
    let deep = dst.join("n".repeat(60));
    assert_eq!(std::fs::read(deep.join("m".repeat(60))).unwrap(), b"x");
    assert_eq!(
        std::fs::read_link(deep.join("l".repeat(60))).unwrap(),
        PathBuf::from("q".repeat(110))
    );
    assert_eq!(
        std::fs::read_link(dst.join("s")).unwrap(),
        PathBuf::from("./x//y/")
    );
}

#[test]
fn scratch_uppers_keep_what_container_uppers_drop() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("etc")).unwrap();
    std::fs::write(d.path().join("etc/hosts"), "").unwrap();
    let container = snapshot::layer_rules(snapshot::Upper::Container);
    let scratch = snapshot::layer_rules(snapshot::Upper::Scratch);
    assert!(packs_nothing(d.path(), &container));
    assert!(!packs_nothing(d.path(), &scratch));
    let none = snapshot::commit_upper(d.path(), snapshot::Upper::Container, |_| {
        Ok::<_, crate::engine::EngineError>(())
    })
    .unwrap();
    assert!(none.is_none());
    let some = snapshot::commit_upper(d.path(), snapshot::Upper::Scratch, |mut r| {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut v).unwrap();
        Ok(v.len())
    })
    .unwrap();
    assert!(some.is_some_and(|n| n > 0));
}

/// An upper directory as fuse-overlayfs leaves it (in a user namespace:
/// `user.fuseoverlayfs.opaque`, a `.wh..wh..opq` file and a `.wh..opq`
/// whiteout in the opaque directory) packs to the very bytes of the same
/// change made by overlayfs (`trusted.overlay.opaque`, rootful mode).
#[test]
fn fuse_overlayfs_markers_pack_as_overlayfs_ones() {
    let make = |fuse: bool| {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("new"), "n").unwrap();
        let whiteout = |p: &Path| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .unwrap()
        };
        whiteout(&d.path().join("gone"));
        if fuse {
            xattr::set_path(&dir, b"user.fuseoverlayfs.opaque", b"y").unwrap();
            xattr::set_path(&dir, b"user.fuseoverlayfs.origin", b"x").unwrap();
            std::fs::write(dir.join(".wh..wh..opq"), "").unwrap();
            whiteout(&dir.join(".wh..opq"));
        } else {
            xattr::set_path(&dir, b"trusted.overlay.opaque", b"y").unwrap();
        }
        for p in [d.path().join("gone"), dir.clone(), dir.join("new")] {
            let t = nix::sys::time::TimeSpec::new(1_000_000, 0);
            nix::sys::stat::utimensat(
                None,
                &p,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
        if fuse {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        (d, dir)
    };
    let packed = |root: &Path| {
        let dir = root.join("dir");
        let t = nix::sys::time::TimeSpec::new(1_000_000, 0);
        nix::sys::stat::utimensat(
            None,
            &dir,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        pack(
            root,
            Vec::new(),
            &snapshot::layer_rules(snapshot::Upper::Scratch),
        )
        .unwrap()
    };
    let (kernel, _) = make(false);
    let (fuse, _) = make(true);
    let a = packed(kernel.path());
    let b = packed(fuse.path());
    let names = |t: &[u8]| {
        tar::Archive::new(io::Cursor::new(t.to_vec()))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&b),
        vec!["dir", "dir/.wh..wh..opq", "dir/new", ".wh.gone"]
    );
    assert_eq!(names(&a), names(&b));
    assert!(a == b, "the two layers differ in their bytes");
    // A directory marked only by the file (no attribute) is opaque too.
    let only_file = tempfile::tempdir().unwrap();
    std::fs::create_dir(only_file.path().join("o")).unwrap();
    std::fs::write(only_file.path().join("o/.wh..wh..opq"), "").unwrap();
    let t = pack(
        only_file.path(),
        Vec::new(),
        &snapshot::layer_rules(snapshot::Upper::Scratch),
    )
    .unwrap();
    assert_eq!(names(&t), vec!["o", "o/.wh..wh..opq"]);
}
