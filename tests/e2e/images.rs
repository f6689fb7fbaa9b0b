//! Issue 3: images. Import, load, save, tag, rmi, history, prune and the
//! layer store, through the real docker CLI, bollard, skopeo and raw HTTP.

use std::path::Path;
use std::process::Command;

use berth_tests::fixtures::{self, Entry};
use berth_tests::host::count_entries;
use berth_tests::*;
use serde_json::Value;

/// docker's `units.HumanSizeWithPrecision(n, 3)`.
fn human_size(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1000.0 && i < units.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    let digits = if x == 0.0 {
        1
    } else {
        x.abs().log10().floor() as i32 + 1
    };
    let decimals = (3 - digits).max(0) as usize;
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// Nothing of any image is left on disk.
fn assert_store_empty(d: &Daemon) {
    let blobs = d.data_root.join("content/sha256");
    let layers = d.data_root.join("layers");
    let links = d.data_root.join("l");
    assert_eq!(
        count_entries(&blobs),
        0,
        "blobs left: {:?}",
        std::fs::read_dir(&blobs).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert_eq!(count_entries(&layers), 0, "layer dirs left");
    assert_eq!(count_entries(&links), 0, "short links left");
    assert_eq!(
        count_entries(&d.data_root.join("content/tmp")),
        0,
        "partial blobs left"
    );
}

#[test]
fn import_lists_busybox_with_docker_size_and_inspect_shape() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let expected = fixtures::tree_size(&fixtures::busybox_rootfs_dir());

    let out = d.docker_ok(&["images"]);
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(head.contains(col), "{out}");
    }
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(row[0], "busybox", "{out}");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2], &id[7..19]);
    assert_eq!(*row.last().unwrap(), human_size(expected), "{out}");

    let v = d.image_inspect_json("busybox");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Size"], expected);
    assert!(v["Config"].is_object(), "{v}");
    assert_eq!(v["RootFS"]["Type"], "layers");
    let layers = v["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert!(layers[0].as_str().unwrap().starts_with("sha256:"));
    assert!(chrono_like(v["Created"].as_str().unwrap()), "{v}");
    assert_eq!(v["Comment"], "Imported from -");
    // The layer on disk is the root file system.
    let upper = v["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert!(Path::new(upper).join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(Path::new(upper).join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // Every name form finds it.
    for name in [
        "busybox:latest",
        "docker.io/library/busybox",
        &id,
        &id[7..],
        &id[7..19],
        &id[..19],
    ] {
        assert_eq!(d.image_inspect_json(name)["Id"], id.as_str(), "{name}");
    }
    // A miss is Docker's 404.
    let o = d.docker(&["image", "inspect", "nope"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("No such image: nope:latest"),
        "{}",
        stderr(&o)
    );
    // Untyped inspect falls through to images.
    let v: Value = serde_json::from_str(&d.docker_ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    // `info` counts it.
    assert_eq!(
        d.docker_ok(&["info", "--format", "{{.Images}}"]).trim(),
        "1"
    );
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && s.ends_with('Z')
}

#[test]
fn import_applies_changes_and_message() {
    let d = Daemon::start();
    let tar = fixtures::busybox_rootfs_tar().display().to_string();
    d.docker_ok(&[
        "import",
        "-c",
        r#"CMD ["sh"]"#,
        "-c",
        "ENV A=b",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL team=berth",
        "-c",
        "WORKDIR /srv",
        "-c",
        "USER nobody",
        "-m",
        "my message",
        &tar,
        "myimport:1",
    ]);
    let v = d.image_inspect_json("myimport:1");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(
        v["Config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(v["Config"]["Labels"]["team"], "berth");
    assert_eq!(v["Config"]["WorkingDir"], "/srv");
    assert_eq!(v["Config"]["User"], "nobody");
    assert_eq!(v["Comment"], "my message");
    let h = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}|{{.Size}}",
        "myimport:1",
    ]);
    assert!(h.starts_with("my message|"), "{h}");
    // A gzip-compressed root file system imports too, from stdin.
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(&tar)
        .output()
        .unwrap()
        .stdout;
    let mut c = d.docker_cmd();
    let out = c
        .args(["import", "-", "gz:latest"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut child = out;
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        d.image_inspect_json("gz")["RootFS"],
        d.image_inspect_json("myimport:1")["RootFS"],
        "same layer"
    );
    // An unknown instruction is refused, named in lower case as dockerd does.
    let o = d.docker(&["import", "-c", "RUN true", &tar, "bad:1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("run is not a valid change command"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn save_rmi_load_keeps_the_id_and_skopeo_reads_it() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&["tag", "busybox", "myrepo/bb:v1"]);
    let dir = scratch();
    let file = dir.path().join("bb.tar");
    let f = file.display().to_string();
    d.docker_ok(&["save", "-o", &f, "busybox:latest", "myrepo/bb:v1"]);
    // OCI layout and docker-archive in one tar.
    let names = Command::new("tar").arg("tf").arg(&file).output().unwrap();
    let names = stdout(&names);
    for want in [
        "oci-layout",
        "index.json",
        "manifest.json",
        "repositories",
        &format!("blobs/sha256/{}", &id[7..]),
    ] {
        assert!(
            names.lines().any(|l| l == want),
            "{want} missing from {names}"
        );
    }
    let out = d.docker_ok(&["rmi", "busybox", "myrepo/bb:v1"]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_store_empty(&d);
    let out = d.docker_ok(&["load", "-i", &f]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert!(out.contains("Loaded image: myrepo/bb:v1"), "{out}");
    assert_eq!(d.image_inspect_json("busybox")["Id"], id.as_str());
    assert_eq!(d.image_inspect_json("myrepo/bb:v1")["Id"], id.as_str());

    // skopeo reads the archive both ways.
    let o = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{f}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let oci = dir.path().join("oci");
    let o = Command::new("skopeo")
        .args([
            "copy",
            &format!("docker-archive:{f}:busybox:latest"),
            &format!("oci:{}:bb", oci.display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(oci.join("index.json").is_file());
    // The archive is itself an OCI layout.
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    assert!(Command::new("tar")
        .arg("xf")
        .arg(&file)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap()
        .success());
    let o = Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:latest", x.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // `docker save` to stdout, then load it gzip-compressed.
    let plain = dir.path().join("stdout.tar");
    let o = d
        .docker_cmd()
        .args(["save", "myrepo/bb:v1"])
        .stdout(std::fs::File::create(&plain).unwrap())
        .status()
        .unwrap();
    assert!(o.success());
    assert!(Command::new("gzip").arg(&plain).status().unwrap().success());
    let gzfile = dir.path().join("stdout.tar.gz");
    d.docker_ok(&["rmi", "-f", &id]);
    assert_store_empty(&d);
    let out = d.docker_ok(&["load", "-i", &gzfile.display().to_string()]);
    assert!(out.contains("Loaded image: myrepo/bb:v1"), "{out}");
    assert_eq!(d.image_inspect_json("myrepo/bb:v1")["Id"], id.as_str());
}

#[test]
fn an_oci_layout_made_by_skopeo_loads() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    let diff = d.image_inspect_json(&id)["RootFS"]["Layers"].clone();
    let dir = scratch();
    let f = dir.path().join("bb.tar").display().to_string();
    d.docker_ok(&["save", "-o", &f, "busybox"]);
    d.docker_ok(&["rmi", "busybox"]);
    for (compress, name) in [(false, "plain"), (true, "gzip")] {
        let oci = dir.path().join(name);
        let mut args = vec!["copy".to_string()];
        if compress {
            args.push("--dest-compress".into());
        }
        args.push(format!("docker-archive:{f}"));
        args.push(format!("oci:{}:{name}", oci.display()));
        let o = Command::new("skopeo").args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let tar = dir.path().join(format!("{name}.tar"));
        assert!(Command::new("tar")
            .arg("-C")
            .arg(&oci)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success());
        let out = d.docker_ok(&["load", "-i", &tar.display().to_string()]);
        // skopeo's ref name is a bare tag: no repository, so no tag here.
        assert!(out.contains("Loaded image ID: sha256:"), "{out}");
        let loaded = out.trim().rsplit(' ').next().unwrap().to_string();
        let v = d.image_inspect_json(&loaded);
        assert_eq!(v["RootFS"]["Layers"], diff, "{name}: same diff IDs");
        let upper = v["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(Path::new(&upper).join("bin/busybox").is_file());
        d.docker_ok(&["rmi", &loaded]);
    }
    assert_store_empty(&d);
}

#[test]
fn whiteouts_and_opaque_dirs_merge_as_in_docker() {
    let d = Daemon::start();
    let lower = fixtures::layer_tar(&[
        Entry::Dir("a/"),
        Entry::File("a/x", b"x"),
        Entry::File("a/y", b"y"),
        Entry::File("f", b"gone soon"),
        Entry::Dir("d/"),
        Entry::File("d/old", b"old"),
        Entry::Dir("d/sub/"),
        Entry::File("d/sub/deep", b"deep"),
    ]);
    let upper = fixtures::layer_tar(&[
        Entry::File(".wh.f", b""),
        Entry::Dir("a/"),
        Entry::File("a/z", b"z"),
        Entry::File("a/.wh.y", b""),
        Entry::Dir("d/"),
        Entry::File("d/.wh..wh..opq", b""),
        Entry::File("d/new", b"new"),
    ]);
    let (tar, id) = fixtures::docker_archive(&[lower, upper], &["wh:test"], serde_json::json!({}));
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "wh.tar", &tar);
    let out = d.docker_ok(&["load", "-i", &f.display().to_string()]);
    assert!(out.contains("Loaded image: wh:test"), "{out}");
    let v = d.image_inspect_json("wh:test");
    assert_eq!(v["Id"], id.as_str());
    let data = &v["GraphDriver"]["Data"];
    let upper_dir = data["UpperDir"].as_str().unwrap();
    let lower_dir = data["LowerDir"].as_str().unwrap();
    // The layer directories hold overlay whiteouts, not .wh. files.
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::symlink_metadata(Path::new(upper_dir).join("f")).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0);
        assert!(!Path::new(upper_dir).join(".wh.f").exists());
    }
    let merged = dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={upper_dir}:{lower_dir}"))
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success(), "mount overlay");
    let ls = |p: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(merged.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let root = ls("");
    let a = ls("a");
    let dd = ls("d");
    let new = std::fs::read(merged.join("d/new")).unwrap();
    Command::new("umount").arg(&merged).status().unwrap();
    assert_eq!(root, vec!["a", "d"], "f is deleted");
    assert_eq!(a, vec!["x", "z"], "y is deleted, z is added");
    assert_eq!(dd, vec!["new"], "d is opaque: old and sub are hidden");
    assert_eq!(new, b"new");
    // Saving turns the whiteouts back into .wh. entries: the same image
    // round-trips to the same ID.
    let out = dir.path().join("out.tar").display().to_string();
    d.docker_ok(&["save", "-o", &out, "wh:test"]);
    d.docker_ok(&["rmi", "wh:test"]);
    d.docker_ok(&["load", "-i", &out]);
    assert_eq!(d.image_inspect_json("wh:test")["Id"], id.as_str());
}

fn import_raw(d: &Daemon, tar: &[u8]) -> (u16, String) {
    let (status, head, body) = d.raw(
        "POST",
        "/v1.50/images/create?fromSrc=-&repo=evil",
        Some(tar),
    );
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn tar_slip_archives_are_refused_and_write_nothing_outside() {
    let d = Daemon::start();
    let pid = std::process::id();
    let outside = scratch();
    let abs = format!("/tmp/berth-slip-abs-{pid}");
    let linkdir = outside.path().display().to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            fixtures::layer_tar(&[Entry::RawFile("../x", b"evil")]),
            "../x",
        ),
        (
            fixtures::layer_tar(&[Entry::RawFile("a/../../x", b"evil")]),
            "a/../../x",
        ),
        (
            fixtures::layer_tar(&[Entry::RawFile(&abs, b"evil")]),
            abs.as_str(),
        ),
        (
            fixtures::layer_tar(&[
                Entry::Symlink("link", &linkdir),
                Entry::File("link/pwned", b"evil"),
            ]),
            "link/pwned",
        ),
        (
            fixtures::layer_tar(&[Entry::Symlink("up", ".."), Entry::File("up/x", b"evil")]),
            "up/x",
        ),
    ];
    for (tar, entry) in &cases {
        let (status, body) = import_raw(&d, tar);
        assert_eq!(status, 400, "{entry}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(entry), "the error names the entry: {msg}");
    }
    assert!(!Path::new(&abs).exists());
    assert_eq!(
        count_entries(outside.path()),
        0,
        "nothing written through the symlink"
    );
    assert!(!d.data_root.join("x").exists() && !d.data_root.parent().unwrap().join("x").exists());
    assert_store_empty(&d);
    // Through the CLI too.
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "evil.tar", &cases[0].0);
    let o = d.docker(&["import", &f.display().to_string(), "evil"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Error response from daemon"),
        "{}",
        stderr(&o)
    );
    // And inside a load: errorDetail, non-zero exit.
    let (tar, _) =
        fixtures::docker_archive(&[cases[3].0.clone()], &["evil:1"], serde_json::json!({}));
    let f = fixtures::write_file(dir.path(), "evil-load.tar", &tar);
    let o = d.docker(&["load", "-i", &f.display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert_eq!(count_entries(outside.path()), 0);
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_store_empty(&d);
}

#[test]
fn a_blob_whose_digest_does_not_match_stores_nothing() {
    let d = Daemon::start();
    let dir = scratch();
    // A small layer (read in memory) and a large one (streamed to disk).
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for content in [b"small".to_vec(), big] {
        let layer = fixtures::layer_tar(&[Entry::File("data", &content)]);
        let (tar, _) = fixtures::docker_archive(
            std::slice::from_ref(&layer),
            &["bad:1"],
            serde_json::json!({}),
        );
        // Corrupt the layer bytes inside the archive (same length).
        let mut tar = tar;
        let pos = tar
            .windows(5.min(content.len()))
            .position(|w| w == &content[..5.min(content.len())])
            .unwrap();
        tar[pos] ^= 0xff;
        let f = fixtures::write_file(dir.path(), "bad.tar", &tar);
        let o = d.docker(&["load", "-i", &f.display().to_string()]);
        assert!(!o.status.success(), "{}", stdout(&o));
        assert!(stderr(&o).contains("digest mismatch"), "{}", stderr(&o));
        assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
        assert_store_empty(&d);
    }
    // An archive cut off inside its large (streamed) layer.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let layer = fixtures::layer_tar(&[Entry::File("data", &big)]);
    let (tar, _) = fixtures::docker_archive(&[layer], &["cut:1"], serde_json::json!({}));
    let pos = tar.windows(8).position(|w| w == &big[..8]).unwrap();
    let f = fixtures::write_file(dir.path(), "cut.tar", &tar[..pos + 1_500_000]);
    let o = d.docker(&["load", "-i", &f.display().to_string()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("invalid archive"), "{}", stderr(&o));
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_store_empty(&d);
    // A layer that does not match the config's diff ID, under a legacy name.
    let layer = fixtures::layer_tar(&[Entry::File("data", b"real")]);
    let other = fixtures::layer_tar(&[Entry::File("data", b"claimed")]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", fixtures::sha256_hex(&other))]},
    }))
    .unwrap();
    let cid = fixtures::sha256_hex(&config);
    let tar = fixtures::archive_of(&[
        ("abc/layer.tar".into(), layer),
        (format!("{cid}.json"), config),
        (
            "manifest.json".into(),
            serde_json::to_vec(&serde_json::json!([{"Config": format!("{cid}.json"), "RepoTags": ["bad:2"], "Layers": ["abc/layer.tar"]}])).unwrap(),
        ),
    ]);
    let f = fixtures::write_file(dir.path(), "bad2.tar", &tar);
    let o = d.docker(&["load", "-i", &f.display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("diff ID"), "{}", stderr(&o));
    assert_store_empty(&d);
    // Not an image archive at all.
    let f = fixtures::write_file(
        dir.path(),
        "junk.tar",
        &fixtures::archive_of(&[("hello".into(), b"hi".to_vec())]),
    );
    let o = d.docker(&["load", "-i", &f.display().to_string()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("manifest.json"), "{}", stderr(&o));
}

#[test]
fn rmi_untags_shared_images_and_deletes_the_last_reference() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&["tag", "busybox", "docker.io/myrepo/bb:v1"]);
    let out = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    assert_eq!(rows, vec!["busybox:latest", "myrepo/bb:v1"]);
    // Removing one of two names only untags.
    let out = d.docker_ok(&["rmi", "myrepo/bb:v1"]);
    assert_eq!(out, "Untagged: myrepo/bb:v1\n");
    assert_eq!(d.image_inspect_json("busybox")["Id"], id.as_str());
    // By ID with two tags: Docker's conflict, unless forced.
    d.docker_ok(&["tag", "busybox", "other:2"]);
    let o = d.docker(&["rmi", &id[7..19]]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", &id[7..19])),
        "{}",
        stderr(&o)
    );
    let (status, _, _) = d.raw("DELETE", &format!("/images/{}", &id[7..19]), None);
    assert_eq!(status, 409);
    let out = d.docker_ok(&["rmi", "-f", &id[7..19]]);
    assert!(
        out.contains("Untagged: busybox:latest") && out.contains("Untagged: other:2"),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_store_empty(&d);
    // Missing images are 404s.
    let o = d.docker(&["rmi", "busybox"]);
    assert!(
        stderr(&o).contains("No such image: busybox:latest"),
        "{}",
        stderr(&o)
    );
    // Names with registries and ports sit raw in the path.
    fixtures::import_busybox(&d, "127.0.0.1:5000/a/bb:1");
    assert_eq!(
        d.image_inspect_json("127.0.0.1:5000/a/bb:1")["RepoTags"][0],
        "127.0.0.1:5000/a/bb:1"
    );
    d.docker_ok(&["rmi", "127.0.0.1:5000/a/bb:1"]);
    assert_store_empty(&d);
}

#[test]
fn prune_removes_only_dangling_images() {
    let d = Daemon::start();
    let keep = fixtures::import_busybox(&d, "busybox:latest");
    let layer = fixtures::layer_tar(&[Entry::File("only", b"dangling")]);
    let (tar, dangling) = fixtures::docker_archive(&[layer], &[], serde_json::json!({}));
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "d.tar", &tar);
    let out = d.docker_ok(&["load", "-i", &f.display().to_string()]);
    assert_eq!(out.trim(), format!("Loaded image ID: {dangling}"));
    let listed = d.docker_ok(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.ID}} {{.Repository}} {{.Tag}}",
    ]);
    assert_eq!(listed.trim(), format!("{} <none> <none>", &dangling[7..19]));
    let out = d.docker_ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(out.contains("Total reclaimed space: 8B"), "{out}");
    let left = d.docker_ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(left.trim(), keep);
    // Only busybox's layer blob is left.
    assert_eq!(count_entries(&d.data_root.join("content/sha256")), 1);
    assert_eq!(count_entries(&d.data_root.join("layers")), 1);
    // `-a` removes unused tagged images too.
    d.docker_ok(&["image", "prune", "-af"]);
    assert_store_empty(&d);
}

#[test]
fn images_flags_filters_and_formats() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&["tag", "busybox", "myrepo/bb:v1"]);
    d.docker_ok(&[
        "import",
        "-c",
        "LABEL kind=test",
        &fixtures::busybox_rootfs_tar().display().to_string(),
        "labeled:1",
    ]);
    let q = d.docker_ok(&["images", "-q"]);
    assert_eq!(q.lines().count(), 3, "{q}");
    let nt = d.docker_ok(&["images", "--no-trunc", "-q", "busybox"]);
    assert_eq!(nt.trim(), id);
    let r = d.docker_ok(&[
        "images",
        "--filter",
        "reference=myrepo/*",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(r, "myrepo/bb:v1\n");
    let r = d.docker_ok(&[
        "images",
        "--filter",
        "label=kind=test",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(r, "labeled\n");
    let r = d.docker_ok(&["images", "myrepo/bb", "--format", "{{.Tag}}"]);
    assert_eq!(r, "v1\n");
    let r = d.docker_ok(&["images", "--digests", "busybox"]);
    assert!(r.lines().next().unwrap().contains("DIGEST"), "{r}");
    assert!(r.lines().nth(1).unwrap().contains("<none>"), "{r}");
    let o = d.docker(&["images", "--filter", "bogus=1"]);
    assert!(
        stderr(&o).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&o)
    );
    // history
    let h = d.docker_ok(&["history", "busybox"]);
    assert!(h.starts_with("IMAGE"), "{h}");
    assert!(h.lines().nth(1).unwrap().starts_with(&id[7..19]), "{h}");
    // system df counts the images and their layer.
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Images 2"), "{df}");
}

#[test]
fn image_events_are_published() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&["tag", "busybox", "x:1"]);
    let dir = scratch();
    let f = dir.path().join("s.tar").display().to_string();
    d.docker_ok(&["save", "-o", &f, "x:1"]);
    d.docker_ok(&["rmi", "x:1"]);
    d.docker_ok(&["rmi", "busybox"]);
    d.docker_ok(&["load", "-i", &f]);
    // `until` goes out in whole seconds: let this second end first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let actions: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        actions,
        vec!["import", "tag", "save", "untag", "untag", "delete", "load"],
        "{out}"
    );
    assert!(out.lines().all(|l| l.ends_with(&id)), "{out}");
}

#[test]
fn bollard_sees_the_same_images() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = d.bollard();
        let list = c
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, id);
        assert_eq!(list[0].repo_tags, vec!["busybox:latest".to_string()]);
        let i = c.inspect_image("busybox").await.unwrap();
        assert_eq!(i.id.as_deref(), Some(id.as_str()));
        assert_eq!(i.os.as_deref(), Some("linux"));
        c.tag_image(
            "busybox",
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some("docker.io/myrepo/bb".into()),
                tag: Some("v1".into()),
            }),
        )
        .await
        .unwrap();
        let h = c.image_history("myrepo/bb:v1").await.unwrap();
        assert_eq!(h[0].id, id);
        let del = c
            .remove_image(
                "myrepo/bb:v1",
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap();
        assert_eq!(del[0].untagged.as_deref(), Some("myrepo/bb:v1"));
        let err = c.inspect_image("myrepo/bb:v1").await.unwrap_err();
        assert!(err.to_string().contains("No such image"), "{err}");
    });
}

