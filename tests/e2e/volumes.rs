//! Issue 6: volumes and mounts, and `docker cp`, through the real docker
//! CLI (and raw API calls where the CLI cannot make the request).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::fixtures::{self};
use berth_tests::*;
use serde_json::Value;

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["inspect", name]);
    let v: Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

fn volume_names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn mountpoint(d: &Daemon, vol: &str) -> PathBuf {
    PathBuf::from(
        d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", vol])
            .trim(),
    )
}

/// busybox plus a layer with `/data` (owned 1000:1000, mode 0750) holding
/// `hello` and a symlink, and `VOLUME /data` in the config.
fn load_image_with_data(d: &Daemon, tag: &str) {
    let base = std::fs::read(fixtures::busybox_rootfs_tar()).expect("busybox tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    b.append_data(&mut h, "data/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_size(6);
    b.append_data(&mut h, "data/hello", &b"image\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "data/link", "hello").unwrap();
    let layer = b.into_inner().unwrap();
    let (tar, _) = fixtures::docker_archive(
        &[base, layer],
        &[tag],
        serde_json::json!({"config": {"Cmd": ["sh"], "Volumes": {"/data": {}}}}),
    );
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "img.tar", &tar);
    d.docker_ok(&["load", "-i", &f.display().to_string()]);
}

#[test]
fn a_named_volume_outlives_its_containers_and_is_refused_while_used() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "shared:/data",
        "busybox",
        "sh",
        "-c",
        "echo from-writer > /data/f",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--name",
        "reader",
        "-v",
        "shared:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out, "from-writer\n");
    // inspect shows the mount as Docker does.
    let m = &inspect(&d, "reader")["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], "shared");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Driver"], "local");
    assert_eq!(m["Mode"], "z");
    assert_eq!(m["RW"], true);
    assert_eq!(
        m["Source"].as_str().unwrap(),
        mountpoint(&d, "shared").display().to_string()
    );
    assert!(mountpoint(&d, "shared").ends_with("volumes/shared/_data"));
    // In use (even by stopped containers): 409 with the users.
    let o = d.docker(&["volume", "rm", "shared"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("remove shared: volume is in use - ["), "{err}");
    let (code, _, body) = d.raw("DELETE", "/volumes/shared", None);
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&body));
    // Both containers go; the volume and its data stay.
    d.docker_ok(&["rm", "writer", "reader"]);
    assert_eq!(volume_names(&d), ["shared"]);
    let out = d.docker_ok(&["run", "--rm", "-v", "shared:/d", "busybox", "cat", "/d/f"]);
    assert_eq!(out, "from-writer\n");
    d.docker_ok(&["volume", "rm", "shared"]);
    assert!(volume_names(&d).is_empty());
    let o = d.docker(&["volume", "rm", "shared"]);
    assert!(stderr(&o).contains("no such volume"), "{}", stderr(&o));
    d.docker_ok(&["volume", "rm", "-f", "shared"]);
}

