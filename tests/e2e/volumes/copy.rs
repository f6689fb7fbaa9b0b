//! `docker cp` and the archive endpoints.

use super::*;

#[test]
fn cp_round_trips_a_directory_with_a_symlink_modes_and_owners() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = daemon();
    let dir = scratch();
    let src = dir.path().join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "content\n").unwrap();
    std::os::unix::fs::chown(src.join("sub/f"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    std::fs::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
    std::os::unix::fs::lchown(src.join("link"), Some(42), Some(43)).unwrap();
    let srcs = src.display().to_string();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-v",
        "cpvol:/vol",
        "busybox",
        "sleep",
        "600",
    ]);
    let check_inside = |root: &str| {
        let out = d.docker_ok(&[
            "exec",
            "box",
            "stat",
            "-c",
            "%n %F %u:%g %a",
            &format!("{root}/tree/sub/f"),
            &format!("{root}/tree/sub"),
            &format!("{root}/tree/link"),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("{root}/tree/sub/f regular file 1234:5678 4750")
        );
        assert_eq!(lines[1], format!("{root}/tree/sub directory 0:0 1777"));
        assert!(
            lines[2].starts_with(&format!("{root}/tree/link symbolic link 42:43")),
            "{out}"
        );
        let target = d.docker_ok(&["exec", "box", "readlink", &format!("{root}/tree/link")]);
        assert_eq!(target, "sub/f\n");
    };
    // In, to the container's own file system and to a volume.
    d.docker_ok(&["cp", "-a", &srcs, "box:/tmp/"]);
    check_inside("/tmp");
    d.docker_ok(&["cp", "-a", &srcs, "box:/vol"]);
    check_inside("/vol");
    assert!(mountpoint(&d, "cpvol").join("tree/sub/f").is_file());
    // Out, as a tar on stdout: names, modes, owners and the link kept.
    let check_tar = |bytes: &[u8]| {
        let mut seen = Vec::new();
        for e in tar::Archive::new(bytes).entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            let name = e.path().unwrap().display().to_string();
            let name = name.trim_end_matches('/').to_string();
            match name.as_str() {
                "tree/sub/f" => {
                    assert_eq!(h.mode().unwrap() & 0o7777, 0o4750);
                    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1234, 5678));
                }
                "tree/link" => {
                    assert!(h.entry_type().is_symlink());
                    assert_eq!(e.link_name().unwrap().unwrap(), Path::new("sub/f"));
                    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (42, 43));
                }
                "tree/sub" => assert_eq!(h.mode().unwrap() & 0o7777, 0o1777),
                _ => {}
            }
            seen.push(name);
        }
        seen.sort();
        assert_eq!(seen, ["tree", "tree/link", "tree/sub", "tree/sub/f"]);
    };
    for root in ["/tmp", "/vol"] {
        let o = d
            .docker_cmd()
            .args(["cp", &format!("box:{root}/tree"), "-"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        check_tar(&o.stdout);
    }
    // Out to a directory: content, modes and the link.
    let out = dir.path().join("back");
    d.docker_ok(&["cp", "box:/tmp/tree", &out.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(out.join("sub/f")).unwrap(),
        "content\n"
    );
    assert_eq!(
        std::fs::metadata(out.join("sub/f")).unwrap().mode() & 0o777,
        0o750
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("sub/f")
    );
    // A stopped container: same answers, through its volume too.
    d.docker_ok(&["stop", "-t", "0", "box"]);
    for root in ["/tmp", "/vol"] {
        let o = d
            .docker_cmd()
            .args(["cp", &format!("box:{root}/tree"), "-"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        check_tar(&o.stdout);
    }
    let f = fixtures::write_file(dir.path(), "late.txt", b"late\n");
    d.docker_ok(&["cp", &f.display().to_string(), "box:/vol/late.txt"]);
    d.docker_ok(&["cp", &f.display().to_string(), "box:/tmp/late.txt"]);
    assert_eq!(
        std::fs::read_to_string(mountpoint(&d, "cpvol").join("late.txt")).unwrap(),
        "late\n"
    );
    // Nothing of the temporary mounts is left behind.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(&d.data_root.display().to_string()),
        "mounts left: {info}"
    );
    d.docker_ok(&["start", "box"]);
    let out = d.docker_ok(&["exec", "box", "cat", "/vol/late.txt", "/tmp/late.txt"]);
    assert_eq!(out, "late\nlate\n");
    // -L follows the link given; without it the link itself comes.
    let o = d
        .docker_cmd()
        .args(["cp", "-L", "box:/tmp/tree/link", "-"])
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(o.stdout.as_slice());
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    assert!(e.header().entry_type().is_file());
    // Missing paths: Docker's 404.
    let o = d.docker(&["cp", "box:/no/such", "-"]);
    assert!(
        stderr(&o).contains("Could not find the file /no/such in container box"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cp_cannot_leave_the_container_through_symlinks() {
    let d = daemon();
    let dir = scratch();
    let marker = format!("berth-trap-{}", random_hex());
    let host_secret = dir.path().join("secret");
    std::fs::write(&host_secret, "host secret\n").unwrap();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "trap",
        "--hostname",
        "trapbox",
        "busybox",
        "sh",
        "-c",
        "ln -s / /evil; ln -s ../../../../.. /tmp/up; mkdir /target; sleep 600",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (path, word) in [
        ("/evil/etc/hostname", "trapbox"),
        ("/tmp/up/etc/hostname", "trapbox"),
    ] {
        let o = d
            .docker_cmd()
            .args(["cp", &format!("trap:{path}"), "-"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let mut ar = tar::Archive::new(o.stdout.as_slice());
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s.trim(), word, "{path} must be the container's file");
    }
    // The host's files are not reachable through the trap.
    let through = format!("trap:/evil{}", host_secret.display());
    let o = d.docker(&["cp", &through, "-"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Could not find the file"),
        "{}",
        stderr(&o)
    );
    // Writes through the trap land inside the container.
    let f = fixtures::write_file(dir.path(), &marker, b"x\n");
    d.docker_ok(&["cp", &f.display().to_string(), "trap:/evil/tmp/"]);
    d.docker_ok(&["cp", &f.display().to_string(), "trap:/tmp/up/target/"]);
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!Path::new("/target").exists());
    let out = d.docker_ok(&[
        "exec",
        "trap",
        "ls",
        &format!("/tmp/{marker}"),
        &format!("/target/{marker}"),
    ]);
    assert_eq!(out.lines().count(), 2);
    // Also when the container is stopped (its root mounted for the copy).
    d.docker_ok(&["stop", "-t", "0", "trap"]);
    let o = d
        .docker_cmd()
        .args(["cp", "trap:/evil/etc/hostname", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.docker(&["cp", &through, "-"]);
    assert!(!o.status.success());
    d.docker_ok(&["cp", &f.display().to_string(), "trap:/evil/"]);
    assert!(!Path::new("/").join(&marker).exists());
}

#[test]
fn an_archive_with_parent_entries_is_refused_with_400() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "600"]);
    let dir = scratch();
    let marker = format!("berth-escape-{}", random_hex());
    for name in [
        format!("../{marker}"),
        format!("a/../../{marker}"),
        format!("/{marker}"),
    ] {
        let layer = fixtures::layer_tar(&[fixtures::Entry::RawFile(&name, b"evil")]);
        let (code, head, body) = d.raw(
            "PUT",
            "/v1.50/containers/up/archive?path=%2Ftmp&noOverwriteDirNonDir=true",
            Some(&layer),
        );
        assert_eq!(
            code,
            400,
            "{name}: {head} {}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains("invalid tar entry"),
            "{v}"
        );
    }
    // A symlink entry followed by a write through it.
    let layer = fixtures::layer_tar(&[
        fixtures::Entry::Symlink("out", "/"),
        fixtures::Entry::File(&format!("out/{marker}"), b"evil"),
    ]);
    let (code, _, _) = d.raw("PUT", "/containers/up/archive?path=/tmp", Some(&layer));
    assert_eq!(code, 400);
    assert!(!Path::new("/").join(&marker).exists());
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!dir.path().join(&marker).exists());
    let out = d.docker_ok(&[
        "exec",
        "up",
        "sh",
        "-c",
        &format!("ls /{marker} /tmp/{marker} 2>&1; true"),
    ]);
    assert!(!out.contains(&format!("\n/{marker}\n")), "{out}");
    // HEAD answers the stat header; missing paths 404.
    let (code, head, _) = d.raw("HEAD", "/containers/up/archive?path=/etc", None);
    assert_eq!(code, 200);
    let stat = header(&head, "X-Docker-Container-Path-Stat").expect("stat header");
    let json = base64_decode(stat);
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["name"], "etc");
    assert_eq!(v["mode"].as_u64().unwrap() & (1 << 31), 1 << 31);
    let (code, _, _) = d.raw("HEAD", "/containers/up/archive?path=/nope", None);
    assert_eq!(code, 404);
    // The extraction point must be a directory.
    let layer = fixtures::layer_tar(&[fixtures::Entry::File("x", b"1")]);
    let (code, _, body) = d.raw(
        "PUT",
        "/containers/up/archive?path=/etc/passwd",
        Some(&layer),
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
}

/// Standard base64, decoded by hand to keep the test crate's dependencies.
fn base64_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// `docker cp -a` into a container with a `User` gives the files to that
/// user (copyUIDGID); plain `cp` keeps the archive's owners; a file never
/// replaces a directory (noOverwriteDirNonDir, always set by the CLI).
#[test]
fn cp_a_chowns_to_the_containers_user_and_never_replaces_a_dir_with_a_file() {
    use std::os::unix::fs::MetadataExt;
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "owned",
        "-u",
        "1234:5678",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /tmp/d && exec sleep 300",
    ]);
    let dir = scratch();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(42), Some(43)).unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), 42);
    let src = f.display().to_string();
    d.docker_ok(&["cp", "-a", &src, "owned:/tmp/a.txt"]);
    d.docker_ok(&["cp", &src, "owned:/tmp/b.txt"]);
    let owners = d.docker_ok(&[
        "exec",
        "owned",
        "stat",
        "-c",
        "%n %u:%g",
        "/tmp/a.txt",
        "/tmp/b.txt",
    ]);
    assert_eq!(owners, "/tmp/a.txt 1234:5678\n/tmp/b.txt 42:43\n");
    // berth cp does the same.
    let o = d.berth(&["cp", "-a", &src, "owned:/tmp/c.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.berth(&["cp", &src, "owned:/tmp/e.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let owners = d.docker_ok(&[
        "exec",
        "owned",
        "stat",
        "-c",
        "%n %u:%g",
        "/tmp/c.txt",
        "/tmp/e.txt",
    ]);
    assert_eq!(owners, "/tmp/c.txt 1234:5678\n/tmp/e.txt 42:43\n");
    // A file named like an existing directory does not replace it.
    let d_file = dir.path().join("d");
    std::fs::write(&d_file, "not a dir").unwrap();
    let o = d.docker(&["cp", &d_file.display().to_string(), "owned:/tmp/"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot overwrite directory"),
        "{}",
        stderr(&o)
    );
    let kind = d.docker_ok(&["exec", "owned", "stat", "-c", "%F", "/tmp/d"]);
    assert_eq!(kind.trim(), "directory");
}
