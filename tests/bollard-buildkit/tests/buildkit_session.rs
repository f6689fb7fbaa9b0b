//! Issue 18: bollard's BuildKit build (`POST /session` serving Auth, then
//! `POST /build?version=2&session=…` with the context as the body), whose
//! progress comes back as `moby.buildkit.trace` aux messages and the image
//! as `moby.image.id`, as dockerd's builder-next sends them.

use std::collections::HashMap;
use std::time::Duration;

use berth_tests::*;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, ImageBuildOutput};
use futures_util::StreamExt;

const LIMIT: Duration = Duration::from_secs(180);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, body.as_bytes())
            .expect("tar append");
    }
    b.into_inner().expect("tar finish")
}

/// What a BuildKit build through bollard gave: its messages, and the
/// error that ended it, if any.
struct Outcome {
    infos: Vec<BuildInfo>,
    error: Option<String>,
}

impl Outcome {
    fn image_id(&self) -> Option<String> {
        self.infos.iter().find_map(|b| match &b.aux {
            Some(BuildInfoAux::Default(i)) => i.id.clone(),
            _ => None,
        })
    }

    /// Every vertex name, log line and vertex error of the trace.
    fn trace(&self) -> (Vec<String>, String, Vec<String>) {
        let (mut names, mut logs, mut errors) = (Vec::new(), String::new(), Vec::new());
        for b in &self.infos {
            let Some(BuildInfoAux::BuildKit(s)) = &b.aux else {
                continue;
            };
            for v in &s.vertexes {
                if !names.contains(&v.name) {
                    names.push(v.name.clone());
                }
                if !v.error.is_empty() {
                    errors.push(v.error.clone());
                }
            }
            for l in &s.logs {
                logs.push_str(&String::from_utf8_lossy(&l.msg));
            }
        }
        (names, logs, errors)
    }
}

fn build(d: &Daemon, files: &[(&str, &str)], tag: &str, args: &[(&str, &str)]) -> Outcome {
    build_to(d, files, tag, args, None)
}

fn build_to(
    d: &Daemon,
    files: &[(&str, &str)],
    tag: &str,
    args: &[(&str, &str)],
    outputs: Option<ImageBuildOutput>,
) -> Outcome {
    let docker = d.bollard();
    let context = tar_of(files);
    let buildargs: HashMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.into()),
        buildargs: Some(buildargs),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(format!("bollard-{}", random_hex())),
        outputs,
        ..Default::default()
    };
    rt().block_on(async {
        let mut s = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
        let mut out = Outcome {
            infos: Vec::new(),
            error: None,
        };
        let run = async {
            while let Some(r) = s.next().await {
                match r {
                    Ok(i) => out.infos.push(i),
                    Err(e) => {
                        out.error = Some(e.to_string());
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(LIMIT, run)
            .await
            .expect("the build ends in time");
        out
    })
}

#[test]
fn bollard_builds_through_buildkit_with_progress_labels_files_and_dockerignore() {
    let d = daemon();
    let o = build(
        &d,
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG GREETING=hello\nCOPY . /app/\nRUN echo \"built with $GREETING\" && echo \"$GREETING\" > /greeting\nLABEL org.example.kind=bk\n",
            ),
            (".dockerignore", "secret.txt\n"),
            ("hello.txt", "hello from the context\n"),
            ("secret.txt", "do not ship\n"),
        ],
        "bk/bollard:1",
        &[("GREETING", "bonjour")],
    );
    assert!(
        o.error.is_none(),
        "{:?}\ndaemon log tail:\n{}",
        o.error,
        tail(&d.log_text(), 40)
    );
    let (names, logs, errors) = o.trace();
    assert!(errors.is_empty(), "{errors:?}");
    for want in [
        "[internal] load build context",
        "RUN echo",
        "exporting to image",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no vertex {want:?} in {names:?}"
        );
    }
    assert!(logs.contains("built with bonjour"), "{logs}");
    let id = o.image_id().expect("moby.image.id with the image's ID");
    let img = d.get_json("/images/bk/bollard:1/json");
    assert_eq!(img["Id"].as_str(), Some(id.as_str()), "{img}");
    assert_eq!(img["Config"]["Labels"]["org.example.kind"], "bk", "{img}");
    let run = |args: &[&str]| {
        let mut full = vec!["run", "--rm", "bk/bollard:1"];
        full.extend_from_slice(args);
        d.docker_ok(&full)
    };
    assert_eq!(run(&["cat", "/app/hello.txt"]), "hello from the context\n");
    assert_eq!(run(&["cat", "/greeting"]), "bonjour\n");
    let ls = run(&["ls", "-a", "/app"]);
    assert!(
        !ls.contains("secret.txt"),
        "the ignored file was sent: {ls}"
    );

    // The same build again: its steps are cached.
    let again = build(
        &d,
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG GREETING=hello\nCOPY . /app/\nRUN echo \"built with $GREETING\" && echo \"$GREETING\" > /greeting\nLABEL org.example.kind=bk\n",
            ),
            (".dockerignore", "secret.txt\n"),
            ("hello.txt", "hello from the context\n"),
            ("secret.txt", "do not ship\n"),
        ],
        "bk/bollard:2",
        &[("GREETING", "bonjour")],
    );
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!(again.image_id(), Some(id));
    let cached = again.infos.iter().any(|b| match &b.aux {
        Some(BuildInfoAux::BuildKit(s)) => s.vertexes.iter().any(|v| v.cached),
        _ => false,
    });
    assert!(cached, "no cached vertex in the second build");
}

