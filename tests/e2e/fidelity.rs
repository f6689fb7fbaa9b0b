//! Issue 15: wire fidelity of streams and the requests around them, checked
//! against what dockerd 20.10 (API 1.41) answered for the same requests:
//! attach/exec/logs framing and headers, kill that answers once the
//! container is gone, commit of a running container, path segments decoded
//! once, and streamed endpoints that fail with a status before streaming.
//! The dockerd answers are written into the assertions (CI has no dockerd).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_tests::*;

/// A request whose answer is read straight off the socket, so framing
/// (101 or 200, chunked or not) is seen exactly as sent.
struct Raw {
    s: UnixStream,
    status: u16,
    head: String,
    /// Bytes that came after the head in the same reads.
    rest: Vec<u8>,
}

impl Raw {
    fn send(d: &Daemon, method: &str, path: &str, body: &[u8], upgrade: bool) -> Raw {
        let mut s = UnixStream::connect(&d.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let split = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = s.read(&mut chunk).expect("reading the answer head");
            assert!(n > 0, "connection closed before the head ended: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        Raw {
            s,
            status,
            head,
            rest: buf[split + 4..].to_vec(),
        }
    }

    /// Everything until the daemon closes (bounded by the read timeout).
    /// After a 101 the client half-closes first, as the CLI does without
    /// stdin.
    fn body(mut self) -> Vec<u8> {
        let mut b = self.rest;
        if self.status == 101 {
            let _ = self.s.shutdown(std::net::Shutdown::Write);
        }
        self.s
            .read_to_end(&mut b)
            .expect("stream ends with a close");
        b
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

/// Splits a multiplexed (stdcopy) stream, refusing anything malformed.
fn demux(mut b: &[u8]) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while !b.is_empty() {
        assert!(b.len() >= 8, "truncated frame header: {b:?}");
        assert_eq!(&b[1..4], &[0, 0, 0], "bad frame header: {b:?}");
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert!(b.len() >= 8 + n, "truncated frame: {b:?}");
        let text = String::from_utf8_lossy(&b[8..8 + n]);
        match b[0] {
            1 => out.push_str(&text),
            2 => err.push_str(&text),
            s => panic!("unexpected stream {s} in {b:?}"),
        }
        b = &b[8 + n..];
    }
    (out, err)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(b));
    })
}

fn create_exec(d: &Daemon, container: &str, tty: bool, cmd: &str) -> String {
    let body = serde_json::json!({
        "AttachStdout": true, "AttachStderr": true, "Tty": tty,
        "Cmd": ["sh", "-c", cmd],
    });
    let (st, _, b) = d.raw(
        "POST",
        &format!("/containers/{container}/exec"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
    json(&b)["Id"].as_str().unwrap().to_string()
}

/// dockerd's Content-Type for attach, exec and logs: raw unless the
/// stream is multiplexed, the client speaks 1.42 or later and (for attach
/// and exec) the connection was upgraded: moby announces a plain hijack as
/// raw whatever it carries.
fn expected_type(version: &str, tty: bool, upgraded: bool) -> &'static str {
    if !tty && version != "1.41" && upgraded {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// Exec start, hijacked (101) and plain (200, the stream as the body until
/// the close, neither chunked nor sized), with and without a TTY, at 1.41
/// and 1.44.
#[test]
fn exec_start_framing_matches_dockerd() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "300"]);
    for version in ["1.41", "1.44"] {
        for tty in [false, true] {
            for upgrade in [true, false] {
                let what = format!("v{version} tty={tty} upgrade={upgrade}");
                let id = create_exec(&d, "ex", tty, "echo first; echo second >&2");
                let r = Raw::send(
                    &d,
                    "POST",
                    &format!("/v{version}/exec/{id}/start"),
                    format!("{{\"Detach\":false,\"Tty\":{tty}}}").as_bytes(),
                    upgrade,
                );
                if upgrade {
                    assert_eq!(r.status, 101, "{what}: {}", r.head);
                    assert!(
                        r.head.starts_with("HTTP/1.1 101 UPGRADED"),
                        "{what}: {}",
                        r.head
                    );
                    assert_eq!(r.header("Connection"), Some("Upgrade"), "{what}");
                    assert_eq!(r.header("Upgrade"), Some("tcp"), "{what}");
                } else {
                    assert!(
                        r.head.starts_with("HTTP/1.1 200 OK\r\n"),
                        "{what}: {}",
                        r.head
                    );
                    // dockerd hijacks a plain request too: the body runs
                    // to the close, unchunked and without a length.
                    assert_eq!(r.header("Transfer-Encoding"), None, "{what}: {}", r.head);
                    assert_eq!(r.header("Content-Length"), None, "{what}: {}", r.head);
                }
                assert_eq!(
                    r.header("Content-Type"),
                    Some(expected_type(version, tty, upgrade)),
                    "{what}"
                );
                let body = r.body();
                if tty {
                    assert_eq!(
                        String::from_utf8_lossy(&body),
                        "first\r\nsecond\r\n",
                        "{what}"
                    );
                } else {
                    assert_eq!(
                        demux(&body),
                        ("first\n".to_string(), "second\n".to_string()),
                        "{what}"
                    );
                }
                let (_, _, b) = d.raw("GET", &format!("/exec/{id}/json"), None);
                let v = json(&b);
                assert_eq!(
                    (v["Running"].as_bool(), v["ExitCode"].as_i64()),
                    (Some(false), Some(0)),
                    "{what}: {v}"
                );
            }
        }
    }
}

