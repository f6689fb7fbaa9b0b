//! Issue 20: a rootless daemon's storage. Overlays in the user namespace
//! honour opaque directories and whiteouts (built layers, committed
//! containers), `docker info` says `userxattr: true`, and an image with a
//! file owned outside the user's subordinate ids fails to load with
//! moby's wording and leaves no image behind.

use std::path::Path;
use std::process::Output;

use berth_tests::*;

fn start() -> Daemon {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    fixtures::import_busybox(&d, "rl:1");
    d
}

/// A scratch directory the rootless daemon's user can read, with `files`.
fn user_dir(d: &Daemon, name: &str, files: &[(&str, &str)]) -> String {
    let dir = d.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write");
    }
    if let Some(u) = d.rootless_user() {
        rootless::chown_tree(&dir, u).expect("chown");
    }
    dir.display().to_string()
}

fn build(d: &Daemon, tag: &str, ctx: &str) -> Output {
    d.docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag, ctx])
        .output()
        .expect("docker build")
}

fn build_ok(d: &Daemon, tag: &str, ctx: &str) {
    let o = build(d, tag, ctx);
    assert!(
        o.status.success(),
        "docker build {tag} failed:\n{}\n{}\n{}",
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
}

#[test]
fn info_reports_userxattr() {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let s = d.docker_ok(&["info", "--format", "{{json .DriverStatus}}"]);
    assert!(s.contains(r#"["userxattr","true"]"#), "{s}");
}

#[test]
fn a_later_layer_deletes_a_file_and_replaces_a_directory() {
    let d = start();
    let ctx = user_dir(
        &d,
        "ctx",
        &[(
            "Dockerfile",
            "FROM rl:1\n\
             RUN mkdir -p /d /keep && echo old > /d/old && echo f > /f && echo k > /keep/k\n\
             RUN rm /f && rm -rf /d && mkdir /d && echo new > /d/new\n",
        )],
    );
    build_ok(&d, "wo:1", &ctx);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "wo:1",
        "sh",
        "-c",
        "ls /d; test -e /f && echo f-still-there; cat /keep/k",
    ]);
    assert_eq!(
        out.trim(),
        "new\nk",
        "the opaque /d hides d/old, /f is whited out"
    );
    // The merged view as `docker export` packs it agrees.
    d.docker_ok(&[
        "create",
        "--name",
        "xp",
        "--network",
        "none",
        "wo:1",
        "true",
    ]);
    let o = d
        .docker_cmd()
        .args(["export", "xp"])
        .output()
        .expect("export");
    assert!(o.status.success(), "{}", stderr(&o));
    let names = tar_names(&o.stdout);
    assert!(names.iter().any(|n| n == "d/new"), "{names:?}");
    assert!(!names.iter().any(|n| n == "d/old" || n == "f"), "{names:?}");
    d.docker_ok(&["rm", "xp"]);
}

#[test]
fn commit_of_a_container_that_deleted_a_file_and_replaced_a_directory() {
    let d = start();
    d.docker_ok(&[
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        "rl:1",
        "sh",
        "-c",
        "mkdir /d && echo a > /d/a && echo gone > /gone",
    ]);
    d.docker_ok(&["commit", "c1", "base2:1"]);
    d.docker_ok(&[
        "run",
        "--name",
        "c2",
        "--network",
        "none",
        "base2:1",
        "sh",
        "-c",
        "rm /gone && rm -rf /d && mkdir /d && echo b > /d/b",
    ]);
    d.docker_ok(&["commit", "c2", "after:1"]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "after:1",
        "sh",
        "-c",
        "ls /d; test -e /gone && echo gone-still-there; true",
    ]);
    assert_eq!(out.trim(), "b");
    // The committed layer itself: saved, its top layer has the whiteout
    // and the opaque marker.
    let o = d
        .docker_cmd()
        .args(["save", "after:1"])
        .output()
        .expect("save");
    assert!(o.status.success(), "{}", stderr(&o));
    let top = top_layer(&o.stdout);
    assert!(top.iter().any(|n| n == ".wh.gone"), "{top:?}");
    assert!(top.iter().any(|n| n == "d/.wh..wh..opq"), "{top:?}");
    d.docker_ok(&["rm", "c1", "c2"]);
}

