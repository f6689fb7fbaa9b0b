//! Binds and tmpfs mounts.

use super::*;

#[test]
fn binds_read_only_missing_sources_and_propagation() {
    let d = daemon();
    let dir = scratch();
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "host file\n").unwrap();
    let hs = host.display().to_string();
    // Read-only bind: readable, writes refused.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{hs}:/h:ro"),
        "busybox",
        "sh",
        "-c",
        "cat /h/f; touch /h/new 2>&1; echo rc=$?",
    ]);
    assert!(out.contains("host file"), "{out}");
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    assert!(!host.join("new").exists());
    // Read-write bind: writes land on the host.
    d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={hs},dst=/h"),
        "busybox",
        "touch",
        "/h/new",
    ]);
    assert!(host.join("new").exists());
    // cp into a read-only mount or a read-only rootfs is refused with
    // Docker's messages, even for an upload bigger than any buffer.
    let big = fixtures::write_file(dir.path(), "big", &vec![7u8; 8 << 20]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ro",
        "--read-only",
        "-v",
        &format!("{hs}:/h:ro"),
        "-v",
        "rwvol:/rw",
        "busybox",
        "sleep",
        "600",
    ]);
    let o = d.docker(&["cp", &big.display().to_string(), "ro:/h/"]);
    assert!(
        stderr(&o).contains("mounted volume is marked read-only"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["cp", &big.display().to_string(), "ro:/tmp/"]);
    assert!(
        stderr(&o).contains("container rootfs is marked read-only"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["cp", &big.display().to_string(), "ro:/rw/"]);
    assert!(!host.join("big").exists());
    // `-v` with a missing host path creates it; `--mount` refuses.
    let missing = dir.path().join("made/by/v");
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(missing.is_dir());
    let nope = dir.path().join("nope");
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={},dst=/m", nope.display()),
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&o).contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            nope.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(!nope.exists());
    // Explicit rprivate is accepted and shown.
    d.docker_ok(&[
        "create",
        "--name",
        "priv",
        "-v",
        &format!("{hs}:/h:rprivate"),
        "busybox",
        "true",
    ]);
    let m = &d.inspect_json("priv")["Mounts"][0];
    assert_eq!(m["Type"], "bind");
    assert_eq!(m["Propagation"], "rprivate");
    assert_eq!(m["Mode"], "rprivate");
    assert!(m.get("Name").is_none() || m["Name"].is_null());
    d.docker_ok(&["start", "-a", "priv"]);
    // rshared needs a shared mount under the source, as in Docker.
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{hs}:/h:rshared"),
        "busybox",
        "true",
    ]);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_is_shared = info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/") && l.contains("shared:"));
    if !host_is_shared {
        assert!(
            stderr(&o).contains("is not a shared mount"),
            "{}",
            stderr(&o)
        );
    }
    // Where the host allows it (a shared mount of our own), it runs and
    // the container's mount is a peer of the host's.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let st = Command::new("mount")
        .args(["--bind", &hs, &hs])
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = Unmount(host.clone());
    let st = Command::new("mount")
        .args(["--make-shared", &hs])
        .status()
        .unwrap();
    assert!(st.success());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{hs}:/h:rshared"),
        "busybox",
        "sh",
        "-c",
        "grep ' /h ' /proc/self/mountinfo",
    ]);
    assert!(out.contains("shared:"), "{out}");
    // rslave on the same shared mount: the container's mount receives the
    // host's mounts (`master:`) and sends none back.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{hs}:/h:rslave"),
        "busybox",
        "sh",
        "-c",
        "grep ' /h ' /proc/self/mountinfo",
    ]);
    assert!(out.contains("master:"), "{out}");
}

#[test]
fn tmpfs_mounts_enforce_their_size() {
    let d = daemon();
    let out = d.docker_ok(&[
        "run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "sh", "-c",
        "dd if=/dev/zero of=/t/big bs=1k count=2048 2>&1; echo rc=$?; grep ' /t ' /proc/self/mountinfo",
    ]);
    assert!(
        out.contains("No space left on device") && out.contains("rc=1"),
        "{out}"
    );
    assert!(out.contains("size=1024k"), "{out}");
    assert!(
        out.contains("noexec") && out.contains("nosuid") && out.contains("nodev"),
        "{out}"
    );
    d.docker_ok(&[
        "create",
        "--name",
        "tm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1048576,tmpfs-mode=1770",
        "busybox",
        "sh",
        "-c",
        "stat -c %a /t; dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null; echo rc=$?",
    ]);
    let m = &d.inspect_json("tm")["Mounts"][0];
    assert_eq!(m["Type"], "tmpfs");
    assert_eq!(m["Destination"], "/t");
    let out = d.docker_ok(&["start", "-a", "tm"]);
    assert_eq!(out, "1770\nrc=1\n");
}