/// Only the streams an exec was created to attach are sent (dockerd).
#[test]
fn exec_sends_only_the_attached_streams() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "ea", "busybox", "sleep", "300"]);
    for (out, err) in [(false, false), (false, true), (true, false)] {
        let body = serde_json::json!({
            "AttachStdout": out, "AttachStderr": err,
            "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 2"],
        });
        let (st, _, b) = d.raw(
            "POST",
            "/containers/ea/exec",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(st, 201);
        let id = json(&b)["Id"].as_str().unwrap().to_string();
        let r = Raw::send(&d, "POST", &format!("/exec/{id}/start"), b"{}", true);
        assert_eq!(r.status, 101, "{}", r.head);
        let want = (
            if out { "out\n" } else { "" }.to_string(),
            if err { "err\n" } else { "" }.to_string(),
        );
        assert_eq!(demux(&r.body()), want, "stdout={out} stderr={err}");
        let v = json(&d.raw("GET", &format!("/exec/{id}/json"), None).2);
        assert_eq!(v["ExitCode"].as_i64(), Some(2));
    }
}

/// Attach, hijacked and plain, to a container started after the attach.
#[test]
fn attach_framing_matches_dockerd() {
    let d = daemon();
    for version in ["1.41", "1.44"] {
        for tty in [false, true] {
            for upgrade in [true, false] {
                let what = format!("v{version} tty={tty} upgrade={upgrade}");
                let name = format!("at{}{}{}", &version[2..], tty as u8, upgrade as u8);
                let mut args = vec!["create", "--name", &name];
                if tty {
                    args.push("-t");
                }
                args.extend(["busybox", "sh", "-c", "echo first; echo second >&2"]);
                d.docker_ok(&args);
                let r = Raw::send(
                    &d,
                    "POST",
                    &format!("/v{version}/containers/{name}/attach?stream=1&stdout=1&stderr=1"),
                    b"",
                    upgrade,
                );
                assert_eq!(
                    r.status,
                    if upgrade { 101 } else { 200 },
                    "{what}: {}",
                    r.head
                );
                if !upgrade {
                    assert!(
                        r.head.starts_with("HTTP/1.1 200 OK\r\n"),
                        "{what}: {}",
                        r.head
                    );
                    assert_eq!(r.header("Transfer-Encoding"), None, "{what}: {}", r.head);
                    assert_eq!(r.header("Content-Length"), None, "{what}: {}", r.head);
                }
                assert_eq!(
                    r.header("Content-Type"),
                    Some(expected_type(version, tty, upgrade)),
                    "{what}"
                );
                d.docker_ok(&["start", &name]);
                let body = r.body();
                if tty {
                    assert_eq!(
                        String::from_utf8_lossy(&body),
                        "first\r\nsecond\r\n",
                        "{what}"
                    );
                } else {
                    assert_eq!(
                        demux(&body),
                        ("first\n".to_string(), "second\n".to_string()),
                        "{what}"
                    );
                }
            }
        }
    }
}