#[test]
fn volume_create_inspect_ls_filters_and_names() {
    let d = daemon();
    let name = d.docker_ok(&["volume", "create", "--label", "team=a", "v1"]);
    assert_eq!(name.trim(), "v1");
    d.docker_ok(&["volume", "create", "v2"]);
    let v: Value = serde_json::from_str(&d.docker_ok(&["volume", "inspect", "v1"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "v1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert!(v["CreatedAt"].as_str().unwrap().ends_with('Z'));
    assert!(v["Mountpoint"]
        .as_str()
        .unwrap()
        .starts_with(&d.data_root.display().to_string()));
    assert!(mountpoint(&d, "v1").is_dir());
    // Filters.
    let f = |flt: &str| -> Vec<String> {
        d.docker_ok(&["volume", "ls", "-q", "-f", flt])
            .lines()
            .map(String::from)
            .collect()
    };
    assert_eq!(f("label=team=a"), ["v1"]);
    assert_eq!(f("name=2"), ["v2"]);
    d.docker_ok(&["create", "--name", "user", "-v", "v2:/x", "busybox", "true"]);
    assert_eq!(f("dangling=true"), ["v1"]);
    // `ps --filter volume=` by name or destination.
    let ps = |flt: &str| d.docker_ok(&["ps", "-a", "-q", "--no-trunc", "-f", flt]);
    let id = inspect(&d, "user")["Id"].as_str().unwrap().to_string();
    assert_eq!(ps("volume=v2").trim(), id);
    assert_eq!(ps("volume=/x").trim(), id);
    assert_eq!(ps("volume=v1").trim(), "");
    assert_eq!(f("dangling=false"), ["v2"]);
    assert_eq!(f("driver=local").len(), 2);
    // Docker's names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    let o = d.docker(&["volume", "create", "a"]);
    assert!(stderr(&o).contains("too short"), "{}", stderr(&o));
    let o = d.docker(&["volume", "create", "no/slash"]);
    assert!(
        stderr(&o).contains("includes invalid characters for a local volume name"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["volume", "create", "--opt", "bogus=1", "v3"]);
    assert!(!o.status.success());
    // Unnamed: a 64-hex name, marked anonymous.
    let anon = d.docker_ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    let l = d.docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", &anon]);
    assert!(l.contains("com.docker.volume.anonymous"), "{l}");
}

#[test]
fn driver_options_mount_a_tmpfs_or_a_bind_device() {
    let d = daemon();
    d.docker_ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m",
        "tv",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "busybox",
        "sh",
        "-c",
        "df -k /t | tail -1",
    ]);
    assert!(out.contains(" 2048 "), "{out}");
    // Unmounted again once nothing runs with it.
    let mp = mountpoint(&d, "tv").display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!info.contains(&mp), "{mp} still mounted");
    let dir = scratch();
    std::fs::write(dir.path().join("file"), "on the device\n").unwrap();
    d.docker_ok(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &format!("device={}", dir.path().display()),
        "bv",
    ]);
    let out = d.docker_ok(&["run", "--rm", "-v", "bv:/b", "busybox", "cat", "/b/file"]);
    assert_eq!(out, "on the device\n");
}

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
    let m = &inspect(&d, "priv")["Mounts"][0];
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
}

#[test]
fn copy_up_fills_a_new_volume_from_the_image_and_nocopy_does_not() {
    let d = daemon();
    load_image_with_data(&d, "withdata:1");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu:/data",
        "withdata:1",
        "cat",
        "/data/hello",
    ]);
    assert_eq!(out, "image\n");
    let mp = mountpoint(&d, "cu");
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata(&mp).unwrap();
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    let f = std::fs::metadata(mp.join("hello")).unwrap();
    assert_eq!((f.uid(), f.mode() & 0o777), (1000, 0o640));
    assert_eq!(
        std::fs::read_link(mp.join("link")).unwrap(),
        Path::new("hello")
    );
    // Once the volume has content, it is not overwritten.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu:/data",
        "withdata:1",
        "sh",
        "-c",
        "echo changed > /data/hello",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu:/data",
        "withdata:1",
        "cat",
        "/data/hello",
    ]);
    assert_eq!(out, "changed\n");
    // nocopy, both spellings: the volume stays empty.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "nc:/data:nocopy",
        "withdata:1",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(out, "");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=nc2,dst=/data,volume-nocopy",
        "withdata:1",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(out, "");
    // The image's VOLUME gets an anonymous volume, filled the same way,
    // and `--rm` removes it again.
    let before = volume_names(&d);
    let out = d.docker_ok(&["run", "--rm", "withdata:1", "cat", "/data/hello"]);
    assert_eq!(out, "image\n");
    assert_eq!(volume_names(&d), before);
    // A bind over the VOLUME is used as is.
    let dir = scratch();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/data", dir.path().display()),
        "withdata:1",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(out, "");
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
    let m = &inspect(&d, "tm")["Mounts"][0];
    assert_eq!(m["Type"], "tmpfs");
    assert_eq!(m["Destination"], "/t");
    let out = d.docker_ok(&["start", "-a", "tm"]);
    assert_eq!(out, "1770\nrc=1\n");
}

