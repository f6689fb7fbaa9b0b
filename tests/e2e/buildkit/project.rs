//! A multi-service Compose project built and run through the daemon's
//! BuildKit (build args, a multi-stage `target`, `.dockerignore`, a FROM
//! pulled from a registry that wants credentials, Compose's build labels),
//! symlinks in the context, and the classic builder on request.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use berth_tests::http::http;

use super::*;

/// `docker compose down` on drop, so that a failing test still removes
/// the project's containers and network before its daemon stops.
struct Down<'a> {
    d: &'a Daemon,
    dir: PathBuf,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = compose(self.d, &self.dir, &["down", "-t", "1"], &[]);
    }
}

fn login(d: &Daemon, host: &str, user: &str, pass: &str) -> Output {
    let mut c = d.docker_cmd();
    c.args(["login", host, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().expect("docker login");
    ch.stdin.take().unwrap().write_all(pass.as_bytes()).unwrap();
    finish(ch, Duration::from_secs(60))
}

fn running(d: &Daemon, name: &str) -> bool {
    d.docker(&["inspect", "-f", "{{.State.Running}}", name])
        .stdout
        .starts_with(b"true")
}

#[test]
fn compose_builds_and_runs_a_multi_service_project() {
    let d = daemon();
    let tmp = scratch();
    let root = tmp.path();
    let htpasswd = root.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "tester", "pa55word"])
        .output()
        .expect("htpasswd (apache2-utils) is installed");
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    std::fs::create_dir_all(root.join("reg")).unwrap();
    let reg = LocalRegistry::start_with_auth(&root.join("reg"), Some(&htpasswd))
        .expect("docker-registry is installed (scripts/deps.sh)");
    let host = format!("127.0.0.1:{}", reg.port);
    assert_eq!(http(reg.port, "GET", "/v2/", &[], b"").status, 401);
    let o = login(&d, &host, "tester", "pa55word");
    assert!(o.status.success(), "{}", stderr(&o));
    let base = format!("{host}/base/bb:1");
    d.docker_ok(&["tag", "busybox:latest", &base]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["rmi", &base]);

    let dir = root.join("proj");
    let web_df = format!(
        "FROM {base} AS base\nARG GREETING=hello\nRUN echo \"greeting=$GREETING\" && echo \"$GREETING\" > /greeting\n\nFROM base AS final\nWORKDIR /app\nCOPY . .\nRUN ls -a /app > /listing\n\nFROM base AS after\nRUN echo never-built && exit 9\n"
    );
    write_tree(
        &dir,
        &[
            (
                "compose.yaml",
                "services:\n  web:\n    build:\n      context: ./web\n      target: final\n      args:\n        GREETING: bonjour\n      labels:\n        org.example.from-compose: \"yes\"\n    command: [\"sleep\", \"120\"]\n  worker:\n    build:\n      context: ./worker\n      dockerfile: Worker.Dockerfile\n      args:\n        MODE: fast\n",
            ),
            ("web/Dockerfile", &web_df),
            ("web/.dockerignore", "secret.txt\n*.log\n"),
            ("web/hello.txt", "hello\n"),
            ("web/secret.txt", "do not ship\n"),
            ("web/debug.log", "noise\n"),
            (
                "worker/Worker.Dockerfile",
                "FROM busybox\nARG MODE=slow\nENV MODE=$MODE\nCOPY job.sh /job.sh\nCMD [\"sh\", \"/job.sh\"]\n",
            ),
            ("worker/job.sh", "echo \"worker $MODE\"\nexec sleep 120\n"),
        ],
    );
    let _down = Down {
        d: &d,
        dir: dir.clone(),
    };
    let out = compose_ok(&d, &dir, &["--progress", "plain", "build"], &[]);
    for want in [
        "building with \"default\" instance using docker driver",
        "[web internal] load build context",
        "[worker internal] load build definition from Worker.Dockerfile",
        "greeting=bonjour",
        "naming to docker.io/library/bkproj-web",
        "naming to docker.io/library/bkproj-worker",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("never-built"), "{out}");
    // Compose's labels go to the image config without a step.
    assert!(!out.contains("LABEL"), "{out}");
    // The FROM came from the registry, with the session's credentials.
    d.docker_ok(&["image", "inspect", &base]);
    let img = d.get_json("/images/bkproj-web/json");
    assert_eq!(
        img["Config"]["Labels"]["org.example.from-compose"], "yes",
        "{img}"
    );
    let hist = d.get_json("/images/bkproj-web/history").to_string();
    assert!(!hist.contains("org.example.from-compose"), "{hist}");
    let web_id = img["Id"].as_str().unwrap().to_string();

    let up = compose_ok(
        &d,
        &dir,
        &["--progress", "plain", "up", "--build", "-d"],
        &[],
    );
    assert!(up.contains("CACHED"), "{up}");
    for c in ["bkproj-web-1", "bkproj-worker-1"] {
        assert!(
            wait_for(Duration::from_secs(20), || running(&d, c)),
            "{c} is not running"
        );
    }
    assert_eq!(
        d.docker_ok(&["exec", "bkproj-web-1", "cat", "/greeting"]),
        "bonjour\n"
    );
    let listing = d.docker_ok(&["exec", "bkproj-web-1", "cat", "/listing"]);
    assert!(listing.contains("hello.txt"), "{listing}");
    assert!(
        !listing.contains("secret.txt") && !listing.contains("debug.log"),
        "ignored files were sent: {listing}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            stdout(&d.docker(&["logs", "bkproj-worker-1"])).contains("worker fast")
        }),
        "worker logs: {}",
        stdout(&d.docker(&["logs", "bkproj-worker-1"]))
    );

    // A second build: every step cached, the same image.
    let again = compose_ok(&d, &dir, &["--progress", "plain", "build"], &[]);
    assert!(again.contains("CACHED"), "{again}");
    assert!(!again.contains("greeting=bonjour"), "{again}");
    let img = d.get_json("/images/bkproj-web/json");
    assert_eq!(img["Id"], web_id.as_str());
    compose_ok(&d, &dir, &["down", "-t", "1"], &[]);
    let o = d.docker(&["logout", &host]);
    assert!(o.status.success(), "{}", stderr(&o));
}