/// A command that writes at once is seen in full and in order, every
/// time, through bollard and through the docker CLI.
#[test]
fn exec_output_is_never_lost_at_the_start() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "ol", "busybox", "sleep", "300"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use bollard::container::LogOutput;
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let docker = d.bollard().negotiate_version().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        for i in 0..40 {
            assert!(Instant::now() < deadline, "too slow at round {i}");
            let e = docker
                .create_exec(
                    "ol",
                    CreateExecOptions {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(vec![
                            "sh",
                            "-c",
                            "echo first; echo second; echo third >&2; echo fourth >&2",
                        ]),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let StartExecResults::Attached { mut output, .. } =
                docker.start_exec(&e.id, None).await.unwrap()
            else {
                panic!("not attached");
            };
            let (mut out, mut err) = (String::new(), String::new());
            while let Some(m) = output.next().await {
                match m.unwrap() {
                    LogOutput::StdOut { message } => {
                        out.push_str(&String::from_utf8_lossy(&message))
                    }
                    LogOutput::StdErr { message } => {
                        err.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(
                (out.as_str(), err.as_str()),
                ("first\nsecond\n", "third\nfourth\n"),
                "round {i}"
            );
            let code = docker.inspect_exec(&e.id).await.unwrap().exit_code;
            assert_eq!(code, Some(0), "round {i}");
        }
    });
    // Plain (unhijacked) starts, where the stream is the response body.
    for i in 0..20 {
        let id = create_exec(&d, "ol", false, "echo first; echo second; echo third >&2");
        let r = Raw::send(&d, "POST", &format!("/exec/{id}/start"), b"{}", false);
        assert_eq!(r.status, 200, "round {i}: {}", r.head);
        assert_eq!(
            demux(&r.body()),
            ("first\nsecond\n".to_string(), "third\n".to_string()),
            "round {i}"
        );
    }
    for i in 0..10 {
        let o = d.docker(&[
            "exec",
            "ol",
            "sh",
            "-c",
            "echo first; echo second >&2; exit 4",
        ]);
        assert_eq!(
            (stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()),
            ("first\n", "second\n", Some(4)),
            "round {i}"
        );
    }
}

/// `Detach: true` answers at once with dockerd's empty 200; the process
/// runs on and its exit is recorded; a second start is dockerd's 409.
#[test]
fn detached_exec_start_returns_at_once() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "dt", "busybox", "sleep", "300"]);
    let id = create_exec(&d, "dt", false, "sleep 1; exit 3");
    let t0 = Instant::now();
    let (st, head, body) = d.raw(
        "POST",
        &format!("/exec/{id}/start"),
        Some(br#"{"Detach":true,"Tty":false}"#),
    );
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!((st, body.as_slice()), (200, &b""[..]), "{head}");
    assert_eq!(header(&head, "Content-Length"), Some("0"), "{head}");
    let inspect = || json(&d.raw("GET", &format!("/exec/{id}/json"), None).2);
    let v = inspect();
    assert_eq!(
        (v["Running"].as_bool(), v["ExitCode"].as_i64()),
        (Some(true), None),
        "{v}"
    );
    assert!(v["Pid"].as_i64().unwrap_or(0) > 0, "{v}");
    assert!(wait_for(Duration::from_secs(10), || inspect()["Running"] == false));
    assert_eq!(inspect()["ExitCode"].as_i64(), Some(3));
    let (st, _, b) = d.raw(
        "POST",
        &format!("/exec/{id}/start"),
        Some(br#"{"Detach":true}"#),
    );
    assert_eq!(st, 409);
    assert_eq!(
        json(&b)["message"],
        format!("Error: Exec command {id} has already run")
    );
    // The CLI's `exec -d` takes the same path.
    d.docker_ok(&["exec", "-d", "dt", "sh", "-c", "echo x > /tmp/d"]);
    assert!(wait_for(Duration::from_secs(10), || {
        d.docker(&["exec", "dt", "cat", "/tmp/d"]).stdout == b"x\n"
    }));
}

/// Logs: multiplexed without a TTY, raw with one; Content-Type per version.
#[test]
fn logs_framing_matches_dockerd() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--name",
        "lg0",
        "busybox",
        "sh",
        "-c",
        "echo first; echo second >&2",
    ]);
    d.docker_ok(&[
        "run",
        "-t",
        "--name",
        "lg1",
        "busybox",
        "sh",
        "-c",
        "echo first; echo second >&2",
    ]);
    for version in ["1.41", "1.44"] {
        for tty in [false, true] {
            let what = format!("v{version} tty={tty}");
            let (st, head, body) = d.raw(
                "GET",
                &format!(
                    "/v{version}/containers/lg{}/logs?stdout=1&stderr=1",
                    tty as u8
                ),
                None,
            );
            assert_eq!(st, 200, "{what}");
            // dockerd 20.10 sent no Content-Type at all here; moby since
            // API 1.42 sends these, and the raw one for older versions.
            assert_eq!(
                header(&head, "Content-Type"),
                Some(expected_type(version, tty, true)),
                "{what}"
            );
            if tty {
                assert_eq!(
                    String::from_utf8_lossy(&body),
                    "first\r\nsecond\r\n",
                    "{what}"
                );
            } else {
                assert_eq!(
                    demux(&body),
                    ("first\n".into(), "second\n".into()),
                    "{what}"
                );
            }
        }
    }
    let o = d.docker(&["logs", "lg0"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("first\n", "second\n")
    );
    // No stream chosen: dockerd's 400.
    let (st, _, b) = d.raw("GET", "/containers/lg0/logs", None);
    assert_eq!(st, 400);
    assert_eq!(
        json(&b)["message"],
        "Bad parameters: you must choose at least one stream"
    );
}

