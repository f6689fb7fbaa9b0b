//! Issue 16: hostile archives at every door that takes one — `import`,
//! `load`, `cp` into a container, a build context, and `ADD` of a local
//! tar. Hard links to host files or out of the root, names with `..` or
//! absolute, and symlinks followed by writes are refused with a 4xx (or a
//! build error) naming the entry, write nothing outside, register
//! nothing, and (`cp`) leave nothing half-extracted. Device nodes and setuid files are kept, as Docker keeps them,
//! but only inside the container's root, where the device cgroup leaves a
//! block device unusable.

use std::io::Write;
use std::path::Path;

use berth_tests::fixtures::{self, Entry};
use berth_tests::host::count_entries;
use berth_tests::*;
use serde_json::Value;

/// A tar with hard links and device nodes, which `fixtures::layer_tar`
/// does not make.
fn raw_tar(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().expect("tar")
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    h
}

fn hardlink(target: &str) -> Vec<u8> {
    raw_tar(|b| {
        let mut h = header(tar::EntryType::Link, 0o644);
        b.append_link(&mut h, "x", target).expect("link");
    })
}

/// The hostile archives, each with the entry its refusal must name.
fn hostile(outside: &Path) -> Vec<(String, Vec<u8>, String)> {
    let host_file = outside.join("host-secret");
    vec![
        (
            "hard link to a host file".into(),
            hardlink(&host_file.display().to_string()),
            "x".into(),
        ),
        (
            "hard link out of the root".into(),
            hardlink("../../../../../etc/hostname"),
            "x".into(),
        ),
        (
            "name with ..".into(),
            fixtures::layer_tar(&[Entry::RawFile("a/../../x", b"evil")]),
            "a/../../x".into(),
        ),
        (
            "symlink then a write through it".into(),
            fixtures::layer_tar(&[
                Entry::Symlink("link", &outside.display().to_string()),
                Entry::File("link/pwned", b"evil"),
            ]),
            "link/pwned".into(),
        ),
    ]
}

fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// A build context (tar) with a Dockerfile and extra entries.
fn context(dockerfile: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("Dockerfile".into(), dockerfile.as_bytes().to_vec())];
    for (n, b) in extra {
        files.push((n.to_string(), b.to_vec()));
    }
    fixtures::archive_of(&files)
}

fn images(d: &Daemon) -> String {
    d.docker_ok(&["images", "-aq", "--no-trunc"])
}

#[test]
fn hostile_archives_are_refused_at_every_door() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    let outside = scratch();
    std::fs::write(outside.path().join("host-secret"), "host secret\n").expect("secret");
    let before = images(&d);
    for (what, tar, entry) in hostile(outside.path()) {
        // import
        let (status, _, body) = d.raw(
            "POST",
            "/v1.50/images/create?fromSrc=-&repo=evil",
            Some(&tar),
        );
        assert_eq!(status, 400, "import, {what}: {}", message(&body));
        assert!(
            message(&body).contains(&entry),
            "import, {what}: {}",
            message(&body)
        );
        // load (the hostile tar as an image's layer)
        let (archive, _) =
            fixtures::docker_archive(std::slice::from_ref(&tar), &["evil:load"], Value::Null);
        let (status, _, body) = d.raw("POST", "/v1.50/images/load?quiet=1", Some(&archive));
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(
            status == 400 || (status == 200 && text.contains("error")),
            "load, {what}: {status} {text}"
        );
        assert!(text.contains(&entry), "load, {what}: {text}");
        // cp into a container
        let (status, _, body) = d.raw(
            "PUT",
            "/v1.50/containers/box/archive?path=%2Ftmp",
            Some(&tar),
        );
        assert_eq!(status, 400, "cp, {what}: {}", message(&body));
        // a build context
        let ctx = raw_tar(|b| {
            let df = b"FROM busybox\nCOPY . /ctx/\n";
            let mut h = header(tar::EntryType::Regular, 0o644);
            h.set_size(df.len() as u64);
            b.append_data(&mut h, "Dockerfile", &df[..])
                .expect("Dockerfile");
            let mut inner = tar::Archive::new(tar.as_slice());
            for e in inner.entries().expect("entries") {
                let mut e = e.expect("entry");
                let h = e.header().clone();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).expect("data");
                b.append(&h, data.as_slice()).expect("append");
            }
        });
        let (status, _, body) = d.raw("POST", "/v1.50/build?t=evil:ctx", Some(&ctx));
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(
            status == 400 || (status == 200 && text.contains("error")),
            "build context, {what}: {status} {text}"
        );
        // ADD of a local tar, which ADD unpacks
        let ctx = context("FROM busybox\nADD evil.tar /x/\n", &[("evil.tar", &tar)]);
        let (status, _, body) = d.raw("POST", "/v1.50/build?t=evil:add", Some(&ctx));
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(
            status == 200 && text.contains("error") && text.contains(&entry),
            "ADD, {what}: {status} {text}"
        );
    }
    // Nothing written outside, nothing registered, and the daemon serves.
    assert_eq!(
        count_entries(outside.path()),
        1,
        "only the host's own file is there"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("host-secret")).expect("secret"),
        "host secret\n"
    );
    assert_eq!(images(&d), before, "a refused archive registered an image");
    assert_eq!(d.raw("GET", "/_ping", None).0, 200);
    // cp is all or nothing: not even the entries before the refused one
    // (the symlink of "symlink then a write") landed in the container.
    let ls = d.docker_ok(&["exec", "box", "ls", "-a", "/tmp"]);
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        [".", ".."],
        "cp wrote part of a refused archive: {ls}"
    );
}