#[test]
fn volumes_from_sees_the_other_containers_volumes() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--name",
        "src",
        "-v",
        "named-vf:/n",
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "echo n > /n/f; echo a > /anon/f",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "busybox",
        "sh",
        "-c",
        "cat /n/f /anon/f; echo x > /n/g && echo wrote",
    ]);
    assert_eq!(out, "n\na\nwrote\n");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "cat /n/g; touch /n/h 2>&1; echo rc=$?",
    ]);
    assert!(
        out.starts_with("x\n") && out.contains("Read-only file system"),
        "{out}"
    );
    // A user of the other's anonymous volume keeps it alive across `rm -v`.
    d.docker_ok(&[
        "create",
        "--name",
        "user2",
        "--volumes-from",
        "src",
        "busybox",
        "true",
    ]);
    let anon = inspect(&d, "src")["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string();
    d.docker_ok(&["rm", "-v", "src"]);
    assert!(volume_names(&d).contains(&anon));
    d.docker_ok(&["rm", "-v", "user2"]);
    assert!(!volume_names(&d).contains(&anon));
    assert!(volume_names(&d).contains(&"named-vf".to_string()));
}

#[test]
fn rm_v_removes_only_anonymous_volumes_and_prune_keeps_named_ones() {
    let d = daemon();
    d.docker_ok(&[
        "create",
        "--name",
        "c1",
        "-v",
        "keepme:/k",
        "-v",
        "/anon1",
        "busybox",
        "true",
    ]);
    let mounts = inspect(&d, "c1")["Mounts"].clone();
    let anon = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/anon1")
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anon.len(), 64);
    let mut want = vec![anon.clone(), "keepme".to_string()];
    want.sort();
    assert_eq!(volume_names(&d), want);
    d.docker_ok(&["rm", "-v", "c1"]);
    assert_eq!(volume_names(&d), ["keepme"]);
    // Without -v, anonymous volumes stay (and become prunable).
    d.docker_ok(&["create", "--name", "c2", "-v", "/anon2", "busybox", "true"]);
    d.docker_ok(&["rm", "c2"]);
    assert_eq!(volume_names(&d).len(), 2);
    d.docker_ok(&["volume", "create", "named2"]);
    let out = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(out.contains("Deleted Volumes:"), "{out}");
    let mut want = vec!["keepme".to_string(), "named2".to_string()];
    want.sort();
    assert_eq!(volume_names(&d), want);
    // In use: never pruned, even with --all.
    d.docker_ok(&[
        "create",
        "--name",
        "c3",
        "-v",
        "keepme:/k",
        "busybox",
        "true",
    ]);
    d.docker_ok(&["volume", "prune", "--all", "-f"]);
    assert_eq!(volume_names(&d), ["keepme"]);
    // The API form the CLI sends for --all.
    d.docker_ok(&["rm", "c3"]);
    let (code, _, body) = d.raw(
        "POST",
        "/volumes/prune?filters=%7B%22all%22%3A%7B%22true%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["VolumesDeleted"], serde_json::json!(["keepme"]));
    assert!(volume_names(&d).is_empty());
}

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

#[test]
fn df_counts_volumes_and_events_follow_them() {
    let d = daemon();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    d.docker_ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "dfvol:/d",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/d/f bs=1k count=10 2>/dev/null",
    ]);
    let (code, _, body) = d.raw("GET", "/system/df", None);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let vol = v["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["Name"] == "dfvol")
        .unwrap()
        .clone();
    assert_eq!(vol["UsageData"]["RefCount"], 1);
    assert_eq!(vol["UsageData"]["Size"], 10240);
    let out = d.docker_ok(&["system", "df", "-v"]);
    assert!(out.contains("dfvol"), "{out}");
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "dfvol"]);
    // `--until 0s` is taken in whole seconds by the CLI.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = d.docker_ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        "0s",
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "create dfvol",
            "mount dfvol",
            "unmount dfvol",
            "destroy dfvol"
        ],
        "{out}"
    );
}