/// SIGKILL answers only once the container is gone (inspect says exited
/// 137, `rm` works at once); other signals once delivered; dockerd's 409
/// and 404.
#[test]
fn kill_answers_once_the_container_has_stopped() {
    let d = daemon();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let docker = rt.block_on(d.bollard().negotiate_version()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..15 {
        assert!(Instant::now() < deadline, "too slow at round {i}");
        let name = format!("k{i}");
        d.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]);
        match i % 3 {
            0 => {
                let (st, _, b) = d.raw("POST", &format!("/containers/{name}/kill"), None);
                assert_eq!(st, 204, "{}", String::from_utf8_lossy(&b));
            }
            1 => {
                rt.block_on(docker.kill_container(
                    &name,
                    None::<bollard::query_parameters::KillContainerOptions>,
                ))
                .unwrap();
            }
            _ => {
                d.docker_ok(&["kill", &name]);
            }
        }
        let (_, _, b) = d.raw("GET", &format!("/containers/{name}/json"), None);
        let v = json(&b);
        assert_eq!(
            (
                v["State"]["Status"].as_str(),
                v["State"]["ExitCode"].as_i64(),
                v["State"]["Running"].as_bool()
            ),
            (Some("exited"), Some(137), Some(false)),
            "round {i}"
        );
        d.docker_ok(&["rm", &name]);
    }
    // Another signal returns once delivered; the trap then ends the process.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "kt",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
    ]);
    // (PID 1 ignores TERM until its trap is set.)
    assert!(wait_for(Duration::from_secs(10), || d
        .docker(&["exec", "kt", "test", "-f", "/tmp/ready"])
        .status
        .success()));
    let (st, _, _) = d.raw("POST", "/containers/kt/kill?signal=SIGTERM", None);
    assert_eq!(st, 204);
    assert_eq!(d.docker_ok(&["wait", "kt"]).trim(), "5");
    // Not running: dockerd's 409, with the name as given.
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "kt"]);
    let (st, _, b) = d.raw("POST", "/containers/kt/kill", None);
    assert_eq!(st, 409);
    assert_eq!(
        json(&b)["message"],
        format!(
            "Cannot kill container: kt: Container {} is not running",
            id.trim()
        )
    );
    let (st, _, b) = d.raw("POST", "/containers/nope/kill", None);
    assert_eq!(st, 404);
    assert_eq!(
        json(&b)["message"],
        "Cannot kill container: nope: No such container: nope"
    );
    let (st, _, b) = d.raw("POST", "/containers/kt/kill?signal=BOGUS", None);
    assert_eq!(
        (st, json(&b)["message"].as_str()),
        (400, Some("Invalid signal: BOGUS"))
    );
    // A paused container gets its (default) stop signal and is resumed,
    // as dockerd does; SIGKILL of a paused one ends it.
    d.docker_ok(&["run", "-d", "--name", "kp", "busybox", "sleep", "300"]);
    d.docker_ok(&["pause", "kp"]);
    let (st, _, _) = d.raw("POST", "/containers/kp/kill?signal=TERM", None);
    assert_eq!(st, 204);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "kp"])
            .trim(),
        "running"
    );
    d.docker_ok(&["pause", "kp"]);
    let (st, _, _) = d.raw("POST", "/containers/kp/kill", None);
    assert_eq!(st, 204);
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "kp"
        ])
        .trim(),
        "exited 137"
    );
    // The exit a kill causes is not restarted by the policy (dockerd's
    // "exit on next"); a later start runs under the policy again.
    d.docker_ok(&[
        "run",
        "-d",
        "--restart=always",
        "--name",
        "ka",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["kill", "ka"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}",
            "ka"
        ])
        .trim(),
        "exited 137 0"
    );
    d.docker_ok(&["start", "ka"]);
    // Its process dies of something else (SIGKILL from the host).
    let pid: i32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "ka"])
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of the container's own process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(10), || {
        d.docker_ok(&["inspect", "-f", "{{.RestartCount}}", "ka"])
            .trim()
            == "1"
    }));
    d.docker_ok(&["rm", "-f", "ka"]);
    // A container waiting out a restart back-off: the kill ends it there.
    d.docker_ok(&[
        "run",
        "-d",
        "--restart=always",
        "--name",
        "kr",
        "busybox",
        "false",
    ]);
    assert!(wait_for(Duration::from_secs(10), || {
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "kr"])
            .trim()
            == "restarting"
    }));
    let (st, _, b) = d.raw("POST", "/containers/kr/kill", None);
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&b));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "kr"])
            .trim(),
        "exited"
    );
    d.docker_ok(&["rm", "kr"]);
    d.docker_ok(&["rm", "kp", "kt"]);
}