#[test]
fn a_failing_run_fails_bollards_buildkit_build_with_its_code() {
    let d = daemon();
    let o = build(
        &d,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo about to fail && exit 3\n",
        )],
        "bk/fails",
        &[],
    );
    let err = o.error.clone().expect("the build fails");
    let want = "process \"/bin/sh -c echo about to fail && exit 3\" did not complete successfully: exit code: 3";
    assert!(err.contains(want), "{err}");
    assert!(o.image_id().is_none());
    let (_, logs, errors) = o.trace();
    assert!(logs.contains("about to fail"), "{logs}");
    assert!(
        errors.iter().any(|e| e.contains(want)),
        "no vertex error with the code: {errors:?}"
    );
    let (status, _, _) = d.raw("GET", "/images/bk/fails/json", None);
    assert_eq!(status, 404);
}

/// `# syntax=` and `BUILDKIT_SYNTAX` through `/build?version=2`: Docker's
/// Dockerfile frontend is berthd's own, any other is refused before a step.
#[test]
fn the_syntax_directive_through_bollards_buildkit_build() {
    let d = daemon();
    let o = build(
        &d,
        &[(
            "Dockerfile",
            "# syntax=docker/dockerfile:1.7\nFROM busybox\nRUN echo v2-ran\n",
        )],
        "bk/syntax-ok",
        &[],
    );
    assert!(o.error.is_none(), "{:?}", o.error);
    let (names, logs, _) = o.trace();
    assert!(
        names
            .iter()
            .any(|n| n == "[internal] resolve frontend docker/dockerfile:1.7"),
        "{names:?}"
    );
    assert!(logs.contains("built-in Dockerfile frontend"), "{logs}");
    assert!(logs.contains("v2-ran"), "{logs}");
    for (df, args, image) in [
        (
            "# syntax=example/frontend:1\nFROM busybox\nRUN echo never-ran\n",
            vec![],
            "example/frontend:1",
        ),
        (
            "# syntax=docker/dockerfile:1\nFROM busybox\nRUN echo never-ran\n",
            vec![("BUILDKIT_SYNTAX", "example/frontend:2")],
            "example/frontend:2",
        ),
    ] {
        let o = build(&d, &[("Dockerfile", df)], "bk/syntax-bad", &args);
        let err = o.error.clone().expect("the build fails");
        let want = format!(
            "unsupported frontend \"{image}\": berthd runs only the built-in Dockerfile frontend"
        );
        assert!(err.contains(&want), "{err}");
        let (names, logs, _) = o.trace();
        assert!(!logs.contains("never-ran"), "{logs}");
        assert!(!names.iter().any(|n| n.contains("FROM")), "{names:?}");
        let (status, _, _) = d.raw("GET", "/images/bk/syntax-bad/json", None);
        assert_eq!(status, 404);
    }
}

