//! What the Dockerfile frontend takes from Compose besides the context:
//! the `# syntax=` directive and `BUILDKIT_SYNTAX`, the service's
//! `platform:`, and `additional_contexts:` (named contexts).

use super::*;

/// The host's platform as Go names it.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

fn build_one(d: &Daemon, dir: &Path, service: &str) -> (bool, String) {
    let o = compose(d, dir, &["--progress", "plain", "build", service], &[]);
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn syntax_directive_selects_the_built_in_frontend_or_is_refused() {
    let d = daemon();
    let tmp = scratch();
    let dir = tmp.path();
    let svc = |n: &str, extra: &str| {
        format!("  {n}:\n    build:\n      context: .\n      dockerfile: {n}.Dockerfile\n{extra}")
    };
    let yaml = format!(
        "services:\n{}{}{}{}",
        svc("official", ""),
        svc("other", ""),
        svc(
            "byarg",
            "      args:\n        BUILDKIT_SYNTAX: example/frontend:2\n"
        ),
        svc(
            "byargok",
            "      args:\n        BUILDKIT_SYNTAX: docker/dockerfile:1.7\n"
        ),
    );
    write_tree(
        dir,
        &[
            ("compose.yaml", &yaml),
            (
                "official.Dockerfile",
                "# syntax=docker/dockerfile:1\nFROM busybox\nRUN echo official-ran\n",
            ),
            (
                "other.Dockerfile",
                "# syntax=example/frontend:1\nFROM busybox\nRUN echo never-ran\n",
            ),
            ("byarg.Dockerfile", "FROM busybox\nRUN echo never-ran\n"),
            (
                "byargok.Dockerfile",
                "# syntax=example/ignored:1\nFROM busybox\nRUN echo byarg-ran\n",
            ),
        ],
    );
    let (ok, out) = build_one(&d, dir, "official");
    assert!(ok, "{out}");
    assert!(out.contains("official-ran"), "{out}");
    assert!(
        out.contains("resolve frontend docker/dockerfile:1")
            && out.contains("built-in Dockerfile frontend"),
        "{out}"
    );
    // BUILDKIT_SYNTAX (buildx's gateway.v0 request) wins over the directive.
    let (ok, out) = build_one(&d, dir, "byargok");
    assert!(ok, "{out}");
    assert!(out.contains("byarg-ran"), "{out}");
    assert!(
        out.contains("resolve frontend docker/dockerfile:1.7"),
        "{out}"
    );
    for (svc, image) in [
        ("other", "example/frontend:1"),
        ("byarg", "example/frontend:2"),
    ] {
        let (ok, out) = build_one(&d, dir, svc);
        assert!(!ok, "{svc}: {out}");
        let want = format!(
            "unsupported frontend \"{image}\": berthd runs only the built-in Dockerfile frontend"
        );
        assert!(out.contains(&want), "{svc}: {out}");
        // Refused before any step.
        assert!(
            !out.contains("never-ran") && !out.contains("FROM busybox"),
            "{svc}: {out}"
        );
    }
}

#[test]
fn a_services_platform_builds_only_for_the_host() {
    let d = daemon();
    let tmp = scratch();
    let dir = tmp.path();
    let other = if host_platform() == "linux/s390x" {
        "linux/amd64"
    } else {
        "linux/s390x"
    };
    let yaml = format!(
        "services:\n  native:\n    platform: {}\n    build: .\n  foreign:\n    platform: {other}\n    build: .\n",
        host_platform()
    );
    write_tree(
        dir,
        &[
            ("compose.yaml", &yaml),
            ("Dockerfile", "FROM busybox\nRUN echo platform-step\n"),
        ],
    );
    let (ok, out) = build_one(&d, dir, "native");
    assert!(ok, "{out}");
    assert!(out.contains("platform-step"), "{out}");
    let img = d.get_json(&format!("/images/{PROJECT}-native/json"));
    assert_eq!(
        format!(
            "{}/{}",
            img["Os"].as_str().unwrap_or(""),
            img["Architecture"].as_str().unwrap_or("")
        ),
        host_platform()
    );
    let (ok, out) = build_one(&d, dir, "foreign");
    assert!(!ok, "{out}");
    let want = format!(
        "berthd builds only for {}: platform {other} was asked for",
        host_platform()
    );
    assert!(out.contains(&want), "{out}");
    assert!(!out.contains("platform-step"), "{out}");
}

#[test]
fn additional_contexts_name_images_and_local_directories() {
    let d = daemon();
    let tmp = scratch();
    let root = tmp.path();
    let dir = root.join("proj");
    write_tree(
        root,
        &[
            ("extra/data.txt", "from the named context\n"),
            ("extra/skipped.txt", "ignored\n"),
            ("extra/.dockerignore", "skipped.txt\n"),
        ],
    );
    let yaml = "services:\n  app:\n    build:\n      context: .\n      additional_contexts:\n        base: docker-image://busybox:latest\n        files: ../extra\n    command: [\"sleep\", \"60\"]\n  filesonly:\n    build:\n      context: .\n      dockerfile: files.Dockerfile\n      additional_contexts:\n        files: ../extra\n        base: docker-image://busybox\n";
    write_tree(
        &dir,
        &[
            ("compose.yaml", yaml),
            (
                "Dockerfile",
                "FROM base\nCOPY --from=files / /named/\nRUN cat /named/data.txt && ls -a /named > /listing\n",
            ),
            (
                "files.Dockerfile",
                "FROM files\nCOPY --from=base /bin/busybox /bin/busybox\n",
            ),
        ],
    );
    let (ok, out) = build_one(&d, &dir, "app");
    assert!(ok, "{out}\ndaemon log tail:\n{}", tail(&d.log_text(), 30));
    assert!(
        out.contains("[app context files] load from client"),
        "{out}"
    );
    assert!(out.contains("from the named context"), "{out}");
    let img = format!("{PROJECT}-app");
    let listing = d.docker_ok(&["run", "--rm", &img, "cat", "/listing"]);
    assert!(listing.contains("data.txt"), "{listing}");
    assert!(!listing.contains("skipped.txt"), "{listing}");
    // `base` is busybox itself: its layers first.
    let layers = |r: &str| d.get_json(&format!("/images/{r}/json"))["RootFS"]["Layers"].clone();
    let base = layers("busybox:latest");
    let app = layers(&img);
    assert!(!base[0].is_null(), "{base}");
    assert_eq!(base[0], app[0], "{base} {app}");
    // And the history's last entry is busybox's own (Compose's labels are
    // set with no step of their own).
    let base_id = d.get_json("/images/busybox:latest/json")["Id"].clone();
    let hist = d.get_json(&format!("/images/{img}/history"));
    let entries = hist.as_array().expect("a history");
    assert_eq!(entries.len(), 3, "{hist}");
    assert_eq!(entries[2]["Id"], base_id, "{hist}");
    assert_eq!(entries[0]["Tags"][0], format!("{img}:latest"), "{hist}");

    // FROM a local context: its files are the stage's root.
    let (ok, out) = build_one(&d, &dir, "filesonly");
    assert!(ok, "{out}");
    let got = d.docker_ok(&[
        "run",
        "--rm",
        &format!("{PROJECT}-filesonly"),
        "/bin/busybox",
        "cat",
        "/data.txt",
    ]);
    assert_eq!(got, "from the named context\n");

    // Forms berthd does not serve are refused by name.
    write_tree(
        &dir,
        &[(
            "compose.remote.yaml",
            "services:\n  remote:\n    build:\n      context: .\n      additional_contexts:\n        src: https://example.invalid/repo.git\n",
        )],
    );
    let o = compose(
        &d,
        &dir,
        &["-f", "compose.remote.yaml", "--progress", "plain", "build"],
        &[],
    );
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("named context src=https://example.invalid/repo.git: the \"https\" form is not supported by berthd"),
        "{text}"
    );

    // Built again: cached.
    let (ok, again) = build_one(&d, &dir, "app");
    assert!(ok, "{again}");
    assert!(again.contains("CACHED"), "{again}");
}
