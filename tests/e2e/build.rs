//! Issue 9: `docker build` with the classic builder (`POST /build`), through
//! the real docker CLI (`DOCKER_BUILDKIT=0`) and `berth build`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use berth_tests::*;

fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (p, data) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }
}

/// `DOCKER_BUILDKIT=0 docker build ARGS` (the context is among ARGS).
fn docker_build(d: &Daemon, args: &[&str]) -> Output {
    d.docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args)
        .output()
        .expect("docker build")
}

fn docker_build_ok(d: &Daemon, args: &[&str]) -> String {
    let o = docker_build(d, args);
    assert!(
        o.status.success(),
        "docker build {args:?} failed ({}):\n{}\n{}\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
    stdout(&o)
}

fn berth_build_ok(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["build"];
    full.extend_from_slice(args);
    let o = d.berth(&full);
    assert!(
        o.status.success(),
        "berth build {args:?} failed ({}):\n{}\n{}\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
    stdout(&o)
}

fn run(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    d.docker_ok(&full)
}

/// Every path in the layers of a saved image.
fn image_paths(d: &Daemon, image: &str) -> BTreeSet<String> {
    let o = d
        .docker_cmd()
        .args(["save", image])
        .output()
        .expect("docker save");
    assert!(o.status.success(), "{}", stderr(&o));
    let mut files: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let mut ar = tar::Archive::new(std::io::Cursor::new(o.stdout));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let mut out = BTreeSet::new();
    for l in manifest[0]["Layers"].as_array().unwrap() {
        let data = &files[l.as_str().unwrap()];
        let mut ar = tar::Archive::new(std::io::Cursor::new(data));
        for e in ar.entries().unwrap() {
            let p = e.unwrap().path().unwrap().display().to_string();
            out.insert(p.trim_end_matches('/').to_string());
        }
    }
    out
}

#[test]
fn multi_stage_from_scratch_holds_only_what_was_copied() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS b\n\
             RUN mkdir -p /out && echo built-in-stage-b > /out/msg && echo junk > /junk\n\
             \n\
             FROM scratch\n\
             COPY --from=b /bin/busybox /bin/busybox\n\
             COPY --from=b /out/msg /msg\n\
             ENTRYPOINT [\"/bin/busybox\"]\n\
             CMD [\"cat\", \"/msg\"]\n",
        )],
    );
    let out = docker_build_ok(&d, &["-t", "ms:1", &ctx.path().display().to_string()]);
    for want in [
        "Step 1/7 : FROM busybox AS b",
        " ---> Running in ",
        "Removing intermediate container ",
        "Step 4/7 : COPY --from=b /bin/busybox /bin/busybox",
        "Successfully built ",
        "Successfully tagged ms:1",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(run(&d, &["ms:1"]).trim(), "built-in-stage-b");
    let paths = image_paths(&d, "ms:1");
    let want: BTreeSet<String> = ["bin", "bin/busybox", "msg"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(paths, want);
    // Intermediate images are hidden, but listed with -a.
    let all = d.docker_ok(&["images", "-a", "-q"]).lines().count();
    let top = d.docker_ok(&["images", "-q"]).lines().count();
    assert!(all > top, "{all} vs {top}");
    assert_eq!(
        d.image_inspect_format("ms:1", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"),
        "[\"/bin/busybox\"] [\"cat\",\"/msg\"]"
    );
}

#[test]
fn instructions_set_the_config_docker_does() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[
            ("app.txt", "app-content\n"),
            (
                "Dockerfile",
                "# escape=\\\n\
                 ARG BASE=busybox\n\
                 FROM ${BASE} AS base\n\
                 ARG GREETING=hello\n\
                 ARG WHO\n\
                 ENV MSG=\"${GREETING} ${WHO:-nobody}\" \\\n\
                 \x20   ALT=${UNSET:+never}x\n\
                 RUN echo 'app:x:1234:1234:app:/home/app:/bin/sh' >> /etc/passwd && \\\n\
                 \x20   echo 'app:x:1234:' >> /etc/group\n\
                 WORKDIR /srv\n\
                 WORKDIR data\n\
                 COPY --chown=app:app app.txt ./\n\
                 USER app\n\
                 LABEL org.example.name=\"my app\" version=1\n\
                 EXPOSE 8080 53/udp\n\
                 HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD test -f /srv/data/app.txt\n\
                 STOPSIGNAL SIGUSR1\n\
                 VOLUME [\"/cache\"]\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\", \"echo \\\"$0 $MSG $ALT $(id -un) $(pwd)\\\"\"]\n\
                 CMD [\"from-cmd\"]\n",
            ),
        ],
    );
    docker_build_ok(
        &d,
        &[
            "--build-arg",
            "WHO=world",
            "-t",
            "cfg",
            &ctx.path().display().to_string(),
        ],
    );
    assert_eq!(
        run(&d, &["cfg"]).trim(),
        "from-cmd hello world x app /srv/data"
    );
    assert_eq!(
        run(&d, &["cfg", "other"]).trim(),
        "other hello world x app /srv/data"
    );
    assert_eq!(d.image_inspect_format("cfg", "{{.Config.User}}"), "app");
    assert_eq!(
        d.image_inspect_format("cfg", "{{.Config.WorkingDir}}"),
        "/srv/data"
    );
    assert_eq!(
        d.image_inspect_format("cfg", "{{index .Config.Labels \"org.example.name\"}}"),
        "my app"
    );
    assert_eq!(
        d.image_inspect_format("cfg", "{{json .Config.ExposedPorts}}"),
        "{\"53/udp\":{},\"8080/tcp\":{}}"
    );
    assert_eq!(
        d.image_inspect_format("cfg", "{{json .Config.Healthcheck}}"),
        "{\"Test\":[\"CMD-SHELL\",\"test -f /srv/data/app.txt\"],\"Interval\":5000000000,\"Timeout\":3000000000,\"Retries\":2}"
    );
    assert_eq!(
        d.image_inspect_format("cfg", "{{.Config.StopSignal}}"),
        "SIGUSR1"
    );
    assert_eq!(
        d.image_inspect_format("cfg", "{{json .Config.Volumes}}"),
        "{\"/cache\":{}}"
    );
    let env = d.image_inspect_format("cfg", "{{json .Config.Env}}");
    assert!(env.contains("\"MSG=hello world\""), "{env}");
    assert!(env.contains("PATH=/usr/local/sbin"), "{env}");
    // Build args are not kept in the image.
    assert!(!env.contains("WHO"), "{env}");
    let owner = run(
        &d,
        &[
            "--entrypoint",
            "stat",
            "cfg",
            "-c",
            "%U %a",
            "/srv/data/app.txt",
        ],
    );
    assert_eq!(owner.trim(), "app 644");
    // The health check works in a container.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--entrypoint",
        "sleep",
        "cfg",
        "60",
    ]);
    let start = Instant::now();
    loop {
        let s = d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
        if s.trim() == "healthy" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "health: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // ONBUILD triggers run in the child build.
    let child = scratch();
    let parent = scratch();
    write_tree(
        parent.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo triggered > /trig\n",
        )],
    );
    docker_build_ok(&d, &["-t", "onb", &parent.path().display().to_string()]);
    write_tree(child.path(), &[("Dockerfile", "FROM onb\nRUN cat /trig\n")]);
    let out = docker_build_ok(
        &d,
        &["-t", "onb-child", &child.path().display().to_string()],
    );
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert!(out.contains("triggered"), "{out}");
    assert_eq!(
        d.image_inspect_format("onb-child", "{{json .Config.OnBuild}}"),
        "null"
    );
}