/// What `/build?version=2` refuses before any output, with a 400 and a
/// message, as dockerd refuses bad parameters.
#[test]
fn unsupported_buildkit_requests_are_refused_before_the_build() {
    let d = Daemon::start();
    for (q, want) in [
        ("version=3", "invalid version 3"),
        (
            "version=2&session=s1&remote=upload-request:abc",
            "upload-request",
        ),
        ("version=2&remote=client-session", "needs a session"),
        (
            "version=2&session=s2&outputs=%5B%7B%22Type%22%3A%22registry%22%7D%5D",
            "is not supported by berthd: use docker, oci, tar, local",
        ),
        (
            "version=2&session=s3&outputs=%5B%7B%22Type%22%3A%22tar%22%7D%2C%7B%22Type%22%3A%22oci%22%7D%5D",
            "multiple outputs",
        ),
        (
            "version=2&session=s4&platform=linux%2Fmips64",
            "berthd builds only for linux/",
        ),
        (
            "version=2&session=s5&platform=linux%2Famd64%2Clinux%2Farm64",
            "multi-platform",
        ),
    ] {
        let (status, _, body) = d.raw("POST", &format!("/v1.47/build?{q}"), Some(b""));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
    }
}

/// A client that goes away mid-build stops it at its next output, as a
/// classic build does: no image, and the RUN's container goes.
#[test]
fn a_build_whose_client_leaves_stops() {
    let d = daemon();
    let docker = d.bollard();
    let context = tar_of(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo started && sleep 2 && echo slept\nRUN echo second\n",
    )]);
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some("bk/left".into()),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(format!("bollard-{}", random_hex())),
        ..Default::default()
    };
    rt().block_on(async {
        let mut s = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
        let started = async {
            while let Some(Ok(i)) = s.next().await {
                if let Some(BuildInfoAux::BuildKit(st)) = &i.aux {
                    if st.logs.iter().any(|l| l.msg.starts_with(b"started")) {
                        return;
                    }
                }
            }
            panic!("the build ended before its RUN started");
        };
        tokio::time::timeout(LIMIT, started)
            .await
            .expect("the RUN starts");
    });
    // The runtime (and with it the request) is gone.
    let running = || {
        let (_, _, body) = d.raw("GET", "/containers/json?all=1", None);
        String::from_utf8_lossy(&body).trim().to_string()
    };
    assert!(
        wait_for(Duration::from_secs(30), || running() == "[]"),
        "the build's container is still there: {}",
        running()
    );
    let (status, _, _) = d.raw("GET", "/images/bk/left/json", None);
    assert_eq!(status, 404);
}

