//! Docker Compose v2 (the real `docker compose` CLI plugin, installed by
//! scripts/deps.sh) against berthd: a multi-service project with a build,
//! named volumes, two networks, a health-gated dependency, published ports,
//! exec, run, scale, ps, logs and `down -v`. Traffic goes only to loopback
//! and to the containers the test creates.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::net::http_get;
use berth_tests::*;
use serde_json::Value;

const PROJECT: &str = "berthcompose";

/// `docker compose` in `dir` against `d`, bounded in time.
fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut c = d.docker_cmd();
    c.current_dir(dir)
        .arg("compose")
        .args(["-p", PROJECT])
        .args(args)
        // The classic builder (POST /build) here; Compose's default,
        // BuildKit through /grpc and /session, is e2e/buildkit.rs.
        .env("DOCKER_BUILDKIT", "0")
        .env("COMPOSE_BAKE", "false")
        .env("COMPOSE_ANSI", "never")
        .env("COMPOSE_PROGRESS", "plain")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(c.spawn().expect("docker compose"), Duration::from_secs(180))
}

fn compose_ok(d: &Daemon, dir: &Path, args: &[&str]) -> String {
    let o = compose(d, dir, args);
    assert!(
        o.status.success(),
        "docker compose {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
    stdout(&o)
}

/// The project's containers as the API lists them (by Compose's label).
fn project_containers(d: &Daemon) -> Vec<Value> {
    let filters = format!(r#"{{"label":["com.docker.compose.project={PROJECT}"]}}"#);
    let q = percent(&filters);
    d.get_json(&format!("/containers/json?all=1&filters={q}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An RFC 3339 UTC time as a comparable (seconds part, nanoseconds).
fn instant(t: &str) -> (String, u32) {
    let t = t.trim_end_matches('Z');
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    (secs.to_string(), frac.parse().expect("fraction"))
}

fn write_project(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir.join("web")).expect("mkdir web");
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM busybox:latest\n\
         RUN mkdir -p /www && echo \"hello from web\" > /www/index.html\n\
         CMD [\"httpd\", \"-f\", \"-v\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .expect("Dockerfile");
    // db turns healthy only after a pause, so a web started early shows.
    // `sleep` ignores SIGTERM as PID 1: the sleepers stop with SIGKILL.
    let yaml = format!(
        r#"services:
  db:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo db-answer > /www/index.html && echo stored > /data/marker && echo db-started && sleep 2 && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
    volumes:
      - dbdata:/data
    networks: [back]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 500ms
      timeout: 2s
      retries: 40
  web:
    build: ./web
    image: {PROJECT}-web:test
    depends_on:
      db:
        condition: service_healthy
    ports:
      - "127.0.0.1:{port}:80"
    networks: [front, back]
    volumes:
      - dbdata:/shared:ro
  probe:
    image: busybox:latest
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    networks: [front]
    # Names the embedded DNS does not know go upstream: keep that on loopback.
    dns: ["127.0.0.1"]
  sidecar:
    image: busybox:latest
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    network_mode: "service:web"
  worker:
    image: busybox:latest
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    networks: [back]
volumes:
  dbdata: {{}}
networks:
  front: {{}}
  back: {{}}
"#
    );
    std::fs::write(dir.join("compose.yaml"), yaml).expect("compose.yaml");
}

/// The containers `docker compose ps` shows, one JSON object per line.
fn ps(d: &Daemon, dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["ps", "--format", "json"];
    args.extend_from_slice(extra);
    compose_ok(d, dir, &args)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("ps JSON line"))
        .collect()
}

#[test]
fn compose_runs_a_multi_service_project_end_to_end() {
    let d = daemon();
    let work = scratch();
    let dir = work.path();
    let port = free_port();
    write_project(dir, port);

    // build: the classic builder, FROM the imported busybox.
    let out = compose(&d, dir, &["build"]);
    assert!(out.status.success(), "build: {}", stderr(&out));
    let img = d.get_json(&format!("/images/{PROJECT}-web:test/json"));
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["httpd", "-f", "-v", "-p", "80", "-h", "/www"])
    );

    compose_ok(&d, dir, &["up", "-d", "--scale", "worker=3"]);

    // ps: every service, three workers, all running.
    let rows = ps(&d, dir, &[]);
    let count = |svc: &str| rows.iter().filter(|r| r["Service"] == svc).count();
    assert_eq!(
        (
            count("db"),
            count("web"),
            count("probe"),
            count("sidecar"),
            count("worker")
        ),
        (1, 1, 1, 1, 3),
        "{rows:#?}"
    );
    assert!(rows.iter().all(|r| r["State"] == "running"), "{rows:#?}");
    let api = project_containers(&d);
    assert_eq!(api.len(), 7, "{api:#?}");

    // depends_on service_healthy: web started only after db turned healthy.
    let db = d.get_json(&format!("/containers/{PROJECT}-db-1/json"));
    assert_eq!(db["State"]["Health"]["Status"], "healthy", "{db:#}");
    let healthy_at = db["State"]["Health"]["Log"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["ExitCode"] == 0))
        .and_then(|p| p["End"].as_str())
        .map(instant)
        .expect("a passing probe in the health log");
    let web = d.get_json(&format!("/containers/{PROJECT}-web-1/json"));
    let web_started = instant(web["State"]["StartedAt"].as_str().expect("StartedAt"));
    assert!(
        web_started >= healthy_at,
        "web started {web_started:?} before db was healthy {healthy_at:?}"
    );

    // Published port: an answer from web's httpd on the host's loopback.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answer = None;
    while Instant::now() < deadline {
        answer = http_get(port).filter(|b| b.contains("hello from web"));
        if answer.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = answer.expect("web answers on its published port");
    assert!(
        answer
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(" 200 OK")),
        "{answer}"
    );
    let port_out = compose_ok(&d, dir, &["port", "web", "80"]);
    assert_eq!(port_out.trim(), format!("127.0.0.1:{port}"));

    // exec: the named volume is shared (db wrote it, web reads it).
    let marker = compose_ok(&d, dir, &["exec", "-T", "web", "cat", "/shared/marker"]);
    assert_eq!(marker.trim(), "stored");
    let o = compose(&d, dir, &["exec", "-T", "web", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "exec exit code: {}", stderr(&o));

    // Service DNS: web reaches db by name on the shared `back` network…
    let got = compose_ok(
        &d,
        dir,
        &[
            "exec",
            "-T",
            "web",
            "timeout",
            "5",
            "wget",
            "-qO-",
            "http://db:8080/",
        ],
    );
    assert_eq!(got.trim(), "db-answer");
    // …probe (only on `front`) cannot resolve db, nor reach its address.
    let o = compose(&d, dir, &["exec", "-T", "probe", "nslookup", "db"]);
    assert!(!o.status.success(), "probe resolved db: {}", stdout(&o));
    let db_ip = db["NetworkSettings"]["Networks"][format!("{PROJECT}_back")]["IPAddress"]
        .as_str()
        .expect("db's address on back")
        .to_string();
    let url = format!("http://{db_ip}:8080/");
    let o = compose(
        &d,
        dir,
        &["exec", "-T", "probe", "timeout", "3", "wget", "-qO-", &url],
    );
    assert!(!o.status.success(), "probe reached db across networks");
    assert!(!stdout(&o).contains("db-answer"));
    // A scaled replica, picked by --index, resolves db like any other.
    let worker_dns = compose_ok(
        &d,
        dir,
        &["exec", "-T", "--index", "2", "worker", "nslookup", "db"],
    );
    assert!(worker_dns.contains(&db_ip), "{worker_dns}");

    // network_mode service:web: the sidecar is web on the network — its
    // host name, its files, its view of service DNS.
    let web_host = compose_ok(&d, dir, &["exec", "-T", "web", "hostname"]);
    let side_host = compose_ok(&d, dir, &["exec", "-T", "sidecar", "hostname"]);
    assert_eq!(side_host, web_host);
    let got = compose_ok(
        &d,
        dir,
        &[
            "exec",
            "-T",
            "sidecar",
            "timeout",
            "5",
            "wget",
            "-qO-",
            "http://db:8080/",
        ],
    );
    assert_eq!(got.trim(), "db-answer");
    let got = compose_ok(
        &d,
        dir,
        &["exec", "-T", "sidecar", "wget", "-qO-", "http://127.0.0.1/"],
    );
    assert_eq!(got.trim(), "hello from web");

    // run --rm: a one-off container on the service's networks, then gone.
    let got = compose_ok(
        &d,
        dir,
        &[
            "run",
            "--rm",
            "-T",
            "probe",
            "timeout",
            "5",
            "wget",
            "-qO-",
            "http://web/",
        ],
    );
    assert_eq!(got.trim(), "hello from web");
    let o = compose(
        &d,
        dir,
        &["run", "--rm", "-T", "worker", "sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7), "run exit code: {}", stderr(&o));
    let oneoff = project_containers(&d)
        .into_iter()
        .filter(|c| c["Labels"]["com.docker.compose.oneoff"] == "True")
        .count();
    assert_eq!(oneoff, 0, "run --rm left its container");

    // logs: db's own output, web's access log of our request.
    let logs = compose_ok(&d, dir, &["logs", "--no-color", "db"]);
    assert!(logs.contains("db-started"), "{logs}");
    let logs = compose_ok(&d, dir, &["logs", "--no-color", "--no-log-prefix", "web"]);
    assert!(logs.contains("response:200"), "{logs}");

    // Scale down: two workers go away.
    compose_ok(&d, dir, &["up", "-d", "--scale", "worker=1"]);
    let rows = ps(&d, dir, &["worker"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");

    // down -v: containers, networks and the volume are gone from the API.
    compose_ok(&d, dir, &["down", "-v", "-t", "3"]);
    assert!(project_containers(&d).is_empty());
    let nets = d.get_json("/networks");
    let names: Vec<&str> = nets
        .as_array()
        .expect("networks")
        .iter()
        .filter_map(|n| n["Name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(PROJECT)),
        "networks left: {names:?}"
    );
    let vols = d.get_json("/volumes");
    let left: Vec<&Value> = vols["Volumes"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|v| v["Name"].as_str().is_some_and(|n| n.starts_with(PROJECT))),
        "volumes left: {left:?}"
    );
    // The built image stays (down without --rmi), then goes with the test.
    d.docker_ok(&["rmi", &format!("{PROJECT}-web:test")]);
}
