//! Stream framing of exec, attach and logs, and output never lost at the start.

use super::*;

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
                    assert_plain_hijack(&r, &what);
                }
                assert_eq!(
                    r.header("Content-Type"),
                    Some(expected_type(version, tty, upgrade)),
                    "{what}"
                );
                assert_first_second(&r.body(), tty, &what);
                let (_, _, b) = d.raw("GET", &format!("/exec/{id}/json"), None);
                let v = body_json(&b);
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
        let id = body_json(&b)["Id"].as_str().unwrap().to_string();
        let r = Raw::send(&d, "POST", &format!("/exec/{id}/start"), b"{}", true);
        assert_eq!(r.status, 101, "{}", r.head);
        let want = (
            if out { "out\n" } else { "" }.to_string(),
            if err { "err\n" } else { "" }.to_string(),
        );
        assert_eq!(demux(&r.body()), want, "stdout={out} stderr={err}");
        let v = body_json(&d.raw("GET", &format!("/exec/{id}/json"), None).2);
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
                    assert_plain_hijack(&r, &what);
                }
                assert_eq!(
                    r.header("Content-Type"),
                    Some(expected_type(version, tty, upgrade)),
                    "{what}"
                );
                d.docker_ok(&["start", &name]);
                assert_first_second(&r.body(), tty, &what);
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
    let inspect = || body_json(&d.raw("GET", &format!("/exec/{id}/json"), None).2);
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
        body_json(&b)["message"],
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
        body_json(&b)["message"],
        "Bad parameters: you must choose at least one stream"
    );
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
