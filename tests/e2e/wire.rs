//! Issue 15: answers on the wire as dockerd gives them — the common headers
//! (and where dockerd leaves them out), attach's log replay, and the status
//! codes, messages, Content-Types and version-dependent values the
//! differential harness found, through raw HTTP and the docker CLI.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::*;

const COMMON: [&str; 4] = ["Api-Version", "Ostype", "Docker-Experimental", "Server"];

/// POSTs `path` with `Upgrade: tcp` and reads until the server closes the
/// connection (or `limit` passes): (status, head, everything after the head).
fn hijack(d: &Daemon, path: &str, body: &[u8], limit: Duration) -> (u16, String, Vec<u8>) {
    hijack_at(&d.sock, path, body, false, limit)
}

/// With `shut_wr` the client closes its write side right after the request,
/// as hijacking clients with nothing to send do.
fn hijack_at(
    sock: &Path,
    path: &str,
    body: &[u8],
    shut_wr: bool,
    limit: Duration,
) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    if shut_wr {
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, buf[split + 4..].to_vec())
}

/// Multiplexed frames → (stream type, payload) pairs.
fn frames(mut b: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert!(b.len() >= 8 + n, "truncated frame in {b:?}");
        out.push((b[0], String::from_utf8_lossy(&b[8..8 + n]).into_owned()));
        b = &b[8 + n..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}

fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON error body: {}", String::from_utf8_lossy(body)));
    v["message"].as_str().expect("message").to_string()
}

#[test]
fn common_headers_where_dockerd_sends_them() {
    let d = daemon();

    // An ordinary answer carries all four.
    let (status, head, _) = d.raw("GET", "/v1.41/_ping", None);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "Api-Version"), Some("1.50"), "{head}");
    assert_eq!(header(&head, "Ostype"), Some("linux"), "{head}");
    assert_eq!(
        header(&head, "Docker-Experimental"),
        Some("false"),
        "{head}"
    );
    assert!(
        header(&head, "Server").is_some_and(|s| s.starts_with("Berth/")),
        "{head}"
    );
    // Header names spelt as Go spells them, for clients reading raw bytes.
    for h in [
        "\r\nApi-Version: 1.50\r\n",
        "\r\nOstype: linux\r\n",
        "\r\nDocker-Experimental: false\r\n",
        "\r\nContent-Type: text/plain; charset=utf-8\r\n",
    ] {
        assert!(format!("{head}\r\n").contains(h), "{h:?} in {head}");
    }

    // An unknown route is answered outside dockerd's middlewares: none.
    let (status, head, body) = d.raw("GET", "/v1.41/nope", None);
    assert_eq!((status, message(&body).as_str()), (404, "page not found"));
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    for h in COMMON {
        assert_eq!(header(&head, h), None, "{h} on an unknown route: {head}");
    }

    // A version out of range: the version check runs before the middleware
    // that adds Docker-Experimental.
    let (status, head, body) = d.raw("GET", "/v1.99/version", None);
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "client version 1.99 is too new. Maximum supported API version is 1.50"
    );
    assert_eq!(header(&head, "Api-Version"), Some("1.50"));
    assert_eq!(header(&head, "Ostype"), Some("linux"));
    assert!(header(&head, "Server").is_some());
    assert_eq!(header(&head, "Docker-Experimental"), None, "{head}");

    // A hijacked attach: dockerd writes its own status line, without them;
    // a hijacked exec start copies them in.
    d.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]);
    let (status, head, _) = hijack(
        &d,
        "/v1.41/containers/up/attach?logs=1&stream=0&stdout=1",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(status, 101, "{head}");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/vnd.docker.raw-stream")
    );
    for h in COMMON {
        assert_eq!(header(&head, h), None, "{h} on attach: {head}");
    }
    let (status, _, body) = d.raw(
        "POST",
        "/v1.41/containers/up/exec",
        Some(br#"{"Cmd":["echo","hi"],"AttachStdout":true}"#),
    );
    assert_eq!(status, 201);
    let exec = body_json(&body)["Id"]
        .as_str()
        .expect("exec id")
        .to_string();
    let (status, head, out) = hijack(
        &d,
        &format!("/v1.41/exec/{exec}/start"),
        b"{}",
        Duration::from_secs(10),
    );
    assert_eq!(status, 101, "{head}");
    for h in COMMON {
        assert!(header(&head, h).is_some(), "{h} missing on exec: {head}");
    }
    assert_eq!(frames(&out), vec![(1, "hi\n".to_string())]);
}

