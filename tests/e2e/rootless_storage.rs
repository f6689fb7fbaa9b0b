//! Issue 20: a rootless daemon's storage. Overlays in the user namespace
//! honour opaque directories and whiteouts (built layers, committed
//! containers), `docker info` says `userxattr: true`, and an image with a
//! file owned outside the user's subordinate ids fails to load with
//! moby's wording and leaves no image behind.

use std::path::Path;
use std::process::Output;

use berth_tests::*;

fn start() -> Daemon {
    start_with(&[])
}

fn start_with(args: &[&str]) -> Daemon {
    let d = Daemon::start_rootless_with(args).expect("rootless berthd starts");
    fixtures::import_busybox(&d, "rl:1");
    d
}

/// The fuse-overlayfs driver's daemon; `/dev/fuse` opened by the user
/// needs Debian's usual mode (see `FuseAccess`).
const FUSE: &[&str] = &["--storage-driver", "fuse-overlayfs"];

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
    a_later_layer_deletes_a_file_and_replaces_a_directory_with(&[]);
}

#[test]
fn fuse_overlayfs_a_later_layer_deletes_a_file_and_replaces_a_directory() {
    let _fuse = FuseAccess::grant();
    a_later_layer_deletes_a_file_and_replaces_a_directory_with(FUSE);
}

fn a_later_layer_deletes_a_file_and_replaces_a_directory_with(args: &[&str]) {
    let d = start_with(args);
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
    commit_of_a_container_that_deleted_a_file_and_replaced_a_directory_with(&[]);
}

#[test]
fn fuse_overlayfs_commit_of_a_container_that_deleted_a_file_and_replaced_a_directory() {
    let _fuse = FuseAccess::grant();
    commit_of_a_container_that_deleted_a_file_and_replaced_a_directory_with(FUSE);
}

fn commit_of_a_container_that_deleted_a_file_and_replaced_a_directory_with(args: &[&str]) {
    let d = start_with(args);
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
    // One marker, and none of fuse-overlayfs's own files (its
    // `.wh..wh..opq` file and `.wh..opq` whiteout): the same layer as
    // overlay2 makes.
    assert_eq!(
        top.iter().filter(|n| n.contains(".wh..")).count(),
        1,
        "{top:?}"
    );
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
    a_long_chain_of_loaded_layers_mounts_through_the_helper_with(&[]);
}

#[test]
fn fuse_overlayfs_a_long_chain_of_loaded_layers_mounts_through_the_helper() {
    let _fuse = FuseAccess::grant();
    a_long_chain_of_loaded_layers_mounts_through_the_helper_with(FUSE);
}

fn a_long_chain_of_loaded_layers_mounts_through_the_helper_with(args: &[&str]) {
    let d = start_with(args);
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

/// `/dev/fuse` readable and writable by anyone (Debian's udev rule; this
/// host has no udev and leaves it 0600) while a fuse-overlayfs test runs:
/// the first grant sets the mode, the last drop restores the original.
struct FuseAccess;

static FUSE_USERS: std::sync::Mutex<(usize, u32)> = std::sync::Mutex::new((0, 0));

impl FuseAccess {
    fn grant() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let mut g = FUSE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            let mode = std::fs::metadata("/dev/fuse")
                .expect("/dev/fuse")
                .permissions()
                .mode();
            g.1 = mode & 0o7777;
            std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666))
                .expect("chmod /dev/fuse");
        }
        g.0 += 1;
        FuseAccess
    }
}

impl Drop for FuseAccess {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let mut g = FUSE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(g.1));
        }
    }
}

/// Live (not zombie) `fuse-overlayfs` processes serving under `root`.
fn fuse_servers(root: &Path) -> Vec<i32> {
    let root = root.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "fuse-overlayfs" {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
        if state == Some(Some('Z')) || stat.is_empty() {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&root) {
            out.push(pid);
        }
    }
    out
}

/// The FUSE mounts under `root` in the holder's mount namespace.
fn fuse_mounts(d: &Daemon, root: &Path) -> Vec<String> {
    let holder = d.holder_pid().expect("the holder's pid");
    let mounts = std::fs::read_to_string(format!("/proc/{holder}/mounts")).expect("mounts");
    let root = root.display().to_string();
    mounts
        .lines()
        .filter(|l| l.contains("fuse") && l.contains(&root))
        .map(str::to_string)
        .collect()
}

fn no_fuse_left(d: &Daemon, what: &str) {
    let gone = wait_for(std::time::Duration::from_secs(10), || {
        fuse_servers(&d.data_root).is_empty()
    });
    assert!(
        gone,
        "{what}: fuse-overlayfs still serving: {:?}",
        fuse_servers(&d.data_root)
    );
    let m = fuse_mounts(d, &d.data_root);
    assert!(m.is_empty(), "{what}: FUSE mounts left: {m:?}");
}

#[test]
fn fuse_overlayfs_info_run_and_cleanup_after_rm_and_a_daemon_kill() {
    let _fuse = FuseAccess::grant();
    let mut d = start_with(FUSE);
    let info = d.docker_ok(&["info", "--format", "{{.Driver}} {{json .DriverStatus}}"]);
    assert_eq!(info.trim(), "fuse-overlayfs []", "{info}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "rl:1",
        "cat",
        "/proc/self/mounts",
    ]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.contains("fuse.fuse-overlayfs")),
        "the root is a fuse-overlayfs mount: {out}"
    );
    no_fuse_left(&d, "run --rm");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fa",
        "--network",
        "none",
        "rl:1",
        "sleep",
        "300",
    ]);
    assert_eq!(fuse_servers(&d.data_root).len(), 1);
    assert_eq!(fuse_mounts(&d, &d.data_root).len(), 1);
    d.docker_ok(&["rm", "-f", "fa"]);
    no_fuse_left(&d, "rm -f");
    // kill -9 of the daemon: the container, its FUSE server and mount
    // survive; after a restart `rm -f` leaves none of them.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fb",
        "--network",
        "none",
        "rl:1",
        "sleep",
        "300",
    ]);
    d.kill9();
    assert_eq!(
        fuse_servers(&d.data_root).len(),
        1,
        "the server outlives the daemon"
    );
    d.restart().expect("restart");
    let out = d.docker_ok(&["exec", "fb", "echo", "alive"]);
    assert_eq!(out.trim(), "alive");
    d.docker_ok(&["rm", "-f", "fb"]);
    no_fuse_left(&d, "kill -9, restart, rm -f");
    // A container that exits while the daemon is down: the restart's
    // reconcile records the exit and unmounts its root.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fc",
        "--network",
        "none",
        "rl:1",
        "sleep",
        "300",
    ]);
    let pid: i32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "fc"])
        .trim()
        .parse()
        .expect("a pid");
    d.kill9();
    // SAFETY (test code): a plain kill of the container's process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for(std::time::Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty())
    });
    d.restart().expect("restart");
    let st = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "fc"]);
    assert_eq!(st.trim(), "exited");
    no_fuse_left(&d, "an exit while the daemon was down");
    d.docker_ok(&["rm", "fc"]);
}