const MARK: &str = "host-only-8f2c1e";

/// COPY of a symlink to a host file, or of a symlinked directory, gives
/// the symlink itself; COPY through a symlinked directory fails: never
/// the host's content.
#[test]
fn symlinks_in_the_context_do_not_leak_host_files() {
    let d = daemon();
    let tmp = scratch();
    let root = tmp.path();
    let outside = root.join("outside");
    write_tree(&outside, &[("secret.txt", MARK)]);
    let dir = root.join("proj");
    let svc = |n: &str| {
        format!("  {n}:\n    build:\n      context: .\n      dockerfile: {n}.Dockerfile\n")
    };
    let compose_yaml = format!(
        "services:\n{}{}{}{}",
        svc("passwd"),
        svc("file"),
        svc("dir"),
        svc("through")
    );
    write_tree(
        &dir,
        &[
            ("compose.yaml", &compose_yaml),
            ("passwd.Dockerfile", "FROM busybox\nCOPY passwd /c/x\n"),
            ("file.Dockerfile", "FROM busybox\nCOPY secret-link /c/x\n"),
            ("dir.Dockerfile", "FROM busybox\nCOPY dirlink /c/d\n"),
            (
                "through.Dockerfile",
                "FROM busybox\nCOPY dirlink/secret.txt /c/x\n",
            ),
        ],
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), dir.join("secret-link")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("dirlink")).unwrap();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let _down = Down {
        d: &d,
        dir: dir.clone(),
    };
    let probe = "for f in $(find /c 2>/dev/null); do if [ -L $f ]; then echo \"$f -> $(readlink $f)\"; elif [ -f $f ]; then echo \"$f:\"; cat $f; fi; done";
    for s in ["passwd", "file", "dir", "through"] {
        let o = compose(&d, &dir, &["--progress", "plain", "build", s], &[]);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!text.contains(MARK), "{s}: {text}");
        // Through a symlinked directory: nothing to copy.
        if s == "through" {
            assert!(!o.status.success(), "{text}");
            assert!(text.contains("does not exist"), "{text}");
            continue;
        }
        assert!(o.status.success(), "{s}: {text}");
        let got = d.docker_ok(&["run", "--rm", &format!("bkproj-{s}"), "sh", "-c", probe]);
        assert!(!got.contains(MARK), "{s}: {got}");
        // The link itself, as in the context.
        assert!(
            got.starts_with("/c/") && got.contains(" -> /"),
            "{s}: {got}"
        );
        assert!(
            !got.contains(host_passwd.trim()),
            "{s}: the host's /etc/passwd: {got}"
        );
    }
}

/// `DOCKER_BUILDKIT=0 docker build` is the classic builder, its output
/// the classic one.
#[test]
fn docker_buildkit_0_is_the_classic_builder() {
    let d = daemon();
    let tmp = scratch();
    write_tree(
        tmp.path(),
        &[("Dockerfile", "FROM busybox\nRUN echo classic-run\n")],
    );
    let mut c = d.docker_cmd();
    c.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "classic:1"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let o = finish(c.spawn().unwrap(), Duration::from_secs(120));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for want in [
        "Step 1/2 : FROM busybox",
        "Step 2/2 : RUN echo classic-run",
        "classic-run",
        "Successfully built ",
        "Successfully tagged classic:1",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("#1 "), "{out}");
}

