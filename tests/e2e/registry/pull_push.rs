//! Push, pull and build against a real registry and fakes: tags, digests,
//! shared layers, OCI indexes, wrong digests, skopeo and the berth CLI.

use super::*;

#[test]
fn push_rmi_pull_by_tag_and_digest_then_run() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let name = format!("{}/e2e/multi", reg.host());
    let tag = format!("{name}:1");
    let id = load_multi(&d, &tag);

    let out = d.docker_ok(&["push", &tag]);
    assert!(
        out.contains(&format!("The push refers to repository [{name}]")),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed").count(), 5, "{out}");
    let digest = digest_from_push(&out);
    assert!(
        out.contains(&format!("1: digest: {digest} size: ")),
        "{out}"
    );
    // Again: every layer is known to be there.
    let out = d.docker_ok(&["push", &tag]);
    assert_eq!(out.matches(": Layer already exists").count(), 5, "{out}");
    assert_eq!(digest_from_push(&out), digest);

    // Gone locally, back by tag: same image.
    d.docker_ok(&["rmi", &tag]);
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    let out = d.docker_ok(&["pull", &tag]);
    assert!(out.contains("1: Pulling from e2e/multi"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 5, "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {tag}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&tag), "{out}");
    let v = d.image_inspect_json(&tag);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoDigests"], json!([format!("{name}@{digest}")]));
    let out = d.docker_ok(&["pull", &tag]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {tag}")),
        "{out}"
    );
    assert!(!out.contains("Pull complete"), "{out}");

    // The raw stream: Docker's per-layer statuses, in Docker's order.
    d.docker_ok(&["rmi", &tag]);
    let (st, lines) = api_pull(&d, &name, "1", "");
    assert_eq!(st, 200);
    assert!(
        lines.iter().all(|l| l.get("errorDetail").is_none()),
        "{lines:?}"
    );
    assert_eq!(
        lines[0],
        json!({"status": "Pulling from e2e/multi", "id": "1"})
    );
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| l["status"] == "Pulling fs layer")
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5, "{lines:?}");
    let waiting = lines.iter().filter(|l| l["status"] == "Waiting").count();
    assert_eq!(waiting, 2, "three downloads at a time: {lines:?}");
    for id in &ids {
        assert_eq!(id.len(), 12);
        let mut seq = statuses_of(&lines, id);
        seq.retain(|s| s != "Waiting");
        assert_eq!(
            seq,
            vec![
                "Pulling fs layer",
                "Downloading",
                "Verifying Checksum",
                "Download complete",
                "Extracting",
                "Pull complete"
            ],
            "{id}: {lines:?}"
        );
        let dl = lines
            .iter()
            .find(|l| l["id"] == id.as_str() && l["status"] == "Downloading")
            .unwrap();
        assert!(dl["progressDetail"]["total"].as_i64().unwrap() > 0, "{dl}");
        assert!(dl["progress"].as_str().unwrap().contains('['), "{dl}");
    }
    let n = lines.len();
    assert_eq!(lines[n - 2], json!({"status": format!("Digest: {digest}")}));
    assert_eq!(
        lines[n - 1],
        json!({"status": format!("Status: Downloaded newer image for {tag}")})
    );

    // By digest: same image, RepoDigests set.
    d.docker_ok(&["rmi", &tag]);
    let by_digest = format!("{name}@{digest}");
    let out = d.docker_ok(&["pull", &by_digest]);
    assert!(
        out.contains(&format!("{digest}: Pulling from e2e/multi")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {by_digest}")),
        "{out}"
    );
    let v = d.image_inspect_json(&by_digest);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoDigests"], json!([by_digest]));
    d.docker_ok(&["rmi", &by_digest]);

    // docker run of a missing image pulls it (the CLI's 404 → pull → retry).
    let o = d.docker(&["run", "--rm", &tag, "cat", "/hello.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the registry\n");
    assert!(
        stderr(&o).contains(&format!("Unable to find image '{tag}' locally")),
        "{}",
        stderr(&o)
    );
    // berth run does the same.
    d.docker_ok(&["rmi", &tag]);
    let o = d.berth(&["run", "--rm", &tag, "cat", "/etc/motd"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "motd\n");
    assert!(stderr(&o).contains("Pull complete"), "{}", stderr(&o));
}

#[test]
fn shared_layers_are_skipped_and_mounted() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let a = format!("{}/e2e/a:1", reg.host());
    let b = format!("{}/e2e/b:1", reg.host());
    let base = busybox_tar();
    let (ta, _) = fixtures::docker_archive(
        &[base.clone(), fixtures::layer_tar(&[Entry::File("a", b"a")])],
        &[&a],
        json!({}),
    );
    let (tb, _) = fixtures::docker_archive(
        &[base.clone(), fixtures::layer_tar(&[Entry::File("b", b"b")])],
        &[&b],
        json!({}),
    );
    let dir = scratch();
    for (n, t) in [("a.tar", &ta), ("b.tar", &tb)] {
        let p = fixtures::write_file(dir.path(), n, t);
        d.docker_ok(&["load", "-i", &p.display().to_string()]);
    }
    d.docker_ok(&["push", &a]);
    // The shared layer goes across repositories without an upload.
    let out = d.docker_ok(&["push", &b]);
    assert!(out.contains(": Mounted from e2e/a"), "{out}");
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    d.docker_ok(&["rmi", &a, &b]);
    d.docker_ok(&["pull", &a]);
    let out = d.docker_ok(&["pull", &b]);
    assert_eq!(out.matches(": Already exists").count(), 1, "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 1, "{out}");
    // Both run on the shared busybox layer.
    let o = d.docker(&["run", "--rm", &b, "cat", "/b"]);
    assert_eq!(stdout(&o), "b", "{}", stderr(&o));
}

/// A Dockerfile whose FROM names an image only the registry has: the
/// classic builder pulls it, with the pull's progress in the build output.
#[test]
fn build_pulls_a_missing_from_image() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let base = format!("{}/e2e/base:1", reg.host());
    let (t, _) = fixtures::docker_archive(
        &[
            busybox_tar(),
            fixtures::layer_tar(&[Entry::File("base.txt", b"base\n")]),
        ],
        &[&base],
        json!({"Cmd": ["sh"]}),
    );
    let dir = scratch();
    let p = fixtures::write_file(dir.path(), "base.tar", &t);
    d.docker_ok(&["load", "-i", &p.display().to_string()]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["rmi", &base]);

    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN cat /base.txt > /copied.txt\n"),
    )
    .unwrap();
    let o = Command::new("docker")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "from-registry", &ctx.display().to_string()])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("1: Pulling from e2e/base"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 2, "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {base}")),
        "{out}"
    );
    let o = d.docker(&["run", "--rm", "from-registry", "cat", "/copied.txt"]);
    assert_eq!(stdout(&o), "base\n", "{}", stderr(&o));
    // The base image is now local, as after a docker pull.
    assert!(d.docker(&["image", "inspect", &base]).status.success());
}