fn events_of(d: &Daemon, container: &str, since: u64) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &now.to_string(),
        "--filter",
        &format!("container={container}"),
        "--format",
        "{{.Action}}",
    ])
    .lines()
    .map(String::from)
    .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Commit of a running container pauses it (dockerd's pause, commit,
/// unpause events), leaves it running, and applies `changes`.
#[test]
fn commit_pauses_a_running_container_and_applies_changes() {
    let d = daemon();
    let t0 = unix_now();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cm",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f; sleep 300",
    ]);
    assert!(wait_for(Duration::from_secs(10), || d
        .docker(&["exec", "cm", "cat", "/f"])
        .stdout
        == b"hi\n"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let docker = rt.block_on(d.bollard().negotiate_version()).unwrap();
    let opts = bollard::query_parameters::CommitContainerOptionsBuilder::new()
        .container("cm")
        .repo("cmimg")
        .tag("v1")
        .pause(true)
        .changes("CMD [\"cat\", \"/f\"]\nENV A=1 B=2\nLABEL l=v\nEXPOSE 8080/udp 90\nWORKDIR /tmp")
        .build();
    let id = rt
        .block_on(docker.commit_container(opts, bollard::models::ContainerConfig::default()))
        .unwrap()
        .id;
    assert!(id.starts_with("sha256:"), "{id}");
    let (_, _, b) = d.raw("GET", "/containers/cm/json", None);
    let v = json(&b);
    assert_eq!(
        (
            v["State"]["Status"].as_str(),
            v["State"]["Paused"].as_bool()
        ),
        (Some("running"), Some(false))
    );
    let actions = events_of(&d, "cm", t0);
    let tail: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| ["pause", "unpause", "commit"].contains(a))
        .collect();
    assert_eq!(tail, ["pause", "commit", "unpause"], "{actions:?}");
    let (_, _, b) = d.raw("GET", "/images/cmimg:v1/json", None);
    let c = &json(&b)["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "/f"]));
    assert_eq!(c["WorkingDir"], "/tmp");
    assert_eq!(c["Labels"], serde_json::json!({"l": "v"}));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/udp": {}, "90/tcp": {}})
    );
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(env.contains(&"A=1") && env.contains(&"B=2"), "{env:?}");
    // The new image holds the container's file and runs the new CMD.
    assert_eq!(d.docker_ok(&["run", "--rm", "cmimg:v1"]), "hi\n");
    // pause=false: no pause, same result.
    let t1 = unix_now();
    d.docker_ok(&[
        "commit",
        "--pause=false",
        "-c",
        "CMD [\"cat\",\"/f\"]",
        "cm",
        "cmimg:v2",
    ]);
    assert_eq!(d.docker_ok(&["run", "--rm", "cmimg:v2"]), "hi\n");
    let actions = events_of(&d, "cm", t1);
    assert!(!actions.iter().any(|a| a == "pause"), "{actions:?}");
    // A paused container commits and stays paused.
    d.docker_ok(&["pause", "cm"]);
    d.docker_ok(&["commit", "cm", "cmimg:v3"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "cm"])
            .trim(),
        "paused"
    );
    d.docker_ok(&["unpause", "cm"]);
    // A bad change: dockerd's 400, its command named in lower case.
    let (st, _, b) = d.raw("POST", "/commit?container=cm&changes=BOGUS+x", None);
    assert_eq!(
        (st, json(&b)["message"].as_str()),
        (400, Some("bogus is not a valid change command"))
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "cm"])
            .trim(),
        "running"
    );
    d.docker_ok(&["rm", "-f", "cm"]);
    d.docker_ok(&["rmi", "cmimg:v1", "cmimg:v2", "cmimg:v3"]);
}