#[test]
fn an_image_with_an_owner_outside_the_subordinate_ids_fails_to_load() {
    // Built as root by an ordinary daemon, saved, loaded by the user's.
    let saved = {
        let root = Daemon::start();
        fixtures::import_busybox(&root, "rl:1");
        let ctx = scratch();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM rl:1\nRUN mkdir /big && echo x > /big/owned && chown 70000:70000 /big/owned\n",
        )
        .expect("write");
        build_ok(&root, "big:1", &ctx.path().display().to_string());
        let o = root
            .docker_cmd()
            .args(["save", "big:1"])
            .output()
            .expect("save");
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    let d = start();
    let dir = user_dir(&d, "load", &[]);
    let file = Path::new(&dir).join("big.tar");
    std::fs::write(&file, &saved).expect("write");
    if let Some(u) = d.rootless_user() {
        rootless::chown_tree(&file, u).expect("chown");
    }
    let o = d.docker(&["load", "-i", &file.display().to_string()]);
    assert!(!o.status.success(), "loaded: {}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("failed to Lchown \""), "{err}");
    assert!(
        err.contains(
            "/big/owned\" for UID 70000, GID 70000 (try increasing the number of \
             subordinate IDs in /etc/subuid and /etc/subgid): invalid argument"
        ),
        "{err}"
    );
    // Nothing was registered: no image, and the base still loads and runs.
    let images = d.docker_ok(&["images", "-q", "big"]);
    assert!(images.trim().is_empty(), "{images}");
    let o = d.docker(&["image", "inspect", "big:1"]);
    assert!(!o.status.success());
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--network", "none", "rl:1", "echo", "ok"])
            .trim(),
        "ok"
    );
}

/// The names in a tar, without `./` or a trailing `/`.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in ar.entries().expect("tar") {
        let e = e.expect("entry");
        let n = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        out.push(n.trim_start_matches("./").trim_end_matches('/').to_string());
    }
    out
}

/// The entry names of the last layer of a `docker save` archive.
fn top_layer(saved: &[u8]) -> Vec<String> {
    let mut files = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(saved);
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        let n = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut v).expect("read");
        files.insert(n, v);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    let layers = manifest[0]["Layers"].as_array().expect("layers");
    let top = layers.last().and_then(|l| l.as_str()).expect("a layer");
    tar_names(&files[top])
}

#[test]
fn a_long_chain_of_loaded_layers_mounts_through_the_helper() {
    // 60 layers: the lower dirs' absolute paths pass a page of mount
    // options, so the shim's helper mounts them (with `userxattr`). The
    // top layer whites out a file and makes a directory opaque.
    let d = start();
    let mut layers = vec![std::fs::read(fixtures::busybox_rootfs_tar()).expect("busybox tar")];
    layers.push(fixtures::layer_tar(&[
        fixtures::Entry::Dir("d"),
        fixtures::Entry::File("d/old", b"old"),
        fixtures::Entry::File("gone", b"gone"),
        fixtures::Entry::Dir("layers"),
    ]));
    for i in 0..57 {
        let name = format!("layers/{i}");
        layers.push(fixtures::layer_tar(&[fixtures::Entry::File(&name, b"x")]));
    }
    layers.push(fixtures::layer_tar(&[
        fixtures::Entry::Dir("d"),
        fixtures::Entry::File("d/.wh..wh..opq", b""),
        fixtures::Entry::File("d/new", b"new"),
        fixtures::Entry::File(".wh.gone", b""),
    ]));
    assert_eq!(layers.len(), 60);
    let (tar, _) = fixtures::docker_archive(&layers, &["chain:1"], serde_json::json!({}));
    let dir = user_dir(&d, "chain", &[]);
    let file = Path::new(&dir).join("chain.tar");
    std::fs::write(&file, &tar).expect("write");
    if let Some(u) = d.rootless_user() {
        rootless::chown_tree(&file, u).expect("chown");
    }
    d.docker_ok(&["load", "-i", &file.display().to_string()]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "chain:1",
        "sh",
        "-c",
        "ls /d; ls /layers | wc -l; test -e /gone && echo gone-still-there; true",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["new", "57"]);
}