#[test]
fn oci_index_picks_the_platform_and_reads_gzip_zstd_and_plain_layers() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let repo = "e2e/multiarch";
    let base = busybox_tar();
    let plat = |arch: &str| fixtures::layer_tar(&[Entry::File("platform.txt", arch.as_bytes())]);
    let zst = fixtures::layer_tar(&[Entry::File("zstd.txt", b"zstd layer\n")]);
    let amd = plat("amd64");
    let arm = plat("arm64");
    let (m_amd, id_amd) = push_oci_image(
        reg.port,
        repo,
        "amd64",
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&base),
                base.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                zstd_of(&zst),
                zst.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                amd.clone(),
                amd.clone(),
            ),
        ],
    );
    let (m_arm, id_arm) = push_oci_image(
        reg.port,
        repo,
        "arm64",
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&base),
                base.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                arm.clone(),
                arm.clone(),
            ),
        ],
    );
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let d_amd = put_manifest(reg.port, repo, &digest_of(&m_amd), mt, &m_amd);
    let d_arm = put_manifest(reg.port, repo, &digest_of(&m_arm), mt, &m_arm);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt, "digest": d_arm, "size": m_arm.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": mt, "digest": d_amd, "size": m_amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let index_digest = put_manifest(
        reg.port,
        repo,
        "1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let tag = format!("{}/{repo}:1", reg.host());

    // The host's platform by default.
    let out = d.docker_ok(&["pull", &tag]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let v = d.image_inspect_json(&tag);
    assert_eq!(v["Id"], id_amd.as_str());
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(
        v["RepoDigests"],
        json!([format!("{}/{repo}@{index_digest}", reg.host())])
    );
    let o = d.docker(&["run", "--rm", &tag, "cat", "/platform.txt", "/zstd.txt"]);
    assert_eq!(stdout(&o), "amd64zstd layer\n", "{}", stderr(&o));

    // --platform picks the other one; the shared base layer is reused.
    let out = d.docker_ok(&["pull", "--platform", "linux/arm64", &tag]);
    assert!(out.contains("Already exists"), "{out}");
    let v = d.image_inspect_json(&tag);
    assert_eq!(v["Id"], id_arm.as_str());
    assert_eq!(v["Architecture"], "arm64");
    // berth's CLI too, back to amd64.
    let o = d.berth(&["pull", "--platform", "linux/amd64", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.image_inspect_json(&tag)["Id"], id_amd.as_str());
    // A platform the index lacks.
    let o = d.docker(&["pull", "--platform", "linux/s390x", &tag]);
    assert!(!o.status.success());
    assert!(
        format!("{}{}", stdout(&o), stderr(&o))
            .contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_nothing_is_stored() {
    let img = Arc::new(fake_image(&[("f.txt", &vec![b'x'; 4000])], true));
    let i2 = img.clone();
    let fake = Fake::start(Arc::new(move |r: &FakeReq| serve_image(&i2, "bad/img", r)));
    let d = Daemon::start();
    let (st, lines) = api_pull(
        &d,
        &format!("127.0.0.1:{}/bad/img", fake.port),
        "latest",
        "",
    );
    assert_eq!(st, 200, "{lines:?}");
    let last = lines.last().unwrap();
    let msg = last["errorDetail"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("filesystem layer verification failed for digest"),
        "{lines:?}"
    );
    assert_eq!(last["error"].as_str(), Some(msg));
    let o = d.docker(&["pull", &format!("127.0.0.1:{}/bad/img", fake.port)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("verification failed"), "{}", stderr(&o));
    // Nothing half-stored.
    assert!(d.docker_ok(&["images", "-qa"]).trim().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count_entries(&d.data_root.join("content/sha256")), 0);
    assert_eq!(count_entries(&d.data_root.join("layers")), 0);
    assert_eq!(count_entries(&d.data_root.join("content/tmp")), 0);
    let _ = (&img.config, &img.config_digest);
}

#[test]
fn skopeo_reads_what_berth_pushes_and_berth_pulls_what_skopeo_pushes() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let tag = format!("{}/interop/mine:1", reg.host());
    load_multi(&d, &tag);
    let digest = digest_from_push(&d.docker_ok(&["push", &tag]));
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{tag}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 5);
    assert_eq!(v["Architecture"], "amd64");
    // skopeo copy verifies every blob it reads back.
    let dir = scratch();
    let o = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &format!("docker://{tag}")])
        .arg(format!("oci:{}:x", dir.path().join("oci").display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // The other way round.
    let (tar, id) = fixtures::docker_archive(
        &[
            busybox_tar(),
            fixtures::layer_tar(&[Entry::File("s.txt", b"from skopeo\n")]),
        ],
        &["skopeo/src:1"],
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}),
    );
    let p = fixtures::write_file(dir.path(), "src.tar", &tar);
    let theirs = format!("{}/interop/theirs:1", reg.host());
    let o = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", p.display()))
        .arg(format!("docker://{theirs}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.docker_ok(&["pull", &theirs]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(d.image_inspect_json(&theirs)["Id"], id.as_str());
    let o = d.docker(&["run", "--rm", &theirs, "cat", "/s.txt"]);
    assert_eq!(stdout(&o), "from skopeo\n", "{}", stderr(&o));
}

#[test]
fn berth_cli_pull_and_push() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let tag = format!("{}/cli/bb:1", reg.host());
    fixtures::import_busybox(&d, &tag);
    let o = d.berth(&["push", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Pushed") && out.contains("1: digest: sha256:"),
        "{out}"
    );
    d.docker_ok(&["rmi", &tag]);
    let o = d.berth(&["pull", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // Off a terminal: docker's plain lines, no progress bars.
    assert!(out.starts_with("1: Pulling from cli/bb\n"), "{out}");
    assert!(
        out.contains(": Pulling fs layer\n") && out.contains(": Pull complete\n"),
        "{out}"
    );
    assert!(!out.contains("Downloading"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {tag}\n{tag}\n"
        )),
        "{out}"
    );
    // -a pulls every tag.
    d.docker_ok(&["tag", &tag, &format!("{}/cli/bb:2", reg.host())]);
    d.docker_ok(&["push", &format!("{}/cli/bb:2", reg.host())]);
    d.docker_ok(&["rmi", "-f", &tag]);
    let o = d.berth(&["pull", "-a", &format!("{}/cli/bb", reg.host())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("1: Pulling from cli/bb") && out.contains("2: Pulling from cli/bb"),
        "{out}"
    );
    let tags = d.docker_ok(&[
        "images",
        "--format",
        "{{.Tag}}",
        &format!("{}/cli/bb", reg.host()),
    ]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "2"]);
    // Errors as docker prints them.
    let o = d.berth(&["pull", &format!("{}/cli/nope:1", reg.host())]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "Error response from daemon: manifest for {}/cli/nope:1 not found: manifest unknown",
            reg.host()
        )),
        "{}",
        stderr(&o)
    );
}
