//! Issue 18: BuildKit's front door. The real `docker compose build`
//! (Compose v2 with its internal buildx library, docker driver) builds
//! through `POST /grpc` and `POST /session` with nothing set in the
//! environment; the raw refusals are dockerd's.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use berth_tests::*;

#[path = "buildkit/project.rs"]
mod project;

#[path = "buildkit/frontend.rs"]
mod frontend;

const PROJECT: &str = "bkproj";

fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (p, data) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }
}

/// `docker compose` in `dir`, with BuildKit left to Compose's own choice
/// (no DOCKER_BUILDKIT, no COMPOSE_BAKE).
fn compose(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = d.docker_cmd();
    c.current_dir(dir)
        .arg("compose")
        .args(["-p", PROJECT])
        .args(args)
        .env_remove("DOCKER_BUILDKIT")
        .env_remove("COMPOSE_BAKE")
        .env_remove("BUILDX_BUILDER")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .env("COMPOSE_ANSI", "never")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(c.spawn().expect("docker compose"), Duration::from_secs(180))
}

fn compose_ok(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = compose(d, dir, args, env);
    assert!(
        o.status.success(),
        "docker compose {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
    format!("{}{}", stdout(&o), stderr(&o))
}

fn project(dir: &Path) {
    write_tree(
        dir,
        &[
            (
                "compose.yaml",
                "services:\n  app:\n    build:\n      context: .\n      args:\n        GREETING: bonjour\n    command: [\"sleep\", \"60\"]\n",
            ),
            (
                "Dockerfile",
                "FROM busybox\nARG GREETING=hello\nCOPY . /app/\nRUN echo \"built with $GREETING\" && echo \"$GREETING\" > /greeting\nLABEL org.example.kind=bk\n",
            ),
            (".dockerignore", "secret.txt\n"),
            ("hello.txt", "hello from the context\n"),
            ("secret.txt", "do not ship\n"),
        ],
    );
}

#[test]
fn compose_builds_through_the_daemons_buildkit() {
    let d = daemon();
    let tmp = scratch();
    let dir = tmp.path();
    project(dir);
    let out = compose_ok(&d, dir, &["--progress", "plain", "build"], &[]);
    for want in [
        "building with \"default\" instance using docker driver",
        "[app internal] load build definition from Dockerfile",
        "[app internal] load build context",
        "RUN echo",
        "built with bonjour",
        "naming to docker.io/library/bkproj-app",
        "DONE",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let img = d.get_json("/images/bkproj-app/json");
    let id = img["Id"].as_str().unwrap().to_string();
    assert_eq!(img["Config"]["Labels"]["org.example.kind"], "bk", "{img}");
    let run = |args: &[&str]| {
        let mut full = vec!["run", "--rm", "bkproj-app"];
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
    assert!(ls.contains("Dockerfile"), "{ls}");

    // Compose records containerimage.digest as the service's image ID.
    compose_ok(&d, dir, &["up", "--no-start"], &[]);
    let cs = d.get_json(&format!(
        "/containers/json?all=1&filters={}",
        "%7B%22label%22%3A%5B%22com.docker.compose.project%3Dbkproj%22%5D%7D"
    ));
    let label = cs[0]["Labels"]["com.docker.compose.image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(label, id, "{cs}");

    // A second build is cached.
    let again = compose_ok(&d, dir, &["--progress", "plain", "build"], &[]);
    assert!(again.contains("CACHED"), "{again}");
    compose_ok(&d, dir, &["down"], &[]);

    // The classic path still works when asked for.
    let classic = compose_ok(
        &d,
        dir,
        &["--progress", "plain", "build"],
        &[("DOCKER_BUILDKIT", "0"), ("COMPOSE_BAKE", "false")],
    );
    assert!(!classic.contains("[app internal]"), "{classic}");
}

/// A failing RUN fails the build with its output and code.
#[test]
fn a_failing_run_fails_compose_build() {
    let d = daemon();
    let tmp = scratch();
    let dir = tmp.path();
    write_tree(
        dir,
        &[
            ("compose.yaml", "services:\n  app:\n    build: .\n"),
            (
                "Dockerfile",
                "FROM busybox\nRUN echo about to fail && exit 3\n",
            ),
        ],
    );
    let o = compose(&d, dir, &["--progress", "plain", "build"], &[]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("about to fail"), "{text}");
    // BuildKit's wording, not the classic builder's.
    assert!(
        text.contains(
            "process \"/bin/sh -c echo about to fail && exit 3\" did not complete successfully: exit code: 3"
        ),
        "{text}"
    );
    assert!(!text.contains("non-zero code"), "{text}");
}

/// The head of a raw request on the daemon's socket.
fn raw_head(d: &Daemon, req: &str) -> String {
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn grpc_and_session_upgrades_answer_as_dockerd() {
    let d = Daemon::start();
    let (status, _, body) = d.raw("POST", "/grpc", None);
    assert_eq!(status, 500);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["message"], "no upgrade proto in request");
    let (status, _, body) = d.raw("POST", "/session", None);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = d.raw("GET", "/grpc", None);
    assert_eq!(status, 404);
    // The 101 (with Go's empty Host), nothing but the upgrade headers.
    let head = raw_head(
        &d,
        "POST /grpc HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("Upgrade: h2c\r\n"), "{head}");
    assert!(!head.contains("Api-Version"), "{head}");
    let head = raw_head(
        &d,
        "POST /v1.41/grpc HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
}