#[test]
fn search_and_pull_answer_clear_errors() {
    let d = Daemon::start();
    // A registry nobody listens on (loopback only: tests never reach out).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = d.docker(&["search", &format!("127.0.0.1:{port}/busybox")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid registry endpoint")
            && stderr(&o).contains("connection refused"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["pull", &format!("127.0.0.1:{port}/alpine:3.19")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("connection refused"), "{}", stderr(&o));
}

#[test]
fn images_survive_a_daemon_restart() {
    let mut d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&["tag", "busybox", "myrepo/bb:v1"]);
    d.restart().unwrap();
    let out = d.docker_ok(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    assert_eq!(
        rows.join("\n"),
        format!("{0} busybox:latest\n{0} myrepo/bb:v1", &id[7..19])
    );
    d.docker_ok(&["rmi", "-f", &id]);
    assert_store_empty(&d);
}

#[test]
fn the_berth_cli_prints_what_docker_prints() {
    let d = Daemon::start();
    let tar = fixtures::busybox_rootfs_tar().display().to_string();
    let o = d.berth(&["import", &tar, "busybox:latest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let imported = stdout(&o).trim().to_string();
    assert!(imported.starts_with("sha256:"), "{imported}");
    let ok = |args: &[&str]| -> String {
        let o = d.berth(args);
        assert!(o.status.success(), "berth {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(ok(&["rmi", "busybox"]).lines().count(), 3);
    // An image created long ago, so "CREATED" does not tick between runs.
    let layer = fixtures::layer_tar(&[
        Entry::Dir("bin/"),
        Entry::File("bin/busybox", b"not really"),
    ]);
    let (tar, id) = fixtures::docker_archive(
        &[layer],
        &["busybox:latest"],
        serde_json::json!({"config": {"Cmd": ["sh"], "Labels": {"a": "1", "b": "2"}}}),
    );
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "fixture.tar", &tar);
    assert_eq!(
        ok(&["load", "-i", &f.display().to_string()]),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(ok(&["tag", "busybox", "myrepo/bb:v1"]), "");
    for args in [
        &["images"][..],
        &["image", "ls", "-a"],
        &["images", "-q"],
        &["images", "--no-trunc"],
        &["images", "--digests"],
        &["images", "--format", "{{.Repository}}\t{{.Size}}"],
        &["images", "--format", "table {{.ID}}\t{{.Tag}}"],
        &["images", "--filter", "reference=myrepo/*"],
        &["images", "busybox"],
        &["history", "busybox"],
        &["history", "--no-trunc", "-q", "busybox"],
        &["image", "inspect", "busybox"],
        &["image", "inspect", "--format", "{{.Id}} {{.Os}}", "busybox"],
        &["inspect", "busybox"],
    ] {
        let theirs = d.docker_ok(args);
        let ours = ok(args);
        if args.contains(&"inspect") && !args.contains(&"--format") {
            // Same JSON; map keys may come in another order.
            let a: Value = serde_json::from_str(&ours).unwrap();
            let b: Value = serde_json::from_str(&theirs).unwrap();
            assert_eq!(a, b, "berth {args:?}");
            continue;
        }
        // docker orders the repositories of one image at random (a Go map).
        let sorted = |s: &str| {
            let mut l: Vec<String> = s.lines().map(str::to_string).collect();
            // A table's header (no lower-case letters) stays first.
            let header = l
                .first()
                .is_some_and(|h| !h.chars().any(|c| c.is_lowercase()));
            let from = usize::from(header).min(l.len());
            l[from..].sort();
            l
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "berth {args:?}");
    }
    let f = dir.path().join("s.tar").display().to_string();
    assert_eq!(ok(&["save", "-o", &f, "myrepo/bb:v1"]), "");
    assert_eq!(ok(&["rmi", "myrepo/bb:v1"]), "Untagged: myrepo/bb:v1\n");
    assert_eq!(ok(&["image", "rm", "busybox"]).lines().count(), 3);
    assert_eq!(ok(&["load", "-i", &f]), "Loaded image: myrepo/bb:v1\n");
    assert_eq!(ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n");
    assert_eq!(ok(&["images", "-q", "--no-trunc"]).trim(), id);
    let o = d.berth(&["rmi", "nope"]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: No such image: nope:latest"
    );
}

/// An image a container uses is not removed without `-f` (409, Docker's
/// message); with `-f` the tag goes and the container keeps its image.
#[test]
fn rmi_of_an_image_a_container_uses_is_a_conflict() {
    let d = Daemon::start();
    let id = fixtures::import_busybox(&d, "busybox:latest");
    let c = d.docker_ok(&["create", "--network", "none", "busybox", "true"]);
    let c = c.trim();
    let o = d.docker(&["rmi", "busybox"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}",
            &c[..12],
            &id[7..19]
        )),
        "{}",
        stderr(&o)
    );
    let (st, _, body) = d.raw("DELETE", &format!("/images/{}", &id[7..19]), None);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 409, "{body}");
    assert!(
        body.contains("image is being used by stopped container"),
        "{body}"
    );
    // Forced by ID: berth keeps an image while a container uses it.
    let o = d.docker(&["rmi", "-f", &id]);
    assert!(
        stderr(&o).contains("(cannot be forced) - image is being used by stopped container"),
        "{}",
        stderr(&o)
    );
    let out = d.docker_ok(&["rmi", "-f", "busybox"]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    // The container still starts: its layers stay while it exists.
    d.docker_ok(&["start", "-a", c]);
    d.docker_ok(&["rm", c]);
    d.docker_ok(&["rmi", &id]);
    assert!(d.docker_ok(&["images", "-aq"]).trim().is_empty());
}

/// `docker images --filter before=/since=` by creation time, and
/// `shared-size` counting the layers other images also use.
#[test]
fn images_filter_before_since_and_report_shared_size() {
    let d = Daemon::start();
    let base = fixtures::layer_tar(&[Entry::File("base.txt", &[7u8; 4096])]);
    let dir = scratch();
    for (i, (tag, created)) in [
        ("old:1", "2021-01-01T00:00:00Z"),
        ("mid:1", "2022-01-01T00:00:00Z"),
        ("new:1", "2023-01-01T00:00:00Z"),
    ]
    .iter()
    .enumerate()
    {
        let own = fixtures::layer_tar(&[Entry::File("own.txt", tag.as_bytes())]);
        let (t, _) = fixtures::docker_archive(
            &[base.clone(), own],
            &[tag],
            serde_json::json!({ "created": created }),
        );
        let p = fixtures::write_file(dir.path(), &format!("{i}.tar"), &t);
        d.docker_ok(&["load", "-q", "-i", &p.display().to_string()]);
    }
    let names = |filter: &str| {
        d.docker_ok(&["images", "--filter", filter, "--format", "{{.Repository}}"])
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("before=mid:1"), vec!["old"]);
    assert_eq!(names("since=mid:1"), vec!["new"]);
    assert_eq!(names("since=old:1"), vec!["new", "mid"]);
    // The API's SharedSize: the base layer is shared by all three.
    let (st, _, body) = d.raw("GET", "/images/json?shared-size=1", None);
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    for img in arr {
        let shared = img["SharedSize"].as_i64().unwrap();
        let size = img["Size"].as_i64().unwrap();
        assert!(shared >= 4096 && shared < size, "{img}");
    }
    let (_, _, body) = d.raw("GET", "/images/json", None);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v[0]["SharedSize"], -1);
}