/// The same context through both CLIs; `.dockerignore` with `**` and `!`.
#[test]
fn dockerignore_excludes_what_docker_excludes() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[
            ("keep.txt", "k"),
            ("a.log", "x"),
            ("important.log", "x"),
            ("sub/b.log", "x"),
            ("sub/deeper/c.log", "x"),
            ("sub/deeper/keep.md", "x"),
            ("secret/key", "x"),
            ("secret/public.pem", "x"),
            ("docs/a.md", "x"),
            ("docs/sub/b.md", "x"),
            ("node_modules/m/index.js", "x"),
            (
                ".dockerignore",
                "# comment\n**/*.log\n!important.log\nsecret\n!secret/public.pem\ndocs/*.md\n**/node_modules\n",
            ),
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort\"]\n",
            ),
        ],
    );
    let want = "./.dockerignore\n./Dockerfile\n./docs/sub/b.md\n./important.log\n./keep.txt\n./secret/public.pem\n./sub/deeper/keep.md\n";
    let dir = ctx.path().display().to_string();
    docker_build_ok(&d, &["-t", "ign-docker", &dir]);
    assert_eq!(run(&d, &["ign-docker"]), want);
    berth_build_ok(&d, &["-t", "ign-berth", &dir]);
    assert_eq!(run(&d, &["ign-berth"]), want);
}