/// Path segments are percent-decoded exactly once, as Go's router does.
#[test]
fn path_segments_are_decoded_once() {
    let d = daemon();
    d.docker_ok(&["network", "create", "test 01"]);
    let (st, _, b) = d.raw("GET", "/networks/test%2001", None);
    assert_eq!((st, json(&b)["Name"].as_str()), (200, Some("test 01")));
    let (st, _, b) = d.raw("GET", "/networks/test%252001", None);
    assert_eq!(
        (st, json(&b)["message"].as_str()),
        (404, Some("network test%2001 not found"))
    );
    // The CLI encodes the space itself.
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Name}}", "test 01"])
            .trim(),
        "test 01"
    );
    d.docker_ok(&["network", "rm", "test 01"]);
    d.docker_ok(&["create", "--name", "c1", "busybox", "true"]);
    let (st, _, b) = d.raw("GET", "/containers/%631/json", None);
    assert_eq!((st, json(&b)["Name"].as_str()), (200, Some("/c1")));
    let (st, _, b) = d.raw("GET", "/containers/a%2Fb/json", None);
    assert_eq!(
        (st, json(&b)["message"].as_str()),
        (404, Some("No such container: a/b"))
    );
    d.docker_ok(&["volume", "create", "vol1"]);
    let (st, _, b) = d.raw("GET", "/volumes/%76ol1", None);
    assert_eq!((st, json(&b)["Name"].as_str()), (200, Some("vol1")));
    let (st, _, b) = d.raw("GET", "/volumes/a%252Fb", None);
    assert_eq!(
        (st, json(&b)["message"].as_str()),
        (404, Some("get a%2Fb: no such volume"))
    );
    d.docker_ok(&["tag", "busybox", "127.0.0.1:5000/app:v1"]);
    for p in [
        "127.0.0.1%3A5000%2Fapp:v1",
        "127.0.0.1:5000/app:v1",
        "127.0.0.1%3A5000/app%3Av1",
    ] {
        let (st, _, b) = d.raw("GET", &format!("/images/{p}/json"), None);
        assert_eq!(st, 200, "{p}");
        assert!(
            json(&b)["RepoTags"]
                .to_string()
                .contains("127.0.0.1:5000/app:v1"),
            "{p}"
        );
    }
    // Decoded once: `%252F` is a literal `%2F`, not a valid reference.
    let (st, _, b) = d.raw("GET", "/images/127.0.0.1%3A5000%252Fapp:v1/json", None);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&b));
    assert!(json(&b)["message"]
        .as_str()
        .unwrap()
        .contains("invalid reference format"));
    let (st, _, _) = d.raw("DELETE", "/images/127.0.0.1%3A5000%2Fapp:v1", None);
    assert_eq!(st, 200);
    d.docker_ok(&["rm", "c1"]);
    d.docker_ok(&["volume", "rm", "vol1"]);
}

