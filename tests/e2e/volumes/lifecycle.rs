//! Named and anonymous volumes: lifetime, create and list, driver options,
//! copy-up, volumes-from, removal and prune, df and events.

use super::*;

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
    let m = &d.inspect_json("reader")["Mounts"][0];
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
    let id = d.inspect_json("user")["Id"].as_str().unwrap().to_string();
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
    let anon = d.inspect_json("src")["Mounts"]
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
    let mounts = d.inspect_json("c1")["Mounts"].clone();
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