#[test]
fn second_build_is_cached_and_a_changed_file_invalidates_from_its_step() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[
            ("one.txt", "1"),
            ("two.txt", "2"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN echo first > /first\n\
                 COPY one.txt /one.txt\n\
                 RUN echo after-one > /after-one\n\
                 COPY two.txt /two.txt\n\
                 RUN cat /one.txt /two.txt > /both\n",
            ),
        ],
    );
    let dir = ctx.path().display().to_string();
    let first = docker_build_ok(&d, &["-t", "c:1", &dir]);
    assert!(!first.contains("Using cache"), "{first}");
    let id1 = d.image_inspect_format("c:1", "{{.Id}}");
    let t = Instant::now();
    let second = docker_build_ok(&d, &["-t", "c:2", &dir]);
    let took = t.elapsed();
    assert_eq!(second.matches(" ---> Using cache").count(), 5, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    assert_eq!(d.image_inspect_format("c:2", "{{.Id}}"), id1);
    assert!(took < Duration::from_secs(10), "cached build took {took:?}");
    // Change the second copied file: steps before it stay cached.
    std::fs::write(ctx.path().join("two.txt"), "22").unwrap();
    let third = docker_build_ok(&d, &["-t", "c:3", &dir]);
    let steps: Vec<&str> = third.split("Step ").skip(1).collect();
    assert_eq!(steps.len(), 6, "{third}");
    for (i, s) in steps.iter().enumerate() {
        let cached = s.contains("Using cache");
        assert_eq!(cached, (1..4).contains(&i), "step {}: {s}", i + 1);
    }
    assert_eq!(run(&d, &["c:3", "cat", "/both"]), "122");
    // --no-cache runs everything again.
    let fresh = docker_build_ok(&d, &["--no-cache", "-t", "c:4", &dir]);
    assert!(!fresh.contains("Using cache"), "{fresh}");
    // The cache shows in df and goes with builder prune.
    let df = d.docker_ok(&["system", "df"]);
    let line = df
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or("");
    let n: usize = line
        .split_whitespace()
        .nth(2)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    assert!(n >= 5, "{df}");
    let pruned = d.docker_ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let df = d.docker_ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Build Cache") && l.split_whitespace().nth(2) == Some("0")),
        "{df}"
    );
    // Tagged images survive; the next build runs again.
    assert_eq!(run(&d, &["c:3", "cat", "/both"]), "122");
    let again = docker_build_ok(&d, &["-t", "c:5", &dir]);
    assert!(!again.contains("Using cache"), "{again}");
    d.docker_ok(&["system", "prune", "-f"]);
}