fn assert_error(
    d: &Daemon,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    status: u16,
    message: &str,
) {
    let (st, head, b) = d.raw(method, path, body);
    assert_eq!(
        st,
        status,
        "{method} {path}: {head}\n{}",
        String::from_utf8_lossy(&b)
    );
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/json"),
        "{method} {path}"
    );
    assert!(
        header(&head, "Transfer-Encoding").is_none(),
        "{method} {path}: streamed: {head}"
    );
    let m = json(&b)["message"].as_str().unwrap_or_default().to_string();
    assert!(
        m.contains(message),
        "{method} {path}: {m:?} lacks {message:?}"
    );
}

/// Streamed endpoints refuse what they cannot serve with a status and a
/// JSON message before any stream starts (statuses and messages as
/// dockerd's, except where noted).
#[test]
fn streamed_endpoints_fail_before_streaming() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ln",
        "--log-driver",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["create", "--name", "st", "busybox", "true"]);
    let reading = "configured logging driver does not support reading";
    assert_error(
        &d,
        "GET",
        "/containers/nope/logs?stdout=1",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/ln/logs?stdout=1",
        None,
        501,
        reading,
    );
    assert_error(
        &d,
        "GET",
        "/containers/ln/logs?stdout=1&follow=1",
        None,
        501,
        reading,
    );
    let o = d.docker(&["logs", "ln"]);
    assert!(
        !o.status.success() && stderr(&o).contains(reading),
        "{}",
        stderr(&o)
    );
    // A refused attach: dockerd's status, raw-stream type and text message.
    for upgrade in [true, false] {
        let r = Raw::send(
            &d,
            "POST",
            "/containers/nope/attach?stream=1&stdout=1",
            b"",
            upgrade,
        );
        assert_eq!(r.status, 404, "{}", r.head);
        assert!(
            r.head.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.docker.raw-stream")
        );
        assert_eq!(r.body(), b"No such container: nope\r\n");
    }
    let r = Raw::send(&d, "POST", "/exec/nope/start", b"{}", true);
    assert_eq!(r.status, 404, "{}", r.head);
    assert_error(
        &d,
        "POST",
        "/exec/nope/start",
        Some(b"{}"),
        404,
        "No such exec instance: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/stats?stream=0",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/stats",
        None,
        404,
        "No such container: nope",
    );
    // A stopped container's one-shot stats: a sized 200 of zeros.
    let (st, head, b) = d.raw("GET", "/containers/st/stats?stream=0", None);
    assert_eq!(st, 200);
    assert!(header(&head, "Content-Length").is_some(), "{head}");
    assert_eq!(json(&b)["read"], "0001-01-01T00:00:00Z");
    assert_error(
        &d,
        "GET",
        "/containers/nope/export",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/archive?path=/",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/st/archive?path=/nonexist",
        None,
        404,
        "Could not find the file /nonexist in container st",
    );
    assert_error(
        &d,
        "PUT",
        "/containers/st/archive?path=/nonexist",
        Some(b""),
        404,
        "Could not find the file /nonexist in container st",
    );
    // Events: bad filters are a 400 (dockerd 20.10 said 500 for bad JSON).
    assert_error(&d, "GET", "/events?filters=notjson", None, 400, "");
    assert_error(
        &d,
        "GET",
        "/events?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
        400,
        "bogus",
    );
    assert_error(&d, "GET", "/events?since=abc", None, 400, "");
    // Pull of a bad reference, save of a missing image.
    assert_error(
        &d,
        "POST",
        "/images/create?fromImage=a%3A%3Ab",
        None,
        400,
        "invalid reference format",
    );
    assert_error(
        &d,
        "POST",
        "/images/create?fromImage=busybox&tag=UP%3Ax",
        None,
        400,
        "invalid tag format",
    );
    assert_error(
        &d,
        "GET",
        "/images/nope/get",
        None,
        404,
        "No such image: nope",
    );
    assert_error(
        &d,
        "GET",
        "/images/get?names=busybox&names=nope",
        None,
        404,
        "No such image: nope",
    );
    // Push of a missing image: dockerd streams its first line, then the error.
    let (st, _, b) = d.raw("POST", "/images/nope/push", None);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&b).contains(
        r#""errorDetail":{"message":"An image does not exist locally with the tag: nope"}"#
    ));
    // Build: a failure before any output is the status (dockerd: 500;
    // berth answers a context that is no archive with a 400, the
    // request's fault).
    assert_error(&d, "POST", "/build", Some(b"notatar"), 400, "");
    let ctx = fixtures::archive_of(&[("Dockerfile".into(), b"FROM busybox\nRUN true\n".to_vec())]);
    assert_error(
        &d,
        "POST",
        "/build?dockerfile=nope",
        Some(&ctx),
        500,
        "Cannot locate specified Dockerfile: nope",
    );
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-f", "nope", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|mut c| {
            c.stdin.take().unwrap().write_all(&ctx).unwrap();
            finish(c, Duration::from_secs(60))
        })
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("Cannot locate specified Dockerfile: nope"),
        "{}",
        stderr(&o)
    );
    // The container stopped after the execs were made: dockerd forgets
    // the one never started (404) and refuses the finished one (409).
    d.docker_ok(&["run", "-d", "--name", "gone", "busybox", "sleep", "300"]);
    let unstarted = create_exec(&d, "gone", false, "true");
    let finished = create_exec(&d, "gone", false, "true");
    let r = Raw::send(&d, "POST", &format!("/exec/{finished}/start"), b"{}", true);
    assert_eq!(r.status, 101);
    r.body();
    let cid = d.docker_ok(&["inspect", "-f", "{{.Id}}", "gone"]);
    d.docker_ok(&["kill", "gone"]);
    let r = Raw::send(&d, "POST", &format!("/exec/{unstarted}/start"), b"{}", true);
    assert_eq!(r.status, 404, "{}", r.head);
    assert_error(
        &d,
        "GET",
        &format!("/exec/{unstarted}/json"),
        None,
        404,
        &format!("No such exec instance: {unstarted}"),
    );
    assert_error(
        &d,
        "POST",
        &format!("/exec/{finished}/start"),
        Some(b"{}"),
        409,
        &format!("Container {} is not running: Exited (137)", cid.trim()),
    );
    d.docker_ok(&["rm", "-f", "ln", "st", "gone"]);
}