/// `outputs: Tar(path)`: the image's filesystem comes back through the
/// session's FileSend as a tar at `path`; no image is tagged.
#[test]
fn bollard_tar_output_arrives_through_the_session() {
    let d = daemon();
    let dir = std::env::temp_dir().join(format!("bke-out-{}", random_hex()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let dest = dir.join("out.tar");
    let o = build_to(
        &d,
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY hello.txt /app/\nRUN echo built > /built.txt\n",
            ),
            ("hello.txt", "hello from the context\n"),
        ],
        "bk/tar-out",
        &[],
        Some(ImageBuildOutput::Tar(dest.to_string_lossy().into_owned())),
    );
    assert!(
        o.error.is_none(),
        "{:?}\ndaemon log tail:\n{}",
        o.error,
        tail(&d.log_text(), 40)
    );
    let (names, _, errors) = o.trace();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains("exporting to client tarball")),
        "{names:?}"
    );
    let bytes = std::fs::read(&dest).expect("the tar arrived");
    let mut found = HashMap::new();
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("an entry");
        let p = e.path().expect("a path").to_string_lossy().into_owned();
        let p = p
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if p == "app/hello.txt" || p == "built.txt" || p == "bin/busybox" {
            let mut body = String::new();
            if p != "bin/busybox" {
                std::io::Read::read_to_string(&mut e, &mut body).expect("text");
            }
            found.insert(p, body);
        }
    }
    assert_eq!(
        found.get("app/hello.txt").map(String::as_str),
        Some("hello from the context\n")
    );
    assert_eq!(found.get("built.txt").map(String::as_str), Some("built\n"));
    assert!(
        found.contains_key("bin/busybox"),
        "the base image's files: {found:?}"
    );
    let (status, _, _) = d.raw("GET", "/images/bk/tar-out/json", None);
    assert_eq!(status, 404, "a tar output tags nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `outputs: Local(dir)`: the image's files come back through the
/// session's FileSend as fsutil packets, written under `dir`.
#[test]
fn bollard_local_output_arrives_through_the_session() {
    let d = daemon();
    let dir = std::env::temp_dir().join(format!("bke-local-{}", random_hex()));
    let o = build_to(
        &d,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY hello.txt /app/\nCOPY big.txt /app/data/\n",
            ),
            ("hello.txt", "hello from the context\n"),
            ("big.txt", &"0123456789abcdef".repeat(8192)),
        ],
        "bk/local-out",
        &[],
        Some(ImageBuildOutput::Local(dir.to_string_lossy().into_owned())),
    );
    assert!(
        o.error.is_none(),
        "{:?}\ndaemon log tail:\n{}",
        o.error,
        tail(&d.log_text(), 40)
    );
    let (names, _, errors) = o.trace();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains("exporting to client directory")),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app/hello.txt")).expect("hello.txt arrived"),
        "hello from the context\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app/data/big.txt")).expect("big.txt arrived"),
        "0123456789abcdef".repeat(8192)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Percent-encodes a query value.
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An archive exporter's output, on the wire bollard's `Tar(path)` session
/// serves: while a bollard build (with its FileSend session) runs, a second
/// `/build?version=2` names that session with `outputs`; the archive
/// lands at `path`. Its entries (name → bytes), once complete (`want`).
fn archive_through_a_lent_session(
    d: &Daemon,
    outputs: &str,
    want: &[&str],
) -> HashMap<String, Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("bke-archive-{}", random_hex()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let dest = dir.join("out.tar");
    let session = format!("bollard-{}", random_hex());
    let docker = d.bollard();
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(session.clone()),
        outputs: Some(ImageBuildOutput::Tar(dest.to_string_lossy().into_owned())),
        ..Default::default()
    };
    // The first build only lends its session: it runs long enough (up to
    // 60 s) for the second to export through it on a loaded machine, and
    // prints, so that it stops as soon as this test leaves it.
    let slow = tar_of(&[(
        "Dockerfile",
        "FROM busybox\nRUN for i in $(seq 1 120); do echo tick; sleep 0.5; done\n",
    )]);
    let rt = rt();
    let first = rt.spawn(async move {
        let mut s = docker.build_image(opts, None, Some(bollard::body_full(slow.into())));
        let mut err = None;
        while let Some(r) = s.next().await {
            if let Err(e) = r {
                err = Some(e.to_string());
            }
        }
        err
    });
    let context = tar_of(&[
        ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("hello.txt", "hello\n"),
    ]);
    let (status, _, body) = d.raw(
        "POST",
        &format!(
            "/v1.47/build?version=2&session={session}&outputs={}",
            query_escape(outputs)
        ),
        Some(&context),
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("moby.image.id"), "{body}");
    assert!(!body.contains("errorDetail"), "{body}");
    // The client's writer may still be closing the file.
    let mut entries = HashMap::new();
    wait_for(Duration::from_secs(10), || {
        let Ok(bytes) = std::fs::read(&dest) else {
            return false;
        };
        entries.clear();
        let mut a = tar::Archive::new(&bytes[..]);
        let Ok(list) = a.entries() else {
            return false;
        };
        for e in list {
            let Ok(mut e) = e else { return false };
            let p = e.path().map(|p| p.to_string_lossy().into_owned());
            let Ok(p) = p else { return false };
            let mut data = Vec::new();
            if std::io::Read::read_to_end(&mut e, &mut data).is_err() {
                return false;
            }
            entries.insert(p, data);
        }
        want.iter().all(|n| entries.contains_key(*n))
    });
    // Leaving the first build stops it (its RUN prints twice a second).
    first.abort();
    let _ = rt.block_on(first);
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    entries
}