#[test]
fn a_failing_run_fails_the_build_with_its_code() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo about-to-fail && exit 7\nRUN echo never\n",
        )],
    );
    let dir = ctx.path().display().to_string();
    let o = docker_build(&d, &["-t", "fail", &dir]);
    assert_eq!(o.status.code(), Some(7), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("about-to-fail"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "The command '/bin/sh -c echo about-to-fail && exit 7' returned a non-zero code: 7"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("never"));
    // The failed step's container stays (no --force-rm), as in Docker.
    let ps = d.docker_ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.contains("Exited (7)"), "{ps}");
    let o = docker_build(&d, &["--force-rm", "-t", "fail", &dir]);
    assert_eq!(o.status.code(), Some(7));
    let ps = d.docker_ok(&["ps", "-a", "-q"]);
    assert_eq!(ps.lines().count(), 1, "{ps}");
    // berth build exits the same way.
    let o = d.berth(&["build", &dir]);
    assert_eq!(o.status.code(), Some(7), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("returned a non-zero code: 7"),
        "{}",
        stderr(&o)
    );
    // A parse error names its line.
    write_tree(ctx.path(), &[("Dockerfile", "FROM busybox\n\nRUNN echo\n")]);
    let o = docker_build(&d, &[&dir]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("dockerfile parse error on line 3: unknown instruction: RUNN"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_context_escaping_its_root_is_refused() {
    let d = daemon();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", &b"FROM busybox\nCOPY . /\n"[..]),
        ("../escaped", &b"evil"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut child = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "evil", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("\"../escaped\""), "{}", stderr(&o));
    assert!(!d.data_root.join("builder").join("escaped").exists());
    assert!(!d.docker(&["image", "inspect", "evil"]).status.success());
}

#[test]
fn target_quiet_iidfile_labels_network_and_add() {
    let d = daemon();
    // A small HTTP server on loopback for ADD <url>.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..10 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "downloaded\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let ctx = scratch();
    // A gzipped tar for ADD to unpack.
    let mut tb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(6);
    tb.append_data(&mut h, "inner/t.txt", &b"inside"[..])
        .unwrap();
    let raw_tar = tb.into_inner().unwrap();
    std::fs::write(ctx.path().join("bundle.tar"), &raw_tar).unwrap();
    write_tree(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox AS first\n\
                 RUN ls /sys/class/net | sort | tr '\\n' ' ' > /nets\n\
                 ADD bundle.tar /unpacked/\n\
                 ADD http://127.0.0.1:{port}/files/dl.txt /dl/\n\
                 FROM first AS second\n\
                 RUN echo second > /second\n\
                 FROM busybox AS third\n\
                 RUN echo never-built\n"
            ),
        )],
    );
    let dir = ctx.path().display().to_string();
    let iid = ctx.path().join("iid");
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "--network",
            "none",
            "--target",
            "second",
            "--label",
            "built.by=test",
            "--iidfile",
        ])
        .arg(&iid)
        .args(["-t", "tq:1", "-t", "tq:2", &dir])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    // As the docker CLI writes it in quiet mode: the daemon's line.
    assert_eq!(std::fs::read_to_string(&iid).unwrap().trim(), id);
    assert_eq!(d.image_inspect_format("tq:1", "{{.Id}}"), id);
    assert_eq!(d.image_inspect_format("tq:2", "{{.Id}}"), id);
    assert_eq!(
        d.image_inspect_format("tq:1", "{{index .Config.Labels \"built.by\"}}"),
        "test"
    );
    assert_eq!(run(&d, &["tq:1", "cat", "/nets"]).trim(), "lo");
    assert_eq!(run(&d, &["tq:1", "cat", "/unpacked/inner/t.txt"]), "inside");
    assert_eq!(run(&d, &["tq:1", "cat", "/dl/dl.txt"]), "downloaded\n");
    assert_eq!(
        run(&d, &["tq:1", "stat", "-c", "%a %Y", "/dl/dl.txt"]).trim(),
        "600 1445412480"
    );
    assert_eq!(run(&d, &["tq:1", "cat", "/second"]), "second\n");
    let hist = d.docker_ok(&["history", "--no-trunc", "tq:1"]);
    assert!(!hist.contains("never-built"), "{hist}");
    // The default network gives RUN an interface beyond lo.
    write_tree(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ls /sys/class/net | sort | tr '\\n' ' ' > /nets\n",
        )],
    );
    // The cache does not key on the network (as in Docker): --no-cache.
    docker_build_ok(&d, &["--no-cache", "-t", "net", &dir]);
    let nets = run(&d, &["net", "cat", "/nets"]);
    assert!(nets.contains("eth0"), "{nets}");
}

