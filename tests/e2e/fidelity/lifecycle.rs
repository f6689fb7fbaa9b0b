//! Kill that answers once the container is gone, and commit of a running one.

use super::*;

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
        let v = body_json(&b);
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
        body_json(&b)["message"],
        format!(
            "Cannot kill container: kt: Container {} is not running",
            id.trim()
        )
    );
    let (st, _, b) = d.raw("POST", "/containers/nope/kill", None);
    assert_eq!(st, 404);
    assert_eq!(
        body_json(&b)["message"],
        "Cannot kill container: nope: No such container: nope"
    );
    let (st, _, b) = d.raw("POST", "/containers/kt/kill?signal=BOGUS", None);
    assert_eq!(
        (st, body_json(&b)["message"].as_str()),
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
    let v = body_json(&b);
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
    let c = &body_json(&b)["Config"];
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
        (st, body_json(&b)["message"].as_str()),
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