#[test]
fn the_berth_cli_manages_volumes_and_copies() {
    let d = daemon();
    let ok = |args: &[&str]| -> String {
        let o = d.berth(args);
        assert!(o.status.success(), "berth {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(ok(&["volume", "create", "--label", "k=v", "bv1"]), "bv1\n");
    ok(&["volume", "create", "bv2"]);
    let ls = ok(&["volume", "ls"]);
    assert_eq!(
        ls.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["DRIVER", "VOLUME", "NAME"]
    );
    assert_eq!(ok(&["volume", "ls", "-q", "-f", "label=k=v"]), "bv1\n");
    assert_eq!(
        ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            "bv1"
        ]),
        "bv1 local local\n"
    );
    let o = d.berth(&["volume", "inspect", "nope"]);
    assert!(!o.status.success());
    // Used by a container: refused, as docker.
    d.docker_ok(&[
        "run", "-d", "--name", "box", "-v", "bv1:/v", "busybox", "sleep", "600",
    ]);
    let o = d.berth(&["volume", "rm", "bv1"]);
    assert!(stderr(&o).contains("volume is in use"), "{}", stderr(&o));
    // cp both ways.
    let dir = scratch();
    let src = dir.path().join("in");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "A\n").unwrap();
    std::os::unix::fs::symlink("a", src.join("l")).unwrap();
    ok(&["cp", &src.display().to_string(), "box:/v/"]);
    assert_eq!(d.docker_ok(&["exec", "box", "cat", "/v/in/l"]), "A\n");
    ok(&["cp", &src.display().to_string(), "box:/tmp/renamed"]);
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/tmp/renamed/a"]),
        "A\n"
    );
    let back = dir.path().join("back");
    ok(&["cp", "box:/v/in", &back.display().to_string()]);
    assert_eq!(std::fs::read_to_string(back.join("a")).unwrap(), "A\n");
    assert_eq!(std::fs::read_link(back.join("l")).unwrap(), Path::new("a"));
    let o = d.berth(&["cp", "box:/v/in/a", "-"]);
    let mut ar = tar::Archive::new(o.stdout.as_slice());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a"]);
    // -L takes the link's target under the link's name.
    ok(&[
        "cp",
        "-L",
        "box:/v/in/l",
        &dir.path().join("deref").display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deref")).unwrap(),
        "A\n"
    );
    assert!(!std::fs::symlink_metadata(dir.path().join("deref"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A tar on stdin.
    let tarball = fixtures::layer_tar(&[fixtures::Entry::File("fromstdin", b"S\n")]);
    let mut c = d
        .berth_cmd()
        .args(["cp", "-", "box:/tmp"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(&tarball).unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/tmp/fromstdin"]),
        "S\n"
    );
    d.docker_ok(&["rm", "-f", "box"]);
    let out = ok(&["volume", "rm", "bv1"]);
    assert_eq!(out, "bv1\n");
    let out = ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted Volumes:\nbv2\n"), "{out}");
    assert_eq!(ok(&["volume", "ls", "-q"]), "");
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

/// `berth run` takes docker's storage flags: a named volume, a bind with
/// `--mount`, and a sized tmpfs.
#[test]
fn berth_run_mounts_volumes_binds_and_tmpfs() {
    let d = daemon();
    let host = scratch();
    std::fs::write(host.path().join("in.txt"), "from the host\n").unwrap();
    let mount = format!("type=bind,src={},dst=/h,readonly", host.path().display());
    let o = d.berth(&[
        "run",
        "--rm",
        "-v",
        "bdata:/data",
        "--mount",
        &mount,
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f && cat /h/in.txt && (touch /h/x 2>/dev/null || echo ro) \
         && df -k /scratch | tail -1 | awk '{print $2}'",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from the host\nro\n1024\n");
    let o = d.berth(&[
        "run",
        "--rm",
        "-v",
        "bdata:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
    assert!(!host.path().join("x").exists());
}