/// `docker compose build --push`: the exporter's `push=true` pushes the
/// service's image to its registry (credentials from the session's Auth),
/// shown as the build's own `pushing …` vertex; the image comes back from
/// the registry after the local copy is gone.
#[test]
fn compose_build_push_pushes_through_the_exporter() {
    let d = daemon();
    let tmp = scratch();
    let root = tmp.path();
    let htpasswd = root.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "pusher", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils) is installed");
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    std::fs::create_dir_all(root.join("reg")).unwrap();
    let reg = LocalRegistry::start_with_auth(&root.join("reg"), Some(&htpasswd))
        .expect("docker-registry is installed (scripts/deps.sh)");
    let host = format!("127.0.0.1:{}", reg.port);
    let o = login(&d, &host, "pusher", "s3cret");
    assert!(o.status.success(), "{}", stderr(&o));
    let name = format!("{host}/pushed/app:1");
    let dir = root.join("proj");
    write_tree(
        &dir,
        &[
            (
                "compose.yaml",
                &format!("services:\n  app:\n    image: {name}\n    build: .\n"),
            ),
            (
                "Dockerfile",
                "FROM busybox\nRUN echo pushed-build > /marker\n",
            ),
        ],
    );
    let out = compose_ok(&d, &dir, &["--progress", "plain", "build", "--push"], &[]);
    for want in [
        format!("pushing {name}"),
        format!("pushing manifest for {name}@sha256:"),
    ] {
        assert!(out.contains(&want), "{want:?} missing from:\n{out}");
    }
    let id = d.get_json(&format!("/images/{name}/json"))["Id"].clone();
    d.docker_ok(&["rmi", &name]);
    let (status, _, _) = d.raw("GET", &format!("/images/{name}/json"), None);
    assert_eq!(status, 404);
    d.docker_ok(&["pull", &name]);
    assert_eq!(d.get_json(&format!("/images/{name}/json"))["Id"], id);
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "cat", "/marker"]),
        "pushed-build\n"
    );

    // A named context naming that image, absent here, is pulled from the
    // registry with the session's credentials.
    d.docker_ok(&["rmi", &name]);
    write_tree(
        &dir,
        &[
            (
                "compose.yaml",
                &format!(
                    "services:\n  app:\n    build:\n      context: .\n      additional_contexts:\n        pushed: docker-image://{name}\n"
                ),
            ),
            ("Dockerfile", "FROM pushed\nRUN cat /marker\n"),
        ],
    );
    let out = compose_ok(&d, &dir, &["--progress", "plain", "build"], &[]);
    assert!(out.contains("pushed-build"), "{out}");
    assert_eq!(d.get_json(&format!("/images/{name}/json"))["Id"], id);
    let o = d.docker(&["logout", &host]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The session's health: Compose's session answers `Health/Check` through
/// a build longer than two checks; while Compose is stopped (SIGSTOP) it
/// does not, berthd drops it after two failures, and the build, which
/// needs it again to push, fails saying so.
#[test]
fn a_session_that_stops_answering_is_dropped() {
    let d = daemon();
    let tmp = scratch();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("reg")).unwrap();
    let reg = LocalRegistry::start(&root.join("reg"))
        .expect("docker-registry is installed (scripts/deps.sh)");
    let name = format!("127.0.0.1:{}/hc/app:1", reg.port);
    let dir = root.join("proj");
    // A real client answers: a build through two checks keeps its session.
    write_tree(
        &dir,
        &[
            ("compose.yaml", "services:\n  ok:\n    build: .\n"),
            ("Dockerfile", "FROM busybox\nRUN sleep 12 && echo healthy\n"),
        ],
    );
    let out = compose_ok(&d, &dir, &["--progress", "plain", "build"], &[]);
    assert!(out.contains("healthy"), "{out}");
    assert!(
        !d.log_text().contains("buildkit session dropped"),
        "{}",
        tail(&d.log_text(), 30)
    );
    write_tree(
        &dir,
        &[
            (
                "compose.yaml",
                &format!("services:\n  app:\n    image: {name}\n    build: .\n"),
            ),
            (
                "Dockerfile",
                "FROM busybox\nRUN echo started && sleep 45 && echo slept\n",
            ),
        ],
    );
    let mut c = d.docker_cmd();
    c.current_dir(&dir)
        .args([
            "compose",
            "-p",
            PROJECT,
            "--progress",
            "plain",
            "build",
            "--push",
        ])
        .env_remove("DOCKER_BUILDKIT")
        .env_remove("COMPOSE_BAKE")
        .env("COMPOSE_ANSI", "never")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("docker compose");
    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
    // The RUN is running: the session has been used, and is idle.
    let step_running = || {
        let (_, _, body) = d.raw("GET", "/containers/json", None);
        String::from_utf8_lossy(&body).contains("sleep 45")
    };
    assert!(
        wait_for(Duration::from_secs(60), step_running),
        "the RUN did not start"
    );
    nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let dropped = wait_for(Duration::from_secs(90), || {
        d.log_text().contains("buildkit session dropped")
    });
    nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let o = finish(child, Duration::from_secs(120));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    let log = d.log_text();
    assert!(dropped, "no session dropped:\n{out}\n{}", tail(&log, 30));
    assert!(
        log.contains("health check: no answer in"),
        "{}",
        tail(&log, 30)
    );
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("was dropped: health check: no answer in"),
        "{out}"
    );
}