#[test]
fn berth_build_does_what_docker_build_does() {
    let d = daemon();
    let ctx = scratch();
    write_tree(
        ctx.path(),
        &[
            ("f.txt", "from-context\n"),
            (
                "build/Custom.dockerfile",
                "FROM busybox AS b\n\
                 ARG V=default\n\
                 RUN echo \"$V\" > /v\n\
                 FROM scratch\n\
                 COPY --from=b /bin/busybox /bin/\n\
                 COPY --from=b /v /v\n\
                 COPY f.txt /\n\
                 CMD [\"/bin/busybox\", \"cat\", \"/v\", \"/f.txt\"]\n",
            ),
        ],
    );
    let dir = ctx.path().display().to_string();
    let df = ctx
        .path()
        .join("build/Custom.dockerfile")
        .display()
        .to_string();
    let iid = ctx.path().join("iid").display().to_string();
    let out = berth_build_ok(
        &d,
        &[
            "-f",
            &df,
            "--build-arg",
            "V=given",
            "-t",
            "bb:1",
            "--iidfile",
            &iid,
            &dir,
        ],
    );
    assert!(out.contains("Step 1/8 : FROM busybox AS b"), "{out}");
    assert!(out.contains("Successfully tagged bb:1"), "{out}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(d.image_inspect_format("bb:1", "{{.Id}}"), id);
    assert_eq!(run(&d, &["bb:1"]), "given\nfrom-context\n");
    // Quiet prints only the ID; a second build is all cache.
    let q = berth_build_ok(&d, &["-q", "-f", &df, "--build-arg", "V=given", &dir]);
    assert_eq!(q.trim(), id);
    // A Dockerfile on stdin.
    let mut child = d
        .berth_cmd()
        .args(["build", "-t", "piped", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nCMD [\"echo\", \"piped\"]\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run(&d, &["piped"]), "piped\n");
    // A Dockerfile outside the context is sent under a random name that
    // COPY does not see.
    let outside = scratch();
    write_tree(
        outside.path(),
        &[(
            "Outside",
            "FROM busybox\nCOPY . /c/\nCMD [\"ls\", \"-A\", \"/c\"]\n",
        )],
    );
    let small = scratch();
    write_tree(small.path(), &[("only.txt", "x")]);
    let f = outside.path().join("Outside").display().to_string();
    berth_build_ok(
        &d,
        &[
            "-f",
            &f,
            "-t",
            "outside",
            &small.path().display().to_string(),
        ],
    );
    assert_eq!(run(&d, &["outside"]), "only.txt\n");
    docker_build_ok(
        &d,
        &[
            "-f",
            &f,
            "-t",
            "outside-docker",
            &small.path().display().to_string(),
        ],
    );
    assert_eq!(run(&d, &["outside-docker"]), "only.txt\n");
}

/// `docker build - < context.tar.gz`: a gzip-compressed context on stdin
/// is read like a plain one (Docker accepts gzip, bzip2 and xz contexts).
#[test]
fn a_gzipped_context_on_stdin_builds() {
    let d = daemon();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", &b"FROM busybox\nCOPY msg.txt /msg.txt\n"[..]),
        ("msg.txt", &b"from a gzip context\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "gz-ctx", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        run(&d, &["gz-ctx", "cat", "/msg.txt"]),
        "from a gzip context\n"
    );
}

/// berthd advertises BuildKit (`Builder-Version: 2`). The docker CLI with
/// no buildx plugin and nothing set still builds, with the legacy builder
/// after its warning, never `POST /build?version=2`; `DOCKER_BUILDKIT=0`
/// is the classic builder with the classic output.
#[test]
fn docker_build_without_buildx_still_uses_the_classic_builder() {
    let d = daemon();
    let tmp = scratch();
    let dir = tmp.path();
    write_tree(dir, &[("Dockerfile", "FROM busybox\nRUN echo classic\n")]);
    let plain = d
        .docker_cmd()
        .env_remove("DOCKER_BUILDKIT")
        .env("DOCKER_CLI_PLUGIN_EXTRA_DIRS", dir.join("no-plugins"))
        .args(["build", "-t", "nobuildx", "."])
        .current_dir(dir)
        .output()
        .expect("docker build");
    assert!(
        plain.status.success(),
        "{}\n{}\n{}",
        stdout(&plain),
        stderr(&plain),
        tail(&d.log_text(), 20)
    );
    assert!(
        stdout(&plain).contains("Step 2/2 : RUN echo classic"),
        "{}",
        stdout(&plain)
    );
    let classic = docker_build_ok(&d, &["-t", "classic", dir.to_str().unwrap()]);
    assert!(
        classic.contains("Successfully tagged classic:latest"),
        "{classic}"
    );
}