#[test]
fn attach_with_logs_replays_the_log() {
    let d = daemon();
    let o = d.docker(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo bye; echo oops >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // logs=1, stream=0: the log, multiplexed, then the answer ends.
    let (status, head, out) = hijack(
        &d,
        "/v1.41/containers/done/attach?logs=1&stream=0&stdout=1&stderr=1",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(status, 101, "{head}");
    assert_eq!(
        frames(&out),
        vec![(1, "bye\n".to_string()), (2, "oops\n".to_string())]
    );
    // Only the streams asked for.
    let (_, _, out) = hijack(
        &d,
        "/v1.41/containers/done/attach?logs=1&stream=0&stderr=1",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(frames(&out), vec![(2, "oops\n".to_string())]);
    // Without logs (and without stream) there is nothing to send.
    let (status, _, out) = hijack(
        &d,
        "/v1.41/containers/done/attach?stdout=1&stderr=1",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!((status, out.len()), (101, 0));
    // Without an Upgrade header the replay is the response body.
    let (status, _, out) = d.raw(
        "POST",
        "/v1.41/containers/done/attach?logs=1&stream=0&stdout=1&stderr=1",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        frames(&out),
        vec![(1, "bye\n".to_string()), (2, "oops\n".to_string())]
    );

    // With a TTY the replay is raw.
    let o = d.docker(&["run", "-t", "--name", "tty", "busybox", "echo", "tty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (status, _, out) = hijack(
        &d,
        "/v1.41/containers/tty/attach?logs=1&stream=0&stdout=1&stderr=1",
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(status, 101);
    assert_eq!(String::from_utf8_lossy(&out), "tty\r\n");

    // A running one, by a client that shuts its write side at once: the
    // answer still comes, every time.
    d.docker_ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "tty-up",
        "busybox",
        "sh",
        "-c",
        "echo up; exec sleep 300",
    ]);
    let mut up = Vec::new();
    for _ in 0..100 {
        let (_, _, out) = d.raw("GET", "/v1.41/containers/tty-up/logs?stdout=1", None);
        up = out;
        if !up.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(String::from_utf8_lossy(&up), "up\r\n");
    for i in 0..20 {
        let (status, _, out) = hijack_at(
            &d.sock,
            "/v1.41/containers/tty-up/attach?logs=1&stream=0&stdout=1",
            b"",
            true,
            Duration::from_secs(10),
        );
        assert_eq!(status, 101, "attempt {i}");
        assert_eq!(String::from_utf8_lossy(&out), "up\r\n", "attempt {i}");
    }

    // logs=1 and stream=1 on a stopped container: the old log now, then the
    // next run's output once it is started; the answer ends when it exits.
    let sock = d.sock.clone();
    let attach = std::thread::spawn(move || {
        hijack_at(
            &sock,
            "/v1.41/containers/done/attach?logs=1&stream=1&stdout=1&stderr=1",
            b"",
            false,
            Duration::from_secs(30),
        )
    });
    // The attach must be waiting before the start.
    std::thread::sleep(Duration::from_millis(500));
    let (status, _, _) = d.raw("POST", "/v1.41/containers/done/start", None);
    assert_eq!(status, 204);
    let (status, _, out) = attach.join().expect("attach thread");
    assert_eq!(status, 101);
    let got = frames(&out);
    assert_eq!(
        got,
        vec![
            (1, "bye\n".to_string()),
            (2, "oops\n".to_string()),
            (1, "bye\n".to_string()),
            (2, "oops\n".to_string()),
        ],
        "old log then the new run"
    );
}

#[test]
fn container_statuses_and_messages_as_dockerd() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "pz", "busybox", "sleep", "300"]);
    d.docker_ok(&["pause", "pz"]);
    let pid = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "pz"])
        .trim()
        .to_string();
    d.docker_ok(&["create", "--name", "stopped", "busybox", "true"]);
    let sid = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "stopped"])
        .trim()
        .to_string();

    // Starting a paused container is a conflict, not "not modified".
    let (status, _, body) = d.raw("POST", "/v1.41/containers/pz/start", None);
    assert_eq!(status, 409);
    assert_eq!(
        message(&body),
        "cannot start a paused container, try unpause instead"
    );

    // exec create: paused names the container as the client did; not
    // running gives the full ID, capitalised.
    let exec = br#"{"Cmd":["true"]}"#;
    let (status, _, body) = d.raw("POST", "/v1.41/containers/pz/exec", Some(exec));
    assert_eq!(status, 409);
    assert_eq!(
        message(&body),
        "Container pz is paused, unpause the container before exec"
    );
    let short = &pid[..10];
    let (_, _, body) = d.raw(
        "POST",
        &format!("/v1.41/containers/{short}/exec"),
        Some(exec),
    );
    assert_eq!(
        message(&body),
        format!("Container {short} is paused, unpause the container before exec")
    );
    let (status, _, body) = d.raw("POST", "/v1.41/containers/stopped/exec", Some(exec));
    assert_eq!(status, 409);
    assert_eq!(message(&body), format!("Container {sid} is not running"));
    // attach to a paused container: a conflict, in dockerd's words (how the
    // error travels on a hijack is another matter; its text is this).
    let (status, _, body) = d.raw(
        "POST",
        "/v1.41/containers/pz/attach?stream=1&stdout=1",
        None,
    );
    assert_eq!(status, 409);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("container pz is paused, unpause the container before attach"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    d.docker_ok(&["unpause", "pz"]);

    // Rename onto a taken name.
    let (status, _, body) = d.raw("POST", "/v1.41/containers/stopped/rename?name=pz", None);
    assert_eq!(status, 409);
    assert_eq!(
        message(&body),
        format!("Error when allocating new name: Conflict. The container name \"/pz\" is already in use by container \"{pid}\". You have to remove (or rename) that container to be able to reuse that name.")
    );

    // Unpause asks only whether the container is paused.
    let (status, _, body) = d.raw("POST", "/v1.41/containers/stopped/unpause", None);
    assert_eq!(status, 409);
    assert_eq!(message(&body), format!("Container {sid} is not paused"));
    // Removing a paused container, in moby's words.
    d.docker_ok(&["pause", "pz"]);
    let (status, _, body) = d.raw("DELETE", "/v1.41/containers/pz", None);
    assert_eq!(status, 409);
    assert_eq!(
        message(&body),
        "cannot remove container \"/pz\": container is paused and must be unpaused first"
    );
    d.docker_ok(&["unpause", "pz"]);
    // Rename without a name, or to a bad one.
    let (status, _, body) = d.raw("POST", "/v1.41/containers/pz/rename?name=", None);
    assert_eq!(
        (status, message(&body).as_str()),
        (400, "Neither old nor new names may be empty")
    );
    let (status, _, body) = d.raw("POST", "/v1.41/containers/pz/rename?name=bad%20name", None);
    assert_eq!(
        (status, message(&body).as_str()),
        (400, "Error when allocating new name: Invalid container name (/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    );
    // A resize needs both sizes, as integers.
    for (q, msg) in [
        ("h=20", "strconv.Atoi: parsing \"\": invalid syntax"),
        ("h=x&w=80", "strconv.Atoi: parsing \"x\": invalid syntax"),
        (
            "h=99999999999999999999&w=80",
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
    ] {
        let (status, _, body) = d.raw("POST", &format!("/v1.41/containers/pz/resize?{q}"), None);
        assert_eq!((status, message(&body).as_str()), (400, msg), "{q}");
    }
    // A network cannot be created under a predefined name.
    for name in ["bridge", "host", "none"] {
        let body = format!(r#"{{"Name":"{name}"}}"#);
        let (status, _, body) = d.raw("POST", "/v1.41/networks/create", Some(body.as_bytes()));
        assert_eq!(
            (status, message(&body)),
            (
                403,
                format!("operation is not permitted on predefined {name} network ")
            )
        );
    }

    // Update without warnings: `null`, at 1.41 and 1.50 alike.
    for v in ["1.41", "1.50"] {
        let (status, _, body) = d.raw(
            "POST",
            &format!("/v{v}/containers/pz/update"),
            Some(br#"{"CpuShares":512}"#),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(body, br#"{"Warnings":null}"#);
    }

    // Resize answers 200 with neither body nor Content-Type.
    let (status, head, body) = d.raw("POST", "/v1.41/containers/pz/resize?h=20&w=80", None);
    assert_eq!((status, body.len()), (200, 0), "{head}");
    assert_eq!(header(&head, "Content-Type"), None, "{head}");

    // Export: dockerd sets no type, Go's sniffing calls a tar octet-stream.
    let (status, head, body) = d.raw("GET", "/v1.41/containers/stopped/export", None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/octet-stream")
    );
    assert!(
        tar::Archive::new(&body[..])
            .entries()
            .expect("a tar")
            .flatten()
            .any(|e| e.path().is_ok_and(|p| p.ends_with("bin/busybox"))),
        "the export is the container's file system"
    );

    // The list's Command quotes arguments that hold a space.
    d.docker_ok(&[
        "create",
        "--name",
        "quoted",
        "busybox",
        "sh",
        "-c",
        "echo bye; exit 3",
    ]);
    let (_, _, body) = d.raw(
        "GET",
        "/v1.41/containers/json?all=1&filters=%7B%22name%22%3A%5B%22quoted%22%5D%7D",
        None,
    );
    assert_eq!(body_json(&body)[0]["Command"], "sh -c 'echo bye; exit 3'");

    // Swarm routes on a node outside a swarm.
    let manager = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
    for (method, path) in [
        ("GET", "/v1.41/swarm"),
        ("GET", "/v1.41/services"),
        ("GET", "/v1.41/nodes"),
    ] {
        let (status, _, body) = d.raw(method, path, None);
        assert_eq!((status, message(&body).as_str()), (503, manager), "{path}");
    }
    // Build cancel: nothing to cancel, a JSON type and no body; an ID needed.
    let (status, head, body) = d.raw("POST", "/v1.41/build/cancel?id=nope", None);
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    let (status, _, body) = d.raw("POST", "/v1.41/build/cancel", None);
    assert_eq!(
        (status, message(&body).as_str()),
        (400, "build ID not provided")
    );

    let (status, _, body) = d.raw("POST", "/v1.41/swarm/leave", None);
    assert_eq!(
        (status, message(&body).as_str()),
        (503, "This node is not part of a swarm")
    );
}

#[test]
fn untagged_images_and_volume_prune_per_api_version() {
    let d = Daemon::start();
    let tar = fixtures::busybox_rootfs_tar().display().to_string();
    // The same tag twice: the first image becomes untagged.
    let first = d
        .docker_ok(&["import", "--message", "one", &tar, "dang:latest"])
        .trim()
        .to_string();
    d.docker_ok(&["import", "--message", "two", &tar, "dang:latest"]);
    let dangling = "/images/json?filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D";
    let (_, _, body) = d.raw("GET", &format!("/v1.41{dangling}"), None);
    let list = body_json(&body);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["Id"], first.as_str());
    assert_eq!(list[0]["RepoTags"], serde_json::json!(["<none>:<none>"]));
    assert_eq!(list[0]["RepoDigests"], serde_json::json!(["<none>@<none>"]));
    for v in ["1.43", "1.50"] {
        let (_, _, body) = d.raw("GET", &format!("/v{v}{dangling}"), None);
        let list = body_json(&body);
        assert_eq!(list[0]["RepoTags"], serde_json::json!([]), "{v}");
        assert_eq!(list[0]["RepoDigests"], serde_json::json!([]), "{v}");
    }
    // `docker system df` at 1.41 lists it the same way.
    let (_, _, body) = d.raw("GET", "/v1.41/system/df", None);
    let df = body_json(&body);
    let img = df["Images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["Id"] == first.as_str()))
        .unwrap_or_else(|| panic!("untagged image in df: {df}"));
    assert_eq!(img["RepoTags"], serde_json::json!(["<none>:<none>"]));

    // Volume prune: from 1.42 anonymous volumes only (unless all=true);
    // before, named ones too.
    d.docker_ok(&["volume", "create", "named1"]);
    d.docker_ok(&["volume", "create", "named2"]);
    let (status, _, body) = d.raw("POST", "/v1.50/volumes/prune", None);
    assert_eq!(status, 200);
    // dockerd's volume prune answers an empty list (not null) when it
    // deleted nothing.
    assert_eq!(body_json(&body)["VolumesDeleted"], serde_json::json!([]));
    let (status, _, body) = d.raw("POST", "/v1.41/volumes/prune", None);
    assert_eq!(status, 200);
    let mut deleted: Vec<String> = body_json(&body)["VolumesDeleted"]
        .as_array()
        .expect("deleted volumes")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["named1", "named2"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "");
    d.docker_ok(&["rmi", "dang:latest", &first]);
}

/// `docker events` lines of `typ` between `since` and now.
fn events_of(d: &Daemon, since: u64, filters: &[&str]) -> Vec<String> {
    // `--until 0s` is taken in whole seconds by the CLI.
    std::thread::sleep(Duration::from_millis(1100));
    let since = since.to_string();
    let mut args = vec!["events", "--since", &since, "--until", "0s"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend([
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"container\"}}",
    ]);
    d.docker_ok(&args)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn volume_and_network_events_as_dockerd_logs_them() {
    let d = daemon();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            - 1
    };

    // Every create of a name logs `create`, the volume existing or not.
    let t0 = now();
    d.docker_ok(&["volume", "create", "ev"]);
    d.docker_ok(&["volume", "create", "ev"]);
    d.docker_ok(&["create", "--name", "evc", "-v", "ev:/x", "busybox", "true"]);
    d.docker_ok(&["rm", "evc"]);
    d.docker_ok(&["volume", "rm", "ev"]);
    assert_eq!(
        events_of(&d, t0, &["type=volume", "volume=ev"]),
        ["create", "create", "create", "destroy"]
    );

    // A running container's disconnect logs two events (the endpoint's leave
    // and the API's); a stopped one's connect logs none until it starts.
    d.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]);
    let up = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "up"])
        .trim()
        .to_string();
    d.docker_ok(&["create", "--name", "down", "busybox", "true"]);
    let down = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "down"])
        .trim()
        .to_string();
    let t1 = now();
    d.docker_ok(&["network", "create", "evn"]);
    d.docker_ok(&["network", "connect", "evn", "up"]);
    d.docker_ok(&["network", "disconnect", "evn", "up"]);
    d.docker_ok(&["network", "connect", "evn", "down"]);
    d.docker_ok(&["network", "disconnect", "evn", "down"]);
    d.docker_ok(&["network", "rm", "evn"]);
    assert_eq!(
        events_of(&d, t1, &["type=network", "network=evn"]),
        [
            "create".to_string(),
            format!("connect {up}"),
            format!("disconnect {up}"),
            format!("disconnect {up}"),
            format!("disconnect {down}"),
            "destroy".to_string(),
        ]
    );
    d.docker_ok(&["rm", "-f", "up", "down"]);
}