/// `docker run` attaches before the start: the first lines are never lost.
#[test]
fn run_output_is_never_lost_at_the_start() {
    let d = daemon();
    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0..15 {
        assert!(Instant::now() < deadline, "too slow at round {i}");
        let o = d.docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo first; echo second; echo third >&2; exit 2",
        ]);
        assert_eq!(
            (stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()),
            ("first\nsecond\n", "third\n", Some(2)),
            "round {i}"
        );
        let o = d.docker(&[
            "run",
            "--rm",
            "-t",
            "busybox",
            "sh",
            "-c",
            "echo first; echo second",
        ]);
        assert_eq!(stdout(&o), "first\r\nsecond\r\n", "round {i}");
    }
}

/// The docker CLI pinned to API 1.41 (raw-stream announced for every
/// stream) frames by the TTY setting and gets the same output.
#[test]
fn the_cli_at_api_1_41_reads_every_stream() {
    let d = daemon();
    let cli = |args: &[&str]| {
        d.docker_cmd()
            .env("DOCKER_API_VERSION", "1.41")
            .args(args)
            .output()
            .expect("docker")
    };
    let o = cli(&[
        "run",
        "--name",
        "v41",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()),
        ("out\n", "err\n", Some(3))
    );
    let o = cli(&["logs", "v41"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    d.docker_ok(&["run", "-d", "--name", "v41e", "busybox", "sleep", "300"]);
    let o = cli(&["exec", "v41e", "sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str(), o.status.code()),
        ("out\n", "err\n", Some(4))
    );
    let o = cli(&["exec", "-t", "v41e", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(stdout(&o), "out\r\nerr\r\n");
    d.docker_ok(&["rm", "-f", "v41", "v41e"]);
}