#[test]
fn device_nodes_and_setuid_files_stay_inside_and_devices_stay_unusable() {
    let d = daemon();
    let tar = raw_tar(|b| {
        let mut h = header(tar::EntryType::Block, 0o666);
        h.set_device_major(8).expect("major");
        h.set_device_minor(0).expect("minor");
        b.append_data(&mut h, "disk", std::io::empty())
            .expect("block device");
        let script = b"#!/bin/sh\necho hi\n";
        let mut h = header(tar::EntryType::Regular, 0o4755);
        h.set_size(script.len() as u64);
        b.append_data(&mut h, "suid", &script[..])
            .expect("setuid file");
    });
    // Through cp into a running container...
    d.docker_ok(&["run", "-d", "--name", "dev", "busybox", "sleep", "600"]);
    let (status, _, body) = d.raw(
        "PUT",
        "/v1.50/containers/dev/archive?path=%2Ftmp",
        Some(&tar),
    );
    assert_eq!(status, 200, "{}", message(&body));
    let ls = d.docker_ok(&["exec", "dev", "ls", "-l", "/tmp/disk", "/tmp/suid"]);
    assert!(ls.contains("brw-rw-rw-") && ls.contains("8,   0"), "{ls}");
    assert!(
        ls.contains("-rwsr-xr-x"),
        "the setuid bit is kept, as Docker keeps it: {ls}"
    );
    // ...where the device cgroup refuses the disk.
    let o = d.docker(&["exec", "dev", "head", "-c1", "/tmp/disk"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // Through load, as an image layer on top of busybox.
    let base = fixtures::busybox_rootfs_tar();
    let base = std::fs::read(base).expect("busybox tar");
    let (archive, _) = fixtures::docker_archive(
        &[base, tar],
        &["devices:latest"],
        serde_json::json!({"config": {"Cmd": ["sh"]}}),
    );
    let dir = scratch();
    let f = dir.path().join("devices.tar");
    std::fs::File::create(&f)
        .and_then(|mut w| w.write_all(&archive))
        .expect("archive");
    d.docker_ok(&["load", "-q", "-i", &f.display().to_string()]);
    let o = d.docker(&[
        "run",
        "--rm",
        "devices",
        "sh",
        "-c",
        "ls -l /disk /suid && head -c1 /disk",
    ]);
    assert!(!o.status.success(), "the block device was readable");
    assert!(stdout(&o).contains("-rwsr-xr-x"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // No device node appeared outside a layer or a container's root.
    let found = std::process::Command::new("find")
        .args([
            &d.data_root.display().to_string(),
            "-type",
            "b",
            "-not",
            "-path",
            "*/diff/*",
            "-not",
            "-path",
            "*/merged/*",
        ])
        .output()
        .expect("find");
    assert_eq!(stdout(&found).trim(), "", "device nodes outside a layer");
}