/// The `docker` output: a docker-archive that is also an OCI layout.
#[test]
fn a_docker_output_arrives_through_a_session_that_receives_files() {
    let d = daemon();
    let want = ["manifest.json", "index.json", "oci-layout"];
    let entries = archive_through_a_lent_session(
        &d,
        r#"[{"type":"docker","attrs":{"name":"bk/docker-out:1"}}]"#,
        &want,
    );
    for n in want {
        assert!(entries.contains_key(n), "no {n} in {:?}", entries.keys());
    }
    let manifest = String::from_utf8_lossy(&entries["manifest.json"]);
    assert!(manifest.contains("bk/docker-out:1"), "{manifest}");
}

fn blob<'a>(entries: &'a HashMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let path = format!("blobs/sha256/{hex}");
    entries
        .get(&path)
        .unwrap_or_else(|| panic!("no {path} in {:?}", entries.keys()))
}

/// The `oci` output: an OCI image layout whose index names the image's
/// manifest, itself a blob of the layout, as are its config and layers.
#[test]
fn an_oci_output_is_an_image_layout_whose_index_resolves() {
    let d = daemon();
    let want = ["index.json", "oci-layout"];
    let entries = archive_through_a_lent_session(
        &d,
        r#"[{"type":"oci","attrs":{"name":"bk/oci-out:1"}}]"#,
        &want,
    );
    for n in want {
        assert!(entries.contains_key(n), "no {n} in {:?}", entries.keys());
    }
    let layout: serde_json::Value =
        serde_json::from_slice(&entries["oci-layout"]).expect("oci-layout is JSON");
    assert_eq!(layout["imageLayoutVersion"], "1.0.0", "{layout}");
    let index: serde_json::Value =
        serde_json::from_slice(&entries["index.json"]).expect("index.json is JSON");
    assert_eq!(index["schemaVersion"], 2, "{index}");
    let m = &index["manifests"][0];
    let digest = m["digest"].as_str().expect("a manifest digest");
    let mbytes = blob(&entries, digest);
    assert_eq!(m["size"].as_u64(), Some(mbytes.len() as u64), "{index}");
    let names = index.to_string();
    assert!(names.contains("bk/oci-out:1"), "the tag is named: {names}");
    let manifest: serde_json::Value = serde_json::from_slice(mbytes).expect("a manifest");
    let config = blob(
        &entries,
        manifest["config"]["digest"]
            .as_str()
            .expect("a config digest"),
    );
    let config: serde_json::Value = serde_json::from_slice(config).expect("a config");
    assert_eq!(config["os"], "linux", "{config}");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    for l in layers {
        let data = blob(&entries, l["digest"].as_str().expect("a layer digest"));
        assert_eq!(l["size"].as_u64(), Some(data.len() as u64), "{manifest}");
    }
}

/// `outputs=[{"type":"image","attrs":{"push":"true",…}}]` on
/// `/build?version=2`: the image is tagged and pushed to its registry.
#[test]
fn an_image_output_with_push_pushes_to_the_registry() {
    let d = daemon();
    let dir = std::env::temp_dir().join(format!("bke-reg-{}", random_hex()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let reg = LocalRegistry::start(&dir).expect("docker-registry is installed (scripts/deps.sh)");
    let name = format!("127.0.0.1:{}/v2push/app:1", reg.port);
    let context = tar_of(&[("Dockerfile", "FROM busybox\nRUN echo v2-pushed > /marker\n")]);
    let outputs = format!(r#"[{{"type":"image","attrs":{{"name":"{name}","push":"true"}}}}]"#);
    let (status, _, body) = d.raw(
        "POST",
        &format!("/v1.47/build?version=2&outputs={}", query_escape(&outputs)),
        Some(&context),
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("errorDetail"), "{body}");
    assert!(body.contains("moby.image.id"), "{body}");
    let id = d.get_json(&format!("/images/{name}/json"))["Id"].clone();
    d.docker_ok(&["rmi", &name]);
    d.docker_ok(&["pull", &name]);
    assert_eq!(d.get_json(&format!("/images/{name}/json"))["Id"], id);
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "cat", "/marker"]),
        "v2-pushed\n"
    );
    drop(reg);
    let _ = std::fs::remove_dir_all(&dir);
}
