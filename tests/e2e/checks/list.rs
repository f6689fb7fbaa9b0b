//! C. GET /containers/json.

use super::*;

fn ps(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut a = vec!["ps", "--format", "{{.Names}}"];
    a.extend_from_slice(args);
    d.docker_ok(&a)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The raw list for a filters JSON: (status, names or message).
fn list(d: &Daemon, filters: &str) -> (u16, Result<Vec<String>, String>) {
    let q = format!(
        "/v1.41/containers/json?all=1&filters={}",
        filters
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let (code, _, b) = d.raw("GET", &q, None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    match v.as_array() {
        Some(a) => (
            code,
            Ok(a.iter()
                .map(|c| {
                    c["Names"][0]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches('/')
                        .to_string()
                })
                .collect()),
        ),
        None => (code, Err(message(&b))),
    }
}

#[test]
fn list_filters_as_dockerd() {
    let d = daemon();
    let pause = Duration::from_millis(1100);
    d.docker_ok(&["network", "create", "chknet"]);
    d.docker_ok(&["volume", "create", "chkvol"]);
    let host_dir = scratch();
    let bind = format!("{}:/hostmnt", host_dir.path().display());
    d.docker_ok(&[
        "create",
        "--name",
        "c-created",
        "-l",
        "a=1",
        "--expose",
        "80",
        "busybox",
        "true",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-run",
        "-l",
        "a=2",
        "-l",
        "b",
        "-p",
        "127.0.0.1::80",
        "-v",
        "chkvol:/data",
        "--network",
        "chknet",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    let _ = d.docker(&["run", "--name", "c-exit3", "busybox", "sh", "-c", "exit 3"]);
    std::thread::sleep(pause);
    d.docker_ok(&["run", "--name", "c-exit0", "-v", &bind, "busybox", "true"]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-paused",
        "--expose",
        "7000-7002/udp",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["pause", "c-paused"]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-healthy",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-unhealthy",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-starting",
        "--health-cmd",
        "true",
        "--health-interval",
        "60s",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&["tag", "busybox", "chk/derived:1"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-derived",
        "-p",
        "127.0.0.1::9000-9001",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(wait_for_polling(POLL, Duration::from_secs(15), || {
        ps(&d, &["--filter", "health=healthy"]) == names(&["c-healthy"])
            && ps(&d, &["--filter", "health=unhealthy"]) == names(&["c-unhealthy"])
    }));
    let run_port = d.docker_ok(&["port", "c-run", "80"]);
    let run_port = run_port.trim().rsplit(':').next().unwrap().to_string();
    let derived_port = d.docker_ok(&["port", "c-derived", "9001"]);
    let derived_port = derived_port.trim().rsplit(':').next().unwrap().to_string();

    let running = [
        "c-derived",
        "c-starting",
        "c-unhealthy",
        "c-healthy",
        "c-paused",
        "c-run",
    ];
    let everyone = [
        "c-derived",
        "c-starting",
        "c-unhealthy",
        "c-healthy",
        "c-paused",
        "c-exit0",
        "c-exit3",
        "c-run",
        "c-created",
    ];
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![], running.to_vec()),
        (names(&["-a"]), everyone.to_vec()),
        (names(&["-n", "2"]), vec!["c-derived", "c-starting"]),
        (
            names(&["-a", "-n", "3"]),
            vec!["c-derived", "c-starting", "c-unhealthy"],
        ),
        (names(&["-l"]), vec!["c-derived"]),
        (
            names(&["--filter", "status=exited"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (names(&["--filter", "status=created"]), vec!["c-created"]),
        (names(&["--filter", "status=paused"]), vec!["c-paused"]),
        (
            names(&["--filter", "status=running"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-run",
            ],
        ),
        (
            names(&["--filter", "status=exited", "--filter", "status=paused"]),
            vec!["c-paused", "c-exit0", "c-exit3"],
        ),
        // exited alone does not list stopped containers (dockerd: only status does).
        (names(&["--filter", "exited=3"]), vec![]),
        (names(&["-a", "--filter", "exited=3"]), vec!["c-exit3"]),
        (names(&["-a", "--filter", "exited=0"]), vec!["c-exit0"]),
        (names(&["--filter", "label=a"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "label=a"]),
            vec!["c-run", "c-created"],
        ),
        (names(&["-a", "--filter", "label=a=1"]), vec!["c-created"]),
        (names(&["-a", "--filter", "label=b"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "name=c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=^/c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=^c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=exit.$"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=run", "--filter", "name=paused"]),
            vec!["c-paused", "c-run"],
        ),
        (
            names(&["-a", "--filter", "ancestor=busybox"]),
            everyone.to_vec(),
        ),
        (
            names(&["-a", "--filter", "ancestor=chk/derived:1"]),
            everyone.to_vec(),
        ),
        (names(&["-a", "--filter", "ancestor=nosuchimage"]), vec![]),
        (names(&["-a", "--filter", "volume=chkvol"]), vec!["c-run"]),
        (names(&["-a", "--filter", "volume=/data"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "volume=/hostmnt"]),
            vec!["c-exit0"],
        ),
        (names(&["-a", "--filter", "network=chknet"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "network=bridge"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-paused",
                "c-exit0",
                "c-exit3",
                "c-created",
            ],
        ),
        (names(&["-a", "--filter", "network=nosuchnet"]), vec![]),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}"),
            ],
            vec!["c-run"],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}/tcp"),
            ],
            vec!["c-run"],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}/udp"),
            ],
            vec![],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={derived_port}"),
            ],
            vec!["c-derived"],
        ),
        (names(&["-a", "--filter", "expose=80"]), vec!["c-run"]),
        (names(&["-a", "--filter", "expose=80/tcp"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "expose=7001/udp"]),
            vec!["c-paused"],
        ),
        (
            names(&["-a", "--filter", "expose=7000-7002/udp"]),
            vec!["c-paused"],
        ),
        (
            names(&["-a", "--filter", "expose=9000-9001"]),
            vec!["c-derived"],
        ),
        (
            names(&["-a", "--filter", "health=healthy"]),
            vec!["c-healthy"],
        ),
        (
            names(&["-a", "--filter", "health=unhealthy"]),
            vec!["c-unhealthy"],
        ),
        (
            names(&["-a", "--filter", "health=starting"]),
            vec!["c-starting"],
        ),
        (
            names(&["-a", "--filter", "health=none"]),
            vec![
                "c-derived",
                "c-paused",
                "c-exit0",
                "c-exit3",
                "c-run",
                "c-created",
            ],
        ),
        (
            names(&["-a", "--filter", "isolation=default"]),
            everyone.to_vec(),
        ),
        (names(&["-a", "--filter", "is-task=true"]), vec![]),
        (
            names(&["-a", "--filter", "is-task=false"]),
            everyone.to_vec(),
        ),
        (
            names(&["-a", "--filter", "before=c-exit3"]),
            vec!["c-run", "c-created"],
        ),
        (
            names(&["-a", "--filter", "since=c-exit3"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-paused",
                "c-exit0",
            ],
        ),
        (
            names(&[
                "-a",
                "--filter",
                "before=c-exit3",
                "--filter",
                "since=c-created",
            ]),
            vec!["c-run"],
        ),
        (names(&["-a", "--filter", "id=nope"]), vec![]),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ps(&d, &a), names(&want), "docker ps {args:?}");
    }
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "c-exit3"]);
    assert_eq!(
        ps(&d, &["-a", "--filter", &format!("id={}", &id.trim()[..10])]),
        names(&["c-exit3"])
    );

    // ancestor: images built on the named one count too; an ID prefix names it.
    let child_ctx = scratch();
    std::fs::write(
        child_ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN touch /x\n",
    )
    .unwrap();
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "chk/child"])
        .arg(child_ctx.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    d.docker_ok(&["create", "--name", "c-child", "chk/child", "true"]);
    let mut with_child = vec!["c-child"];
    with_child.extend(everyone);
    assert_eq!(
        ps(&d, &["-a", "--filter", "ancestor=busybox"]),
        names(&with_child)
    );
    let bb = d.docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
    let bb_short = &bb.trim()[7..19];
    assert_eq!(
        ps(&d, &["-a", "--filter", &format!("ancestor={bb_short}")]),
        names(&with_child)
    );
    assert_eq!(
        ps(&d, &["-a", "--filter", "ancestor=chk/child"]),
        names(&["c-child"])
    );
    d.docker_ok(&["rm", "c-child"]);
    d.docker_ok(&["rmi", "chk/child"]);

    // The columns dockerd fills: quoted arguments, networks, and ports
    // only while the container has its network.
    let rows = d.docker_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}|{{.Command}}|{{.Networks}}|{{.Ports}}",
    ]);
    for want in [
        "c-exit3|\"sh -c 'exit 3'\"|bridge|".to_string(),
        "c-created|\"true\"|bridge|".to_string(),
        format!("c-run|\"sleep 300\"|chknet|127.0.0.1:{run_port}->80/tcp"),
        "c-paused|\"sleep 300\"|bridge|7000-7002/udp".to_string(),
    ] {
        assert!(rows.lines().any(|l| l == want), "{want} not in\n{rows}");
    }

    // Bad filters: dockerd's status and words.
    let errors = [
        (r#"{"bogus":{"1":true}}"#, 400, "invalid filter 'bogus'"),
        (r#"{"status":{"bogus":true}}"#, 400, "invalid filter 'status=bogus'"),
        (r#"{"health":{"bogus":true}}"#, 400, "Unrecognised filter value for health: bogus"),
        (r#"{"is-task":{"maybe":true}}"#, 400, "invalid filter 'is-task=[maybe]'"),
        (r#"{"exited":{"abc":true}}"#, 500, "strconv.Atoi: parsing \"abc\": invalid syntax"),
        (r#"{"before":{"nope":true}}"#, 500, "no such container nope"),
        (r#"{"since":{"nope":true}}"#, 500, "no such container nope"),
        (r#"{"publish":{"abc":true}}"#, 500, "error while looking up for publish abc: strconv.ParseUint: parsing \"abc\": invalid syntax"),
        (r#"{"expose":{"abc/xyz":true}}"#, 500, "error while looking up for expose abc/xyz: strconv.ParseUint: parsing \"abc\": invalid syntax"),
        (r#"{"publish":{"2-1":true}}"#, 500, "error while looking up for publish 2-1: Invalid range specified for the Port: 2-1"),
    ];
    for (f, code, msg) in errors {
        assert_eq!(list(&d, f), (code, Err(msg.to_string())), "{f}");
    }
    // The legacy list form of filters, and a bad regex matching nothing.
    assert_eq!(
        list(&d, r#"{"label":["a=2"]}"#),
        (200, Ok(names(&["c-run"])))
    );
    assert_eq!(list(&d, r#"{"name":{"[":true}}"#), (200, Ok(vec![])));

    // size: SizeRw counts what the container wrote; SizeRootFs adds the image.
    d.docker_ok(&[
        "exec",
        "c-run",
        "dd",
        "if=/dev/zero",
        "of=/blob",
        "bs=1024",
        "count=100",
    ]);
    let (_, _, b) = d.raw(
        "GET",
        "/v1.41/containers/json?size=1&filters=%7B%22name%22%3A%7B%22c-run%22%3Atrue%7D%7D",
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let rw = v[0]["SizeRw"].as_i64().unwrap();
    let root = v[0]["SizeRootFs"].as_i64().unwrap();
    assert!(rw >= 100 * 1024, "{v}");
    assert!(root > rw, "{v}");
    let (_, _, b) = d.raw("GET", "/v1.41/containers/json", None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v[0].get("SizeRw").is_none() || v[0]["SizeRw"].is_null(),
        "{v}"
    );

    d.docker_ok(&["unpause", "c-paused"]);
    rm_all(&d);
    d.docker_ok(&["network", "rm", "chknet"]);
    d.docker_ok(&["volume", "rm", "chkvol"]);
    d.docker_ok(&["rmi", "chk/derived:1"]);
    let _ = Path::new("/");
}
